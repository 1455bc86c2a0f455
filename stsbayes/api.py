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
from .inference import PB_REFERENCE, FitData, TipDensity, build_model, run_nuts
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


def run_fit(data, spec, *, command="fit", tip=None, metal_tip=None, reference=None, fit_modulation=False,
            sampler="nutpie", chains=4, draws=1000, tune=1000, seed=None, progress=None, input_record=None,
            backend="numba"):
    """Build, sample, check and package one fit. Returns a :class:`FitResult` (converged or not)."""
    spec = load_spec(spec if spec is not None else {})
    ref = _reference(reference)
    density = _tip_density(tip)
    model, info = build_model(data, spec, tip_density=density, metal_tip=metal_tip, reference=ref,
                              fit_modulation=fit_modulation)
    trace, timing, seed = run_nuts(model, sampler=sampler, chains=chains, draws=draws, tune=tune, seed=seed,
                                   progress=progress, backend=backend)
    posterior = trace["posterior"].to_dataset()
    table = parameter_table(posterior, info.parameters)
    parameters = summarize(table)
    # canonical names of bound-state quantities: eps_0 -> eps[0]
    parameters = {(n.rsplit("_", 1)[0] + f"[{n.rsplit('_', 1)[1]}]" if n.split("_")[0] in
                   ("eps", "width", "u2", "v2") and n.rsplit("_", 1)[1].isdigit() else n): v
                  for n, v in parameters.items()}
    divergences = int(np.asarray(trace["sample_stats"]["diverging"]).sum())
    diag = gates(parameters, divergences)
    stuck = chain_modes(table)
    if stuck:
        diag["chains_in_different_modes"] = stuck
        diag["converged"] = False
        diag["failed_gates"].append("chains in different modes: " + ", ".join(stuck))
    # expected spectra and noise scale per draw, for checks, bands and the pointwise log-likelihood
    mu = np.asarray(posterior["mu"])
    if "sigma" in posterior:
        sig = np.asarray(posterior["sigma"])[..., None] * np.ones(mu.shape[-1])
    elif "sigma_scale" in posterior:
        sig = np.asarray(posterior["sigma_scale"])[..., None] * np.maximum(data.sigma, 1e-300)
    else:
        sig = np.full(mu.shape, float(spec.observation.get("sigma", 1.0)))
    nu = np.asarray(posterior["nu"]) if "nu" in posterior else spec.observation.get("nu")
    if spec.observation.get("noise", "normal") == "student_t":
        nu_arr = np.broadcast_to(np.asarray(nu, float)[..., None] if np.ndim(nu) else nu, mu.shape)
        loglik = stats.t.logpdf(data.y, nu_arr, loc=mu, scale=sig)
    else:
        nu_arr = None
        loglik = stats.norm.logpdf(data.y, loc=mu, scale=sig)
    rng = np.random.default_rng(seed)
    ppc = predictive_check(data.y, _thin(mu, PREDICTION_DRAWS), _thin(sig, PREDICTION_DRAWS), rng,
                           None if nu_arr is None else _thin(nu_arr[..., 0], PREDICTION_DRAWS))
    diag["ppc"] = ppc
    with model:
        prior = pm.sample_prior_predictive(draws=500, var_names=[n for n in info.parameters], random_seed=seed)
    prior_ds = prior["prior"].to_dataset()  # PyMC 6 returns a DataTree
    keep = [n for n in posterior.data_vars if n != "mu"]
    predictions = _thin(mu, PREDICTION_DRAWS)
    groups = {
        "posterior": posterior[keep],
        "sample_stats": trace["sample_stats"].to_dataset(),
        "log_likelihood": xr.Dataset({"y": (("chain", "draw", "bias_mV"), loglik)},
                                     coords={"chain": posterior.chain, "draw": posterior.draw,
                                             "bias_mV": data.bias}),
        "prior": prior_ds,
        "observed_data": xr.Dataset({"y": ("bias_mV", data.y)}, coords={"bias_mV": data.bias}),
        "predictions": xr.Dataset({"mu": (("sample", "bias_mV"), predictions),
                                   "sigma": (("sample", "bias_mV"), _thin(sig, PREDICTION_DRAWS))},
                                  coords={"bias_mV": data.bias}),
    }
    if data.sigma is not None:
        groups["observed_data"]["sigma"] = ("bias_mV", data.sigma)
    tree = xr.DataTree.from_dict({name: xr.DataTree(ds) for name, ds in groups.items()})
    summary = {
        "schema_version": SCHEMA_VERSION, "command": command, "stsbayes_version": package_versions()["stsbayes"],
        "seed": seed,
        "input": {"temperature_K": data.temperature_K, "modulation": data.modulation,
                  "units": data.units, **(input_record or {})},
        "sampler": {"name": sampler, "chains": chains, "draws": draws, "tune": tune},
        "parameters": parameters,
        "fixed": info.fixed,
        "diagnostics": diag,
        "timing_s": timing,
    }
    if command == "calibrate-tip":
        post = posterior
        density = TipDensity.from_draws(post["delta_tip"], post["gamma_tip"], post["T_eff"])
        tree.attrs["tip_density"] = json.dumps(density.to_dict())
        summary["tip_density"] = density.to_dict()
    elif density is not None:
        summary["tip_prior"] = density.to_dict()
    tree.attrs["summary"] = json.dumps(_jsonable(summary))
    tree.attrs["provenance"] = json.dumps(_jsonable({
        "spec": spec.as_dict(), "reference": reference, "data": {k: v for k, v in data.metadata.items()
                                                                   if k not in ("comments",)},
        "seed": seed, "sampler": summary["sampler"], "versions": package_versions(),
        "grid": {"step_meV": info.grid.step, "points": 2 * info.grid.half + 1, "fft_size": info.grid.fft_size}}))
    return FitResult(tree, summary)


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
