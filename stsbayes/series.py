"""Evidence across spectra (physics.md §5, issue 6): ``stsbayes series {gn,field,defects}``.

A series is a set of spectra read from a manifest (one row per spectrum: ``file`` relative to the manifest, and
``setpoint_current_nA`` + ``setpoint_bias_mV`` for gn, ``field_T`` for field, ``defect`` for defects; field and
defects may add the two setpoint columns, which then fix each spectrum's G_n as in gn). Each
hypothesis (``mzm``, ``ysr``) is one joint model over all spectra (``inference/series.py``), fitted with NUTS and
compared exactly as ``compare`` compares single spectra: two evidence estimators with replicates, prior
sensitivity of the contested law parameters, predictive checks per spectrum, the verdicts of physics.md §6
(zero vs offset; ``mzm_vs_ysr2`` is null). The result is a :class:`~stsbayes.comparison.CompareResult` whose
summary has ``command: "series"`` and a ``series`` block (kind, spectra, covariates).

:func:`simulate_series` draws a series from a law at true values (tests, bundled data, studies).
"""

import csv
import time
from pathlib import Path

import numpy as np
import pytensor.tensor as pt

from .comparison import (DEFAULT_SMC_DRAWS, CompareResult, HypothesisFit, _check_settings, assemble_summary,
                         check_prior_odds, evidence_record, evidence_runs, prior_sensitivity)
from .errors import InputError
from .inference import hypotheses as H
from .inference import series as S
from .inference.evidence import MIN_REPLICATES
from .models.constants import K_B
from .models.forward import build_grid
from .models.junction import modulation_peak
from .models.dos import sample_dos
from .models.spec import load_spec

NOISE_FRACTION = 0.02  # default simulated noise: 2 % of each spectrum's normal-state conductance


# ----------------------------------------------------------------------------------------------- manifest


def read_manifest(kind, path, **load_options):
    """The spectra and covariates of a series manifest (CSV); returns (FitData list, conditions, files)."""
    from .api import _as_data

    if kind not in S.KINDS:
        raise InputError(f"unknown series {kind!r}: choose gn, field or defects")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist: give a manifest CSV with a file column and "
                         f"{', '.join(S.CONDITION_KEYS[kind])}")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path} is not a readable CSV manifest ({err})") from None
    needed = ("file",) + S.CONDITION_KEYS[kind]
    columns = set(rows[0]) if rows else set()
    missing = [c for c in needed if c not in columns]
    if not rows or missing:
        raise InputError(f"{path} needs one row per spectrum and the columns {', '.join(needed)}"
                         + (f" (missing: {', '.join(missing)})" if missing else " (it has no rows)"))
    conditions = {}
    optional = [k for k in S.SETPOINT_KEYS if kind != "gn" and k in columns]
    for key in S.CONDITION_KEYS[kind] + tuple(optional):
        values = [(r.get(key) or "").strip() for r in rows]
        if key != "defect":
            try:
                values = [float(v) for v in values]
            except ValueError:
                raise InputError(f"{path}: column {key} must hold a number in every row") from None
        conditions[key] = values
    files, datas = [], []
    for i, r in enumerate(rows):
        name = (r.get("file") or "").strip()
        if not name:
            raise InputError(f"{path}: row {i + 2} has no file")
        f = (path.parent / name)
        if not f.is_file():
            raise InputError(f"{path}: row {i + 2} names {name}, which does not exist next to the manifest")
        files.append(str(f))
        datas.append(_as_data(f, **load_options))
    return datas, conditions, files


# ----------------------------------------------------------------------------------------------- the comparison


# NUTS target acceptance of the joint fits. On the full inert field must-show ysr diverged in 2 draws of 4000 at 0.9
# and in 7 at 0.95, all where eps0 is largest and the pair must be symmetric and narrow to look like one zero-energy
# peak: geometry, which a smaller step does not cure, so the cheaper 0.9 stays
SERIES_TARGET_ACCEPT = 0.9


