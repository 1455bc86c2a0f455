"""Simulation-based calibration (Talts et al. 2018): draw from the prior, simulate, fit, rank the truth.

If the fitting procedure returns the exact posterior, the rank of a prior draw among L posterior draws is uniform on
{0, ..., L} for every scalar parameter. The study here:

- draws the parameters *and* the data from the fitted PyMC model itself (its prior and its likelihood, the same
  forward graph as every fit), so the simulation cannot disagree with the prior or the model the fit uses;
- fits every simulation with the package's own procedure (multi-start MAP, then nutpie NUTS from the mode), on
  ONE compiled model whose observed spectrum is a shared variable swapped per simulation (``with_data``);
- keeps every fit: a fit that fails its convergence gates is counted (and its interval counts as a miss in the
  coverage), never dropped;
- judges the ranks with the rank-ECDF and its simultaneous band (Säilynoja, Bürkner & Vehtari 2022, simulation
  method, ArviZ's implementation), at family-wise level 0.05 over all parameters of a model (Bonferroni), and the
  coverage of central 50 % and 90 % intervals with Clopper-Pearson intervals.

The rank/band/coverage functions take plain arrays and dicts, so they are tested on a conjugate toy model whose
posterior is exact (tests/test_sbc.py). ``run_study`` works with any simulator that has ``parameters``,
``simulate(seed)`` and ``fit(data, seed)``; :class:`SpectrumSBC` is the one for stsbayes' models.
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

from ..errors import InputError
from .gates import MAX_R_HAT, MIN_ESS_BULK, chain_modes, gates, summarize

FAMILY_ALPHA = 0.05  # family-wise level of the rank-ECDF bands over all parameters of one model
LEVELS = (0.5, 0.9)  # central credible intervals whose coverage is reported
BAND_SIMULATIONS = 20000  # uniform ECDFs simulated for the band (enough for the 1 - 0.05/P quantile)
SCHEMA_VERSION = 1


# ----------------------------------------------------------------------------------------------------------------
# ranks, bands, coverage: plain arrays in, plain dicts out


def thin(x, n):
    """``n`` evenly spaced draws of a (chain, draw) array, flattened chain by chain (thinning by a constant
    stride lowers the autocorrelation that would otherwise make the ranks non-uniform)."""
    flat = np.asarray(x, float).reshape(-1)
    if flat.size < n:
        raise InputError(f"{flat.size} posterior draws cannot be thinned to {n}: sample more draws")
    return flat[np.linspace(0, flat.size - 1, n).round().astype(int)]


def rank(truth, draws, rng):
    """The number of ``draws`` below ``truth`` (ties split at random): uniform on {0..len(draws)} if calibrated."""
    draws = np.asarray(draws, float)
    below = int(np.sum(draws < truth))
    ties = int(np.sum(draws == truth))
    return below + (int(rng.integers(0, ties + 1)) if ties else 0)


def central_interval_covers(truth, draws, level):
    lo, hi = np.quantile(np.asarray(draws, float), [(1 - level) / 2, (1 + level) / 2])
    return bool(lo <= truth <= hi)


def rank_ecdf_bands(ranks, n_ranks, *, alpha=FAMILY_ALPHA, n_band_simulations=BAND_SIMULATIONS, seed=0):
    """Rank-ECDFs of every parameter against a simultaneous band, Bonferroni over the parameters.

    ``ranks``: name -> integer ranks in 0..n_ranks (n_ranks = L thinned draws). The ECDF is evaluated at
    z_i = i / (L + 1), i = 1..L, where for uniform ranks P(rank < i) = z_i exactly; there the ECDF of discrete ranks
    equals that of continuous PIT values u = (rank + U) / (L + 1), so the band of continuous uniforms applies
    without jitter. Each parameter's band has simultaneous level 1 - alpha / P (P parameters), so the family of all
    P bands has level >= 1 - alpha. Band by simulation (Säilynoja et al. 2022) with ArviZ's code.
    """
    from arviz_stats.ecdf_utils import get_pointwise_confidence_band, simulate_confidence_bands

    names = list(ranks)
    z = np.arange(1, n_ranks + 1) / (n_ranks + 1)
    prob = 1 - alpha / max(1, len(names))
    out, bands = {}, {}
    for name in names:
        r = np.asarray(ranks[name], int)
        n = r.size
        if n == 0:
            out[name] = {"n": 0, "inside": None}
            continue
        if n not in bands:
            rng = np.random.default_rng(seed)
            pointwise = simulate_confidence_bands(n, 1, z, prob, n_band_simulations, rng)
            bands[n] = get_pointwise_confidence_band(pointwise, n, z) + (float(pointwise),)
        lower, upper, pointwise = bands[n]
        ecdf = np.searchsorted(np.sort(r), np.arange(1, n_ranks + 1), side="left") / n  # #{rank < i} / n
        outside = (ecdf < lower - 1e-12) | (ecdf > upper + 1e-12)
        out[name] = {"n": int(n), "inside": not bool(outside.any()), "points_outside": int(outside.sum()),
                     "pointwise_prob": pointwise, "z": z, "ecdf": ecdf, "lower": lower, "upper": upper}
    verdicts = [v["inside"] for v in out.values() if v["inside"] is not None]
    return {"family_alpha": alpha, "per_parameter_level": prob, "n_eval_points": int(n_ranks),
            "passed": bool(verdicts) and all(verdicts), "parameters": out}


def clopper_pearson(k, n, level=0.95):
    """Exact binomial interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    a = 1 - level
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def coverage(records, names, *, levels=LEVELS, failed_as_miss=True):
    """Per level and parameter: the fraction of simulations whose central interval covers the truth.

    With ``failed_as_miss`` a fit that failed its gates (or crashed) counts as a miss: the promise is about what a
    user gets, and a user's failed fit gives no trustworthy interval.
    """
    out = {}
    for level in levels:
        key = f"{round(level * 100):d}"
        out[key] = {}
        for name in names:
            k = n = 0
            for rec in records:
                n += 1
                ok = rec.get("covered", {}).get(key, {}).get(name)
                if ok and (not failed_as_miss or rec.get("passed_gates", False)):
                    k += 1
            lo, hi = clopper_pearson(k, n)
            out[key][name] = {"covered": k, "n": n, "fraction": k / n if n else None, "cp95": [lo, hi]}
    return out


