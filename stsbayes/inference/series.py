"""Joint models over a set of spectra of one defect, or of many defects (physics.md §5, issue 6).

Three series, each with a zero-energy hypothesis ``mzm`` and an offset-energy one ``ysr``:

* ``gn`` — one defect at tip heights set by (I_set,j, V_set): metallic tip, conductances in µS. The normal-state
  conductance G_n,j of every spectrum follows from its setpoint, I_set,j = ∫_0^{V_set} y_j(V) dV with y_j before the
  lock-in (metal tip: ∫_0^{V_set} g(V) dV = ∫ N(E) [f(E − V_set) − f(E)] dE, one sum over the energy grid).
  ``ysr``: one pair at the signed energy s_j = eps0 + alpha·G_set,j (G_set = I_set / V_set), so eps_j = |s_j| and the
  weights swap where s_j changes sign (a pair at −|s| with u² and v² exchanged is the same line pair);
  y_j = G_n,j g_j(V), G_n,j linear in I_set,j. eps0 >= 0 removes the exact mirror (eps0, alpha, u², v²) ->
  (−eps0, −alpha, v², u²). ``mzm``: y_j = G_n,j g_bg + G0 Γ_j²/(V² + Γ_j²) ⊗ thermal ⊗ lock-in with Γ_j = kappa G_n,j;
  the G0 term does not scale with G_n,j, so G_n,j is the root of I_set,j = G_n,j A + G0 B(kappa G_n,j), solved by
  Newton steps inside the graph (A and B are sums over the grid; the root is increasing and concave in G_n, so
  Newton from the upper bound I/A converges monotonically after its first step).
* ``field`` — one defect at fields B_j (metal tip: a Pb tip is normal at 2-5 T). ``mzm`` (inert): eps = 0, width
  and weight independent of B. ``ysr`` (responsive): eps(B) = eps0 + ½ g_eff μ_B B (eps0, g_eff >= 0),
  width(B) = width0 + beta B (beta >= 0), weights u², v² conserved. In both the background gap broadening may grow
  with field, gamma_j = gamma + gamma_field B_j.
* ``defects`` — D defects of one type, one spectrum each. ``ysr``: eps_d from a population truncated at 0,
  N(mu_eps, tau_eps) restricted to eps >= 0, written non-centred (eps_d = mu − tau Φ⁻¹(Φ(−z_d) Φ(mu/tau)), z_d ~
  N(0, 1): exactly that truncated normal, without the funnel of a centred hierarchy where the data leave eps_d
  free) except for the defects whose eps_d the data resolve, which are centred (:func:`centre_resolved`);
  ``mzm``: every eps_d = 0.
  In both, log(width_d − 0.002) ~ N(mu_width, tau_width), sampled centred (each spectrum measures its peak's
  width, so the widths are known better than their spread), and each defect has its own weights.

Shared by all spectra of a series: T_eff, the tip, the background gaps (delta, gamma, weight, floor) and the bias
offset; each spectrum has its own noise and linear background, and its own g_n unless a setpoint fixes it (gn
always; field and defects when the manifest gives setpoints: G_n = I_set / ∫_0^V_set g dV, the spectrum scaling
with G_n). Without setpoints a window inside the gap leaves g_n trading against the bound-state weights (only the
small in-gap background tells them apart), which NUTS cannot sample well: include the coherence peaks.

Default priors of the laws (``PRIORS``; the contested ones, whose widths the prior-sensitivity check halves and
doubles, are listed per series and hypothesis in ``CONTESTED``):

- eps0: HalfNormal(0.2 meV), as a single pair's eps in ``compare``; alpha: Normal(0, 0.05 meV/µS) — the paper's
  eps runs 0.01-0.25 meV over G_set 0.3-17 µS (alpha ~ 0.015 meV/µS);
- kappa: LogNormal(log 0.005 meV/µS, 1.5) — Γ of 0.002-0.1 meV over G_n of 0.3-20 µS;
- g_eff: HalfNormal(2) (reaching 0: an inert state is inside the prior); beta: HalfNormal(0.02 meV/T); gamma_field:
  HalfNormal(0.01 meV/T);
- mu_eps: HalfNormal(0.2 meV); tau_eps: HalfNormal(0.1 meV); mu_width: Normal(log 0.02, 1); tau_width:
  HalfNormal(0.5);
- widths and weights as the single-spectrum hypotheses (``hypotheses.py``): field's ysr pair as a total weight w
  and log ratio r (u2 = w sigmoid(r), v2 = w sigmoid(-r)), defects each pair's the same way; gn samples u2 and v2.

The field ysr samples eps0, g_eff and r jointly (``zeeman_law``, priors as above) in the coordinates of
:class:`PairMoments`: the mean and spread of the pair's two line energies, and the split of its energy between
zero field and the Zeeman shift. The defects' pairs sample r through their asymmetry (``asymmetric_ratio``): both
remove the funnel that a state near zero energy makes in (eps, r).
"""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform
from scipy import special, stats

