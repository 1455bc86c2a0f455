"""Default priors, and turning a spec entry (number, prior table, or nothing) into a model quantity.

Defaults, with their reasons (every one can be replaced in the spec):

- ``gamma``, ``gamma_tip``, ``width``: 0.002 meV + LogNormal(log 0.01, 1). Real Dynes broadenings span
  0.002-0.1 meV. The shift keeps the sampler above a floor where the grid's accuracy is guaranteed (physics.md §4
  asks for floors of at least 0.001 meV); 0.002 lets the grid step be 0.001 meV, half the cost of the 0.0005 meV
  that 0.001 would need. A user prior on these is truncated at 0.001 meV, and the grid then refines to match.
- SIS widths with both defaults (a calibration): the data see only the sums gamma_tip + gamma[k] (physics.md,
  identifiability), so the prior is written in those terms: the excess SIS widths w[k] = gamma_tip + gamma[k] -
  0.004 ~ LogNormal(log 0.02, 1) and the tip's share f ~ Beta(3, 3) of the narrowest one (a smooth minimum,
  (sum w^-4)^(-1/4)): gamma_tip = 0.002 + f m, gamma[k] = 0.002 + w[k] - f m. Sampled as (log w, logit f) the
  posterior has no ridge: w is sharp, f follows its prior (the split is not in the data, and says so).
- ``weight``: Dirichlet(2, ..., 2): any mix of the gaps, mildly away from a gap that vanishes (which would make its
  delta unidentified).
- ``T_eff``: T_bath + HalfNormal(0.3 K): the junction is at least as hot as the bath (physics.md §3), and at
  mK baths T_eff is typically 0.2-0.5 K.
- ``g_n``: LogNormal(log s, 0.5) with s the conductance scale of the data's outer 20 % (LogNormal(0, 0.2) for
  normalised data): positive, scale-free.
- ``bias_offset``: Normal(0, 0.02 mV): real offsets are tens of µV (physics.md §3).
- ``b0``: Normal(0, 0.05 s); ``b1``: Normal(0, 0.02 /mV): a small linear background.
- ``sigma``: HalfNormal(0.1 s); with a per-point sigma from n sweeps, ``sigma_scale`` ~ LogNormal(0, 0.5) multiplies
  it (a sigma from 3 sweeps is itself uncertain by ~50 %).
- a fitted modulation: LogNormal(log recorded, 0.25) above the 0.005 mV rms floor.
- ``discrepancy_scale`` (``discrepancy = "ar1"|"gp"``): HalfNormal(0.05 s). A discrepancy is a small systematic
  misfit, a few % of the normal-state conductance; larger structure is missing physics that the term must not absorb
  (a GP of that size would eat a gap). The half-normal keeps mass at 0, so "no discrepancy" stays inside the prior.
- ``discrepancy_length``: LogNormal(log 0.3 mV, 0.5), 95 % in 0.11-0.8 mV: residual structure beside the coherence
  peaks is as wide as the peaks and their shoulders (tenths of a mV). Much shorter is white noise at the data's
  resolution (confounded with sigma); much longer competes with the gaps themselves and with the b0/b1 background.
- Pb(111) reference (``--reference pb``): delta = Normal([1.26, 1.41], 0.05) ordered, delta_tip = Normal(1.37, 0.1):
  literature Pb gaps and the paper's tip gap (physics.md §7).
"""

import warnings

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.transforms import ordered
from pymc.logprob.transforms import Transform

from ..errors import InputError
from ..models.constants import GAMMA_FLOOR
from ..models.spec import Fitted, Prior

# drawing a tip-shifted width from its prior (tip_shifted_lognormal's numpy `random`) runs in numba's object mode;
# that is correct and only slower, so PyTensor's notice of it is noise to a user
warnings.filterwarnings("ignore", message="Numba will use object mode to run CustomDist", category=UserWarning)

BROADENING_PRIOR = {"mu": float(np.log(0.01)), "sigma": 1.0}
DEFAULT_BROADENING_FLOOR = 0.002  # meV
RIDGE_SCALE = 0.002  # meV: below it the SIS width coordinates turn logarithmic (ScaledSoftplus)
WIDTH_COORDINATE_SCALE = 0.0002  # meV: the sampler's coordinates of SIS widths are linear above it (ScaledSoftplus)
T_EXCESS_SIGMA = 0.3  # K
OFFSET_SIGMA = 0.02  # mV
DISCREPANCY_SCALE_FRACTION = 0.05  # of the data's conductance scale s
DISCREPANCY_LENGTH_PRIOR = {"mu": float(np.log(0.3)), "sigma": 0.5}  # mV
PB_REFERENCE = {"delta": [1.26, 1.41], "delta_sigma": 0.05, "delta_tip": 1.37, "delta_tip_sigma": 0.1}