def binomial_band(n, p, alpha):
    """Central interval of Binomial(n, p) counts holding at least 1 - alpha."""
    return int(stats.binom.ppf(alpha / 2, n, p)), int(stats.binom.isf(alpha / 2, n, p))


def gap_coverage_verdict(cov, gaps, *, level=0.9, alpha=FAMILY_ALPHA):
    """The issue's criterion: every gap's count of covering 90 % intervals lies in the central binomial band,
    simultaneous at 1 - alpha over the model's gaps (Bonferroni: each at 1 - alpha / G)."""
    key = f"{round(level * 100):d}"
    if not gaps:
        return None
    n = next(iter(cov[key].values()))["n"]
    lo, hi = binomial_band(n, level, alpha / len(gaps))
    counts = {g: cov[key][g]["covered"] for g in gaps}
    return {"level": level, "n": n, "band_counts": [lo, hi], "band_fractions": [lo / n, hi / n] if n else None,
            "counts": counts, "passed": bool(n) and all(lo <= c <= hi for c in counts.values())}


# ----------------------------------------------------------------------------------------------------------------
# one simulation, and the resumable study


def _sim_seeds(seed, index):
    """Independent seeds for the prior draw and the fit of simulation ``index`` (stable across resumptions)."""
    a, b, c = np.random.SeedSequence([int(seed), int(index)]).generate_state(3)
    return int(a % 2**31), int(b % 2**31), int(c % 2**31)


