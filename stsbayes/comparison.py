"""Compare the ZECP hypotheses ``mzm``, ``ysr``, ``ysr2`` on one spectrum (physics.md §2 and §6, issue 5).

For each hypothesis the spectrum is fitted with NUTS (``api.run_fit``, which checks the convergence gates and the
posterior predictive check), and its marginal likelihood ln Z is estimated twice, independently:

* **bridge**: Meng & Wong's bridge sampling on the NUTS draws (``inference.evidence.bridge_sampling``);
* **smc**: PyMC's sequential Monte Carlo, by default tempered from a broad reference density fitted to the NUTS
  draws, each run from its own reference fitted to its own chain (:func:`reference_smc_evidence`, with the
  random-walk MH kernel: ``REFERENCE_KERNEL``), optionally from the prior (``smc_start="prior"``).

Why the reference start is the default: SMC from the prior has to cross the whole information gain of a sharp
spectrum (tens of nats) with particles that start where the likelihood is negligible. Measured on a reduced
metal-tip case (the pair of tests/test_compare.py with its background free: ±0.6 mV, 81 points, 12 parameters,
0.4 ms per log density), 4 prior-started runs of 200 particles took 68 s and missed the posterior altogether
(ln Z = 141 ± 9 against the bridge's 187.35 ± 0.19), while 4 reference-started runs of 300 particles gave
186.96 ± 0.04 in 60 s;
the particle numbers that would find it (thousands, times four replicates, times three hypotheses) cost hours
on two cores. A reference that is a Student-t (4 degrees of freedom) with twice the posterior's spread is already
close to the posterior, so a few tempering stages suffice. The price: both estimators now rely on NUTS having
found the posterior's mass (a missed mode is missed by both); they still differ in method (tempered importance
weights with Metropolis moves against the bridge identity), in proposal (heavy-tailed and wider than the bridge's
normal) and in Monte-Carlo randomness, which is what the agreement check tests. Each estimator uses at least four
independent replicates, so its error is measured, not assumed.

The evidences make Bayes factors, posterior model probabilities (under ``prior_odds``, which change
probabilities, never Bayes factors) and the two verdicts of physics.md §6 (``inference.verdicts``). Prior
sensitivity reweights each hypothesis's NUTS draws to the bound-state priors with every width halved and doubled
(``hypotheses.log_prior_of``); where the weights' Pareto k̂ exceeds 0.7 the reweighted value is unreliable and
the hypothesis is fitted again at the scaled prior (``prior_rerun=True``, the default: NUTS and both evidence
estimators, as for the nominal prior). A re-run that fails its gates, or whose estimators disagree, leaves the
value unreliable, and such a verdict is capped at "positive" with reason "prior"; the statement says why. LOO and
stacking weights (``inference.predictive``) are reported beside the evidence as the predictive view.
"""

import contextlib
import copy
import json
import math
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pymc.pytensorf import join_nonshared_inputs
from pytensor.graph.replace import graph_replace

from .errors import InputError
from .inference import hypotheses as H
from .inference import verdicts as V
from .inference.evidence import (MIN_REPLICATES, UnconstrainedDensity, _check_replicates, _posterior_group,
                                 _relative_efficiency, agree_within_errors, bridge_sampling, combine,
                                 final_stage_log_z, fold, mirror_images, savage_dickey, smc_evidence,
                                 smc_runs_evidence)
from .inference.predictive import loo_summary
from .io.atomic import atomic_path
from .results import SCHEMA_VERSION, _jsonable, package_versions

# The SMC kernel of the reference start: random-walk Metropolis (PyMC's MH), not its default independent Metropolis
# (IMH), whose Gaussian proposals fitted to the particles left ln Z biased low in series models of 50-70 parameters.
# On the eleven zero-energy defects' posteriors (4 replicates of 1000 particles) against bridge 18800.3 (ysr) and
# 18807.39 (mzm): IMH 18797.15-18797.83 for ysr (18798.05 with ten times the steps per stage, 18798.23 with 2000
# particles) and 18806.64 for mzm; MH 18800.62 ± 0.63 (164 s, IMH 505 s) and 18807.55 ± 0.17.
REFERENCE_KERNEL = pm.smc.kernels.MH
DEFAULT_SMC_DRAWS = 1000  # particles per SMC replicate (reference start); see the module docstring
MIN_SMC_DRAWS = 100
SMC_STARTS = ("reference", "prior")
REFERENCE_DF = 4.0  # Student-t degrees of freedom of the SMC reference: heavy tails cover the posterior's tails
REFERENCE_SHRINKAGE = 0.05  # towards the diagonal, for a singular covariance only (see reference_model)
REFERENCE_SCALE = 2.0  # the reference's spread relative to the posterior's (covariance times its square)
PROBABILITY_DRAWS = 4000  # ln Z draws for the error bars of the posterior model probabilities
SCALINGS = {"halved": 0.5, "doubled": 2.0}
# an estimate less precise than this (in ln Z) cannot confirm another one: "agreeing" within 3 combined standard
# errors of ±77 (measured: a 200-particle SMC on an SIS spectrum) would be no check at all
MAX_CONFIRMING_ERR = 1.0


