"""Marginal likelihoods ln Z of a PyMC model, each with a Monte-Carlo standard error (physics.md §6).

Two independent estimators, so that a Bayes factor is trusted only when they agree:

* :func:`bridge_sampling` — Meng & Wong's optimal bridge between the NUTS posterior and a multivariate normal fitted
  to it, in the unconstrained space the sampler worked in (Gronau et al. 2017, *J. Math. Psychol.* 81, 80).
* :func:`smc_evidence` — PyMC's sequential Monte Carlo, whose product of tempering-stage weights estimates Z.

Both are model-agnostic: any ``pm.Model`` whose free variables are continuous. Each returns an :class:`Evidence`
built from at least four independent replicates, and :func:`combine` merges estimators and says whether they agree.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from arviz_stats.base import array_stats
from pymc.pytensorf import compile as compile_pytensor
from pymc.pytensorf import join_nonshared_inputs
from pytensor.graph.replace import graph_replace
from scipy import stats
from scipy.special import gammaln, logsumexp

from ..errors import InputError
from .hypotheses import state_coordinates, state_energies

MIN_REPLICATES = 4
# |a - b| <= AGREEMENT_SIGMAS * sqrt(ea^2 + eb^2): two estimators agree (physics.md §6)
AGREEMENT_SIGMAS = 3.0


@dataclass(frozen=True)
class Evidence:
    """One estimator's ln Z (natural log of the marginal likelihood) with its Monte-Carlo standard error.

    ``by_replicate`` holds the independent replicate estimates the value and error were made from; ``method`` names
    the estimator ("bridge", "smc", ...).
    """

    value: float
    err: float
    by_replicate: tuple[float, ...]
    method: str


class Combined(NamedTuple):
    """Several estimators of one ln Z merged: inverse-variance mean, its error, and whether all pairs agree."""

    value: float
    err: float
    agree: bool
    by_estimator: dict[str, float]


def _log_mean_exp(x):
    return float(logsumexp(x) - np.log(len(x)))


def replicate_standard_error(values):
    """Standard error of the mean of independent replicates, widened for the few replicates it is estimated from.

    sd/√n is scaled by t_{0.975, n−1} / z_{0.975} (1.62 for four replicates, 1.09 for sixteen), so that reading
    ±err as a normal standard error keeps the coverage of the Student-t interval: a sample sd of four values is
    itself uncertain by ~40 % and too small about half the time, and an error that is too small makes
    estimators falsely disagree.
    """
    values = np.asarray(values, dtype=float)
    n = values.size
    widen = stats.t.ppf(0.975, n - 1) / stats.norm.ppf(0.975)
    return float(np.std(values, ddof=1) / np.sqrt(n) * widen)


def _check_replicates(replicates):
    if int(replicates) != replicates or replicates < MIN_REPLICATES:
        raise InputError(f"replicates={replicates} is too few for an honest error: use at least {MIN_REPLICATES}")
    return int(replicates)


def _check_continuous(model):
    discrete = [v.name for v in model.discrete_value_vars]
    if discrete:
        raise InputError(f"free variables {', '.join(discrete)} are discrete: evidence estimators here need a "
                         "model with continuous free variables only (marginalise the discrete ones)")
    if not model.free_RVs:
        raise InputError("the model has no free variables: its evidence is its likelihood, no estimator is needed")


class UnconstrainedDensity:
    """The model's log posterior density, unnormalised, on the flat unconstrained vector the samplers move in.

    ``model.logp(jacobian=True)`` on the value variables is a density in the unconstrained space, so a proposal
    fitted there integrates against it directly. It is compiled once; :meth:`to_unconstrained` maps the
    constrained draws of a posterior (as stored in a DataTree) onto the same flat vector, applying each free
    variable's forward transform with its parameters taken at that draw's own values.
    """

    def __init__(self, model):
        _check_continuous(model)
        self.model = model
        self.names = [rv.name for rv in model.free_RVs]
        point = model.initial_point(random_seed=0)
        [logp], flat = join_nonshared_inputs(point=point, outputs=[model.logp(jacobian=True)],
                                             inputs=model.value_vars)
        self._logp = compile_pytensor([flat], logp)
        self.ndim = int(sum(np.asarray(point[v.name]).size for v in model.value_vars))
        self._forward = self._compile_forward()

    def _compile_forward(self):
        rvs = self.model.free_RVs
        constrained = [rv.type(name=f"{rv.name}_constrained") for rv in rvs]
        parts = []
        for rv, value in zip(rvs, constrained):
            transform = self.model.rvs_to_transforms.get(rv)
            parts.append(pt.flatten(transform.forward(value, *rv.owner.inputs) if transform is not None else value))
        # the transforms' parameters may be other free variables (a bound that is itself fitted): take them at the
        # draw's values, not as random draws
        flat = graph_replace(pt.concatenate(parts), dict(zip(rvs, constrained)), strict=False)
        return compile_pytensor(constrained, flat, on_unused_input="ignore")

    def logp(self, x):
        """Unnormalised log posterior density at each row of ``x`` (draws, ndim)."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        return np.array([float(self._logp(row)) for row in x])

    def to_unconstrained(self, posterior):
        """Flat unconstrained draws (chain, draw, ndim) from a posterior group holding the free variables."""
        missing = [n for n in self.names if n not in posterior]
        if missing:
            raise InputError(f"the posterior lacks the model's free variables {', '.join(missing)}: pass the trace "
                             "sampled from this same model")
        arrays = [np.asarray(posterior[n].transpose("chain", "draw", ...).values, dtype=float) for n in self.names]
        n_chain, n_draw = arrays[0].shape[:2]
        flat = np.empty((n_chain, n_draw, self.ndim))
        for c in range(n_chain):
            for d in range(n_draw):
                flat[c, d] = self._forward(*(a[c, d] for a in arrays))
        return flat


