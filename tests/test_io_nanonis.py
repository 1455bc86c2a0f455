"""Reading real data: Nanonis .dat spectra, CSV, the writers, bad input, `info`.

Fixture files are written here in the exact format of shared/design/nanonis.md (CRLF, `Key<TAB>Value<TAB>`
header, engineering notation with 6 significant figures) from known truths, so the tests can state what must come
back: sweep means and standard errors, ascending axes, the calibration factor of an external lock-in, metadata
parsed from comments, and the sample-bias mirror.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.integrate import cumulative_trapezoid

from stsbayes.errors import InputError
from stsbayes.io import (
    Spectrum,
    atomic_path,
    atomic_write_text,
    describe,
    load,
    write_csv,
    write_nanonis_dat,
)
from stsbayes.io.cli import add_data_options, add_info_command, load_from_args
from stsbayes.io.nanonis import eng

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "BiasSpectroscopyNIS.dat"
S_TRUE = 0.4567  # µS per V of the external lock-in's output on Input 3
RNG = np.random.default_rng(20220427)


def conductance_uS(bias_mV):
    """A gapped spectrum with an asymmetric in-gap peak at +1 mV (instrument bias)."""
    v = np.asarray(bias_mV, dtype=float)
    return 0.7 * (1 - 0.6 * np.exp(-((v / 0.8) ** 2))) + 0.3 * np.exp(-(((v - 1.0) / 0.15) ** 2))


def stored(values):
    """Values as a Nanonis file stores them (6 significant figures)."""
    return np.array([float(eng(v, 6)) for v in np.ravel(values)]).reshape(np.shape(values))


def dat_text(header, columns) -> str:
    lines = [f"{key}\t{value}\t" for key, value in header] + ["", "[DATA]", "\t".join(columns)]
    lines += ["\t".join(eng(x, 6) for x in row) for row in zip(*columns.values())]
    return "\r\n".join(lines) + "\r\n"


def write_dat(path, header, columns) -> Path:
    path.write_bytes(dat_text(header, columns).encode("utf-8"))
    return path


def common_header(comments=(), extra=()):
    header = [
        ("Experiment", "bias spectroscopy"),
        ("Date", "11.05.2022 18:06:39"),
        ("User", ""),
        ("X (m)", "-177.33E-9"),
        ("Y (m)", "-52.6544E-9"),
        ("Z (m)", "2.66577E-9"),
        ("Z offset (m)", "0E+0"),
        ("Final Z (m)", "N/A"),
        ("Order", ""),
    ]
    header += [(f"Comment{k:02d}", text) for k, text in enumerate(comments, start=1)]
    header += [
        ("Bias>Bias (V)", "7E-3"),
        ("Bias>Calibration (V/V)", "1E+0"),
        ("Bias>Offset (V)", "0E+0"),
        ("Bias>Offset (V)", "0E+0"),  # duplicate keys occur in real files
        ("Bias Spectroscopy>Sweep mode", "Linear"),
        (
            "Bias Spectroscopy>MultiLine Settings : Segment Start (V), Segment End (V), Settling (s), "
            "Integration (s), Steps (xn)",
            "-1E+0,1E+0,66.6667E-6,66.6667E-6,256",
        ),
        ("Bias Spectroscopy>Max Slew rate (V/s)", "Inf"),
        ("Current>Current (A)", "350E-12"),
        ("Current>Calibration (A/V)", "10E-9"),
        ("Current>Gain", "n/a"),
    ]
    return header + list(extra)


# --- fixture files ------------------------------------------------------------------------------------------------


def external_lockin_file(path: Path, bias_mV=None, n_sweeps=3):
    """3 sweeps forward and backward, external lock-in on Input 3 (X) and Input 4 (Y), and the current.

    Returns the file and the arrays it stores: X[dir][sweep], I[dir][sweep] as written (6 figures)."""
    bias = np.linspace(-3, 3, 121) if bias_mV is None else np.asarray(bias_mV)
    g = conductance_uS(bias)
    current_nA = cumulative_trapezoid(g, bias, initial=0) - 2.0  # any integration constant
    x = {
        d: stored([g / S_TRUE + 0.01 * RNG.standard_normal(bias.size) for _ in range(n_sweeps)])
        for d in ("fwd", "bwd")
    }
    y = {d: stored([0.01 * RNG.standard_normal(bias.size) for _ in range(n_sweeps)]) for d in ("fwd", "bwd")}
    i_A = {
        d: stored([(current_nA + 0.03 + 1e-4 * RNG.standard_normal(bias.size)) * 1e-9 for _ in range(n_sweeps)])
        for d in ("fwd", "bwd")
    }
    columns = {"Bias calc (V)": bias * 1e-3}
    for d, tag in (("fwd", ""), ("bwd", " [bwd]")):
        columns[f"Current [AVG]{tag} (A)"] = i_A[d].mean(axis=0)
        columns[f"Input 3 [AVG]{tag} (V)"] = x[d].mean(axis=0)
        columns[f"Input 4 [AVG]{tag} (V)"] = y[d].mean(axis=0)
        for k in range(n_sweeps):
            columns[f"Current [{k + 1:05d}]{tag} (A)"] = i_A[d][k]
            columns[f"Input 3 [{k + 1:05d}]{tag} (V)"] = x[d][k]
            columns[f"Input 4 [{k + 1:05d}]{tag} (V)"] = y[d][k]
    header = common_header(
        comments=["Vac=150mVrms div 1/1000", "Input 3: X gain 1k", "Input 4: Y gain 1k", "T=80mK"],
        extra=[
            ("Bias Spectroscopy>Sweep Start (V)", eng(bias[0] * 1e-3, 6)),
            ("Bias Spectroscopy>Sweep End (V)", eng(bias[-1] * 1e-3, 6)),
            ("Bias Spectroscopy>Num Pixel", str(bias.size)),
            ("Bias Spectroscopy>Number of sweeps", str(n_sweeps)),
            ("Bias Spectroscopy>backward sweep", "TRUE"),
            ("Bias Spectroscopy>Channels", "Current (A);Input 3 (V);Input 4 (V)"),
            ("Bias Spectroscopy>Lock-In run", "FALSE"),
        ],
    )
    write_dat(path, header, columns)
    return path, bias, x, i_A


@pytest.fixture
def external(tmp_path):
    return external_lockin_file(tmp_path / "external.dat")


# --- the 3-sweep forward+backward external lock-in file -----------------------------------------------------------


def test_external_lockin_sweeps_are_averaged_with_standard_errors(external):
    path, bias, x, _ = external
    s = load(path)
    assert s.metadata["channel"] == "Input 3 (V)"
    assert s.n_sweeps == 3 and s.units == "uS" and s.direction == "fwd"
    np.testing.assert_allclose(s.bias_mV, bias, rtol=1e-9)
    assert np.all(np.diff(s.bias_mV) > 0)
    factor = s.metadata["calibration"]["factor"]
    np.testing.assert_allclose(s.didv / factor, x["fwd"].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.sigma / abs(factor), x["fwd"].std(axis=0, ddof=1) / np.sqrt(3), rtol=1e-9)
    assert s.dataset["didv_sweeps"].shape == (3, bias.size)


def test_external_lockin_is_calibrated_against_the_current(external):
    path, bias, _, _ = external
    s = load(path)
    calibration = s.metadata["calibration"]
    assert calibration["factor"] == pytest.approx(S_TRUE, rel=2e-3)
    assert calibration["quality"] > 0.9999
    assert calibration["units_after"] == "uS" and calibration["against"] == "Current (A)"
    # The calibrated conductance is the truth up to the lock-in noise of the mean of 3 sweeps (0.01 V / sqrt 3).
    np.testing.assert_allclose(s.didv, conductance_uS(bias), atol=4 * 0.01 * S_TRUE / np.sqrt(3))


def test_external_lockin_both_directions(external):
    path, bias, x, _ = external
    both = load(path, direction="both")
    assert both.didv.shape == (2, bias.size) and both.sigma.shape == (2, bias.size)
    assert list(both.dataset["direction"].values) == ["fwd", "bwd"]
    assert both.dataset["didv"].dims == ("direction", "bias")
    factor = both.metadata["calibration"]["factor"]
    np.testing.assert_allclose(both.didv[1] / factor, x["bwd"].mean(axis=0), rtol=1e-12)
    assert set(both.metadata["calibration"]["intercept_nA"]) == {"fwd", "bwd"}
    bwd = both.select("bwd")
    assert bwd.direction == "bwd" and bwd.didv.shape == (bias.size,)
    np.testing.assert_allclose(bwd.didv, both.didv[1])
    np.testing.assert_allclose(load(path, direction="bwd").didv / factor, x["bwd"].mean(axis=0), rtol=2e-3)


def test_header_metadata_duplicate_and_empty_keys(external):
    s = load(external[0])
    meta = s.metadata
    assert meta["temperature_K"] == pytest.approx(0.080) and meta["temperature_source"] == "comment"
    assert meta["modulation"] == {"kind": "rms", "value_mV": pytest.approx(0.15), "source": "comment"}
    assert meta["setpoint_bias_mV"] == pytest.approx(7.0)
    assert meta["setpoint_current_nA"] == pytest.approx(0.35)
    assert meta["g_set_uS"] == pytest.approx(0.05)
    assert meta["position_m"] == pytest.approx([-177.33e-9, -52.6544e-9, 2.66577e-9])
    assert "T=80mK" in meta["comments"]
    assert any("Input 3: X gain" in note for note in meta["assumed"])


def test_channel_override_and_unknown_channel(external):
    s = load(external[0], channel="Input 4")
    assert s.metadata["channel"] == "Input 4 (V)"
    with pytest.raises(InputError, match=r"Input 9.*not in the file.*Input 3 \(V\).*Input 4 \(V\)"):
        load(external[0], channel="Input 9 (V)")
    with pytest.raises(InputError, match="current, not a dI/dV channel"):
        load(external[0], channel="Current (A)")


# --- metadata only in comments, AVG-only columns ------------------------------------------------------------------


def comments_only_file(path, comments, extra=()):
    bias = np.linspace(-2, 2, 41)
    columns = {
        "Bias calc (V)": bias * 1e-3,
        "Current [AVG] (A)": cumulative_trapezoid(conductance_uS(bias), bias, initial=0) * 1e-9,
        "Input 2 [AVG] (V)": conductance_uS(bias) / S_TRUE,
    }
    header = common_header(comments=comments, extra=[("Bias Spectroscopy>Number of sweeps", "4"), *extra])
    return write_dat(path, header, columns), bias


def test_temperature_and_modulation_from_comments_only(tmp_path):
    path, bias = comments_only_file(tmp_path / "c.dat", ["T=58mK", "Vac=150mVrms div 1/1000", "sample Re"])
    s = load(path)
    assert s.metadata["temperature_K"] == pytest.approx(0.058)
    assert s.metadata["modulation"] == {"kind": "rms", "value_mV": pytest.approx(0.15), "source": "comment"}
    assert s.n_sweeps == 4 and s.sigma is None  # only the [AVG] column: n from the header, no scatter
    assert s.metadata["calibration"]["factor"] == pytest.approx(S_TRUE, rel=1e-4)


@pytest.mark.parametrize(
    ("comment", "kind", "value_mV"),
    [("T=0.08K Vac=0.1mVpk", "peak", 0.1), ("Vac=20uV rms", "rms", 0.02), ("Vac = 2mV p-p", "peak", 1.0)],
)
def test_modulation_comment_forms(tmp_path, comment, kind, value_mV):
    path, _ = comments_only_file(tmp_path / "c.dat", [comment])
    modulation = load(path).metadata["modulation"]
    assert (modulation["kind"], modulation["value_mV"]) == (kind, pytest.approx(value_mV))


def test_multiline_comment_and_flags_override(tmp_path):
    path, _ = comments_only_file(tmp_path / "c.dat", ["T=58mK"])
    text = path.read_bytes().decode().replace("T=58mK\t\r\n", "T=58mK\t\r\nsecond line of the comment\r\n")
    assert "second line" in text
    path.write_bytes(text.encode())
    s = load(path, temperature_K=0.3, modulation_peak=0.2)
    assert s.metadata["temperature_K"] == 0.3 and s.metadata["temperature_source"] == "flag"
    assert s.metadata["modulation"] == {"kind": "peak", "value_mV": 0.2, "source": "flag"}
    assert any("second line" in c for c in s.metadata["comments"])


# --- internal lock-in ---------------------------------------------------------------------------------------------


def internal_lockin_file(path, comments=(), bias_names=("Bias calc (V)",), lix=False):
    """LI Demod 1 X/Y (A) from the internal lock-in: X = G · V_mod, with Lock-in>Amplitude = 1 mV."""
    bias = np.linspace(-2, 2, 81)
    g_S = conductance_uS(bias) * 1e-6
    columns = {name: bias * 1e-3 * (1.0 if "calc" in name else 1.01) for name in bias_names}
    columns["Current (A)"] = cumulative_trapezoid(conductance_uS(bias), bias, initial=0) * 1e-9
    prefix = "LIX 1 omega" if lix else "LI Demod 1 X"
    columns[f"{prefix} (A)"] = g_S * 1e-3
    columns["LI Demod 1 Y (A)" if not lix else "LIY 1 omega (A)"] = np.full(bias.size, 1e-15)
    header = common_header(
        comments=comments,
        extra=[
            ("Lock-in>Lock-in status", "ON"),
            ("Lock-in>Modulated signal", "Bias (V)"),
            ("Lock-in>Frequency (Hz)", "973E+0"),
            ("Lock-in>Amplitude", "1E-3"),
            ("Z-Controller>Setpoint", "200E-12"),
            ("Z-Controller>Setpoint unit", "A"),
        ],
    )
    return write_dat(path, header, columns), bias


def test_internal_lockin_amplitude_kind_is_unknown_unless_a_comment_says(tmp_path):
    path, bias = internal_lockin_file(tmp_path / "li.dat")
    s = load(path)
    assert s.metadata["channel"] == "LI Demod 1 X (A)" and s.units == "uS"
    assert s.metadata["modulation"] == {"kind": "unknown", "value_mV": pytest.approx(1.0), "source": "header"}
    assert any("not guessed" in note for note in s.metadata["assumed"])
    # X = G * 1 mV, so the calibration is 1e6 µS/S / 1e-3 V.
    assert s.metadata["calibration"]["factor"] == pytest.approx(1e9, rel=1e-4)
    np.testing.assert_allclose(s.didv, conductance_uS(bias), rtol=1e-4)
    # The Z controller's setpoint is the setpoint current, not the Current>Current reading.
    assert s.metadata["setpoint_current_nA"] == pytest.approx(0.2)

    stated, _ = internal_lockin_file(tmp_path / "li_rms.dat", comments=["lock-in amplitude set as rms"])
    assert load(stated).metadata["modulation"]["kind"] == "rms"
    commented, _ = internal_lockin_file(tmp_path / "li_pk.dat", comments=["Vac=0.1mVpk"])
    assert load(commented).metadata["modulation"] == {"kind": "peak", "value_mV": 0.1, "source": "comment"}


def test_lix_omega_and_bias_calc_preferred_over_measured_bias(tmp_path):
    path, bias = internal_lockin_file(tmp_path / "lix.dat", bias_names=("Bias (V)", "Bias calc (V)"), lix=True)
    s = load(path)
    assert s.metadata["channel"] == "LIX 1 omega (A)"
    np.testing.assert_allclose(s.bias_mV, bias, rtol=1e-6)  # Bias calc, not the measured Bias (1 % off)


# --- sweep order and sign -----------------------------------------------------------------------------------------


def test_descending_sweep_is_sorted_ascending(tmp_path):
    path, bias, x, _ = external_lockin_file(tmp_path / "down.dat", bias_mV=np.linspace(3, -3, 121))
    s = load(path)
    np.testing.assert_allclose(s.bias_mV, bias[::-1], rtol=1e-9)
    factor = s.metadata["calibration"]["factor"]
    np.testing.assert_allclose(s.didv / factor, x["fwd"].mean(axis=0)[::-1], rtol=1e-12)
    assert factor == pytest.approx(S_TRUE, rel=2e-3)
    peak = s.bias_mV[np.argmax(s.didv)]
    assert peak == pytest.approx(1.0, abs=0.06)


def test_bias_sign_minus_one_mirrors_into_sample_bias(external):
    path, bias, _, _ = external
    plus, minus = load(path), load(path, bias_sign=-1)
    assert plus.bias_mV[np.argmax(plus.didv)] == pytest.approx(1.0, abs=0.06)
    assert minus.bias_mV[np.argmax(minus.didv)] == pytest.approx(-1.0, abs=0.06)
    assert np.all(np.diff(minus.bias_mV) > 0)
    np.testing.assert_allclose(minus.bias_mV, -plus.bias_mV[::-1])
    np.testing.assert_allclose(minus.didv, plus.didv[::-1])
    np.testing.assert_allclose(minus.sigma, plus.sigma[::-1])
    assert minus.metadata["bias_sign"] == -1
    assert minus.metadata["setpoint_bias_mV"] == pytest.approx(-7.0)
    assert minus.metadata["g_set_uS"] == pytest.approx(plus.metadata["g_set_uS"])


def test_normalized_divides_by_outer_window(external):
    s = load(external[0], direction="both")
    n = s.normalized()
    outer = (s.bias_mV <= -2.4) | (s.bias_mV >= 2.4)
    factor = s.didv[:, outer].mean()
    assert n.units == "normalised" and n.metadata["normalization"]["factor"] == pytest.approx(factor)
    np.testing.assert_allclose(n.didv, s.didv / factor)
    np.testing.assert_allclose(n.sigma, s.sigma / factor)
    assert load(external[0], normalize=True).units == "normalised"


# --- the real file ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not REAL.exists(), reason="shared/data/real is not present")
def test_real_nanonis_file():
    s = load(REAL, direction="both")
    meta = s.metadata
    assert meta["temperature_K"] == pytest.approx(0.055)
    assert meta["modulation"] == {"kind": "rms", "value_mV": pytest.approx(0.25), "source": "comment"}
    assert s.n_sweeps == 3 and s.didv.shape == (2, 1001)
    assert meta["channel"] == "Input 3 (V)" and meta["directions_available"] == ["fwd", "bwd"]
    assert s.bias_mV[0] == pytest.approx(-1.5) and s.bias_mV[-1] == pytest.approx(1.5)
    assert np.all(np.diff(s.bias_mV) > 0)  # the file sweeps from +1.5 to -1.5 mV
    calibration = meta["calibration"]
    assert np.isfinite(calibration["factor"]) and calibration["factor"] > 0
    assert 0.99 < calibration["quality"] <= 1
    # An NIS gap: the conductance at zero bias is well below the outer conductance.
    zero = np.argmin(np.abs(s.bias_mV))
    assert s.didv[0, zero] < 0.8 * s.didv[0, 0]
    info = describe(REAL)
    json.dumps(info)
    assert {c["name"] for c in info["channels"]} >= {"Current (A)", "Input 3 (V)", "Input 4 (V)"}


# --- writers and round trips --------------------------------------------------------------------------------------


def test_engineering_notation_as_nanonis_writes_it():
    assert eng(2.69865e-3, 6) == "2.69865E-3" and eng(785.123e-3, 6) == "785.123E-3"
    assert eng(-1.06718e-9, 6) == "-1.06718E-9" and eng(0.0) == "0E+0" and eng(15e3, 3) == "15.0E+3"


@pytest.mark.parametrize("kind", ["rms", "peak"])
def test_nanonis_writer_round_trip(tmp_path, kind):
    bias = np.linspace(-5, 5, 401)
    g = 2.0 * conductance_uS(bias)
    path = tmp_path / "sim.dat"
    write_nanonis_dat(path, bias, g, temperature_K=0.35, modulation={"kind": kind, "value_mV": 0.014})
    s = load(path)
    np.testing.assert_allclose(s.bias_mV, bias, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s.didv, g, rtol=1e-6)
    assert s.units == "uS" and s.metadata["channel"] == "LI Demod 1 X (A)"
    assert s.metadata["temperature_K"] == pytest.approx(0.35, rel=1e-9)
    assert s.metadata["modulation"]["kind"] == kind
    assert s.metadata["modulation"]["value_mV"] == pytest.approx(0.014, rel=1e-9)
    header = dict(line.split("\t")[:2] for line in path.read_text().splitlines() if line.count("\t") == 2)
    peak = 0.014 * (np.sqrt(2) if kind == "rms" else 1.0)
    assert float(header["Lock-in>Amplitude"]) == pytest.approx(peak * 1e-3, rel=1e-9)
    assert float(header["Bias>Bias (V)"]) == pytest.approx(-5e-3)  # largest |bias| (the first of the two)
    assert s.metadata["g_set_uS"] > 0


def test_nanonis_writer_current_integrates_the_conductance(tmp_path):
    """Without the writer's units comment the reader calibrates the lock-in against the written current: the
    current is ∫ G dV with I(0) = 0 exactly when the factor is 1e6 µS per A/V and r² is 1."""
    bias = np.linspace(-4, 6, 201)
    g = conductance_uS(bias)
    path = tmp_path / "sim.dat"
    write_nanonis_dat(path, bias, g)
    text = path.read_text().replace("units=uS", "units unstated")
    rows = [line.split("\t") for line in text.splitlines()[text.splitlines().index("[DATA]") + 2 :]]
    current = np.array([float(r[1]) for r in rows]) * 1e9
    assert np.interp(0.0, bias, current) == pytest.approx(0.0, abs=1e-9)
    path.write_text(text)
    s = load(path)
    assert s.metadata["calibration"]["factor"] == pytest.approx(1e6, rel=1e-6)
    assert s.metadata["calibration"]["quality"] == pytest.approx(1.0, abs=1e-9)


def test_nanonis_writer_normalised_round_trip(tmp_path):
    bias = np.linspace(-3, 3, 61)
    g = conductance_uS(bias) / 0.7
    path = tmp_path / "norm.dat"
    write_nanonis_dat(path, bias, g, units="normalised", setpoint_bias_mV=3.0)
    s = load(path)
    assert s.units == "normalised"
    np.testing.assert_allclose(s.didv, g, rtol=1e-6)
    assert s.metadata["temperature_K"] is None and s.metadata["modulation"] is None


def test_csv_round_trip_and_bias_in_volts(tmp_path):
    bias = np.linspace(-3, 3, 31)
    g, sigma = conductance_uS(bias), np.full(31, 0.01)
    path = tmp_path / "s.csv"
    write_csv(path, bias, g, sigma)
    s = load(path)
    np.testing.assert_allclose(s.bias_mV, bias)
    np.testing.assert_allclose(s.didv, g, rtol=1e-12)
    np.testing.assert_allclose(s.sigma, sigma)
    assert s.units == "arb"
    tsv = tmp_path / "s.tsv"
    rows = "\n".join(f"{float(v) * 1e-3!r}\t{float(x)!r}" for v, x in zip(bias[::-1], g[::-1]))
    tsv.write_text(f"# T=58mK\nbias_V\tdidv_uS\n{rows}\n")
    t = load(tsv, bias_sign=-1)
    np.testing.assert_allclose(t.bias_mV, -bias[::-1], atol=1e-12)
    np.testing.assert_allclose(t.didv, g[::-1])
    assert t.units == "uS" and t.metadata["temperature_K"] == pytest.approx(0.058)


# --- bad input ----------------------------------------------------------------------------------------------------


def small_dat_text() -> str:
    bias = np.linspace(-1, 1, 11)
    g = conductance_uS(bias)
    columns = {
        "Bias calc (V)": bias * 1e-3,
        "Current [00001] (A)": cumulative_trapezoid(g, bias, initial=0) * 1e-9,
        "Input 3 [00001] (V)": g,
        "Current [00002] (A)": cumulative_trapezoid(g, bias, initial=0) * 1.001e-9,
        "Input 3 [00002] (V)": g * 1.01,
        "Current [00001] [bwd] (A)": cumulative_trapezoid(g, bias, initial=0) * 1e-9,
        "Input 3 [00001] [bwd] (V)": g,
    }
    return dat_text(common_header(comments=["T=58mK"]), columns)


def _replace_cell(text: str, row: int, column: int, value: str) -> str:
    lines = text.split("\r\n")
    start = lines.index("[DATA]") + 2
    cells = lines[start + row].split("\t")
    cells[column] = value
    lines[start + row] = "\t".join(cells)
    return "\r\n".join(lines)


def _swap_rows(text: str, a: int, b: int) -> str:
    lines = text.split("\r\n")
    start = lines.index("[DATA]") + 2
    lines[start + a], lines[start + b] = lines[start + b], lines[start + a]
    return "\r\n".join(lines)


def _duplicate_row(text: str, row: int) -> str:
    lines = text.split("\r\n")
    start = lines.index("[DATA]") + 2
    lines.insert(start + row, lines[start + row])
    return "\r\n".join(lines)


BAD_DAT = {
    "empty": (lambda t: "", "empty"),
    "blank": (lambda t: "\r\n \r\n", "empty"),
    "no [DATA]": (lambda t: t.replace("[DATA]", "DATA"), r"no \[DATA\]"),
    "no columns": (lambda t: t[: t.index("[DATA]") + 6], "no column names"),
    "truncated row": (lambda t: t.rstrip("\r\n")[:-12], "truncated"),
    "non-numeric": (lambda t: _replace_cell(t, 3, 2, "1.2E-3x"), "'1.2E-3x' is not a number"),
    "NaN": (lambda t: _replace_cell(t, 4, 2, "NaN"), "holds nan"),
    "inf": (lambda t: _replace_cell(t, 4, 0, "Inf"), "holds inf"),
    "non-monotonic": (lambda t: _swap_rows(t, 3, 5), "not monotonic"),
    "duplicated bias": (lambda t: _duplicate_row(t, 4), "repeats"),
    "one row": (
        lambda t: t[: t.index("[DATA]")] + "[DATA]\r\nBias calc (V)\tInput 3 (V)\r\n1E-3\t1E+0\r\n",
        "at least 2",
    ),
    "no lock-in": (
        lambda t: t[: t.index("[DATA]")] + "[DATA]\r\nBias calc (V)\tCurrent (A)\r\n1E-3\t1E-9\r\n2E-3\t2E-9\r\n",
        "no lock-in",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DAT))
def test_bad_dat_gives_one_sentence_and_writes_nothing(tmp_path, case):
    mutate, message = BAD_DAT[case]
    path = tmp_path / "bad.dat"
    path.write_bytes(mutate(small_dat_text()).encode())
    before = sorted(tmp_path.iterdir())
    with pytest.raises(InputError, match=message) as error:
        load(path)
    text = str(error.value)
    assert "\n" not in text and (":" in text or ";" in text)  # one sentence with a way out
    assert sorted(tmp_path.iterdir()) == before


def test_small_dat_is_valid(tmp_path):
    path = tmp_path / "ok.dat"
    path.write_bytes(small_dat_text().encode())
    s = load(path, direction="both")
    assert s.n_sweeps == 1  # the backward direction holds a single sweep
    assert load(path).n_sweeps == 2 and load(path).sigma is not None


def test_other_bad_inputs(tmp_path):
    binary = tmp_path / "grid.dat"
    binary.write_bytes(b"Grid dim=\"2 x 2\"\r\n:HEADER_END:\r\n" + np.arange(64, dtype=">f4").tobytes())
    with pytest.raises(InputError, match="binary.*3ds"):
        load(binary)
    noise = tmp_path / "noise.dat"
    noise.write_bytes(bytes(RNG.integers(0, 256, 4096, dtype=np.uint8)))
    with pytest.raises(InputError, match="binary"):
        load(noise)
    with pytest.raises(InputError, match="does not exist"):
        load(tmp_path / "absent.dat")
    (tmp_path / "x.sxm").write_text("SCANIT_END")
    with pytest.raises(InputError, match="unknown file type"):
        load(tmp_path / "x.sxm")
    ok = tmp_path / "ok.dat"
    ok.write_bytes(small_dat_text().replace("[00001] [bwd]", "[00003]").encode())
    with pytest.raises(InputError, match="no backward sweep.*--direction fwd"):
        load(ok, direction="bwd")
    with pytest.raises(InputError, match="not both|only one"):
        load(ok, modulation_rms=0.1, modulation_peak=0.1)
    with pytest.raises(InputError, match=r"\+1 or -1"):
        load(ok, bias_sign=2)
    with pytest.raises(InputError, match="positive"):
        load(ok, temperature_K=-1)
    csv = tmp_path / "bad.csv"
    csv.write_text("voltage,current\n1,2\n")
    with pytest.raises(InputError, match="bias_mV"):
        load(csv)


_JUNK = st.sampled_from(
    ["", "abc", "nan", "inf", "-inf", "1e999", "1e300", "-3e38", "1,5", "--", "E", "1.0.0", "\x00", "[DATA]", "\t"]
)


@st.composite
def mutated_dat(draw):
    lines = small_dat_text().split("\r\n")
    operations = st.sampled_from(["delete", "duplicate", "corrupt", "truncate", "swap"])
    for op in draw(st.lists(operations, min_size=1, max_size=3)):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "corrupt":
            cells = lines[i].split("\t")
            k = draw(st.integers(0, len(cells) - 1))
            cells[k] = draw(_JUNK | st.text(st.characters(exclude_categories=("Cs",)), max_size=6))
            lines[i] = "\t".join(cells)
        else:
            text = "\r\n".join(lines)
            lines = text[: draw(st.integers(0, len(text)))].split("\r\n")
    return "\r\n".join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated_dat(), direction=st.sampled_from(["fwd", "both"]))
def test_mutated_dat_raises_only_input_error(text, direction):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.dat"
        path.write_bytes(text.encode("utf-8"))
        calls = (lambda: load(path, direction=direction), lambda: describe(path), lambda: load(path, normalize=True))
        for call in calls:
            try:
                result = call()
            except InputError:
                continue
            if isinstance(result, Spectrum):
                assert np.all(np.isfinite(result.didv)) and np.all(np.diff(result.bias_mV) > 0)
            else:
                json.dumps(result)


# --- describe, info and the data options --------------------------------------------------------------------------


def _parser():
    parser = argparse.ArgumentParser(prog="stsbayes")
    add_info_command(parser.add_subparsers(dest="command"))
    return parser


def test_describe_is_json_and_lists_channels_sweeps_directions(external):
    info = describe(external[0])
    assert json.loads(json.dumps(info)) == info
    assert info["format"] == "nanonis-dat" and info["directions"] == ["fwd", "bwd"]
    assert info["sweeps"] == {"fwd": [1, 2, 3], "bwd": [1, 2, 3]} and info["n_sweeps"] == 3
    names = {c["name"] for c in info["channels"]}
    assert {"Current (A)", "Input 3 (V)", "Input 4 (V)"} <= names
    assert info["selected"]["channel"] == "Input 3 (V)" and info["metadata"]["temperature_K"] == 0.08
    assert info["missing"] == []


def test_info_command_prints_json_and_summary(external, capsys):
    args = _parser().parse_args(["info", str(external[0]), "--json", "--direction", "both"])
    assert args.func(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["selected"]["direction"] == "both"
    args = _parser().parse_args(["info", str(external[0]), "--temperature", "0.3"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "Input 3 (V)" in out and "0.3 K (flag)" in out and "calibration" in out
    bad = _parser().parse_args(["info", str(external[0]), "--channel", "nope"])
    with pytest.raises(InputError, match="not in the file"):
        bad.func(bad)


def test_data_options(external):
    parser = argparse.ArgumentParser()
    add_data_options(parser)
    args = parser.parse_args(["--bias-sign", "-1", "--modulation-rms", "0.1", "--direction", "bwd", "--normalize"])
    assert args.bias_sign == -1 and args.modulation_rms == 0.1 and not args.fit_modulation
    s = load_from_args(external[0], args)
    assert s.direction == "bwd" and s.units == "normalised" and s.metadata["bias_sign"] == -1
    assert s.metadata["modulation"] == {"kind": "rms", "value_mV": 0.1, "source": "flag"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--modulation-rms", "0.1", "--modulation-peak", "0.1"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--bias-sign", "2"])
    assert parser.parse_args([]).direction == "fwd" and parser.parse_args([]).bias_sign == 1


# --- atomic writes ------------------------------------------------------------------------------------------------


def test_atomic_writes_leave_old_contents_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and not tmp.exists()
        tmp.write_text("new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(InputError, match="does not exist"):
        atomic_write_text(tmp_path / "missing" / "x.txt", "x")