# ----------------------------------------------------------------------------------------------- input checks


def parse_prior_odds(text):
    """``"mzm=1,ysr=1,ysr2=1"`` -> ``{"mzm": 1.0, ...}`` (the ``--prior-odds`` option)."""
    odds = {}
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or number is None:
            raise InputError(f"--prior-odds item {item!r} is not NAME=NUMBER: write e.g. "
                             "--prior-odds mzm=1,ysr=1,ysr2=1")
        odds[name.strip()] = number
    if not odds:
        raise InputError("--prior-odds is empty: write e.g. --prior-odds mzm=1,ysr=1,ysr2=1")
    return odds


def check_prior_odds(prior_odds, hypotheses):
    """Prior odds for every compared hypothesis (1 where not given); names must be compared, values positive."""
    prior_odds = dict(prior_odds or {})
    unknown = [n for n in prior_odds if n not in hypotheses]
    if unknown:
        raise InputError(f"prior odds are given for {', '.join(unknown)}, which is not among the compared hypotheses "
                         f"({', '.join(hypotheses)}): add it to --hypotheses or drop it from --prior-odds")
    odds = {}
    for name in hypotheses:
        value = prior_odds.get(name, 1.0)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise InputError(f"prior odds for {name} are {value!r}: give a positive number, e.g. {name}=1")
        odds[name] = float(value)
    return odds


def check_hypotheses(hypotheses):
    """The validated list; a comparison needs ``mzm`` and at least one offset hypothesis (ysr, ysr2)."""
    names = H.check(hypotheses)
    if V.ZERO not in names or not any(h in names for h in V.OFFSET):
        raise InputError(f"--hypotheses {','.join(names)} cannot answer either question: compare mzm with ysr "
                         "and/or ysr2, e.g. --hypotheses mzm,ysr,ysr2")
    return [h for h in V.CANONICAL_ORDER if h in names]


def _check_settings(smc_draws, replicates, smc_start, chains, draws, tune):
    for name, value in (("chains", chains), ("draws", draws), ("tune", tune)):
        if int(value) != value or value < 1:
            raise InputError(f"{name}={value} must be a positive whole number")
    if int(replicates) != replicates or replicates < MIN_REPLICATES:
        raise InputError(f"replicates={replicates} is too few for an honest evidence error: use at least "
                         f"{MIN_REPLICATES}")
    if int(smc_draws) != smc_draws or smc_draws < MIN_SMC_DRAWS:
        raise InputError(f"smc_draws={smc_draws} is too few particles for an SMC evidence: use at least "
                         f"{MIN_SMC_DRAWS}")
    if smc_start not in SMC_STARTS:
        raise InputError(f"smc_start={smc_start!r} is unknown: use one of {', '.join(SMC_STARTS)}")


# ----------------------------------------------------------------------------------------------- evidence


def _positive_definite(cov):
    eig = np.linalg.eigvalsh(cov)
    return bool(eig[0] > 1e-12 * eig[-1] and eig[-1] > 0)


