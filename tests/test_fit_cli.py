"""calibrate-tip and fit end to end through the command line (reduced sizes; full recovery runs are `slow`).

The reduced runs are too short to pass the convergence gates reliably, so they check the contract instead: exit
code 0 when converged and 3 when not, results written either way and labelled, summary.json as architecture.md
says, posterior.nc reloadable without the script, the tip density carried into the sample fit.
"""

import json

import numpy as np
import pytest

from stsbayes.cli import main
from stsbayes.reports import check_report_assets
from stsbayes.results import load_result

PB = {"tip": {"kind": "dynes", "delta": 1.37, "gamma": 0.005},
      "sample": {"delta": [1.26, 1.41], "gamma": [0.005, 0.005], "weight": [0.5, 0.5]},
      "junction": {"T_eff": 0.32, "modulation_rms": 0.014}}
SAMPLE = {"tip": {"kind": "dynes", "delta": 1.37, "gamma": 0.005},
          "sample": {"delta": [0.8], "gamma": [0.01], "weight": [1.0]},
          "junction": {"T_eff": 0.32, "modulation_rms": 0.014}}
SAMPLE_FIT = {"tip": {"kind": "dynes"}, "sample": {"delta": [{"dist": "normal", "mu": 0.75, "sigma": 0.1}]}}
REDUCED = ["--draws", "80", "--tune", "120", "--seed", "3", "--no-progress"]


def toml(d):
    lines = []
    for table, values in d.items():
        lines.append(f"[{table}]")
        for k, v in values.items():
            if isinstance(v, str):
                v = f'"{v}"'
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                v = "[" + ", ".join("{" + ", ".join(f'{a} = {json.dumps(b)}' for a, b in x.items()) + "}"
                                    for x in v) + "]"
            lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cal")
    (tmp / "pb.toml").write_text(toml(PB))
    data = tmp / "pb.dat"
    assert main(["simulate", str(tmp / "pb.toml"), "--bias-start", "-3.2", "--bias-stop", "3.2", "--points", "161",
                 "--noise", "0.03", "--seed", "1", "--format", "nanonis", "--out", str(data)]) == 0
    out = tmp / "tip"
    code = main(["calibrate-tip", str(data), "--reference", "pb", "--temperature", "0.08", "--out", str(out),
                 *REDUCED])
    return code, out


def test_calibration_contract(calibration):
    code, out = calibration
    summary = json.loads((out / "summary.json").read_text())
    assert code == (0 if summary["diagnostics"]["converged"] else 3)
    assert summary["schema_version"] == 1 and summary["command"] == "calibrate-tip"
    for key in ("stsbayes_version", "seed", "input", "sampler", "parameters", "diagnostics", "timing_s"):
        assert key in summary
    assert set(summary["timing_s"]) == {"compile", "sample"}
    assert summary["input"]["temperature_K"] == 0.08
    assert summary["input"]["modulation"]["kind"] == "rms"
    for key in ("divergences", "max_r_hat", "min_ess_bulk", "converged", "ppc"):
        assert key in summary["diagnostics"]
    assert "residual_lag1_autocorr" in summary["diagnostics"]["ppc"]
    p = summary["parameters"]
    for name in ("delta_tip", "gamma_tip", "T_eff", "delta[0]", "delta[1]", "g_n", "sigma"):
        assert set(p[name]) == {"mean", "sd", "q05", "q50", "q95", "r_hat", "ess_bulk"}
    # the SIS peaks fix the sums delta_tip + delta[k] sharply (physics.md, identifiability)
    draws = load_result(out).posterior
    sums = np.asarray(draws["delta_tip"])[..., None] + np.asarray(draws["delta"])
    np.testing.assert_allclose(sums.mean(axis=(0, 1)), [2.63, 2.78], atol=3e-3)
    assert abs(p["delta_tip"]["mean"] - 1.37) < 3 * p["delta_tip"]["sd"] + 0.01
    assert (out / "report.html").exists() and (out / "posterior.nc").exists()
    assert check_report_assets(out / "report.html") == []


def test_calibration_reloads_with_its_tip_density(calibration):
    _, out = calibration
    result = load_result(out / "posterior.nc")
    density = result.tip_density()
    assert density.mean.shape == (3,) and np.all(np.linalg.eigvalsh(density.cov) > 0)
    provenance = json.loads(result.tree.attrs["provenance"])
    assert provenance["seed"] == 3 and "pymc" in provenance["versions"] and provenance["grid"]["step_meV"] > 0
    for group in ("posterior", "sample_stats", "log_likelihood", "prior", "observed_data", "predictions"):
        assert group in result.tree.children


@pytest.mark.slow  # reduced as it is, the sample fit took over 10 minutes on 2 cores (see the issue note)
def test_fit_with_the_calibrated_tip(calibration, tmp_path):
    _, tip = calibration
    (tmp_path / "s.toml").write_text(toml(SAMPLE))
    (tmp_path / "fit.toml").write_text(toml(SAMPLE_FIT))
    data = tmp_path / "s.csv"
    assert main(["simulate", str(tmp_path / "s.toml"), "--bias-start", "-3", "--bias-stop", "3", "--points", "121",
                 "--noise", "0.02", "--seed", "2", "--out", str(data)]) == 0
    out = tmp_path / "fit"
    code = main(["fit", str(data), "--spec", str(tmp_path / "fit.toml"), "--tip", str(tip), "--temperature", "0.08",
                 "--modulation-rms", "0.014", "--out", str(out), *REDUCED])
    summary = json.loads((out / "summary.json").read_text())
    assert code == (0 if summary["diagnostics"]["converged"] else 3)
    assert summary["command"] == "fit" and "tip_prior" in summary
    p = summary["parameters"]
    assert abs(p["delta[0]"]["mean"] - 0.8) < 3 * p["delta[0]"]["sd"] + 0.01
    # the tip's calibrated uncertainty reaches the sample gap: its sd is at least the tip's
    assert p["delta[0]"]["sd"] > 0.5 * p["delta_tip"]["sd"]


def test_bad_fit_input_exits_2_and_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(toml(SAMPLE_FIT))
    data = tmp_path / "d.csv"
    data.write_text("bias_mV,didv\n-1,1\n0,1\n1,1\n")
    out = tmp_path / "out"
    assert main(["fit", str(data), "--spec", str(spec), "--metal-tip", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bath temperature is unknown" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["fit", str(data), "--spec", str(spec), "--tip", str(tmp_path / "none"), "--temperature", "0.1",
                 "--modulation-rms", "0.01", "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()
