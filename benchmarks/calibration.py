"""Tip-calibration benchmark: stsbayes (nutpie) against emcee on the same posterior and lmfit on the peer's model.

What is measured, and why
-------------------------
Issue 4's must-show: the Pb(111) tip calibration (4 chains x 1000 draws after 1000 tuning steps), its wall time
including compilation, its convergence gates and its effective samples per second, in the same run as the two ways
such a calibration is done without stsbayes.

The case: the Pb-Pb SIS reference spectrum at the paper's values (tests/test_fit_cli.py ``PB``): Dynes tip
delta_tip 1.37 meV, gamma_tip 0.005 meV; Pb sample gaps 1.26/1.41 meV, gammas 0.005 meV, weights 0.5/0.5; T_eff
0.32 K; 0.014 mV rms modulation; bath 0.08 K; 161 biases over +-3.2 mV; Gaussian noise 0.03 G_n, seed 1. It is
written by ``stsbayes simulate --format nanonis`` and read back with ``stsbayes.load`` as a user's file would be.

Methods
- **stsbayes**: ``stsbayes.calibrate_tip(spectrum, reference="pb", chains=4, draws=1000, tune=1000)`` -- nutpie,
  started at the MAP. Wall time around the whole call (model build, compile, MAP, sampling, checks, packaging),
  with the summary's ``timing_s`` split (compile incl. the MAP; sample). Gates as the summary reports them.
- **emcee on the same likelihood**: the very PyMC model ``calibrate_tip`` builds (``build_model(data, spec,
  reference=PB_REFERENCE)``), its log density with the Jacobian on the flat unconstrained vector (the space nutpie
  samples), compiled with PyTensor's NUMBA mode. ``emcee.EnsembleSampler`` (stretch move) with 32 walkers (more than
  2 x 13 dimensions), evaluated by a pool of 2 processes (the same 2 cores nutpie's 4 chains share), started in a
  small Gaussian ball around the MAP (``find_map``, as stsbayes starts; ball sd = 0.1 x the conditional sd from the
  Hessian's diagonal there). It runs for a fixed wall-time budget: by default as many seconds as stsbayes took in
  all, compilation included, so the setup (compile, MAP) is extra time emcee gets on top. Burn-in: 2 x the largest
  integrated autocorrelation time (emcee's estimator), at most half the run. ESS of the same constrained quantities
  by the same estimator the gates use (``arviz_stats.ess``, bulk, walkers as chains -- walkers are not
  independent, so this is optimistic if anything; emcee's own N x walkers / tau is reported too).
- **lmfit on the peer's per-bias model**: ``lmfit.minimize`` (Levenberg-Marquardt, MINPACK; finite-difference
  Jacobian) of the refined per-bias trapezoid peer (benchmarks/peers.py; the level forward.py found to meet the
  accuracy target: step 0.0025 meV, 8 modulation nodes), fitting delta_tip, gamma_tip, T_eff, the two sample gaps
  and gammas, weight[0] and g_n (bias offset and background held at 0, as such fits usually are) from a start a user
  would type: literature Pb values and g_n = 1 for normalised data. Reported: wall time, model evaluations, the
  estimates and lmfit's stderr (covariance scaled by the reduced chi-square).

The headline ESS per second is the *minimum* over the posterior quantities (the gates' min bulk ESS) divided by
the wall time; the ratio is stsbayes' over emcee's (goal >= 10x). Goal for stsbayes alone: all gates passed in
<= 30 s on 2 cores. Both are moonshots; the numbers say how far off they are.

Run: ``.venv/bin/python benchmarks/calibration.py`` (full: stsbayes' calibration, then emcee for as long again,
then lmfit -- 29 minutes on 2 cores shared at load 4-5) or ``--quick`` (smoke test: 4 x 40 draws after 60 tuning
steps, a 20 s emcee budget, lmfit on the coarsest peer grid and at most 60 evaluations; numbers not meaningful. It
still compiles the model and finds the MAP twice, which alone took ~5 minutes on 2 cores shared at load 5-7; 13
minutes in all). Prints a table and writes
benchmarks/results/calibration.json (``--quick``: calibration-quick.json) atomically.
"""

