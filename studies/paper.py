"""The CsCa2Fe4As4F2 study end to end on the bundled simulated data: `python studies/paper.py [--pass demo|full]`.

Runs the steps in the paper's order (each its own script in studies/, resumable: a finished step is kept), then
writes ``<out>/index.html``: for each step the paper's claim beside the posterior's answer, its status and a link to
its report. ``--pass demo`` (what `make demo` runs) takes only the main line: the tip calibration, then the ZECP's
origin on the Pb-tip spectrum, with smaller sampling sizes; ``--pass full`` runs every step at the issue's sizes
(hours on 2 cores). ``--steps a,b`` picks steps by name.
"""

import argparse
import sys
import time
from pathlib import Path

from study import PASSES, StepFailed, add_arguments, run_step

import defects
import field_series
import gaps_strain
import gn_series
import pb_tip_sample
import tip_calibration
import zecp_origin

# `study` has put the repository root on sys.path
from stsbayes.io.atomic import atomic_write_text  # noqa: E402
from stsbayes.reports.html import cell, esc, page, table  # noqa: E402

STEPS = [tip_calibration.STEP, gaps_strain.STEP, pb_tip_sample.STEP, zecp_origin.STEP, field_series.STEP,
         gn_series.STEP, defects.STEP]
DEMO_STEPS = ("tip_calibration", "zecp_origin")


def index_page(records, out, settings):
    """The index: one row per step, the paper's claim beside the posterior's answer, with a link to its report."""
    rows = []
    for r in records:
        link = (f'<a href="{esc(r["step"] + "/" + r["report"])}">report</a>' if r.get("report") else "—")
        status = cell(r["status"], "pass" if r["converged"] else "fail")
        rows.append([cell(r["title"], "text"), cell(r["claim"], "text"), cell(r["result"], "text"), status,
                     cell(link, raw=True)])
    body = (f"<h1>The CsCa2Fe4As4F2 study on simulated data</h1>"
            f'<p class="note">Pass "{esc(settings.name)}": {settings.chains} chains × {settings.draws} draws '
            f"(tune {settings.tune}), {settings.smc_draws} SMC particles × {settings.replicates} replicates per "
            "evidence. The data are simulated from the specs in stsbayes/data at the paper's conditions "
            "(physics.md §7), so the posterior's answer can be checked against the truth written there. A step "
            "marked NOT CONVERGED failed its sampling gates: its numbers must not be quoted.</p>"
            + table(["step", "the paper", "the posterior", "status", ""], rows))
    path = Path(out) / "index.html"
    atomic_write_text(path, page("stsbayes: the CsCa2Fe4As4F2 study", body))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--steps", default=None,
                        help=f"comma-separated steps (default: all; demo pass: {','.join(DEMO_STEPS)}); "
                             f"names: {', '.join(s.name for s in STEPS)}")
    args = parser.parse_args(argv)
    settings = PASSES[args.pass_name]
    names = args.steps.split(",") if args.steps else (DEMO_STEPS if settings.name == "demo" else
                                                       [s.name for s in STEPS])
    unknown = sorted(set(names) - {s.name for s in STEPS})
    if unknown:
        print(f"error: unknown step {', '.join(unknown)}: use {', '.join(s.name for s in STEPS)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    records = []
    try:
        for step in (s for s in STEPS if s.name in names):
            records.append(run_step(step, args.out, settings, force=args.force))
    except StepFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if records:
            index = index_page(records, args.out, settings)
            print(f"index: {index.resolve()}")
    print(f"study finished in {time.perf_counter() - started:.0f} s")
    main_report = next((args.out / r["step"] / r["report"] for r in reversed(records) if r.get("report")), None)
    if main_report is not None:
        print(f"report: {main_report.resolve()}")
    return 0 if all(r["converged"] for r in records) else 3


if __name__ == "__main__":
    sys.exit(main())
