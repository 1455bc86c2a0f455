"""Nanonis grid spectroscopy ``.3ds`` files, read lazily.

Layout: an ASCII header of ``key=value`` lines ending at ``:HEADER_END:``, then big-endian float32. Each pixel is
``# Parameters (4 byte)`` parameters (the fixed ones first: Sweep Start, Sweep End, in V; then the experiment
parameters: X (m), Y (m), Z (m), ...) followed by ``Points`` values of each channel in turn.

Orientation (our choice, documented and tested): ``Grid dim="nx x ny"``; pixels are stored row by row, x running
fastest, so pixel ``(ix, iy)`` is record ``iy * nx + ix``. Every array here is indexed ``[ix, iy]`` and
``Grid.shape == (nx, ny)``, matching ``Grid.pixel(ix, iy)``.

An aborted grid simply ends early: the pixels after the last complete record are *missing* (``Grid.missing``, NaN
in :meth:`Grid.values`), never zeros. The data are memory-mapped, so a 256 x 256 grid is never read whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stsbayes.errors import InputError
from stsbayes.io.channels import build_spectrum
from stsbayes.io.metadata import number
from stsbayes.io.nanonis import instrument_metadata
from stsbayes.io.spectrum import Spectrum

_END = b":HEADER_END:"
_MAX_HEADER = 1 << 20  # real headers are a few kB


def _parse_header(path: Path) -> tuple[list[tuple[str, str]], int]:
    try:
        with open(path, "rb") as handle:
            head = handle.read(_MAX_HEADER)
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}; check the path and permissions") from None
    if not head:
        raise InputError(f"{path} is empty: the grid recorded nothing; give a grid file that holds data")
    end = head.find(_END)
    if end < 0:
        raise InputError(
            f"{path.name} has no :HEADER_END: line: it is not a Nanonis .3ds grid (or its header is cut off); "
            "give the .3ds file as saved by Nanonis"
        )
    offset = end + len(_END)
    for newline in (b"\r\n", b"\n"):
        if head.startswith(newline, offset):
            offset += len(newline)
            break
    entries: list[tuple[str, str]] = []
    for line in head[:end].decode("latin-1").splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            entries.append((key.strip(), value.strip().strip('"')))
        elif line.strip() and entries and entries[-1][0].lower().startswith("comment"):  # a comment over lines
            key, value = entries[-1]
            entries[-1] = (key, f"{value}\n{line.strip()}")
    return entries, offset


def _mls_sweep(text: str, points: int) -> np.ndarray:
    """Bias (V) of a multi-line-segment sweep: each segment start,end,settling,integration,steps[,...] is
    ``steps`` points from start to end inclusive; a segment that starts where the previous ended shares that point."""
    bias: list[float] = []
    try:
        segments = [[float(x) for x in part.split(",")[:5]] for part in text.split(";") if part.strip()]
        for start, stop, _, _, steps in segments:
            ramp = np.linspace(start, stop, int(steps)).tolist()
            if bias and np.isclose(ramp[0], bias[-1], rtol=0, atol=1e-12):
                ramp = ramp[1:]
            bias += ramp
    except ValueError:
        raise InputError(f"the MLS segment line '{text}' cannot be read: re-save the grid from Nanonis") from None
    if len(bias) != points:
        raise InputError(
            f"the MLS segments give {len(bias)} bias points but the header says Points={points}: the segment "
            "line does not describe this grid; re-save it from Nanonis"
        )
    return np.asarray(bias)


class Grid:
    """A lazily read ``.3ds`` grid; pixels and regions come out as Spectrum objects (see the module docstring)."""

    def __init__(self, path, overrides: dict):
        self.path = Path(path)
        self.overrides = dict(overrides)
        self.entries, offset = _parse_header(self.path)
        first = self.first
        dim = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", first("Grid dim") or "")
        points = number(first("Points"))
        n_params = number(first("# Parameters (4 byte)"))
        channels = [c.strip() for c in (first("Channels") or "").split(";") if c.strip()]
        fixed = [p.strip() for p in (first("Fixed parameters") or "").split(";") if p.strip()]
        missing_keys = [
            key
            for key, ok in (
                ("Grid dim", dim),
                ("Points", points and points >= 2),
                ("Channels", channels),
                ("# Parameters (4 byte)", n_params is not None and n_params >= len(fixed)),
                ("Fixed parameters with Sweep Start;Sweep End", "Sweep Start" in fixed and "Sweep End" in fixed),
            )
            if not ok
        ]
        if missing_keys:
            raise InputError(
                f"the header of {self.path.name} lacks or garbles {', '.join(missing_keys)}: it is not a complete "
                "Nanonis .3ds header; re-save the grid from Nanonis"
            )
        signal = first("Sweep Signal") or "Bias (V)"
        if "bias" not in signal.lower():
            raise InputError(f"{self.path.name} sweeps {signal}, not the bias: only bias spectroscopy grids are read")
        self.bias_scale_V = 1e-3 if "(mV)" in signal else 1.0
        self.nx, self.ny = int(dim.group(1)), int(dim.group(2))
        self.points = int(points)
        self.channels = channels
        self.n_params = int(n_params)
        self.parameter_names = (fixed + [p.strip() for p in (first("Experiment parameters") or "").split(";")])[
            : self.n_params
        ]
        self._start, self._end = fixed.index("Sweep Start"), fixed.index("Sweep End")
        size = number(first("Experiment size (bytes)"))
        if size is not None and int(size) != 4 * self.points * len(channels):
            raise InputError(
                f"Experiment size {int(size)} bytes in {self.path.name} does not match Points={self.points} x "
                f"{len(channels)} channels x 4 bytes: the header is inconsistent; re-save the grid"
            )
        self.mls = None
        if (first("Filetype") or "").strip().upper() == "MLS":
            key = next((k for k, _ in self.entries if k.startswith("Segment Start")), None)
            if key is None:
                raise InputError(f"{self.path.name} is an MLS grid without its segment line: re-save it from Nanonis")
            self.mls = _mls_sweep(first(key), self.points)

        record = self.n_params + self.points * len(channels)  # float32 values per pixel
        available = (self.path.stat().st_size - offset) // 4
        self.n_measured = available // record
        if self.n_measured == 0:
            raise InputError(
                f"{self.path.name} ends before its first pixel is complete ({available} of {record} values): the "
                "grid recorded nothing usable; give a grid with at least one measured pixel"
            )
        if self.n_measured > self.nx * self.ny:
            raise InputError(
                f"{self.path.name} holds {self.n_measured} pixels but Grid dim says {self.nx} x {self.ny}: the "
                "header does not describe this data; re-save the grid"
            )
        self._data = np.memmap(self.path, dtype=">f4", mode="r", offset=offset, shape=(self.n_measured, record))
        index = np.arange(self.nx * self.ny).reshape(self.ny, self.nx).T  # [ix, iy] -> record
        self.missing = index >= self.n_measured
        comments = [value for key, value in self.entries if key.lower().startswith("comment") and value]
        self.metadata = instrument_metadata(
            first, [k for k, _ in self.entries], comments, self.overrides, str(self.path)
        )
        if self.n_measured < self.nx * self.ny:
            self.metadata["assumed"].append(
                f"the grid was aborted after {self.n_measured} of {self.nx * self.ny} pixels: the rest are missing"
            )

    def first(self, key: str) -> str | None:
        return next((value for k, value in self.entries if k == key), None)

    @property
    def shape(self) -> tuple[int, int]:
        """(nx, ny), the order of ``pixel(ix, iy)``."""
        return (self.nx, self.ny)

    def __repr__(self) -> str:
        return (
            f"Grid({self.nx} x {self.ny}, {self.points} points, {'MLS' if self.mls is not None else 'linear'} sweep, "
            f"{self.n_measured} measured, channels={self.channels})"
        )

    def _record(self, ix: int, iy: int) -> int:
        if not (0 <= ix < self.nx and 0 <= iy < self.ny):
            raise InputError(
                f"pixel ({ix}, {iy}) is outside the {self.nx} x {self.ny} grid: choose ix < {self.nx}, iy < {self.ny}"
            )
        if self.missing[ix, iy]:
            raise InputError(
                f"pixel ({ix}, {iy}) was not measured: the grid was aborted after {self.n_measured} of "
                f"{self.nx * self.ny} pixels; choose a measured pixel (Grid.missing is False)"
            )
        return iy * self.nx + ix

    def parameters(self, ix: int, iy: int) -> dict[str, float]:
        """The pixel's parameters by name (Sweep Start/End in V, X/Y/Z in m, ...)."""
        row = np.asarray(self._data[self._record(ix, iy), : self.n_params], dtype=float)
        return dict(zip(self.parameter_names, row.tolist()))

    def sweep_V(self, ix: int, iy: int) -> np.ndarray:
        """The pixel's bias in V, in recorded order, from its own Sweep Start/End (and the MLS segments)."""
        row = np.asarray(self._data[self._record(ix, iy), : self.n_params], dtype=float)
        start, end = row[self._start] * self.bias_scale_V, row[self._end] * self.bias_scale_V
        if self.mls is None:
            return np.linspace(start, end, self.points)
        span = self.mls[-1] - self.mls[0]
        if span == 0:
            raise InputError(f"the MLS segments of {self.path.name} start and end at the same bias: re-save the grid")
        # The segments give the shape of the sweep; the pixel's own Sweep Start/End place it.
        return start + (self.mls - self.mls[0]) / span * (end - start)

    def pixel(self, ix: int, iy: int) -> Spectrum:
        """The spectrum at pixel (ix, iy), with the data options given to :func:`stsbayes.io.load`."""
        p = self._record(ix, iy)
        record = self._data[p]
        if np.all(np.isnan(record[self.n_params :])):
            raise InputError(f"pixel ({ix}, {iy}) holds no data (all NaN): it was not measured; choose another pixel")

        def table(header: str) -> np.ndarray:
            k = self.channels.index(header)
            start = self.n_params + k * self.points
            return np.asarray(record[start : start + self.points], dtype=float)

        metadata = dict(self.metadata, pixel=[ix, iy])
        params = self.parameters(ix, iy)
        position = [params.get(f"{axis} (m)") for axis in ("X", "Y", "Z")]
        if any(v is not None for v in position):
            metadata["position_m"] = position
        spectrum = build_spectrum(
            table=table,
            headers=self.channels,
            where=lambda i: f"point {i} of pixel ({ix}, {iy})",
            header_n_sweeps=None,
            metadata=metadata,
            overrides=self.overrides,
            bias_V=self.sweep_V(ix, iy),
        )
        return spectrum.normalized() if self.overrides.get("normalize") else spectrum

    def iter_region(self, xs: slice, ys: slice) -> Iterator[Spectrum]:
        """Spectra of the measured pixels in ``[xs, ys]``, row by row (iy outer, ix inner); missing pixels and
        pixels written as all-NaN are skipped."""
        for iy in range(*ys.indices(self.ny)):
            for ix in range(*xs.indices(self.nx)):
                if not self.missing[ix, iy] and not np.all(np.isnan(self._data[iy * self.nx + ix, self.n_params :])):
                    yield self.pixel(ix, iy)

    def region(self, xs: slice, ys: slice) -> list[Spectrum]:
        """:meth:`iter_region` as a list (each spectrum's ``metadata["pixel"]`` says where it came from)."""
        return list(self.iter_region(xs, ys))

    def values(self, channel: str) -> np.ndarray:
        """One channel column for every pixel, raw (instrument units and sweep order), shape (nx, ny, Points);
        NaN for missing pixels. This reads that channel of the whole grid into memory."""
        if channel not in self.channels:
            raise InputError(f"channel '{channel}' is not in the grid; available: {', '.join(self.channels)}")
        k = self.channels.index(channel)
        start = self.n_params + k * self.points
        out = np.full((self.ny * self.nx, self.points), np.nan, dtype=np.float32)
        out[: self.n_measured] = self._data[:, start : start + self.points]
        return out.reshape(self.ny, self.nx, self.points).transpose(1, 0, 2)


def read_3ds(path, overrides: dict) -> Grid:
    return Grid(path, overrides)
