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


@pytest.mark.parametrize("args,message", [
    (["--points", "1"], "too few"),
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
