"""Which measurement decides the ZECP's origin? The expected ln B (offset vs zero) from noise-free data
(`python studies/resolution.py`, issue 7).

For a zero-energy state (the `mzm` truth: u² = v² = 0.25 meV, width 0.02 meV) and for the paper's two nearly
degenerate YSR pairs (the `ysr2` truth of ``stsbayes/data/zecp_pb_tip.toml``: eps 0.03 and 0.12 meV) on the
CsCa2Fe4As4F2 background, each measurement design is simulated without noise (Asimov data: the expected spectrum,
whose ln B approximates the median ln B over noise realisations) and fitted by mzm, ysr and ysr2 with the noise
level known. Each ln Z is the Laplace approximation at the posterior mode corrected by importance sampling from a
Student-t proposal (``stsbayes.inference.evidence.laplace_evidence``: four replicates, an error and a Pareto k̂).
Where k̂ > 0.7 (a state pinned near eps = 0, two states sharing one peak: posteriors far from Gaussian) and the
estimate matters (|ln B| < 50, and the hypothesis holds at least 1 % of its class), ln Z comes from NUTS (4 x 2000
draws at target_accept 0.97, the usual gates) and bridge sampling instead. ln B (offset vs zero) combines ysr and
ysr2 as the verdicts do (``class_log_bf``).

Designs: a metallic and a Pb tip (Δ_t = 1.37 meV, known from a calibration to ``--tip-sd`` meV; T_eff known to
20 % either way), and around the paper's conditions (T_eff 0.32 K, 0.014 mV rms modulation, noise 0.02 G_n, ±3 mV at
0.01 mV steps) one factor at a time: T_eff, the modulation amplitude, the noise. The fit's background is the
study's (``studies/specs/zecp_background.toml``: gaps known to 0.2 meV).

Every finished design point is one JSON file in ``<out>/resolution/`` (written atomically), so an interrupted run
loses nothing finished and a rerun continues; ``<out>/resolution.json`` and ``resolution.png`` are rewritten from
all finished points. On 2 cores a point takes 2-5 minutes with importance sampling alone (three compiled models,
mode searches from several starts), 10 or more with NUTS fallbacks; ``--quick`` runs the baseline and the
extremes of each axis only (28 points), the full grid has 52. Run two processes (``--truths ysr2`` and ``--truths
mzm``) into the same ``--out`` to use both cores; a last run without work left rewrites the summary from both.
"""

import argparse
import json
import math
import sys
import time
import tomllib
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import stsbayes  # noqa: E402
import stsbayes.api  # noqa: E402
from stsbayes.data import DATA  # noqa: E402
from stsbayes.comparison import ysr_savage_dickey  # noqa: E402
from stsbayes.inference import FitData, TipDensity, build_model  # noqa: E402
from stsbayes.inference.evidence import agree_within_errors, bridge_sampling, laplace_evidence  # noqa: E402
from stsbayes.inference.hypotheses import HYPOTHESES, PRIOR_VERSION  # noqa: E402
from stsbayes.inference.verdicts import STRENGTH_EDGES, class_log_bf, log_bayes_factors  # noqa: E402
from stsbayes.io.atomic import atomic_write_text  # noqa: E402
from stsbayes.io.reading import jsonable  # noqa: E402
from stsbayes.results import code_version  # noqa: E402

SPECS = Path(__file__).resolve().parent / "specs"
TRUTH_SPEC = DATA / "zecp_pb_tip.toml"
BACKGROUND_SPEC = SPECS / "zecp_background.toml"
MZM_STATE = {"eps": 0.0, "width": 0.02, "u2": 0.25, "v2": 0.25}  # issue 5's must-show (b)
TRUTHS = ("ysr2", "mzm")
TIPS = ("metal", "pb")
BASELINE = {"T_eff": 0.32, "modulation_rms": 0.014, "noise": 0.02}
AXES = {"T_eff": (0.08, 0.15, 0.32, 0.6, 1.0),  # K
        "modulation_rms": (0.005, 0.014, 0.035, 0.07, 0.14),  # mV rms
        "noise": (0.005, 0.01, 0.02, 0.05, 0.1)}  # G_n
