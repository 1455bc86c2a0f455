"""The calibrated tip as a normalised density: the prior of the tip in every later fit.

A tip calibration's posterior over (delta_tip, gamma_tip, T_eff) is summarised as a multivariate normal on an
unconstrained scale z = (delta_tip, softplus^-1((gamma_tip - floor) / c), log T_eff), c = RIDGE_SCALE: the coordinates
the calibration sampled gamma_tip in, where the SIS width ridge with the sample's gamma is straight. The density is proper, so evidences that use
it as a prior mean something, and it keeps the correlations (the tip/sample ridge is carried by delta_tip's
correlation with the other tip quantities only through the calibration's own fit). Its adequacy is checked against
the draws: each marginal's Kolmogorov-Smirnov distance and the Mahalanobis radii against chi^2(3).
"""

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform
from scipy import stats

from ..errors import InputError
from ..models.constants import GAMMA_FLOOR
from .priors import RIDGE_SCALE, WIDTH_COORDINATE_SCALE, gap_sums, softplus_inv

NAMES = ("delta_tip", "gamma_tip", "T_eff")
KS_ADEQUATE = 0.05  # every KS distance below this: the normal describes the draws to a few per cent
SPACE = f"z = (delta_tip, softplus^-1((gamma_tip - 0.001) / {RIDGE_SCALE}), log T_eff)"


def _softplus_inv(x):
    return x + np.log(-np.expm1(-x))


def _to_z(delta_tip, gamma_tip, t_eff):
    return np.column_stack([delta_tip, _softplus_inv((gamma_tip - GAMMA_FLOOR) / RIDGE_SCALE), np.log(t_eff)])


def _gamma(z1):
    return GAMMA_FLOOR + RIDGE_SCALE * np.logaddexp(0.0, z1)


def to_physical(name, z):
    """A coordinate of the density's z back to its physical quantity (meV or K)."""
    if name == "gamma_tip":
        return _gamma(z)
    if name == "T_eff":
        return np.exp(z)
    return z


class TipWidthCoordinate(Transform):
    """The sampler's coordinate of z1 (the density's gamma_tip coordinate): u1 with gamma_tip - floor =
    c' softplus(u1), c' = WIDTH_COORDINATE_SCALE, the coordinate the sample's widths are sampled in.

    Only gamma_tip + gamma[k] reaches the data of an SIS spectrum (physics.md, identifiability); with both widths
    linear in their coordinates above c', that ridge is straight where the widths live, while in the density's own
    z1 (softplus at the coarser RIDGE_SCALE) it bends and costs divergences. The density is unchanged (Jacobian
    added); z0 and z2 pass through.
    """

    name = "tip_width_coordinate"
    ndim_supp = 1

    def __init__(self):
        self.ratio = WIDTH_COORDINATE_SCALE / RIDGE_SCALE

    def backward(self, value, *inputs):
        value = pt.as_tensor_variable(value)
        z1 = softplus_inv(self.ratio * pt.softplus(value[..., 1]))
        return pt.set_subtensor(value[..., 1], z1)

    def forward(self, value, *inputs):
        value = pt.as_tensor_variable(value)
        u1 = softplus_inv(pt.softplus(value[..., 1]) / self.ratio)
        return pt.set_subtensor(value[..., 1], u1)

    def log_jac_det(self, value, *inputs):
        x = self.ratio * pt.softplus(value[..., 1])  # dz1/du1 = ratio sigmoid(u1) / (1 - exp(-x))
        return np.log(self.ratio) - pt.softplus(-value[..., 1]) - pt.log(-pt.expm1(-x))


