"""The Python API that scripts use: ``calibrate_tip`` and ``fit``; the CLI is a thin layer over it."""

import json
from pathlib import Path

import numpy as np
import pymc as pm
import xarray as xr
from scipy import stats

from .diagnostics.gates import chain_modes, gates, parameter_table, summarize
from .diagnostics.ppc import predictive_check
from .errors import InputError
from .inference import PB_REFERENCE, FitData, TipDensity, run_nuts
from .inference import discrepancy as D
from .inference.model import build_joint_model
from .models.spec import load_spec
from .results import SCHEMA_VERSION, FitResult, _jsonable, load_result, package_versions

PREDICTION_DRAWS = 400  # posterior draws of the expected spectrum kept for bands and checks


def _as_data(data, **overrides):
    if isinstance(data, FitData):
        return data
    if isinstance(data, (str, Path)):
        from .io import load
        load_kwargs = {k: v for k, v in overrides.items() if v is not None}
        return FitData.from_spectrum(load(data, **load_kwargs))
    return FitData.from_spectrum(data)


def _tip_density(tip):
    if tip is None or isinstance(tip, TipDensity):
        return tip
    if isinstance(tip, FitResult):
        return tip.tip_density()
    return load_result(tip).tip_density()


def _reference(name):
    if name in (None, "pb"):
        return PB_REFERENCE if name == "pb" else None
    if isinstance(name, str) and name.startswith("dynes:"):
        return None  # gap priors come from the spec
    raise InputError(f"unknown reference {name!r}: use pb or dynes:N (N gaps, priors from --spec)")


def _thin(x, n):
    """Evenly spaced draws of a (chain, draw, ...) array, flattened to (n, ...)."""
    flat = x.reshape(-1, *x.shape[2:])
    idx = np.linspace(0, flat.shape[0] - 1, min(n, flat.shape[0])).astype(int)
    return flat[idx]


def _canonical(name):
    """eps_0 -> eps[0] (also with a joint fit's label prefix, on:eps_0 -> on:eps[0])."""
    label, _, base = name.rpartition(":")
    stem, _, idx = base.rpartition("_")
    if stem in ("eps", "width", "u2", "v2") and idx.isdigit():
        base = f"{stem}[{idx}]"
    return f"{label}:{base}" if label else base


def _draws_of(posterior, name, entry, shape):
    """A per-draw quantity (chain, draw) from the posterior, or a fixed number from the spec, broadcast to shape."""
    if name in posterior:
        return np.broadcast_to(np.asarray(posterior[name], float), shape)
    return np.full(shape, float(entry))


