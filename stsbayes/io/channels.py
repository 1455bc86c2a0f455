"""Nanonis channel columns → one Spectrum: the column grammar, the channel choice, sweep averaging, the
calibration of an arbitrary-unit lock-in channel against the current, and the sample-bias convention.

Shared by the ``.dat`` reader (one table per file) and the ``.3ds`` reader (one table per pixel).

A column name is ``name [00001|AVG] [bwd] (unit)``: ``Input 3 [00002] [bwd] (V)`` is sweep 2 of the backward
direction of the channel ``Input 3 (V)``. Sweeps and directions are dimensions of one channel, not channels.
Nanonis stores a backward sweep on the same rows as the forward one, so both share the bias column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stsbayes.errors import InputError
from stsbayes.io.spectrum import Spectrum

# Units a conductance channel can carry directly, as factors to µS.
_CONDUCTANCE_UNITS = {"S": 1e6, "mS": 1e3, "uS": 1.0, "µS": 1.0, "nS": 1e-3, "A/V": 1e6}
# Factor from a lock-in column in A to the stated units, for files written by stsbayes (comment "units=...").
# Convention of write_nanonis_dat: the lock-in X column holds dI/dV in A per V of bias, i.e. siemens.
STSBAYES_LOCKIN_SCALE = {"uS": 1e6, "normalised": 1e9}
# A calibration worse than this is reported in `assumed`: the lock-in and the current disagree in shape.
_POOR_CALIBRATION_R2 = 0.95
_BIAS_NAMES = ("Bias calc", "Bias")
# No measured value in SI units (V, A) comes near this; larger numbers are damage, and would overflow sums.
_LARGEST = 1e15


@dataclass(frozen=True)
class Column:
    header: str  # the column name as written, "Input 3 [00002] [bwd] (V)"
    channel: str  # the channel it belongs to, "Input 3 (V)"
    base: str  # "Input 3"
    unit: str  # "V"
    sweep: int | str | None  # 2, "AVG", or None for an untagged column
    backward: bool


_UNIT = re.compile(r"^(?P<body>.*?)\s*(?:\((?P<unit>[^()]*)\))?\s*$", re.DOTALL)
_TAG = re.compile(r"\s*\[(?P<tag>[^\[\]]*)\]\s*$")


def parse_column(header: str) -> Column:
    """Split a column name into channel, sweep and direction."""
    match = _UNIT.match(header.strip())
    body, unit = match.group("body"), (match.group("unit") or "").strip()
    tags = []
    while (tag := _TAG.search(body)) is not None:
        tags.insert(0, tag.group("tag").strip())
        body = body[: tag.start()]
    sweep, backward, other = None, False, []
    for tag in tags:
        if tag.isdigit():
            sweep = int(tag)
        elif tag.upper() == "AVG":
            sweep = "AVG"
        elif tag.lower() == "bwd":
            backward = True
        else:  # e.g. [filt]: part of the channel's identity
            other.append(f"[{tag}]")
    base = " ".join([body.strip(), *other])
    channel = f"{base} ({unit})" if unit else base
    return Column(header.strip(), channel, base, unit, sweep, backward)


@dataclass
class Channel:
    name: str
    unit: str
    columns: dict = field(default_factory=dict)  # (direction, sweep) -> column header

    def directions(self) -> list[str]:
        return [d for d in ("fwd", "bwd") if any(key[0] == d for key in self.columns)]

    def sweeps(self, direction: str) -> list[int]:
        return sorted(s for (d, s) in self.columns if d == direction and isinstance(s, int))

    def has_average(self, direction: str) -> bool:
        return (direction, "AVG") in self.columns


def group_channels(headers: list[str]) -> dict[str, Channel]:
    """Channels by name (``"Input 3 (V)"``), each mapping (direction, sweep) to its column header."""
    channels: dict[str, Channel] = {}
    for header in headers:
        column = parse_column(header)
        channel = channels.setdefault(column.channel, Channel(column.channel, column.unit))
        key = ("bwd" if column.backward else "fwd", column.sweep)
        if key in channel.columns:
            raise InputError(
                f"columns '{channel.columns[key]}' and '{header}' are the same sweep of the same channel: "
                "the column line is damaged; re-export the file"
            )
        channel.columns[key] = header
    return channels


def find_bias_channel(channels: dict[str, Channel]) -> Channel:
    """``Bias calc (V)`` (the commanded bias, exact) before ``Bias (V)`` (a measured one)."""
    for base in _BIAS_NAMES:
        for channel in channels.values():
            if parse_column(channel.name).base == base and channel.unit in ("V", "mV"):
                return channel
    raise InputError(
        f"no bias column (Bias calc (V) or Bias (V)) among {list(channels)}: this is not a bias spectroscopy "
        "file; export a bias sweep, or a CSV with bias_mV,didv columns"
    )


def conductance_channels(channels: dict[str, Channel]) -> list[str]:
    """Channels that could hold dI/dV: everything except the bias and the current."""
    excluded = {parse_column(name).base for name in channels} & set(_BIAS_NAMES)
    return [
        name for name, ch in channels.items() if parse_column(name).base not in excluded and not _is_current(ch)
    ]


def _is_current(channel: Channel) -> bool:
    return parse_column(channel.name).base == "Current" and channel.unit == "A"


def choose_channel(channels: dict[str, Channel], requested: str | None, comments: list[str]) -> tuple[str, str | None]:
    """The dI/dV channel: the requested one, else LI Demod N X, LIX N omega, then an external lock-in's Input N.

    Returns the channel name and, when it was chosen by preference, a sentence saying so.
    """
    candidates = conductance_channels(channels)
    if requested is not None:
        return _match_channel(requested, channels, candidates), None
    if not candidates:
        raise InputError(
            f"no lock-in (dI/dV) channel among {list(channels)}: record dI/dV with a lock-in, or give --channel"
        )

    def numbered(pattern: str) -> list[str]:
        found = [(int(m.group(1)), name) for name in candidates if (m := re.fullmatch(pattern, name))]
        return [name for _, name in sorted(found)]

    internal = numbered(r"LI Demod (\d+) X \(A\)") + numbered(r"LIX (\d+) omega \(A\)")
    if internal:
        return internal[0], None
    inputs = numbered(r"Input (\d+) \(V\)")
    if inputs:
        # A comment such as "Input 3: X gain 1k" says which input carries the lock-in's X output.
        for comment in comments:
            for m in re.finditer(r"Input\s*(\d+)\s*[:=]\s*X\b", comment, re.IGNORECASE):
                named = f"Input {m.group(1)} (V)"
                if named in inputs:
                    return named, f"channel {named} taken as dI/dV: comment '{comment}' names it the lock-in X"
        return inputs[0], (
            f"channel {inputs[0]} taken as dI/dV (lowest-numbered input of {', '.join(inputs)}); "
            "give --channel to choose another"
        )
    raise InputError(
        f"no lock-in channel (LI Demod N X, LIX N omega or Input N) among {candidates}: give --channel with one of them"
    )


def _match_channel(requested: str, channels: dict[str, Channel], candidates: list[str]) -> str:
    def norm(text: str) -> str:
        return re.sub(r"\s+", " ", text.strip()).lower()

    wanted = norm(requested)
    parsed = parse_column(requested).channel  # a full column name such as "Input 3 [AVG] (V)" names its channel
    for name in candidates:
        if wanted in (norm(name), norm(parse_column(name).base)) or norm(parsed) == norm(name):
            return name
    if any(norm(name) == wanted or norm(parse_column(name).base) == wanted for name in channels):
        raise InputError(
            f"channel '{requested}' is the bias or the current, not a dI/dV channel: give --channel with one of "
            f"{', '.join(candidates) or '(none in this file)'}"
        )
    raise InputError(
        f"channel '{requested}' is not in the file; available: {', '.join(candidates) or '(none)'}: "
        "give --channel with one of them"
    )


def sweep_stack(table: Callable[[str], np.ndarray], channel: Channel, direction: str) -> tuple[np.ndarray, str]:
    """Values of one direction as (n_sweeps, n): the individual sweeps when recorded, else the average or the
    single untagged column. Returns the stack and its kind: "sweeps", "average" or "single"."""
    sweeps = channel.sweeps(direction)
    if sweeps:
        return np.stack([table(channel.columns[(direction, s)]) for s in sweeps]), "sweeps"
    if channel.has_average(direction):
        return table(channel.columns[(direction, "AVG")])[None, :], "average"
    if (direction, None) in channel.columns:
        return table(channel.columns[(direction, None)])[None, :], "single"
    raise InputError(f"channel {channel.name} has no {direction} sweep: use --direction {channel.directions()[0]}")


def check_bias(bias_mV: np.ndarray, column: str, where: Callable[[int], str]) -> None:
    """A sweep's bias must be finite and strictly monotonic (rising or falling)."""
    if bias_mV.size < 2:
        raise InputError(f"bias column {column} has {bias_mV.size} point(s): a spectrum needs at least 2")
    bad = np.flatnonzero(~(np.abs(bias_mV) < _LARGEST))
    if bad.size:
        raise InputError(f"bias column {column} holds {bias_mV[bad[0]]:g} at {where(bad[0])}: remove that row")
    step = np.diff(bias_mV)
    same = np.flatnonzero(step == 0)
    if same.size:
        i = same[0]
        raise InputError(
            f"bias {bias_mV[i]:g} mV repeats at {where(i)} and {where(i + 1)}: remove the duplicated row, "
            "or export each sweep separately"
        )
    rising = step[0] > 0
    wrong = np.flatnonzero(step < 0 if rising else step > 0)
    if wrong.size:
        i = wrong[0] + 1
        raise InputError(
            f"bias column {column} is not monotonic at {where(i)} ({bias_mV[i]:g} mV after {bias_mV[i - 1]:g} mV): "
            "is this a forward+backward sweep in one column? export the directions separately"
        )