@dataclass
class TipDensity:
    mean: np.ndarray  # (3,)
    cov: np.ndarray  # (3, 3)
    adequacy: dict

    @classmethod
    def from_draws(cls, delta_tip, gamma_tip, t_eff):
        z = _to_z(np.ravel(delta_tip), np.ravel(gamma_tip), np.ravel(t_eff))
        mean, cov = z.mean(axis=0), np.cov(z, rowvar=False)
        return cls(mean=mean, cov=cov, adequacy=cls._adequacy(z, mean, cov))

    @classmethod
    def around(cls, delta_tip, gamma_tip, t_eff, *, delta_sd=0.005, log_sd=0.2, seed=0, n=4000):
        """A calibration-like density at known values (simulation studies, benchmarks): delta_tip to ``delta_sd``
        meV, gamma_tip and T_eff to ``log_sd`` (relative, log-normal), from ``n`` seeded draws."""
        rng = np.random.default_rng(seed)
        return cls.from_draws(rng.normal(delta_tip, delta_sd, n), gamma_tip * np.exp(rng.normal(0, log_sd, n)),
                              t_eff * np.exp(rng.normal(0, log_sd, n)))

    @staticmethod
    def _adequacy(z, mean, cov):
        sd = np.sqrt(np.diag(cov))
        ks = [float(stats.kstest((z[:, i] - mean[i]) / sd[i], "norm").statistic) for i in range(3)]
        d2 = np.einsum("ni,ij,nj->n", z - mean, np.linalg.inv(cov), z - mean)
        ks_radius = float(stats.kstest(d2, stats.chi2(3).cdf).statistic)
        return {"ks_marginals": dict(zip(NAMES, ks)), "ks_mahalanobis": ks_radius,
                "adequate": bool(max(ks) < KS_ADEQUATE and ks_radius < KS_ADEQUATE)}

    def random_variables(self, gaps=None):
        """Inside a ``pm.Model``: the tip quantities drawn from this density (names as in every fit).

        ``gaps`` = (mu, sigma, nm): a spectrum's normal gap priors, sampled with the tip as the sums
        delta_tip + delta[k] (priors.gap_sums; the same prior) so the SIS gap ridge costs no divergences; the
        returned dict then holds that spectrum's ``delta`` too.
        """
        if gaps is None:
            z, out = pm.MvNormal("tip_z", mu=self.mean, cov=self.cov, transform=TipWidthCoordinate()), {}
        else:
            z, delta = gap_sums(self.mean, self.cov, *gaps, tip_name="tip_z", tip_transform=TipWidthCoordinate())
            out = {"delta": delta}
        return {**out, "delta_tip": pm.Deterministic("delta_tip", z[0]),
                "gamma_tip": pm.Deterministic("gamma_tip", GAMMA_FLOOR + RIDGE_SCALE * pm.math.softplus(z[1])),
                "T_eff": pm.Deterministic("T_eff", pm.math.exp(z[2]))}

    def upper_reach(self, name):
        i = NAMES.index(name)
        top = self.mean[i] + 5 * np.sqrt(self.cov[i, i])
        return float(np.exp(top)) if name == "T_eff" else float(top)

    def lower_reach(self, name):
        """A value gamma_tip practically never goes below under this density (sizes the grid step)."""
        i = NAMES.index(name)
        return float(_gamma(self.mean[i] - 5 * np.sqrt(self.cov[i, i])))

    def scaled(self, factor):
        """The same density with its covariance scaled by factor**2 (for studies of tip uncertainty)."""
        return TipDensity(self.mean.copy(), self.cov * factor**2, dict(self.adequacy))

    def to_dict(self):
        return {"names": list(NAMES), "space": SPACE,
                "mean": self.mean.tolist(), "cov": self.cov.tolist(), "adequacy": self.adequacy}

    @classmethod
    def from_dict(cls, d):
        if d.get("space", SPACE) != SPACE:
            raise InputError("this calibration stores its tip density in older coordinates: re-run calibrate-tip")
        try:
            return cls(np.asarray(d["mean"], float), np.asarray(d["cov"], float), d.get("adequacy", {}))
        except (KeyError, TypeError, ValueError):
            raise InputError("the tip density in this result is malformed: re-run calibrate-tip") from None
