"""The ZECP hypotheses `mzm`, `ysr`, `ysr2` (physics.md §2) as bound-state priors, written once for every tip.

Default priors, with their reasons (all with full support and no hard upper bound, so that prior-sensitivity
reweighting is valid, physics.md §6):

- ``eps`` (ysr, ysr2): HalfNormal(0.2 meV) for each state. ZECP splittings in Fe-based superconductors are tens to a
  few hundred µeV (the paper's eps runs 0.01-0.25 meV); 0.2 meV keeps sub-0.05 meV offsets plausible without
  excluding larger. ysr2 reports its two states sorted (eps[0] <= eps[1]).
- ``width``: 0.002 meV + LogNormal(log 0.02 meV, 1): a Lorentzian half width above the grid's floor; bound-state
  lines are typically 0.01-0.1 meV wide.
- weights: every state has a total weight w = u2 + v2 ~ LogNormal(log 0.3 meV, 1), an integrated weight of a peak a
  few times the normal-state DOS (0.3 meV at width 0.02 meV is 4.8x the normal-state DOS). An offset pair splits it
  by its log ratio r = ln(u2 / v2) ~ Normal(0, sqrt 2), independent of w: u2 = w sigmoid(r), v2 = w sigmoid(-r).
  sqrt 2 is the spread of ln(u2 / v2) for two iid LogNormal(., 1) weights.
- ``mzm``: eps = 0 exactly and the same w, split equally (at eps = 0 only the sum reaches the data).

Why (w, r) and not iid u2, v2: at eps = 0 the offset pair's likelihood is mzm's, whatever r, so with one prior on w
the hypotheses are nested exactly: ysr at eps = 0 *is* mzm, and ln B(ysr vs mzm) is about eps alone (the
Savage-Dickey ratio p(eps = 0 | data) / p(eps = 0)), not about two different peak-size priors. It also straightens
the sampler's path: on zero-energy data only w is measured, and the unmeasured split r is one coordinate instead of
a curved valley ln(u2 + v2) = const in (ln u2, ln v2); the Laplace-importance Pareto k of ysr on such data fell from
1.19-1.32 to 0.77-0.98 (session 10 note).

ysr and ysr2 sample *signed* energies x_k ~ Normal(0, 0.2 meV), unordered, and put u2_k at +x_k, v2_k at -x_k, which
for x_k < 0 is the pair at eps = |x_k| with u2 and v2 swapped; they report eps = |x_k| with the weights at +eps and
-eps, the states sorted by eps. Since r ~ Normal(0, .) is symmetric and the states are iid, the reported quantities
have exactly the priors above (the sorted pair the iid density times 2!, with no normalising term to get wrong).
Why: with eps >= 0 on a log scale, zero-energy data (eps piled uniformly on [0, 0.014 meV]) become an exponential
tail in ln eps that NUTS crawled down (ysr: R-hat 1.014, bulk ESS 308 from 4 x 1000 at target_accept 0.97, 24
divergences at 0.9; session 10 note); in x the same posterior is a smooth bump across 0 (ysr: 0 divergences at
0.9), and the likelihood is analytic in x there. The price: every flip (x_k, r_k) -> (-x_k, -r_k) and every
relabelling of the states maps the posterior onto itself, so offset data have 2^n n! mirror modes. Chains start
together at one of them and stay; the gates read the reported (folded, sorted) quantities; and every evidence
estimator that fits a proposal to the draws averages it over the mirror images (``state_coordinates``,
``evidence.Symmetrised``), or its ln Z would lack ln(2^n n!).

``log_prior_of(draws, hypothesis, factor)`` evaluates the contested parameters' log prior with every width scaled
by ``factor`` (0.5 = halved, 2 = doubled), for importance reweighting in the prior-sensitivity check.
"""

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import stats

from ..errors import InputError