class SeriesFit(HypothesisFit):
    """``fit_at(h, prior_scale, seed)`` of :func:`series`: the joint model of hypothesis ``h`` over the series
    (``data`` holds its spectra), fitted by ``run_fit``."""

    def __init__(self, kind, datas, conditions, spec, density, metal_tip, **run_fit_kwargs):
        super().__init__(datas, spec, **run_fit_kwargs)
        self.kind, self.conditions, self.density, self.metal_tip = kind, conditions, density, metal_tip

    def __call__(self, h, scale, fit_seed):
        return self.run_fit(command="series", sampler="nutpie", seed=fit_seed, hypothesis=h,
                            labels=S.labels_for(len(self.data)), prior_scale=scale, tip=self.density,
                            target_accept=SERIES_TARGET_ACCEPT,
                            build=lambda: self.build(h, scale, fit_seed))

    def build(self, h, scale, seed):
        """(model, info) of hypothesis ``h`` at ``prior_scale``; a defects ysr centres its resolved defects
        (``inference.series.centre_resolved``)."""
        def build(centred=None):
            return S.build_series_model(self.kind, h, self.data, self.conditions, self.spec, tip_density=self.density,
                                        metal_tip=self.metal_tip, prior_scale=scale, centred=centred)
        return S.centre_resolved(build, seed) if (self.kind, h) == ("defects", "ysr") else build()


class SeriesSensitivity:
    """``sensitivity(fit, h, log_z)`` of :func:`series`: the halved / doubled contested priors of a series."""

    def __init__(self, kind):
        self.kind = kind

    def __call__(self, fit, h, log_z):
        return prior_sensitivity(fit.posterior, h, log_z,
                                 log_prior=lambda post, factor: S.log_prior_of(post, self.kind, h, factor))


def series(kind, spectra, conditions=None, spec=None, *, hypotheses=S.SERIES_HYPOTHESES, tip=None,
           metal_tip=False, prior_odds=None, chains=4, draws=1000, tune=1000, seed=None, progress=None,
           smc_draws=DEFAULT_SMC_DRAWS, replicates=MIN_REPLICATES, smc_start="reference", prior_rerun=True,
           input_record=None, files=None, workers=None, max_draws=None):
    """Compare ``mzm`` and ``ysr`` on a series of spectra; returns a :class:`~stsbayes.comparison.CompareResult`.

    ``spectra``: a manifest path (then ``conditions`` come from it), or a list of spectra (files, Spectrum or
    FitData) with ``conditions`` a dict of per-spectrum lists (``inference.series.CONDITION_KEYS``). ``spec``
    gives the background (gaps, T_eff, modulation, observation) and its priors. gn and field need
    ``metal_tip=True``; defects may take a calibrated ``tip`` instead. ``workers``: as in
    :func:`~stsbayes.comparison.compare`, and so is ``max_draws``.
    """
    from .api import _as_data, _tip_density, check_max_draws

    if isinstance(spectra, (str, Path)):
        datas, conditions, files = read_manifest(kind, spectra)
    else:
        datas = [_as_data(d) for d in spectra]
    names = [h.strip() for h in (hypotheses.split(",") if isinstance(hypotheses, str) else hypotheses)]
    bad = [h for h in names if h not in S.SERIES_HYPOTHESES]
    if bad or "mzm" not in names or len(names) != len(set(names)) or len(names) < 2:
        raise InputError("a series compares mzm with ysr: give --hypotheses mzm,ysr")
    odds = check_prior_odds(prior_odds, names)
    _check_settings(smc_draws, replicates, smc_start, chains, draws, tune)
    check_max_draws(max_draws, draws)
    if tip is not None and metal_tip:
        raise InputError("give either --tip or --metal-tip, not both")
    density = _tip_density(tip)
    spec = load_spec(spec if spec is not None else {})
    cond = S.check_conditions(kind, conditions, len(datas))
    S.build_series_model(kind, "mzm", datas, conditions, spec, tip_density=density,
                         metal_tip=metal_tip)  # checks every input before any sampling
    seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)
    t_start = time.perf_counter()
    labels = S.labels_for(len(datas))

    fit_at = SeriesFit(kind, datas, conditions, spec, density, metal_tip, chains=chains, draws=draws, tune=tune,
                       progress=progress, input_record=input_record, max_draws=max_draws)
    settings = dict(smc_start=smc_start, smc_draws=smc_draws, replicates=replicates, progress=bool(progress))
    runs = evidence_runs(names, fit_at, SeriesSensitivity(kind), seed=seed, settings=settings,
                         prior_rerun=prior_rerun,
                         workers=workers)
    timing = {"total": time.perf_counter() - t_start, **{h: runs[h]["timing_s"]["total"] for h in names}}
    summary = assemble_summary(runs, hypotheses=names, prior_odds=odds, seed=seed, sampler="nutpie",
                               evidence_settings=evidence_record(settings, prior_rerun), input_record=input_record,
                               timing=timing, command="series", series_kind=kind)
    fixed_gaps = [float(d) for d in spec.sample.get("delta") or [] if isinstance(d, (int, float))]
    summary["diagnostics"]["cautions"] = S.window_cautions(datas, cond, [runs[h]["fit"].posterior for h in names],
                                                           labels, fixed_gaps)
    summary["series"] = {"kind": kind, "spectra": labels, "files": files,
                         "conditions": {k: (list(v) if k == "defect" else [float(x) for x in v])
                                        for k, v in cond.items()}}
    return CompareResult(summary, {h: runs[h]["fit"].tree for h in names}, fits={h: runs[h]["fit"] for h in names},
                         datas=datas)