from ..errors import InputError
from ..models.dos import cell_mean, sample_dos
from ..models.junction import fermi
from ..models.constants import K_B
from ..models.spec import load_spec
from . import hypotheses as H
from . import priors as P
from .model import SHARED, ModelInfo, _spectrum_block, _tip_block

KINDS = ("gn", "field", "defects")
SERIES_HYPOTHESES = ("mzm", "ysr")
G0_US = 77.48091729  # conductance quantum 2e²/h in µS
MU_B = 0.05788381806  # Bohr magneton in meV/T
NEWTON_STEPS = 8

PRIORS = {
    "eps0": ("halfnormal", {"sigma": 0.2}),
    "alpha": ("normal", {"mu": 0.0, "sigma": 0.05}),
    "kappa": ("lognormal", {"mu": float(np.log(0.005)), "sigma": 1.5}),
    "width_excess": ("lognormal", H.WIDTH_PRIOR),
    "u2": ("lognormal", H.WEIGHT_PRIOR),
    "v2": ("lognormal", H.WEIGHT_PRIOR),
    "w": ("lognormal", H.STATE_WEIGHT_PRIOR),
    "log_ratio": ("normal", {"mu": 0.0, "sigma": H.RATIO_SIGMA}),
    "g_eff": ("halfnormal", {"sigma": 2.0}),
    "beta": ("halfnormal", {"sigma": 0.02}),
    "mu_eps": ("halfnormal", {"sigma": 0.2}),
    "tau_eps": ("halfnormal", {"sigma": 0.1}),
    "mu_width": ("normal", {"mu": float(np.log(0.02)), "sigma": 1.0}),
    "tau_width": ("halfnormal", {"sigma": 0.5}),
}
GAMMA_FIELD_SIGMA = 0.01  # meV/T
CONTESTED = {
    ("gn", "ysr"): ("eps0", "alpha", "width_excess", "u2", "v2"),
    ("gn", "mzm"): ("kappa",),
    ("field", "ysr"): ("eps0", "g_eff", "width_excess", "beta", "w", "log_ratio"),
    ("field", "mzm"): ("width_excess", "w"),
    ("defects", "ysr"): ("mu_eps", "tau_eps", "mu_width", "tau_width", "w", "log_ratio"),
    ("defects", "mzm"): ("mu_width", "tau_width", "w"),
}
# canonical parameter names reported per series (architecture.md) besides the per-spectrum ones
REPORTED = {
    ("gn", "ysr"): ["eps0", "alpha", "width", "u2", "v2", "eps_j", "g_n_j"],
    ("gn", "mzm"): ["kappa", "width_j", "g_n_j"],
    ("field", "ysr"): ["eps0", "g_eff", "width0", "beta", "u2", "v2", "eps_j", "width_j", "gamma_field"],
    ("field", "mzm"): ["width", "w", "gamma_field"],
    ("defects", "ysr"): ["mu_eps", "tau_eps", "mu_width", "tau_width", "eps_d", "width_d", "u2_d", "v2_d"],
    ("defects", "mzm"): ["mu_width", "tau_width", "width_d", "w_d"],
}
CONDITION_KEYS = {"gn": ("setpoint_current_nA", "setpoint_bias_mV"), "field": ("field_T",), "defects": ("defect",)}
SETPOINT_KEYS = ("setpoint_current_nA", "setpoint_bias_mV")  # optional for field and defects: they then fix G_n


def _scaled(key, factor):
    dist, params = PRIORS[key]
    return dist, {k: (v * factor if k == "sigma" else v) for k, v in params.items()}


def contested_rv(name, key, factor, **kwargs):
    """A contested prior (``PRIORS[key]``) with its width times ``factor``, as the PyMC variable ``name``."""
    dist, p = _scaled(key, factor)
    if dist == "halfnormal":
        return pm.HalfNormal(name, sigma=p["sigma"], **kwargs)
    if dist == "normal":
        return pm.Normal(name, mu=p["mu"], sigma=p["sigma"], **kwargs)
    return pm.LogNormal(name, mu=p["mu"], sigma=p["sigma"], **kwargs)


def _per_draw(posterior, name):
    """``posterior[name]`` as a (draws, elements) float array, chains flattened in chain-major order."""
    x = np.asarray(posterior[name].transpose("chain", "draw", ...).values, float)
    return x.reshape(x.shape[0] * x.shape[1], -1)


