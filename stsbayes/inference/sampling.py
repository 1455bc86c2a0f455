"""Running NUTS: nutpie by default (PyMC's own NUTS as an option), 4 chains, seeded, progress on a terminal."""

import dataclasses
import sys
import time

import numpy as np
import pymc as pm
from pymc.distributions.transforms import Ordered

from ..errors import InputError

SAMPLERS = ("nutpie", "pymc", "numpyro")


MAP_STARTS = 8  # the support point and 7 prior draws
MAP_SCOUT_ITERATIONS = 150  # L-BFGS iterations per start before the best is polished
START_JITTER = 0.5  # chains start at the MAP plus this many Laplace standard deviations of N(0, 1) jitter
# NUTS tree depth cap (nutpie's default is 10). nutpie starts its mass matrix from the gradient at the first point
# (variance 1/|gradient|); at the MAP plus a little jitter that guess is off by each coordinate's posterior sd,
# which for sharp SIS spectra spans orders of magnitude, so until the first mass-matrix update (about 10 draws in)
# every trajectory runs to the cap. Measured on the demo's ZECP spectrum (mzm, Pb tip, 4 chains x (150 + 100)):
# leapfrog steps per chain 6000-10900 at depth 10, 3400-3900 at depth 8, 2500-3100 at depth 7, with the same
# 7.5-8.4 steps per draw after adaptation. Depth 8 (255 steps) still leaves room for harder posteriors.
MAX_TREE_DEPTH = 8


def find_map(model, seed=None, starts=MAP_STARTS):
    """The MAP as a dict of constrained free-RV values (see :func:`locate_mode`)."""
    return locate_mode(model, seed, starts).constrained


def flat_slices(model):
    """Where each value variable sits in the flat unconstrained vector the samplers and evidence estimators use
    (``model.value_vars`` order): {value variable name: slice}."""
    slices, start, point = {}, 0, model.initial_point()
    for value in model.value_vars:
        size = int(np.prod(np.shape(point[value.name])))
        slices[value.name] = slice(start, start + size)
        start += size
    return slices


class Mode:
    """The posterior mode on the flat unconstrained vector (value variables in ``model.value_vars`` order), with a
    square root ``root`` (root rootᵀ = H⁻¹) of the Laplace covariance (see :func:`laplace_root`; None where H has
    no positive curvature) and a converter back to constrained values."""

    def __init__(self, x, names, shapes, root, to_constrained, free_rvs):
        self.x, self.names, self.shapes, self.root = x, names, shapes, root
        self._to_constrained, self._free = to_constrained, free_rvs

    def unflatten(self, x):
        out, i = {}, 0
        for name, shape in zip(self.names, self.shapes):
            size = int(np.prod(shape))
            out[name] = np.asarray(x[i:i + size]).reshape(shape)
            i += size
        return out

    @property
    def constrained(self):
        return self.to_constrained(self.x)

    def to_constrained(self, x):
        values = self.unflatten(x)
        return {rv.name: np.asarray(c) for rv, c in zip(self._free,
                                                           self._to_constrained(*(values[n] for n in self.names)))}

    def jittered(self, seed, scale=START_JITTER):
        """A flat start: the mode plus ``scale`` Laplace sds of Gaussian jitter (the mode itself without a Laplace
        factor). Deterministic in ``seed``."""
        if self.root is None or scale == 0:
            return self.x.copy()
        z = np.random.default_rng(seed).standard_normal(len(self.x))
        return self.x + scale * (self.root @ z)


def hessian(fun, x, rel=1e-5):
    """The Hessian of ``fun`` (x -> value, gradient) at ``x`` by central differences of the gradient, symmetrised."""
    n = len(x)
    hess = np.empty((n, n))
    for i in range(n):
        h = rel * max(1.0, abs(x[i]))
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        hess[:, i] = (fun(up)[1] - fun(down)[1]) / (2 * h)
    return 0.5 * (hess + hess.T)