class _Normal:
    """A multivariate normal fitted to draws (the bridge proposal): log density and sampling."""

    def __init__(self, draws):
        self.mean = draws.mean(axis=0)
        cov = np.atleast_2d(np.cov(draws, rowvar=False))
        try:
            self.chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise InputError("the posterior draws have a singular covariance (a parameter that never moves?): "
                             "check the trace, or draw more samples") from None
        self.ndim = len(self.mean)
        self._log_norm = -0.5 * self.ndim * np.log(2 * np.pi) - np.sum(np.log(np.diag(self.chol)))

    def logpdf(self, x):
        z = np.linalg.solve(self.chol, (x - self.mean).T)
        return self._log_norm - 0.5 * np.sum(z**2, axis=0)

    def sample(self, n, rng):
        return self.mean + rng.standard_normal((n, self.ndim)) @ self.chol.T


def mirror_images(ndim, states):
    """The model's symmetries as (perms, signs), each image x -> x[..., perm] * sign; the identity first.

    ``states`` (:func:`~stsbayes.inference.hypotheses.state_coordinates`): the flat indices of the offset states'
    rows, or None. One state has no image. Two states have one, their relabelling, which in
    :class:`~stsbayes.inference.hypotheses.StateMixture` coordinates keeps the first row (weighted means, total
    weight) and flips the sign of the second (weighted spreads, weight split)."""
    identity = np.arange(ndim)[None], np.ones((1, ndim))
    if states is None or len(states) == 1:
        return identity
    if len(states) != 2:
        raise ValueError(f"mirror images are written for one or two states, not {len(states)}")
    signs = np.ones((2, ndim))
    signs[1, states[1]] = -1.0
    return np.repeat(identity[0], 2, axis=0), signs


def fold(x, states):
    """Each row of ``x`` as its image with the states sorted by energy (one mirror mode)."""
    x = np.array(x, dtype=float)
    if states is None or len(states) == 1:
        return x
    swap = np.diff(state_energies(x[..., states]), axis=-1)[..., 0] < 0
    x[..., states[1]] = np.where(swap[..., None], -x[..., states[1]], x[..., states[1]])
    return x


class Symmetrised:
    """A proposal averaged over a model's mirror images: q_sym(x) = mean over images g of q(g x).

    A posterior invariant under the images is as much in every mirror mode as in the one its chains (or its mode)
    found; a proposal fitted there alone covers 1/|G| of it, and ln Z comes out ln |G| low. The average is
    invariant too, so draws from any one mode serve the bridge (every ratio it averages is invariant)."""

    def __init__(self, base, images):
        self.base, (self.perms, self.signs) = base, images

    def logpdf(self, x):
        x = np.atleast_2d(x)
        return (logsumexp([self.base.logpdf(x[:, p] * s) for p, s in zip(self.perms, self.signs)], axis=0)
                - np.log(len(self.perms)))

    def sample(self, n, rng):
        x = self.base.sample(n, rng)
        pick = rng.integers(len(self.perms), size=n)
        return np.take_along_axis(x, self.perms[pick], axis=1) * self.signs[pick]


def symmetrised(base, states, ndim):
    """``base`` averaged over the mirror images of ``states`` (itself when there are none)."""
    return base if states is None else Symmetrised(base, mirror_images(ndim, states))


def distinct_images(x0, metric, states, threshold=4.0):
    """How many of x0's mirror images lie apart: further than ``threshold`` in squared ``metric`` distance
    (a Hessian) from every image counted before."""
    perms, signs = mirror_images(len(x0), states)
    kept = []
    for image in x0[perms] * signs:
        if all((image - k) @ metric @ (image - k) > threshold for k in kept):
            kept.append(image)
    return len(kept)