UNITS = {"T_eff": "K", "modulation_rms": "mV rms", "noise": "G_n"}
WINDOW, STEP = 3.0, 0.01  # mV
T_BATH = 0.08  # K
T_EFF_SPREAD = 0.2  # T_eff known to 20 % (log sd) from a reference spectrum
TIP_SD = 0.018  # meV: the demo's Pb-Pb calibration gives delta_tip to about this
# the fallback's NUTS: a pair on zero-energy data has eps spread over [0, ~0.01 meV] on a log scale and its split
# unmeasured; at 0.97 and 4 x 1000 draws it gave no divergences but bulk ESS 308 (at 0.9: 24 divergences, ESS 85)
MCMC_DRAWS, MCMC_TARGET_ACCEPT = 2000, 0.97
DECISIVE = 50.0  # |ln B| this large: ten times "very strong"; an importance-sampling error cannot reverse it


def truth_spec(truth, tip, condition):
    """The simulated defect: the bundled spec's background and junction, its two YSR pairs (ysr2) or one
    zero-energy state (mzm), the tip as asked, and the condition's T_eff and modulation."""
    spec = tomllib.loads(TRUTH_SPEC.read_text())
    if tip == "metal":
        del spec["tip"]
    if truth == "mzm":
        spec["sample"]["bound_states"] = [dict(MZM_STATE)]
    spec["junction"] = {"T_eff": condition["T_eff"], "modulation_rms": condition["modulation_rms"]}
    spec["observation"] = {"sigma": condition["noise"]}
    return spec


def fit_spec(tip, condition):
    """What the fit knows: the study's background priors, the recorded modulation, the noise level (Asimov data
    carry no noise to estimate it from) and, for a metallic tip, T_eff to within ``T_EFF_SPREAD``."""
    spec = tomllib.loads(BACKGROUND_SPEC.read_text())
    spec["junction"] = {"modulation_rms": condition["modulation_rms"]}
    if tip == "metal":
        spec["junction"]["T_eff"] = {"dist": "lognormal", "mu": math.log(condition["T_eff"]),
                                     "sigma": T_EFF_SPREAD}
    spec["observation"] = {"sigma": condition["noise"]}
    return spec


def calibrated_tip(condition, tip_sd):
    """A calibration-like density of the Pb tip and T_eff around the truth (delta_tip to ``tip_sd`` meV, gamma_tip
    and T_eff to ``T_EFF_SPREAD``)."""
    tip = tomllib.loads(TRUTH_SPEC.read_text())["tip"]
    return TipDensity.around(tip["delta"], tip["gamma"], condition["T_eff"], delta_sd=tip_sd, log_sd=T_EFF_SPREAD)


def asimov_data(truth, tip, condition, step=STEP):
    bias = np.round(np.arange(-WINDOW, WINDOW + 1e-9, step), 6)
    y = stsbayes.simulate(truth_spec(truth, tip, condition), bias, noise=0.0)
    return FitData(bias=bias, y=y, temperature_K=T_BATH,
                   modulation={"kind": "rms", "value_mV": condition["modulation_rms"], "source": "study"})


