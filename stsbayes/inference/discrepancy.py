"""The correlated discrepancy term of the observation model (physics.md §3, misspecification).

A small systematic misfit (residuals just outside the coherence peaks) is correlated in bias; left to white noise
it moves ln L by tens. Two terms, both with a marginal sd ``discrepancy_scale`` (G units) and a correlation length
``discrepancy_length`` (mV), on top of the white noise sigma:

- ``ar1``: an Ornstein-Uhlenbeck (continuous AR(1)) process d(V), Cov(d_i, d_j) = scale² exp(-|V_i - V_j| / length),
  so consecutive points correlate by rho_i = exp(-|V_i - V_(i-1)| / length) (one rho on uniform bias steps; exact
  for any steps). The data are y = mu + d + e, e ~ N(0, sigma_i²); d is marginalised exactly by a scalar Kalman
  filter (:func:`ar1_filter`, a PyTensor scan that nutpie's numba backend runs), so the model gains two parameters,
  not one latent value per point: the evidence estimators (bridge sampling, SMC) need low dimension.
- ``gp``: a Gaussian process in bias with the squared-exponential (ExpQuad) kernel, scale² exp(-ΔV² / (2 length²)),
  added to the mean. Written as PyMC's Hilbert-space approximation (``pm.gp.HSGP``): m basis functions on
  [-c S, c S] about the window's centre (S its half width) with standard-normal coefficients, sized by
  :func:`hsgp_size` so the approximate covariance is within 1 % of scale² of the exact one over the window for
  every length the prior plausibly takes. It keeps m latent coefficients (dozens to a few hundred); it also works
  with Student-t noise, which the exact AR(1) marginal does not. "Plausible" lengths: the prior's ±3 sd (log scale
  for lognormal), but not below two bias steps, where a correlated term is white noise at the data's resolution;
  at lengths in the prior's far tails the approximation is smoother than ExpQuad (high frequencies cut), which only
  moves that variance to sigma.
"""

from functools import lru_cache

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from ..errors import InputError
from ..models.simulate import discrepancy_draw
from ..models.spec import Prior

# HSGP sizing (Riutort-Mayol, Bürkner, Andersen, Solin, Vehtari 2023, "Practical Hilbert space approximate Bayesian
# Gaussian processes", for ExpQuad): the box half width L = c S must exceed the window by a few lengths, and the
# frequencies pi m / (2 L) must resolve the shortest length. Measured here (tests/test_discrepancy.py): with
# c = max(1.5, 4 length_max / S) and m = ceil(1.75 c S / length_min) the covariance error over the window is
# <= 0.7 % of scale² at both ends of the length range (PyMC's own heuristic, 3.2 length_max / S, leaves 8 % at the
# long end for a ±3 mV window).
HSGP_C_MIN = 1.5
HSGP_C_PER_LENGTH = 4.0
HSGP_M_PER_FREQUENCY = 1.75
HSGP_M_MAX = 1000  # beyond this the prior's short lengths are better treated as white noise
HSGP_COVARIANCE_TOLERANCE = 0.01  # relative to scale², what the sizing guarantees over the window
REACH_SIGMAS = 3.0  # "plausible" lengths: the prior's central mass within 3 sd (in log space for lognormal)
MIN_STEPS_PER_LENGTH = 2.0  # lengths below two bias steps are white noise at the data's resolution


def ar1_rho(bias, length):
    """Correlation of each point with the previous one, rho_i = exp(-|V_i - V_(i-1)| / length); rho_0 = 0 (the first
    point starts from the stationary distribution). ``bias`` is a NumPy vector (mV), ``length`` a scalar or an
    array whose trailing axes are a batch (then the result is (n, *batch))."""
    steps = np.abs(np.diff(np.asarray(bias, float)))
    length = pt.as_tensor_variable(length)
    steps = pt.as_tensor_variable(steps).reshape((-1,) + (1,) * length.ndim)
    rho = pt.exp(-steps / length)
    return pt.concatenate([pt.zeros_like(rho[:1]), rho], axis=0)