def iterative_bridge(q_post, q_prop, *, tol=1e-10, max_iter=10_000):
    """Meng & Wong's optimal bridge estimate of ln Z by fixed-point iteration, in logs so nothing overflows.

    ``q_post`` = ln p̃(θ) − ln g(θ) at posterior draws, ``q_prop`` the same at proposal draws (p̃ the unnormalised
    posterior, g the proposal). Gronau et al. 2017, Eq. 12:
    r ← [mean_prop p̃/g / (s1 p̃/g + s2 r)] / [mean_post 1 / (s1 p̃/g + s2 r)], with s_i = N_i / (N1 + N2).
    When the iteration has not settled after ``max_iter`` steps the root is found by bracketing instead.
    """
    n1, n2 = len(q_post), len(q_prop)
    log_s1, log_s2 = np.log(n1 / (n1 + n2)), np.log(n2 / (n1 + n2))
    # start from the plain importance-sampling estimate on the proposal draws; the iteration converges from anywhere
    log_z = _log_mean_exp(q_prop)
    for _ in range(max_iter):
        num = _log_mean_exp(q_prop - np.logaddexp(log_s1 + q_prop, log_s2 + log_z))
        den = _log_mean_exp(-np.logaddexp(log_s1 + q_post, log_s2 + log_z))
        new = num - den
        if abs(new - log_z) < tol:
            return new
        log_z = new
    # a poor proposal (short or unconverged chains) can make the iteration crawl or cycle; the same estimate is the
    # unique root of a monotone equation, which bracketing finds whatever the proposal
    return _bridge_root(q_post, q_prop, log_s1, log_s2, log_z, tol)


def _bridge_root(q_post, q_prop, log_s1, log_s2, start, tol):
    """The optimal bridge ln Z as the root of h(x) = ln Σ_post s2 e^x/(s1 q + s2 e^x) − ln Σ_prop s1 q/(s1 q + s2 e^x).

    Multiplying the fixed-point equation out gives Σ_post s2 r/(s1 q + s2 r) = Σ_prop s1 q/(s1 q + s2 r): the left
    side grows with r and the right side falls, so h is increasing and its root unique (Meng & Wong 1996).
    """
    from scipy.optimize import brentq

    def h(x):
        return (logsumexp(log_s2 + x - np.logaddexp(log_s1 + q_post, log_s2 + x))
                - logsumexp(log_s1 + q_prop - np.logaddexp(log_s1 + q_prop, log_s2 + x)))

    lo, hi = start - 1.0, start + 1.0
    for _ in range(40):  # widths up to 2^40 in ln Z: beyond that the draws carry no information on Z
        if h(lo) <= 0 <= h(hi):
            break
        lo, hi = start - 2 * (start - lo), start + 2 * (hi - start)
    else:
        raise RuntimeError("the bridge equation has no root: the proposal draws never reach the posterior's density")
    return float(brentq(h, lo, hi, xtol=tol, rtol=4 * np.finfo(float).eps, maxiter=500))


def bridge_relative_mse(q_post, q_prop, log_z, *, r_eff=1.0):
    """Frühwirth-Schnatter's (2004) approximate relative mean squared error of Ẑ, i.e. ≈ Var(ln Ẑ).

    The posterior term is divided by ``r_eff`` (ESS / draws) because MCMC draws carry less information than
    independent ones.
    """
    n1, n2 = len(q_post), len(q_prop)
    log_s1, log_s2 = np.log(n1 / (n1 + n2)), np.log(n2 / (n1 + n2))
    f1 = np.exp((q_prop - log_z) - np.logaddexp(log_s1 + q_prop - log_z, log_s2))  # at proposal draws
    f2 = np.exp(-np.logaddexp(log_s1 + q_post - log_z, log_s2))  # at posterior draws
    return float(np.var(f1, ddof=1) / (n2 * np.mean(f1) ** 2)
                 + np.var(f2, ddof=1) / (r_eff * n1 * np.mean(f2) ** 2))


def _posterior_group(trace):
    if "posterior" in getattr(trace, "children", {}):
        return trace["posterior"].to_dataset()
    if hasattr(trace, "data_vars") and "chain" in trace.dims:
        return trace
    raise InputError("the trace has no posterior group: pass the DataTree returned by the sampler")


def _relative_efficiency(log_density):
    """ESS / draws of the log posterior density over (chain, draw), at most 1: how independent the draws are."""
    n = log_density.size
    if log_density.shape[0] < 2 or log_density.shape[1] < 20:
        return 1.0
    ess = float(array_stats.ess(log_density, chain_axis=0, draw_axis=1, method="bulk"))
    return min(1.0, ess / n) if np.isfinite(ess) and ess > 0 else 1.0