def laplace_root(fun, x):
    """A square root L (L Lᵀ = H⁻¹) of the inverse Hessian H of ``fun`` (value, gradient) at ``x``; None when H is
    not finite or has no positive curvature at all.

    Where H is not positive definite (a saddle or a flat direction: two identical bound states at a symmetric
    point of ysr2, whose gradient vanishes there by symmetry), its non-positive eigenvalues are raised to the
    smallest positive one, so the chains still start apart, along those directions as far as along the flattest
    measured one; started all at the very point, they would share its zero gradient, on which nutpie cannot
    initialise its mass matrix ("bad initial gradient")."""
    hess = hessian(fun, x)
    if not np.all(np.isfinite(hess)):
        return None
    eigval, eigvec = np.linalg.eigh(hess)
    positive = eigval[eigval > 0]
    if not positive.size:
        return None
    return eigvec / np.sqrt(np.maximum(eigval, positive.min()))


def locate_mode(model, seed=None, starts=MAP_STARTS, scan=None, objective=None, backend="numba"):
    """The posterior mode (in the unconstrained space) by L-BFGS from several starts, as a :class:`Mode`.

    ``objective`` (x -> (log density, gradient) on the flat unconstrained vector, value variables in
    ``model.value_vars`` order): an already compiled log density to use, such as nutpie's (see :func:`run_nuts`);
    without it one is compiled here with ``backend`` (numba or jax).

    Sharp SIS peaks make the posterior tiny compared with the prior: NUTS started from prior draws spends its whole
    warm-up crossing to the mode, so chains start here instead. One start is not enough: the likelihood of sharp
    peaks has local optima (peaks shifted by a wrong bias offset, one gap absorbing both peaks) where L-BFGS stops,
    and chains started there all agree with each other, so no R-hat can notice. The support point and prior draws
    are each optimised and the highest optimum wins. A model whose states climb better in other coordinates
    (``hypotheses.search_model``) is searched in those, and its mode polished in the model's own.
    """
    import pytensor
    from pymc.initial_point import make_initial_point_fn

    from .hypotheses import search_model
    point = model.initial_point(random_seed=seed)
    if objective is None:
        objective = compile_objective(model, backend)
    to_constrained = pytensor.function(model.value_vars, model.replace_rvs_by_values(model.free_RVs),
                                       mode="FAST_COMPILE", on_unused_input="ignore")
    names = [v.name for v in model.value_vars]
    fun = minimisable(objective)
    search = search_model(model)
    if search is not None:  # found in coordinates better for climbing, then polished in the model's own
        found = locate_mode(search, seed, starts, scan, backend=backend)
        candidates = [make_initial_point_fn(model=model, overrides=found.constrained, jitter_rvs=set(),
                                            return_transformed=True)(0)]
    else:
        draw_start = make_initial_point_fn(model=model, default_strategy="prior")
        rng = np.random.default_rng(seed)
        candidates = [point] + [draw_start(int(rng.integers(2**31))) for _ in range(starts - 1)]
    flats = [np.concatenate([np.ravel(c[n]) for n in names]) for c in candidates]
    if scan and search is None:
        flats += scan_starts(model, fun, flats[0], scan)
    x = multistart_minimum(fun, flats)
    shapes = [np.shape(point[n]) for n in names]
    return Mode(x, names, shapes, laplace_root(fun, x), to_constrained, model.free_RVs)


def compile_objective(model, backend="numba", likelihood_only=False):
    """x -> (log density, gradient) of ``model`` on the flat unconstrained vector (``model.value_vars`` order,
    Jacobians included), compiled with ``backend`` (numba, jax, or a PyTensor mode such as fast_run).
    ``likelihood_only``: the log likelihood instead, priors and Jacobians dropped (a least-squares fit's
    objective; its maximum over unconstrained coordinates is the maximum over constrained ones)."""
    import pytensor
    from pymc.pytensorf import join_nonshared_inputs
    density = (model.logp(vars=model.observed_RVs, jacobian=False) if likelihood_only
               else model.logp(jacobian=True))
    [logp], flat = join_nonshared_inputs(point=model.initial_point(), outputs=[density], inputs=model.value_vars)
    if backend == "jax":
        import stsbayes.backends.jax_fft  # noqa: F401  (JAX conversions of the FFT ops)
    return pytensor.function([flat], [logp, pytensor.grad(logp, flat)], mode=backend.upper())


