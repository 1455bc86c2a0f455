"""Running NUTS: nutpie by default (PyMC's own NUTS as an option), 4 chains, seeded, progress on a terminal."""

import sys
import time

import numpy as np
import pymc as pm

from ..errors import InputError

SAMPLERS = ("nutpie", "pymc")


def find_map(model, seed=None):
    """The posterior mode by L-BFGS from the prior's support point, as a dict of constrained RV values.

    Sharp SIS peaks make the posterior tiny compared with the prior: NUTS started from prior draws spends its whole
    warm-up crossing to the mode, so chains start here instead.
    """
    import stsbayes.backends.jax_fft  # noqa: F401  (the FFT conversions)

    # JAX compiles this graph in ~20 s where the C backend takes minutes from a cold cache
    with model:
        tree = pm.find_MAP(method="L-BFGS-B", jitter=False, return_inferencedata=True, progressbar=False,
                           random_seed=seed, maxiter=5000, backend="jax")
    point = tree["posterior"].to_dataset()
    names = [rv.name for rv in model.free_RVs]
    return {n: np.asarray(point[n]).squeeze(axis=(0, 1)) for n in names}


def run_nuts(model, *, sampler="nutpie", chains=4, draws=1000, tune=1000, seed=None, progress=None,
             target_accept=0.85, backend="numba"):
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
        with model:
            trace = pm.sample(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=progress,
                              initvals=start,
                              nuts_sampler="pymc", target_accept=target_accept, compute_convergence_checks=False)
    t2 = time.perf_counter()
    # "compile" as in architecture.md's summary.json; it includes finding the MAP start
    return trace, {"compile": t1 - t0, "sample": t2 - t1}, seed