import argparse
import datetime
import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import peers
from peers import fmt, machine_info, refine_level, write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# ---------------------------------------------------------------------------------------------------- the case
PB = {"tip": {"kind": "dynes", "delta": 1.37, "gamma": 0.005},
      "sample": {"delta": [1.26, 1.41], "gamma": [0.005, 0.005], "weight": [0.5, 0.5]},
      "junction": {"T_eff": 0.32, "modulation_rms": 0.014}}
BIAS_START, BIAS_STOP, POINTS = -3.2, 3.2, 161  # mV
NOISE = 0.03  # units of g_n
NOISE_SEED = 1
T_BATH = 0.08  # K
TRUTH = {"delta_tip": 1.37, "gamma_tip": 0.005, "T_eff": 0.32, "delta[0]": 1.26, "delta[1]": 1.41,
         "gamma[0]": 0.005, "gamma[1]": 0.005, "weight[0]": 0.5, "weight[1]": 0.5, "g_n": 1.0, "bias_offset": 0.0,
         "b0": 0.0, "b1": 0.0, "sigma": NOISE}
SEED = 1

# Goals (issue 4; moonshots)
GOAL_WALL_S = 30.0
GOAL_CORES = 2
GOAL_RATIO = 10.0

# emcee
EMCEE_WALKERS = 32  # >= 2 x ndim (13 here), the usual emcee choice
BALL_FRACTION = 0.1  # start ball sd as a fraction of the conditional sd at the MAP
BURN_IN_TAUS = 2.0  # emcee's documentation: discard a few autocorrelation times
RELIABLE_TAUS = 50.0  # emcee's own criterion for a trustworthy tau estimate: run >= 50 tau

# lmfit on the peer: the refinement level forward.py found to meet the accuracy target (quick: the coarsest)
PEER_LEVEL, PEER_LEVEL_QUICK = 1, 0
LMFIT_MAX_NFEV, LMFIT_MAX_NFEV_QUICK = 1500, 60
LMFIT_START = {"delta_tip": 1.35, "gamma_tip": 0.01, "T_eff": 0.3, "delta[0]": 1.25, "delta[1]": 1.40,
               "gamma[0]": 0.01, "gamma[1]": 0.01, "weight[0]": 0.5}  # literature Pb; g_n 1 (normalised data)
LMFIT_BOUNDS = {"delta_tip": (0.8, 2.0), "gamma_tip": (0.001, 0.2), "T_eff": (T_BATH, 2.0), "delta[0]": (0.8, 2.0),
                "delta[1]": (0.8, 2.0), "gamma[0]": (0.001, 0.2), "gamma[1]": (0.001, 0.2), "weight[0]": (0.0, 1.0),
                "g_n": (0.5, 2.0)}

NOTES = [
    "wall times are on a shared machine: see machine.load_average_1_5_15min; stsbayes and emcee ran one after the "
    "other in this process, each using both cores",
    "stsbayes' wall time includes PyTensor/numba compilation; PyTensor caches C modules and numba caches functions, "
    "so a first run on a fresh machine compiles for longer",
    "emcee gets the same wall-clock seconds as stsbayes' whole call for sampling alone; its setup (compile, MAP, "
    "start ball) is on top, so its ESS/s per sampling second flatters it",
    "emcee ESS treats walkers as chains (arviz_stats bulk ESS): ensemble walkers are correlated, so this is an upper "
    "bound on its efficiency; emcee's own estimate, post-burn-in steps x walkers / tau per unconstrained coordinate, "
    "is given too",
    "lmfit fits the peer's model with bias offset, b0, b1 fixed at their true value 0 (stsbayes fits them) and gives "
    "no noise sigma: its stderr comes from the covariance scaled by the reduced chi-square",
    "the SIS peaks fix only the sums delta_tip + delta[k] sharply (physics.md, identifiability); stsbayes' Pb "
    "reference priors (delta ~ N([1.26, 1.41], 0.05), delta_tip ~ N(1.37, 0.1)) place the split, while least "
    "squares has no prior and can settle anywhere along that ridge with a tiny stderr",
]