# ----------------------------------------------------------------------------------------------- simulation


def _background(spec):
    """The spec's background as true numbers (metal tip): delta, gamma, weight, floor, T_eff, v_peak."""
    spec = load_spec(spec).numbers()
    s, j = spec.sample, spec.junction
    for key in ("delta", "gamma", "weight"):
        if key not in s:
            raise InputError(f"sample.{key} is missing: simulating a series needs the background's true values")
    if "T_eff" not in j or ("modulation_rms" not in j and "modulation_peak" not in j):
        raise InputError("simulating a series needs junction.T_eff and the lock-in amplitude (modulation_rms)")
    return spec


def law_spectra(kind, hypothesis, truth, conditions, spec, bias):
    """Per-spectrum true specs (dicts) of a series under ``hypothesis`` at the law's ``truth``; their junction.g_n
    is the normal-state conductance in µS (gn: from the setpoint, through the same integrals the model uses)."""
    spec = _background(spec)
    base = spec.as_dict()
    base["tip"] = {"kind": "metal"}
    s, j = spec.sample, spec.junction
    n = len(next(iter(conditions.values())))
    cond = S.check_conditions(kind, conditions, n)
    out = []
    for i in range(n):
        sample = {k: list(v) if isinstance(v, (list, tuple, np.ndarray)) else v for k, v in base["sample"].items()}
        junction = dict(base["junction"])
        if kind == "gn":
            states, g_n = _gn_truth(hypothesis, truth, cond, i, s, j, bias)
        elif kind == "field":
            b = cond["field_T"][i]
            sample["gamma"] = [g + truth.get("gamma_field", 0.0) * b for g in s["gamma"]]
            if hypothesis == "ysr":
                states = {"eps": truth["eps0"] + 0.5 * truth["g_eff"] * S.MU_B * b,
                          "width": truth["width0"] + truth["beta"] * b, "u2": truth["u2"], "v2": truth["v2"]}
            else:
                states = {"eps": 0.0, "width": truth["width"], "u2": truth["w"] / 2, "v2": truth["w"] / 2}
        else:
            if hypothesis == "ysr":
                states = {"eps": truth["eps_d"][i], "width": truth["width_d"][i], "u2": truth["u2_d"][i],
                          "v2": truth["v2_d"][i]}
            else:
                states = {"eps": 0.0, "width": truth["width_d"][i], "u2": truth["w_d"][i] / 2,
                          "v2": truth["w_d"][i] / 2}
        if kind != "gn" and "setpoint_current_nA" in cond:  # the setpoints fix G_n (truth g_n is not used)
            g_n = _linear_g_n(cond, i, s, sample["gamma"], j, states, bias)
        elif kind != "gn":
            g_n = truth.get("g_n", 1.0)
            g_n = g_n[i] if np.ndim(g_n) else g_n
        sample["bound_states"] = [{k: float(v) for k, v in states.items()}]
        junction["g_n"] = float(g_n)
        out.append({"tip": {"kind": "metal"}, "sample": sample, "junction": junction,
                    "observation": dict(base.get("observation", {}))})
    return out


