"""The entry points: :func:`load` (a file → Spectrum or Grid) and :func:`describe` (what a file holds)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from stsbayes.errors import InputError
from stsbayes.io.channels import Channel, find_bias_channel, group_channels
from stsbayes.io.csvio import read_csv
from stsbayes.io.grid import Grid, read_3ds
from stsbayes.io.metadata import check_overrides
from stsbayes.io.nanonis import parse_dat, spectrum_from_dat
from stsbayes.io.spectrum import Spectrum

TEXT_TABLES = (".csv", ".tsv", ".txt")


def _existing(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist: check the path")
    if not path.is_file():
        raise InputError(f"{path} is not a file: give a .dat, .3ds, .csv or .tsv file")
    return path


def _unknown_type(path: Path) -> InputError:
    return InputError(
        f"{path.name}: unknown file type '{path.suffix}'; stsbayes reads Nanonis .dat spectra, .3ds grids, and "
        "CSV/TSV (.csv, .tsv, .txt) with bias_mV,didv columns; export or rename the file accordingly"
    )


def load(path, **overrides) -> Spectrum | Grid:
    """Read a data file: ``.dat`` → Spectrum, ``.3ds`` → Grid, ``.csv``/``.tsv``/``.txt`` → Spectrum.

    Overrides (all optional): ``channel`` (a name listed by :func:`describe`), ``direction`` ("fwd", "bwd" or
    "both"), ``bias_sign`` (+1, or -1 when the bias was applied to the tip), ``temperature_K`` (K),
    ``modulation_rms`` or ``modulation_peak`` (mV, not both), ``normalize`` (divide by the normal-state
    conductance of the outer 20 % of the bias window). Metadata found in the file is used unless overridden.
    Bad input raises :class:`stsbayes.errors.InputError` with a sentence saying what to do.
    """
    checked = check_overrides(overrides)
    path = _existing(path)
    suffix = path.suffix.lower()
    if suffix == ".dat":
        return spectrum_from_dat(parse_dat(path), checked)
    if suffix == ".3ds":
        return read_3ds(path, checked)
    if suffix in TEXT_TABLES:
        return read_csv(path, checked)
    raise _unknown_type(path)


def jsonable(value):
    """Plain JSON types: numpy scalars and arrays to numbers and lists, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.generic,)):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _channel_summary(channel: Channel) -> dict:
    return {
        "name": channel.name,
        "unit": channel.unit,
        "directions": channel.directions(),
        "sweeps": {d: channel.sweeps(d) for d in channel.directions()},
        "average": {d: channel.has_average(d) for d in channel.directions()},
    }


def _what_is_missing(spectrum: Spectrum) -> list[str]:
    meta = spectrum.metadata
    missing = []
    if meta["temperature_K"] is None:
        missing.append("bath temperature: give --temperature (K)")
    if meta["modulation"] is None:
        missing.append("modulation amplitude: give --modulation-rms or --modulation-peak (mV)")
    elif meta["modulation"]["kind"] == "unknown":
        missing.append("modulation kind (rms or peak): give --modulation-rms or --modulation-peak (mV)")
    if meta["g_set_uS"] is None:
        missing.append("setpoint conductance G_set (setpoint bias or current absent or zero)")
    if spectrum.sigma is None:
        missing.append("per-point sigma (no individual sweeps recorded): the noise level will be fitted")
    if spectrum.units == "arb":
        missing.append("conductance units (not calibrated): g_n is fitted in arbitrary units")
    if meta["position_m"] is None:
        missing.append("tip position")
    return missing


def _spectrum_summary(spectrum: Spectrum) -> dict:
    bias = spectrum.bias_mV
    return {
        "channel": spectrum.metadata["channel"],
        "direction": spectrum.direction,
        "units": spectrum.units,
        "n_points": int(bias.size),
        "bias_range_mV": [float(bias[0]), float(bias[-1])],
        "n_sweeps": spectrum.n_sweeps,
        "has_sigma": spectrum.sigma is not None,
    }


def describe(path, **overrides) -> dict:
    """What a data file holds, as a JSON-serialisable dict: format, channels with their sweeps and directions,
    the shape of a grid, the spectrum that :func:`load` would select (for a grid, its first pixel), the metadata
    found, what is missing, and what was assumed. Overrides as for :func:`load`.

    A problem with the default channel choice is reported under ``problem`` rather than raised, so that `info`
    can still list what is there; a problem with an explicitly requested channel or direction is raised.
    """
    explicit = "channel" in overrides or overrides.get("direction") not in (None, "fwd")
    checked = check_overrides(overrides)
    path = _existing(path)
    suffix = path.suffix.lower()
    out: dict = {"file": str(path)}

    def attempt(make):
        try:
            return make()
        except InputError as error:
            if explicit:
                raise
            out["problem"] = str(error)
            return None

    if suffix == ".dat":
        dat = parse_dat(path)
        channels = group_channels(dat.headers)
        bias = attempt(lambda: find_bias_channel(channels))
        out.update(format="nanonis-dat", rows=int(dat.data.shape[0]), bias_column=bias.name if bias else None)
        out["channels"] = [_channel_summary(ch) for ch in channels.values()]
        spectrum = attempt(lambda: spectrum_from_dat(dat, checked))
    elif suffix == ".3ds":
        grid = read_3ds(path, checked)
        out.update(
            format="nanonis-3ds",
            shape=list(grid.shape),
            pixel_order="Grid dim is nx x ny; records run row by row with x fastest: pixel (ix, iy) = record iy*nx+ix",
            points=grid.points,
            sweep="MLS" if grid.mls is not None else "linear",
            measured_pixels=int(grid.n_measured),
            missing_pixels=int(grid.missing.sum()),
            parameters=grid.parameter_names,
        )
        out["channels"] = [_channel_summary(ch) for ch in group_channels(grid.channels).values()]
        spectrum = attempt(lambda: grid.pixel(0, 0))
        out["spectrum_of"] = "pixel (0, 0)"
    elif suffix in TEXT_TABLES:
        spectrum = read_csv(path, checked)
        out.update(format="csv", channels=[{"name": spectrum.metadata["channel"], "directions": ["fwd"]}])
    else:
        raise _unknown_type(path)

    selected = next((c for c in out["channels"] if spectrum and c["name"] == spectrum.metadata["channel"]), None)
    every_direction = sorted({d for c in out["channels"] for d in c["directions"]})
    out["directions"] = selected["directions"] if selected else every_direction
    out["sweeps"] = selected.get("sweeps", {}) if selected else {}
    if spectrum is not None:
        out["selected"] = _spectrum_summary(spectrum)
        out["n_sweeps"] = spectrum.n_sweeps
        out["metadata"] = spectrum.metadata
        out["missing"] = _what_is_missing(spectrum)
    return jsonable(out)
