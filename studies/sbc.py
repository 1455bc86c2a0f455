"""Simulation-based calibration of stsbayes' fits (issue 7): `python studies/sbc.py --model nis --simulations 200`.

Every finished simulation is one JSON file in ``<out>/sbc_<model>/`` written atomically, so an interrupted study
loses nothing finished and a rerun with the same settings continues where it stopped. After every simulation (and
at the end) the study summary ``<out>/sbc_<model>.json`` and the figures ``sbc_<model>_ecdf.png`` and
``sbc_<model>_coverage.png`` are rewritten from all finished simulations.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stsbayes.diagnostics import sbc  # noqa: E402
from stsbayes.io.atomic import atomic_write_text  # noqa: E402
from stsbayes.io.reading import jsonable  # noqa: E402
from stsbayes.results import code_version  # noqa: E402


def write_outputs(records, simulator_info, out, model, n_ranks, settings, extra):
    summary = sbc.summarize_study(records, simulator_info["parameters"], gaps=simulator_info["gaps"],
                                  n_ranks=n_ranks, settings=settings, extra=extra)
    atomic_write_text(out / f"sbc_{model}.json", json.dumps(jsonable(summary), indent=1))
    sbc.plot_rank_ecdf(summary["band"], out / f"sbc_{model}_ecdf.png", title=model)
    sbc.plot_coverage(summary["coverage"], out / f"sbc_{model}_coverage.png", title=model,
                      all_fits=summary["coverage_all_fits"])
    return summary


def report_line(summary):
    cov90 = summary["coverage"]["90"]
    gaps = summary["gap_coverage_90"] or {}
    worst = min(cov90.items(), key=lambda kv: kv[1]["fraction"] if kv[1]["fraction"] is not None else 1)
    return (f"{summary['n_simulations']} simulations, {summary['gate_failures']['count']} failed gates, "
            f"{summary['n_errors']} errors; rank-ECDF band {'kept' if summary['band']['passed'] else 'LEFT'}; "
            f"lowest 90 % coverage {worst[0]} {worst[1]['fraction']:.2f}; gap criterion "
            f"{'met' if gaps.get('passed') else 'not met'} {gaps.get('counts')} in {gaps.get('band_counts')}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["nis", "sis_pb"], required=True)
    ap.add_argument("--simulations", type=int, default=200)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=1000, help="draws per chain (thinned to --ranks for the ranks)")
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--ranks", type=int, default=100, help="thinned draws per fit the truth is ranked among")
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--map-starts", type=int, default=None, help="MAP starts per fit (default: the package's 8)")
    ap.add_argument("--max-depth", type=int, default=None,
                    help="NUTS tree depth cap (default: the package's MAX_TREE_DEPTH, 8)")
    ap.add_argument("--points", type=int, default=None, help="bias points of the simulated spectra (default: "
                    "the model's)")
    ap.add_argument("--out", type=Path, default=ROOT / "studies" / "results")
    ap.add_argument("--stop-after", type=int, default=None, help="stop after this many new simulations")
    args = ap.parse_args(argv)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    simulator = sbc.SpectrumSBC(sbc.problem(args.model, points=args.points), chains=args.chains, draws=args.draws,
                                tune=args.tune, map_starts=args.map_starts,
                                max_depth=args.max_depth)
    print(f"{args.model}: model built and compiled once in {simulator.compile_seconds:.1f} s; "
          f"parameters {', '.join(simulator.parameters)}", flush=True)
    settings = simulator.settings()
    info = {"parameters": simulator.parameters, "gaps": simulator.gaps}
    extra = {"model": args.model, "code": code_version(), "compile_s": simulator.compile_seconds,
             "target_simulations": args.simulations,
             "notes": ["ranks of 100 evenly thinned draws of 4 chains x draws; coverage from all draws",
                       "coverage: failed fits (gates or errors) count as misses; coverage_all_fits ignores gates",
                       "gate: divergences, R-hat > 1.01, chains in different modes, bulk ESS below the threshold "
                       "scaled to this run's size (settings.ess_threshold); count_strict_ess_400 applies ESS 400"]}
    folder = out / f"sbc_{args.model}"

    def progress(msg):
        print(msg, flush=True)
        if msg.startswith("simulation"):
            records = sbc.load_records(folder)
            extra["elapsed_s_this_run"] = time.perf_counter() - started
            summary = write_outputs(records, info, out, args.model, args.ranks, settings, extra)
            print("  " + report_line(summary), flush=True)

    records = sbc.run_study(simulator, folder, simulations=args.simulations, seed=args.seed, n_ranks=args.ranks,
                            settings=settings, progress=progress, stop_after=args.stop_after)
    records = [r for r in records if r["index"] < args.simulations]
    extra["elapsed_s_this_run"] = time.perf_counter() - started
    if records:
        summary = write_outputs(records, info, out, args.model, args.ranks, settings, extra)
        print(report_line(summary))
        print(f"wrote {out / f'sbc_{args.model}.json'} and figures; mean fit time "
              f"{np.mean([r['timing_s']['fit'] for r in records]):.1f} s per simulation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
