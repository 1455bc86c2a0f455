"""Metadata that files state only loosely: temperature and lock-in modulation in free-text comments,
user overrides, and the checks on them.

Real Nanonis files often carry the bath temperature and the modulation amplitude only in comments typed by a
person (``T=58mK``, ``Vac=150mVrms div 1/1000``). We parse the forms that are unambiguous, keep the kind of a
modulation amplitude (rms, peak) exactly as written, and never guess it: an amplitude without a kind is recorded
as kind ``"unknown"`` with a sentence in ``assumed``. Overrides (``--temperature``, ``--modulation-rms``, ...)
always win and are recorded with source ``"flag"``.
"""

from __future__ import annotations

import math
import re

from stsbayes.errors import InputError

DIRECTIONS = ("fwd", "bwd", "both")
OVERRIDE_KEYS = (
    "channel",
    "direction",
    "bias_sign",
    "temperature_K",
    "modulation_rms",
    "modulation_peak",
    "normalize",
)

_NUMBER = r"[-+]?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?"
# "T=58mK", "T = 0.08 K", "Temp: 1.2K"; the T must not end a longer word (so "VT=" or "SET=" do not match).
_TEMPERATURE = re.compile(rf"(?<![A-Za-z])(?:T|Temp|Temperature)\s*[=:]\s*({_NUMBER})\s*(mK|K)\b")
# "Vac=150mVrms div 1/1000", "Vac = 0.1 mVpk", "Vmod=20uV rms".
_MODULATION = re.compile(
    rf"(?<![A-Za-z])V_?(?:ac|mod)\s*[=:]\s*({_NUMBER})\s*(µV|μV|uV|mV|V)\s*(rms|peak|pk|p-p|pp|ptp)?",
    re.IGNORECASE,
)
# "div 1/1000", "div 1000", "divider 1:100": the amplitude before a voltage divider on the bias line.
_DIVIDER = re.compile(r"\bdiv\w*\s*(?:by\s*)?(?:1\s*[/:]\s*)?(\d+(?:\.\d+)?)", re.IGNORECASE)
# A comment that states the kind of the instrument's amplitude without giving a number.
_AMPLITUDE_KIND = re.compile(r"(?:lock-?in|amplitude)[^.;]*?\b(rms|peak|pk)\b", re.IGNORECASE)
_VOLT_TO_MV = {"µv": 1e-3, "μv": 1e-3, "uv": 1e-3, "mv": 1.0, "v": 1e3}


def number(text: str | None) -> float | None:
    """A finite float from a header value, or None when the value is empty, 'N/A', 'Inf' or text."""
    if text is None:
        return None
    try:
        value = float(text.strip().strip('"'))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _to_float(text: str) -> float:
    return float(text.replace(",", "."))


def temperature_from_comments(comments: list[str]) -> tuple[float | None, list[str]]:
    """Bath temperature in K from comments such as ``T=58mK`` or ``T=0.08K``; notes when comments disagree."""
    found = []
    for comment in comments:
        for value, unit in _TEMPERATURE.findall(comment):
            kelvin = _to_float(value) / (1000.0 if unit == "mK" else 1.0)
            if math.isfinite(kelvin) and kelvin > 0:
                found.append(kelvin)
    notes = []
    if len(set(found)) > 1:
        notes.append(
            f"comments give several temperatures ({', '.join(f'{t:g} K' for t in found)}): used the first, "
            f"{found[0]:g} K; give --temperature to choose"
        )
    return (found[0] if found else None), notes


def modulation_from_comments(comments: list[str]) -> tuple[dict | None, list[str]]:
    """Modulation amplitude from a comment such as ``Vac=150mVrms div 1/1000`` (= 0.15 mV rms).

    Returns ``({"kind", "value_mV", "source": "comment"}, notes)``. A peak-to-peak value is halved to a peak value
    (a statement, not a guess); an amplitude without rms/peak gets kind "unknown".
    """
    for comment in comments:
        match = _MODULATION.search(comment)
        if match is None:
            continue
        value, unit, kind = match.groups()
        value_mV = _to_float(value) * _VOLT_TO_MV[unit.lower()]
        notes = []
        divider = _DIVIDER.search(comment, match.end())
        if divider is not None:
            ratio = float(divider.group(1))
            if ratio > 0:
                value_mV /= ratio
                notes.append(f"modulation {match.group(0).strip()} divided by {ratio:g} (comment '{comment}')")
        kind = (kind or "").lower()
        if kind == "rms":
            kind_out = "rms"
        elif kind in ("peak", "pk"):
            kind_out = "peak"
        elif kind in ("p-p", "pp", "ptp"):
            kind_out = "peak"
            value_mV /= 2.0
            notes.append(f"modulation given peak-to-peak in comment '{comment}': halved to a peak amplitude")
        else:
            kind_out = "unknown"
            notes.append(
                f"modulation amplitude {value_mV:g} mV in comment '{comment}' does not say rms or peak: kind "
                "recorded as 'unknown'; give --modulation-rms or --modulation-peak"
            )
        if not (math.isfinite(value_mV) and value_mV > 0):
            continue
        return {"kind": kind_out, "value_mV": value_mV, "source": "comment"}, notes
    return None, []


