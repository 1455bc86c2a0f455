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

ysr and ysr2 sample their states as one variable (``STATE_LAW``, an (n, 4) variable of rows (eps_k, r_k, w_k,
width_excess_k) with the priors above, iid over states) in the coordinates of :class:`StateMixture`: per state, the
mean m = eps tanh(r/2) and spread s = eps sech(r/2) of the pair's two line energies, which are what the data measure;
for ysr2, the two states' total weight, weight split, and the weighted mean and spread of each state coordinate,
which are what a peak made of two states measures. The states are unordered (iid) and reported sorted by eps, so
the sorted pair has the iid density times 2!, with no normalising term to get wrong.
Why: with eps >= 0 on a log scale, zero-energy data (eps piled uniformly on [0, 0.014 meV]) become an exponential
tail in ln eps that NUTS crawled down (ysr: R-hat 1.014, bulk ESS 308 from 4 x 1000 at target_accept 0.97, 24
divergences at 0.9; session 10 note), and r is free where eps is small but must vanish as eps grows (a funnel).
Signed energies x ~ Normal(0, 0.2) (sessions 10-14) made the first a smooth bump across 0 but the second a cross
(x tanh(r/2) = 0: the x axis or the r axis), slow to cross (ysr2 on zero-energy data: bulk ESS 17, session 13),
and gave 2^n mirror images (x_k, r_k) -> (-x_k, -r_k) per mode. In (m, u) neither is left. On zero-energy data
ysr2's two states share one peak and split its weight anywhere along a valley whose far ends loosen the minor
state (a funnel); in per-state coordinates the split mixed with bulk ESS 17 from 4 x 500, in StateMixture's 347-638
(session 16's toy, two runs; the whole fit: R-hat 1.071 -> 1.012-1.023, bulk ESS 38 -> 249-295, SMC and bridge
ln Z 15.6 apart -> 0.05-1.0; what is left slowest is the lower state's energy piled against 0).
Relabelling ysr2's states still maps the posterior onto itself (a sign flip of the mixture's second row), so offset
data have 2 mirror modes. Chains start together at one of them and stay; the gates read the reported (sorted)
quantities; and every evidence estimator that fits a proposal to the draws averages it over the relabellings
(``state_coordinates``, ``evidence.Symmetrised``), or its ln Z would lack ln 2.