def ar1_filter(resid, noise_var, scale, rho):
    """The exact Gaussian likelihood of ``resid`` = d + e, d an AR(1) with marginal sd ``scale`` and step
    correlations ``rho``, e independent with variances ``noise_var``, by a scalar Kalman filter.

    Points run along axis 0; any trailing axes are a batch (posterior draws). Returns (terms, mean, var): the
    one-step-ahead predictive densities ln p(r_i | r_1..r_(i-1)) and that predictive's mean and variance. The terms
    are *conditional* densities; they sum to the joint ln p(r) exactly (chain rule), which is what the model uses.
    """
    resid = pt.as_tensor_variable(resid)
    noise_var = pt.as_tensor_variable(noise_var) + pt.zeros_like(resid)
    q = pt.as_tensor_variable(scale) ** 2
    rho = pt.as_tensor_variable(rho) + pt.zeros_like(resid)

    def step(r, s2, rh, m, p, q):
        m_pred = rh * m
        p_pred = rh**2 * p + q * (1.0 - rh**2)  # the stationary variance is q at every point
        var = p_pred + s2
        innovation = r - m_pred
        gain = p_pred / var
        term = -0.5 * (np.log(2 * np.pi) + pt.log(var) + innovation**2 / var)
        return m_pred + gain * innovation, p_pred * s2 / var, term, m_pred, var

    start = pt.zeros_like(resid[0])
    (_, _, terms, mean, var) = pytensor.scan(
        step, sequences=[resid, noise_var, rho], outputs_info=[start, start + q, None, None, None],
        non_sequences=[q], return_updates=False, name="ar1_kalman")
    return terms, mean, var


def ar1_likelihood(name, mu, sigma, scale, length, observed, bias, dims):
    """The observed ``y`` with an AR(1) discrepancy marginalised (one multivariate node; its log density is the sum
    of :func:`ar1_filter`'s terms)."""
    bias = np.asarray(bias, float)
    n = len(bias)
    sigma_vec = pt.as_tensor_variable(sigma) * pt.ones(n)

    def logp(value, mu, sigma, scale, length):
        terms, _, _ = ar1_filter(value - mu, sigma**2, scale, ar1_rho(bias, length))
        return pt.sum(terms)

    def random(mu, sigma, scale, length, rng=None, size=None):
        batch = () if size is None else tuple(int(k) for k in np.atleast_1d(size))
        d = discrepancy_draw("ar1", bias, float(scale), float(length), rng, batch)
        return mu + d + sigma * rng.standard_normal(batch + (n,))

    return pm.CustomDist(name, mu, sigma_vec, scale, length, logp=logp, random=random,
                         signature="(n),(n),(),()->(n)", observed=observed, dims=dims)


def lower_reach(entry, floor):
    """The smallest length a spec entry plausibly takes: a fixed length itself, a prior's reach but at least
    ``floor``."""
    if isinstance(entry, (int, float)):
        return float(entry)
    if isinstance(entry, Prior):
        p = entry.params
        if entry.dist == "lognormal":
            return max(float(np.exp(p["mu"] - REACH_SIGMAS * p["sigma"])), floor)
        if entry.dist in ("normal", "truncnormal"):
            return max(p["mu"] - REACH_SIGMAS * p["sigma"], p.get("lower", -np.inf), floor)
        if entry.dist == "uniform":
            return max(p["lower"], floor)
    return floor


def upper_reach(entry):
    """The largest length a spec entry plausibly takes."""
    if isinstance(entry, (int, float)):
        return float(entry)
    p = entry.params
    if entry.dist == "lognormal":
        return float(np.exp(p["mu"] + REACH_SIGMAS * p["sigma"]))
    if entry.dist in ("normal", "truncnormal"):
        return min(p["mu"] + REACH_SIGMAS * p["sigma"], p.get("upper", np.inf))
    if entry.dist == "halfnormal":
        return REACH_SIGMAS * p["sigma"]
    if entry.dist == "uniform":
        return p["upper"]
    raise InputError(f"observation.discrepancy_length cannot have a {entry.dist} prior: use lognormal")