def amplitude_kind_from_comments(comments: list[str]) -> str | None:
    """'rms' or 'peak' when a comment states the kind of the lock-in amplitude in words, else None."""
    for comment in comments:
        match = _AMPLITUDE_KIND.search(comment)
        if match:
            return "rms" if match.group(1).lower() == "rms" else "peak"
    return None


def check_overrides(overrides: dict) -> dict:
    """Validate the keyword overrides of :func:`stsbayes.io.load`; unknown keys are a programming error."""
    unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
    if unknown:
        raise TypeError(f"unknown override(s) {unknown}; known: {list(OVERRIDE_KEYS)}")
    out = {key: value for key, value in overrides.items() if value is not None}
    direction = out.setdefault("direction", "fwd")
    if direction not in DIRECTIONS:
        raise InputError(f"direction '{direction}' is not one of fwd, bwd, both: use --direction fwd|bwd|both")
    sign = out.setdefault("bias_sign", 1)
    try:
        sign_ok = float(sign) in (1.0, -1.0)
    except (TypeError, ValueError):
        sign_ok = False
    if not sign_ok:
        raise InputError(f"bias sign {sign!r} must be +1 or -1: use --bias-sign -1 when the bias is applied to the tip")
    out["bias_sign"] = int(float(sign))
    if "temperature_K" in out:
        t = _positive(out["temperature_K"], "temperature", "K", "--temperature")
        out["temperature_K"] = t
    if "modulation_rms" in out and "modulation_peak" in out:
        raise InputError("both --modulation-rms and --modulation-peak were given: give only one of them")
    for key in ("modulation_rms", "modulation_peak"):
        if key in out:
            out[key] = _positive(out[key], key.replace("_", " "), "mV", "--" + key.replace("_", "-"))
    if "channel" in out and not str(out["channel"]).strip():
        raise InputError("the channel name is empty: give --channel with a name listed by `stsbayes info FILE`")
    out["normalize"] = bool(out.get("normalize", False))
    return out


def _positive(value, what: str, unit: str, flag: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not (math.isfinite(x) and x > 0):
        raise InputError(f"{what} {value!r} {unit} is not a positive number: give {flag} a value above 0 in {unit}")
    return x


def resolve_temperature_and_modulation(
    comments: list[str],
    header_temperature_K: float | None,
    header_amplitude_mV: float | None,
    overrides: dict,
) -> dict:
    """Decide temperature and modulation from flags, comments and header, in that order of trust.

    Comments beat header values because a person wrote them for this measurement; a header temperature may be a
    different stage's sensor, and Nanonis' ``Lock-in>Amplitude`` does not say whether it is rms or peak.
    Returns the metadata keys ``temperature_K``, ``temperature_source``, ``modulation`` and the ``assumed`` notes.
    """
    assumed: list[str] = []
    if "temperature_K" in overrides:
        temperature, t_source = overrides["temperature_K"], "flag"
    else:
        temperature, notes = temperature_from_comments(comments)
        assumed += notes
        t_source = "comment" if temperature is not None else None
        if temperature is None and header_temperature_K is not None:
            temperature, t_source = header_temperature_K, "header"
            assumed.append(f"bath temperature {temperature:g} K taken from a header sensor value")

    if "modulation_rms" in overrides:
        modulation = {"kind": "rms", "value_mV": overrides["modulation_rms"], "source": "flag"}
    elif "modulation_peak" in overrides:
        modulation = {"kind": "peak", "value_mV": overrides["modulation_peak"], "source": "flag"}
    else:
        modulation, notes = modulation_from_comments(comments)
        assumed += notes
        if modulation is None and header_amplitude_mV is not None:
            kind = amplitude_kind_from_comments(comments) or "unknown"
            modulation = {"kind": kind, "value_mV": header_amplitude_mV, "source": "header"}
            if kind == "unknown":
                assumed.append(
                    f"modulation amplitude {header_amplitude_mV:g} mV from Lock-in>Amplitude: the file does not say "
                    "rms or peak, so its kind is 'unknown' (not guessed); give --modulation-rms or --modulation-peak"
                )
    return {
        "temperature_K": temperature,
        "temperature_source": t_source,
        "modulation": modulation,
        "assumed": assumed,
    }