def _pointwise(posterior, data, spec, label, seed):
    """Log-likelihood per draw and point, predictive check, thinned predictions of one spectrum.

    With a correlated discrepancy (``inference/discrepancy.py``): ``gp`` — the GP draw is part of the mean, so the
    pointwise terms, the predictive check's residuals and its replicated data all use mu + f; ``ar1`` — the term is
    marginalised, so the pointwise terms are the *conditional* (one-step-ahead) densities ln p(y_i | y_1..y_(i-1)),
    which sum to the model's total ln L (PSIS-LOO on them is leave-one-out of these conditionals), and the check
    uses the one-step-ahead predictive: its residuals (innovations) are white and its PIT uniform when the model
    holds. The stored predictions carry the marginal predictive sd sqrt(sigma² + discrepancy_scale²) for ar1.
    """
    nm = (lambda n: n) if label is None else (lambda n: f"{label}:{n}")
    obs = spec.observation
    kind = obs.get("discrepancy", "none")
    mu = np.asarray(posterior[nm("mu")])
    if kind == "gp":
        mu = mu + np.asarray(posterior[nm("discrepancy")])
    if nm("sigma") in posterior:
        sig = np.asarray(posterior[nm("sigma")])[..., None] * np.ones(mu.shape[-1])
    elif nm("sigma_scale") in posterior:
        sig = np.asarray(posterior[nm("sigma_scale")])[..., None] * np.maximum(data.sigma, 1e-300)
    else:
        sig = np.full(mu.shape, float(obs.get("sigma", 1.0)))
    nu = np.asarray(posterior[nm("nu")]) if nm("nu") in posterior else obs.get("nu")
    check_mu, check_sig, band_sig = mu, sig, sig
    if obs.get("noise", "normal") == "student_t":
        nu_arr = np.broadcast_to(np.asarray(nu, float)[..., None] if np.ndim(nu) else nu, mu.shape)
        loglik = stats.t.logpdf(data.y, nu_arr, loc=mu, scale=sig)
    elif kind == "ar1":
        nu_arr = None
        draws_shape = mu.shape[:-1]
        d_scale = _draws_of(posterior, nm("discrepancy_scale"), obs.get("discrepancy_scale"), draws_shape)
        d_length = _draws_of(posterior, nm("discrepancy_length"), obs.get("discrepancy_length"), draws_shape)
        n = mu.shape[-1]
        terms, mean, var = D.ar1_conditionals(data.bias, (data.y - mu).reshape(-1, n), (sig**2).reshape(-1, n),
                                              d_scale.ravel(), d_length.ravel())
        loglik = terms.reshape(mu.shape)
        check_mu, check_sig = mu + mean.reshape(mu.shape), np.sqrt(var).reshape(mu.shape)
        band_sig = np.sqrt(sig**2 + d_scale[..., None] ** 2)
    else:
        nu_arr = None
        loglik = stats.norm.logpdf(data.y, loc=mu, scale=sig)
    rng = np.random.default_rng(seed)
    ppc = predictive_check(data.y, _thin(check_mu, PREDICTION_DRAWS), _thin(check_sig, PREDICTION_DRAWS), rng,
                           None if nu_arr is None else _thin(nu_arr[..., 0], PREDICTION_DRAWS))
    dim = nm("bias_mV")
    coords = {"chain": posterior.chain, "draw": posterior.draw, dim: data.bias}
    predictions = {nm("mu"): (("sample", dim), _thin(mu, PREDICTION_DRAWS)),
                   nm("sigma"): (("sample", dim), _thin(band_sig, PREDICTION_DRAWS))}
    if kind == "gp":
        predictions[nm("discrepancy")] = (("sample", dim),
                                          _thin(np.asarray(posterior[nm("discrepancy")]), PREDICTION_DRAWS))
    groups = {
        "log_likelihood": xr.Dataset({nm("y"): (("chain", "draw", dim), loglik)}, coords=coords),
        "observed_data": xr.Dataset({nm("y"): (dim, data.y)}, coords={dim: data.bias}),
        "predictions": xr.Dataset(predictions, coords={dim: data.bias}),
    }
    if data.sigma is not None:
        groups["observed_data"][nm("sigma")] = (dim, data.sigma)
    return groups, ppc


# An SIS fit whose tip is fixed elsewhere (calibrated density, joint partner) leaves T_eff and the gap split to
# posterior tails that are sharper than in a calibration: at 0.9 the two-step and joint fits of
# tests/test_propagation.py showed one divergence in 4000 draws each (at T_eff near the bath), none at 0.95.
BORROWED_TIP_TARGET_ACCEPT = 0.95