def window_cautions(datas, cond, posteriors, labels, fixed_gaps=()):
    """Cautions for spectra whose window ends inside the gaps while no setpoint fixes their G_n.

    Such a spectrum never reaches its coherence peaks, so its g_n trades against the bound-state weights (a
    window inside the gap measures only their product) and the law's fit leans on the prior of g_n. ``posteriors``
    are the hypotheses' posterior datasets and ``fixed_gaps`` the gaps the spec fixes (numbers, not priors); the
    edge is the smallest, over hypotheses, posterior median of the largest gap (plus the tip's gap for a
    superconducting tip). Returns a list of sentences, empty when every window reaches past the edge or setpoints
    tie G_n.
    """
    if "setpoint_current_nA" in cond:
        return []
    fixed = max(fixed_gaps) if len(fixed_gaps) else None
    edges = []
    for post in posteriors:
        edge = _per_draw(post, "delta").max(axis=1) if "delta" in post else np.array([-np.inf])
        if fixed is not None:
            edge = np.maximum(edge, fixed)
        if not np.all(np.isfinite(edge)):
            continue
        if "delta_tip" in post:
            edge = edge + _per_draw(post, "delta_tip")[:, 0]
        edges.append(float(np.median(edge)))
    if not edges:
        return []
    edge = min(edges)
    reach = {label: float(np.max(np.abs(d.bias))) for label, d in zip(labels, datas)}
    short = [label for label, r in reach.items() if r < edge]
    if not short:
        return []
    widest = max(reach[label] for label in short)
    return [f"{', '.join(short)} {'ends' if len(short) == 1 else 'end'} inside the gaps (window up to "
            f"±{widest:.3g} mV, coherence peaks near ±{edge:.3g} mV) and no setpoint fixes G_n there, so each "
            "spectrum's g_n trades against the bound-state weights and the fit leans on the prior of g_n: "
            "measure past the coherence peaks, or give the manifest setpoint_current_nA and setpoint_bias_mV "
            "columns"]


def log_prior_of(posterior, kind, hypothesis, factor=1.0):
    """Log prior density of the contested parameters at each posterior draw (flattened chain × draw), every width
    times ``factor``: what importance reweighting to a halved or doubled prior needs (``comparison.py``)."""
    total = 0.0
    for key in CONTESTED[(kind, hypothesis)]:
        if key not in posterior:
            raise InputError(f"the {kind} {hypothesis} posterior lacks {key}: was it fitted by `stsbayes series`?")
        x = _per_draw(posterior, key)
        dist, p = _scaled(key, factor)
        if dist == "halfnormal":
            lp = stats.halfnorm.logpdf(x, scale=p["sigma"])
        elif dist == "normal":
            lp = stats.norm.logpdf(x, loc=p["mu"], scale=p["sigma"])
        else:
            lp = stats.lognorm.logpdf(x, s=p["sigma"], scale=np.exp(p["mu"]))
        total = total + lp.sum(axis=-1)
    return total


# ----------------------------------------------------------------------------------------------- setpoint laws


def setpoint_window(energies, v_set, T_eff):
    """w(E) = f(E − V_set) − f(E): a metal tip's ∫_0^{V_set} g(V) dV = ∫ N(E) w(E) dE (µS·mV = nA when N is in µS)."""
    kT = K_B * T_eff
    return fermi(energies - v_set, kT) - fermi(energies, kT)


def setpoint_integral(grid, n_s, v_set, T_eff):
    """∫_0^{V_set} of the (pre-lock-in) conductance of a metal tip over a DOS ``n_s`` on the grid's energies."""
    return grid.step * pt.sum(n_s * setpoint_window(grid.energies, v_set, T_eff))


def lorentz_sum(grid, width, v_set, T_eff):
    """B(Γ) = ∫_0^{V_set} [Γ²/(E² + Γ²)] ⊗ thermal dV on the grid (cell means, as the forward model's DOS)."""
    line = cell_mean(grid.energies, lambda e: width * pt.arctan(e / width), lambda e: width**2 / (e**2 + width**2))
    return grid.step * pt.sum(line * setpoint_window(grid.energies, v_set, T_eff))


def mzm_normal_conductance(grid, n_bg, i_set, v_set, T_eff, kappa):
    """G_n (µS) of the gn ``mzm`` law: the root of I_set = G_n A + G0 B(kappa G_n), Newton steps in the graph."""
    a = setpoint_integral(grid, n_bg, v_set, T_eff)
    g = i_set / a  # an upper bound (B >= 0)
    for _ in range(NEWTON_STEPS):
        f = g * a + G0_US * lorentz_sum(grid, kappa * g, v_set, T_eff) - i_set
        g = g - f / pytensor.grad(f, g)
    return g


def mzm_states(width, g_n):
    """The gn ``mzm`` excess G0 Γ²/(E² + Γ²) as a bound state of the normalised DOS (u² = v² = π G0 Γ / (2 G_n))."""
    half = np.pi * G0_US * width / (2.0 * g_n)
    return {"eps": pt.zeros(1), "width": pt.stack([width]), "u2": pt.stack([half]), "v2": pt.stack([half])}