def one_simulation(simulator, index, seed, n_ranks):
    """Simulate, fit, rank: the record of one simulation (a fit's failure is recorded, not raised)."""
    draw_seed, fit_seed, rank_seed = _sim_seeds(seed, index)
    t0 = time.perf_counter()
    truth, data = simulator.simulate(draw_seed)
    record = {"index": int(index), "seed": int(seed), "draw_seed": draw_seed, "fit_seed": fit_seed,
              "truth": {k: float(v) for k, v in truth.items()}}
    t1 = time.perf_counter()
    try:
        fitted = simulator.fit(data, fit_seed)
    except Exception as err:  # noqa: BLE001  a crashed fit is a failed fit: counted, not dropped
        record.update({"error": f"{type(err).__name__}: {err}", "passed_gates": False, "ranks": {}, "covered": {},
                       "gates": None, "timing_s": {"simulate": t1 - t0, "fit": time.perf_counter() - t1}})
        return record
    t2 = time.perf_counter()
    rng = np.random.default_rng(rank_seed)
    draws = fitted["draws"]
    ranks, covered = {}, {f"{round(lv * 100):d}": {} for lv in LEVELS}
    for name in simulator.parameters:
        x = np.asarray(draws[name], float)
        ranks[name] = rank(truth[name], thin(x, n_ranks), rng)
        for lv in LEVELS:
            covered[f"{round(lv * 100):d}"][name] = central_interval_covers(truth[name], x, lv)
    record.update({"error": None, "ranks": ranks, "covered": covered, "gates": fitted["gates"],
                   "passed_gates": bool(fitted["gates"]["converged"]),
                   "posterior": {k: {"mean": float(np.mean(draws[k])), "sd": float(np.std(draws[k]))}
                                 for k in simulator.parameters},
                   "timing_s": {"simulate": t1 - t0, "fit": t2 - t1, **fitted.get("timing_s", {})}})
    return record


def _record_path(folder, index):
    return Path(folder) / f"sim_{index:04d}.json"


def load_records(folder):
    """The finished simulations in a study folder, by index."""
    folder = Path(folder)
    records = []
    for path in sorted(folder.glob("sim_*.json")):
        records.append(json.loads(path.read_text()))
    return sorted(records, key=lambda r: r["index"])


def run_study(simulator, folder, *, simulations, seed, n_ranks, settings, progress=print, stop_after=None):
    """Run simulations 0..simulations-1 that are not yet in ``folder`` (one atomic JSON file each), so an
    interrupted study resumes where it stopped and never loses a finished simulation.

    ``settings`` (sampler sizes, model) are stored in ``folder/settings.json``; resuming with other settings is
    refused, since mixing them would make the ranks meaningless. ``stop_after`` ends the run after that many new
    simulations (tests use it to interrupt).
    """
    from ..io.atomic import atomic_write_text
    from ..io.reading import jsonable

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = jsonable({**settings, "seed": int(seed), "n_ranks": int(n_ranks)})
    stored = folder / "settings.json"
    if stored.exists():
        old = json.loads(stored.read_text())
        if old != settings:
            diff = {k: (old.get(k), settings.get(k)) for k in set(old) | set(settings) if old.get(k) != settings.get(k)}
            raise InputError(f"{folder} holds simulations run with other settings {diff}: use another --out folder "
                             "or the same settings to resume")
    else:
        atomic_write_text(stored, json.dumps(settings, indent=1))
    done = {int(p.stem.split("_")[1]) for p in folder.glob("sim_*.json")}
    todo = [i for i in range(simulations) if i not in done]
    if progress:
        progress(f"{len(done & set(range(simulations)))} of {simulations} simulations already finished; "
                 f"{len(todo)} to run")
    new = 0
    for i in todo:
        rec = one_simulation(simulator, i, seed, n_ranks)
        atomic_write_text(_record_path(folder, i), json.dumps(jsonable(rec)))
        new += 1
        if progress:
            g = rec.get("gates") or {}
            status = ("error: " + rec["error"]) if rec["error"] else (
                "ok" if rec["passed_gates"] else "failed gates: " + "; ".join(g.get("failed_gates", [])))
            progress(f"simulation {i + 1}/{simulations} (index {i}): fit {rec['timing_s']['fit']:.1f} s, {status}")
        if stop_after is not None and new >= stop_after:
            break
    return load_records(folder)


