"""The resolution study (studies/resolution.py): Asimov data, Laplace-corrected evidences, the design grid and its
summary. The evidence estimator itself is checked against analytic evidences in test_evidence.py."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "studies"))

import resolution as R  # noqa: E402


def test_design_points_vary_one_factor_at_a_time():
    points = R.design_points()
    assert points[0] == (None, R.BASELINE)
    assert len(points) == 1 + sum(len(v) - 1 for v in R.AXES.values())
    for axis, condition in points[1:]:
        assert condition[axis] != R.BASELINE[axis]
        assert all(condition[a] == R.BASELINE[a] for a in R.AXES if a != axis)
    quick = R.design_points(quick=True)
    assert len(quick) == 1 + 2 * len(R.AXES)
    names = [R.point_name("mzm", "pb", a, c) for a, c in points]
    assert len(set(names)) == len(names)


def test_truths_and_fit_specs_follow_the_design():
    cond = {**R.BASELINE, "T_eff": 0.6}
    ysr2 = R.truth_spec("ysr2", "pb", cond)
    assert [s["eps"] for s in ysr2["sample"]["bound_states"]] == [0.03, 0.12] and ysr2["tip"]["delta"] == 1.37
    mzm = R.truth_spec("mzm", "metal", cond)
    assert "tip" not in mzm and mzm["sample"]["bound_states"] == [R.MZM_STATE]
    assert mzm["junction"] == {"T_eff": 0.6, "modulation_rms": 0.014} and mzm["observation"] == {"sigma": 0.02}
    fit = R.fit_spec("metal", cond)
    assert fit["junction"]["T_eff"]["mu"] == pytest.approx(np.log(0.6)) and fit["observation"] == {"sigma": 0.02}
    assert "T_eff" not in R.fit_spec("pb", cond)["junction"]  # the calibrated tip density brings it
    data = R.asimov_data("ysr2", "pb", R.BASELINE, step=0.1)
    assert data.bias.size == 61 and np.all(np.isfinite(data.y))
    # noise-free: two simulations are the same spectrum
    np.testing.assert_array_equal(data.y, R.asimov_data("ysr2", "pb", R.BASELINE, step=0.1).y)


def fake_record(truth, tip, axis, condition, ln_b, reliable=True):
    return {"name": R.point_name(truth, tip, axis, condition), "truth": truth, "tip": tip, "condition": condition,
            "log_bf_offset_vs_zero": ln_b, "err": 0.1, "reliable": reliable}


def test_summary_curves_pick_each_axis_with_the_baseline(tmp_path):
    records = [fake_record("mzm", "pb", a, c, -1.0 - i) for i, (a, c) in enumerate(R.design_points())]
    summary = R.summarize(records, {"seed": 1})
    curve = summary["curves"]["mzm"]["pb"]["noise"]
    assert curve["values"] == sorted(R.AXES["noise"])
    assert curve["log_bf"][curve["values"].index(R.BASELINE["noise"])] == -1.0  # the baseline point is in
    assert summary["n_points"] == len(records) and summary["all_reliable"]
    assert summary["findings"] == ["pb tip, paper's conditions, mzm truth: expected ln B(offset vs zero) = -1.0 ± 0.10"]
    R.plot(summary, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 10_000 and not list(tmp_path.glob("*.tmp.png"))


def test_savage_dickey_confirms_or_withdraws_the_bridge_value():
    def fits(bridge):
        return {"mzm": {"log_evidence": 100.0, "err": 0.05, "reliable": True},
                "ysr": {"log_evidence": bridge, "err": 0.1, "reliable": True,
                        "savage_dickey_vs_mzm": {"log_bf": -3.0, "err": 0.1}}}
    agree, disagree = fits(97.2), fits(95.0)
    R.savage_dickey_check(agree)
    R.savage_dickey_check(disagree)
    assert agree["ysr"]["reliable"] and agree["ysr"]["savage_dickey_vs_mzm"]["implied_log_evidence"] == 97.0
    assert not disagree["ysr"]["reliable"] and not disagree["ysr"]["savage_dickey_vs_mzm"]["agrees_with_bridge"]
    bare = {"mzm": {"log_evidence": 1.0, "err": 0.1, "reliable": True}, "ysr2": {"log_evidence": 0.0}}
    R.savage_dickey_check(bare)  # nothing to check without ysr's NUTS draws
    assert bare["ysr2"] == {"log_evidence": 0.0}


def test_main_refuses_bad_choices_and_mixed_settings(tmp_path, capsys):
    assert R.main(["--truths", "majorana", "--out", str(tmp_path)]) == 2
    assert "choose --truths" in capsys.readouterr().err
    folder = tmp_path / "resolution"
    folder.mkdir()
    (folder / "x.json").write_text(json.dumps({"name": "x", "settings": {"seed": -1}}))
    assert R.main(["--out", str(tmp_path)]) == 2
    assert "other settings" in capsys.readouterr().err


def test_a_pb_tip_resolves_the_paper_pairs_from_a_zero_energy_state():
    """Reduced: 0.05 mV steps, mzm against ysr2 only. The paper's two pairs seen through a Pb tip at the paper's
    conditions leave no doubt (the full grid's baseline: studies/results/resolution.json)."""
    record = R.run_point("ysr2", "pb", R.BASELINE, seed=3, step=0.05, hypotheses=("mzm", "ysr2"))
    assert record["points"] == 121
    ysr2 = record["hypotheses"]["ysr2"]
    np.testing.assert_allclose(np.sort(np.asarray(ysr2["mode"]["states"])[:, 0]), [0.03, 0.12], atol=0.005)
    assert record["log_bf_offset_vs_zero"] - 2 * record["err"] > R.DECISIVE
    # so decided that an importance-sampling estimate with k̂ > 0.7 (12-15 dimensions: near the edge) stands, and
    # says why, instead of calling for NUTS
    assert record["reliable"]
    for fit in record["hypotheses"].values():
        assert fit["method"] == "laplace_is"
        assert fit["reliable"] or fit["kept_because"] == "the question is decided"
    assert record["log_bf_ysr2_vs_mzm"]["value"] == pytest.approx(record["log_bf_offset_vs_zero"])
