"""simulate(): a spec's expected spectrum (and optional noise) from the same graph the fits use."""

from functools import lru_cache

import numpy as np
import pytensor
import pytensor.tensor as pt

from ..errors import InputError
from .constants import K_B
from .forward import BOUND_PARAMS, build_grid, predict
from .junction import modulation_peak
from .spec import load_spec


def true_parameters(spec):
    """The spec's true values as the graph's parameter dict (numbers), checking that nothing is missing."""
    spec = load_spec(spec).numbers()
    s, j, o, t = spec.sample, spec.junction, spec.observation, spec.tip
    for key in ("delta", "gamma", "weight"):
        if key not in s:
            raise InputError(f"sample.{key} is missing: simulate needs every gap's delta, gamma and weight")
    if "T_eff" not in j:
        raise InputError("junction.T_eff is missing: simulate needs the effective junction temperature in K")
    if "modulation_rms" not in j and "modulation_peak" not in j:
        raise InputError("the lock-in amplitude is missing: give junction.modulation_rms (or modulation_peak) in mV")
    params = {"delta": np.array(s["delta"]), "gamma": np.array(s["gamma"]), "weight": np.array(s["weight"]),
              "floor": s.get("floor", 0.0), "T_eff": j["T_eff"],
              "v_peak": modulation_peak(j.get("modulation_rms"), j.get("modulation_peak")),
              "g_n": j.get("g_n", 1.0), "bias_offset": j.get("bias_offset", 0.0),
              "b0": o.get("b0", 0.0), "b1": o.get("b1", 0.0)}
    if not spec.metal_tip:
        for key in ("delta", "gamma"):
            if key not in t:
                raise InputError(f"tip.{key} is missing: a Dynes tip needs delta and gamma (or use kind = \"metal\")")
        params["delta_tip"], params["gamma_tip"] = t["delta"], t["gamma"]
    states = spec.bound_states
    for i, bs in enumerate(states):
        missing = [k for k in BOUND_PARAMS if k not in bs]
        if missing:
            raise InputError(f"sample.bound_states[{i}] lacks {', '.join(missing)}: simulate needs eps, width, u2, v2")
    if states:
        for k in BOUND_PARAMS:
            params[k] = np.array([bs[k] for bs in states])
    return params


@lru_cache(maxsize=16)
def _compiled(structure, bias_bytes, grid_args):
    """A compiled forward function for one model structure, bias vector and grid (cached: compiling costs seconds)."""
    metal, n_gaps, n_bound = structure
    bias = np.frombuffer(bias_bytes)
    grid, bias_map = build_grid(bias, **dict(grid_args))
    names = ["delta", "gamma", "weight"] + (list(BOUND_PARAMS) if n_bound else [])
    vectors = {k: pt.dvector(k) for k in names}
    scalars = {k: pt.dscalar(k) for k in ("floor", "T_eff", "v_peak", "g_n", "bias_offset", "b0", "b1")
               + (() if metal else ("delta_tip", "gamma_tip"))}
    inputs = {**vectors, **scalars}
    y = predict(grid, bias_map, bias, inputs)
    # FAST_COMPILE: the same graph compiles in 2 s instead of 6-15 s; a simulation is still ~10 ms.
    fn = pytensor.function(list(inputs.values()), y, mode="FAST_COMPILE")
    return list(inputs), fn


def expected_signal(spec, bias):
    """Noise-free expected signal y(V) (µS or normalised units) at sample biases ``bias`` (mV)."""
    bias = np.ascontiguousarray(bias, dtype=float)
    params = true_parameters(spec)
    widths = params.get("width", [np.inf])
    gammas = np.concatenate([params["gamma"], [params.get("gamma_tip", np.inf)]])
    grid_args = (("gamma_min", float(np.min(gammas))), ("width_min", float(np.min(widths))),
                 ("kT_max", K_B * params["T_eff"]), ("v_peak_max", float(params["v_peak"])),
                 ("offset_max", abs(params["bias_offset"])),
                 ("kT_min", K_B * params["T_eff"] if "delta_tip" not in params else None))
    structure = ("delta_tip" not in params, len(params["delta"]), len(params.get("eps", [])))
    names, fn = _compiled(structure, bias.tobytes(), grid_args)
    return np.asarray(fn(*[params[k] for k in names]))


