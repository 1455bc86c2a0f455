"""Compare benchmark: the three ZECP hypotheses on one spectrum, wall time per hypothesis and in total, ln Z error.

What is measured, and why
-------------------------
``stsbayes compare`` fits mzm, ysr and ysr2 with NUTS and estimates each ln Z twice (SMC and bridge sampling, four
replicates each). Its cost is what decides whether a user runs it on every defect, and its ln Z error is what
decides whether a verdict can be "strong" at all (|ln B| − 2 err). The issue's goals (moonshots): <= 5 minutes in
total on 2 cores and ln Z error <= 0.3.

The case (issue 5, must-show (a) without the calibration step): the bundled spec ``zecp_pb_tip.toml`` (Pb tip
1.37 meV, CsCa2Fe4As4F2-like two-gap background 4.5 / 5.8 meV, two YSR pairs at 0.03 and 0.12 meV), simulated over
±WINDOW mV at 0.01 mV steps with noise 0.02 G_n. The fit takes the tip as known to a calibration's precision (a
TipDensity of sd 0.005 meV on delta_tip) so that the benchmark times the comparison, not a calibration; the gaps
get normal priors (sd 0.2 meV) around the truth, the bound states the hypotheses' default priors. Per hypothesis:
time of the fit (MAP search + compile + NUTS), of bridge sampling and of SMC, and each estimator's ln Z ± err.

The user's alternative is a least-squares fit of each hypothesis and an information criterion: here the
maximum of each hypothesis's log likelihood (L-BFGS from the same multistart and energy scan that start the NUTS
chains, with the priors dropped, as ``lmfit`` would fit it, but on stsbayes's compiled model with its gradient, so
faster than lmfit on a per-bias quadrature peer) and BIC = k ln n - 2 ln L_max, read as ln B ~ -(BIC_h -
BIC_mzm) / 2. Its time and its ln B stand beside the evidence's: the ratio of times is what the evidence costs,
the difference of ln B what BIC would have got wrong (BIC has no error bar and no Occam factor for a prior).

``--quick`` is a smoke test (±3 mV window, 2 chains × 200 draws, 200 SMC particles); the full run uses ±10 mV,
4 chains × 1000 draws and 1000 particles. Writes benchmarks/results/compare.json (compare-quick.json).
"""

import argparse
import datetime
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from peers import machine_info, write_json  # noqa: E402

import stsbayes  # noqa: E402
from stsbayes.inference import FitData, TipDensity  # noqa: E402
from stsbayes.models import load_spec  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SPEC = ROOT / "stsbayes" / "data" / "zecp_pb_tip.toml"
NOISE = 0.02
STEP = 0.01  # mV
GOAL_TOTAL_S = 300.0
GOAL_LNZ_ERR = 0.3
FIT_SPEC = {"sample": {"delta": [{"dist": "normal", "mu": 4.5, "sigma": 0.2},
                                 {"dist": "normal", "mu": 5.8, "sigma": 0.2}]}}


def tip_density(spec):
    """A calibration-like tip density at the true tip: sd 0.005 meV on delta_tip, 20 % on gamma_tip and T_eff."""
    return TipDensity.around(spec.tip["delta"], spec.tip["gamma"], spec.junction["T_eff"])


def case(window):
    spec = load_spec(SPEC)
    bias = np.round(np.arange(-window, window + 1e-9, STEP), 6)
    y = stsbayes.simulate(spec, bias, noise=NOISE, seed=1)
    data = FitData(bias=bias, y=y, temperature_K=0.08,
                   modulation={"kind": "rms", "value_mV": spec.junction["modulation_rms"], "source": "spec"})
    return spec, data


