"""Recovery at full size (issue 4's must-show): data simulated inside the test at noise 0.02-0.03 G_n, the default
sampler settings (4 chains x 1000 draws after 1000 tuning), every fitted parameter within 3 posterior sd of its
truth, all gates passed. Minutes each on 2 cores, so `slow`; the reduced versions live in test_fit_cli.py and
test_joint.py."""

import numpy as np
import pytest

import stsbayes
from stsbayes.inference import FitData
from stsbayes.models import simulate

pytestmark = pytest.mark.slow

PB = {"tip": {"kind": "dynes", "delta": 1.37, "gamma": 0.005},
      "sample": {"delta": [1.26, 1.41], "gamma": [0.005, 0.005], "weight": [0.5, 0.5]},
      "junction": {"T_eff": 0.32, "modulation_rms": 0.014}}
# four gaps between 3 and 10 meV, metallic tip (physics.md §7)
NIS4 = {"tip": {"kind": "metal"},
        "sample": {"delta": [3.6, 4.5, 5.8, 7.6], "gamma": [0.08, 0.1, 0.12, 0.15],
                   "weight": [0.2, 0.3, 0.3, 0.2]},
        "junction": {"T_eff": 0.5, "modulation_peak": 0.1}}
# CsCa2Fe4As4F2-like with a Pb tip: peaks at ±1.37 (the tip's gap on the sample's in-gap floor), ±5.8, ±7.1, ±8.9
CSCA = {"tip": {"kind": "dynes", "delta": 1.37, "gamma": 0.005},
        "sample": {"delta": [4.43, 5.73, 7.53], "gamma": [0.1, 0.12, 0.15], "weight": [0.35, 0.4, 0.25],
                   "floor": 0.2},
        "junction": {"T_eff": 0.32, "modulation_rms": 0.014}}


def data(spec, lo, hi, points, noise, seed, temperature):
    bias = np.linspace(lo, hi, points)
    y = simulate(spec, bias, noise=noise, seed=seed)
    j = spec["junction"]
    kind = "rms" if "modulation_rms" in j else "peak"
    return FitData(bias=bias, y=y, units="normalised", temperature_K=temperature,
                   modulation={"kind": kind, "value_mV": j[f"modulation_{kind}"], "source": "simulation"})


def assert_recovered(result, truths):
    s = result.summary()
    assert s["diagnostics"]["converged"], s["diagnostics"]
    assert s["diagnostics"]["ppc"]["passed"], s["diagnostics"]["ppc"]
    p = s["parameters"]
    for name, truth in truths.items():
        assert abs(p[name]["mean"] - truth) < 3 * p[name]["sd"], (name, p[name], truth)


def truths_of(spec):
    out = {}
    t, smp, j = spec["tip"], spec["sample"], spec["junction"]
    if t["kind"] != "metal":
        out.update(delta_tip=t["delta"], gamma_tip=t["gamma"])
    out["T_eff"] = j["T_eff"]
    for k, v in enumerate(smp["delta"]):
        out[f"delta[{k}]"] = v
        out[f"gamma[{k}]"] = smp["gamma"][k]
        if len(smp["delta"]) > 1:
            out[f"weight[{k}]"] = smp["weight"][k]
    if "floor" in smp:
        out["floor"] = smp["floor"]
    return out


def test_pb_pb_recovery_full():
    d = data(PB, -4, 4, 401, 0.03, 11, 0.08)
    result = stsbayes.calibrate_tip(d, reference="pb", seed=5, progress=False)
    assert_recovered(result, truths_of(PB))


def test_four_gap_nis_recovery_full():
    d = data(NIS4, -12, 12, 1201, 0.02, 12, 0.3)
    fit = {"tip": {"kind": "metal"},
           "sample": {"delta": [{"dist": "normal", "mu": m, "sigma": 0.3} for m in (3.5, 4.5, 5.9, 7.5)],
                      "gamma": [{"dist": "lognormal", "mu": float(np.log(0.1)), "sigma": 1.0} for _ in range(4)]},
           "junction": {"modulation_peak": 0.1}}
    result = stsbayes.fit(d, fit, metal_tip=True, seed=6, progress=False)
    assert_recovered(result, truths_of(NIS4))


def test_csca_with_pb_tip_recovery_full(tmp_path):
    cal = stsbayes.calibrate_tip(data(PB, -4, 4, 401, 0.03, 13, 0.08), reference="pb", seed=7, progress=False)
    d = data(CSCA, -11, 11, 1101, 0.02, 14, 0.08)
    fit = {"tip": {"kind": "dynes"},
           "sample": {"delta": [{"dist": "normal", "mu": m, "sigma": 0.3} for m in (4.4, 5.7, 7.5)],
                      "gamma": [{"dist": "lognormal", "mu": float(np.log(0.1)), "sigma": 1.0} for _ in range(3)],
                      "floor": {"dist": "beta", "alpha": 2.0, "beta": 5.0}},
           "junction": {"modulation_rms": 0.014}}
    result = stsbayes.fit(d, fit, tip=cal, seed=8, progress=False)
    assert_recovered(result, truths_of(CSCA))
