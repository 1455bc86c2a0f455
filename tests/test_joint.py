"""Joint fits of several spectra with one tip (shared tip and T_eff), and posterior differences between them:
the paper's strain question (gaps on and off a wrinkle) as P(delta[0] decreased) and an interval on the change."""

import numpy as np
import pymc as pm
import pytest

import stsbayes
from stsbayes.errors import InputError
from stsbayes.inference import FitData
from stsbayes.models import simulate
from stsbayes.reports import check_report_assets

NIS = {"tip": {"kind": "metal"}, "sample": {"delta": [3.0], "gamma": [0.05], "weight": [1.0]},
       "junction": {"T_eff": 0.5, "modulation_rms": 0.05}}
# a prior floor of 0.02 meV on gamma lets the grid step be 0.01 meV: reduced runs stay cheap
FIT = {"tip": {"kind": "metal"},
       "sample": {"delta": [{"dist": "normal", "mu": 3.1, "sigma": 0.3}],
                  "gamma": [{"dist": "truncnormal", "mu": 0.05, "sigma": 0.05, "lower": 0.02}]},
       "junction": {"modulation_rms": 0.05}}


def spectrum(delta, seed):
    spec = {**NIS, "sample": {**NIS["sample"], "delta": [delta]}}
    bias = np.linspace(-5, 5, 101)
    y = simulate(spec, bias, noise=0.02, seed=seed)
    return FitData(bias=bias, y=y, units="normalised", temperature_K=0.3)


@pytest.fixture(scope="module")
def joint():
    return stsbayes.fit_joint({"on": spectrum(3.0, 1), "off": spectrum(3.3, 2)}, FIT, metal_tip=True,
                              draws=150, tune=150, seed=4, progress=False)


def test_joint_fit_shares_the_junction_and_separates_the_samples(joint):
    p = joint.summary()["parameters"]
    assert "T_eff" in p and "on:T_eff" not in p
    assert {"on:delta[0]", "off:delta[0]", "on:g_n", "off:sigma"} <= set(p)
    for name, truth in (("on:delta[0]", 3.0), ("off:delta[0]", 3.3), ("T_eff", 0.5)):
        assert abs(p[name]["mean"] - truth) < 4 * p[name]["sd"] + 0.01, name
    assert joint.summary()["spectra"] == ["on", "off"]
    assert set(joint.summary()["diagnostics"]["ppc"]["by_spectrum"]) == {"on", "off"}


def test_difference_answers_the_strain_question(joint):
    change = stsbayes.difference(joint, "delta[0]", "off", "on")  # on - off
    assert change["p_decrease"] > 0.99
    lo, hi = change["interval"]
    assert lo < hi < 0
    assert abs(change["mean"] + 0.3) < 4 * change["sd"] + 0.005  # NIS gaps are sharp: sd of a few µeV
    with pytest.raises(InputError, match="not in this result"):
        stsbayes.difference(joint, "delta[0]", "off", "elsewhere")


def test_joint_result_saves_reloads_and_reports(joint, tmp_path):
    joint.save(tmp_path)
    again = stsbayes.load_result(tmp_path)
    assert stsbayes.difference(again, "delta[0]", "off", "on")["p_decrease"] > 0.99
    report = joint.report(tmp_path)
    assert (tmp_path / "figures" / "fit_on.png").exists() and (tmp_path / "figures" / "fit_off.png").exists()
    assert "Spectrum off" in report.read_text()
    assert check_report_assets(report) == []


def test_joint_fit_input_errors():
    with pytest.raises(InputError, match="at least two"):
        stsbayes.fit_joint({"on": spectrum(3.0, 1)}, FIT, metal_tip=True)
    with pytest.raises(InputError, match="distinct label"):
        stsbayes.fit_joint({"o n": spectrum(3.0, 1), "off": spectrum(3.3, 2)}, FIT, metal_tip=True)


def test_a_joint_calibration_keeps_the_ridge_in_sum_coordinates():
    """Pb reference + a sample with one tip: the reference spectrum takes the gap sums and the width sum/split of a
    calibration (no ridge for NUTS to diverge on), the sample its own ordinary gaps, the tip shared."""
    from stsbayes.inference import PB_REFERENCE
    from stsbayes.inference.model import build_joint_model
    bias = np.linspace(-3, 3, 61)
    pb = FitData(bias=bias, y=np.ones(61), units="normalised", temperature_K=0.08,
                 modulation={"kind": "rms", "value_mV": 0.014, "source": "test"})
    spec = {"pb": {"tip": {"kind": "dynes"}}, "sample": {"tip": {"kind": "dynes"},
            "sample": {"delta": [{"dist": "normal", "mu": 0.75, "sigma": 0.2}]}}}
    model, info = build_joint_model([pb, pb], {k: stsbayes.models.load_spec(v) for k, v in spec.items()},
                                    labels=["pb", "sample"], reference={"pb": PB_REFERENCE, "sample": None})
    free = {rv.name for rv in model.free_RVs}
    assert {"pb:delta_sum", "pb:gamma_sum_excess", "pb:gamma_tip_share", "delta_tip", "sample:delta"} <= free
    assert "pb:delta" not in free and "gamma_tip" not in free  # both follow from the sums and the split
    assert {"pb:delta", "sample:delta", "delta_tip", "gamma_tip"} <= set(info.parameters)
    tip = pm.draw(model["delta_tip"], draws=4000, random_seed=1)
    assert tip.mean() == pytest.approx(PB_REFERENCE["delta_tip"], abs=0.01)
    assert tip.std() == pytest.approx(PB_REFERENCE["delta_tip_sigma"], rel=0.1)