def _setpoint_grid(cond, i, s, j, bias):
    """An energy grid reaching spectrum ``i``'s setpoint bias, fine enough for the model's accuracy."""
    t_eff = j["T_eff"]
    grid, _ = build_grid(bias, gamma_min=min(s["gamma"]), width_min=H.WIDTH_FLOOR_SHIFT, kT_max=K_B * t_eff,
                         v_peak_max=modulation_peak(j.get("modulation_rms"), j.get("modulation_peak")),
                         offset_max=0.0, kT_min=K_B * t_eff, window=abs(cond["setpoint_bias_mV"][i]))
    return grid


def _linear_g_n(cond, i, s, gamma, j, states, bias):
    """G_n of spectrum ``i`` when the whole spectrum scales with it: I_set / ∫_0^V_set g dV (``states`` with a
    signed eps)."""
    grid = _setpoint_grid(cond, i, s, j, bias)
    dos = sample_dos(grid.energies, s["delta"], gamma, s["weight"], s.get("floor", 0.0), cells=True,
                     **{k: [v] for k, v in states.items()})
    integral = S.setpoint_integral(grid, dos, cond["setpoint_bias_mV"][i], j["T_eff"]).eval()
    return float(cond["setpoint_current_nA"][i] / integral)


def _gn_truth(hypothesis, truth, cond, i, s, j, bias):
    """(bound state, G_n) of spectrum ``i`` of a gn series: the setpoint integral on a fine grid."""
    if hypothesis == "ysr":
        signed = truth["eps0"] + truth["alpha"] * cond["G_set"][i]
        u2, v2 = (truth["u2"], truth["v2"]) if signed >= 0 else (truth["v2"], truth["u2"])
        states = {"eps": abs(signed), "width": truth["width"], "u2": u2, "v2": v2}
        pair = {"eps": signed, "width": truth["width"], "u2": truth["u2"], "v2": truth["v2"]}
        return states, _linear_g_n(cond, i, s, s["gamma"], j, pair, bias)
    grid = _setpoint_grid(cond, i, s, j, bias)
    bg = sample_dos(grid.energies, s["delta"], s["gamma"], s["weight"], s.get("floor", 0.0), cells=True)
    kappa = pt.as_tensor_variable(float(truth["kappa"]))
    g_n = float(S.mzm_normal_conductance(grid, bg, cond["setpoint_current_nA"][i], cond["setpoint_bias_mV"][i],
                                         j["T_eff"], kappa).eval())
    width = truth["kappa"] * g_n
    half = np.pi * S.G0_US * width / (2 * g_n)
    return {"eps": 0.0, "width": width, "u2": half, "v2": half}, g_n


def simulate_series(kind, hypothesis, truth, conditions, spec, bias, *, noise_fraction=NOISE_FRACTION, seed=None):
    """Simulated spectra of a series (µS): a list of (y, sigma, g_n) per spectrum, noise ``noise_fraction`` of
    each spectrum's G_n. ``truth`` holds the law's true values (gn ysr: eps0, alpha, width, u2, v2; gn mzm: kappa;
    field ysr: eps0, g_eff, width0, beta, u2, v2, gamma_field, g_n; field mzm: width, w, gamma_field, g_n;
    defects ysr: eps_d, width_d, u2_d, v2_d, g_n; defects mzm: width_d, w_d, g_n)."""
    from .models.simulate import simulate

    bias = np.asarray(bias, float)
    rng = np.random.default_rng(seed)
    out = []
    for sp in law_spectra(kind, hypothesis, truth, conditions, spec, bias):
        g_n = sp["junction"]["g_n"]
        sigma = noise_fraction * g_n
        out.append((simulate(sp, bias, noise=sigma, seed=int(rng.integers(2**31))), sigma, g_n))
    return out


__all__ = ["law_spectra", "read_manifest", "series", "simulate_series"]