# ----------------------------------------------------------------------------------------------- conditions


def check_conditions(kind, conditions, n):
    """The per-spectrum covariates of a series as float arrays (defect labels as strings), checked."""
    if kind not in KINDS:
        raise InputError(f"unknown series {kind!r}: choose gn, field or defects")
    out = {}
    for key in CONDITION_KEYS[kind]:
        values = conditions.get(key) if isinstance(conditions, dict) else None
        if values is None or len(values) != n:
            raise InputError(f"a {kind} series needs {key} for each of its {n} spectra (a manifest column)")
        if key == "defect":
            out[key] = [str(v) for v in values]
            continue
        arr = np.asarray(values, float)
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{key} holds a missing or non-numeric value: give a number for every spectrum")
        out[key] = arr
    given = [k for k in SETPOINT_KEYS if isinstance(conditions, dict) and conditions.get(k) is not None]
    if kind != "gn" and given:  # optional: with both, each spectrum's G_n follows from its setpoint as in gn
        if len(given) == 1 or any(len(conditions[k]) != n for k in given):
            raise InputError("give both setpoint_current_nA and setpoint_bias_mV for every spectrum, or neither")
        for k in given:
            out[k] = np.asarray(conditions[k], float)
    if "setpoint_current_nA" in out:
        i, v = out["setpoint_current_nA"], out["setpoint_bias_mV"]
        if not (np.all(np.isfinite(i)) and np.all(np.isfinite(v))) or np.any(v == 0) or np.any(
                np.sign(i) != np.sign(v)) or np.any(i == 0):
            raise InputError("every setpoint needs a nonzero bias and a current of the same sign (I_set, V_set): "
                             "check the manifest's setpoint_current_nA and setpoint_bias_mV")
        out["G_set"] = i / v
    if kind == "field" and np.any(out["field_T"] < 0):
        raise InputError("field_T must be >= 0 T (the field's magnitude)")
    if kind == "defects" and len(set(out["defect"])) != n:
        raise InputError("every spectrum of a defects series needs its own defect name")
    if n < 2:
        raise InputError(f"a series needs at least two spectra, got {n}")
    return out


# ----------------------------------------------------------------------------------------------- the model


def labels_for(n):
    return [f"s{j}" for j in range(n)]


def build_series_model(kind, hypothesis, datas, conditions, spec=None, *, tip_density=None, metal_tip=True,
                       prior_scale=1.0, centred=None):
    """The PyMC model of a series (``kind``) under ``hypothesis`` (mzm or ysr); returns (model, ModelInfo).

    ``datas``: FitData, one per spectrum (gn: in µS); ``conditions``: per-spectrum covariates
    (:data:`CONDITION_KEYS`); ``spec`` the background and its priors (bound states are the law's). ``centred``
    (defects ysr): which defects' eps_d are sampled centred (:func:`population_energies`; default none, and
    :func:`centre_resolved` chooses them from the data).
    """
    if hypothesis not in SERIES_HYPOTHESES:
        raise InputError(f"series compare mzm and ysr; {hypothesis!r} is not one of them")
    spec = load_spec(spec if spec is not None else {})
    if spec.bound_states:
        raise InputError("a series spec gives the background only: its bound states come from the hypotheses")
    n = len(datas)
    cond = check_conditions(kind, conditions, n)
    metal = tip_density is None
    if not metal and kind != "defects":
        raise InputError(f"a {kind} series needs a metallic tip (physics.md §5): give --metal-tip")
    if not metal_tip and tip_density is None:
        raise InputError("a series needs --metal-tip, or --tip DIR from calibrate-tip (defects only)")
    tied = "setpoint_current_nA" in cond
    if tied and any(d.units != "uS" for d in datas):
        raise InputError("spectra tied to their setpoints need absolute conductances in µS: load the files "
                         "without --normalize, with a calibrated lock-in channel")
    if tied and not metal:
        raise InputError("setpoints tie G_n through a metal tip's current; with --tip drop the setpoint columns")
    s = spec.sample
    n_gaps = len(s["delta"]) if isinstance(s.get("delta"), list) else 0
    if n_gaps == 0:
        P.gaps("delta", None)  # raises the explanatory error
    baths = {d.temperature_K for d in datas if d.temperature_K is not None}
    if len(baths) > 1:
        raise InputError(f"the spectra give different bath temperatures {sorted(baths)} K: give one --temperature")
    t_bath = baths.pop() if baths else None
    labels = labels_for(n)
    coords = {"gap": np.arange(n_gaps), "spectrum": labels}
    for data, label in zip(datas, labels):
        coords[f"{label}:bias_mV"] = data.bias
    f = H.check_prior_scale(prior_scale)
    fixed = {}
    window = float(np.max(np.abs(cond["setpoint_bias_mV"]))) if tied else None
    with pm.Model(coords=coords) as model:
        shared, t_reach, tip_floor = _tip_block(spec, metal, tip_density, None, t_bath)
        shared["delta"] = P.gaps("delta", s.get("delta"))
        gamma = P.broadening("gamma", s.get("gamma"), shape=n_gaps,
                             ridge=False if metal else pt.as_tensor_variable(shared["gamma_tip"]))
        shared["weight"] = P.weights("weight", s.get("weight"), n_gaps)
        shared["floor"] = P.scalar("floor", s.get("floor"), lambda: pt.as_tensor_variable(0.0))
        shared["bias_offset"] = P.scalar("bias_offset", spec.junction.get("bias_offset"),
                                         lambda: pm.Normal("bias_offset", 0.0, P.OFFSET_SIGMA))
        own, laws = _laws(kind, hypothesis, cond, n, f, shared, gamma, centred)
        grids = []
        for j, (data, label) in enumerate(zip(datas, labels)):
            grids.append(_spectrum_block(data, spec, label, {**shared, **own[j]}, t_reach, tip_floor, n_gaps, [],
                                         None, False, None, fixed, metal, law=laws[j], window=window,
                                         width_min=H.WIDTH_FLOOR_SHIFT))
        if "g_n_j" not in model.named_vars:
            pm.Deterministic("g_n_j", pt.stack([model[f"{x}:g_n"] for x in labels]), dims="spectrum")
    present = {v.name for v in model.free_RVs + model.deterministics}
    wanted = [x for x in SHARED + ("delta", "gamma", "weight", "floor", "bias_offset") if x in present]
    wanted += [x for x in REPORTED[(kind, hypothesis)] + ["g_n_j"] if x in present and x not in wanted]
    for label in labels:
        wanted += [f"{label}:{x}" for x in ("sigma", "b0", "b1", "sigma_scale", "nu") if f"{label}:{x}" in present]
    scan = None if hypothesis != "ysr" else {"gn": {"eps0": H.EPS_SCAN}, "field": {"zeeman_law[0]": H.EPS_SCAN},
                                             "defects": {"mu_eps": H.EPS_SCAN}}[kind]
    info = ModelInfo(grid=grids[0], parameters=wanted, fixed=fixed, metal_tip=metal, labels=labels, grids=grids,
                     scan=scan)
    return model, info