def summarize_study(records, parameters, *, gaps=(), n_ranks, settings=None, alpha=FAMILY_ALPHA, extra=None):
    """The study's JSON: ranks, band verdict, coverage (failed fits as misses, and raw), gate failures, timings."""
    fitted = [r for r in records if not r.get("error")]
    ranks = {p: [r["ranks"][p] for r in fitted] for p in parameters}
    band = rank_ecdf_bands(ranks, n_ranks, alpha=alpha)
    cov = coverage(records, parameters)
    cov_raw = coverage(fitted, parameters, failed_as_miss=False)
    reasons = {"divergences": 0, "r_hat": 0, "ess_bulk": 0, "chain_modes": 0}
    strict = 0
    for r in fitted:
        g = r["gates"]
        reasons["divergences"] += g["divergences"] > 0
        reasons["r_hat"] += g["max_r_hat"] > MAX_R_HAT
        reasons["ess_bulk"] += g["min_ess_bulk"] < g.get("ess_threshold", MIN_ESS_BULK)
        reasons["chain_modes"] += bool(g.get("chains_in_different_modes"))
        strict += bool(g["divergences"] or g["max_r_hat"] > MAX_R_HAT or g["min_ess_bulk"] < MIN_ESS_BULK
                       or g.get("chains_in_different_modes"))
    fit_times = [r["timing_s"]["fit"] for r in records]
    band_json = {k: v for k, v in band.items() if k != "parameters"}
    band_json["parameters"] = {
        p: {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in b.items() if k not in ("z",)}
        for p, b in band["parameters"].items()}
    return {
        "schema_version": SCHEMA_VERSION,
        "settings": settings or {},
        "n_simulations": len(records),
        "n_fitted": len(fitted),
        "n_errors": len(records) - len(fitted),
        "errors": {str(r["index"]): r["error"] for r in records if r.get("error")},
        "gate_failures": {"count": sum(not r["passed_gates"] for r in records),
                          "count_strict_ess_400": strict + (len(records) - len(fitted)),
                          "by_reason": reasons,
                          "indices": [r["index"] for r in records if not r["passed_gates"]]},
        "parameters": list(parameters),
        "n_ranks": int(n_ranks),
        "ranks": ranks,
        "band": band_json,
        "coverage": cov,
        "coverage_all_fits": cov_raw,
        "gap_coverage_90": gap_coverage_verdict(cov, list(gaps)),
        "timing_s": {"fit_mean": float(np.mean(fit_times)) if fit_times else None,
                     "fit_median": float(np.median(fit_times)) if fit_times else None,
                     "fit_total": float(np.sum(fit_times))},
        **(extra or {}),
    }


# ----------------------------------------------------------------------------------------------------------------
# figures