def softplus_inv(x):
    """The inverse of softplus, log(exp(x) - 1), written to stay finite for small and large x."""
    return x + pt.log(-pt.expm1(-x))


class ScaledSoftplus(Transform):
    """Positive values x = c·softplus(y): logarithmic below the scale c, linear above it.

    The SIS width ridge (only gamma_tip + gamma[k] reaches the data, physics.md identifiability) is a straight line
    in (gamma_tip, gamma[k]) but a curved one in the log coordinates PyMC uses by default; a curved ridge forces
    NUTS into tiny steps and leaves chains unmixed. In these coordinates it is straight wherever both widths are
    above c. The prior density is unchanged (the Jacobian is added); only the sampler's coordinates differ.
    """

    name = "scaled_softplus"
    ndim_supp = 0

    def __init__(self, scale):
        self.scale = float(scale)

    def backward(self, value, *inputs):
        return self.scale * pt.softplus(value)

    def forward(self, value, *inputs):
        return softplus_inv(value / self.scale)

    def log_jac_det(self, value, *inputs):
        return np.log(self.scale) - pt.softplus(-value)


class TipShifted(Transform):
    """The sampler's coordinate of an SIS sample width's excess x (gamma = floor + x) given the tip's width g_tip:
    u with x = c' softplus((u - g_tip) / c'), c' = WIDTH_COORDINATE_SCALE, so u is x + g_tip above c'.

    Only g_tip + gamma reaches an SIS spectrum (physics.md, identifiability); in u that sum is a coordinate, so the
    ridge is straight whatever coordinates the tip's width is sampled in (a joint fit's share of the reference
    sums, a calibrated density's softplus), not only where both are linear. Near the floor u turns logarithmic, so
    there is no hard wall. The prior is unchanged (the Jacobian is added). g_tip reaches the transform as the last
    input of the random variable (:func:`tip_shifted_lognormal`).
    """

    name = "tip_shifted"
    ndim_supp = 0

    def backward(self, value, *inputs):
        return WIDTH_COORDINATE_SCALE * pt.softplus((value - inputs[-1]) / WIDTH_COORDINATE_SCALE)

    def forward(self, value, *inputs):
        return inputs[-1] + WIDTH_COORDINATE_SCALE * softplus_inv(value / WIDTH_COORDINATE_SCALE)

    def log_jac_det(self, value, *inputs):
        return -pt.softplus(-(value - inputs[-1]) / WIDTH_COORDINATE_SCALE)


def tip_shifted_lognormal(name, mu, sigma, tip_width, shape=None):
    """A LogNormal(mu, sigma) excess sampled in :class:`TipShifted` coordinates against ``tip_width``."""
    def logp(value, mu, sigma, tip_width):
        return pm.logp(pm.LogNormal.dist(mu=mu, sigma=sigma), value)

    def random(mu, sigma, tip_width, rng=None, size=None):
        return rng.lognormal(mu, sigma, size=size)

    return pm.CustomDist(name, mu, sigma, tip_width, logp=logp, random=random, transform=TipShifted(),
                         support_point=lambda rv, size, mu, sigma, tip_width: pt.full_like(rv, pt.exp(mu)),
                         **({"shape": shape} if shape is not None else {}))


def distribution(name, prior, *, shape=None, transform=None, lower=None):
    """A PyMC random variable from a spec :class:`Prior` (PyMC's parameter names)."""
    p = dict(prior.params)
    kwargs = {"shape": shape} if shape is not None else {}
    if transform is not None:
        kwargs["transform"] = transform
    dist = {"normal": pm.Normal, "lognormal": pm.LogNormal, "halfnormal": pm.HalfNormal, "uniform": pm.Uniform,
            "beta": pm.Beta, "dirichlet": pm.Dirichlet, "truncnormal": pm.TruncatedNormal}[prior.dist]
    if lower is not None:
        # truncate at a floor (gamma, width): the grid's accuracy holds only above it
        if prior.dist == "truncnormal":
            p["lower"] = max(p.get("lower", -np.inf), lower)
        elif prior.dist == "uniform":
            if p["lower"] < lower:
                raise InputError(f"the prior of {name} reaches below the floor {lower}: raise its lower bound")
        else:
            return pm.Truncated(name, dist.dist(**p), lower=lower, **kwargs)
    return dist(name, **p, **kwargs)