def _where_not_finite(model, pooled, log_post):
    """Which draws and coordinates a non-finite log density comes from, in words (for the error message)."""
    from .sampling import flat_slices
    bad = ~np.isfinite(log_post)
    words = f"{int(bad.sum())} of {len(log_post)} posterior draws"
    coords = ~np.isfinite(pooled[bad]).all(axis=0)
    names = [name for name, where in flat_slices(model).items() if coords[where].any()]
    first = pooled[np.flatnonzero(bad)[0]]
    return words + (f" (unconstrained {', '.join(names)} not finite)" if names else
                    f" (the first at unconstrained {np.array2string(first, precision=4, threshold=40)})")


# fresh proposal draws per posterior draw in each bridge (see :func:`bridge_sampling`)
BRIDGE_PROPOSAL_FACTOR = 8


def bridge_sampling(model, trace, *, replicates=MIN_REPLICATES, seed=None):
    """ln Z of ``model`` by optimal bridge sampling from its posterior draws ``trace`` (a DataTree).

    The posterior draws, mapped to the unconstrained space, are cut into ``replicates`` contiguous parts in chain
    order (with as many replicates as chains: one chain each). Each part enters its own bridge (Overstall & Forster
    2010; Gronau et al. 2017) with ``BRIDGE_PROPOSAL_FACTOR`` times as many fresh draws from a normal proposal
    fitted to the *other* parts. A model with mirror symmetries (:func:`~stsbayes.inference.hypotheses.state_coordinates`)
    has the normal fitted to its folded draws and averaged over the mirror images (:class:`Symmetrised`). The
    parts' posterior draws are disjoint, so the replicates' spread is an honest Monte-Carlo error; only their
    proposals share draws, which changes their efficiency, not what they estimate.

    Why: a proposal fitted to the draws it is bridged with, or to their autocorrelated neighbours in the same chain,
    biases ln Z low, as do too few proposal draws, by more than the replicates' spread or the relative MSE shows.
    Measured on the 71-parameter ysr posterior of eleven offset defects (4 chains x 1000 draws), against importance
    sampling from a normal-like Student-t fitted to all draws, 18414.00 ± 0.02 (4 x 10 000 draws; itself a lower
    bound in expectation): the former split (shuffled draws; in each part one half fits the normal, the other is
    bridged with as many proposal draws) 18413.37-18413.42; eight proposal draws per posterior draw 18413.72; a
    proposal fitted to shuffled other parts, whose draws neighbour the bridged ones, 18413.71; fitted to the other
    chains 18413.88-18413.97.

    value = mean of the replicate ln Z. err = the larger of the replicates' standard error
    (:func:`replicate_standard_error`) and the Frühwirth-Schnatter approximation √(mean relative MSE / R), which
    also accounts for MCMC autocorrelation through the ESS of the log density.
    """
    replicates = _check_replicates(replicates)
    density = UnconstrainedDensity(model)
    draws = density.to_unconstrained(_posterior_group(trace))
    n_chain, n_draw, ndim = draws.shape
    pooled = draws.reshape(-1, ndim)
    per_part = len(pooled) // replicates
    if len(pooled) - per_part < max(2 * ndim + 2, 20) or per_part < 20:
        need = max(replicates * 20, int(np.ceil(max(2 * ndim + 2, 20) * replicates / (replicates - 1))))
        raise InputError(f"{len(pooled)} posterior draws are too few to bridge-sample {ndim} parameters in "
                         f"{replicates} replicates: draw at least {need}")
    log_post = density.logp(pooled)
    if not np.all(np.isfinite(log_post)):
        raise InputError(f"the model's log density is not finite at {_where_not_finite(model, pooled, log_post)}: "
                         "was the trace sampled from this model?")
    r_eff = _relative_efficiency(log_post.reshape(n_chain, n_draw))
    rng = np.random.default_rng(seed)
    states = state_coordinates(model)
    folded = fold(pooled, states)  # the normal is fitted to one mirror mode, then averaged over the mirror images
    estimates, mses = [], []
    for r in range(replicates):
        # pooled is chain-major: a contiguous part keeps its draws' autocorrelated chain neighbours inside it
        bridge = np.arange(r * per_part, (r + 1) * per_part)
        fit = np.setdiff1d(np.arange(len(pooled)), bridge)
        proposal = symmetrised(_Normal(folded[fit]), states, ndim)
        proposal_draws = proposal.sample(BRIDGE_PROPOSAL_FACTOR * per_part, rng)
        q_prop = density.logp(proposal_draws) - proposal.logpdf(proposal_draws)
        # a proposal draw far in the tails where the model's density is undefined counts as p̃ = 0: q = -inf is a
        # valid zero term in the bridge sums
        q_prop = np.where(np.isnan(q_prop), -np.inf, q_prop)
        q_post = log_post[bridge] - proposal.logpdf(pooled[bridge])
        log_z = iterative_bridge(q_post, q_prop)
        estimates.append(log_z)
        mses.append(bridge_relative_mse(q_post, q_prop, log_z, r_eff=r_eff))
    estimates = np.array(estimates)
    err = max(replicate_standard_error(estimates), np.sqrt(np.mean(mses) / replicates))
    return Evidence(float(np.mean(estimates)), float(err), tuple(map(float, estimates)), "bridge")