def hsgp_size(bias, length_min, length_max):
    """(m, c) of the HSGP for a bias window and a range of lengths (mV), as documented above."""
    half = (np.max(bias) - np.min(bias)) / 2.0
    c = max(HSGP_C_MIN, HSGP_C_PER_LENGTH * length_max / half)
    m = int(np.ceil(HSGP_M_PER_FREQUENCY * c * half / length_min))
    if m > HSGP_M_MAX:
        raise InputError(f"observation.discrepancy_length reaches down to {length_min:.3g} mV over a "
                         f"{2 * half:.3g} mV window, which needs {m} GP basis functions: give a length (or a "
                         "prior whose lengths stay) above a few bias steps, e.g. lognormal")
    return m, c


def hsgp_discrepancy(name, bias, scale, length, length_entry, dims):
    """f(V) ~ GP(0, scale² ExpQuad(length)) at ``bias`` by the HSGP; the deterministic ``name`` (one value per point),
    with standard-normal coefficients ``<name>_coeffs`` (non-centred: the sampler's coordinates do not stretch as
    scale -> 0)."""
    bias = np.asarray(bias, float)
    step = float(np.median(np.abs(np.diff(bias))))
    length_min = lower_reach(length_entry, MIN_STEPS_PER_LENGTH * step)
    length_max = max(upper_reach(length_entry), length_min)
    m, c = hsgp_size(bias, length_min, length_max)
    cov = scale**2 * pm.gp.cov.ExpQuad(1, ls=length)
    gp = pm.gp.HSGP(m=[m], c=c, cov_func=cov)
    phi, _ = gp.prior_linearized(bias[:, None])
    # the square root of the ExpQuad spectral density, scale (2 pi)^(1/4) sqrt(length) exp(-omega² length² / 4), in
    # closed form: PyMC's sqrt(psd) has an infinite derivative where exp(-omega² length² / 2) underflows to 0 (long
    # lengths, high frequencies), which turns gradients into NaN
    omega = np.pi * np.arange(1, m + 1) / (2.0 * float(np.asarray(gp.L.eval()).ravel()[0]))
    sqrt_psd = scale * (2 * np.pi) ** 0.25 * pt.sqrt(length) * pt.exp(-((omega * length) ** 2) / 4.0)
    coeffs = pm.Normal(f"{name}_coeffs", 0.0, 1.0, size=m)
    return pm.Deterministic(name, phi @ (coeffs * sqrt_psd), dims=dims)


def check(observation):
    """The discrepancy kind of a fit's observation table; bad combinations as sentences."""
    kind = observation.get("discrepancy", "none")
    if kind == "ar1" and observation.get("noise", "normal") == "student_t":
        raise InputError("observation.discrepancy = \"ar1\" has an exact likelihood only with noise = \"normal\": "
                         "use discrepancy = \"gp\" with Student-t noise")
    return kind


@lru_cache(maxsize=8)
def _ar1_function(bias_bytes):
    bias = np.frombuffer(bias_bytes)
    r, v = pt.dmatrix("resid"), pt.dmatrix("noise_var")
    s, ell = pt.dvector("scale"), pt.dvector("length")
    return pytensor.function([r, v, s, ell], list(ar1_filter(r, v, s, ar1_rho(bias, ell))), mode="FAST_COMPILE")


def ar1_conditionals(bias, resid, noise_var, scale, length):
    """:func:`ar1_filter` evaluated on posterior draws (NumPy in, NumPy out): ``resid`` and ``noise_var`` are
    (draws, n), ``scale`` and ``length`` (draws,). Returns the one-step-ahead log densities, predictive means and
    variances, each (draws, n)."""
    fn = _ar1_function(np.ascontiguousarray(bias, dtype=float).tobytes())
    out = fn(np.ascontiguousarray(np.asarray(resid, float).T), np.ascontiguousarray(np.asarray(noise_var, float).T),
             np.asarray(scale, float), np.asarray(length, float))
    return tuple(np.asarray(x).T for x in out)