def check_finite(values: np.ndarray, column: str, where: Callable[[int], str]) -> None:
    """Values must be finite and of a magnitude a measurement can have."""
    bad = np.flatnonzero(~(np.abs(values) < _LARGEST))
    if bad.size:
        raise InputError(
            f"column {column} holds {values[bad[0]]:g} at {where(bad[0])}: re-export the file without invalid "
            "points, or choose another channel with --channel"
        )


def cumulative_trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """∫ y dx from x[0] to each x, by the trapezoid rule (0 at the first point)."""
    steps = 0.5 * (y[..., 1:] + y[..., :-1]) * np.diff(x)
    return np.concatenate([np.zeros(y.shape[:-1] + (1,)), np.cumsum(steps, axis=-1)], axis=-1)


def calibrate_against_current(bias_mV: np.ndarray, signals: list[np.ndarray], currents_nA: list[np.ndarray]):
    """Scale of an arbitrary-unit lock-in signal, from ∫ dI/dV dV = I.

    Least squares for the factor s and one current offset c_d per sweep direction d:
    I_d(V) ≈ s ∫_{V_0}^{V} X_d dV' + c_d, with bias in mV and current in nA, so s is in µS per unit of X.
    The offsets c_d (reported as ``intercept_nA``: the current at the lowest bias) absorb the integration constant
    and the current amplifier's offset. Quality is r² of the fit.
    Returns None when the current carries no information (constant) or the fit is degenerate.
    """
    n_dir = len(signals)
    design = np.zeros((n_dir * bias_mV.size, 1 + n_dir))
    target = np.concatenate(currents_nA)
    for d, x in enumerate(signals):
        rows = slice(d * bias_mV.size, (d + 1) * bias_mV.size)
        design[rows, 0] = cumulative_trapezoid(x, bias_mV)
        design[rows, 1 + d] = 1.0
    total = float(np.sum((target - target.mean()) ** 2))
    if not (np.all(np.isfinite(design)) and total > 0 and np.any(design[:, 0] != 0)):
        return None
    coefficients, *_ = np.linalg.lstsq(design, target)
    residual = target - design @ coefficients
    quality = 1.0 - float(np.sum(residual**2)) / total
    factor = float(coefficients[0])
    if not (np.isfinite(factor) and factor != 0 and np.isfinite(quality)):
        return None
    return factor, [float(c) for c in coefficients[1:]], quality


