"""Step 2 of the paper: the four gaps of CsCa2Fe4As4F2 and the strain effect of a wrinkle
(`python studies/gaps_strain.py [--pass demo|full]`).

The metallic-tip spectra on and off the wrinkle are fitted jointly (`stsbayes.fit_joint`: one junction, shared
T_eff; each spectrum its own four gaps), and the change of each gap is read off the joint posterior
(`stsbayes.difference`): its mean, a 90 % credible interval and P(decrease). The command line has no joint fit, so
this step uses the Python API; it records the equivalent calls.
"""

import sys

import stsbayes
from study import DATA, SPECS, Step, step_main

GAPS = 4
EXPECTED = ("decrease", "decrease", "increase", "unchanged")  # the paper's strain effect on Δ1..Δ4


def run(folder, settings, log):
    result = stsbayes.fit_joint({"off": DATA / "csca_metal_off_wrinkle.dat", "on": DATA / "csca_metal_on_wrinkle.dat"},
                                SPECS / "csca_metal.toml", metal_tip=True, chains=settings.chains,
                                draws=settings.draws, tune=settings.tune, seed=2, progress=False)
    result.save(folder)
    report = result.report(folder)
    s = result.summary()
    changes = {}
    words = []
    for k in range(GAPS):
        d = stsbayes.difference(result, f"delta[{k}]", "off", "on")
        off = s["parameters"][f"off:delta[{k}]"]
        changes[f"delta[{k}]"] = {**d, "off_mean": off["mean"], "off_sd": off["sd"], "paper": EXPECTED[k]}
        words.append(f"Δ{k + 1} = {off['mean']:.2f} meV changes by {d['mean']:+.3f} meV "
                     f"[{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}], P(decrease) = {d['p_decrease']:.2f}")
    return "; ".join(words), changes, report.name, result.converged


STEP = Step("gaps_strain", "Four gaps and the strain of a wrinkle (metallic tip)",
            "Four pairs of coherence peaks between 3 and 10 meV; on the wrinkle strain shrinks Δ1 and Δ2, "
            "enlarges Δ3 and leaves Δ4", run)

if __name__ == "__main__":
    sys.exit(step_main(STEP))