def reference_model(model, draws, *, df=REFERENCE_DF, scale=REFERENCE_SCALE):
    """A model whose prior is a broad Student-t reference q fitted to ``draws`` (posterior draws, one row each, on
    the flat unconstrained vector of :meth:`UnconstrainedDensity.to_unconstrained`) and whose 'likelihood' is the
    potential ln p̃(θ) − ln q(θ), p̃ the unnormalised posterior of ``model`` on its unconstrained vector θ.

    Its evidence ∫ q · p̃/q dθ is ``model``'s evidence, so PyMC's SMC on it tempers from q to the posterior in a
    few stages. NaN log densities (far tails where a transform breaks down) count as zero density. A model with
    mirror images (``hypotheses.state_coordinates``) has q fitted to its folded draws and divides by q averaged over the
    images: Z = ∫ q · p̃ / q_sym dθ, since p̃ and q_sym are invariant and the images of q sum to q_sym.
    """
    draws = np.atleast_2d(np.asarray(draws, dtype=float))
    ndim = draws.shape[1]
    states = H.state_coordinates(model)
    draws = fold(draws, states)
    mean = draws.mean(axis=0)
    cov = np.atleast_2d(np.cov(draws, rowvar=False)) * scale**2
    if not _positive_definite(cov):
        # parameters that move in lockstep in these draws (a hierarchy's members at tau -> 0 in one chain) make the
        # covariance singular: shrink it a little towards its diagonal, which keeps every variance
        cov = (1.0 - REFERENCE_SHRINKAGE) * cov + REFERENCE_SHRINKAGE * np.diag(np.diag(cov))
    if not _positive_definite(cov):
        raise InputError("the posterior draws have a singular covariance (a parameter that never moves?): check "
                         "the trace, or draw more samples")
    point = model.initial_point(random_seed=0)
    [logp], flat = join_nonshared_inputs(point=point, outputs=[model.logp(jacobian=True)], inputs=model.value_vars)
    with pm.Model() as ref:
        theta = pm.MvStudentT("theta", nu=df, mu=mean, scale=cov)
        q = pm.MvStudentT.dist(nu=df, mu=mean, scale=cov)
        # with mirror images: Z = ∫ q · p̃ / q_sym, q_sym the reference averaged over them (the tempered target
        # then ends on q's own mirror mode, and the others' mass is counted through q_sym)
        perms, signs = mirror_images(ndim, states)
        log_q = (pt.logsumexp(pt.stack([pm.logp(q, theta[perm] * sign) for perm, sign in zip(perms, signs)]), axis=0)
                 - np.log(len(perms)))
        target = graph_replace(logp, {flat: theta}, strict=False)
        target = pt.switch(pt.isnan(target), -np.inf, target)
        pm.Potential("posterior_over_reference", target - log_q)
    return ref


def reference_smc_evidence(model, trace, *, replicates=MIN_REPLICATES, draws=DEFAULT_SMC_DRAWS, seed=None,
                           progress=False):
    """ln Z of ``model`` by ``replicates`` independent SMC runs, each tempered from its own reference
    (:func:`reference_model`) fitted to ``trace``'s chain-ordered draws less one contiguous part (with as many
    replicates as chains: run r's reference leaves out chain r, as the bridge's proposals do); value and error as
    :func:`~stsbayes.inference.evidence.smc_log_evidence`.

    Why not one reference for all runs: runs that share it scattered by more than their error showed. On the
    71-parameter ysr posterior of eleven offset defects (4 chains x 1000 draws; importance sampling 18414.00 ±
    0.02), three 4-run estimates from one reference gave 18413.52 ± 0.28, 18413.65 ± 0.27, 18414.20 ± 0.13; on a
    field series of 13 spectra, 5132.39 ± 0.05 against 5132.216 ± 0.002. References fitted to one chain each gave
    errors that covered the truth (18413.72 ± 0.22, 18413.32 ± 0.66, 18414.06 ± 0.39; 5132.17-5132.29 ± 0.03-0.10)
    but failed where a chain sat in a hierarchy's funnel neck (tau -> 0, members in lockstep), whose reference is
    singular and whose particles the MH kernel cannot move; leaving one part out keeps every reference fitted to
    the other chains too.
    """
    replicates = _check_replicates(replicates)
    density = UnconstrainedDensity(model)
    pooled = density.to_unconstrained(_posterior_group(trace)).reshape(-1, density.ndim)
    per_part = len(pooled) // replicates
    if len(pooled) - per_part < 2 * density.ndim + 2 or per_part < 1:
        need = max(replicates, int(np.ceil((2 * density.ndim + 2) * replicates / (replicates - 1))))
        raise InputError(f"{len(pooled)} posterior draws are too few to fit {replicates} SMC references to "
                         f"{density.ndim} parameters: draw at least {need}")
    seeds = np.random.SeedSequence(seed).generate_state(replicates)
    runs = []
    for r in range(replicates):
        own = np.arange(r * per_part, (r + 1) * per_part)
        ref = reference_model(model, np.delete(pooled, own, axis=0))
        tree = pm.sample_smc(draws=draws, chains=1, cores=1, model=ref, random_seed=int(seeds[r]),
                             kernel=REFERENCE_KERNEL, progressbar=progress, compute_convergence_checks=False)
        runs.append(final_stage_log_z(tree["sample_stats"]["log_marginal_likelihood"].values))
    return smc_runs_evidence(runs)


