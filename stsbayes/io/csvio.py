"""CSV/TSV spectra: columns ``bias_mV`` (or ``bias_V``), ``didv``, optional ``sigma``.

The delimiter is a comma, tab or semicolon (whichever the column line uses), else whitespace. Lines starting
with ``#`` are comments and are searched for ``T=58mK`` / ``Vac=0.1mVrms`` like Nanonis comments. The units of
``didv`` are not stated by a plain CSV: they are "arb", unless the column is named ``didv_uS``, ``didv_nS`` or
``didv_norm``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stsbayes.errors import InputError
from stsbayes.io.atomic import atomic_write_text
from stsbayes.io.channels import check_bias, check_finite
from stsbayes.io.metadata import resolve_temperature_and_modulation
from stsbayes.io.nanonis import read_text
from stsbayes.io.spectrum import Spectrum, default_metadata

_BIAS_COLUMNS = {"bias_mv": 1.0, "bias_v": 1e3}
_DIDV_COLUMNS = {
    "didv": ("arb", 1.0),
    "didv_us": ("uS", 1.0),
    "didv_ns": ("uS", 1e-3),
    "didv_norm": ("normalised", 1.0),
}


def _split(line: str, delimiter: str | None) -> list[str]:
    return [cell.strip() for cell in (line.split(delimiter) if delimiter else line.split())]


def read_csv(path, overrides: dict) -> Spectrum:
    """A Spectrum from a CSV/TSV file (checked overrides as for :func:`stsbayes.io.load`)."""
    path = Path(path)
    lines = read_text(path, "CSV").splitlines()
    comments = [line.lstrip("#").strip() for line in lines if line.lstrip().startswith("#")]
    body = [(i + 1, line) for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if not body:
        raise InputError(f"{path.name} has no column line and no data: give a CSV with bias_mV,didv columns")
    first_line, header = body[0]
    delimiter = next((d for d in ("\t", ",", ";") if d in header), None)
    names = [name.lower() for name in _split(header, delimiter)]
    bias_key = next((n for n in names if n in _BIAS_COLUMNS), None)
    didv_key = next((n for n in names if n in _DIDV_COLUMNS), None)
    if bias_key is None or didv_key is None:
        raise InputError(
            f"the first line of {path.name} names columns {names}: it needs bias_mV (or bias_V) and didv "
            "(optionally sigma); rename the columns"
        )
    rows, row_lines = [], []
    for line_no, line in body[1:]:
        cells = _split(line, delimiter)
        if len(cells) != len(names):
            raise InputError(
                f"line {line_no} of {path.name} has {len(cells)} values but there are {len(names)} columns: the "
                f"file looks truncated or edited; fix or delete line {line_no}"
            )
        try:
            rows.append([float(cell) for cell in cells])
        except ValueError:
            bad = next(c for c in cells if not _is_number(c))
            raise InputError(
                f"line {line_no} of {path.name}: '{bad}' is not a number; fix or delete that line"
            ) from None
        row_lines.append(line_no)
    if len(rows) < 2:
        raise InputError(f"{path.name} has {len(rows)} data row(s): a spectrum needs at least 2")
    table = np.asarray(rows, dtype=float)

    def where(i: int) -> str:
        return f"line {row_lines[i]}"

    bias = table[:, names.index(bias_key)] * _BIAS_COLUMNS[bias_key]
    units, scale = _DIDV_COLUMNS[didv_key]
    didv = table[:, names.index(didv_key)] * scale
    sigma = table[:, names.index("sigma")] * scale if "sigma" in names else None
    check_bias(bias, bias_key, where)
    check_finite(didv, didv_key, where)
    if sigma is not None:
        check_finite(sigma, "sigma", where)
        if np.any(sigma < 0):
            raise InputError(f"sigma is negative at {where(int(np.argmax(sigma < 0)))}: it is a standard error, >= 0")

    meta = default_metadata()
    resolved = resolve_temperature_and_modulation(comments, None, None, overrides)
    meta.update(resolved, source_file=str(path), channel=didv_key, comments=comments)
    if units == "arb":
        meta["assumed"].append("the CSV does not state the units of didv: 'arb' (name the column didv_uS to state µS)")
    if sigma is not None:
        meta["assumed"].append("sigma taken from the file's sigma column as a standard error")
    order = np.argsort(bias)
    bias, didv = bias[order], didv[order]
    sigma = None if sigma is None else sigma[order]
    sign = overrides.get("bias_sign", 1)
    if sign == -1:
        bias, didv = -bias[::-1], didv[::-1]
        sigma = None if sigma is None else sigma[::-1]
        meta["assumed"].append("bias applied to the tip (bias_sign -1): bias mirrored into the sample-bias convention")
    meta["bias_sign"] = sign
    direction = overrides.get("direction", "fwd")
    if direction != "fwd":
        raise InputError(f"a CSV holds one sweep: --direction {direction} does not apply; leave it at fwd")
    if overrides.get("channel") not in (None, didv_key):
        raise InputError(f"a CSV has one conductance column ({didv_key}); --channel does not apply")
    spectrum = Spectrum.from_arrays(bias, didv, sigma, units=units, n_sweeps=1, direction="fwd", metadata=meta)
    return spectrum.normalized() if overrides.get("normalize") else spectrum


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_csv(path, bias_mV, didv, sigma=None) -> None:
    """Write ``bias_mV,didv[,sigma]`` (bias in mV, conductance in its own units) atomically, full precision."""
    bias = np.asarray(bias_mV, dtype=float)
    g = np.asarray(didv, dtype=float)
    columns = [bias, g] + ([np.asarray(sigma, dtype=float)] if sigma is not None else [])
    if bias.ndim != 1 or any(c.shape != bias.shape for c in columns):
        raise InputError(f"bias, didv and sigma must be 1-D of equal length, got {[c.shape for c in columns]}")
    names = ["bias_mV", "didv"] + (["sigma"] if sigma is not None else [])
    lines = [",".join(names)]
    lines += [",".join(repr(float(x)) for x in row) for row in zip(*columns)]
    atomic_write_text(path, "\n".join(lines) + "\n")

