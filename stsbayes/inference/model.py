"""A PyMC model built from a spec and a spectrum: priors (``priors.py``) + the forward graph + a likelihood."""

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..errors import InputError
from ..models.constants import GAMMA_FLOOR, K_B, MODULATION_RMS_FLOOR, WIDTH_FLOOR
from ..models.forward import BOUND_PARAMS, build_grid, predict
from ..models.spec import Fitted, Prior, load_spec
from . import discrepancy as D
from . import hypotheses as H
from . import priors as P


def _lowest_temperature(entry, t_bath):
    """The lowest T_eff (K) the model allows, or None when its prior has no positive floor: a fixed T_eff, the
    bath temperature under the default T_eff = bath + excess, a prior's lower bound."""
    if entry is None:
        return t_bath
    if isinstance(entry, (int, float)):
        return float(entry)
    if isinstance(entry, Prior):
        lower = entry.params.get("lower")
        return float(lower) if lower is not None and lower > 0 else None
    return None


def _upper_reach(entry, default):
    """A value the parameter practically never exceeds under its prior (for sizing the grid)."""
    if isinstance(entry, (int, float)):
        return float(entry)
    if isinstance(entry, Fitted):
        entry = entry.prior
    if isinstance(entry, Prior):
        p = entry.params
        if entry.dist in ("normal", "truncnormal"):
            return min(p["mu"] + 5 * p["sigma"], p.get("upper", np.inf))
        if entry.dist == "lognormal":
            return float(np.exp(p["mu"] + 5 * p["sigma"]))
        if entry.dist == "halfnormal":
            return 5 * p["sigma"]
        if entry.dist == "uniform":
            return p["upper"]
    return default


@dataclass
class ModelInfo:
    """What a built model needs to remember besides the PyMC graph."""

    grid: object  # the energy grid (of the first spectrum in a joint model)
    parameters: list  # canonical names of the fitted quantities, as stored in the posterior
    fixed: dict  # name -> value of quantities held fixed
    metal_tip: bool
    labels: list = None  # joint models: one label per spectrum (None for a single spectrum)
    grids: list = None  # joint models: the grid of every spectrum
    scan: dict = None  # free RV name -> grid of values whose scan gives the mode search its starts (sampling.py)


SHARED = ("delta_tip", "gamma_tip", "T_eff")  # what every spectrum of a joint model shares (one tip, one junction)
PER_SPECTRUM = ["delta", "gamma", "weight", "floor", "modulation_rms", "g_n", "bias_offset", "b0", "b1", "sigma",
                "sigma_scale", "nu", "discrepancy_scale", "discrepancy_length"]


def build_model(data, spec, *, tip_density=None, metal_tip=None, reference=None, fit_modulation=False,
                hypothesis=None, prior_scale=1.0):
    """The PyMC model of one spectrum.

    ``spec`` gives priors (or fixed numbers) and structure; ``tip_density`` (a :class:`~stsbayes.inference.tip.
    TipDensity` from a calibration) replaces the tip and T_eff priors; ``metal_tip`` forces a metallic tip;
    ``reference`` supplies default sample/tip gap priors (``PB_REFERENCE``); ``hypothesis`` (mzm, ysr, ysr2)
    replaces the spec's bound states by that hypothesis's (``hypotheses.py``), its prior widths times
    ``prior_scale``.
    """
    return build_joint_model([data], spec, labels=None, tip_density=tip_density, metal_tip=metal_tip,
                             reference=reference, fit_modulation=fit_modulation, hypothesis=hypothesis,
                             prior_scale=prior_scale)