def _estimate_evidence(fit, *, smc_start, smc_draws, replicates, seed, progress):
    """Both estimators on one finished fit; returns (combined, {method: Evidence}, seconds per method)."""
    times = {}
    t0 = time.perf_counter()
    bridge = bridge_sampling(fit.model, fit.tree, replicates=replicates, seed=seed)
    times["bridge"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if smc_start == "prior":
        smc = smc_evidence(fit.model, replicates=replicates, draws=smc_draws, seed=seed + 1, progress=progress)
    else:
        smc = reference_smc_evidence(fit.model, fit.tree, replicates=replicates, draws=smc_draws, seed=seed + 1,
                                     progress=progress)
    times["smc"] = time.perf_counter() - t0
    estimates = {"smc": smc, "bridge": bridge}
    return confirmed(combine(estimates), estimates), estimates, times


def confirmed(combined, estimates):
    """``combined`` with ``agree`` True only when the estimators agree *and* each is precise enough to check the
    other (error <= MAX_CONFIRMING_ERR): a wide estimate agrees with anything."""
    precise = all(e.err <= MAX_CONFIRMING_ERR for e in estimates.values())
    return combined._replace(agree=bool(combined.agree and precise))


# ----------------------------------------------------------------------------------------------- prior sensitivity


def bound_state_draws(posterior, hypothesis):
    """The contested bound-state parameters of a posterior as flat (draws, n_states) arrays, the form
    ``hypotheses.log_prior_of`` takes (mzm: width and total weight w; others: eps, width, u2, v2)."""
    def flat(name):
        if name not in posterior:
            raise InputError(f"the {hypothesis} posterior lacks {name}: was it fitted with --hypotheses {hypothesis}?")
        v = np.asarray(posterior[name].transpose("chain", "draw", ...).values, dtype=float)
        return v.reshape(v.shape[0] * v.shape[1], -1)

    out = {"width": flat("width_all")}
    if hypothesis == "mzm":
        out["w"] = flat("w_0")
    else:
        out.update(eps=flat("eps_all"), u2=flat("u2_all"), v2=flat("v2_all"))
    return out


def rerun_at_scale(reweighted, fit_scaled, **evidence_settings):
    """The ln Z of a fit at a scaled prior (both estimators) in place of an unreliable reweighting.

    Returns (Reweighted with ``rerun=True``, whether it can be trusted: the fit converged and the estimators
    agreed); an untrusted re-run keeps ``needs_rerun`` so the verdict stays capped."""
    evidence, _, _ = _estimate_evidence(fit_scaled, **evidence_settings)
    trusted = bool(fit_scaled.converged and evidence.agree)
    return V.Reweighted(evidence.value, evidence.err, 0.0, reweighted.pareto_k, not trusted, rerun=True), trusted


def prior_sensitivity(posterior, hypothesis, log_z, log_prior=None):
    """ln Z at the halved and doubled contested priors by importance reweighting the NUTS draws.

    ``log_prior(posterior, factor)`` gives the contested parameters' log prior per draw (flattened chain × draw)
    with every width times ``factor``; by default the single-spectrum bound states of ``hypothesis``
    (``hypotheses.log_prior_of``). Returns {"halved": Reweighted, "doubled": Reweighted}; ``needs_rerun`` marks
    k̂ > 0.7.
    """
    if log_prior is None:
        draws = bound_state_draws(posterior, hypothesis)
        log_prior = lambda _, factor: H.log_prior_of(draws, hypothesis, factor)  # noqa: E731
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    old = log_prior(posterior, 1.0)
    out = {}
    for label, factor in SCALINGS.items():
        new = log_prior(posterior, factor)
        r_eff = _relative_efficiency((new - old).reshape(n_chain, n_draw))
        out[label] = V.prior_reweighting(log_z, old, new, r_eff=r_eff)
    return out


# ----------------------------------------------------------------------------------------------- the comparison


def _probability_intervals(log_z, errs, odds, rng):
    """5-95 % intervals of the posterior model probabilities from the ln Z errors (normal draws of each ln Z)."""
    names = list(log_z)
    samples = np.array([rng.normal(log_z[h], errs[h], PROBABILITY_DRAWS) for h in names]).T
    samples += np.log([odds[h] for h in names])
    samples -= samples.max(axis=1, keepdims=True)
    probs = np.exp(samples)
    probs /= probs.sum(axis=1, keepdims=True)
    lo, hi = np.quantile(probs, [0.05, 0.95], axis=0)
    return {h: [float(a), float(b)] for h, a, b in zip(names, lo, hi)}


def assemble_summary(runs, *, hypotheses, prior_odds, seed, sampler, evidence_settings, input_record, timing,
                     command="compare", series_kind=None):
    """The compare summary.json (architecture.md) from per-hypothesis runs.

    ``runs[h]`` holds ``fit`` (FitResult), ``evidence`` (Combined), ``estimates`` ({method: Evidence}),
    ``sensitivity`` ({"halved"/"doubled": Reweighted}) and ``timing_s``.
    """
    log_z = {h: (runs[h]["evidence"].value, runs[h]["evidence"].err) for h in hypotheses}
    values = {h: v for h, (v, _) in log_z.items()}
    errs = {h: e for h, (_, e) in log_z.items()}
    probs = V.posterior_probabilities(log_z, prior_odds)
    intervals = _probability_intervals(values, errs, prior_odds, np.random.default_rng(seed))
    loo = loo_summary({h: runs[h]["fit"].tree for h in hypotheses})
    agree = {h: bool(runs[h]["evidence"].agree) for h in hypotheses}
    nested = savage_dickey_check(runs, hypotheses) if command == "compare" else None  # series models nest none
    if nested and nested["agrees"] is False:
        agree["ysr"] = False
    ppc = {h: bool(runs[h]["fit"].summary()["diagnostics"].get("ppc", {}).get("passed", True)) for h in hypotheses}
    converged = {h: bool(runs[h]["fit"].converged) for h in hypotheses}
    halved = {h: runs[h]["sensitivity"]["halved"] for h in hypotheses}
    doubled = {h: runs[h]["sensitivity"]["doubled"] for h in hypotheses}
    unreliable = [h for h in hypotheses if any(r.needs_rerun for r in runs[h]["sensitivity"].values())]
    blocks = V.verdicts(log_z, prior_odds=prior_odds, halved=halved, doubled=doubled, estimators_agree=agree,
                        ppc_passed=ppc, converged=converged, prior_unreliable=dict.fromkeys(unreliable, True))
    text = V.statement(blocks, series_kind)
    per = {}
    for h in hypotheses:
        fit, ev = runs[h]["fit"], runs[h]["evidence"]
        fs = fit.summary()
        per[h] = {
            "log_evidence": ev.value, "log_evidence_err": ev.err,
            "log_evidence_by_estimator": dict(ev.by_estimator),
            "log_evidence_err_by_estimator": {m: e.err for m, e in runs[h]["estimates"].items()},
            "log_evidence_replicates": {m: list(e.by_replicate) for m, e in runs[h]["estimates"].items()},
            "estimators_agree": agree[h],
            "posterior_probability": probs[h], "posterior_probability_90": intervals[h],
            **loo[h],
            "converged": converged[h],
            "prior_sensitivity": {label: {"log_evidence": r.value, "err": r.err, "pareto_k": r.pareto_k,
                                          "method": "rerun" if r.rerun else "reweighting",
                                          "needs_rerun": r.needs_rerun,
                                          **({"rerun": runs[h]["reruns"][label]}
                                             if label in runs[h].get("reruns", {}) else {})}
                                  for label, r in runs[h]["sensitivity"].items()},
            "parameters": fs["parameters"], "fixed": fs.get("fixed", {}), "diagnostics": fs["diagnostics"],
            "timing_s": runs[h]["timing_s"],
            **({"savage_dickey_vs_mzm": nested} if h == "ysr" and nested else {}),
        }
    first = runs[hypotheses[0]]["fit"].summary()
    summary = {
        "schema_version": SCHEMA_VERSION, "command": command, "stsbayes_version": package_versions()["stsbayes"],
        "seed": seed, "input": {**first.get("input", {}), **(input_record or {})},
        "sampler": {**first["sampler"], "name": sampler, "evidence": evidence_settings},
        "prior_odds": prior_odds, "hypotheses": per,
        "log_bayes_factors": V.log_bayes_factors(log_z),
        "verdicts": blocks, "statement": text,
        "diagnostics": {"converged": all(converged.values()),
                        "unconverged": [h for h in hypotheses if not converged[h]],
                        "ppc_failed": [h for h in hypotheses if not ppc[h]],
                        "estimators_disagree": [h for h in hypotheses if not agree[h]]},
        "timing_s": timing,
    }
    if "tip_prior" in first:
        summary["tip_prior"] = first["tip_prior"]
    return _jsonable(summary)


def ysr_savage_dickey(posterior):
    """ln B(ysr vs mzm) by the Savage-Dickey ratio (evidence.savage_dickey) from a ysr posterior's eps draws."""
    return savage_dickey(posterior["eps_all"].transpose("chain", "draw", ...).values[..., 0], H.EPS_PRIOR_AT_ZERO)


def savage_dickey_check(runs, hypotheses):
    """ln B(ysr vs mzm) a third way, from ysr's draws alone: ysr at eps = 0 is mzm (hypotheses.py), so
    ln B = ln p(eps = 0) - ln p(eps = 0 | data) (evidence.savage_dickey). It needs no proposal and is at its best
    where bridge sampling and SMC are worst, a posterior of eps piled against 0; disagreement beyond 3 combined
    errors with ln Z_ysr - ln Z_mzm marks ysr's estimators as disagreeing (the verdict is capped). None without
    both hypotheses; log_bf None where the posterior keeps away from 0 (then the other estimators decide)."""
    if not {"ysr", "mzm"} <= set(hypotheses):
        return None
    posterior = runs["ysr"]["fit"].tree["posterior"]
    if "eps_all" not in posterior:
        return None
    sd = ysr_savage_dickey(posterior)
    ysr, mzm = runs["ysr"]["evidence"], runs["mzm"]["evidence"]
    from_evidence, err = ysr.value - mzm.value, float(np.hypot(ysr.err, mzm.err))
    if not np.isfinite(sd.value):
        return {"log_bf": None, "err": None, "from_evidences": from_evidence, "agrees": None}
    agrees = agree_within_errors((sd.value, sd.err), (from_evidence, err))
    return {"log_bf": sd.value, "err": sd.err, "by_chain": list(sd.by_replicate), "from_evidences": from_evidence,
            "from_evidences_err": err, "agrees": bool(agrees)}


class HypothesisFit:
    """``fit_at(h, prior_scale, seed)`` of :func:`compare`: one hypothesis fitted to one spectrum by ``run_fit``.
    A plain object, not a closure, so that worker processes can receive it (see :func:`evidence_runs`); the series
    fit (``series.SeriesFit``) is one too."""

    def __init__(self, data, spec, **run_fit_kwargs):
        self.data, self.spec, self.kwargs = data, spec, run_fit_kwargs

    def quiet(self):
        """The same fit without progress bars (for workers, whose bars would interleave)."""
        twin = copy.copy(self)
        twin.kwargs = {**self.kwargs, "progress": False}
        return twin

    def run_fit(self, **kwargs):
        """``api.run_fit`` of this fit's data and spec with ``kwargs`` and the fit's own settings."""
        from .api import run_fit
        return run_fit(self.data, self.spec, **kwargs, **self.kwargs)

    def __call__(self, h, scale, fit_seed):
        return self.run_fit(command="compare", seed=fit_seed, hypothesis=h, prior_scale=scale)


def single_spectrum_sensitivity(fit, h, log_z):
    """The ``sensitivity`` of :func:`evidence_runs` for one spectrum (:func:`prior_sensitivity`)."""
    return prior_sensitivity(fit.posterior, h, log_z)


def default_workers(n_tasks):
    """Worker processes for ``n_tasks`` hypotheses: ``STSBAYES_WORKERS`` when set, else one per core, at most one
    per hypothesis. Each fit compiles its model and estimates its evidence on one core; only NUTS uses more, so
    hypotheses side by side use a 2-core machine fully."""
    text = os.environ.get("STSBAYES_WORKERS")
    if text:
        if not text.isdigit() or int(text) < 1:
            raise InputError(f"STSBAYES_WORKERS={text!r} must be a whole number >= 1 (1 runs the hypotheses one "
                             "after the other)")
        return min(int(text), max(1, n_tasks))
    return max(1, min(n_tasks, os.cpu_count() or 1))


def compare(data, spec=None, *, hypotheses=H.HYPOTHESES, tip=None, metal_tip=False, prior_odds=None, chains=4,
            draws=1000, tune=1000, seed=None, progress=None, smc_draws=DEFAULT_SMC_DRAWS, replicates=MIN_REPLICATES,
            sampler="nutpie", smc_start="reference", fit_modulation=False, backend="numba", input_record=None,
            prior_rerun=True, workers=None, max_draws=None):
    """Fit every hypothesis to one spectrum and compare them by their evidence; returns a :class:`CompareResult`.

    ``data`` is a file path, a Spectrum or a FitData; ``spec`` supplies the background and priors (its bound
    states are replaced by each hypothesis's); ``tip`` a calibration (result, directory or posterior.nc) or
    ``metal_tip=True``. ``prior_odds`` ({name: odds}, 1 where absent) change the posterior model probabilities,
    not the Bayes factors. ``smc_draws`` particles and ``replicates`` (>= 4) runs per SMC estimate;
    ``smc_start`` "reference" (default) or "prior" (see the module docstring for the cost). ``prior_rerun``
    re-fits a hypothesis at the halved / doubled bound-state priors where reweighting is unreliable (k̂ > 0.7);
    False skips that cost and caps such verdicts at "positive". ``workers`` processes fit hypotheses side by side
    (default :func:`default_workers`; 1 runs them in this process, keeping each fit's live model in ``fits``).
    ``max_draws``: a fit short only of length is re-run with doubled draws up to this many (``api.run_fit``).
    """
    from .api import _as_data, _tip_density, check_max_draws
    from .models.spec import load_spec

    names = check_hypotheses(hypotheses)
    odds = check_prior_odds(prior_odds, names)
    _check_settings(smc_draws, replicates, smc_start, chains, draws, tune)
    check_max_draws(max_draws, draws)
    if tip is not None and metal_tip:
        raise InputError("give either --tip or --metal-tip, not both")
    spec = load_spec(spec if spec is not None else {})
    data = _as_data(data)
    seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)
    t_start = time.perf_counter()

    # the calibration's tip density, read once here rather than in every fit (a result directory or posterior.nc
    # would be loaded again by each)
    fit_at = HypothesisFit(data, spec, tip=_tip_density(tip), metal_tip=True if metal_tip else None, sampler=sampler,
                           chains=chains, draws=draws, tune=tune, progress=progress, fit_modulation=fit_modulation,
                           backend=backend, input_record=input_record, max_draws=max_draws)
    settings = dict(smc_start=smc_start, smc_draws=smc_draws, replicates=replicates, progress=bool(progress))
    runs = evidence_runs(names, fit_at, single_spectrum_sensitivity, seed=seed, settings=settings,
                         prior_rerun=prior_rerun, workers=workers)
    trees = {h: runs[h]["fit"].tree for h in names}
    timing = {"total": time.perf_counter() - t_start, **{h: runs[h]["timing_s"]["total"] for h in names}}
    evidence_settings = evidence_record(settings, prior_rerun)
    summary = assemble_summary(runs, hypotheses=names, prior_odds=odds, seed=seed, sampler=sampler,
                               evidence_settings=evidence_settings, input_record=input_record, timing=timing)
    return CompareResult(summary, trees, fits={h: runs[h]["fit"] for h in names})