``log_prior_of(draws, hypothesis, factor)`` evaluates the contested parameters' log prior with every width scaled
by ``factor`` (0.5 = halved, 2 = doubled), for importance reweighting in the prior-sensitivity check.
"""

import math

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform
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
    if hypothesis == "mzm":
        width = WIDTH_FLOOR_SHIFT + pm.LogNormal("width_excess", **_scaled(WIDTH_PRIOR, f), shape=n)
        total = pm.LogNormal("w_0", **_scaled(STATE_WEIGHT_PRIOR, f))
        params = {"eps": pt.zeros(1), "width": width, "u2": pt.stack([0.5 * total]), "v2": pt.stack([0.5 * total])}
        pm.Deterministic("u2_0", 0.5 * total)
        pm.Deterministic("v2_0", 0.5 * total)
        reported = {"width": width}
        fixed = {"eps[0]": 0.0}
    else:
        # each state's energy, log ratio, total weight and width, sampled jointly in the coordinates of
        # StateMixture (module docstring): u2 = w sigmoid(r) at +eps, v2 at -eps; reported sorted by eps
        law = state_law(n, f)
        eps, ratio, total = law[:, 0], law[:, 1], law[:, 2]
        width = WIDTH_FLOOR_SHIFT + law[:, 3]
        u2, v2 = total * pm.math.sigmoid(ratio), total * pm.math.sigmoid(-ratio)
        params = {"eps": eps, "width": width, "u2": u2, "v2": v2}
        order = pt.argsort(eps) if n > 1 else slice(None)
        reported = {"eps": eps[order], "width": width[order], "u2": u2[order], "v2": v2[order]}
        for key in ("eps", "u2", "v2"):
            reported[key] = pm.Deterministic(f"{key}_all", reported[key])
            for k in range(n):
                pm.Deterministic(f"{key}_{k}", reported[key][k])
        fixed = {}
    reported["width"] = pm.Deterministic("width_all", reported["width"])
    for k in range(n):
        pm.Deterministic(f"width_{k}", reported["width"][k])
    return params, fixed


SPREAD_SCALE = 0.005  # meV: StateMixture's spread coordinate is logarithmic below it and linear above


def _log_cosh(x):
    a = pt.abs(x)
    return a + pt.log1p(pt.exp(-2.0 * a)) - np.log(2.0)


def pair_moments(eps, ratio):
    """The sampling coordinates (m, u) of a pair at ±eps (eps >= 0) with weights sigmoid(±ratio) at ±eps: its lines'
    mean energy m = eps tanh(r/2) and their spread s = eps sech(r/2) as u, s = s0 softplus(u) (s0 =
    ``SPREAD_SCALE``). See :class:`StateMixture`."""
    half = ratio / 2.0
    x = pt.exp(pt.log(eps) - _log_cosh(half)) / SPREAD_SCALE  # s / s0
    return eps * pt.tanh(half), x + pt.log(-pt.expm1(-x))  # softplus⁻¹(x), stable for every x > 0


def pair_from_moments(m, u):
    """The inverse of :func:`pair_moments`: (eps, ratio, log |d(eps, ratio) / d(m, u)|), with eps = sqrt(m² + s²),
    r = 2 asinh(m / s) and the Jacobian (2 / s) s0 sigmoid(u)."""
    s = SPREAD_SCALE * pt.softplus(u)
    return (pt.sqrt(m ** 2 + s ** 2), 2.0 * pt.arcsinh(m / s),
            np.log(2.0 * SPREAD_SCALE) - pt.log(s) - pt.softplus(-u))


def _log_two_cosh(x):
    return _log_cosh(x) + np.log(2.0)


class StateMixture(Transform):
    """Sampling coordinates of the offset states, one row (eps, r, w, width_excess) each -> the unconstrained rows.

    **One state** (ysr): the row becomes (m, u, ln w, ln width_excess), where m = eps tanh(r/2) is the mean of the pair's
    two line energies (weights sigmoid(±r) at ±eps) and s = eps sech(r/2) their spread, sampled as u with
    s = s0 softplus(u). Why: the data measure m at first order (an asymmetric pair moves the peak's centroid) and s
    only together with the width. In (eps, r) a state near zero energy is a funnel: r is free where eps is small and
    must vanish as eps grows; in signed energies (x, r) the same posterior is a cross whose arms NUTS moves between
    slowly (ysr2 on zero-energy data: bulk ESS 17 for one energy from 4 x 200, session 13). s is logarithmic near 0
    and linear above s0: in ln s the posterior's upper edge, where the pair starts to resolve into two lines, is a
    wall too steep for the step size (session 15, the field series). The map is one to one, so there are no mirror
    images (x, r) -> (-x, -r) to average.

    **Two states** (ysr2): with each state's row z_k = (m_k, u_k, ln w_k, ln width_excess_k) as above, the coordinates
    are what a peak made of two states measures: the total weight a = ln(w_0 + w_1), the split d = ln(w_0 / w_1), and
    for each of m, u, ln width the weighted mean z̄ = f z_0 + (1 - f) z_1 (f = w_0 / (w_0 + w_1)) and the weighted
    spread Δ = (z_0 - z_1) sqrt(f (1 - f)). Rows: (m̄, ū, a, ln width̄) and (Δm, Δu, d, Δln width).
    Why: on zero-energy data two states share one peak; the data fix its total weight, its mean position and width
    and (to second order) the spread of the two states about them, but hardly the split. In per-state coordinates
    the split is a curved valley along which the minor state's energy and width loosen as its share shrinks (their
    sd grows as 1 / sqrt(f)), a funnel: d mixed with bulk ESS 17 from 4 x 500 (session 15's toy). Here that scaling is
    the coordinate's own. Swapping the states maps (row 0, row 1) to (row 0, -row 1): the relabelling is a sign flip
    (``evidence.mirror_images``). Inverse: z_0 = z̄ + e^(-d/2) Δ, z_1 = z̄ - e^(d/2) Δ, ln w_0 = a - softplus(-d),
    ln w_1 = a - softplus(d); its log Jacobian adds 3 ln(2 cosh(d/2)) to the per-state ones.
    """

    name = "mixture"  # no underscore: PyMC reads the variable's name back off its value's (states_mixture__)

    def __init__(self, n, mixed=True):
        if n not in (1, 2):
            raise ValueError(f"StateMixture is written for one or two states, not {n}")
        # mixed=False: every state in its own row's coordinates (the mode search's, :func:`search_model`)
        self.n, self.mixed = n, mixed and n == 2
        if not self.mixed:
            self.name = "rows"

    def forward(self, value, *inputs):
        m, u = pair_moments(value[..., 0], value[..., 1])
        z = [m, u, pt.log(value[..., 2]), pt.log(value[..., 3])]  # each (..., n)
        if not self.mixed:
            return pt.stack(z, axis=-1)
        d = z[2][..., 0] - z[2][..., 1]
        f = pm.math.sigmoid(d)
        scale = pt.exp(-_log_two_cosh(d / 2.0))  # sqrt(f (1 - f))
        mean = [f * c[..., 0] + (1.0 - f) * c[..., 1] for c in z]
        spread = [(c[..., 0] - c[..., 1]) * scale for c in z]
        mean[2], spread[2] = pt.logaddexp(z[2][..., 0], z[2][..., 1]), d
        return pt.stack([pt.stack(mean, axis=-1), pt.stack(spread, axis=-1)], axis=-2)

    def _rows(self, value):
        """The per-state rows z_k = (m, u, ln w, ln width_excess), (..., n, 4), and the extra log Jacobian."""
        if not self.mixed:
            return value, 0.0
        mean, spread = value[..., 0, :], value[..., 1, :]
        a, d = mean[..., 2], spread[..., 2]
        first, second = mean + pt.exp(-d / 2.0)[..., None] * spread, mean - pt.exp(d / 2.0)[..., None] * spread
        first = pt.set_subtensor(first[..., 2], a - pt.softplus(-d))
        second = pt.set_subtensor(second[..., 2], a - pt.softplus(d))
        return pt.stack([first, second], axis=-2), 3.0 * _log_two_cosh(d / 2.0)

    def backward(self, value, *inputs):
        z, _ = self._rows(value)
        eps, ratio, _ = pair_from_moments(z[..., 0], z[..., 1])
        return pt.stack([eps, ratio, pt.exp(z[..., 2]), pt.exp(z[..., 3])], axis=-1)

    def log_jac_det(self, value, *inputs):
        z, extra = self._rows(value)
        return (pair_from_moments(z[..., 0], z[..., 1])[2] + z[..., 2] + z[..., 3]).sum(axis=-1) + extra


STATE_LAW = "states"  # the offset states' joint variable: one row (eps, r, w, width_excess) per state
STATE_ROW = ("eps", "log_ratio", "w", "width_excess")


def independent_columns(name, columns, start, transform, rows=None):
    """Inside the model: a variable whose last axis holds independent columns, ``columns`` a list of (PyMC
    distribution, its parameters as floats), optionally ``rows`` iid rows of them, sampled through ``transform``
    (a joint one: why the columns are one variable), starting at ``start`` (a value per column)."""
    def dists(size=None):
        return [dist.dist(**params, size=size) for dist, params in columns]

    def logp(value):
        return sum(pm.logp(d, value[..., k]) for k, d in enumerate(dists()))

    return pm.CustomDist(name, dist=lambda size: pt.stack(dists(size), axis=-1), logp=logp,
                         support_point=lambda rv, size: pt.as_tensor(np.asarray(start, float)) + pt.zeros_like(rv),
                         signature=f"->({len(columns)})", shape=(len(columns),) if rows is None else (rows, len(columns)),
                         default_transform=transform)


def state_law(n, factor):
    """Inside the model: an (n, 4) variable of rows (eps_k, r_k, w_k, width_excess_k), independently
    eps ~ HalfNormal(EPS_SIGMA), r ~ Normal(0, RATIO_SIGMA), w ~ STATE_WEIGHT_PRIOR and width_excess ~ WIDTH_PRIOR
    (log-normal; every width times ``factor``), iid over states and sampled in :class:`StateMixture` coordinates."""
    columns = [(pm.HalfNormal, {"sigma": EPS_SIGMA * factor}), (pm.Normal, {"mu": 0.0, "sigma": RATIO_SIGMA * factor}),
               (pm.LogNormal, _scaled(STATE_WEIGHT_PRIOR, factor)), (pm.LogNormal, _scaled(WIDTH_PRIOR, factor))]
    # the mode search's scan starts here, and where it settles depends on the weights and widths it scans against:
    # the log-normals' means (PyMC's support points) find the paper's pairs where their medians did not (search_model)
    start = [0.5 * EPS_SIGMA * factor, 0.0, *(math.exp(c[1]["mu"] + c[1]["sigma"] ** 2 / 2) for c in columns[2:])]
    return independent_columns(STATE_LAW, columns, start, StateMixture(n), rows=n)


# the offset energies the mode search scans (meV): up to 3 prior sds, in steps of a quarter of the narrowest
# typical line (0.02 meV): a line shifted by more than its width leaves the log density no slope to follow
EPS_SCAN = np.arange(0.0025, 3 * EPS_SIGMA + 1e-9, 0.005)


def scan_grids(hypothesis):
    """{free RV name[flat elements]: grid} for the mode search's scan (sampling.scan_starts): the offset energies,
    if any (element 4k of the (n, 4) state variable is state k's eps)."""
    n = N_STATES[hypothesis]
    return {} if hypothesis == "mzm" else {f"{STATE_LAW}[{','.join(str(4 * k) for k in range(n))}]": EPS_SCAN}


def search_model(model):
    """``model`` with ysr2's states in per-state coordinates (each row as one state's, ``StateMixture(2,
    mixed=False)``), for the mode search; None for a model without two mixed states.

    Why: the mode search scans the states' energies and then climbs with L-BFGS. In the mixture's coordinates a
    step along the weighted mean moves both states together: from the scan's (0.0375, 0.1225) meV on the paper's
    pairs (0.03, 0.12) it climbed to a local mode at (0.058, 0.158) (log density 124 against 368 at the true
    mode; the resolution test, seed 3). Per state, each stays by its scanned energy; the mode is then polished in
    the mixture's coordinates (:func:`~stsbayes.inference.sampling.locate_mode`)."""
    from pymc.model.transform.conditioning import change_value_transforms
    if STATE_LAW not in model.named_vars:
        return None
    transform = model.rvs_to_transforms.get(model[STATE_LAW])
    if not (isinstance(transform, StateMixture) and transform.mixed):
        return None
    # PyMC clones only models without initial values: set them aside, clone, and give both models theirs back
    initial = dict(model.rvs_to_initial_values)
    model.rvs_to_initial_values = dict.fromkeys(initial)
    try:
        search = change_value_transforms(model, {STATE_LAW: StateMixture(transform.n, mixed=False)})
    finally:
        model.rvs_to_initial_values = initial
    for rv, value in initial.items():
        if value is not None:
            search.set_initval(search[rv.name], value)
    return search


def state_coordinates(model):
    """Where the offset states sit in the model's flat unconstrained vector (``model.value_vars`` order, as the
    samplers and the evidence estimators use it): the (n_states, 4) index array of :class:`StateMixture`'s rows,
    or None without offset states. With two states, the relabelling that maps the model onto itself flips the
    sign of the second row (``evidence.mirror_images``)."""
    from .sampling import flat_slices
    if STATE_LAW not in model.named_vars:
        return None
    where = flat_slices(model)[model.rvs_to_values[model[STATE_LAW]].name]
    return np.arange(where.start, where.stop).reshape(-1, len(STATE_ROW))


def state_energies(rows):
    """Each state's eps from its unconstrained :class:`StateMixture` rows (numpy, (..., n, 4) -> (..., n))."""
    rows = np.asarray(rows, float)
    if rows.shape[-2] == 2:
        mean, spread, d = rows[..., 0, :], rows[..., 1, :], rows[..., 1, 2:3]
        rows = np.stack([mean + np.exp(-d / 2) * spread, mean - np.exp(d / 2) * spread], axis=-2)
    return np.hypot(rows[..., 0], SPREAD_SCALE * np.logaddexp(0.0, rows[..., 1]))


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
