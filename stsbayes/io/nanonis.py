"""Nanonis bias spectroscopy ``.dat`` files: reader and writer (``.3ds`` grids live in :mod:`stsbayes.io.grid`).

Format (see shared/design/nanonis.md): header lines ``Key<TAB>Value<TAB>`` with ``>`` separating groups (keys may
repeat, values may be empty, a comment may run over several lines), a line ``[DATA]``, a tab-separated line of
column names, then rows of numbers in engineering notation (``2.69865E-3``). Lines may end in CRLF.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from stsbayes.errors import InputError
from stsbayes.io.atomic import atomic_write_text
from stsbayes.io.channels import build_spectrum, cumulative_trapezoid
from stsbayes.io.metadata import number, resolve_temperature_and_modulation
from stsbayes.io.spectrum import Spectrum

# Header keys of the setpoint, the lock-in and the position (values in SI units: V, A, m).
SETPOINT_BIAS = "Bias>Bias (V)"
SETPOINT_CURRENT = "Current>Current (A)"
LOCKIN_AMPLITUDE = "Lock-in>Amplitude"
N_SWEEPS = "Bias Spectroscopy>Number of sweeps"
_STSBAYES_UNITS = re.compile(r"\bunits\s*=\s*(uS|normalised)\b")


@dataclass
class DatFile:
    """A parsed ``.dat``: header entries in file order, column names, numbers, and file line of each row."""

    path: Path
    entries: list[tuple[str, str]]
    headers: list[str]
    data: np.ndarray  # (rows, columns)
    lines: list[int]  # 1-based file line of each data row

    def first(self, key: str) -> str | None:
        return next((value for k, value in self.entries if k == key), None)

    @property
    def comments(self) -> list[str]:
        return [value for key, value in self.entries if key.lower().startswith("comment") and value]

    def column(self, header: str) -> np.ndarray:
        return self.data[:, self.headers.index(header)]

    def where(self, row: int) -> str:
        return f"line {self.lines[row]}"


def read_text(path: Path, kind: str = "Nanonis .dat") -> str:
    """File contents as text; refuses empty and binary files with a sentence saying what to do."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}; check the path and permissions") from None
    if not raw.strip():
        raise InputError(f"{path} is empty: the export did not finish; export the spectrum again")
    head = raw[:65536]
    controls = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 12, 13))
    if b"\x00" in head or controls > 0.01 * len(head):
        hint = " (it looks like a .3ds grid: give it the .3ds extension)" if b":HEADER_END:" in head else ""
        raise InputError(
            f"{path} is a binary file, not a text {kind} file{hint}: give the original text export, or a CSV "
            "with bias_mV,didv columns"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # Nanonis on Windows writes µ and ° in Windows-1252/Latin-1


def parse_dat(path) -> DatFile:
    """Parse the header and the numeric table of a Nanonis ``.dat`` (no interpretation of channels yet)."""
    path = Path(path)
    lines = read_text(path).splitlines()
    entries: list[tuple[str, str]] = []
    data_line = None
    for i, line in enumerate(lines):
        if line.strip() == "[DATA]":
            data_line = i
            break
        if not line.strip():
            continue
        if "\t" in line:
            key, _, rest = line.partition("\t")
            entries.append((key.strip(), rest.strip("\t ").strip()))
        elif entries:  # a comment typed over several lines: the continuation has no tab
            key, value = entries[-1]
            entries[-1] = (key, f"{value}\n{line.strip()}")
        else:
            entries.append((line.strip(), ""))
    if data_line is None:
        raise InputError(
            f"{path.name} has no [DATA] line: it is not a Nanonis bias spectroscopy .dat (or the export was cut "
            "short); export the spectrum again, or give a CSV with bias_mV,didv columns"
        )
    rest = [(i, line) for i, line in enumerate(lines[data_line + 1 :], start=data_line + 2) if line.strip()]
    if not rest:
        raise InputError(f"{path.name} has no column names after [DATA]: the export was cut short; export it again")
    headers = [name.strip() for name in rest[0][1].rstrip().split("\t")]
    if any(not name for name in headers):
        raise InputError(f"the column line of {path.name} (line {rest[0][0]}) has an empty column name: re-export it")
    duplicated = sorted({name for name in headers if headers.count(name) > 1})
    if duplicated:
        raise InputError(
            f"column {duplicated[0]} appears twice in {path.name}: the column line is damaged; re-export it"
        )
    rows, row_lines = [], []
    for line_no, line in rest[1:]:
        cells = line.rstrip().split("\t")
        if len(cells) != len(headers):
            raise InputError(
                f"line {line_no} of {path.name} has {len(cells)} values but there are {len(headers)} columns: the "
                f"file looks truncated or edited; re-export it, or delete line {line_no}"
            )
        try:
            rows.append([float(cell) for cell in cells])
        except ValueError:
            k = next(k for k, cell in enumerate(cells) if not _is_float(cell))
            raise InputError(
                f"line {line_no} of {path.name}, column {headers[k]}: '{cells[k]}' is not a number; fix or delete "
                "that line, or re-export the file"
            ) from None
        row_lines.append(line_no)
    if len(rows) < 2:
        raise InputError(f"{path.name} has {len(rows)} data row(s) after the column names: a spectrum needs at least 2")
    return DatFile(path, entries, headers, np.asarray(rows, dtype=float), row_lines)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def instrument_metadata(first, keys, comments: list[str], overrides: dict, source_file: str) -> dict:
    """Metadata from Nanonis header keys (shared by .dat and .3ds): setpoint, G_set, temperature, modulation.

    ``first(key)`` returns a header value or None. Setpoint values are in the instrument's sign; the
    sample-bias mirror is applied with the data. The setpoint current is the Z controller's setpoint when it
    is a current (``Current>Current (A)`` is the current at the moment of saving, often with the feedback off).
    """
    assumed = []
    v_set = number(first(SETPOINT_BIAS))
    i_set, i_source = None, None
    z_setpoint = number(first("Z-Controller>Setpoint"))
    if (first("Z-Controller>Setpoint unit") or "").strip() == "A" and z_setpoint is not None:
        i_set, i_source = z_setpoint, "Z-Controller>Setpoint"
    elif number(first(SETPOINT_CURRENT)) is not None:
        i_set, i_source = number(first(SETPOINT_CURRENT)), SETPOINT_CURRENT
    v_mV = None if v_set is None else v_set * 1e3
    i_nA = None if i_set is None else i_set * 1e9
    g_set = None
    if v_mV and i_nA is not None:
        g_set = i_nA / v_mV  # nA / mV = µS
        if g_set <= 0:
            assumed.append(f"setpoint current {i_nA:g} nA and bias {v_mV:g} mV have opposite signs: G_set not computed")
            g_set = None

    t_header = None
    for key in keys:
        if re.search(r"temperature[^>]*\(K\)\s*$", key, re.IGNORECASE):
            value = number(first(key))
            if value is not None and value > 0:
                t_header = value
                break
    amplitude = number(first(LOCKIN_AMPLITUDE))
    status = (first("Lock-in>Lock-in status") or "").strip().upper()
    modulated = (first("Lock-in>Modulated signal") or "Bias").strip()
    if amplitude is not None and (status == "OFF" or "bias" not in modulated.lower()):
        assumed.append(
            f"Lock-in>Amplitude ignored: the internal lock-in was off or modulated {modulated}, not the bias"
        )
        amplitude = None
    resolved = resolve_temperature_and_modulation(
        comments, t_header, None if amplitude is None or amplitude <= 0 else amplitude * 1e3, overrides
    )
    position = [number(first(f"{axis} (m)")) for axis in ("X", "Y", "Z")]
    return {
        "source_file": source_file,
        "temperature_K": resolved["temperature_K"],
        "temperature_source": resolved["temperature_source"],
        "modulation": resolved["modulation"],
        "setpoint_bias_mV": v_mV,
        "setpoint_current_nA": i_nA,
        "setpoint_current_source": i_source,
        "g_set_uS": g_set,
        "position_m": position if any(p is not None for p in position) else None,
        "comments": list(comments),
        "assumed": assumed + resolved["assumed"],
    }


def stsbayes_units(comments: list[str]) -> str | None:
    """The units a stsbayes-written file states for its lock-in column (comment ``units=uS|normalised``)."""
    for comment in comments:
        match = _STSBAYES_UNITS.search(comment)
        if match:
            return match.group(1)
    return None


def spectrum_from_dat(dat: DatFile, overrides: dict) -> Spectrum:
    """Interpret a parsed ``.dat`` with checked overrides (see :func:`stsbayes.io.load`)."""
    keys = [key for key, _ in dat.entries]
    metadata = instrument_metadata(dat.first, keys, dat.comments, overrides, str(dat.path))
    n_header = number(dat.first(N_SWEEPS))
    spectrum = build_spectrum(
        table=dat.column,
        headers=dat.headers,
        where=dat.where,
        header_n_sweeps=int(n_header) if n_header and n_header >= 1 else None,
        metadata=metadata,
        overrides=overrides,
        lockin_units=stsbayes_units(dat.comments),
    )
    return spectrum.normalized() if overrides.get("normalize") else spectrum


def read_dat(path, overrides: dict) -> Spectrum:
    return spectrum_from_dat(parse_dat(path), overrides)


# --- writer ---------------------------------------------------------------------------------------------------


def eng(x: float, digits: int = 10) -> str:
    """Engineering notation as Nanonis writes it (exponent a multiple of 3): 2.6986500E-3, 785.12300E-3."""
    if x == 0:
        return "0E+0"
    mantissa, exponent = f"{x:.{digits - 1}E}".split("E")
    exponent = int(exponent)
    shift = exponent % 3
    sign = "-" if mantissa.startswith("-") else ""
    figures = mantissa.lstrip("-").replace(".", "")
    return f"{sign}{figures[: 1 + shift]}.{figures[1 + shift :]}E{exponent - shift:+d}"


def write_nanonis_dat(
    path,
    bias_mV,
    didv,
    *,
    units: str = "uS",
    temperature_K: float | None = None,
    modulation: dict | None = None,
    setpoint_bias_mV: float | None = None,
    setpoint_current_nA: float | None = None,
    comment: str | None = None,
) -> None:
    """Write a spectrum as a Nanonis bias spectroscopy ``.dat`` that :func:`stsbayes.io.load` reads back.

    bias_mV: sample bias (mV); didv: conductance in µS (``units="uS"``) or normalised (``units="normalised"``);
    temperature_K: bath temperature (K); modulation: ``{"kind": "rms"|"peak", "value_mV": float}``;
    setpoint_bias_mV: defaults to the bias of largest |V|; setpoint_current_nA: defaults to the written current
    at the setpoint bias, which needs that bias inside the sweep (a setpoint outside it, as in a G_N series recorded
    at V_set = 7 mV over ±1 mV, must give its current).

    Columns: ``Bias calc (V)``; ``Current (A)``, the integral of the conductance over bias (µS × mV = nA) with
    I(0 V) = 0, normalised data integrated as if g_n were 1 nS; ``LI Demod 1 X (A)``, the conductance in A per V
    of bias (siemens; normalised data as multiples of 1 nS), the convention stated by the comment
    ``units=uS|normalised`` that the reader honours. The header holds the setpoint (``Bias>Bias (V)``,
    ``Current>Current (A)``), ``Lock-in>Amplitude`` as the PEAK amplitude in V, and
    comments ``T=<mK>mK`` and ``Vac=<x>mVrms`` (or ``mVpk``) so the amplitude's kind survives a round trip.
    """
    bias = np.asarray(bias_mV, dtype=float)
    g = np.asarray(didv, dtype=float)
    if units not in ("uS", "normalised"):
        raise InputError(f"units '{units}' cannot be written to a Nanonis file: use 'uS' or 'normalised'")
    if bias.ndim != 1 or g.shape != bias.shape or bias.size < 2:
        raise InputError(f"bias and conductance must be 1-D of equal length >= 2, got {bias.shape} and {g.shape}")
    if not (np.all(np.isfinite(bias)) and np.all(np.isfinite(g))):
        raise InputError("bias or conductance holds NaN or infinite values: remove them before writing")
    step = np.diff(bias)
    if not (np.all(step > 0) or np.all(step < 0)):
        raise InputError("the bias must be strictly monotonic to be written as one Nanonis sweep")
    g_uS = g if units == "uS" else g * 1e-3  # normalised data as if g_n = 1 nS = 1e-3 µS
    order = np.argsort(bias)
    current_nA = np.empty_like(bias)
    current_nA[order] = cumulative_trapezoid(g_uS[order], bias[order])
    current_nA -= _integral_at_zero(bias[order], g_uS[order], current_nA[order])
    if setpoint_bias_mV is None:
        setpoint_bias_mV = float(bias[np.argmax(np.abs(bias))])
    if setpoint_current_nA is None:
        if not bias.min() <= setpoint_bias_mV <= bias.max():
            raise InputError(
                f"the setpoint bias {setpoint_bias_mV:g} mV lies outside the sweep ({bias.min():g} to "
                f"{bias.max():g} mV), so its current cannot be integrated from the data: give the setpoint current"
            )
        setpoint_current_nA = float(np.interp(setpoint_bias_mV, bias[order], current_nA[order]))
    elif not (math.isfinite(setpoint_current_nA) and setpoint_current_nA * setpoint_bias_mV > 0):
        raise InputError(
            f"the setpoint current {setpoint_current_nA:g} nA must be nonzero and of the sign of the setpoint bias "
            f"({setpoint_bias_mV:g} mV)"
        )

    comments = [
        f"written by stsbayes: LI Demod 1 X holds dI/dV in A per V of bias; units={units}"
        + ("; as if g_n = 1 nS" if units == "normalised" else "")
    ]
    if temperature_K is not None:
        comments.append(f"T={temperature_K * 1e3:.9g}mK")
    amplitude_peak_V = None
    if modulation is not None:
        kind, value = modulation.get("kind"), float(modulation.get("value_mV", math.nan))
        if kind not in ("rms", "peak", "unknown") or not (math.isfinite(value) and value > 0):
            raise InputError(f"modulation {modulation} needs kind rms|peak and a positive value_mV")
        suffix = {"rms": "rms", "peak": "pk", "unknown": ""}[kind]
        comments.append(f"Vac={value:.9g}mV{suffix}")
        if kind != "unknown":
            amplitude_peak_V = (value * math.sqrt(2.0) if kind == "rms" else value) * 1e-3
    if comment:
        comments += [line for line in str(comment).splitlines() if line.strip()]

    header = [
        ("Experiment", "bias spectroscopy"),
        ("Date", datetime.now().strftime("%d.%m.%Y %H:%M:%S")),
        ("User", ""),
    ]
    header += [(f"Comment{k:02d}", text.replace("\t", " ")) for k, text in enumerate(comments, start=1)]
    header += [
        (SETPOINT_BIAS, eng(setpoint_bias_mV * 1e-3)),
        (SETPOINT_CURRENT, eng(setpoint_current_nA * 1e-9)),
        ("Bias Spectroscopy>Sweep Start (V)", eng(bias[0] * 1e-3)),
        ("Bias Spectroscopy>Sweep End (V)", eng(bias[-1] * 1e-3)),
        ("Bias Spectroscopy>Num Pixel", str(bias.size)),
        ("Bias Spectroscopy>backward sweep", "FALSE"),
        (N_SWEEPS, "1"),
        ("Bias Spectroscopy>Channels", "Current (A);LI Demod 1 X (A)"),
        ("Bias Spectroscopy>Sweep mode", "Linear"),
    ]
    if amplitude_peak_V is not None:
        header += [
            ("Lock-in>Lock-in status", "ON"),
            ("Lock-in>Modulated signal", "Bias (V)"),
            (LOCKIN_AMPLITUDE, eng(amplitude_peak_V)),
        ]
    lines = [f"{key}\t{value}\t" for key, value in header]
    lines += ["", "[DATA]", "Bias calc (V)\tCurrent (A)\tLI Demod 1 X (A)"]
    lockin_A = g_uS * 1e-6  # µS -> S = A per V
    lines += [
        f"{eng(v * 1e-3)}\t{eng(i * 1e-9)}\t{eng(x)}" for v, i, x in zip(bias, current_nA, lockin_A, strict=True)
    ]
    atomic_write_text(path, "\r\n".join(lines) + "\r\n")


def _integral_at_zero(bias: np.ndarray, g: np.ndarray, cumulative: np.ndarray) -> float:
    """The cumulative integral's value at V = 0 (ascending bias), extending the end conductance outside."""
    if bias[0] <= 0 <= bias[-1]:
        return float(np.interp(0.0, bias, cumulative))
    if 0 < bias[0]:
        return float(cumulative[0] - g[0] * bias[0])
    return float(cumulative[-1] - g[-1] * bias[-1])
