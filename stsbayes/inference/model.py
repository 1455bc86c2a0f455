"""A PyMC model built from a spec and a spectrum: priors (``priors.py``) + the forward graph + a likelihood."""

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..errors import InputError
from ..models.constants import GAMMA_FLOOR, K_B, MODULATION_RMS_FLOOR, WIDTH_FLOOR
from ..models.forward import BOUND_PARAMS, build_grid, predict
from ..models.spec import Fitted, Prior, load_spec
from . import priors as P


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

    grid: object
    parameters: list  # canonical names of the fitted quantities, as stored in the posterior
    fixed: dict  # name -> value of quantities held fixed
    metal_tip: bool


def build_model(data, spec, *, tip_density=None, metal_tip=None, reference=None, fit_modulation=False):
    """The PyMC model of one spectrum.

    ``spec`` gives priors (or fixed numbers) and structure; ``tip_density`` (a :class:`~stsbayes.inference.tip.
    TipDensity` from a calibration) replaces the tip and T_eff priors; ``metal_tip`` forces a metallic tip;
    ``reference`` supplies default sample/tip gap priors (``PB_REFERENCE``).
    """
    spec = load_spec(spec)
    metal = spec.metal_tip if metal_tip is None else metal_tip
    s, j, o, t = spec.sample, spec.junction, spec.observation, spec.tip
    scale = 1.0 if data.units == "normalised" else data.scale
    fixed = {}
    n_gaps = len(s["delta"]) if isinstance(s.get("delta"), list) else len(reference["delta"]) if reference else 0
    if n_gaps == 0:
        P.gaps("delta", None)  # raises the explanatory error
    states = spec.bound_states
    coords = {"gap": np.arange(n_gaps), "bias_mV": data.bias}
    if states:
        coords["state"] = np.arange(len(states))
    with pm.Model(coords=coords) as model:
        params = {}
        # --- tip and junction temperature
        t_bath = data.temperature_K
        if tip_density is not None and not metal:
            params.update(tip_density.random_variables())
            t_reach = tip_density.upper_reach("T_eff")
        else:
            if not metal:
                tip_delta = t.get("delta")
                if tip_delta is None:
                    if reference is None:
                        raise InputError("the tip gap is unknown: give --tip DIR/posterior.nc from calibrate-tip, a "
                                         "tip.delta prior in the spec, or --metal-tip")
                    params["delta_tip"] = pm.Normal("delta_tip", reference["delta_tip"], reference["delta_tip_sigma"])
                else:
                    params["delta_tip"] = P.scalar("delta_tip", tip_delta, None)
                params["gamma_tip"] = P.broadening("gamma_tip", t.get("gamma"))
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
        # --- sample
        params["delta"] = P.gaps("delta", s.get("delta"), reference=reference)
        params["gamma"] = P.broadening("gamma", s.get("gamma"), shape=n_gaps)
        params["weight"] = P.weights("weight", s.get("weight"), n_gaps)
        params["floor"] = P.scalar("floor", s.get("floor"), lambda: pt.as_tensor_variable(0.0))
        if states:
            for k in BOUND_PARAMS:
                entries = [bs.get(k) for bs in states]
                if any(e is None for e in entries):
                    raise InputError(f"sample.bound_states need {k} for every state (a number or a prior)")
                if k == "width":
                    params[k] = pt.stack([P.broadening(f"width_{i}", e) for i, e in enumerate(entries)])
                else:
                    params[k] = pt.stack([P.scalar(f"{k}_{i}", e, None) for i, e in enumerate(entries)])
        # --- lock-in
        recorded = data.v_peak() if ("modulation_rms" not in j and "modulation_peak" not in j) else None
        mod_entry = j.get("modulation_rms", j.get("modulation_peak"))
        if isinstance(mod_entry, (int, float)):
            recorded = mod_entry * (np.sqrt(2) if "modulation_rms" in j else 1.0)
        if isinstance(mod_entry, Fitted) or fit_modulation:
            start_rms = (mod_entry.value if isinstance(mod_entry, Fitted) and mod_entry.value else
                         (recorded or data.v_peak()) / np.sqrt(2))
            rms = pm.Truncated("modulation_rms", pm.LogNormal.dist(mu=np.log(start_rms), sigma=0.25),
                               lower=MODULATION_RMS_FLOOR)
            params["v_peak"] = np.sqrt(2.0) * rms
            v_peak_max = np.sqrt(2.0) * start_rms * np.exp(5 * 0.25)
            v_fixed = None
        elif isinstance(mod_entry, Prior):
            rms = P.distribution("modulation_rms", mod_entry, lower=MODULATION_RMS_FLOOR)
            params["v_peak"] = np.sqrt(2.0) * rms if "modulation_rms" in j else rms
            v_peak_max = np.sqrt(2.0) * _upper_reach(mod_entry, 0.5)
            v_fixed = None
        else:
            params["v_peak"] = v_fixed = float(recorded)
            v_peak_max = v_fixed
            fixed["modulation_peak_mV"] = v_fixed
        # --- observation
        g_n_default = (lambda: pm.LogNormal("g_n", mu=0.0, sigma=0.2)) if data.units == "normalised" else (
            lambda: pm.LogNormal("g_n", mu=np.log(scale), sigma=0.5))
        params["g_n"] = P.scalar("g_n", j.get("g_n"), g_n_default)
        params["bias_offset"] = P.scalar("bias_offset", j.get("bias_offset"),
                                         lambda: pm.Normal("bias_offset", 0.0, P.OFFSET_SIGMA))
        offset_max = _upper_reach(j.get("bias_offset"), 5 * P.OFFSET_SIGMA)
        params["b0"] = P.scalar("b0", o.get("b0"), lambda: pm.Normal("b0", 0.0, 0.05 * scale))
        params["b1"] = P.scalar("b1", o.get("b1"), lambda: pm.Normal("b1", 0.0, 0.02))
        floors = [P.broadening_floor(s.get("gamma"))]
        if not metal:
            floors.append(tip_density.lower_reach("gamma_tip") if tip_density is not None
                          else P.broadening_floor(t.get("gamma")))
        width_min = min([P.broadening_floor(bs.get("width")) for bs in states], default=np.inf)
        grid, bias_map = build_grid(data.bias, gamma_min=max(GAMMA_FLOOR, min(floors)),
                                    width_min=max(WIDTH_FLOOR, width_min),
                                    kT_max=K_B * t_reach, v_peak_max=v_peak_max, offset_max=abs(offset_max))
        mu = pm.Deterministic("mu", predict(grid, bias_map, data.bias, params), dims="bias_mV")
        if o.get("discrepancy", "none") != "none":
            raise InputError("the correlated discrepancy terms (ar1, gp) are not available in fits yet: "
                             "remove observation.discrepancy")
        if data.sigma is not None and "sigma" not in o:
            sigma_scale = P.scalar("sigma_scale", o.get("sigma_scale"),
                                   lambda: pm.LogNormal("sigma_scale", 0.0, 0.5))
            sigma = sigma_scale * np.maximum(data.sigma, 1e-12 * scale)
        else:
            sigma = P.scalar("sigma", o.get("sigma"), lambda: pm.HalfNormal("sigma", 0.1 * scale))
        if o.get("noise", "normal") == "student_t":
            nu = P.scalar("nu", o.get("nu"), lambda: pm.Gamma("nu", alpha=2.0, beta=0.1))
            pm.StudentT("y", nu=nu, mu=mu, sigma=sigma, observed=data.y, dims="bias_mV")
        else:
            pm.Normal("y", mu=mu, sigma=sigma, observed=data.y, dims="bias_mV")
    names = [v.name for v in model.free_RVs + model.deterministics]
    wanted = ["delta_tip", "gamma_tip", "T_eff", "delta", "gamma", "weight", "floor", "modulation_rms", "g_n",
              "bias_offset", "b0", "b1", "sigma", "sigma_scale", "nu"]
    wanted += [f"{k}_{i}" for k in BOUND_PARAMS for i in range(len(states))]
    info = ModelInfo(grid=grid, parameters=[n for n in wanted if n in names], fixed=fixed, metal_tip=metal)
    return model, info
