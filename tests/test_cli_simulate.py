"""`stsbayes simulate` as architecture.md specifies it, and its errors (exit code 2, one line, nothing written)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import stsbayes
from stsbayes.cli import main
from stsbayes.models import simulate

DATA = Path(stsbayes.__file__).parent / "data"
PB = DATA / "pb_pb.toml"


def test_csv_output_matches_simulate_and_is_reproducible(tmp_path):
    out = tmp_path / "pb.csv"
    args = ["simulate", str(PB), "--bias-start", "-4", "--bias-stop", "4", "--points", "201", "--noise", "0.03",
            "--seed", "7", "--out", str(out)]
    assert main(args) == 0
    header = out.read_text().splitlines()[0]
    assert header.split(",")[:2] == ["bias_mV", "didv"]
    spectrum = stsbayes.load(out)
    bias = np.linspace(-4, 4, 201)
    np.testing.assert_allclose(spectrum.bias_mV, bias, atol=1e-12)
    np.testing.assert_allclose(spectrum.didv, simulate(PB, bias, noise=0.03, seed=7), rtol=1e-9)
    residual = spectrum.didv - simulate(PB, bias, noise=0.0)
    assert 0.02 < residual.std() < 0.04
    out2 = tmp_path / "again.csv"
    assert main(args[:-1] + [str(out2)]) == 0
    assert out2.read_text() == out.read_text()


def test_nanonis_output_round_trips_through_load(tmp_path):
    out = tmp_path / "zecp.dat"
    assert main(["simulate", str(DATA / "zecp_pb_tip.toml"), "--bias-start", "-3", "--bias-stop", "3", "--points",
                 "301", "--seed", "4", "--format", "nanonis", "--out", str(out)]) == 0
    spectrum = stsbayes.load(out)
    bias = np.linspace(-3, 3, 301)
    # the spec's observation.sigma = 0.02 applies when --noise is not given
    expected = simulate(DATA / "zecp_pb_tip.toml", bias, seed=4)
    np.testing.assert_allclose(spectrum.didv, expected, rtol=1e-6, atol=1e-9)
    assert spectrum.metadata["temperature_K"] == pytest.approx(0.32)
    assert spectrum.metadata["modulation"]["kind"] == "rms"
    assert spectrum.metadata["modulation"]["value_mV"] == pytest.approx(0.014)


def test_nanonis_header_records_the_bath_and_a_setpoint_outside_the_sweep(tmp_path):
    """A G_N-series spectrum: set at 7 mV / 11.4 nA, swept over ±1 mV at an 80 mK bath (T_eff 0.3 K in the spec)."""
    out = tmp_path / "gn.dat"
    assert main(["simulate", str(PB), "--bias-start", "-1", "--bias-stop", "1", "--points", "21", "--temperature",
                 "0.08", "--setpoint-bias", "7", "--setpoint-current", "11.4", "--format", "nanonis",
                 "--out", str(out)]) == 0
    meta = stsbayes.load(out).metadata
    assert meta["temperature_K"] == pytest.approx(0.08)
    assert meta["setpoint_bias_mV"] == pytest.approx(7.0) and meta["setpoint_current_nA"] == pytest.approx(11.4)


@pytest.mark.parametrize("args,message", [
    (["--setpoint-bias", "7"], "outside the sweep"),  # its current cannot come from the data
    (["--setpoint-bias", "-2", "--setpoint-current", "3"], "sign of the setpoint bias"),
    (["--setpoint-current", "3"], "needs --setpoint-bias"),
    (["--temperature", "0"], "positive bath temperature"),
])
def test_bad_nanonis_header_options_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "x.dat"
    assert main(["simulate", str(PB), "--bias-start", "-4", "--bias-stop", "4", "--points", "41", "--format",
                 "nanonis", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("args,message", [
    (["--points", "1"], "too few"),
    (["--temperature", "0.08"], "add --format nanonis"),
    (["--bias-start", "3", "--bias-stop", "-3"], "must be above"),
    (["--noise", "-1"], "non-negative"),
    (["--format", "xml"], "invalid choice"),
])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "x.csv"
    assert main(["simulate", str(PB), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_bad_spec_exits_2_from_the_shell(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text("[sample]\ndelta = [1.4, 1.2]\ngamma = [0.01, 0.01]\nweight = [0.5, 0.5]\n")
    out = tmp_path / "x.csv"
    run = subprocess.run([sys.executable, "-m", "stsbayes", "simulate", str(spec), "--out", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "strictly ascending" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


def test_missing_true_values_are_named(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text("[sample]\ndelta = [1.4]\ngamma = [0.01]\nweight = [1.0]\n[junction]\nT_eff = 0.3\n")
    assert main(["simulate", str(spec), "--out", str(tmp_path / "x.csv")]) == 2
    assert "lock-in amplitude is missing" in capsys.readouterr().err