def evidence_record(settings, prior_rerun):
    """The summary's record of how the evidences were estimated."""
    smc_start, smc_draws, replicates = settings["smc_start"], settings["smc_draws"], settings["replicates"]
    return {"smc": {"start": smc_start, "draws": smc_draws, "replicates": replicates,
                    **({"reference": {"df": REFERENCE_DF, "scale": REFERENCE_SCALE}}
                       if smc_start == "reference" else {})},
            "bridge": {"replicates": replicates}, "prior_rerun": bool(prior_rerun)}


PARENT_POLL_S = 1.0  # how often a worker checks that the process which started it is still there


def _exit_with_parent(parent_pid):
    """Worker initializer: a daemon thread ends the worker once the process that started it is gone. A killed
    ``compare`` (SIGTERM, SIGKILL, a batch system's time limit) would otherwise leave its spawned workers fitting
    on, orphaned, for as long as their hypothesis takes, holding the cores the next run needs."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def worker_pool(workers):
    """The process pool that fits hypotheses side by side: spawned (no forked PyTensor/numba state), each worker
    ending with its parent (:func:`_exit_with_parent`)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))


def evidence_runs(names, fit_at, sensitivity, *, seed, settings, prior_rerun, workers=None):
    """Fit every hypothesis, estimate its evidence twice and its prior sensitivity; the ``runs`` that
    :func:`assemble_summary` takes. Shared by ``compare`` and ``series``.

    ``fit_at(h, prior_scale, seed)`` returns a FitResult with its live model; ``sensitivity(fit, h, log_z)`` the
    halved / doubled reweightings (:func:`prior_sensitivity`); ``settings`` the evidence settings
    (smc_start, smc_draws, replicates, progress). Where a reweighting is unreliable and ``prior_rerun`` is set, the
    hypothesis is fitted again at the scaled prior (:func:`rerun_at_scale`).

    With ``workers`` > 1 (default :func:`default_workers`) the hypotheses run in that many spawned processes (``fit_at`` and ``sensitivity`` must
    then pickle, and ``fit_at.quiet()`` give the fit without progress bars). Compiling a model, the mode search,
    bridge sampling and SMC each use one core, NUTS all of them: side by side, one hypothesis's single-core work
    overlaps another's sampling. Seeds depend only on the hypothesis's place in ``names``: the results are the
    same either way; only the fits' live models stay behind in the workers (``fit.model`` is None).
    """
    workers = min(int(default_workers(len(names)) if workers is None else workers), len(names))
    if workers <= 1:
        return {h: hypothesis_run(i, h, fit_at, sensitivity, seed, settings, prior_rerun)
                for i, h in enumerate(names)}
    quiet = {**settings, "progress": False}
    runs = {}
    t0 = time.perf_counter()
    with worker_pool(workers) as pool:
        futures = {pool.submit(hypothesis_run, i, h, fit_at.quiet(), sensitivity, seed, quiet, prior_rerun): h
                   for i, h in enumerate(names)}
        if settings.get("progress"):
            print(f"fitting {', '.join(names)} in {workers} processes", file=sys.stderr, flush=True)
        for future in as_completed(futures):
            h = futures[future]
            runs[h] = future.result()
            if settings.get("progress"):
                print(f"  {h}: fitted and its evidence estimated ({len(runs)}/{len(names)}, "
                      f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return {h: runs[h] for h in names}


def hypothesis_run(i, h, fit_at, sensitivity, seed, settings, prior_rerun):
    """One entry of :func:`evidence_runs`: hypothesis ``h``, ``i``-th in the list (its seeds follow from that)."""
    t0 = time.perf_counter()
    fit = fit_at(h, 1.0, seed + 101 * i)
    t_fit = time.perf_counter() - t0
    evidence, estimates, t_ev = _estimate_evidence(fit, seed=seed + 101 * i + 7, **settings)
    sensitivity_h = sensitivity(fit, h, (evidence.value, evidence.err))
    t_rerun = time.perf_counter()
    reruns = {}
    for j, (label, factor) in enumerate(SCALINGS.items()):
        if prior_rerun and sensitivity_h[label].needs_rerun:
            scaled = fit_at(h, factor, seed + 101 * i + 31 + j)
            sensitivity_h[label], trusted = rerun_at_scale(sensitivity_h[label], scaled,
                                                           seed=seed + 101 * i + 41 + j, **settings)
            reruns[label] = {"converged": bool(scaled.converged), "trusted": trusted,
                             "failed_gates": scaled.summary()["diagnostics"].get("failed_gates", [])}
    return {"fit": fit, "evidence": evidence, "estimates": estimates, "sensitivity": sensitivity_h,
            "reruns": reruns,
            "timing_s": {**fit.summary().get("timing_s", {}), "fit_total": t_fit, **t_ev,
                         "prior_rerun": time.perf_counter() - t_rerun, "total": time.perf_counter() - t0}}


# ----------------------------------------------------------------------------------------------- results


class CompareResult:
    """A finished comparison: ``summary()`` (the compare summary.json) and ``trees`` (hypothesis -> DataTree)."""

    def __init__(self, summary, trees, fits=None, datas=None):
        self._summary = summary
        self.trees = dict(trees)
        # the per-hypothesis FitResults (with their live pm.Models) while this process lives; not saved
        self.fits = fits or {}
        self.datas = datas  # a series' spectra (FitData), while this process lives

    def summary(self):
        return self._summary

    @property
    def hypotheses(self):
        return list(self._summary["hypotheses"])

    @property
    def converged(self):
        return bool(self._summary["diagnostics"]["converged"])

    @property
    def exit_code(self):
        """0 when every hypothesis converged, 3 otherwise (architecture.md)."""
        return 0 if self.converged else 3

    def save(self, out_dir):
        """Write posterior_<h>.nc for every hypothesis and summary.json into ``out_dir``, all or nothing.

        Every file is first written to a temporary name; only when all are complete are they renamed, the
        summary last, so an error leaves the previous contents (or nothing) and never half a result.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_jsonable(self._summary), indent=2) + "\n"
        with contextlib.ExitStack() as stack:
            # contexts leave in reverse order: the summary's, entered first, is renamed last, so a summary.json
            # never describes posterior files that are not all in place
            tmp = stack.enter_context(atomic_path(out / "summary.json"))
            with open(tmp, "xb") as handle:
                handle.write(text.encode("utf-8"))
            for h, tree in self.trees.items():
                tmp = stack.enter_context(atomic_path(out / f"posterior_{h}.nc"))
                tree.attrs["compare_summary"] = json.dumps(_jsonable(self._summary))
                tree.to_netcdf(tmp, engine="h5netcdf")
        return out

    def report(self, out_dir):
        if self._summary.get("command") == "series":
            from .reports.series import write_series_report
            return write_series_report(self, Path(out_dir))
        from .reports.compare import write_compare_report
        return write_compare_report(self, Path(out_dir))


def load_compare(path):
    """Reload a compare result directory (summary.json + posterior_<h>.nc) without the script that made it."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise InputError(f"{summary_path} does not exist: give a directory written by `stsbayes compare`")
    try:
        summary = json.loads(summary_path.read_text())
    except ValueError as err:
        raise InputError(f"{summary_path} is not valid JSON ({err}): re-run the comparison") from None
    if summary.get("command") not in ("compare", "series"):
        raise InputError(f"{summary_path} was written by `stsbayes {summary.get('command')}`, not compare or series")
    trees = {}
    for h in summary["hypotheses"]:
        nc = path / f"posterior_{h}.nc"
        if not nc.is_file():
            raise InputError(f"{nc} is missing: the comparison is incomplete, re-run it")
        try:
            trees[h] = xr.open_datatree(nc, engine="h5netcdf").load()
        except (OSError, ValueError) as err:
            raise InputError(f"{nc} is not a readable stsbayes result ({err}): re-run the comparison") from None
    return CompareResult(summary, trees)


__all__ = ["CompareResult", "compare", "load_compare", "parse_prior_odds", "reference_smc_evidence"]