LAPLACE_IS_DRAWS = 1000  # proposal draws per replicate
LAPLACE_IS_DF = 5  # the Student-t proposal's degrees of freedom: heavier tails than the Gaussian it widens


@dataclass(frozen=True)
class LaplaceEvidence:
    """:func:`laplace_evidence`'s answer: ``evidence`` (importance-sampled ln Z with its replicate error), the
    Laplace approximation ``laplace`` it corrects, the importance weights' Pareto k̂ (> 0.7: the proposal misses
    part of the posterior and ln Z is unreliable), the mode's ln p̃, the number of parameters, whether the Hessian
    had to be regularised (a mode on a flat direction), and the mode as constrained values."""

    evidence: Evidence
    laplace: float
    pareto_k: float
    log_density_at_mode: float
    ndim: int
    hessian_regularised: bool
    mode: dict

    @property
    def reliable(self):
        return bool(self.pareto_k <= PARETO_K_RELIABLE and np.isfinite(self.evidence.value))


PARETO_K_RELIABLE = 0.7


class _StudentT:
    """A multivariate Student-t given by its centre, the eigenvectors of its shape matrix and the square roots of
    its eigenvalues (scales that may span many decades, where an explicit matrix would be singular to rounding)."""

    def __init__(self, loc, eigvec, scales, df):
        self.loc, self.eigvec, self.scales, self.df = loc, eigvec, scales, df
        d = len(loc)
        self._norm = (gammaln(0.5 * (df + d)) - gammaln(0.5 * df) - 0.5 * d * np.log(df * np.pi)
                      - float(np.sum(np.log(scales))))

    def sample(self, n, rng):
        z = rng.standard_normal((n, len(self.loc))) * np.sqrt(self.df / rng.chisquare(self.df, size=(n, 1)))
        return self.loc + (z * self.scales) @ self.eigvec.T

    def logpdf(self, x):
        z = ((x - self.loc) @ self.eigvec) / self.scales
        return self._norm - 0.5 * (self.df + len(self.loc)) * np.log1p(np.sum(z**2, axis=1) / self.df)


class _Mixture:
    """An equal mixture of two proposals."""

    def __init__(self, a, b):
        self.parts = (a, b)

    def sample(self, n, rng):
        pick = rng.random(n) < 0.5
        x = self.parts[1].sample(n, rng)
        x[pick] = self.parts[0].sample(int(pick.sum()), rng)
        return x

    def logpdf(self, x):
        return np.logaddexp(self.parts[0].logpdf(x), self.parts[1].logpdf(x)) - np.log(2.0)


def _smoothed_log_weights(log_ratio, pareto_k=False):
    """PSIS-smoothed normalised log weights of importance ratios (zero ratios stay zero), or their Pareto k̂
    (inf when fewer than half the ratios are non-zero)."""
    finite = np.isfinite(log_ratio)
    if finite.sum() < 0.5 * log_ratio.size:
        return np.inf if pareto_k else np.where(finite, log_ratio - logsumexp(log_ratio[finite]), -np.inf)
    # psislw smooths weights exp(-x): pass -log ratio; zero ratios enter as the smallest finite one
    log_w, k = array_stats.psislw(-np.where(finite, log_ratio, log_ratio[finite].min()), axis=-1)
    if pareto_k:
        return float(k)
    log_w = np.where(finite, log_w, -np.inf)
    return log_w - logsumexp(log_w)


