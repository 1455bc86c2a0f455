"""The ``stsbayes`` command: a thin layer over the Python API (architecture.md, "Command line").

Exit codes: 0 success; 2 bad input or usage (one line on stderr, no traceback, nothing half-written);
3 a run finished but failed its convergence gates.
"""

import argparse
import sys

import numpy as np

from .errors import InputError

EXAMPLES = """\
examples:
  stsbayes simulate stsbayes/data/pb_pb.toml --bias-start -4 --bias-stop 4 --points 401 \\
           --noise 0.03 --seed 1 --out pb.csv
  stsbayes simulate spec.toml --format nanonis --out pb.dat      (a Nanonis-style .dat with a current channel)
  stsbayes info pb.dat --json

conventions: bias is the SAMPLE bias in mV (eV > 0 probes empty sample states); energies in meV; the lock-in
amplitude always carries its kind (modulation_rms or modulation_peak, V_peak = sqrt(2) V_rms).
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: one line, exit code 2
        raise InputError(f"{message} (see `{self.prog} --help`)")


def _add_simulate(sub):
    p = sub.add_parser(
        "simulate", help="simulate a spectrum from a spec (true values)",
        description="Compute the expected spectrum of SPEC.toml (every number is a true value) on a uniform bias "
                    "grid, optionally with noise, and write it as CSV (bias_mV,didv) or a Nanonis-style .dat. "
                    "Units: normalised conductance when the spec gives no junction.g_n, else µS.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    p.add_argument("spec", help="the spec (TOML), see architecture.md")
    p.add_argument("--bias-start", type=float, default=-5.0, help="first sample bias in mV (default -5)")
    p.add_argument("--bias-stop", type=float, default=5.0, help="last sample bias in mV (default 5)")
    p.add_argument("--points", type=int, default=401, help="number of bias points (default 401)")
    p.add_argument("--noise", type=float, default=None,
                   help="standard deviation of Gaussian noise in the output's units; overrides observation.sigma")
    p.add_argument("--seed", type=int, default=None, help="random seed for the noise")
    p.add_argument("--format", choices=["csv", "nanonis"], default="csv", help="output format (default csv)")
    p.add_argument("--out", required=True, help="output file")
    p.set_defaults(func=run_simulate)


def run_simulate(args):
    from .io import write_csv, write_nanonis_dat
    from .models import load_spec, simulate

    if args.points < 2:
        raise InputError(f"--points {args.points} is too few: give at least 2 bias points")
    if not args.bias_stop > args.bias_start:
        raise InputError(f"--bias-stop ({args.bias_stop} mV) must be above --bias-start ({args.bias_start} mV)")
    if args.noise is not None and not args.noise >= 0:
        raise InputError(f"--noise {args.noise} must be a non-negative standard deviation")
    spec = load_spec(args.spec)
    bias = np.linspace(args.bias_start, args.bias_stop, args.points)
    didv = simulate(spec, bias, noise=args.noise, seed=args.seed)
    units = "uS" if "g_n" in spec.junction else "normalised"
    if args.format == "csv":
        write_csv(args.out, bias, didv)
    else:
        j = spec.junction
        modulation = ({"kind": "rms", "value_mV": j["modulation_rms"]} if "modulation_rms" in j
                      else {"kind": "peak", "value_mV": j["modulation_peak"]})
        write_nanonis_dat(args.out, bias, didv, units=units, temperature_K=j["T_eff"], modulation=modulation,
                          comment=f"simulated by stsbayes from {args.spec}")
    print(f"wrote {args.out} ({args.points} points, {units})")
    return 0


def build_parser():
    parser = _Parser(prog="stsbayes", description="Calibrated posteriors and model comparisons for tunnelling "
                     "spectra of superconductors.", formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog=EXAMPLES)
    from . import __version__
    parser.add_argument("--version", action="version", version=f"stsbayes {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_simulate(sub)
    try:
        from .io.cli import add_info_command
    except ImportError:  # the reader is optional until stsbayes.io lands
        pass
    else:
        add_info_command(sub)
    return parser


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except InputError as err:
        print(f"stsbayes: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `stsbayes info FILE --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("stsbayes: interrupted; finished outputs are kept, nothing half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