def _laws(kind, hypothesis, cond, n, f, shared, gamma, centred=None):
    """Inside the model: the law's shared variables; returns (per-spectrum parameter dicts, per-spectrum law
    callables or None) for ``_spectrum_block``."""
    own = [{"gamma": gamma} for _ in range(n)]
    laws = [None] * n
    width_of = lambda name: pm.Deterministic(name, H.WIDTH_FLOOR_SHIFT + contested_rv(  # noqa: E731
        "width_excess", "width_excess", f))
    if kind == "gn":
        i_set, v_set, g_set = cond["setpoint_current_nA"], cond["setpoint_bias_mV"], cond["G_set"]
        if hypothesis == "ysr":
            eps0, alpha = contested_rv("eps0", "eps0", f), contested_rv("alpha", "alpha", f)
            width = width_of("width")
            u2, v2 = contested_rv("u2", "u2", f), contested_rv("v2", "v2", f)
            signed = eps0 + alpha * pt.as_tensor_variable(g_set)
            pm.Deterministic("eps_j", pt.abs(signed), dims="spectrum")
            for j in range(n):
                own[j].update(eps=pt.stack([signed[j]]), width=pt.stack([width]), u2=pt.stack([u2]),
                              v2=pt.stack([v2]))
        else:
            kappa = contested_rv("kappa", "kappa", f)
            g_ns, widths = [], []

            def mzm_law(j):
                def law(grid, params):
                    bg = sample_dos(grid.energies, params["delta"], params["gamma"], params["weight"],
                                    params["floor"], cells=True)
                    g_n = mzm_normal_conductance(grid, bg, i_set[j], v_set[j], params["T_eff"], kappa)
                    width = kappa * g_n
                    g_ns.append(g_n)
                    widths.append(width)
                    if len(g_ns) == n:
                        pm.Deterministic("g_n_j", pt.stack(g_ns), dims="spectrum")
                        pm.Deterministic("width_j", pt.stack(widths), dims="spectrum")
                    return {**params, **mzm_states(width, g_n), "g_n": g_n}
                return law
            laws = [mzm_law(j) for j in range(n)]
    elif kind == "field":
        field = pt.as_tensor_variable(cond["field_T"])
        gamma_field = pm.HalfNormal("gamma_field", sigma=GAMMA_FIELD_SIGMA)
        for j in range(n):
            own[j]["gamma"] = gamma + gamma_field * field[j]
        if hypothesis == "ysr":
            zeeman = 0.5 * MU_B * float(np.mean(cond["field_T"]))  # meV per unit g_eff at the mean field
            eps0, g_eff, ratio = zeeman_pair_law(zeeman, f)
            width0 = width_of("width0")
            beta = contested_rv("beta", "beta", f)
            # the pair's total weight and log ratio, as a single spectrum's ysr: an inert (zero-energy) state fixes
            # w alone, and independent u2, v2 would then wander along the curved valley u2 + v2 = w
            total = contested_rv("w", "w", f)
            u2 = pm.Deterministic("u2", total * pm.math.sigmoid(ratio))
            v2 = pm.Deterministic("v2", total * pm.math.sigmoid(-ratio))
            eps = pm.Deterministic("eps_j", eps0 + 0.5 * g_eff * MU_B * field, dims="spectrum")
            width = pm.Deterministic("width_j", width0 + beta * field, dims="spectrum")
            for j in range(n):
                own[j].update(eps=pt.stack([eps[j]]), width=pt.stack([width[j]]), u2=pt.stack([u2]),
                              v2=pt.stack([v2]))
        else:
            width = width_of("width")
            total = contested_rv("w", "w", f)
            for j in range(n):
                own[j].update(eps=pt.zeros(1), width=pt.stack([width]), u2=pt.stack([0.5 * total]),
                              v2=pt.stack([0.5 * total]))
    else:  # defects
        mu_w, tau_w = contested_rv("mu_width", "mu_width", f), contested_rv("tau_width", "tau_width", f)
        # centred: every defect's spectrum measures its peak's width, zero energy or not, so the widths are
        # known far better than their spread (non-centred, tau_width and the z's made a funnel: 7 divergences, all
        # at the upper end of tau_width, in the eleven zero-energy defects)
        log_w = pm.Normal("log_width_d", mu_w, tau_w, dims="spectrum")
        width = pm.Deterministic("width_d", H.WIDTH_FLOOR_SHIFT + pt.exp(log_w), dims="spectrum")
        if hypothesis == "ysr":
            mu_e, tau_e = contested_rv("mu_eps", "mu_eps", f), contested_rv("tau_eps", "tau_eps", f)
            eps = pm.Deterministic("eps_d", population_energies(mu_e, tau_e, n, centred), dims="spectrum")
            total = contested_rv("w", "w", f, dims="spectrum")
            ratio = asymmetric_ratio(eps, f, dims="spectrum")
            u2 = pm.Deterministic("u2_d", total * pm.math.sigmoid(ratio), dims="spectrum")
            v2 = pm.Deterministic("v2_d", total * pm.math.sigmoid(-ratio), dims="spectrum")
            for j in range(n):
                own[j].update(eps=pt.stack([eps[j]]), width=pt.stack([width[j]]), u2=pt.stack([u2[j]]),
                              v2=pt.stack([v2[j]]))
        else:
            total = contested_rv("w", "w", f, dims="spectrum")
            pm.Deterministic("w_d", total, dims="spectrum")
            for j in range(n):
                own[j].update(eps=pt.zeros(1), width=pt.stack([width[j]]), u2=pt.stack([0.5 * total[j]]),
                              v2=pt.stack([0.5 * total[j]]))
    if "setpoint_current_nA" in cond and laws[0] is None:  # the pair's G_n scales the whole spectrum: linear
        laws = linear_setpoint_laws(cond["setpoint_current_nA"], cond["setpoint_bias_mV"])
    return own, laws