def laplace_evidence(model, *, seed=None, replicates=MIN_REPLICATES, draws=LAPLACE_IS_DRAWS, df=LAPLACE_IS_DF,
                     scan=None, backend="numba"):
    """ln Z without MCMC: the posterior mode, the Laplace approximation there, and importance sampling from a
    Student-t proposal with the Laplace covariance to correct it (a :class:`LaplaceEvidence`).

    For studies over many designs, where a full fit per point would cost too much (``studies/resolution.py``):
    one compiled log density, a multi-start mode search (:func:`~stsbayes.inference.sampling.locate_mode`, with
    ``scan`` as a fit's), the Hessian by differences of the gradient, then ``replicates`` independent sets of
    ``draws`` proposal draws. The proposal q is an equal mixture of the Laplace Student-t and a Student-t fitted to
    the smoothed importance weights of a pilot set from the first (defensive importance sampling: the fitted half
    follows a skewed posterior, the Laplace half keeps the ratios bounded). Each set gives ln Z as the log mean
    importance ratio p̃/q (unbiased for Z); the value
    is the log mean over all sets, its error the sets' spread (:func:`replicate_standard_error`). Where the
    posterior is far from Gaussian the ratios' Pareto k̂ (PSIS, arviz_stats) grows past 0.7 and ``reliable`` is
    False: use the MCMC estimators then. A Hessian that is not positive definite (a flat or saddle direction) has
    its eigenvalues raised to the smallest positive one (at most 1), and the heavy-tailed proposal covers it.
    A model with mirror symmetries has the proposal averaged over them (:class:`Symmetrised`), and ``laplace``
    counts the mode's distinct mirror images.
    """
    from .sampling import compile_objective, hessian, locate_mode, minimisable
    replicates = _check_replicates(replicates)
    _check_continuous(model)
    objective = compile_objective(model, backend)
    mode = locate_mode(model, seed, scan=scan, objective=objective)
    fun = minimisable(objective)
    states = state_coordinates(model)
    x0 = fold(mode.x, states)  # a mirror image of a mode is a mode
    ndim = len(x0)
    log_peak = -fun(x0)[0]
    eigval, eigvec = np.linalg.eigh(hessian(fun, x0))
    positive = eigval[eigval > 0]
    floor = min(1.0, float(positive.min())) if positive.size else 1.0
    regularised = not bool(np.all(eigval > 0))
    eigval = np.maximum(eigval, floor) if regularised else eigval
    # the mode's distinct mirror images (more than 2 Laplace sds apart) each hold as much mass
    images = distinct_images(x0, (eigvec * eigval) @ eigvec.T, states)
    laplace = float(log_peak + 0.5 * ndim * np.log(2 * np.pi) - 0.5 * np.sum(np.log(eigval)) + np.log(images))
    rng = np.random.default_rng(seed)

    def log_ratios(proposal, n):
        x = proposal.sample(n, rng)
        log_p = -np.array([fun(row)[0] for row in x])  # -inf outside the support: a zero ratio
        return x, log_p - proposal.logpdf(x)

    # a pilot round from the Laplace proposal, then a defensive mixture of it with a Student-t fitted to the
    # pilot's smoothed weights (which follows a skewed or boundary posterior; the Laplace half bounds the ratios)
    laplace_t = _StudentT(x0, eigvec, 1.0 / np.sqrt(eigval), df)
    proposal = symmetrised(laplace_t, states, ndim)
    pilot, pilot_ratio = log_ratios(proposal, draws)
    if np.isfinite(pilot_ratio).sum() > ndim + 1:
        weights = np.exp(_smoothed_log_weights(pilot_ratio))
        pilot = fold(pilot, states)
        mean = weights @ pilot
        centred = pilot - mean
        cov = (weights[:, None] * centred).T @ centred
        fitted_val, fitted_vec = np.linalg.eigh(0.5 * (cov + cov.T))
        fitted_val = np.maximum(fitted_val, 1e-12 * max(float(fitted_val.max()), 1e-300))
        proposal = symmetrised(_Mixture(laplace_t, _StudentT(mean, fitted_vec, np.sqrt(fitted_val), df)), states,
                               ndim)
    log_ratio = np.array([log_ratios(proposal, draws)[1] for _ in range(replicates)])
    per_set = np.array([_log_mean_exp(r) for r in log_ratio])
    pareto_k = _smoothed_log_weights(log_ratio.ravel(), pareto_k=True)
    value = _log_mean_exp(log_ratio.ravel())
    evidence = Evidence(value, replicate_standard_error(per_set), tuple(map(float, per_set)), "laplace_is")
    return LaplaceEvidence(evidence, laplace, float(pareto_k), float(log_peak), ndim, regularised,
                           {k: v.tolist() for k, v in mode.constrained.items()})


def final_stage_log_z(stages):
    """The ln Z of one SMC run from its per-stage ``log_marginal_likelihood`` values (NaN except at β = 1).

    Takes the stages in any nesting: one chain's entry of a multi-chain run (a list, or an array in an object
    array), or the flat stage array that ``pm.sample_smc(chains=1)`` stores, mislabelled with the "chain" dimension.
    """
    def flatten(x):
        if isinstance(x, np.ndarray) and x.ndim == 0:
            x = x.item()
        return [v for item in x for v in flatten(item)] if isinstance(x, (list, tuple, np.ndarray)) else [x]

    stages = np.array(flatten(stages), dtype=float)
    finite = stages[np.isfinite(stages)]
    if finite.size == 0:
        raise InputError("an SMC run never reached β = 1, so it has no evidence: run it again with more draws")
    return float(finite[-1])