def broadening(name, entry, *, shape=None, ridge=False):
    """gamma / gamma_tip / width: a number (fixed), a prior (truncated at the floor), or the default.

    ``ridge``: the broadening is one of an SIS pair whose sum is all the data see; sample it in
    :class:`ScaledSoftplus` coordinates (same prior) so the ridge is straight. A tensor ``ridge`` is the tip's
    width: the default excess is then sampled in :class:`TipShifted` coordinates, where the sum is a coordinate.
    """
    if isinstance(entry, (int, float)):
        return pt.as_tensor_variable(float(entry))
    if isinstance(entry, list):
        if all(isinstance(x, float) for x in entry):
            return pt.as_tensor_variable(np.asarray(entry, dtype=float))
        # one prior per element: the elements are sampled as name_i, the vector keeps its canonical name
        return pm.Deterministic(name, pt.stack([broadening(f"{name}_{i}", x, ridge=ridge)
                                                for i, x in enumerate(entry)]))
    if isinstance(entry, Prior):
        return distribution(name, entry, shape=shape, lower=GAMMA_FLOOR)
    if ridge is not True and ridge is not False:
        excess = tip_shifted_lognormal(f"{name}_excess", **BROADENING_PRIOR, tip_width=ridge, shape=shape)
        return pm.Deterministic(name, DEFAULT_BROADENING_FLOOR + excess)
    kwargs = {"transform": ScaledSoftplus(WIDTH_COORDINATE_SCALE), "default_transform": None} if ridge else {}
    excess = pm.LogNormal(f"{name}_excess", **BROADENING_PRIOR, shape=shape, **kwargs)
    return pm.Deterministic(name, DEFAULT_BROADENING_FLOOR + excess)


SIS_WIDTH_PRIOR = {"mu": float(np.log(0.02)), "sigma": 1.0}
TIP_SHARE_PRIOR = {"alpha": 3.0, "beta": 3.0}
SOFTMIN_POWER = 4.0


def _plain(name):
    return name


def sis_widths(n_gaps, nm=_plain):
    """gamma_tip and the sample's gamma[k] from the sum/split prior above (both defaults, superconducting tip).
    ``nm`` names the sample's variables (a joint fit prefixes them with the spectrum's label)."""
    excess = pm.LogNormal(nm("gamma_sum_excess"), **SIS_WIDTH_PRIOR, shape=n_gaps)
    share = pm.Beta(nm("gamma_tip_share"), **TIP_SHARE_PRIOR)
    floor = DEFAULT_BROADENING_FLOOR
    if n_gaps == 1:
        smallest = excess[0]
    else:
        smallest = pt.sum(excess ** -SOFTMIN_POWER) ** (-1.0 / SOFTMIN_POWER)
    tip = floor + share * smallest
    return pm.Deterministic("gamma_tip", tip), pm.Deterministic(nm("gamma"), floor + excess - share * smallest)


def sis_gaps(tip_mu, tip_sigma, mu, sigma, nm=_plain):
    """delta_tip and the ordered sample gaps of an SIS calibration, sampled as the sums S = delta_tip + delta[k].

    The prior is exactly the documented one (delta_tip ~ Normal(tip_mu, tip_sigma), delta ~ Normal(mu, sigma)
    ordered), factorised as p(S) p(delta_tip | S) (see :func:`gap_sums`).
    """
    return gap_sums([tip_mu], [[tip_sigma**2]], mu, sigma, nm, tip_name="delta_tip")


def gap_sums(tip_mean, tip_cov, mu, sigma, nm=_plain, tip_name="delta_tip", tip_transform=None):
    """A normal tip vector t (t[0] = delta_tip) and ordered normal sample gaps, sampled as S = delta_tip + delta[k]
    and t given S: returns (t, delta).

    The prior is exactly t ~ N(tip_mean, tip_cov), delta ~ Normal(mu, sigma) ordered, independent, factorised as
    p(S) p(t | S): (t, S) is jointly normal, the map (t, delta) -> (t, S) has unit Jacobian, and delta[0] < delta[1]
    iff S[0] < S[1]. The data of an SIS spectrum fix S sharply and leave t | S near its prior, so the gap ridge
    (physics.md, identifiability) becomes independent directions NUTS need not learn. A one-element t is the
    scalar delta_tip of a calibration; a three-element t is a calibrated tip's density (tip.TipDensity).
    """
    tip_mean, tip_cov = np.atleast_1d(np.asarray(tip_mean, float)), np.atleast_2d(np.asarray(tip_cov, float))
    mu, sigma = np.asarray(mu, float), np.asarray(sigma, float) * np.ones(len(mu))
    n = len(mu)
    cov_s = tip_cov[0, 0] * np.ones((n, n)) + np.diag(sigma**2)
    ones_w = np.linalg.solve(cov_s, np.ones(n))  # Cov(S)^-1 1
    gain = np.outer(tip_cov[:, 0], ones_w)  # Cov(t, S) Cov(S)^-1, Cov(t, S) = tip_cov[:, 0] 1^T
    cond_cov = tip_cov - ones_w.sum() * np.outer(tip_cov[:, 0], tip_cov[:, 0])
    mean_s = tip_mean[0] + mu
    sums = pm.MvNormal(nm("delta_sum"), mu=mean_s, cov=cov_s, initval=mean_s, **_ordered(mu))
    cond_mean = tip_mean + pt.dot(gain, sums - mean_s)
    if len(tip_mean) == 1:
        tip = pm.Normal(tip_name, mu=cond_mean[0], sigma=float(np.sqrt(cond_cov[0, 0])))
        first = tip
    else:
        tip = pm.MvNormal(tip_name, mu=cond_mean, cov=cond_cov,
                          **({} if tip_transform is None else {"transform": tip_transform}))
        first = tip[0]
    return tip, pm.Deterministic(nm("delta"), sums - first)