class PairMoments(Transform):
    """Sampling coordinates of a field series' offset pair: (eps0, g_eff, r) -> (m, u, lambda).

    With e = eps0 + c g_eff the pair's energy at the mean field (c = ½ μ_B mean B) and r = ln(u²/v²), the pair's
    two lines at ±e with weights sigmoid(±r) have mean m = e tanh(r/2) and standard deviation s = e sech(r/2),
    sampled as u with s = s0 softplus(u) (as :class:`hypotheses.StateMixture`); lambda = ln(eps0 / (c g_eff)) splits e
    between the zero-field energy and the Zeeman shift.

    Why: the data measure m at first order (each spectrum's centroid is m e_j / e, with e_j / e between 0 and
    max B / mean B) and s only together with the width. In (eps0, r) a state near zero energy is a funnel: r is
    free where eps0 is small and must vanish as eps0 grows (an asymmetric pair moves the centroid), and NUTS
    diverged there (the inert field must-show, session 14). s itself is logarithmic near 0, which it approaches
    smoothly, and linear above s0: in ln s the posterior's upper edge, where the pair starts to resolve into two
    lines (its likelihood falls as s⁴), is a wall too steep for the step size (7 divergences in 4000 draws, all at
    the top 1 % of s). Inverse: e = sqrt(m² + s²), r = 2 asinh(m / s); the Jacobian
    |d(eps0, g_eff, r) / d(m, u, lambda)| = (2 / s) s0 sigmoid(u) e sigmoid(lambda) sigmoid(-lambda) / c.
    """

    name = "pair_moments"
    ndim_supp = 1

    def __init__(self, zeeman):
        self.c = float(zeeman)

    def forward(self, value, *inputs):
        eps0, g_eff, ratio = value[..., 0], value[..., 1], value[..., 2]
        m, u = H.pair_moments(eps0 + self.c * g_eff, ratio)
        return pt.stack([m, u, pt.log(eps0) - pt.log(self.c * g_eff)], axis=-1)

    def backward(self, value, *inputs):
        e, ratio, _ = H.pair_from_moments(value[..., 0], value[..., 1])
        lam = value[..., 2]
        return pt.stack([pm.math.sigmoid(lam) * e, pm.math.sigmoid(-lam) * e / self.c, ratio], axis=-1)

    def log_jac_det(self, value, *inputs):
        e, _, log_jac = H.pair_from_moments(value[..., 0], value[..., 1])
        lam = value[..., 2]
        return log_jac + pt.log(e / self.c) - pt.softplus(-lam) - pt.softplus(lam)


