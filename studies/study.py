"""What every study step shares: settings, resumable steps run through the command line, the paper's claim beside
the posterior's answer.

A step is one stage of the CsCa2Fe4As4F2 study (physics.md §7) run on the bundled simulated data in
``stsbayes/data``: it runs stsbayes as a user would (the ``stsbayes`` command line, or the Python API where the
command line has no verb for it), keeps its results and report in ``<out>/<step>/``, and writes ``step.json``: the
commands it ran, the settings, the paper's claim, the posterior result in one sentence, the numbers behind it, its
report and whether every fit passed its gates. A finished step is not run again with the same settings (delete
its folder, or pass ``--force``): the whole paper takes hours, and an interruption loses only the step in hand.
"""

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stsbayes.cli import main as stsbayes_main  # noqa: E402
from stsbayes.data import DATA  # noqa: E402
from stsbayes.io.atomic import atomic_write_text  # noqa: E402
from stsbayes.io.reading import jsonable  # noqa: E402

SPECS = Path(__file__).resolve().parent / "specs"
RESULTS = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sampling settings of a pass through the study. ``demo``: the fast pass of `make demo` (ZECP spectra on the
    ±3 mV window the bundled files hold, 4 chains x (500 tuning + 500 draws), 400 SMC particles); ``full``: the
    issue's sizes. A fit short only of length is sampled again with doubled draws up to ``max_draws`` per chain."""

    name: str
    chains: int
    draws: int
    tune: int
    smc_draws: int
    replicates: int = 4
    max_draws: int | None = None

    def sampling_args(self):
        extend = ["--max-draws", str(self.max_draws)] if self.max_draws else []
        return ["--chains", str(self.chains), "--draws", str(self.draws), "--tune", str(self.tune), *extend]

    def evidence_args(self):
        return ["--smc-draws", str(self.smc_draws), "--replicates", str(self.replicates)]


PASSES = {"demo": Settings("demo", chains=4, draws=500, tune=500, smc_draws=400),
          "full": Settings("full", chains=4, draws=1000, tune=1000, smc_draws=1000, max_draws=4000)}


@dataclasses.dataclass
class Step:
    """One stage of the study: ``run(folder, settings, log)`` runs it and returns (result sentence, numbers dict,
    report path relative to the folder, converged); ``log(argv)`` runs one stsbayes command and records it."""

    name: str
    title: str
    claim: str
    run: object
    needs: tuple = ()

    def folder(self, out):
        return Path(out) / self.name


class StepFailed(RuntimeError):
    """A command of a step exited with 2 (bad input) or a step's input is missing: the study stops there."""


def run_step(step, out, settings, *, force=False, echo=print):
    """Run ``step`` into ``out/<step.name>`` unless a finished record with these settings exists; its record."""
    folder = step.folder(out)
    record_path = folder / "step.json"
    if record_path.exists() and not force:
        record = json.loads(record_path.read_text())
        if record.get("settings") == dataclasses.asdict(settings):
            echo(f"[{step.name}] finished before ({record['status']}): {record['result']}")
            return record
    folder.mkdir(parents=True, exist_ok=True)
    commands = []

    def log(argv):
        echo(f"[{step.name}] stsbayes {shlex.join(str(a) for a in argv)}")
        commands.append("stsbayes " + shlex.join(str(a) for a in argv))
        code = stsbayes_main([str(a) for a in argv])
        if code == 2:
            raise StepFailed(f"step {step.name}: `{commands[-1]}` refused its input (exit code 2)")
        return code

    started = time.perf_counter()
    result, numbers, report, converged = step.run(folder, settings, log)
    record = {"step": step.name, "title": step.title, "claim": step.claim, "result": result, "numbers": numbers,
              "report": str(report) if report else None, "converged": bool(converged),
              "status": "converged" if converged else "NOT CONVERGED: do not quote", "commands": commands,
              "settings": dataclasses.asdict(settings), "wall_s": time.perf_counter() - started}
    atomic_write_text(record_path, json.dumps(jsonable(record), indent=1) + "\n")
    echo(f"[{step.name}] {record['status']} in {record['wall_s']:.0f} s: {result}")
    return record


def summary(folder):
    return json.loads((Path(folder) / "summary.json").read_text())


def parameter(summary_block, name):
    """(mean, sd, 5 %, 95 % quantiles) of a parameter in a summary's ``parameters`` block."""
    p = summary_block["parameters"][name]
    return p["mean"], p["sd"], p["q05"], p["q95"]


def interval(summary_block, name, unit="meV", digits=3):
    """'mean ± sd unit' of a parameter."""
    mean, sd, *_ = parameter(summary_block, name)
    return f"{mean:.{digits}f} ± {sd:.{digits}f} {unit}"


def tip_folder(out):
    """The tip calibration every Pb-tip step uses: the tip_calibration step's result."""
    folder = Path(out) / "tip_calibration"
    if not (folder / "posterior.nc").exists():
        raise StepFailed("the Pb-tip steps need the tip calibration: run studies/tip_calibration.py first "
                         "(studies/paper.py runs the steps in order)")
    return folder


def step_main(step, argv=None):
    """Command line of one step's script: ``--pass demo|full``, ``--out``, ``--force``."""
    parser = argparse.ArgumentParser(description=f"{step.title}. Paper: {step.claim}")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        record = run_step(step, args.out, PASSES[args.pass_name], force=args.force)
    except StepFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {(step.folder(args.out) / record['report']).resolve() if record['report'] else '-'}")
    return 0 if record["converged"] else 3


def add_arguments(parser):
    parser.add_argument("--pass", dest="pass_name", choices=sorted(PASSES), default="full",
                        help="sampling sizes: demo (fast, `make demo`) or full (the issue's sizes; default)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    parser.add_argument("--force", action="store_true", help="run again even where a finished result exists")


def series_step(name, kind, title, claim, law_parameters, seed):
    """A step that runs `stsbayes series KIND` on the bundled series ``stsbayes/data/<name>/manifest.csv`` (metallic
    tip, background from specs/series_background.toml) and reports its verdict and the ysr law's parameters."""
    def run(folder, settings, log):
        code = log(["series", kind, DATA / name / "manifest.csv", "--hypotheses", "mzm,ysr", "--spec",
                    SPECS / "series_background.toml", "--metal-tip", "--out", folder, "--seed", str(seed),
                    *settings.sampling_args(), *settings.evidence_args()])
        s = summary(folder)
        ysr = s["hypotheses"]["ysr"]["parameters"]
        numbers = {"verdicts": s["verdicts"], "log_bayes_factors": s["log_bayes_factors"],
                   "ysr_law": {k: ysr[k] for k in law_parameters if k in ysr}}
        return s["statement"], numbers, "report.html", code == 0

    return Step(name, title, claim, run)