def build_joint_model(datas, spec, *, labels=None, tip_density=None, metal_tip=None, reference=None,
                      fit_modulation=False, hypothesis=None, prior_scale=1.0):
    """One PyMC model of several spectra measured with the same tip in the same junction.

    The tip (delta_tip, gamma_tip) and T_eff are shared; every spectrum has its own sample (gaps, widths, weights,
    floor, bound states) and observation (g_n, bias offset, background, noise). With ``labels`` (one per spectrum)
    the per-spectrum variables are named ``<label>:<name>`` (``on:delta``); without, a single spectrum keeps the
    plain names.
    """
    if labels is None and len(datas) != 1:
        raise InputError("a joint fit of several spectra needs one label per spectrum")
    if labels is not None:
        labels = [str(x) for x in labels]
        if len(labels) != len(datas) or len(set(labels)) != len(labels) or any(
                not x or any(c in x for c in ":/[] ") for x in labels):
            raise InputError("give one distinct label per spectrum, without spaces, ':', '/' or brackets")
        if hypothesis:
            raise InputError("hypotheses are compared on single spectra here; use `stsbayes series` for sets")
    keys = labels or [None]
    specs = [load_spec(_per(spec, k, "spec")) for k in keys]
    refs = [_per(reference, k, "reference") for k in keys]
    if tip_density is not None and metal_tip:
        raise InputError("a tip calibration and a metallic tip exclude each other: give --tip or --metal-tip")
    # a calibrated tip is superconducting whatever the spec says (a spec without [tip] reads as a metal tip)
    metal = False if tip_density is not None else specs[0].metal_tip if metal_tip is None else metal_tip
    n_gaps = []
    for sp, ref in zip(specs, refs):
        s = sp.sample
        n_gaps.append(len(s["delta"]) if isinstance(s.get("delta"), list) else len(ref["delta"]) if ref else 0)
        if n_gaps[-1] == 0:
            P.gaps("delta", None)  # raises the explanatory error
    states = [] if hypothesis else specs[0].bound_states
    if labels is not None and any(sp.bound_states for sp in specs):
        raise InputError("bound states in joint fits are not supported yet: fit such spectra one at a time")
    coords = {"gap": np.arange(max(n_gaps))}
    for data, label in zip(datas, keys):
        coords[_name("bias_mV", label)] = data.bias
    if states:
        coords["state"] = np.arange(len(states))
    baths = {d.temperature_K for d in datas if d.temperature_K is not None}
    if len(baths) > 1:
        raise InputError(f"the spectra give different bath temperatures {sorted(baths)} K: a joint fit shares one "
                         "junction, so give one --temperature")
    t_bath = baths.pop() if baths else None
    fixed = {}
    # the SIS ridges (physics.md, identifiability) in sum coordinates, with the same priors: the widths' sum/split
    # prior where tip and sample widths are both defaults, the gap sums where a reference spectrum (Pb) has
    # default gaps. In a joint fit they belong to one spectrum (the reference one when there is one), whose
    # sample parameters then come with the shared tip's.
    tip_ref = next((r for r in refs if r is not None), None)
    free_tip = tip_density is None and not metal
    gap_anchor = next((i for i, (sp, ref) in enumerate(zip(specs, refs)) if ref is not None
                       and sp.sample.get("delta") is None), None) if free_tip and specs[0].tip.get("delta") is None \
        else None
    if tip_density is not None:  # the same ridge against the calibrated tip: the first spectrum with normal gaps
        gap_anchor = next((i for i, (sp, ref) in enumerate(zip(specs, refs))
                           if P.normal_gaps(sp.sample.get("delta"), ref) is not None), None)
    width_candidates = [i for i, sp in enumerate(specs) if sp.sample.get("gamma") is None]
    width_anchor = (gap_anchor if gap_anchor in width_candidates else next(iter(width_candidates), None)) \
        if free_tip and specs[0].tip.get("gamma") is None else None
    with pm.Model(coords=coords) as model:
        density_gaps = None if tip_density is None or gap_anchor is None else (
            *P.normal_gaps(specs[gap_anchor].sample.get("delta"), refs[gap_anchor]),
            lambda name: _name(name, keys[gap_anchor]))
        tip, t_reach, tip_floor = _tip_block(specs[0], metal, tip_density, tip_ref, t_bath,
                                             width_anchor is not None, gap_anchor is not None, density_gaps)
        anchored = [{} for _ in datas]
        if density_gaps is not None:
            anchored[gap_anchor]["delta"] = tip.pop("delta")
        if width_anchor is not None:
            nm = lambda name: _name(name, keys[width_anchor])  # noqa: E731
            tip["gamma_tip"], anchored[width_anchor]["gamma"] = P.sis_widths(n_gaps[width_anchor], nm)
        if gap_anchor is not None and tip_density is None:
            nm = lambda name: _name(name, keys[gap_anchor])  # noqa: E731
            ref = refs[gap_anchor]
            tip["delta_tip"], anchored[gap_anchor]["delta"] = P.sis_gaps(
                ref["delta_tip"], ref["delta_tip_sigma"], ref["delta"], ref["delta_sigma"], nm)
        grids = []
        for data, label, sp, ref, n, own in zip(datas, keys, specs, refs, n_gaps, anchored):
            grids.append(_spectrum_block(data, sp, label, {**tip, **own}, t_reach, tip_floor, n, states, ref,
                                         fit_modulation, hypothesis, fixed, metal, prior_scale))
    present = {v.name for v in model.free_RVs + model.deterministics}
    wanted = [n for n in SHARED if n in present]
    for label in labels or [None]:
        local = PER_SPECTRUM + [f"{k}_{i}" for k in BOUND_PARAMS for i in range(len(states))]
        if hypothesis:
            local += H.parameter_names(hypothesis)
        wanted += [_name(n, label) for n in local if _name(n, label) in present]
    info = ModelInfo(grid=grids[0], parameters=wanted, fixed=fixed, metal_tip=metal, labels=labels, grids=grids,
                     scan=H.scan_grids(hypothesis) if hypothesis else None)
    return model, info