def smc_log_evidence(tree):
    """ln Z from a finished ``pm.sample_smc`` DataTree, each chain being one independent SMC run.

    PyMC 6 stores ``log_marginal_likelihood`` in ``sample_stats`` per chain and per tempering stage, NaN except the
    last stage (β = 1); chains with different numbers of stages come as ragged object arrays.

    value = ln of the mean of the runs' Z (log-mean-exp): SMC's Ẑ is unbiased for Z, so averaging Z keeps that,
    while the mean of ln Ẑ is biased low by Var(ln Ẑ)/2. err = sd(ln Ẑ)/√n (delta method, Var(ln Z̄) ≈
    Var(Ẑ)/(n Z²) ≈ Var(ln Ẑ)/n), widened for the few runs by :func:`replicate_standard_error`.
    """
    try:
        stat = tree["sample_stats"]["log_marginal_likelihood"]
    except KeyError:
        raise InputError("the trace has no sample_stats/log_marginal_likelihood: pass the DataTree returned by "
                         "pm.sample_smc") from None
    values = np.asarray(stat.transpose("chain", ...).values, dtype=object)
    return smc_runs_evidence([final_stage_log_z(chain) for chain in values])


def smc_runs_evidence(runs):
    """The SMC :class:`Evidence` from independent runs' ln Ẑ (see :func:`smc_log_evidence`)."""
    runs = np.asarray(runs, dtype=float)
    _check_replicates(len(runs))
    return Evidence(_log_mean_exp(runs), replicate_standard_error(runs), tuple(map(float, runs)), "smc")


# prior draws used to measure the fraction of the prior where the value transforms are valid (see prior_population)
MIN_PRIOR_DRAWS = 20_000


class PriorPopulation(NamedTuple):
    """SMC start particles drawn from the model's prior, one dict (value-variable name -> (draws, ...)) per run,
    and ln M ± err, M the prior mass of the region where every value transform is valid."""

    starts: list
    log_mass: float
    log_mass_err: float


def prior_population(model, draws, runs, *, seed=None):
    """Independent prior draws for ``runs`` SMC runs of ``draws`` particles each, on the sampler's value variables.

    PyMC's own SMC start takes a variable's numeric ``initval`` for *every* particle (the gap priors and ysr2's
    eps carry one, for the NUTS start), so its population is not a prior sample and its ln Z is biased; and the
    free variables' random draws ignore an ``Ordered`` transform, whose unordered draws map to NaN. Here the free
    variables are drawn jointly from their prior graphs, mapped to the unconstrained space with each transform,
    and draws where a transform is invalid (unordered) are rejected. The accepted draws follow the prior
    restricted to the valid region, normalised by its prior mass M; the model's ln Z, ∫ exp(model.logp), is then
    SMC's ln Z + ln M. M is exactly 1/n! for n exchangeable ordered values (ysr2's eps), whose Potential ln n!
    restores the normalisation. ``log_mass_err`` is M's binomial error, √((1 − M)/(M N)) for N prior draws.
    """
    density = UnconstrainedDensity(model)
    rng = np.random.default_rng(seed)
    point = model.initial_point(random_seed=0)
    sizes = [(v.name, np.shape(point[v.name]), int(np.asarray(point[v.name]).size)) for v in model.value_vars]
    needed = draws * runs
    accepted, total = [], 0
    while len(accepted) < needed or total < MIN_PRIOR_DRAWS:
        batch = max(MIN_PRIOR_DRAWS, 2 * (needed - len(accepted)))
        values = pm.draw(model.free_RVs, draws=batch, random_seed=rng)
        for i in range(batch):
            flat = density._forward(*(np.asarray(v[i], dtype=float) for v in values))
            if np.all(np.isfinite(flat)):
                accepted.append(flat)
        total += batch
        if not accepted:
            raise InputError("no prior draw of the model has valid transformed values: check the priors' supports")
    mass = len(accepted) / total
    order = rng.permutation(len(accepted))[:needed]
    flat = np.array(accepted)[order].reshape(runs, draws, -1)
    starts = []
    for run in flat:
        start, offset = {}, 0
        for name, shape, size in sizes:
            start[name] = run[:, offset:offset + size].reshape(draws, *shape)
            offset += size
        starts.append(start)
    return PriorPopulation(starts, float(np.log(mass)), float(np.sqrt((1.0 - mass) / (mass * total))))


def smc_evidence(model, *, replicates=MIN_REPLICATES, draws=2000, seed=None, progress=False, cores=1,
                 **kernel_kwargs):
    """ln Z of ``model`` by ``replicates`` independent sequential Monte Carlo runs (PyMC's ``sample_smc``).

    Each SMC chain is a whole run from prior to posterior with ``draws`` particles, so the chains are independent
    replicates (see :func:`smc_log_evidence` for how they are combined). The runs start from independent prior
    draws made by :func:`prior_population` (not PyMC's own start, which repeats numeric initvals), and ln Z is
    corrected by that population's ln M, so that it estimates the same ∫ exp(model.logp) as
    :func:`bridge_sampling`. ``cores=1`` runs them one after the other in this process; more cores run them in
    worker processes.
    """
    replicates = _check_replicates(replicates)
    _check_continuous(model)
    population = prior_population(model, draws, replicates, seed=seed)
    tree = pm.sample_smc(draws=draws, chains=replicates, cores=cores, model=model, random_seed=seed,
                         start=population.starts, progressbar=progress, compute_convergence_checks=False,
                         **kernel_kwargs)
    raw = smc_log_evidence(tree)
    return Evidence(raw.value + population.log_mass, float(np.hypot(raw.err, population.log_mass_err)),
                    tuple(v + population.log_mass for v in raw.by_replicate), "smc")


