"""Nanonis .3ds grids: big-endian float32 records, per-pixel bias, linear and MLS sweeps, aborted grids, x/y.

Each fixture grid is written here from known values in the real layout (header of key=value lines ending at
:HEADER_END:, then per pixel the parameters and Points values of each channel). A pixel's conductance encodes its
(ix, iy), so a swapped x/y or a wrong record order cannot pass.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.integrate import cumulative_trapezoid

from stsbayes.errors import InputError
from stsbayes.io import Grid, describe, load

CHANNELS = ["Current (A)", "LI Demod 1 X (A)"]
V_MOD = 1e-3  # V: the lock-in X is G · V_mod
MLS_LINE = (
    "Segment Start (V), Segment End (V), Settling (s), Integration (s), Steps (xn), Lockin, Init. Settling (s)="
    "-10E-3,-2E-3,1E-3,1E-3,5,0E+0,0E+0;-2E-3,2E-3,1E-3,1E-3,41,0E+0,0E+0;2E-3,10E-3,1E-3,1E-3,5,0E+0,0E+0"
)
MLS_BIAS_MV = np.concatenate([np.linspace(-10, -2, 5), np.linspace(-2, 2, 41)[1:], np.linspace(2, 10, 5)[1:]])


def conductance_uS(bias_mV, ix, iy):
    """Each pixel's own conductance: its level says where it is."""
    return (1.0 + ix + 10.0 * iy) * (1.0 + 0.01 * bias_mV**2)


def pixel_record(bias_mV, ix, iy, x_m, y_m):
    g = conductance_uS(bias_mV, ix, iy)
    current_A = cumulative_trapezoid(g, bias_mV, initial=0) * 1e-9
    lockin_A = g * 1e-6 * V_MOD
    params = [bias_mV[0] * 1e-3, bias_mV[-1] * 1e-3, x_m, y_m, 2e-9]
    return np.concatenate([params, current_A, lockin_A])


def uniform_records(nx, ny, bias_mV):
    """pixel_record for every pixel of a grid with one sweep, vectorised (a 256 x 256 grid in milliseconds)."""
    iy, ix = np.divmod(np.arange(nx * ny), nx)
    level = (1.0 + ix + 10.0 * iy)[:, None]
    shape = 1.0 + 0.01 * bias_mV**2
    ones = np.ones(ix.size)
    params = np.column_stack([ones * bias_mV[0] * 1e-3, ones * bias_mV[-1] * 1e-3, ix * 1e-9, iy * 1e-9, ones * 2e-9])
    current = level * cumulative_trapezoid(shape, bias_mV, initial=0) * 1e-9
    return np.hstack([params, current, level * shape * 1e-6 * V_MOD])