def _per(value, label, what):
    """A per-spectrum setting: the same for all, or a dict label -> value."""
    if isinstance(value, dict) and label is not None and set(value) and all(isinstance(k, str) for k in value) \
            and label in value:
        return value[label]
    if isinstance(value, dict) and what == "reference" and "delta" not in value:
        raise InputError(f"no {what} given for spectrum {label}")
    return value


def _name(name, label):
    return name if label is None else f"{label}:{name}"


def _tip_block(spec, metal, tip_density, reference, t_bath, sum_split=False, sum_gaps=False, density_gaps=None):
    """delta_tip, gamma_tip (superconducting tips) and T_eff; returns (params, T reach, gamma_tip floor).
    ``density_gaps``: (mu, sigma, nm) of the spectrum whose gaps come with a calibrated tip (TipDensity)."""
    t, j = spec.tip, spec.junction
    params = {}
    if tip_density is not None:
        params.update(tip_density.random_variables(density_gaps))
        return params, tip_density.upper_reach("T_eff"), tip_density.lower_reach("gamma_tip")
    if not metal:
        tip_delta = t.get("delta")
        if tip_delta is None:
            if reference is None:
                raise InputError("the tip gap is unknown: give --tip DIR/posterior.nc from calibrate-tip, a "
                                 "tip.delta prior in the spec, or --metal-tip")
            if not sum_gaps:  # else delta_tip comes with the sample's gaps (priors.sis_gaps)
                params["delta_tip"] = pm.Normal("delta_tip", reference["delta_tip"], reference["delta_tip_sigma"])
        else:
            params["delta_tip"] = P.scalar("delta_tip", tip_delta, None)
        if not sum_split:  # else gamma_tip comes with the sample's widths (priors.sis_widths)
            params["gamma_tip"] = P.broadening("gamma_tip", t.get("gamma"), ridge=True)
    if "T_eff" in j:
        params["T_eff"] = P.scalar("T_eff", j["T_eff"], None)
        t_reach = _upper_reach(j["T_eff"], 2.0)
    else:
        if t_bath is None:
            raise InputError("the bath temperature is unknown: give --temperature (K) or a junction.T_eff "
                             "prior in the spec")
        excess = pm.HalfNormal("T_excess", sigma=P.T_EXCESS_SIGMA)
        params["T_eff"] = pm.Deterministic("T_eff", t_bath + excess)
        t_reach = t_bath + 5 * P.T_EXCESS_SIGMA
    return params, t_reach, (None if metal else P.broadening_floor(t.get("gamma")))