def agree_within_errors(a, b):
    """Whether two estimates (value, err) of one quantity agree: |a - b| <= AGREEMENT_SIGMAS combined errors."""
    return bool(abs(a[0] - b[0]) <= AGREEMENT_SIGMAS * np.hypot(a[1], b[1]))


def combine(estimates):
    """Merge estimators of one ln Z: inverse-variance weighted mean, its error, and whether they agree.

    Agreement (physics.md §6): every pair within 3 combined standard errors, |a − b| ≤ 3 √(ea² + eb²). The combined
    error assumes independent estimators; when they disagree it understates the uncertainty, which is why a
    disagreement caps the verdict rather than being averaged away.
    """
    estimates = list(estimates.values()) if isinstance(estimates, dict) else list(estimates)
    if not estimates:
        raise InputError("no evidence estimates to combine: run at least one estimator")
    for e in estimates:
        if not (np.isfinite(e.value) and np.isfinite(e.err) and e.err > 0):
            raise InputError(f"the {e.method} estimate ln Z = {e.value} ± {e.err} is not a finite value with a "
                             "positive error: rerun that estimator")
    values = np.array([e.value for e in estimates])
    errs = np.array([e.err for e in estimates])
    weights = 1.0 / errs**2
    value = float(np.sum(weights * values) / np.sum(weights))
    err = float(1.0 / np.sqrt(np.sum(weights)))
    agree = all(agree_within_errors((values[i], errs[i]), (values[j], errs[j]))
                for i in range(len(values)) for j in range(i + 1, len(values)))
    return Combined(value, err, bool(agree), {e.method: float(e.value) for e in estimates})


# ------------------------------------------------------------------------------------------ Savage-Dickey (nested)

SAVAGE_DICKEY_QUANTILE = 0.2  # the boundary density is fitted over the lowest 20 % of the draws


def boundary_density(draws):
    """The density at 0 of a distribution on [0, inf) from its draws: a linear density a + b x fitted by its first
    two moments over [0, d], d the pooled ``SAVAGE_DICKEY_QUANTILE`` quantile (exact for a density linear there,
    where a reflected kernel estimate is biased by the slope). Returns the density at 0 per row (chain) of ``draws``;
    rows are independent replicates. NaN where no draw of a row lies below d."""
    x = np.atleast_2d(np.asarray(draws, dtype=float))
    if np.any(x < 0) or not np.all(np.isfinite(x)):
        raise InputError("boundary_density needs finite draws >= 0 (an energy eps, say)")
    d = float(np.quantile(x, SAVAGE_DICKEY_QUANTILE))
    out = []
    for row in x:
        inside = row[row <= d]
        p, m = inside.size / row.size, inside.sum() / row.size  # the mass over [0, d] and its first moment
        # a d + b d^2/2 = p and a d^2/2 + b d^3/3 = m  =>  a = (4 p d - 6 m) / d^2
        out.append((4 * p * d - 6 * m) / d ** 2 if inside.size else np.nan)
    return np.asarray(out)


def savage_dickey(eps_draws, prior_density_at_zero):
    """ln B(free eps vs eps = 0) for nested hypotheses, the Savage-Dickey ratio ln p(eps = 0) - ln p(eps = 0 | data).

    Valid where the nested hypothesis is the free one at eps = 0 with the other parameters' prior unchanged (ysr
    against mzm: hypotheses.py gives every state one prior on its total weight). ``eps_draws`` (chain, draw) from the
    free hypothesis's posterior; every chain is a replicate, so the error comes from their spread. Where the
    posterior keeps away from 0 (too few draws near it), the value is NaN: the data then say "offset" by more than
    this estimator can measure. It needs no second model and no proposal, and is at its best where bridge sampling
    and importance sampling are worst: a posterior of eps piled against 0."""
    density = boundary_density(eps_draws)
    if not np.all(density > 0):
        return Evidence(float("nan"), float("nan"), tuple(float(v) for v in density), "savage_dickey")
    values = np.log(prior_density_at_zero) - np.log(density)
    value = float(np.log(prior_density_at_zero) - np.log(density.mean()))
    return Evidence(value, replicate_standard_error(values), tuple(float(v) for v in values), "savage_dickey")