def plot_rank_ecdf(band, path, title=""):
    """ECDF - z of every parameter's ranks with its simultaneous band (Bonferroni over parameters)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = band["parameters"]
    names = list(params)
    ncol = min(4, max(1, len(names)))
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.4 * nrow), squeeze=False, sharex=True)
    for ax, name in zip(axes.ravel(), names):
        b = params[name]
        if not b.get("n"):
            ax.set_title(f"{name} (no fits)", fontsize=9)
            continue
        n_ranks = len(b["ecdf"])
        z = np.arange(1, n_ranks + 1) / (n_ranks + 1)
        lower, upper, ecdf = (np.asarray(b[k]) for k in ("lower", "upper", "ecdf"))
        ax.fill_between(z, lower - z, upper - z, step="mid", color="0.85", label="simultaneous band")
        ax.step(z, ecdf - z, where="mid", color="C0" if b["inside"] else "C3", lw=1.2)
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_title(f"{name}{'' if b['inside'] else ' (outside)'}", fontsize=9)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("fractional rank")
    for ax in axes[:, 0]:
        ax.set_ylabel("ECDF - uniform")
    fig.suptitle(f"{title} rank ECDF, family-wise {1 - band['family_alpha']:.0%} band "
                 f"(n = {next((p['n'] for p in params.values() if p.get('n')), 0)})", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_coverage(cov, path, title="", all_fits=None):
    """Coverage of central 50 % and 90 % intervals per parameter with Clopper-Pearson 95 % intervals (failed fits
    as misses); ``all_fits``, the same ignoring the gates, as open markers."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(cov.values())))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(names) + 2), 3.4))
    x = np.arange(len(names))
    for j, (key, table) in enumerate(cov.items()):
        f = np.array([table[n]["fraction"] if table[n]["fraction"] is not None else np.nan for n in names])
        lo = np.array([table[n]["cp95"][0] for n in names])
        hi = np.array([table[n]["cp95"][1] for n in names])
        ax.errorbar(x + (j - 0.5) * 0.25, f, yerr=[f - lo, hi - f], fmt="o", ms=4, capsize=2, color=f"C{j}",
                    label=f"{key} % interval")
        ax.axhline(int(key) / 100, color=f"C{j}", lw=0.8, ls="--")
        if all_fits is not None:
            g = [all_fits[key][n]["fraction"] for n in names]
            ax.plot(x + (j - 0.5) * 0.25 + 0.08, [np.nan if v is None else v for v in g], "o", ms=4, mfc="none",
                    color=f"C{j}", label=f"{key} % interval, gates ignored")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("coverage (failed fits = misses)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"{title} coverage, Clopper-Pearson 95 %", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path):
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_path
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------------
# the stsbayes models: one compiled model, data swapped per simulation


@dataclasses.dataclass
class Problem:
    """What an SBC model is: a spec (priors) and the measurement conditions a fit would read from a file."""

    name: str
    spec: dict
    bias: np.ndarray  # mV
    temperature_K: float  # bath temperature: lower bound of the T_eff prior
    modulation: dict  # the lock-in amplitude, as a file would record it
    reference: str | None = None  # "pb": the reference calibration's gap priors
    description: str = ""

    def as_dict(self):
        return {"name": self.name, "spec": self.spec, "bias_mV": [float(self.bias.min()), float(self.bias.max()),
                                                                  int(self.bias.size)],
                "temperature_K": self.temperature_K, "modulation": self.modulation, "reference": self.reference,
                "description": self.description}


def problem(name, *, points=None):
    """The SBC models. ``points`` shrinks the spectrum (tests); the priors stay the same."""
    if name == "nis":
        # two Dynes gaps of an iron-based superconductor seen with a metallic tip (the paper's four gaps lie at
        # 3-10 meV; two keep the study affordable). Gaps are given as priors, everything else takes the package's
        # default priors: T_eff = T_bath + HalfNormal(0.3 K), gamma = 0.002 + LogNormal(log 0.01, 1) meV,
        # weight ~ Dirichlet(2, 2), g_n ~ LogNormal(0, 0.2), bias_offset ~ N(0, 0.02), b0, b1, sigma ~ HN(0.1).
        n = points or 181
        return Problem(
            name="nis",
            spec={"tip": {"kind": "metal"},
                  "sample": {"delta": [{"dist": "normal", "mu": 3.5, "sigma": 0.4},
                                       {"dist": "normal", "mu": 6.0, "sigma": 0.4}]}},
            bias=np.linspace(-9.0, 9.0, n), temperature_K=0.08,
            modulation={"kind": "peak", "value_mV": 0.1, "source": "sbc"},
            description="NIS, metallic tip, two Dynes gaps N(3.5, 0.4) and N(6.0, 0.4) meV, +-9 mV, "
                        f"{n} points, 80 mK bath, 0.1 mV peak modulation, default priors otherwise")
    if name == "sis_pb":
        # the tip calibration on Pb(111) exactly as `calibrate_tip(..., reference="pb")` builds it
        n = points or 401
        return Problem(
            name="sis_pb", spec={"tip": {"kind": "dynes"}}, reference="pb",
            bias=np.linspace(-4.0, 4.0, n), temperature_K=0.08,
            modulation={"kind": "rms", "value_mV": 0.014, "source": "sbc"},
            description=f"Pb tip on Pb(111) (calibrate-tip --reference pb), +-4 mV, {n} points, 80 mK bath, "
                        "0.014 mV rms modulation, the calibration's default priors")
    raise InputError(f"unknown SBC model {name!r}: use nis or sis_pb")


Y_SHARED = "y_sbc_observed"


class SpectrumSBC:
    """Simulate-and-fit for one :class:`Problem`, compiled once.

    The observed spectrum enters the model as a PyTensor shared variable (``FitData.y`` may be one: the model
    builder only forwards it to ``observed=``), so the compiled nutpie model is reused with ``with_data`` and the
    MAP search calls nutpie's own compiled log density and gradient. Simulations come from the same model: its
    free variables and its observed ``y`` drawn jointly by one compiled PyMC forward function.
    """

    def __init__(self, prob, *, chains=4, draws=250, tune=300, map_starts=None, progress=False,
                 target_accept=0.9, ess_threshold=None, max_depth=None):
        import nutpie
        import pymc as pm
        import pytensor
        from pymc.distributions.transforms import Ordered
        from pymc.initial_point import make_initial_point_fn
        from pymc.pytensorf import compile as compile_pymc
        from pytensor.graph.traversal import ancestors

        from ..api import _canonical, _reference
        from ..inference.data import FitData
        from ..inference.model import build_model
        from ..inference.sampling import MAP_STARTS, MAX_TREE_DEPTH

        t0 = time.perf_counter()
        self.problem, self.chains, self.draws, self.tune = prob, chains, draws, tune
        self.map_starts = MAP_STARTS if map_starts is None else map_starts
        self.target_accept, self.progress = target_accept, progress
        self.max_depth = MAX_TREE_DEPTH if max_depth is None else max_depth  # tests cap it lower still
        # the relative efficiency the real gate asks of a 4 x 1000 fit (ESS 400 of 4000), applied to this size
        self.ess_threshold = (MIN_ESS_BULK * chains * draws / 4000) if ess_threshold is None else ess_threshold
        self._y = pytensor.shared(np.ones_like(prob.bias), name=Y_SHARED)
        data = FitData(bias=np.asarray(prob.bias, float), y=self._y, units="normalised",
                       temperature_K=prob.temperature_K, modulation=prob.modulation)
        model, info = build_model(data, prob.spec, reference=_reference(prob.reference))
        self.model, self.info = model, info
        y_rv = model["y"]
        if self._y not in set(ancestors([model.logp()])):
            raise RuntimeError("the model does not read the observed spectrum from its shared variable: the SBC "
                               "cannot swap data (has model.py stopped passing FitData.y to observed=?)")
        # --- the prior: free RVs, the reported parameters and y, drawn together by one compiled function
        outputs = list(model.free_RVs) + [model[n] for n in info.parameters] + [y_rv]
        self._draw_fn = compile_pymc(inputs=[], outputs=outputs, random_seed=0)
        self._n_free = len(model.free_RVs)
        self._ordered = [i for i, rv in enumerate(model.free_RVs)
                         if isinstance(model.rvs_to_transforms.get(rv), Ordered)]
        # --- the fit: nutpie compiled once; only the trace variables we rank are expanded
        keep = [rv.name for rv in model.free_RVs] + [n for n in info.parameters]
        self._compiled = nutpie.compile_pymc_model(model, jitter_rvs=set(), var_names=list(dict.fromkeys(keep)))
        names, slices, shapes = self._compiled.shape_info
        self._joined = [(n, s, tuple(sh)) for n, s, sh in zip(names, slices, shapes)][: len(model.free_RVs)]
        self._start_fn = make_initial_point_fn(model=model, default_strategy="prior", return_transformed=True)
        self._support_fn = make_initial_point_fn(model=model, return_transformed=True)
        # scalar parameter names as the summaries write them (delta[0], eps[1], ...)
        point = self._draw_fn()
        self.parameters = []
        for name, value in zip(info.parameters, point[self._n_free:-1]):
            value = np.asarray(value)
            if value.ndim == 0:
                self.parameters.append(_canonical(name))
            else:
                self.parameters += [f"{name}[{k}]" for k in range(value.size)]
        self.gaps = [p for p in self.parameters if p.startswith("delta[")]
        self._pm = pm
        self.compile_seconds = time.perf_counter() - t0

    # -- simulate ------------------------------------------------------------------------------------------------
    def simulate(self, seed):
        """(truths by scalar name, simulated spectrum) drawn from the model's own prior and likelihood.

        Ordered gap vectors: the fit's prior is the normal restricted to ascending values (the ordered transform),
        so forward draws that are not ascending are rejected; what remains is exactly that prior.
        """
        from pymc.pytensorf import reseed_rngs
        from pytensor.tensor.random.type import RandomGeneratorType
        reseed_rngs([v for v in self._draw_fn.get_shared() if isinstance(v.type, RandomGeneratorType)], seed)
        for _ in range(1000):
            values = self._draw_fn()
            if all(np.all(np.diff(np.asarray(values[i])) > 0) for i in self._ordered):
                break
        else:
            raise RuntimeError("1000 prior draws in a row had unordered gaps: check the gap priors")
        truth = self._flatten(dict(zip(self.info.parameters, values[self._n_free:-1])))
        return truth, np.asarray(values[-1], float)

    @staticmethod
    def _flatten(values, sample_ndim=0):
        """name -> value (vectors split into name[k]); ``sample_ndim`` leading axes are draws (chain, draw)."""
        out = {}
        for name, v in values.items():
            v = np.asarray(v)
            if v.ndim == sample_ndim:
                out[_canon_name(name)] = v
            else:
                for k in range(v.shape[-1]):
                    out[f"{name}[{k}]"] = v[..., k]
        return out

    # -- fit -----------------------------------------------------------------------------------------------------
    def _flat(self, point):
        return np.concatenate([np.ravel(point[n]) for n, _, _ in self._joined])

    def find_map(self, seed):
        """The posterior mode as in :func:`stsbayes.inference.sampling.find_map` (support point + prior starts,
        short L-BFGS runs, the best polished), on nutpie's compiled log density: no compilation per simulation."""
        from ..inference.sampling import multistart_minimum
        logp_fn = self._compiled.logp_func

        def fun(x):
            value, grad = logp_fn(x)
            if not np.isfinite(value):
                return np.inf, np.zeros_like(x)
            return -float(value), -np.asarray(grad, float)

        rng = np.random.default_rng(seed)
        starts = [self._flat(self._support_fn(seed))] + [
            self._flat(self._start_fn(int(rng.integers(2**31)))) for _ in range(self.map_starts - 1)]
        return multistart_minimum(fun, starts)

    def fit(self, y, seed):
        import nutpie
        t0 = time.perf_counter()
        self._y.set_value(np.asarray(y, float))
        x_map = self.find_map(seed)
        t1 = time.perf_counter()
        compiled = dataclasses.replace(self._compiled.with_data(**{Y_SHARED: y}),
                                       initial_point_func=lambda _seed: x_map.copy())
        trace = nutpie.sample(compiled, draws=self.draws, tune=self.tune, chains=self.chains, seed=seed,
                              progress_bar=self.progress, adaptation="low_rank", save_warmup=False,
                              target_accept=self.target_accept,
                              maxdepth=self.max_depth)
        t2 = time.perf_counter()
        post = trace["posterior"].to_dataset()
        draws = self._flatten({n: np.asarray(post[n]) for n in self.info.parameters}, sample_ndim=2)
        table = {k: np.asarray(v, float) for k, v in draws.items()}
        summary = summarize(table)
        divergences = int(np.asarray(trace["sample_stats"]["diverging"]).sum())
        g = gates(summary, divergences)
        # the ESS gate at this run's size (see __init__); the strict 400 is recomputed in summarize_study
        g["ess_threshold"] = float(self.ess_threshold)
        g["failed_gates"] = [r for r in g["failed_gates"] if not r.startswith("bulk ESS")]
        if g["min_ess_bulk"] < self.ess_threshold:
            g["failed_gates"].append(f"bulk ESS {g['min_ess_bulk']:.0f} < {self.ess_threshold:.0f}")
        stuck = chain_modes(table)
        if stuck:
            g["chains_in_different_modes"] = stuck
            g["failed_gates"].append("chains in different modes: " + ", ".join(stuck))
        g["converged"] = not g["failed_gates"]
        return {"draws": table, "gates": g, "timing_s": {"map": t1 - t0, "sample": t2 - t1}}

    def settings(self):
        return {"model": self.problem.as_dict(), "chains": self.chains, "draws": self.draws, "tune": self.tune,
                "map_starts": self.map_starts, "target_accept": self.target_accept,
                "ess_threshold": self.ess_threshold,
                "max_depth": self.max_depth, "sampler": "nutpie (low-rank mass matrix), start at the MAP"}


def _canon_name(name):
    from ..api import _canonical
    return _canonical(name)