def _spectrum_block(data, spec, label, tip, t_reach, tip_floor, n_gaps, states, reference, fit_modulation,
                    hypothesis, fixed, metal, prior_scale=1.0, law=None, window=None, width_min=None):
    """Sample, lock-in and observation of one spectrum, its expected conductance and likelihood; returns its grid.

    ``tip`` holds the parameters given from outside (the tip, and in a series also what the spectra share: gaps,
    weights, bias offset); each one present is used instead of this spectrum's own prior. A series law
    (``inference/series.py``) is ``law(grid, params) -> params``: it adds what the law ties to the spectrum (g_n,
    bound states) once the energy grid is known; ``window`` (mV) widens the grid beyond the data (a setpoint
    integral), ``width_min`` (meV) is the narrowest line the law's states can have."""
    s, j, o = spec.sample, spec.junction, spec.observation
    nm = lambda name: _name(name, label)  # noqa: E731
    scale = 1.0 if data.units == "normalised" else data.scale
    params = dict(tip)
    if "delta" not in params:
        params["delta"] = P.gaps(nm("delta"), s.get("delta"), reference=reference)
    if "gamma" not in params:
        params["gamma"] = P.broadening(nm("gamma"), s.get("gamma"), shape=n_gaps,
                                       ridge=False if metal else pt.as_tensor_variable(params["gamma_tip"]))
    if "weight" not in params:
        params["weight"] = P.weights(nm("weight"), s.get("weight"), n_gaps)
    if "floor" not in params:
        params["floor"] = P.scalar(nm("floor"), s.get("floor"), lambda: pt.as_tensor_variable(0.0))
    if hypothesis:
        bound, bound_fixed = H.bound_state_variables(hypothesis, prior_scale)
        params.update(bound)
        fixed.update(bound_fixed)
    elif states:
        for k in BOUND_PARAMS:
            entries = [bs.get(k) for bs in states]
            if any(e is None for e in entries):
                raise InputError(f"sample.bound_states need {k} for every state (a number or a prior)")
            if k == "width":
                params[k] = pt.stack([P.broadening(nm(f"width_{i}"), e) for i, e in enumerate(entries)])
            else:
                params[k] = pt.stack([P.scalar(nm(f"{k}_{i}"), e, None) for i, e in enumerate(entries)])
    # --- lock-in
    recorded = data.v_peak() if ("modulation_rms" not in j and "modulation_peak" not in j) else None
    mod_entry = j.get("modulation_rms", j.get("modulation_peak"))
    if isinstance(mod_entry, (int, float)):
        recorded = mod_entry * (np.sqrt(2) if "modulation_rms" in j else 1.0)
    if isinstance(mod_entry, Fitted) or fit_modulation:
        start_rms = (mod_entry.value if isinstance(mod_entry, Fitted) and mod_entry.value else
                     (recorded or data.v_peak()) / np.sqrt(2))
        rms = pm.Truncated(nm("modulation_rms"), pm.LogNormal.dist(mu=np.log(start_rms), sigma=0.25),
                           lower=MODULATION_RMS_FLOOR)
        params["v_peak"] = np.sqrt(2.0) * rms
        v_peak_max = np.sqrt(2.0) * start_rms * np.exp(5 * 0.25)
    elif isinstance(mod_entry, Prior):
        rms = P.distribution(nm("modulation_rms"), mod_entry, lower=MODULATION_RMS_FLOOR)
        params["v_peak"] = np.sqrt(2.0) * rms if "modulation_rms" in j else rms
        v_peak_max = np.sqrt(2.0) * _upper_reach(mod_entry, 0.5)
    else:
        params["v_peak"] = v_peak_max = float(recorded)
        fixed[nm("modulation_peak_mV")] = float(recorded)
    # --- observation
    g_n_default = (lambda: pm.LogNormal(nm("g_n"), mu=0.0, sigma=0.2)) if data.units == "normalised" else (
        lambda: pm.LogNormal(nm("g_n"), mu=np.log(scale), sigma=0.5))
    if law is None:
        params["g_n"] = P.scalar(nm("g_n"), j.get("g_n"), g_n_default)
    if "bias_offset" not in params:
        params["bias_offset"] = P.scalar(nm("bias_offset"), j.get("bias_offset"),
                                         lambda: pm.Normal(nm("bias_offset"), 0.0, P.OFFSET_SIGMA))
    offset_max = _upper_reach(j.get("bias_offset"), 5 * P.OFFSET_SIGMA)
    params["b0"] = P.scalar(nm("b0"), o.get("b0"), lambda: pm.Normal(nm("b0"), 0.0, 0.05 * scale))
    params["b1"] = P.scalar(nm("b1"), o.get("b1"), lambda: pm.Normal(nm("b1"), 0.0, 0.02))
    floors = [P.broadening_floor(s.get("gamma"))] + ([] if tip_floor is None else [tip_floor])
    if width_min is None:
        width_min = min([P.broadening_floor(bs.get("width")) for bs in states],
                        default=H.WIDTH_FLOOR_SHIFT if hypothesis else np.inf)
    t_floor = _lowest_temperature(j.get("T_eff"), data.temperature_K) if metal else None
    grid, bias_map = build_grid(data.bias, gamma_min=max(GAMMA_FLOOR, min(floors)),
                                width_min=max(WIDTH_FLOOR, width_min),
                                kT_max=K_B * t_reach, v_peak_max=v_peak_max, offset_max=abs(offset_max),
                                kT_min=None if t_floor is None else K_B * t_floor, window=window)
    if law is not None:
        params = law(grid, params)
    mu = pm.Deterministic(nm("mu"), predict(grid, bias_map, data.bias, params), dims=nm("bias_mV"))
    # --- correlated discrepancy (physics.md §3, misspecification; discrepancy.py): a GP adds to the mean, an AR(1)
    # is marginalised in the likelihood below
    kind = D.check(o)
    if kind != "none":
        d_scale = P.discrepancy_scale(nm("discrepancy_scale"), o.get("discrepancy_scale"), scale)
        d_length = P.discrepancy_length(nm("discrepancy_length"), o.get("discrepancy_length"))
    if kind == "gp":
        mu = mu + D.hsgp_discrepancy(nm("discrepancy"), data.bias, d_scale, d_length,
                                     P.discrepancy_length_entry(o.get("discrepancy_length")), nm("bias_mV"))
    if data.sigma is not None and "sigma" not in o:
        sigma_scale = P.scalar(nm("sigma_scale"), o.get("sigma_scale"),
                               lambda: pm.LogNormal(nm("sigma_scale"), 0.0, 0.5))
        sigma = sigma_scale * np.maximum(data.sigma, 1e-12 * scale)
    else:
        sigma = P.scalar(nm("sigma"), o.get("sigma"), lambda: pm.HalfNormal(nm("sigma"), 0.1 * scale))
    if kind == "gp":
        # the GP can follow the data closely, and a mode search probing sigma -> 0 (exp underflow) would hit the
        # likelihood's sigma > 0 check; far below any real noise the floor changes no density that matters
        sigma = pt.maximum(sigma, 1e-12 * scale)
    if o.get("noise", "normal") == "student_t":
        nu = P.scalar(nm("nu"), o.get("nu"), lambda: pm.Gamma(nm("nu"), alpha=2.0, beta=0.1))
        pm.StudentT(nm("y"), nu=nu, mu=mu, sigma=sigma, observed=data.y, dims=nm("bias_mV"))
    elif kind == "ar1":
        D.ar1_likelihood(nm("y"), mu, sigma, d_scale, d_length, data.y, data.bias, nm("bias_mV"))
    else:
        pm.Normal(nm("y"), mu=mu, sigma=sigma, observed=data.y, dims=nm("bias_mV"))
    return grid