ZEEMAN_LAW = ("eps0", "g_eff", "log_ratio")  # the components of the field ysr's joint variable, in order


def zeeman_pair_law(zeeman, factor):
    """Inside the model: eps0, g_eff and log_ratio of the field ysr, with their priors (``PRIORS``, widths times
    ``factor``) but sampled jointly in :class:`PairMoments` coordinates as the variable ``zeeman_law``; returns the
    three as Deterministics of their own names."""
    if not zeeman > 0:
        raise InputError("a field series needs a spectrum at nonzero field: field_T is 0 T everywhere")
    s_eps, s_g, s_r = (_scaled(k, factor)[1]["sigma"] for k in ZEEMAN_LAW)
    columns = [(pm.HalfNormal, {"sigma": s_eps}), (pm.HalfNormal, {"sigma": s_g}), (pm.Normal, {"mu": 0.0, "sigma": s_r})]
    law = H.independent_columns("zeeman_law", columns, [0.5 * s_eps, 0.5 * s_g, 0.0], PairMoments(zeeman))
    return tuple(pm.Deterministic(name, law[k]) for k, name in enumerate(ZEEMAN_LAW))


def linear_setpoint_laws(i_set, v_set):
    """Laws giving each spectrum G_n = I_set / ∫_0^V_set g dV of its normalised DOS (bound states included), and
    the vector ``g_n_j`` once all are built (inside the model)."""
    g_ns = []

    def law_for(j):
        def law(grid, params):
            states = {k: params[k] for k in ("eps", "width", "u2", "v2")}
            dos = sample_dos(grid.energies, params["delta"], params["gamma"], params["weight"], params["floor"],
                             cells=True, **states)
            g_n = i_set[j] / setpoint_integral(grid, dos, v_set[j], params["T_eff"])
            g_ns.append(g_n)
            if len(g_ns) == len(i_set):
                pm.Deterministic("g_n_j", pt.stack(g_ns), dims="spectrum")
            return {**params, "g_n": g_n}
        return law
    return [law_for(j) for j in range(len(i_set))]


ASYMMETRY_SCALE = 0.005  # meV: the unit of a defect pair's sampled asymmetry (``asymmetric_ratio``)


def asymmetric_ratio(eps, factor, **kwargs):
    """Inside the model: the log weight ratio r ~ Normal(0, sqrt 2 · factor) of pairs at energies ``eps`` >= 0,
    sampled as the asymmetry a = e sinh(r/2) / a0 with e = sqrt(eps² + a0²) (a0 = ``ASYMMETRY_SCALE``; PyMC
    derives its density from r's); returns r as the Deterministic ``log_ratio``.

    The pair's lines at ±eps with weights sigmoid(±r) have their centroid at eps tanh(r/2), which the data measure
    at first order once eps is resolved: there r must vanish as eps grows, a funnel in (eps, r). The centroid is
    eps a0 a / sqrt(e² + (a0 a)²), about a0 a wherever eps >> a0, so in a it no longer depends on eps. Below a0 the
    lines are not resolved and r is free whatever eps: e -> a0 keeps a's scale there too (with e = eps, the scale
    of a followed eps down to 0, the reverse funnel: bulk ESS 12 for the eleven zero-energy defects)."""
    sigma = _scaled("log_ratio", factor)[1]["sigma"]

    def draw(scale, sigma, size):
        return scale * pt.sinh(pm.Normal.dist(0.0, sigma, size=size) / 2.0)

    scale = pt.sqrt(eps ** 2 + ASYMMETRY_SCALE ** 2) / ASYMMETRY_SCALE
    a = pm.CustomDist("asymmetry", scale, sigma, dist=draw, **kwargs)
    return pm.Deterministic("log_ratio", 2.0 * pt.arcsinh(a / scale), **kwargs)