HYPOTHESES = ("mzm", "ysr", "ysr2")
EPS_SIGMA = 0.2  # meV
WIDTH_FLOOR_SHIFT = 0.002  # meV
WIDTH_PRIOR = {"mu": float(np.log(0.02)), "sigma": 1.0}
WEIGHT_PRIOR = {"mu": float(np.log(0.15)), "sigma": 1.0}  # the series models' u2, v2 (inference/series.py)
STATE_WEIGHT_PRIOR = {"mu": float(np.log(0.3)), "sigma": 1.0}
N_STATES = {"mzm": 1, "ysr": 1, "ysr2": 2}
RATIO_SIGMA = float(np.sqrt(2.0))
SIGNED_EPS = "eps_signed"  # the offset states' sampled energies, of either sign (module docstring)
EPS_PRIOR_AT_ZERO = float(stats.halfnorm.pdf(0.0, scale=EPS_SIGMA))  # 1/meV: the Savage-Dickey denominator
# names the default priors above; studies store it with their records and refuse records made under other priors
PRIOR_VERSION = "2026-11-26: per-state total weight w and log ratio r"


def check(names):
    """Validate a list of hypothesis names (``--hypotheses mzm,ysr,ysr2``)."""
    names = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    bad = [n for n in names if n not in HYPOTHESES]
    if bad or not names:
        raise InputError(f"unknown hypothesis {', '.join(bad) or '(none)'}: choose from {', '.join(HYPOTHESES)}, "
                         "e.g. --hypotheses mzm,ysr,ysr2")
    if len(set(names)) != len(names):
        raise InputError("a hypothesis is listed twice in --hypotheses: give each once")
    return names


def _scaled(prior, scale):
    return {"mu": prior["mu"], "sigma": prior["sigma"] * scale}


def check_prior_scale(scale):
    """The factor on every contested prior width (1 = the defaults; the sensitivity check uses 0.5 and 2)."""
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise InputError(f"prior_scale={scale!r} is not a number: give a positive factor such as 0.5 or 2") from None
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"prior_scale={scale} must be a positive finite factor on the bound-state prior widths")
    return scale


def bound_state_variables(hypothesis, prior_scale=1.0):
    """Inside a ``pm.Model``: eps, width, u2, v2 vectors (over states) for ``hypothesis``, with the PyMC names
    eps_k / width_k / u2_k / v2_k that the summary turns into eps[k] etc. Returns (params, fixed).

    ``prior_scale`` multiplies every contested prior width (the HalfNormal scale of eps and the log-scale sigma
    of width, u2, v2 and w), exactly as :func:`log_prior_of`'s ``factor``: a fit at 0.5 or 2 is the re-run that
    the prior-sensitivity check needs when reweighting is unreliable."""
    n = N_STATES[hypothesis]
    f = check_prior_scale(prior_scale)
    width = WIDTH_FLOOR_SHIFT + pm.LogNormal("width_excess", **_scaled(WIDTH_PRIOR, f), shape=n)
    if hypothesis == "mzm":
        total = pm.LogNormal("w_0", **_scaled(STATE_WEIGHT_PRIOR, f))
        params = {"eps": pt.zeros(1), "width": width, "u2": pt.stack([0.5 * total]), "v2": pt.stack([0.5 * total])}
        pm.Deterministic("u2_0", 0.5 * total)
        pm.Deterministic("v2_0", 0.5 * total)
        reported = {"width": width}
        fixed = {"eps[0]": 0.0}
    else:
        # signed energies (module docstring): weight u2 = w sigmoid(r) at +x, v2 at -x, for x of either sign, the
        # states unordered; reported as eps = |x| with the weights at +eps and -eps, the states sorted by eps
        signed = pm.Normal(SIGNED_EPS, 0.0, EPS_SIGMA * f, shape=n)
        total = pm.LogNormal("w_all", **_scaled(STATE_WEIGHT_PRIOR, f), shape=n)
        ratio = pm.Normal("log_ratio_all", 0.0, RATIO_SIGMA * f, shape=n)
        u2, v2 = total * pm.math.sigmoid(ratio), total * pm.math.sigmoid(-ratio)
        params = {"eps": signed, "width": width, "u2": u2, "v2": v2}
        positive = pt.ge(signed, 0.0)
        eps = pt.abs(signed)
        order = pt.argsort(eps) if n > 1 else slice(None)
        reported = {"eps": eps[order], "width": width[order], "u2": pt.switch(positive, u2, v2)[order],
                    "v2": pt.switch(positive, v2, u2)[order]}
        for key in ("eps", "u2", "v2"):
            reported[key] = pm.Deterministic(f"{key}_all", reported[key])
            for k in range(n):
                pm.Deterministic(f"{key}_{k}", reported[key][k])
        fixed = {}
    reported["width"] = pm.Deterministic("width_all", reported["width"])
    for k in range(n):
        pm.Deterministic(f"width_{k}", reported["width"][k])
    return params, fixed