def run_point(truth, tip, condition, *, seed, tip_sd=TIP_SD, step=STEP, hypotheses=HYPOTHESES):
    """One design point: ln Z of every hypothesis on the Asimov data, ln B (offset vs zero) and (mzm vs ysr2).
    ``step`` (mV) and ``hypotheses`` (mzm and at least one offset one) make smaller versions for tests."""
    data = asimov_data(truth, tip, condition, step)
    spec = fit_spec(tip, condition)
    density = calibrated_tip(condition, tip_sd) if tip == "pb" else None
    fits, t0 = {}, time.perf_counter()
    for i, h in enumerate(hypotheses):
        t = time.perf_counter()
        model, info = build_model(data, spec, hypothesis=h, tip_density=density, metal_tip=tip == "metal")
        result = laplace_evidence(model, seed=seed + i, scan=info.scan)
        fits[h] = {"log_evidence": result.evidence.value, "err": result.evidence.err, "method": "laplace_is",
                   "by_replicate": result.evidence.by_replicate, "laplace": result.laplace,
                   "pareto_k": result.pareto_k, "reliable": result.reliable, "ndim": result.ndim,
                   "log_density_at_mode": result.log_density_at_mode,
                   "hessian_regularised": result.hessian_regularised, "mode": result.mode,
                   "seconds": time.perf_counter() - t}
    needed = []
    for h in hypotheses:
        why = unreliable_kept(fits, h)
        if why == "nuts":
            needed.append(h)
        elif why:
            fits[h]["kept_because"] = why
    for i, h in enumerate(needed):
        fits[h].update(mcmc_evidence(data, spec, h, density, tip, seed=seed + 50 + i))
    savage_dickey_check(fits)
    log_z = {h: (f["log_evidence"], f["err"]) for h, f in fits.items()}
    ln_b, err = class_log_bf(log_z)
    pair = log_bayes_factors(log_z).get("ysr2_vs_mzm")
    return {"truth": truth, "tip": tip, "condition": dict(condition), "points": int(data.bias.size),
            "log_bf_offset_vs_zero": ln_b, "err": err, "log_bf_ysr2_vs_mzm": pair,
            "reliable": all(f["reliable"] or "kept_because" in f for f in fits.values()), "hypotheses": fits,
            "seconds": time.perf_counter() - t0}


def unreliable_kept(fits, h):
    """For an importance-sampled ln Z with Pareto k̂ > 0.7: "nuts" where it must be replaced by NUTS + bridge
    sampling, else why it may stand: the question is decided by so much (|ln B| >= ``DECISIVE``) that no error of
    that size changes a verdict, or ``h`` is an offset hypothesis with under 1 % of its class. None when reliable."""
    if fits[h]["reliable"]:
        return None
    log_z = {n: (f["log_evidence"], 0.0) for n, f in fits.items()}
    if "mzm" not in log_z or len(log_z) < 2 or abs(class_log_bf(log_z)[0]) >= DECISIVE:
        return "the question is decided"
    offset = {n: v for n, (v, _) in log_z.items() if n != "mzm"}
    if h == "mzm" or offset[h] - max(offset.values()) > math.log(0.01):
        return "nuts"
    return "under 1 % of its class"


def mcmc_evidence(data, spec, h, density, tip, *, seed):
    """ln Z of hypothesis ``h`` from NUTS (4 x ``MCMC_DRAWS`` draws, the fit's gates) and bridge sampling on its
    draws: the fallback where the Laplace proposal misses the posterior's shape (a state pinned near eps = 0, two states
    sharing one peak)."""
    t = time.perf_counter()
    fit = stsbayes.api.run_fit(data, spec, command="fit", tip=density, metal_tip=True if tip == "metal" else None,
                               hypothesis=h, chains=4, draws=MCMC_DRAWS, tune=1000, seed=seed, progress=False,
                               target_accept=MCMC_TARGET_ACCEPT)
    bridge = bridge_sampling(fit.model, fit.tree, seed=seed)
    converged = bool(fit.converged)
    out = {"log_evidence": bridge.value, "err": bridge.err, "method": "nuts_bridge",
           "by_replicate": bridge.by_replicate, "reliable": converged,
           "failed_gates": fit.summary()["diagnostics"].get("failed_gates", []),
           "seconds_mcmc": time.perf_counter() - t}
    if h == "ysr":  # nested in mzm (hypotheses.py): a third, proposal-free estimate from the same draws
        sd = ysr_savage_dickey(fit.tree["posterior"])
        out["savage_dickey_vs_mzm"] = {"log_bf": sd.value, "err": sd.err, "by_chain": sd.by_replicate}
    return out