def build_spectrum(
    *,
    table: Callable[[str], np.ndarray],
    headers: list[str],
    where: Callable[[int], str],
    header_n_sweeps: int | None,
    metadata: dict,
    overrides: dict,
    lockin_units: str | None = None,
    bias_V: np.ndarray | None = None,
) -> Spectrum:
    """One Spectrum from a table of named columns (the rows of a .dat, or one pixel of a .3ds).

    table(header) returns a column's values; ``where(i)`` names row i for error messages. The bias comes from
    the bias column, or from ``bias_V`` (a grid pixel's sweep). ``lockin_units`` is the unit stated by a
    stsbayes-written file for its A-valued lock-in column. ``metadata`` holds what the reader found (source,
    setpoint in the instrument's sign, temperature, modulation, ...); ``overrides`` are checked overrides.
    """
    channels = group_channels(headers)
    assumed = list(metadata.get("assumed", []))
    if bias_V is None:
        bias_channel = find_bias_channel(channels)
        bias_header = _first_column(bias_channel)
        bias_mV = table(bias_header) * (1e3 if bias_channel.unit == "V" else 1.0)
    else:
        bias_header = "sweep"
        bias_mV = np.asarray(bias_V, dtype=float) * 1e3
    check_bias(bias_mV, bias_header, where)

    name, note = choose_channel(channels, overrides.get("channel"), metadata.get("comments", []))
    if note:
        assumed.append(note)
    channel = channels[name]
    available = channel.directions()
    direction = overrides.get("direction", "fwd")
    wanted = ["fwd", "bwd"] if direction == "both" else [direction]
    for d in wanted:
        if d not in available:
            raise InputError(
                f"channel {name} has no {'backward' if d == 'bwd' else 'forward'} sweep in this file: "
                f"use --direction {available[0]}"
            )

    # Work in ascending instrument bias; the sample-bias mirror comes last.
    order = np.argsort(bias_mV)
    bias_asc = bias_mV[order]
    stacks, kinds = [], []
    for d in wanted:
        stack, kind = sweep_stack(table, channel, d)
        for k, column_values in enumerate(stack):
            check_finite(column_values, _stack_header(channel, d, kind, k), where)
        stacks.append(stack[:, order])
        kinds.append(kind)

    units, scale, calibration = _conductance_scale(
        channel, channels, table, wanted, order, bias_asc, stacks, lockin_units, where, assumed
    )
    if calibration is not None:
        calibration["channel"] = name

    counts = [s.shape[0] for s in stacks]
    n_sweeps = min(counts)
    if kinds[0] != "sweeps" and header_n_sweeps:
        n_sweeps = header_n_sweeps
    elif kinds[0] == "sweeps" and header_n_sweeps and header_n_sweeps != n_sweeps:
        assumed.append(
            f"header says {header_n_sweeps} sweeps but the file holds {n_sweeps} per direction: used the "
            f"{n_sweeps} recorded"
        )
    mean = np.stack([s.mean(axis=0) for s in stacks]) * scale
    sigma = None
    if all(k == "sweeps" for k in kinds) and min(counts) >= 2:
        sigma = np.stack([s.std(axis=0, ddof=1) / np.sqrt(s.shape[0]) for s in stacks]) * abs(scale)
    sweeps = np.stack(stacks) * scale if all(k == "sweeps" for k in kinds) and len(set(counts)) == 1 else None

    sign = overrides.get("bias_sign", 1)
    bias_out = bias_asc
    if sign == -1:
        # The bias was applied to the tip: V_sample = -V_tip. dI/dV = d(-I)/d(-V) keeps its values; only the
        # axis mirrors, so reverse the points to keep it ascending.
        bias_out = -bias_asc[::-1]
        mean, sigma = mean[..., ::-1], (None if sigma is None else sigma[..., ::-1])
        sweeps = None if sweeps is None else sweeps[..., ::-1]
        assumed.append("bias applied to the tip (bias_sign -1): bias mirrored into the sample-bias convention")

    meta = dict(metadata)
    meta.update(
        channel=name,
        bias_sign=sign,
        calibration=calibration,
        assumed=assumed,
        directions_available=available,
        sweeps_recorded=channel.sweeps(wanted[0]),
    )
    for key in ("setpoint_bias_mV", "setpoint_current_nA"):
        if meta.get(key) is not None:
            meta[key] = sign * meta[key]
    if direction != "both":
        mean = mean[0]
        sigma = None if sigma is None else sigma[0]
        sweeps = None if sweeps is None else sweeps[0]
    return Spectrum.from_arrays(
        bias_out, mean, sigma, units=units, n_sweeps=n_sweeps, direction=direction, metadata=meta, sweeps=sweeps
    )