# a defect is sampled centred when, at the non-centred model's mode, the data fix its z_d (whose prior is N(0, 1)):
# its Laplace sd given everything else is below CENTRE_BELOW and its marginal Laplace sd below the prior's 1
CENTRE_BELOW = 0.2


def population_energies(mu, tau, n, centred=None):
    """Inside the model: n energies eps_d >= 0 drawn from N(mu, tau) truncated at 0; returns them as one tensor.

    Where the data resolve eps_d (a pair of lines apart), it is known far better than the population's spread
    tau, and a non-centred eps_d = f(mu, tau, z_d) ties z_d to tau: a funnel (65 divergences, all at the upper end
    of tau_eps, in the eleven offset defects). Where they do not (a zero-energy state), eps_d is free below the
    resolution and mu, tau range over decades towards 0, which only the non-centred form samples. So the defects
    marked in ``centred`` are the variable ``eps_resolved`` ~ TruncatedNormal(mu, tau, lower=0), the others
    ``z_eps`` ~ N(0, 1) through :func:`truncated_population`; the density of eps_d is the same either way."""
    centred = np.zeros(n, bool) if centred is None else np.asarray(centred, bool)
    if centred.shape != (n,):
        raise ValueError(f"centred needs one flag per defect ({n}), not shape {centred.shape}")
    free = np.flatnonzero(~centred)
    if free.size == n:
        return truncated_population(mu, tau, pm.Normal("z_eps", 0.0, 1.0, dims="spectrum"))
    eps = pt.zeros(n)
    if free.size:
        eps = pt.set_subtensor(eps[free], truncated_population(mu, tau, pm.Normal("z_eps", 0.0, 1.0,
                                                                                   shape=free.size)))
    resolved = pm.TruncatedNormal("eps_resolved", mu, tau, lower=0.0, shape=int(centred.sum()))
    return pt.set_subtensor(eps[np.flatnonzero(centred)], resolved)


def centre_resolved(build, seed=None):
    """(model, info) of a defects ysr whose resolved defects are sampled centred (:func:`population_energies`).

    ``build(centred)`` builds the model. The non-centred one is built first and its mode located. There each z_d
    has the prior curvature 1 (N(0, 1)) plus what the spectrum adds. A defect is resolved when the data decide its
    eps_d, not the population: z_d's Laplace sd given everything else (1 / sqrt of the Hessian's diagonal) is below
    ``CENTRE_BELOW`` and its marginal Laplace sd below the prior's 1. Measured at the modes (sd given the rest,
    marginal sd): eleven zero-energy defects of the must-show 0.50-0.82, 0.78-0.96; eleven offset ones
    0.011-0.043, 0.26-0.43; four reduced offset ones 0.07, 0.55. The second condition matters where a zero-energy
    state's eps_d trades against its width along a ridge, on which the curvature given the width is high (four
    reduced zero-energy defects: one at sd 0.18 given the rest) while the marginal sd is not (58-187). The
    resolved defects are centred in a second build, which starts its own mode search at the mode found (its
    initial values). Returns the first model when no defect is resolved or the mode has no curvature."""
    from .sampling import locate_mode
    model, info = build(None)
    found = locate_mode(model, seed, scan=info.scan)
    if found.root is None:
        return model, info
    at = found.unflatten(np.arange(found.x.size))["z_eps"].ravel()
    covariance = found.root @ found.root.T
    given_rest = 1.0 / np.sqrt(np.diag(np.linalg.inv(covariance))[at])
    resolved = (given_rest < CENTRE_BELOW) & (np.sqrt(np.diag(covariance)[at]) < 1.0)
    if not resolved.any():
        return model, info
    mode = found.constrained
    eps = truncated_population(float(mode["mu_eps"]), float(mode["tau_eps"]), mode["z_eps"], math=special)
    model, info = build(resolved)
    for name, value in mode.items():
        if name == "z_eps":
            value = np.asarray(value)[~resolved]
            if not value.size:
                continue
        model.set_initval(model[name], value)
    model.set_initval(model["eps_resolved"], eps[resolved])
    return model, info


def truncated_population(mu, tau, z, math=pt):
    """eps = mu − tau Φ⁻¹(Φ(−z) Φ(mu/tau)): for z ~ N(0, 1), exactly N(mu, tau) truncated to eps >= 0.

    ``math`` gives erfc and erfcinv: PyTensor's (in a model) or ``scipy.special`` (on NumPy values)."""
    upper = 0.5 * math.erfc(-mu / (tau * np.sqrt(2.0)))  # Φ(mu/tau)
    tail = 0.5 * math.erfc(z / np.sqrt(2.0))  # Φ(−z)
    return mu + tau * np.sqrt(2.0) * math.erfcinv(2.0 * tail * upper)