def savage_dickey_check(fits):
    """Where ysr's ln Z came from NUTS + bridge, the Savage-Dickey ln B(ysr vs mzm) from the same draws gives ysr's
    ln Z a second time (ln Z_mzm + ln B). Records both, and keeps the bridge value reliable only if they agree
    within the estimators' agreement rule (evidence.agree_within_errors)."""
    ysr, mzm = fits.get("ysr", {}), fits.get("mzm")
    sd = ysr.get("savage_dickey_vs_mzm")
    if not sd or mzm is None or not math.isfinite(sd["log_bf"]):
        return
    implied = mzm["log_evidence"] + sd["log_bf"]
    err = math.sqrt(mzm["err"] ** 2 + sd["err"] ** 2)
    agree = agree_within_errors((implied, err), (ysr["log_evidence"], ysr["err"]))
    sd.update(implied_log_evidence=implied, implied_err=err, agrees_with_bridge=bool(agree))
    ysr["reliable"] = bool(ysr["reliable"] and agree and mzm["reliable"])


def design_points(quick=False):
    """(axis, condition) pairs: the baseline once (axis None), then each axis's other values, the rest at the
    baseline. ``quick``: only the smallest and largest value of each axis."""
    points = [(None, dict(BASELINE))]
    for axis, values in AXES.items():
        for v in ((values[0], values[-1]) if quick else values):
            if v != BASELINE[axis]:
                points.append((axis, {**BASELINE, axis: v}))
    return points


def point_name(truth, tip, axis, condition):
    return f"{truth}_{tip}_" + ("baseline" if axis is None else f"{axis}_{condition[axis]:g}")


def axis_curves(records):
    """Per truth, tip and axis: the axis values (baseline included) with ln B and its error, sorted."""
    curves = {}
    for truth in TRUTHS:
        for tip in TIPS:
            for axis in AXES:
                rows = sorted((r["condition"][axis], r["log_bf_offset_vs_zero"], r["err"], r["reliable"])
                              for r in records if r["truth"] == truth and r["tip"] == tip
                              and all(r["condition"][a] == BASELINE[a] for a in AXES if a != axis))
                if rows:
                    curves.setdefault(truth, {}).setdefault(tip, {})[axis] = {
                        "values": [x[0] for x in rows], "log_bf": [x[1] for x in rows],
                        "err": [x[2] for x in rows], "reliable": [x[3] for x in rows]}
    return curves


def summarize(records, settings):
    """The study's JSON: every point's ln B, the curves per axis, and the decisive designs in words."""
    curves = axis_curves(records)
    lines = []
    for tip in TIPS:
        base = [r for r in records if r["tip"] == tip and r["condition"] == BASELINE]
        for r in sorted(base, key=lambda r: r["truth"]):
            lines.append(f"{tip} tip, paper's conditions, {r['truth']} truth: expected ln B(offset vs zero) = "
                         f"{r['log_bf_offset_vs_zero']:.1f} ± {r['err']:.2f}")
    return {"study": "resolution", "settings": settings, "baseline": BASELINE, "axes": AXES, "units": UNITS,
            "n_points": len(records), "all_reliable": all(r["reliable"] for r in records), "findings": lines,
            "curves": curves, "points": sorted(records, key=lambda r: (r["truth"], r["tip"], json.dumps(
                r["condition"], sort_keys=True)))}