def minimisable(objective):
    """-log density and its gradient from an ``objective`` (:func:`compile_objective`), +inf outside the support
    (a check in the graph, or a non-finite density), for a minimiser."""
    from pymc.logprob.utils import ParameterValueError

    def fun(x):
        try:
            value, grad = objective(x)
        except ParameterValueError:  # a point outside a distribution's support (a check in the graph)
            return np.inf, np.zeros_like(x)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(x)
        return -float(value), -np.asarray(grad, float)
    return fun


SCAN_SWEEPS = 2  # passes over the scanned elements (the second lets each element adjust to the others)
SCAN_KEEP = 3  # starts returned: the best point of the scan and the runners-up of its last element


def scan_starts(model, fun, x0, scan):
    """Flat starts from scanning each element of the ``scan`` variables over its grid, the rest held at ``x0``.

    A key ``name[i,j,...]`` scans only those elements of the variable ``name`` (flat, row-major: a joint variable
    whose components differ), the listed ones interchangeable among themselves.

    Each element in turn takes every grid value (a sorted vector stays sorted, so ordered transforms apply), the
    best by ``fun`` is kept, and the sweep repeats ``SCAN_SWEEPS`` times. The elements of an unordered vector are
    interchangeable states whose values count up to sign (signed energies): an element is not scanned onto a value
    within a few grid steps of another one already placed. Two identical states are a point of symmetry, where the
    gradient along every difference between them vanishes, so L-BFGS started there never separates them (seen
    with ysr2 on the paper's two pairs when each state started with less weight than either pair: both went onto
    the taller one). Returns the best point and the next best values of the last element scanned, as distinct
    starts."""
    import pytensor
    slices = flat_slices(model)
    x = np.array(x0, dtype=float)
    ranked = []
    for key, grid in scan.items():
        rv_name, _, index = key.rstrip("]").partition("[")  # "name[i,j]": those elements of a joint variable
        rv = model.named_vars.get(rv_name)
        if rv is None or rv not in model.free_RVs:
            raise InputError(f"cannot scan {key}: the model has no free variable of that name")
        value = model.rvs_to_values[rv]
        where = slices[value.name]
        transform = model.rvs_to_transforms.get(rv)
        c = pytensor.tensor.tensor("c", dtype="float64", shape=(None,) * value.ndim)
        shape = model.initial_point()[value.name].shape
        forward = pytensor.function([c], transform.forward(c, *rv.owner.inputs) if transform is not None else c,
                                    mode="FAST_COMPILE", on_unused_input="ignore")
        backward = pytensor.function([c], transform.backward(c, *rv.owner.inputs) if transform is not None else c,
                                     mode="FAST_COMPILE", on_unused_input="ignore")
        ordered = isinstance(transform, Ordered)
        grid = np.asarray(grid, dtype=float)
        spacing = 5 * float(np.min(np.diff(np.unique(grid)))) if len(grid) > 1 else 0.0
        current = np.asarray(backward(x[where].reshape(shape)), dtype=float).ravel()
        scanned = [int(i) for i in index.split(",")] if index else list(range(current.size))
        placed = np.zeros(current.size, dtype=bool)
        for _ in range(SCAN_SWEEPS):
            for k in scanned:
                trials = []
                others = np.abs(current[[i for i in scanned if placed[i] and i != k]])
                for g in grid:
                    trial = current.copy()
                    trial[k] = g
                    if ordered:
                        trial = np.sort(trial)
                        if np.any(np.diff(trial) <= 0):
                            continue
                    elif np.any(np.abs(abs(g) - others) < spacing):
                        continue  # unordered states: not onto (the mirror image of) one already placed
                    y = x.copy()
                    y[where] = np.ravel(forward(trial.reshape(shape)))
                    trials.append((fun(y)[0], y, trial))
                trials = [t for t in trials if np.isfinite(t[0])]
                if not trials:
                    continue
                trials.sort(key=lambda t: t[0])
                x, current = trials[0][1], trials[0][2]
                placed[k] = True
                ranked = trials
    starts = [x]
    kept = [current]
    for _, y, trial in ranked[1:]:
        if len(starts) >= SCAN_KEEP:
            break
        if all(np.max(np.abs(trial - z)) > spacing for z in kept):  # runners-up a few grid steps apart
            starts.append(y)
            kept.append(trial)
    return starts