# ------------------------------------------------------------------------------------------------ the data
def toml(spec):
    """The spec dict as TOML (flat tables of numbers, strings and lists, which is all PB needs)."""
    lines = []
    for table, values in spec.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def simulate_reference(folder):
    """``stsbayes simulate`` of the Pb-Pb reference into a Nanonis .dat; returns the Spectrum read back."""
    import stsbayes
    from stsbayes.cli import main as cli

    spec_path, data_path = folder / "pb.toml", folder / "pb.dat"
    spec_path.write_text(toml(PB))
    args = ["simulate", str(spec_path), "--bias-start", str(BIAS_START), "--bias-stop", str(BIAS_STOP),
            "--points", str(POINTS), "--noise", str(NOISE), "--seed", str(NOISE_SEED), "--format", "nanonis",
            "--out", str(data_path)]
    if cli(args) != 0:
        raise SystemExit("stsbayes simulate failed")
    return stsbayes.load(data_path, temperature_K=T_BATH), "stsbayes " + " ".join(args)


# ------------------------------------------------------------------------------------------------- stsbayes
def run_stsbayes(spectrum, draws, tune):
    import stsbayes

    t0 = time.perf_counter()
    result = stsbayes.calibrate_tip(spectrum, reference="pb", chains=4, draws=draws, tune=tune, seed=SEED,
                                    progress=False)
    wall = time.perf_counter() - t0
    summary = result.summary()
    diag = summary["diagnostics"]
    stats = result.tree["sample_stats"].to_dataset()
    gradients = int(np.asarray(stats["n_steps"]).sum()) if "n_steps" in stats else None
    timing = summary["timing_s"]
    min_ess = diag["min_ess_bulk"]
    return {"call": f"stsbayes.calibrate_tip(spectrum, reference='pb', chains=4, draws={draws}, tune={tune}, "
                    f"seed={SEED}, progress=False)",
            "sampler": summary["sampler"], "wall_s": wall, "timing_s": timing,
            "other_s": wall - timing["compile"] - timing["sample"],
            "gates": {k: diag[k] for k in ("divergences", "max_r_hat", "min_ess_bulk", "converged", "failed_gates")
                      if k in diag} | {"chains_in_different_modes": diag.get("chains_in_different_modes", [])},
            "ppc": diag.get("ppc"),
            "min_ess_bulk_quantity": min(summary["parameters"], key=lambda n: summary["parameters"][n]["ess_bulk"]),
            "ess_per_s_wall": min_ess / wall, "ess_per_s_sampling": min_ess / timing["sample"],
            "gradient_evaluations": gradients,
            "draws_kept": draws * 4,
            "parameters": summary["parameters"]}


# --------------------------------------------------------------------------------------------------- emcee
_LOG_DENSITY = None  # the compiled log density; a module global so that forked pool workers inherit it


def log_density(x):
    value = float(_LOG_DENSITY(x))
    return value if math.isfinite(value) else -np.inf


def compile_log_density(model):
    """ln p(theta | y) + ln|J| on the flat unconstrained vector (nutpie's space), value and, separately, gradient."""
    import pytensor
    from pymc.pytensorf import join_nonshared_inputs

    point = model.initial_point()
    [logp], flat = join_nonshared_inputs(point=point, outputs=[model.logp(jacobian=True)], inputs=model.value_vars)
    value = pytensor.function([flat], logp, mode="NUMBA")
    value.trust_input = True
    grad = pytensor.function([flat], pytensor.grad(logp, flat), mode="NUMBA")
    return value, grad, point


def constrained_draws(model, names, point, chain):
    """(steps, walkers, ndim) unconstrained -> {name: (walkers, steps, ...)} constrained, as the posterior stores."""
    import pytensor
    from pymc.pytensorf import join_nonshared_inputs
    from pytensor.graph.replace import vectorize_graph
    import pytensor.tensor as pt

    outputs = model.replace_rvs_by_values([model[n] for n in names])
    outputs, flat = join_nonshared_inputs(point=point, outputs=outputs, inputs=model.value_vars)
    batch = pt.dmatrix("batch")
    fn = pytensor.function([batch], vectorize_graph(outputs, {flat: batch}), mode="FAST_RUN")
    steps, walkers, ndim = chain.shape
    values = fn(chain.reshape(-1, ndim))
    return {n: np.swapaxes(np.asarray(v).reshape(steps, walkers, *np.shape(v)[1:]), 0, 1)
            for n, v in zip(names, values)}