def discrepancy_draw(kind, bias, scale, length, rng, size=()):
    """Draws of the correlated discrepancy term (physics.md §3), shape size + (n,), at sample biases ``bias`` (mV).

    ``ar1``: the Ornstein-Uhlenbeck process with Cov = scale² exp(-|ΔV| / length), drawn exactly point by point
    (rho_i = exp(-|V_i - V_(i-1)| / length)); ``gp``: the exact squared-exponential Gaussian process,
    Cov = scale² exp(-ΔV² / (2 length²)), drawn through an eigendecomposition (its covariance is numerically
    singular for lengths of many bias steps, where a Cholesky factor fails).
    """
    bias = np.asarray(bias, float)
    size = tuple(int(k) for k in np.atleast_1d(size)) if size is not None else ()
    n = len(bias)
    if kind == "ar1":
        rho = np.exp(-np.abs(np.diff(bias)) / length)
        z = rng.standard_normal(size + (n,))
        d = np.empty(size + (n,))
        d[..., 0] = scale * z[..., 0]
        for i in range(1, n):
            d[..., i] = rho[i - 1] * d[..., i - 1] + scale * np.sqrt(1.0 - rho[i - 1] ** 2) * z[..., i]
        return d
    if kind == "gp":
        cov = scale**2 * np.exp(-0.5 * ((bias[:, None] - bias[None, :]) / length) ** 2)
        values, vectors = np.linalg.eigh(cov)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))
        return rng.standard_normal(size + (n,)) @ root.T
    raise InputError(f"observation.discrepancy = {kind!r} is not one of none, ar1, gp")


def observation_noise(spec, bias, sigma, rng):
    """Noise draws for the spec's observation model: normal or Student-t, plus a discrepancy term if named."""
    obs = load_spec(spec).observation
    n = len(bias)
    if obs.get("noise", "normal") == "student_t":
        noise = sigma * rng.standard_t(obs.get("nu", 4.0), size=n)
    else:
        noise = sigma * rng.standard_normal(n)
    kind = _discrepancy(obs)
    if kind != "none":
        noise = noise + discrepancy_draw(kind, bias, obs["discrepancy_scale"], obs["discrepancy_length"], rng)
    return noise


def _discrepancy(obs):
    """The discrepancy kind of a spec's observation table, checked for simulation (true values needed)."""
    kind = obs.get("discrepancy", "none")
    if kind != "none":
        for key in ("discrepancy_scale", "discrepancy_length"):
            if key not in obs:
                raise InputError(f"observation.discrepancy = {kind!r} needs observation.{key} to simulate: give "
                                 "its true value in the spec")
            if not isinstance(obs[key], float):
                raise InputError(f"observation.{key} is a prior in the spec, but simulate needs a true value: "
                                 "give a number")
    return kind


def simulate(spec, bias, *, noise=None, seed=None):
    """A simulated spectrum at sample biases ``bias`` (mV).

    ``noise`` is the standard deviation of Gaussian noise in the output's units and overrides
    ``observation.sigma``; without either the spectrum is noise-free. A correlated discrepancy term is added when
    the spec names one (``observation.discrepancy = "ar1"|"gp"`` with ``discrepancy_scale`` and
    ``discrepancy_length`` as numbers), with or without white noise. ``seed`` makes the draw reproducible.
    """
    spec = load_spec(spec)
    bias = np.asarray(bias, dtype=float)
    kind = _discrepancy(spec.observation)
    y = expected_signal(spec, bias)
    sigma = noise if noise is not None else spec.observation.get("sigma")
    if sigma is None and kind == "none":
        return y
    if sigma is not None and sigma < 0:
        raise InputError(f"--noise {sigma} must be a non-negative standard deviation")
    return y + observation_noise(spec, bias, sigma or 0.0, np.random.default_rng(seed))
