"""Series end to end (issue 6): reduced comparisons in the default suite, the must-shows at full size under
`slow`. Kept apart from test_series.py so that pytest-xdist (--dist loadfile) runs the two files in parallel."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from stsbayes.cli import main
from stsbayes.inference import FitData
from stsbayes.inference.verdicts import STRENGTHS, strength
from stsbayes.reports import check_report_assets
from stsbayes.series import series, simulate_series
from test_series import BACKGROUND, FIT_BACKGROUND, SMALL_BIAS, _datas, _write_series

# a background whose coherence peaks lie inside a short window: they fix each spectrum's G_n, which an in-gap
# window leaves to trade against the bound-state weights (gn needs no such help: its setpoints fix G_n)
SMALL_GAPS = {"sample": {"delta": [0.7, 0.9], "gamma": [0.02, 0.02], "weight": [0.5, 0.5]},
              "junction": {"T_eff": 0.4, "modulation_rms": 0.07}, "observation": {"b0": 0.0, "b1": 0.0}}
FIT_SMALL_GAPS = {**SMALL_GAPS, "junction": {"T_eff": 0.4, "bias_offset": 0.0}}
WIDE_BIAS = np.round(np.arange(-1.2, 1.2 + 1e-9, 0.02), 6)


def _verdict(summary):
    zero = summary["verdicts"]["zero_vs_offset"]
    return zero, (zero["ln_bf"] if zero["favoured"] == "offset" else -zero["ln_bf"])


def _check_structure(summary, kind, n):
    assert summary["command"] == "series" and summary["series"]["kind"] == kind
    assert list(summary["hypotheses"]) == ["mzm", "ysr"] and list(summary["log_bayes_factors"]) == ["ysr_vs_mzm"]
    assert summary["verdicts"]["mzm_vs_ysr2"] is None
    assert summary["diagnostics"]["converged"] == all(s["converged"] for s in summary["hypotheses"].values())
    for s in summary["hypotheses"].values():
        assert len(s["log_evidence_replicates"]["smc"]) == 4 and s["log_evidence_err"] > 0
        assert {f"g_n_j[{j}]" for j in range(n)} <= set(s["parameters"])
        assert set(s["diagnostics"]["ppc"]["by_spectrum"]) == {f"s{j}" for j in range(n)}


# 2 x 250 draws: each bridge proposal is fitted to 3/4 of them, >= 2 d + 2 for d parameters (28 for 4 defects)
REDUCED = dict(chains=2, draws=250, tune=250, smc_draws=150, seed=5, progress=False, prior_rerun=False)


def test_reduced_gn_series_from_the_command_line(tmp_path):
    """Four spectra of a YSR pair whose energy grows with G_set (eps0 0.01, alpha 0.015 meV/µS): the command
    writes the series result, ysr recovers the law and wins, and the directory reloads."""
    cond = {"setpoint_current_nA": [2.0, 20.0, 60.0, 116.0], "setpoint_bias_mV": [7.0] * 4}
    truth = dict(eps0=0.01, alpha=0.015, width=0.02, u2=0.3, v2=0.15)
    sims = simulate_series("gn", "ysr", truth, cond, BACKGROUND, SMALL_BIAS, seed=1)
    rows = [f"{i:g},{v:g}" for i, v in zip(cond["setpoint_current_nA"], cond["setpoint_bias_mV"])]
    manifest = _write_series(tmp_path, sims, rows, "file,setpoint_current_nA,setpoint_bias_mV")
    spec = tmp_path / "bg.toml"
    spec.write_text('[sample]\ndelta = [4.5, 5.8]\ngamma = [0.02, 0.02]\nweight = [0.5, 0.5]\n'
                    '[junction]\nT_eff = 0.4\nbias_offset = 0.0\n[observation]\nb0 = 0.0\nb1 = 0.0\n')
    out = tmp_path / "gn"
    code = main(["series", "gn", str(manifest), "--hypotheses", "mzm,ysr", "--spec", str(spec), "--metal-tip",
                 "--temperature", "0.4", "--modulation-rms", "0.07", "--out", str(out), "--chains", "2",
                 "--draws", "250", "--tune", "250", "--smc-draws", "150", "--seed", "5", "--no-progress",
                 "--no-prior-rerun"])
    summary = json.loads((out / "summary.json").read_text())
    assert code == (0 if summary["diagnostics"]["converged"] else 3)
    _check_structure(summary, "gn", 4)
    assert summary["diagnostics"]["cautions"] == []  # an in-gap window, but the setpoints fix G_n
    np.testing.assert_allclose(summary["series"]["conditions"]["G_set"], np.array([2, 20, 60, 116]) / 7.0)
    ysr = summary["hypotheses"]["ysr"]["parameters"]
    for name in ("eps0", "alpha", "width", "u2", "v2"):
        assert abs(ysr[name]["mean"] - truth[name]) < 4 * ysr[name]["sd"] + 0.02 * truth[name], name
    for j, (_, _, g_n) in enumerate(sims):
        assert ysr[f"g_n_j[{j}]"]["mean"] == pytest.approx(g_n, rel=0.02)
    assert "kappa" in summary["hypotheses"]["mzm"]["parameters"]
    zero, signed = _verdict(summary)
    assert zero["favoured"] == "offset" and signed - 2 * zero["err"] > 5
    from stsbayes.comparison import load_compare
    again = load_compare(out)
    assert again.summary()["series"] == summary["series"] and "eps_j" in again.trees["ysr"]["posterior"]
    assert (out / "report.html").is_file()
    assert check_report_assets(out / "report.html") == []


@pytest.mark.parametrize("kind,truth_h,truth,conditions,expect", [
    ("field", "ysr", dict(eps0=0.0, g_eff=0.0, width0=0.02, beta=0.04, u2=0.2, v2=0.2, gamma_field=0.0, g_n=1.0),
     {"field_T": [0.0, 2.0, 5.0]}, "offset"),
    ("defects", "mzm", dict(width_d=[0.02] * 4, w_d=[0.4] * 4, g_n=1.0), {"defect": list("abcd")}, "zero"),
    ("defects", "ysr", dict(eps_d=[0.05, 0.035, 0.065, 0.045], width_d=[0.02, 0.025, 0.018, 0.022],
                            u2_d=[0.25, 0.3, 0.2, 0.3], v2_d=[0.15, 0.1, 0.2, 0.12], g_n=1.0),
     {"defect": list("abcd")}, "offset"),
])
def test_reduced_field_and_defect_series(kind, truth_h, truth, conditions, expect):
    """A peak that broadens and drops at 5 T is responsive (ysr); four zero-energy states are not offset; four
    pairs at 0.035-0.065 meV are, and their ysr samples the resolved energies centred (the zero-energy states'
    non-centred)."""
    sims = simulate_series(kind, truth_h, truth, conditions, SMALL_GAPS, WIDE_BIAS, seed=2)
    result = series(kind, _datas(sims, bias=WIDE_BIAS), conditions, FIT_SMALL_GAPS, metal_tip=True, **REDUCED)
    summary = result.summary()
    _check_structure(summary, kind, len(sims))
    assert summary["diagnostics"]["cautions"] == []  # the small gaps' coherence peaks lie inside the window
    zero, signed = _verdict(summary)
    if expect == "offset":
        assert zero["favoured"] == "offset" and signed - 2 * zero["err"] > 3, zero
    else:
        assert signed < 1, zero
    ysr = summary["hypotheses"]["ysr"]["parameters"]
    if kind == "field":
        assert abs(ysr["beta"]["mean"] - 0.04) < 4 * ysr["beta"]["sd"] + 0.004
    else:
        posterior = result.trees["ysr"]["posterior"]
        assert ("eps_resolved" in posterior) == (expect == "offset") and ("z_eps" in posterior) == (expect == "zero")
        if expect == "offset":
            for k, eps in enumerate(truth["eps_d"]):
                assert abs(ysr[f"eps_d[{k}]"]["mean"] - eps) < 4 * ysr[f"eps_d[{k}]"]["sd"] + 0.003


# ----------------------------------------------------------------------------------------------- must-shows (slow)
#
# The paper's conditions (physics.md §7): metallic tip, noise 2 % of each spectrum's G_n, ±1 mV at 0.01 mV steps.

# a fit short only of length is sampled again with doubled draws, up to 4000 per chain (`--max-draws`)
FULL = dict(chains=4, draws=1000, tune=1000, smc_draws=1000, progress=False, max_draws=4000)
FULL_BIAS = np.round(np.arange(-1.0, 1.0 + 1e-9, 0.01), 6)  # gn: the setpoints fix G_n
# field and defects: up to the coherence peaks of the 4.5 / 5.8 meV gaps, which fix each spectrum's G_n
WIDE_FULL_BIAS = np.round(np.arange(-7.0, 7.0 + 1e-9, 0.02), 6)
PAPER_GN = {"setpoint_current_nA": list(np.geomspace(2.0, 116.0, 8)), "setpoint_bias_mV": [7.0] * 8}
GN_YSR = dict(eps0=0.0059, alpha=0.0147, width=0.02, u2=0.3, v2=0.15)  # eps_j from 0.010 to 0.250 meV
GN_MZM = dict(kappa=0.0045)  # Gamma_j = kappa G_n,j from about 0.002 to 0.1 meV
FIELD_BACKGROUND = {**BACKGROUND, "junction": {"T_eff": 0.3, "modulation_peak": 0.1}}
FIELD = {"field_T": [0.0, 2.0, 5.0]}
DEFECTS = {"defect": [f"d{k:02d}" for k in range(11)]}
DEFECT_EPS = [0.052, 0.031, 0.067, 0.045, 0.058, 0.039, 0.072, 0.049, 0.035, 0.061, 0.044]
DEFECT_WIDTHS = [0.02, 0.025, 0.018, 0.03, 0.022, 0.027, 0.02, 0.024, 0.019, 0.028, 0.023]


def _full_series(kind, truth_h, truth, conditions, background, seed, temperature, modulation):
    bias = FULL_BIAS if kind == "gn" else WIDE_FULL_BIAS
    sims = simulate_series(kind, truth_h, truth, conditions, background, bias, seed=seed)
    kind_mod, value = modulation
    datas = [FitData(bias=bias, y=y, units="uS", temperature_K=temperature,
                     modulation={"kind": kind_mod, "value_mV": value, "source": "test"}) for y, _, _ in sims]
    # T_eff known to ~20 % with a floor at half its value (the floor sets the metal tip's grid step)
    fit = {**FIT_BACKGROUND, "junction": {"bias_offset": 0.0, "T_eff": {
        "dist": "truncnormal", "mu": temperature, "sigma": 0.2 * temperature, "lower": 0.5 * temperature}}}
    result = series(kind, datas, conditions, fit, metal_tip=True, seed=seed + 1, **FULL)
    s = result.summary()
    if os.environ.get("STSBAYES_MUST_SHOW_OUT"):  # keep the result (posteriors, report) for a closer look
        result.save(Path(os.environ["STSBAYES_MUST_SHOW_OUT"]) / f"{kind}_{truth_h}_{seed}")
    print(json.dumps({"verdicts": s["verdicts"], "log_bayes_factors": s["log_bayes_factors"],
                      "diagnostics": s["diagnostics"], "timing_s": s["timing_s"],
                      "hypotheses": {h: {**{k: b[k] for k in ("log_evidence_by_estimator",
                                                              "log_evidence_err_by_estimator", "converged")},
                                         "diagnostics": {k: v for k, v in b["diagnostics"].items() if k != "ppc"}}
                                     for h, b in s["hypotheses"].items()}}))
    assert s["diagnostics"]["converged"], s["diagnostics"]
    assert not s["diagnostics"]["estimators_disagree"], s["diagnostics"]
    return s


def _assert_decides(summary, expect, margin):
    """The verdict favours ``expect`` by |ln B| − 2 err >= margin, and no cap took the strength that implies away."""
    zero, _ = _verdict(summary)
    assert zero["favoured"] == expect and zero["ln_bf"] - 2 * zero["err"] >= margin, zero
    assert STRENGTHS.index(zero["strength"]) >= STRENGTHS.index(strength(margin, 0.0)), zero


@pytest.mark.slow
@pytest.mark.parametrize("truth_h,truth,expect,margin", [("ysr", GN_YSR, "offset", 3), ("mzm", GN_MZM, "zero", 1)])
def test_must_show_gn_series(truth_h, truth, expect, margin):
    s = _full_series("gn", truth_h, truth, PAPER_GN, BACKGROUND, 61, 0.4, ("rms", 0.07))
    _assert_decides(s, expect, margin)


@pytest.mark.slow
def test_must_show_field_series_responsive():
    truth = dict(eps0=0.0, g_eff=0.0, width0=0.02, beta=0.03, u2=0.2, v2=0.2, gamma_field=0.002, g_n=1.0)
    s = _full_series("field", "ysr", truth, FIELD, FIELD_BACKGROUND, 71, 0.3, ("peak", 0.1))
    _assert_decides(s, "offset", 3)


@pytest.mark.slow
def test_must_show_field_series_inert():
    truth = dict(width=0.02, w=0.4, gamma_field=0.0, g_n=1.0)
    s = _full_series("field", "mzm", truth, FIELD, FIELD_BACKGROUND, 81, 0.3, ("peak", 0.1))
    assert s["log_bayes_factors"]["ysr_vs_mzm"]["value"] < 1, s["log_bayes_factors"]


@pytest.mark.slow
def test_must_show_eleven_defects_offset():
    rng = np.random.default_rng(9)
    truth = dict(eps_d=DEFECT_EPS, width_d=DEFECT_WIDTHS, u2_d=list(rng.uniform(0.15, 0.35, 11)),
                 v2_d=list(rng.uniform(0.08, 0.25, 11)), g_n=list(rng.uniform(0.8, 1.2, 11)))
    s = _full_series("defects", "ysr", truth, DEFECTS, FIELD_BACKGROUND, 91, 0.3, ("peak", 0.1))
    _assert_decides(s, "offset", 3)


@pytest.mark.slow
def test_must_show_eleven_zero_energy_defects():
    rng = np.random.default_rng(10)
    truth = dict(width_d=DEFECT_WIDTHS, w_d=list(rng.uniform(0.3, 0.5, 11)), g_n=list(rng.uniform(0.8, 1.2, 11)))
    s = _full_series("defects", "mzm", truth, DEFECTS, FIELD_BACKGROUND, 101, 0.3, ("peak", 0.1))
    assert s["log_bayes_factors"]["ysr_vs_mzm"]["value"] < 1, s["log_bayes_factors"]