def multistart_minimum(fun, starts):
    """The minimum of ``fun`` (value, gradient; +inf where undefined) over flat ``starts``: a short L-BFGS run
    from every start picks the basin, then the best one is polished."""
    from scipy.optimize import minimize

    best = None
    for x0 in starts:
        if not np.isfinite(fun(x0)[0]):
            continue
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": MAP_SCOUT_ITERATIONS})
        if best is None or res.fun < best.fun:
            best = res
    if best is None:
        raise InputError("no start point gives a finite log density: check the priors against the data's units")
    return minimize(fun, best.x, jac=True, method="L-BFGS-B", options={"maxiter": 5000}).x


def _nutpie_jax(model, seed, scan):
    """nutpie's JAX model started at jittered MAP points. Its flat vector is ordered as nutpie's JAX path orders
    the free variables, which it does not expose: the order is read off its start function, compiled at the mode."""
    import nutpie

    import stsbayes.backends.jax_fft  # noqa: F401  (JAX conversions of the FFT ops)
    mode = locate_mode(model, seed, scan=scan, backend="jax")
    compiled = nutpie.compile_pymc_model(model, initial_points=mode.constrained, jitter_rvs=set(), backend="jax",
                                         gradient_backend="jax")
    theirs = np.asarray(compiled._make_initial_points(0), dtype=float)
    order = np.array([int(np.argmin(np.abs(mode.x - v))) for v in theirs])
    if len(set(order.tolist())) != len(order) or not np.allclose(theirs, mode.x[order], rtol=0, atol=1e-12):
        raise RuntimeError("cannot match nutpie's JAX parameter order to the model's (two coordinates of the mode "
                           "coincide): use --backend numba")
    return dataclasses.replace(compiled, _make_initial_points=lambda s: mode.jittered([seed, int(s)])[order]), mode


def run_nuts(model, *, sampler="nutpie", chains=4, draws=1000, tune=1000, seed=None, progress=None,
             target_accept=0.9, backend="numba", scan=None):
    """Sample ``model``; returns (DataTree, timing dict, seed). Chains start at the MAP (:func:`locate_mode`) with
    Gaussian jitter of ``START_JITTER`` Laplace standard deviations, a different draw per chain; chain_modes()
    (diagnostics) then checks that they did not settle in different modes.

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
        # PyMC's U(-1, 1) jitter would throw chains far out of these sharp posteriors; the Laplace-scaled one keeps
        # them within a posterior sd or so of the mode, in different places.
        if backend == "jax":
            compiled, mode = _nutpie_jax(model, seed, scan)
        else:
            # compiled first, so that the mode search reuses nutpie's compiled log density instead of compiling its
            # own (on a fresh machine each numba compilation of an SIS model costs one to two minutes)
            compiled = nutpie.compile_pymc_model(model, jitter_rvs=set(), backend="numba",
                                                 gradient_backend="pytensor")
            names = [v.name for v in model.value_vars]  # nutpie lists them first, the stored quantities after
            if list(compiled.shape_info[0][:len(names)]) != names:
                raise RuntimeError("nutpie orders the unconstrained vector unlike model.value_vars; starts would be "
                                   "wrong")
            mode = locate_mode(model, seed, scan=scan, objective=compiled.logp_func)
            compiled = dataclasses.replace(compiled, initial_point_func=lambda s: mode.jittered([seed, int(s)]))
        t1 = time.perf_counter()
        trace = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=progress,
                              adaptation="low_rank", save_warmup=False, target_accept=target_accept,
                              maxdepth=MAX_TREE_DEPTH)
    else:
        mode = locate_mode(model, seed, scan=scan)
        start = [mode.to_constrained(mode.jittered([seed, chain])) for chain in range(chains)]
        t1 = time.perf_counter()
        if sampler == "numpyro":
            import stsbayes.backends.jax_fft  # noqa: F401  (NumPyro runs the graph through JAX)
        with model:
            trace = pm.sample(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=progress,
                              initvals=start, nuts_sampler=sampler, target_accept=target_accept,
                              compute_convergence_checks=False,
                              # the starts are jittered already: no U(-1, 1) jitter on top
                              **({"init": "adapt_diag"} if sampler == "pymc" else {"nuts": {"jitter": False}}))
    t2 = time.perf_counter()
    # "compile" as in architecture.md's summary.json; it includes finding the MAP start
    return trace, {"compile": t1 - t0, "sample": t2 - t1}, seed