# the offset energies the mode search scans (meV): up to 3 prior sds, in steps of a quarter of the narrowest
# typical line (0.02 meV): a line shifted by more than its width leaves the log density no slope to follow
EPS_SCAN = np.arange(0.0025, 3 * EPS_SIGMA + 1e-9, 0.005)


def scan_grids(hypothesis):
    """{free RV name: grid} for the mode search's scan (sampling.scan_starts): the offset energies, if any (the
    positive half of the signed energies: the negative half is its mirror image)."""
    return {} if hypothesis == "mzm" else {SIGNED_EPS: EPS_SCAN}


def state_coordinates(model):
    """Where the signed-energy states sit in the model's flat unconstrained vector (``model.value_vars`` order, as
    the samplers and the evidence estimators use it): an (n_states, 4) index array, a row [x_k, r_k, w_k, width_k]
    per state, or None without signed energies. The model is invariant under (x_k, r_k) -> (-x_k, -r_k) for each
    state and under every permutation of the rows (``evidence.mirror_images``)."""
    from .sampling import flat_slices
    slices = flat_slices(model)
    if SIGNED_EPS not in slices:
        return None
    return np.stack([np.arange(slices[name].start, slices[name].stop)
                     for name in (SIGNED_EPS, "log_ratio_all", "w_all_log__", "width_excess_log__")], axis=1)


def parameter_names(hypothesis):
    """PyMC names of the bound-state quantities reported for ``hypothesis`` (canonical: eps[k] ...)."""
    n = N_STATES[hypothesis]
    keys = ("width", "u2", "v2") if hypothesis == "mzm" else ("eps", "width", "u2", "v2")
    return [f"{k}_{i}" for k in keys for i in range(n)]


def log_prior_of(draws, hypothesis, factor=1.0):
    """Log prior density of the contested bound-state parameters at each draw, every prior width times
    ``factor``. ``draws`` maps eps/width/u2/v2 (and w for mzm) to arrays (..., n_states) of constrained values;
    the density is of the sampled quantities (eps, width, w = u2 + v2, r = ln(u2 / v2)) at those values (the
    Jacobian to u2, v2 is the same at every factor and cancels in a ratio of priors)."""
    def lognormal(x, prior):
        return stats.lognorm.logpdf(x, s=prior["sigma"] * factor, scale=np.exp(prior["mu"]))

    width = np.asarray(draws["width"], float)
    total = lognormal(width - WIDTH_FLOOR_SHIFT, WIDTH_PRIOR).sum(axis=-1)
    if hypothesis == "mzm":
        return total + lognormal(np.asarray(draws["w"], float), STATE_WEIGHT_PRIOR).sum(axis=-1)
    eps = np.asarray(draws["eps"], float)
    total = total + stats.halfnorm.logpdf(eps, scale=EPS_SIGMA * factor).sum(axis=-1)
    if N_STATES[hypothesis] > 1:
        total = total + np.log(2.0)
    u2, v2 = np.asarray(draws["u2"], float), np.asarray(draws["v2"], float)
    total = total + lognormal(u2 + v2, STATE_WEIGHT_PRIOR).sum(axis=-1)
    return total + stats.norm.logpdf(np.log(u2 / v2), scale=RATIO_SIGMA * factor).sum(axis=-1)