def start_ball(model, grad_fn, point, rng, walkers):
    """The MAP (stsbayes' own find_map, constrained) on the flat unconstrained vector, and a ball of walkers."""
    from pymc.initial_point import make_initial_point_fn

    from stsbayes.inference.sampling import find_map

    t0 = time.perf_counter()
    start = find_map(model, SEED)
    map_s = time.perf_counter() - t0
    unconstrained = make_initial_point_fn(model=model, overrides=start, jitter_rvs=set())(SEED)
    x_map = np.concatenate([np.ravel(unconstrained[v.name]) for v in model.value_vars])
    # conditional sds from the Hessian's diagonal (central differences of the exact gradient)
    curvature = np.empty(x_map.size)
    for i in range(x_map.size):
        h = 1e-5 * max(1.0, abs(x_map[i]))
        up, down = x_map.copy(), x_map.copy()
        up[i] += h
        down[i] -= h
        curvature[i] = -(grad_fn(up)[i] - grad_fn(down)[i]) / (2 * h)
    sd = 1.0 / np.sqrt(np.where(curvature > 0, curvature, 1.0))
    p0 = x_map + BALL_FRACTION * sd * rng.standard_normal((walkers, x_map.size))
    return x_map, p0, sd, map_s


def run_emcee(spectrum, budget_s, processes, walkers):
    import emcee

    from stsbayes.diagnostics.gates import parameter_table, summarize
    from stsbayes.inference import PB_REFERENCE, FitData, build_model
    from stsbayes.models.spec import load_spec

    global _LOG_DENSITY
    t0 = time.perf_counter()
    # exactly the model calibrate_tip builds (api.calibrate_tip -> run_fit)
    spec = load_spec({"tip": {"kind": "dynes"}})
    data = FitData.from_spectrum(spectrum)
    model, info = build_model(data, spec, reference=PB_REFERENCE)
    value_fn, grad_fn, point = compile_log_density(model)
    ndim = sum(int(np.asarray(v).size) for v in point.values())
    walkers = max(walkers, 2 * ndim)
    rng = np.random.default_rng(SEED)
    x0 = np.concatenate([np.ravel(point[v.name]) for v in model.value_vars])
    value_fn(x0)  # numba compiles lazily: make the first call part of the compile time
    grad_fn(x0)
    compile_s = time.perf_counter() - t0
    x_map, p0, ball_sd, map_s = start_ball(model, grad_fn, point, rng, walkers)
    eval_s = peers_time(lambda: value_fn(x_map), 200)
    setup_s = time.perf_counter() - t0
    _LOG_DENSITY = value_fn

    # fork: the workers inherit the compiled function (spawn would have to rebuild and recompile the model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Python 3.12 warns about fork() in a process that has run threads
        pool = multiprocessing.get_context("fork").Pool(processes) if processes > 1 else None
    try:
        sampler = emcee.EnsembleSampler(walkers, ndim, log_density, pool=pool)
        sampler.random_state = np.random.RandomState(SEED).get_state()
        state, steps = p0, 0
        t1 = time.perf_counter()
        chunk, reported = 10, 0.0
        while True:
            state = sampler.run_mcmc(state, chunk, progress=False)
            steps += chunk
            elapsed = time.perf_counter() - t1
            left = budget_s - elapsed
            if left <= 0:
                break
            if elapsed - reported >= 300:  # a sign of life in long runs' logs
                reported = elapsed
                print(f"   emcee: {steps} steps in {elapsed:.0f} s, {left:.0f} s left", flush=True)
            chunk = int(max(1, min(200, left / (elapsed / steps))))
        sample_s = time.perf_counter() - t1
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    chain = sampler.get_chain()  # (steps, walkers, ndim)
    tau = sampler.get_autocorr_time(tol=0, quiet=True)
    tau_max = float(np.max(tau))
    burn = int(min(math.ceil(BURN_IN_TAUS * tau_max), steps // 2))
    kept = chain[burn:]
    draws = constrained_draws(model, info.parameters, point, kept)
    table = parameter_table(draws, info.parameters)
    parameters = summarize(table)
    min_name = min(parameters, key=lambda n: parameters[n]["ess_bulk"])
    min_ess = parameters[min_name]["ess_bulk"]
    ess_tau = kept.shape[0] * walkers / tau
    names = [v.name if np.size(point[v.name]) == 1 else f"{v.name}[{k}]"
             for v in model.value_vars for k in range(int(np.size(point[v.name])))]
    return {"walkers": walkers, "ndim": ndim, "processes": processes, "move": "stretch (a = 2)",
            "log_density": "model.logp(jacobian=True) on the flat unconstrained vector, PyTensor mode NUMBA",
            "log_density_eval_ms": 1e3 * eval_s,
            "setup_s": {"build_and_compile": compile_s, "map": map_s, "total": setup_s},
            "budget_s": budget_s, "sample_s": sample_s, "steps": steps,
            "log_density_evaluations": steps * walkers,
            "start": {"map_unconstrained": dict(zip(names, x_map.tolist())), "ball_sd": ball_sd.tolist(),
                      "ball": f"{BALL_FRACTION} x conditional sd (Hessian diagonal) at the MAP"},
            "acceptance_fraction_mean": float(np.mean(sampler.acceptance_fraction)),
            "tau_steps": dict(zip(names, tau.tolist())), "tau_max_steps": tau_max,
            "tau_reliable": bool(steps >= RELIABLE_TAUS * tau_max),
            "burn_in_steps": burn, "kept_steps": int(kept.shape[0]),
            "min_ess_bulk": min_ess, "min_ess_bulk_quantity": min_name,
            "max_r_hat_walkers": max(p["r_hat"] for p in parameters.values()),
            "min_ess_tau": float(np.min(ess_tau)),
            "ess_per_s_sampling": min_ess / sample_s, "ess_per_s_wall": min_ess / (sample_s + setup_s),
            "parameters": parameters}


def peers_time(fn, calls):
    """Median wall time (s) of ``calls`` calls of ``fn()`` after three warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


# --------------------------------------------------------------------------------------- lmfit on the peer
LMFIT_NAMES = {"delta_tip": "delta_tip", "gamma_tip": "gamma_tip", "T_eff": "T_eff", "delta[0]": "delta0",
               "delta[1]": "delta1", "gamma[0]": "gamma0", "gamma[1]": "gamma1", "weight[0]": "weight0",
               "g_n": "g_n"}


def run_lmfit(spectrum, level, max_nfev):
    import lmfit

    bias = np.asarray(spectrum.bias_mV, float)
    y = np.asarray(spectrum.didv, float)
    v_peak = spectrum.metadata["modulation"]["value_mV"] * math.sqrt(2.0)  # rms in the file's comment
    step, nodes = refine_level(level)
    # normalised data: g_n starts at 1 (the outer 20 % of a +-3.2 mV window still hold the SIS peaks at 2.6-2.8 mV)
    start = {**LMFIT_START, "g_n": 1.0}
    params = lmfit.Parameters()
    for name, key in LMFIT_NAMES.items():
        lo, hi = LMFIT_BOUNDS[name]
        params.add(key, value=start[name], min=lo, max=hi)
    evaluations = {"n": 0}

    def model(pars):
        v = pars.valuesdict()
        p = {"delta_tip": v["delta_tip"], "gamma_tip": v["gamma_tip"], "T_eff": v["T_eff"],
             "delta": [v["delta0"], v["delta1"]], "gamma": [v["gamma0"], v["gamma1"]],
             "weight": [v["weight0"], 1.0 - v["weight0"]], "bias_offset": 0.0}
        return v["g_n"] * peers.trapezoid_sis(p, step, nodes, bias, v_peak)[0]

    def residual(pars):
        evaluations["n"] += 1
        return model(pars) - y

    t0 = time.perf_counter()
    spectrum_s = peers_time(lambda: model(params), 1)
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = lmfit.minimize(residual, params, method="leastsq", max_nfev=max_nfev)
    fit_s = time.perf_counter() - t1
    estimates = {}
    for name, key in LMFIT_NAMES.items():
        par = out.params[key]
        estimates[name] = {"value": float(par.value), "stderr": None if par.stderr is None else float(par.stderr),
                           "start": start[name]}
    estimates["weight[1]"] = {"value": 1.0 - estimates["weight[0]"]["value"],
                              "stderr": estimates["weight[0]"]["stderr"], "start": 1.0 - start["weight[0]"]}
    return {"method": "lmfit.minimize(method='leastsq'): MINPACK Levenberg-Marquardt, finite-difference Jacobian",
            "peer_grid": {"level": level, "step_meV": step, "modulation_nodes": nodes},
            "one_spectrum_s": spectrum_s, "fit_s": fit_s, "wall_s": time.perf_counter() - t0,
            "model_evaluations": evaluations["n"], "nfev_lmfit": int(out.nfev), "max_nfev": max_nfev,
            "success": bool(out.success), "message": str(out.message), "errorbars": bool(out.errorbars),
            "chisqr": float(out.chisqr), "redchi": float(out.redchi), "noise_estimate": float(math.sqrt(out.redchi)),
            "fixed": {"bias_offset": 0.0, "b0": 0.0, "b1": 0.0},
            "estimates": estimates}


# ---------------------------------------------------------------------------------------------- reporting
def goals(st, em):
    ratio_wall = st["ess_per_s_wall"] / em["ess_per_s_wall"] if em and em["ess_per_s_wall"] > 0 else None
    ratio_sampling = (st["ess_per_s_sampling"] / em["ess_per_s_sampling"]
                      if em and em["ess_per_s_sampling"] > 0 else None)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"wall_s": {"goal": GOAL_WALL_S, "cores_goal": GOAL_CORES, "cores_used": cores, "value": st["wall_s"],
                       "gates_passed": bool(st["gates"]["converged"]),
                       "met": bool(st["gates"]["converged"] and st["wall_s"] <= GOAL_WALL_S and cores <= GOAL_CORES),
                       "gap_factor": st["wall_s"] / GOAL_WALL_S},
            "ess_per_s_ratio_vs_emcee": {"goal": GOAL_RATIO, "value_wall": ratio_wall,
                                         "value_sampling": ratio_sampling,
                                         "met": bool(ratio_wall is not None and ratio_wall >= GOAL_RATIO),
                                         "gap_factor": GOAL_RATIO / ratio_wall if ratio_wall else None}}


def print_report(st, em, lm, g):
    print()
    t = st["timing_s"]
    gates = st["gates"]
    print(f"Pb-Pb tip calibration, {POINTS} biases over {BIAS_START:+g}..{BIAS_STOP:+g} mV, noise {NOISE} "
          f"(seed {NOISE_SEED})")
    print()
    header = f"{'method':<40} {'wall s':>8} {'setup s':>8} {'sample s':>9} {'evals':>9} {'min ESS':>8} " \
             f"{'ESS/s wall':>10} {'ESS/s smp':>10}"
    print(header)
    print("-" * len(header))
    print(f"{'stsbayes (nutpie, 4 chains, ' + str(st['sampler']['draws']) + ' draws)':<40} {st['wall_s']:8.1f} "
          f"{t['compile'] + st['other_s']:8.1f} {t['sample']:9.1f} {fmt(st['gradient_evaluations'], '9d')} "
          f"{gates['min_ess_bulk']:8.0f} {st['ess_per_s_wall']:10.3f} {st['ess_per_s_sampling']:10.3f}")
    if em:
        print(f"{'emcee (' + str(em['walkers']) + ' walkers, ' + str(em['processes']) + ' processes)':<40} "
              f"{em['sample_s'] + em['setup_s']['total']:8.1f} {em['setup_s']['total']:8.1f} {em['sample_s']:9.1f} "
              f"{em['log_density_evaluations']:9d} {em['min_ess_bulk']:8.0f} {em['ess_per_s_wall']:10.3f} "
              f"{em['ess_per_s_sampling']:10.3f}")
    if lm:
        print(f"{'lmfit leastsq on the trapezoid peer':<40} {lm['wall_s']:8.1f} {'-':>8} {lm['fit_s']:9.1f} "
              f"{lm['model_evaluations']:9d} {'-':>8} {'-':>10} {'-':>10}")
    print(f"  evals: stsbayes gradient evaluations (leapfrog steps) after tuning; emcee log-density evaluations; "
          f"lmfit model spectra")
    print(f"  stsbayes: compile incl. MAP {t['compile']:.1f} s, sample {t['sample']:.1f} s, checks and packaging "
          f"{st['other_s']:.1f} s; gates: divergences {gates['divergences']}, max R-hat {gates['max_r_hat']:.3f}, "
          f"min bulk ESS {gates['min_ess_bulk']:.0f} ({st['min_ess_bulk_quantity']}), "
          f"{'converged' if gates['converged'] else 'NOT converged: ' + '; '.join(gates.get('failed_gates', []))}")
    if em:
        print(f"  emcee: {em['steps']} steps, acceptance {em['acceptance_fraction_mean']:.2f}, tau max "
              f"{em['tau_max_steps']:.0f} steps ({'reliable' if em['tau_reliable'] else 'UNRELIABLE: run < 50 tau'}), "
              f"burn-in {em['burn_in_steps']}, min bulk ESS {em['min_ess_bulk']:.0f} ({em['min_ess_bulk_quantity']}), "
              f"emcee's own min ESS (N x walkers / tau) {em['min_ess_tau']:.0f}, one log density "
              f"{em['log_density_eval_ms']:.2f} ms")
    if lm:
        print(f"  lmfit: peer step {lm['peer_grid']['step_meV']:.5f} meV, {lm['peer_grid']['modulation_nodes']} nodes, "
              f"one spectrum {lm['one_spectrum_s']:.2f} s; {lm['message'].strip()} (success {lm['success']}, "
              f"reduced chi2 {lm['redchi']:.3g}, noise estimate {lm['noise_estimate']:.4f})")
    print()
    header = f"{'quantity':<12} {'truth':>9} {'stsbayes mean':>14} {'sd':>9} {'emcee mean':>11} {'sd':>9} " \
             f"{'lmfit':>10} {'stderr':>9}  {'ESS stsbayes':>12} {'ESS emcee':>10}"
    print(header)
    print("-" * len(header))
    for name, p in st["parameters"].items():
        e = em["parameters"].get(name) if em else None
        lf = lm["estimates"].get(name) if lm else None
        print(f"{name:<12} {fmt(TRUTH.get(name), '9.4g')} {p['mean']:14.5g} {p['sd']:9.2g} "
              f"{fmt(e and e['mean'], '11.5g')} {fmt(e and e['sd'], '9.2g')} "
              f"{fmt(lf and lf['value'], '10.5g')} {fmt(lf and lf['stderr'], '9.2g')}  {p['ess_bulk']:12.0f} "
              f"{fmt(e and e['ess_bulk'], '10.0f')}")
    print()
    w, r = g["wall_s"], g["ess_per_s_ratio_vs_emcee"]
    verdict = "met" if w["met"] else f"not met ({w['gap_factor']:.1f}x the time)"
    print(f"Goal: all gates passed in <= {GOAL_WALL_S:g} s on {GOAL_CORES} cores -> {w['value']:.0f} s on "
          f"{w['cores_used']} cores, gates {'passed' if w['gates_passed'] else 'FAILED'}: {verdict}")
    if r["value_wall"] is not None:
        print(f"Goal: >= {GOAL_RATIO:g}x emcee in ESS per second -> {r['value_wall']:.2f}x per wall second "
              f"({r['value_sampling']:.2f}x per sampling second): {'met' if r['met'] else 'not met'}")


def code_state():
    """The commit measured and whether the package's files differ from it (others edit while benchmarks run)."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    changed = git("status", "--porcelain", "--", "stsbayes")
    return {"commit": git("rev-parse", "HEAD"),
            "stsbayes_files_changed_since_commit": None if changed is None else len(changed.splitlines())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny runs, numbers not meaningful")
    parser.add_argument("--draws", type=int, default=None, help="stsbayes draws per chain (default 1000; quick 40)")
    parser.add_argument("--tune", type=int, default=None, help="stsbayes tuning steps (default 1000; quick 60)")
    parser.add_argument("--emcee-budget-s", type=float, default=None,
                        help="emcee sampling wall time (default: stsbayes' whole wall time; quick 20 s)")
    parser.add_argument("--emcee-processes", type=int, default=None,
                        help="processes evaluating emcee's walkers (default: the usable cores, at most 2)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default benchmarks/results/calibration.json; calibration-quick.json "
                             "with --quick)")
    args = parser.parse_args(argv)
    quick = args.quick
    draws = args.draws or (40 if quick else 1000)
    tune = args.tune or (60 if quick else 1000)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    processes = args.emcee_processes or max(1, min(2, cores))
    out = args.out or RESULTS / ("calibration-quick.json" if quick else "calibration.json")
    # PyTensor's numba fallback for RFFTOp calls np.fft.rfftn(s=...) without axes (architecture.md): noise here.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", module="pytensor")
    warnings.filterwarnings("ignore", module="numba")
    started = time.perf_counter()
    load_before = os.getloadavg()
    code = code_state()  # at the start: others may commit or edit the package while this runs
    problems = []

    with tempfile.TemporaryDirectory() as folder:
        spectrum, simulate_command = simulate_reference(Path(folder))
        print(f"stsbayes calibrate_tip: 4 chains x {draws} draws after {tune} tuning steps ...", flush=True)
        st = run_stsbayes(spectrum, draws, tune)
        print(f"   {st['wall_s']:.1f} s (compile incl. MAP {st['timing_s']['compile']:.1f} s, sample "
              f"{st['timing_s']['sample']:.1f} s), min bulk ESS {st['gates']['min_ess_bulk']:.0f}", flush=True)
        budget = args.emcee_budget_s or (20.0 if quick else st["wall_s"])
        print(f"emcee: {EMCEE_WALKERS} walkers, {processes} processes, {budget:.0f} s of sampling ...", flush=True)
        try:
            em = run_emcee(spectrum, budget, processes, EMCEE_WALKERS)
            print(f"   {em['steps']} steps, tau max {em['tau_max_steps']:.0f}, min bulk ESS {em['min_ess_bulk']:.0f}",
                  flush=True)
        except Exception as exc:  # a peer that cannot run is a result, not a crash
            em = None
            problems.append(f"emcee could not run: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            print("!!", problems[-1])
        level = PEER_LEVEL_QUICK if quick else PEER_LEVEL
        print(f"lmfit on the trapezoid peer (level {level}) ...", flush=True)
        try:
            lm = run_lmfit(spectrum, level, LMFIT_MAX_NFEV_QUICK if quick else LMFIT_MAX_NFEV)
            print(f"   {lm['fit_s']:.1f} s, {lm['model_evaluations']} evaluations", flush=True)
        except Exception as exc:
            lm = None
            problems.append(f"lmfit could not run: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            print("!!", problems[-1])

    if em and not em["tau_reliable"]:
        problems.append(f"emcee ran {em['steps']} steps, fewer than {RELIABLE_TAUS:g} x its largest autocorrelation "
                        f"time ({em['tau_max_steps']:.0f}): its tau, and so its burn-in and ESS, are rough")
    if lm and lm["model_evaluations"] >= lm["max_nfev"]:
        problems.append(f"lmfit stopped at its evaluation cap ({lm['max_nfev']})")
    if lm and not lm["errorbars"]:
        problems.append("lmfit could not estimate stderr (singular covariance: the tip/sample gap ridge)")
    g = goals(st, em)
    print_report(st, em, lm, g)
    for p in problems:
        print("problem:", p)
    payload = {
        "schema_version": 1, "benchmark": "calibration",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "quick": quick,
        "code": code,
        "machine": {**machine_info(("stsbayes", "numpy", "scipy", "pymc", "pytensor", "numba", "nutpie",
                                    "arviz-stats", "emcee", "lmfit")),
                    "load_average_1_5_15min": {"start": load_before, "end": os.getloadavg()}},
        "case": {"spec": PB, "bias": {"start_mV": BIAS_START, "stop_mV": BIAS_STOP, "points": POINTS},
                 "noise": NOISE, "noise_seed": NOISE_SEED, "temperature_K": T_BATH, "data": simulate_command,
                 "truth": TRUTH, "seed": SEED},
        "goal": {"wall_s": GOAL_WALL_S, "cores": GOAL_CORES, "ess_per_s_ratio_vs_emcee": GOAL_RATIO},
        "stsbayes": st, "emcee": em, "lmfit": lm, "goals": g,
        "problems": problems, "notes": NOTES,
        "total_time_s": time.perf_counter() - started,
    }
    write_json(out, payload)
    print(f"\nwrote {out} ({payload['total_time_s']:.0f} s in all)")


if __name__ == "__main__":
    main()