def _first_column(channel: Channel) -> str:
    for key in (("fwd", None), ("fwd", "AVG")):
        if key in channel.columns:
            return channel.columns[key]
    return next(iter(channel.columns.values()))


def _stack_header(channel: Channel, direction: str, kind: str, k: int) -> str:
    if kind == "sweeps":
        return channel.columns[(direction, channel.sweeps(direction)[k])]
    return channel.columns[(direction, "AVG" if kind == "average" else None)]


def _conductance_scale(channel, channels, table, wanted, order, bias_asc, stacks, lockin_units, where, assumed):
    """Units of the output and the factor from the channel's values to them; calibrates when needed."""
    if channel.unit in _CONDUCTANCE_UNITS:
        return "uS", _CONDUCTANCE_UNITS[channel.unit], None
    if channel.unit == "A" and lockin_units in STSBAYES_LOCKIN_SCALE:
        # Written by write_nanonis_dat: the column is dI/dV in A per V of bias (siemens), see STSBAYES_LOCKIN_SCALE.
        return lockin_units, STSBAYES_LOCKIN_SCALE[lockin_units], None
    current = next((ch for ch in channels.values() if _is_current(ch)), None)
    what = "an external lock-in input" if channel.unit == "V" else "a lock-in amplitude"
    if current is None:
        assumed.append(
            f"channel {channel.name} is {what} in arbitrary units and there is no current channel to calibrate it "
            "against: units 'arb' (fit g_n)"
        )
        return "arb", 1.0, None
    directions = [d for d in wanted if d in current.directions()]
    signals = [stacks[wanted.index(d)].mean(axis=0) for d in directions]
    currents = []
    for d in directions:
        stack, kind = sweep_stack(table, current, d)
        for k, column_values in enumerate(stack):
            check_finite(column_values, _stack_header(current, d, kind, k), where)
        currents.append(stack.mean(axis=0)[order] * 1e9)  # A -> nA
    fit = calibrate_against_current(bias_asc, signals, currents) if directions else None
    if fit is None:
        assumed.append(
            f"channel {channel.name} could not be calibrated against {current.name} (no current in the selected "
            "direction, a flat current, or a zero signal): units 'arb' (fit g_n)"
        )
        return "arb", 1.0, None
    factor, offsets, quality = fit
    calibration = {
        "factor": factor,
        "factor_units": f"uS per {channel.unit or 'unit'}",
        "quality": quality,
        "quality_measure": "r2 of the integrated signal against the current",
        "intercept_nA": dict(zip(directions, offsets)),
        "against": current.name,
        "directions": directions,
        "units_after": "uS",
    }
    assumed.append(
        f"channel {channel.name} ({what}) calibrated to µS against {current.name}: factor {factor:.6g} µS per "
        f"{channel.unit or 'unit'}, r² = {quality:.5f}"
    )
    if quality < _POOR_CALIBRATION_R2:
        assumed.append(
            f"the calibration is poor (r² = {quality:.3f} < {_POOR_CALIBRATION_R2}): lock-in and current disagree in "
            "shape; check the lock-in phase or the channel"
        )
    return "uS", factor, calibration