def least_squares_bic(data, hypotheses, tip, seed=3):
    """Per hypothesis: the maximum log likelihood (priors dropped, as a least-squares fit), k, BIC and wall time,
    and ln B(h vs mzm) ~ -(BIC_h - BIC_mzm) / 2."""
    from stsbayes.inference.model import build_model
    from stsbayes.inference.sampling import compile_objective, locate_mode
    rows = {}
    for h in hypotheses:
        t0 = time.perf_counter()
        model, info = build_model(data, load_spec(FIT_SPEC), tip_density=tip, hypothesis=h)
        objective = compile_objective(model, likelihood_only=True)
        mode = locate_mode(model, seed, scan=info.scan, objective=objective)
        ll = float(objective(mode.x)[0])
        k, n = len(mode.x), int(data.bias.size)
        rows[h] = {"wall_s": time.perf_counter() - t0, "max_log_likelihood": ll, "k": k,
                   "bic": k * np.log(n) - 2 * ll}
    for h in hypotheses:
        rows[h]["ln_b_vs_mzm"] = -(rows[h]["bic"] - rows["mzm"]["bic"]) / 2
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: ±3 mV, 2 chains x 200 draws, 200 particles")
    parser.add_argument("--window", type=float, default=None, help="half bias window in mV (default 10; 3 quick)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default benchmarks/results/compare.json; compare-quick.json with --quick)")
    args = parser.parse_args(argv)
    window = args.window or (3.0 if args.quick else 10.0)
    settings = (dict(chains=2, draws=200, tune=200, smc_draws=200) if args.quick
                else dict(chains=4, draws=1000, tune=1000, smc_draws=1000))
    out = args.out or RESULTS / ("compare-quick.json" if args.quick else "compare.json")
    # PyTensor's numba fallback for RFFTOp calls np.fft.rfftn(s=...) without axes (architecture.md): noise here.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    load_before = os.getloadavg()
    spec, data = case(window)
    print(f"compare: ±{window} mV, {data.bias.size} points, {settings}", flush=True)
    # the user's alternative first: it is quick, and it fails early if it fails
    bic = least_squares_bic(data, ["mzm", "ysr", "ysr2"], tip_density(spec))
    bic_total = sum(r["wall_s"] for r in bic.values())
    print(f"least squares + BIC: {bic_total:.1f} s; ln B(vs mzm) ~ "
          + ", ".join(f"{h} {r['ln_b_vs_mzm']:.2f}" for h, r in bic.items()), flush=True)
    started = time.perf_counter()
    result = stsbayes.compare(data, FIT_SPEC, tip=tip_density(spec), seed=3, progress=False, **settings)
    total = time.perf_counter() - started
    s = result.summary()
    rows = {}
    for h, hs in s["hypotheses"].items():
        t = hs["timing_s"]
        rows[h] = {"wall_s": t["total"], "fit_s": t["fit_total"], "compile_and_map_s": t.get("compile"),
                   "nuts_s": t.get("sample"), "bridge_s": t["bridge"], "smc_s": t["smc"],
                   "log_evidence": hs["log_evidence"], "log_evidence_err": hs["log_evidence_err"],
                   "by_estimator": hs["log_evidence_by_estimator"],
                   "err_by_estimator": hs["log_evidence_err_by_estimator"],
                   "estimators_agree": hs["estimators_agree"], "converged": hs["converged"],
                   "min_ess_bulk": hs["diagnostics"].get("min_ess_bulk")}
        print(f"{h:5s} {t['total']:7.1f} s (fit {t['fit_total']:.1f}, bridge {t['bridge']:.1f}, smc {t['smc']:.1f}); "
              f"ln Z = {hs['log_evidence']:.2f} ± {hs['log_evidence_err']:.2f} (smc "
              f"{hs['log_evidence_by_estimator']['smc']:.2f} ± {hs['log_evidence_err_by_estimator']['smc']:.2f}, "
              f"bridge {hs['log_evidence_by_estimator']['bridge']:.2f} ± "
              f"{hs['log_evidence_err_by_estimator']['bridge']:.2f}); converged {hs['converged']}", flush=True)
    max_err = max(r["log_evidence_err"] for r in rows.values())
    for h, r in bic.items():
        print(f"{h:5s} least squares + BIC: {r['wall_s']:6.1f} s, max ln L {r['max_log_likelihood']:.2f}, k {r['k']}, "
              f"ln B(vs mzm) ~ {r['ln_b_vs_mzm']:.2f}; evidence: "
              f"{rows[h]['log_evidence'] - rows['mzm']['log_evidence']:.2f}", flush=True)
    print(f"least squares + BIC in total {bic_total:.1f} s: the evidence costs {total / bic_total:.1f}x as long")
    print(f"total {total:.1f} s (goal {GOAL_TOTAL_S:.0f} s); largest ln Z error {max_err:.3f} (goal {GOAL_LNZ_ERR})")
    print(s["statement"])
    payload = {
        "schema_version": 1, "benchmark": "compare",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "quick": args.quick,
        "machine": {**machine_info(("numpy", "scipy", "pytensor", "pymc", "nutpie", "numba")),
                    "load_average_1_5_15min": {"start": load_before, "end": os.getloadavg()}},
        "case": {"spec": str(SPEC.relative_to(ROOT)), "window_mV": window, "step_mV": STEP,
                 "points": int(data.bias.size), "noise": NOISE, "fit_spec": FIT_SPEC,
                 "tip": "TipDensity at the true tip (sd 0.005 meV on delta_tip)", "settings": settings},
        "goal": {"total_s": GOAL_TOTAL_S, "log_evidence_err": GOAL_LNZ_ERR},
        "hypotheses": rows, "total_s": total, "max_log_evidence_err": max_err,
        "least_squares_bic": {"method": "maximum likelihood (priors dropped) by stsbayes's multistart L-BFGS, "
                                        "BIC = k ln n - 2 ln L_max, ln B ~ -(BIC_h - BIC_mzm) / 2",
                              "hypotheses": bic, "total_s": bic_total, "time_ratio_evidence_over_bic": total / bic_total},
        "met": {"total_s": total <= GOAL_TOTAL_S, "log_evidence_err": max_err <= GOAL_LNZ_ERR},
        "verdicts": s["verdicts"], "statement": s["statement"],
    }
    write_json(out, payload)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
