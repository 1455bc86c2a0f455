"""Running NUTS: nutpie by default (PyMC's own NUTS as an option), 4 chains, seeded, progress on a terminal."""

import sys
import time

import numpy as np
import pymc as pm

from ..errors import InputError

SAMPLERS = ("nutpie", "pymc", "numpyro")


MAP_STARTS = 8  # the support point and 7 prior draws
MAP_SCOUT_ITERATIONS = 150  # L-BFGS iterations per start before the best is polished


def find_map(model, seed=None, starts=MAP_STARTS):
    """The posterior mode (in the unconstrained space) by L-BFGS from several starts, as a dict of constrained
    free-RV values.

    Sharp SIS peaks make the posterior tiny compared with the prior: NUTS started from prior draws spends its whole
    warm-up crossing to the mode, so chains start here instead. One start is not enough: the likelihood of sharp
    peaks has local optima (peaks shifted by a wrong bias offset, one gap absorbing both peaks) where L-BFGS stops,
    and chains started there all agree with each other, so no R-hat can notice. The support point and prior draws
    are each optimised and the highest optimum wins.
    """
    import pytensor
    from pymc.initial_point import make_initial_point_fn
    from pymc.pytensorf import join_nonshared_inputs
    from scipy.optimize import minimize

    point = model.initial_point(random_seed=seed)
    [logp], flat = join_nonshared_inputs(point=point, outputs=[model.logp(jacobian=True)], inputs=model.value_vars)
    objective = pytensor.function([flat], [-logp, -pytensor.grad(logp, flat)], mode="NUMBA")
    to_constrained = pytensor.function(model.value_vars, model.replace_rvs_by_values(model.free_RVs),
                                       mode="FAST_COMPILE", on_unused_input="ignore")
    draw_start = make_initial_point_fn(model=model, default_strategy="prior")
    rng = np.random.default_rng(seed)
    candidates = [point] + [draw_start(int(rng.integers(2**31))) for _ in range(starts - 1)]
    names = [v.name for v in model.value_vars]

    def fun(x):
        value, grad = objective(x)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(x)
        return float(value), np.asarray(grad, float)

    # a short L-BFGS run from every start picks the basin, then the best one is polished
    best = None
    for cand in candidates:
        x0 = np.concatenate([np.ravel(cand[n]) for n in names])
        if not np.isfinite(fun(x0)[0]):
            continue
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": MAP_SCOUT_ITERATIONS})
        if best is None or res.fun < best.fun:
            best = res
    if best is None:
        raise InputError("no start point gives a finite log density: check the priors against the data's units")
    best = minimize(fun, best.x, jac=True, method="L-BFGS-B", options={"maxiter": 5000})
    values, i = {}, 0
    for v in model.value_vars:
        size = int(np.asarray(point[v.name]).size)
        values[v.name] = best.x[i:i + size].reshape(np.shape(point[v.name]))
        i += size
    constrained = to_constrained(*(values[n] for n in names))
    return {rv.name: np.asarray(c) for rv, c in zip(model.free_RVs, constrained)}


def run_nuts(model, *, sampler="nutpie", chains=4, draws=1000, tune=1000, seed=None, progress=None,
             target_accept=0.9, backend="numba"):
    """Sample ``model``; returns (DataTree, timing dict). Chains start at the prior's support point with jitter.

    The tip/sample gap ridge of SIS spectra is a strongly correlated, nearly linear direction: nutpie's low-rank
    mass-matrix adaptation learns it, so NUTS moves along it instead of diverging across it.
    """
    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
    progress = sys.stderr.isatty() if progress is None else progress
    seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else seed
    t0 = time.perf_counter()
    if sampler == "nutpie":
        import nutpie
        start = find_map(model, seed)
        # All chains start at the mode (no U(-1, 1) jitter: on these sharp posteriors it would throw them far out);
        # different momenta separate them at once, and chain_modes() checks they did not settle in other modes.
        if backend == "jax":
            import stsbayes.backends.jax_fft  # noqa: F401
        compiled = nutpie.compile_pymc_model(model, initial_points=start, jitter_rvs=set(), backend=backend,
                                             gradient_backend="jax" if backend == "jax" else "pytensor")
        t1 = time.perf_counter()
        trace = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=progress,
                              adaptation="low_rank", save_warmup=False, target_accept=target_accept)
    else:
        start = find_map(model, seed)
        t1 = time.perf_counter()
        if sampler == "numpyro":
            import stsbayes.backends.jax_fft  # noqa: F401  (NumPyro runs the graph through JAX)
        with model:
            trace = pm.sample(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=progress,
                              initvals=start, nuts_sampler=sampler, target_accept=target_accept,
                              compute_convergence_checks=False)
    t2 = time.perf_counter()
    # "compile" as in architecture.md's summary.json; it includes finding the MAP start
    return trace, {"compile": t1 - t0, "sample": t2 - t1}, seed