def write_3ds(path, *, nx, ny, bias_of, n_written=None, mls=False, extra_bytes=0, header_extra=(), records=None):
    """A grid whose pixels (ix, iy) sit at x = ix nm, y = iy nm, records row by row (x fastest)."""
    points = bias_of(0, 0).size
    header = [
        f'Grid dim="{nx} x {ny}"',
        "Grid settings=0.000000E+0;0.000000E+0;6.880776E-9;6.880776E-9;0.000000E+0",
        "Filetype=MLS" if mls else "Filetype=Linear",
        'Sweep Signal="Bias (V)"',
        'Fixed parameters="Sweep Start;Sweep End"',
        'Experiment parameters="X (m);Y (m);Z (m)"',
        "# Parameters (4 byte)=5",
        *([MLS_LINE] if mls else []),
        f"Experiment size (bytes)={points * len(CHANNELS) * 4}",
        f"Points={points}",
        f'Channels="{";".join(CHANNELS)}"',
        "Delay before measuring (s)=0.000000E+0",
        'Experiment="Grid Spectroscopy"',
        'Start time="28.08.2021 23:32:35"',
        'End time="01.09.2021 23:32:03"',
        "User=",
        'Comment="T=1.2K"',
        "Bias>Bias (V)=10E-3",
        "Current>Current (A)=100E-12",
        "Lock-in>Lock-in status=ON",
        'Lock-in>Modulated signal="Bias (V)"',
        "Lock-in>Amplitude=1E-3",
        *header_extra,
        ":HEADER_END:",
    ]
    if records is None:
        records = [pixel_record(bias_of(ix, iy), ix, iy, ix * 1e-9, iy * 1e-9) for iy in range(ny) for ix in range(nx)]
    records = records[: n_written if n_written is not None else nx * ny]
    data = np.concatenate(records).astype(">f4").tobytes() if len(records) else b""
    extra = np.arange(extra_bytes // 4 + 1, dtype=">f4").tobytes()[:extra_bytes]
    path.write_bytes(("\r\n".join(header) + "\r\n").encode("latin-1") + data + extra)
    return path


def linear_bias(ix, iy):
    # One pixel has its own sweep window: the bias axis must come from each pixel's parameters.
    return np.linspace(4, -4, 21) if (ix, iy) == (2, 1) else np.linspace(-5, 5, 21)


@pytest.fixture
def linear_grid(tmp_path):
    return write_3ds(tmp_path / "linear.3ds", nx=3, ny=2, bias_of=linear_bias)


def test_linear_grid_pixel_values_and_xy_placement(linear_grid):
    grid = load(linear_grid)
    assert isinstance(grid, Grid) and grid.shape == (3, 2) and not grid.missing.any()
    for ix in range(3):
        for iy in range(2):
            s = grid.pixel(ix, iy)
            bias = np.sort(linear_bias(ix, iy))
            np.testing.assert_allclose(s.bias_mV, bias, rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(s.didv, conductance_uS(bias, ix, iy), rtol=1e-5)
            assert s.units == "uS" and s.metadata["pixel"] == [ix, iy]
            assert s.metadata["position_m"][:2] == pytest.approx([ix * 1e-9, iy * 1e-9], rel=1e-6)
    assert grid.pixel(2, 1).bias_mV[0] == pytest.approx(-4.0)
    # The raw channel array is indexed [ix, iy] as well.
    lockin = grid.values("LI Demod 1 X (A)")
    assert lockin.shape == (3, 2, 21)
    np.testing.assert_allclose(lockin[1, 0, 10], conductance_uS(0.0, 1, 0) * 1e-6 * V_MOD, rtol=1e-6)
    np.testing.assert_allclose(lockin[0, 1, 10], conductance_uS(0.0, 0, 1) * 1e-6 * V_MOD, rtol=1e-6)


def test_grid_metadata_region_and_describe(linear_grid):
    grid = load(linear_grid, bias_sign=-1)
    s = grid.pixel(0, 0)
    assert s.metadata["temperature_K"] == pytest.approx(1.2)
    assert s.metadata["modulation"] == {"kind": "unknown", "value_mV": pytest.approx(1.0), "source": "header"}
    assert s.metadata["calibration"]["factor"] == pytest.approx(1e6 / V_MOD, rel=1e-5)
    assert s.metadata["setpoint_bias_mV"] == pytest.approx(-10.0)  # mirrored with bias_sign -1
    spectra = grid.region(slice(1, 3), slice(0, 2))
    assert [sp.metadata["pixel"] for sp in spectra] == [[1, 0], [2, 0], [1, 1], [2, 1]]
    info = describe(linear_grid)
    assert json.loads(json.dumps(info))["shape"] == [3, 2]
    assert info["sweep"] == "linear" and info["missing_pixels"] == 0
    assert {c["name"] for c in info["channels"]} == {"Current (A)", "LI Demod 1 X (A)"}


def test_aborted_mls_grid_marks_missing_pixels(tmp_path):
    path = write_3ds(
        tmp_path / "mls.3ds", nx=4, ny=3, bias_of=lambda ix, iy: MLS_BIAS_MV, n_written=5, mls=True, extra_bytes=40
    )
    grid = load(path)
    assert grid.points == 49 and grid.n_measured == 5
    expected_missing = np.ones((4, 3), dtype=bool)
    expected_missing[:, 0] = False  # the first row, x = 0..3
    expected_missing[0, 1] = False  # then the first pixel of the second row
    np.testing.assert_array_equal(grid.missing, expected_missing)
    values = grid.values("Current (A)")
    assert np.isnan(values[grid.missing]).all() and np.isfinite(values[~grid.missing]).all()
    s = grid.pixel(0, 1)
    np.testing.assert_allclose(s.bias_mV, MLS_BIAS_MV, rtol=1e-6, atol=1e-9)
    steps = np.diff(s.bias_mV)
    assert steps.max() == pytest.approx(2.0, rel=1e-5) and steps.min() == pytest.approx(0.1, rel=1e-4)
    np.testing.assert_allclose(s.didv, conductance_uS(MLS_BIAS_MV, 0, 1), rtol=1e-5)
    with pytest.raises(InputError, match=r"pixel \(1, 1\) was not measured.*5 of 12"):
        grid.pixel(1, 1)
    assert len(grid.region(slice(None), slice(None))) == 5
    info = describe(path)
    assert info["sweep"] == "MLS" and info["missing_pixels"] == 7
    assert any("aborted" in note for note in info["metadata"]["assumed"])


def test_large_grid_is_memory_mapped(tmp_path):
    bias = np.linspace(-2, 2, 8)
    path = write_3ds(
        tmp_path / "big.3ds", nx=256, ny=256, bias_of=lambda ix, iy: bias, records=uniform_records(256, 256, bias)
    )
    grid = load(path)
    assert isinstance(grid._data, np.memmap) and grid.shape == (256, 256)
    s = grid.pixel(255, 254)
    np.testing.assert_allclose(s.didv, conductance_uS(s.bias_mV, 255, 254), rtol=1e-5)
    assert len(grid.region(slice(10, 13), slice(200, 203))) == 9


def test_bad_grids(tmp_path):
    with pytest.raises(InputError, match="ends before its first pixel"):
        load(write_3ds(tmp_path / "none.3ds", nx=2, ny=2, bias_of=linear_bias, n_written=0, extra_bytes=12))
    good = write_3ds(tmp_path / "good.3ds", nx=2, ny=2, bias_of=linear_bias).read_bytes()
    cut = tmp_path / "cut.3ds"
    cut.write_bytes(good[: good.index(b"Channels")])
    with pytest.raises(InputError, match="no :HEADER_END:"):
        load(cut)
    lacking = tmp_path / "lacking.3ds"
    lacking.write_bytes(good.replace(b"Points=21", b"Pts=21"))
    with pytest.raises(InputError, match="lacks or garbles Points"):
        load(lacking)
    empty = tmp_path / "empty.3ds"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load(empty)
    wrong_mls = write_3ds(
        tmp_path / "mls.3ds", nx=1, ny=1, bias_of=lambda ix, iy: np.linspace(-1, 1, 7), mls=True
    )
    with pytest.raises(InputError, match="MLS segments give 49"):
        load(wrong_mls)
    grid = load(tmp_path / "good.3ds")
    with pytest.raises(InputError, match="outside"):
        grid.pixel(2, 0)
    with pytest.raises(InputError, match="available"):
        grid.values("Input 3 (V)")


def test_pixel_written_as_nan_counts_as_not_measured(tmp_path):
    bias = np.linspace(-2, 2, 9)
    records = uniform_records(2, 2, bias)
    records[3, 5:] = np.nan  # pixel (1, 1): parameters written, no data
    grid = load(write_3ds(tmp_path / "nan.3ds", nx=2, ny=2, bias_of=lambda ix, iy: bias, records=records))
    with pytest.raises(InputError, match=r"pixel \(1, 1\) holds no data"):
        grid.pixel(1, 1)
    assert [s.metadata["pixel"] for s in grid.region(slice(None), slice(None))] == [[0, 0], [1, 0], [0, 1]]
    assert np.isnan(grid.values("LI Demod 1 X (A)")[1, 1]).all()
