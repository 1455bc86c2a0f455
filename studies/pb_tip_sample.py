"""Step 3 of the paper: CsCa2Fe4As4F2 seen with the calibrated Pb tip
(`python studies/pb_tip_sample.py [--pass demo|full]`).

The Pb-tip spectrum puts coherence peaks at ±(Δ_t + Δ_k). The fit propagates the tip calibration (step 1) into the
sample's gaps (parametric deconvolution), with priors on the four gaps from the metallic-tip fit off the wrinkle
(step 2: its posterior means, sd three times its posterior sd and at least 0.05 meV), written to
``<out>/pb_tip_sample/fit.toml``. The posterior gaps are compared with the metallic tip's.
"""

import sys

from study import DATA, Step, StepFailed, interval, step_main, summary, tip_folder

GAPS = 4


def gap_priors(out):
    """Normal priors on the four gaps from the metallic-tip joint fit (off the wrinkle)."""
    strain = out / "gaps_strain"
    if not (strain / "summary.json").exists():
        raise StepFailed("the Pb-tip sample step takes its gap priors from the metallic-tip fit: run "
                         "studies/gaps_strain.py first (studies/paper.py runs the steps in order)")
    s = summary(strain)
    return [(s["parameters"][f"off:delta[{k}]"]["mean"], max(3 * s["parameters"][f"off:delta[{k}]"]["sd"], 0.05))
            for k in range(GAPS)]


def run(folder, settings, log):
    out = folder.parent
    priors = gap_priors(out)
    spec = folder / "fit.toml"
    spec.write_text("# gap priors from the metallic-tip fit off the wrinkle (studies/pb_tip_sample.py)\n[sample]\n"
                    "delta = [" + ", ".join(f'{{dist = "normal", mu = {m:.4f}, sigma = {s:.4f}}}'
                                            for m, s in priors) + "]\n"
                    'floor = {dist = "uniform", lower = 0.0, upper = 0.3}\n')
    code = log(["fit", DATA / "csca_pb_tip.dat", "--spec", spec, "--tip", tip_folder(out), "--out", folder,
                "--seed", "3", *settings.sampling_args()])
    s = summary(folder)
    numbers = {}
    words = []
    for k in range(GAPS):
        numbers[f"delta[{k}]"] = {**s["parameters"][f"delta[{k}]"], "metallic_tip_prior": priors[k]}
        words.append(f"Δ{k + 1} = {interval(s, f'delta[{k}]', 'meV', 2)} (metallic tip {priors[k][0]:.2f})")
    tip = s["parameters"]["delta_tip"]["mean"]
    sums = ", ".join(f"±{tip + s['parameters'][f'delta[{k}]']['mean']:.2f}" for k in range(3))
    return f"peaks Δ_t + Δ_k at {sums} meV; " + "; ".join(words), numbers, "report.html", code == 0


STEP = Step("pb_tip_sample", "CsCa2Fe4As4F2 with the calibrated Pb tip",
            "Peaks at ±1.3, ±5.8, ±7.1, ±8.9 meV = ±Δ_t, ±(Δ_t + Δ_1), ±(Δ_t + Δ_2), ±(Δ_t + Δ_3)",
            run, needs=("tip_calibration", "gaps_strain"))

if __name__ == "__main__":
    sys.exit(step_main(STEP))