def run_fit(data, spec, *, command="fit", tip=None, metal_tip=None, reference=None, fit_modulation=False,
            sampler="nutpie", chains=4, draws=1000, tune=1000, seed=None, progress=None, input_record=None,
            backend="numba", hypothesis=None, labels=None, prior_scale=1.0, target_accept=None, build=None,
            max_draws=None):
    """Build, sample, check and package one fit. Returns a :class:`FitResult` (converged or not).

    ``build`` (a series, ``stsbayes.series``): a callable returning (model, ModelInfo) used instead of the
    spec's own model; its per-spectrum variables follow the joint naming (``<label>:mu`` ...).

    ``target_accept`` (NUTS): default 0.9, and 0.95 for an SIS fit whose tip comes from elsewhere (a calibrated
    density or a joint partner spectrum; see ``BORROWED_TIP_TARGET_ACCEPT``).

    ``data`` is one spectrum, or with ``labels`` a list of spectra fitted jointly (shared tip and T_eff).

    ``max_draws`` (default ``draws``: off): a run that fails the gates only by R-hat or bulk ESS, with no
    divergence, no chains in different modes and R-hat <= ``EXTENDABLE_R_HAT`` (chains too short, not a sampler
    in trouble), is sampled again with twice the draws per chain, while that stays within ``max_draws``. The
    shorter runs are listed in ``diagnostics.extended``; their time counts in ``timing_s``.
    """
    datas = list(data) if labels is not None else [data]
    if labels is not None and isinstance(spec, dict) and set(labels) <= set(spec):
        spec = {k: load_spec(v if v is not None else {}) for k, v in spec.items()}  # one spec per spectrum
    else:
        spec = load_spec(spec if spec is not None else {})
    ref = ({k: _reference(v) for k, v in reference.items()} if isinstance(reference, dict)
           else _reference(reference))
    density = _tip_density(tip)
    model, info = build() if build is not None else build_joint_model(
        datas, spec, labels=labels, tip_density=density, metal_tip=metal_tip, reference=ref,
        fit_modulation=fit_modulation, hypothesis=hypothesis, prior_scale=prior_scale)
    if target_accept is None:
        borrowed = not info.metal_tip and (density is not None or labels is not None)
        target_accept = BORROWED_TIP_TARGET_ACCEPT if borrowed else 0.9
    max_draws, requested = check_max_draws(max_draws, draws), draws
    extended, timing = [], {}
    while True:
        trace, spent, seed = run_nuts(model, sampler=sampler, chains=chains, draws=draws, tune=tune, seed=seed,
                                      progress=progress, backend=backend, scan=info.scan, target_accept=target_accept)
        timing = {k: timing.get(k, 0.0) + v for k, v in spent.items()}
        posterior, parameters, diag = _checked(trace, info)
        if diag["converged"] or not extendable(diag) or 2 * draws > max_draws:
            break
        extended.append({"draws": draws, "seed": seed, "failed_gates": diag["failed_gates"]})
        draws, seed = 2 * draws, seed + 1
    if extended:
        diag["extended"] = extended
    groups = {}
    checks = {}
    for d, label in zip(datas, labels or [None]):
        part, checks[label] = _pointwise(posterior, d, spec[label] if isinstance(spec, dict) else spec, label, seed)
        for name, ds in part.items():
            groups[name] = ds if name not in groups else xr.merge([groups[name], ds])
    if labels is None:
        diag["ppc"] = checks[None]
    else:
        diag["ppc"] = {"passed": all(c["passed"] for c in checks.values()), "by_spectrum": checks}
    with model:
        prior = pm.sample_prior_predictive(draws=500, var_names=[n for n in info.parameters], random_seed=seed)
    # the expected spectrum and a GP discrepancy (one value per point and draw) are kept thinned in predictions
    mus = {"mu", "discrepancy"} if labels is None else {f"{x}:{n}" for x in labels for n in ("mu", "discrepancy")}
    groups = {"posterior": posterior[[n for n in posterior.data_vars if n not in mus]],
              "sample_stats": trace["sample_stats"].to_dataset(),
              "prior": prior["prior"].to_dataset(),  # PyMC 6 returns a DataTree
              **groups}
    tree = xr.DataTree.from_dict({name: xr.DataTree(ds) for name, ds in groups.items()})
    first = datas[0]
    summary = {
        "schema_version": SCHEMA_VERSION, "command": command, "stsbayes_version": package_versions()["stsbayes"],
        "seed": seed,
        "input": {"temperature_K": first.temperature_K, "modulation": first.modulation,
                  "units": first.units, **(input_record or {})},
        "sampler": {"name": sampler, "chains": chains, "draws": draws, "tune": tune,
                    **({"max_draws": max_draws} if max_draws > requested else {})},
        "parameters": parameters,
        "fixed": info.fixed,
        "diagnostics": diag,
        "timing_s": timing,
    }
    if labels is not None:
        summary["spectra"] = list(labels)
    if command == "calibrate-tip":
        post = posterior
        density = TipDensity.from_draws(post["delta_tip"], post["gamma_tip"], post["T_eff"])
        tree.attrs["tip_density"] = json.dumps(density.to_dict())
        summary["tip_density"] = density.to_dict()
    elif density is not None:
        summary["tip_prior"] = density.to_dict()
    tree.attrs["summary"] = json.dumps(_jsonable(summary))
    tree.attrs["provenance"] = json.dumps(_jsonable({
        "spec": ({k: v.as_dict() for k, v in spec.items()} if isinstance(spec, dict) else spec.as_dict()),
        "reference": reference, "hypothesis": hypothesis, "prior_scale": prior_scale, "labels": labels,
        "data": {k: v for k, v in first.metadata.items() if k not in ("comments",)} if labels is None else
        {label: {k: v for k, v in d.metadata.items() if k not in ("comments",)} for label, d in zip(labels, datas)},
        "seed": seed, "sampler": summary["sampler"], "versions": package_versions(),
        "grid": {"step_meV": info.grid.step, "points": 2 * info.grid.half + 1, "fft_size": info.grid.fft_size}}))
    return FitResult(tree, summary, model=model)


EXTENDABLE_R_HAT = 1.05  # above it, chains disagree beyond what length cures: more draws would only cost time