def plot(summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(TRUTHS), len(AXES), figsize=(4.2 * len(AXES), 3.6 * len(TRUTHS)), squeeze=False,
                             sharey="row")
    colours = {"metal": "tab:orange", "pb": "tab:blue"}
    for i, truth in enumerate(TRUTHS):
        for j, axis in enumerate(AXES):
            ax = axes[i, j]
            for tip in TIPS:
                c = summary["curves"].get(truth, {}).get(tip, {}).get(axis)
                if not c:
                    continue
                ax.errorbar(c["values"], c["log_bf"], yerr=c["err"], marker="o", ms=4, color=colours[tip],
                            label=f"{tip} tip")
                for x, y, ok in zip(c["values"], c["log_bf"], c["reliable"]):
                    if not ok:
                        ax.plot(x, y, "x", color="k", ms=9)
            for edge in STRENGTH_EDGES:
                for sign in (1, -1):
                    ax.axhline(sign * edge, color="0.6", lw=0.7, ls=":" if edge < 3 else "--")
            ax.axvline(BASELINE[axis], color="0.8", lw=3, zorder=0)
            ax.set_xscale("log")
            ax.set_xlim(min(AXES[axis]) / 1.4, max(AXES[axis]) * 1.4)  # the whole axis, whatever is finished
            ax.set_yscale("symlog", linthresh=5)
            ax.set_xlabel(f"{axis} ({UNITS[axis]})")
            if j == 0:
                ax.set_ylabel(f"{truth} truth: ln B(offset vs zero)")
            if j == 0 and ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    fig.suptitle("Expected ln B from noise-free data (dashed: ±3 strong, ±5; dotted: ±1; grey bar: the paper's "
                 "conditions; x: unreliable, k̂ > 0.7 or an unconverged NUTS fallback)", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the extremes of each axis (and the baseline)")
    ap.add_argument("--truths", default=",".join(TRUTHS), help="ysr2,mzm (default both)")
    ap.add_argument("--tips", default=",".join(TIPS), help="metal,pb (default both)")
    ap.add_argument("--tip-sd", type=float, default=TIP_SD, help=f"delta_tip's calibration sd, meV ({TIP_SD})")
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--out", type=Path, default=ROOT / "studies" / "results")
    args = ap.parse_args(argv)
    truths = [t for t in args.truths.split(",") if t]
    tips = [t for t in args.tips.split(",") if t]
    if set(truths) - set(TRUTHS) or set(tips) - set(TIPS) or not truths or not tips or not args.tip_sd > 0:
        print(f"choose --truths from {','.join(TRUTHS)}, --tips from {','.join(TIPS)} and a positive --tip-sd",
              file=sys.stderr)
        return 2
    settings = {"tip_sd_meV": args.tip_sd, "seed": args.seed, "window_mV": WINDOW, "step_mV": STEP,
                "t_eff_spread": T_EFF_SPREAD, "priors": PRIOR_VERSION,
                "evidence": "laplace_evidence (Laplace + Student-t IS, 4 x 1000); "
                f"NUTS 4 x {MCMC_DRAWS} (target_accept {MCMC_TARGET_ACCEPT}) + bridge where k > 0.7 and "
                f"|ln B| < {DECISIVE:g}"}
    folder = args.out / "resolution"
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if record["settings"] != settings:
            print(f"{path} was made with other settings ({record['settings']}): use another --out or delete "
                  f"{folder}", file=sys.stderr)
            return 2
        records.append(record)
    done = {r["name"] for r in records}
    todo = [(truth, tip, axis, cond) for truth in truths for tip in tips for axis, cond in design_points(args.quick)
            if point_name(truth, tip, axis, cond) not in done]
    print(f"{len(done)} design points done, {len(todo)} to run", flush=True)
    extra = {"code": code_version()}
    for k, (truth, tip, axis, cond) in enumerate(todo):
        name = point_name(truth, tip, axis, cond)
        index = zlib.crc32(name.encode()) % 1_000_000  # a seed per point, whatever order the points run in
        record = {"name": name, "settings": settings,
                  **run_point(truth, tip, cond, seed=args.seed + index, tip_sd=args.tip_sd)}
        atomic_write_text(folder / f"{name}.json", json.dumps(jsonable(record), indent=1))
        records.append(record)
        summary = {**summarize(records, settings), **extra}
        atomic_write_text(args.out / "resolution.json", json.dumps(jsonable(summary), indent=1))
        plot(summary, args.out / "resolution.png")
        print(f"[{k + 1}/{len(todo)}] {name}: ln B(offset vs zero) = {record['log_bf_offset_vs_zero']:.2f} ± "
              f"{record['err']:.2f}{'' if record['reliable'] else ' (Pareto k > 0.7: unreliable)'} "
              f"in {record['seconds']:.0f} s", flush=True)
    if records:
        summary = {**summarize(records, settings), **extra}
        atomic_write_text(args.out / "resolution.json", json.dumps(jsonable(summary), indent=1))
        plot(summary, args.out / "resolution.png")
        print("\n".join(summary["findings"]))
        print(f"wrote {args.out / 'resolution.json'} and {args.out / 'resolution.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