def broadening_floor(entry):
    """The smallest value a broadening can take under its spec entry (sizes the grid step)."""
    if isinstance(entry, (int, float)):
        return float(entry)
    if isinstance(entry, list):
        return min(broadening_floor(x) for x in entry)
    if isinstance(entry, Prior):
        return max(GAMMA_FLOOR, entry.params.get("lower", GAMMA_FLOOR))
    return DEFAULT_BROADENING_FLOOR


def scalar(name, entry, default):
    """A number (fixed), a prior, or ``default()`` when absent."""
    if entry is None:
        return default()
    if isinstance(entry, (int, float)):
        return pt.as_tensor_variable(float(entry))
    if isinstance(entry, Fitted):
        raise InputError(f"{name}: `fit = true` is only for the modulation amplitude; give a prior instead")
    return distribution(name, entry)


def _ordered(mu):
    """The ordered transform for several gaps (no relabelling modes); one gap keeps PyMC's default."""
    return {"transform": ordered} if len(mu) > 1 else {}


def normal_gaps(entry, reference=None):
    """(mu, sigma) of a gap vector with normal priors (the spec's or the reference's defaults), else None."""
    if entry is None:
        if reference is None:
            return None
        return np.asarray(reference["delta"], float), np.asarray(reference["delta_sigma"], float) * np.ones(
            len(reference["delta"]))
    if isinstance(entry, list) and entry and all(isinstance(x, Prior) and x.dist == "normal" for x in entry):
        mu = np.array([x.params["mu"] for x in entry])
        if np.any(np.diff(mu) <= 0):
            raise InputError("the prior means of sample.delta must be ascending (ordered gaps)")
        return mu, np.array([x.params["sigma"] for x in entry])
    return None


def gaps(name, entry, *, reference=None):
    """Ordered gap vector. ``entry``: a list of numbers/priors, or absent with a reference (Pb)."""
    if entry is None and reference is None:
        raise InputError(f"sample.delta is missing: give the gaps as priors, e.g. delta = [{{dist = \"normal\", "
                         "mu = 1.3, sigma = 0.1}], or use --reference pb")
    if isinstance(entry, Prior):
        raise InputError("sample.delta must list one entry per gap (a prior each), not one prior for the vector")
    normal = normal_gaps(entry, reference)
    if normal is not None:
        mu, sd = normal
        return pm.Normal(name, mu=mu, sigma=sd, shape=len(mu), initval=mu, **_ordered(mu))
    if all(isinstance(x, float) for x in entry):
        return pt.as_tensor_variable(np.asarray(entry, dtype=float))
    raise InputError("sample.delta: give all gaps as numbers or all as normal priors (ordered gaps need a joint "
                     "parametrisation)")


def weights(name, entry, n):
    if n == 1:
        return pt.as_tensor_variable(np.ones(1))
    if entry is None:
        return pm.Dirichlet(name, a=2.0 * np.ones(n))
    if isinstance(entry, Prior):
        if entry.dist != "dirichlet" or len(entry.params["a"]) != n:
            raise InputError(f"sample.weight needs a dirichlet prior with {n} concentrations")
        return pm.Dirichlet(name, a=np.asarray(entry.params["a"]))
    if all(isinstance(x, float) for x in entry):
        return pt.as_tensor_variable(np.asarray(entry, dtype=float))
    raise InputError("sample.weight: give numbers that sum to 1, or one dirichlet prior")


def discrepancy_scale(name, entry, scale):
    """Marginal sd of the correlated discrepancy (G units): a number, a prior, or HalfNormal(0.05 s)."""
    return scalar(name, entry, lambda: pm.HalfNormal(name, DISCREPANCY_SCALE_FRACTION * scale))


def discrepancy_length(name, entry):
    """Correlation length of the discrepancy (mV): a number, a prior, or LogNormal(log 0.3, 0.5)."""
    return scalar(name, entry, lambda: pm.LogNormal(name, **DISCREPANCY_LENGTH_PRIOR))


def discrepancy_length_entry(entry):
    """The spec entry of the length with the default filled in (sizes the GP approximation)."""
    return Prior("lognormal", dict(DISCREPANCY_LENGTH_PRIOR)) if entry is None else entry