def check_max_draws(max_draws, draws):
    """``max_draws`` as a number of draws per chain (``draws`` when None); at least ``draws``."""
    if max_draws is None:
        return draws
    if int(max_draws) != max_draws or max_draws < draws:
        raise InputError(f"--max-draws {max_draws} must be a whole number no smaller than --draws {draws}")
    return int(max_draws)


def extendable(diag):
    """Whether a run failed its gates only for want of length: no divergence, no chains apart, R-hat close."""
    return (not diag["converged"] and diag["divergences"] == 0 and not diag.get("chains_in_different_modes")
            and diag["max_r_hat"] <= EXTENDABLE_R_HAT)


def _checked(trace, info):
    """The posterior, its parameter summary, and the gates' verdict on a sampled ``trace``."""
    posterior = trace["posterior"].to_dataset()
    table = parameter_table(posterior, info.parameters)
    parameters = {_canonical(n): v for n, v in summarize(table).items()}
    diag = gates(parameters, int(np.asarray(trace["sample_stats"]["diverging"]).sum()))
    stuck = chain_modes(table)
    if stuck:
        diag["chains_in_different_modes"] = stuck
        diag["converged"] = False
        diag["failed_gates"].append("chains in different modes: " + ", ".join(stuck))
    return posterior, parameters, diag


def calibrate_tip(data, spec=None, *, reference="pb", **kwargs):
    """Calibrate a superconducting tip on a reference spectrum (Pb(111) by default).

    The result's posterior over (delta_tip, gamma_tip, T_eff) is also stored as a normalised density, the tip prior
    of later fits (``fit(..., tip=result)``).
    """
    spec = load_spec(spec if spec is not None else {"tip": {"kind": "dynes"}})
    if reference and reference.startswith("dynes:"):
        n = reference.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1 or not isinstance(spec.sample.get("delta"), list) or len(
                spec.sample["delta"]) != int(n):
            raise InputError(f"--reference {reference} needs a spec whose sample.delta lists {n} gap priors")
    if spec.metal_tip:
        raise InputError("calibrate-tip needs a superconducting tip: the spec says tip.kind = \"metal\"")
    return run_fit(_as_data(data), spec, command="calibrate-tip", reference=reference, **kwargs)


def fit(data, spec, *, tip=None, metal_tip=False, **kwargs):
    """Fit a sample spectrum; ``tip`` is a calibration (result, directory or posterior.nc) whose tip density
    becomes the tip prior, ``metal_tip`` a normal-metal tip."""
    if tip is not None and metal_tip:
        raise InputError("give either --tip or --metal-tip, not both")
    return run_fit(_as_data(data), spec, command="fit", tip=tip, metal_tip=True if metal_tip else None, **kwargs)


def fit_joint(spectra, spec, *, tip=None, metal_tip=False, reference=None, **kwargs):
    """Fit several spectra of one tip in one junction together: ``spectra`` maps a label to each spectrum (a file,
    Spectrum or FitData). The tip (delta_tip, gamma_tip) and T_eff are shared; each spectrum keeps its own sample
    and observation parameters, named ``<label>:<name>`` (``on:delta[0]``). Compare spectra with
    :func:`difference`."""
    if tip is not None and metal_tip:
        raise InputError("give either tip or metal_tip, not both")
    if not isinstance(spectra, dict) or len(spectra) < 2:
        raise InputError("a joint fit needs a dict of at least two labelled spectra, e.g. {'on': a, 'off': b}")
    labels = list(spectra)
    datas = [_as_data(d) for d in spectra.values()]
    return run_fit(datas, spec, command="fit", tip=tip, metal_tip=True if metal_tip else None,
                   reference=reference, labels=labels, **kwargs)


def difference(result, name, a, b, *, level=0.9):
    """Posterior of ``b:name - a:name`` in a joint fit (e.g. ``difference(r, "delta[0]", "off", "on")``):
    mean, sd, a central credible interval at ``level``, and P(decrease) = P(b:name < a:name)."""
    post = result.posterior

    def values(label):
        base, _, idx = name.partition("[")
        var = f"{label}:{base}"
        if var not in post:
            raise InputError(f"{var} is not in this result: use a parameter name such as delta[0] and the labels "
                             f"{', '.join(result.summary().get('spectra', []))}")
        x = np.asarray(post[var])
        return x[..., int(idx.rstrip("]"))] if idx else x

    diff = (values(b) - values(a)).ravel()
    lo, hi = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])
    return {"mean": float(diff.mean()), "sd": float(diff.std(ddof=1)), "interval": [float(lo), float(hi)],
            "level": level, "p_decrease": float(np.mean(diff < 0))}
