"""`make demo`: simulate the bundled examples with `stsbayes simulate` and plot them.

This is the demo until the full study (tip calibration, then the ZECP origin) lands: it shows the forward physics
the fits are built on, on the paper's conditions.
"""

import argparse
from pathlib import Path
import sys

import numpy as np

from .cli import main as cli_main

DATA = Path(__file__).parent / "data"
EXAMPLES = [("pb_pb", -4.0, 4.0, 801, "Pb(111) with a Pb tip: SIS coherence peaks at ±(Δ_t + Δ_k)"),
            ("zecp_pb_tip", -3.0, 3.0, 601, "ZECP of defect IV with a Pb tip: unequal peaks at ±Δ_t")]


def run(out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .io import load
    from .models import simulate

    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(EXAMPLES), figsize=(6 * len(EXAMPLES), 4))
    for ax, (name, start, stop, points, title) in zip(axes, EXAMPLES):
        data_file = out / f"{name}.dat"
        code = cli_main(["simulate", str(DATA / f"{name}.toml"), "--bias-start", str(start), "--bias-stop", str(stop),
                         "--points", str(points), "--seed", "1", "--format", "nanonis", "--out", str(data_file)])
        if code:
            return code
        spectrum = load(data_file)
        bias = np.linspace(start, stop, 4001)
        ax.plot(spectrum.bias_mV, spectrum.didv, ".", ms=2, color="0.5", label="simulated data (Nanonis .dat)")
        ax.plot(bias, simulate(DATA / f"{name}.toml", bias, noise=0.0), lw=1, color="C3", label="expected")
        ax.set(xlabel="sample bias (mV)", ylabel="dI/dV (normalised)", title=title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    figure = out / "demo.png"
    fig.savefig(figure, dpi=120)
    print(f"demo written: {figure.resolve()} (data: {out.resolve()}/*.dat)")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    args = parser.parse_args(argv)
    return run(Path(args.out))


if __name__ == "__main__":
    sys.exit(main())
