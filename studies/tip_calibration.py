"""Step 1 of the paper: calibrate the Pb tip on Pb(111) (`python studies/tip_calibration.py [--pass demo|full]`).

The SIS spectrum fixes the sums Δ_t + Δ_k sharply; the split between tip and sample gaps comes from the line shapes
and the literature priors of the two Pb(111) gaps (`--reference pb`). The tip's posterior density is what every
later Pb-tip step uses.
"""

import sys

from study import DATA, Step, interval, step_main, summary


def run(folder, settings, log):
    code = log(["calibrate-tip", DATA / "pb_pb.dat", "--reference", "pb", "--out", folder, "--seed", "1",
                *settings.sampling_args()])
    s = summary(folder)
    numbers = {name: s["parameters"][name] for name in ("delta_tip", "gamma_tip", "T_eff", "delta[0]", "delta[1]")}
    result = (f"Δ_t = {interval(s, 'delta_tip')}, Pb(111) gaps {interval(s, 'delta[0]')} and "
              f"{interval(s, 'delta[1]')}, T_eff = {interval(s, 'T_eff', 'K', 2)}")
    return result, numbers, "report.html", code == 0


STEP = Step("tip_calibration", "Tip calibration on Pb(111)",
            "Pb–Pb SIS peaks at 2.64 and 2.77 meV give a single-gap (amorphous) Pb tip with Δ_t ≈ 1.37 meV on the "
            "two Pb(111) gaps 1.26 and 1.41 meV", run)

if __name__ == "__main__":
    sys.exit(step_main(STEP))
