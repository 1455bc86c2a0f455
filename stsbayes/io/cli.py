"""Command-line pieces for reading data: the data options every data-reading command shares, and `info`.

The main CLI (stsbayes/cli.py) calls ``args.func(args)`` and turns an InputError into one stderr line, exit 2.
"""

from __future__ import annotations

import argparse
import json

from stsbayes.io.reading import describe, load


def _bias_sign(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value not in (1.0, -1.0):
        raise argparse.ArgumentTypeError(f"bias sign must be +1 or -1, not {text!r}")
    return int(value)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """Add --temperature, --modulation-rms/--modulation-peak, --fit-modulation, --bias-sign, --channel,
    --direction and --normalize."""
    group = parser.add_argument_group("data options (metadata found in the file is used unless overridden)")
    group.add_argument("--temperature", type=float, metavar="K", help="bath temperature in K")
    modulation = group.add_mutually_exclusive_group()
    modulation.add_argument("--modulation-rms", type=float, metavar="mV", help="lock-in modulation, rms amplitude")
    modulation.add_argument("--modulation-peak", type=float, metavar="mV", help="lock-in modulation, peak amplitude")
    group.add_argument("--fit-modulation", action="store_true", help="fit the modulation amplitude with a prior")
    group.add_argument(
        "--bias-sign", type=_bias_sign, default=1, metavar="+1|-1", help="-1 when the bias was applied to the tip"
    )
    group.add_argument("--channel", help="dI/dV channel, e.g. 'LI Demod 1 X (A)' or 'Input 3 (V)'")
    group.add_argument("--direction", choices=("fwd", "bwd", "both"), default="fwd", help="sweep direction(s)")
    group.add_argument(
        "--normalize", action="store_true", help="divide by the conductance of the outer 20 %% of the bias window"
    )


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The load() overrides that the data options set (absent options are left to the file)."""
    names = {
        "channel": "channel",
        "direction": "direction",
        "bias_sign": "bias_sign",
        "temperature_K": "temperature",
        "modulation_rms": "modulation_rms",
        "modulation_peak": "modulation_peak",
        "normalize": "normalize",
    }
    return {key: getattr(args, attr) for key, attr in names.items() if getattr(args, attr, None) is not None}


def load_from_args(path, args: argparse.Namespace):
    """:func:`stsbayes.io.load` with the data options of ``args``."""
    return load(path, **overrides_from_args(args))


def add_info_command(subparsers) -> argparse.ArgumentParser:
    """Register ``info FILE [--json]`` with the data options."""
    parser = subparsers.add_parser(
        "info",
        help="what a data file holds: channels, sweeps, metadata",
        description="Show the channels, sweeps, directions and metadata of a data file, and what is missing.",
    )
    parser.add_argument("file", help="a Nanonis .dat or .3ds file, or a CSV/TSV with bias_mV,didv columns")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    add_data_options(parser)
    parser.set_defaults(func=run_info)
    return parser


def run_info(args: argparse.Namespace) -> int:
    """Print what ``args.file`` holds; returns the exit code 0 (bad input raises InputError)."""
    info = describe(args.file, **overrides_from_args(args))
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def format_info(info: dict) -> str:
    """A human summary of :func:`stsbayes.io.describe`'s dict."""
    lines = [f"file: {info['file']} ({info['format']})"]
    if info["format"] == "nanonis-3ds":
        lines.append(
            f"grid: {info['shape'][0]} x {info['shape'][1]} (nx x ny), {info['points']} points, {info['sweep']} sweep, "
            f"{info['measured_pixels']} measured, {info['missing_pixels']} missing"
        )
    lines.append("channels:")
    for channel in info["channels"]:
        parts = []
        for d in channel.get("directions", []):
            sweeps = channel.get("sweeps", {}).get(d, [])
            text = f"{len(sweeps)} sweeps" if sweeps else "1 sweep"
            if channel.get("average", {}).get(d):
                text += " + AVG" if sweeps else " (AVG only)"
            parts.append(f"{d}: {text}")
        lines.append(f"  {channel['name']:<28} {'; '.join(parts)}")
    if "problem" in info:
        lines.append(f"problem: {info['problem']}")
    selected = info.get("selected")
    if selected:
        meta = info["metadata"]
        lines.append(
            f"selected: {selected['channel']}, {selected['direction']}, {selected['n_points']} points "
            f"{selected['bias_range_mV'][0]:g}..{selected['bias_range_mV'][1]:g} mV, {selected['n_sweeps']} sweep(s), "
            f"units {selected['units']}, sigma {'from sweeps' if selected['has_sigma'] else 'none'}"
        )
        calibration = meta.get("calibration")
        if calibration:
            lines.append(
                f"calibration: {calibration['factor']:.6g} {calibration['factor_units']} against "
                f"{calibration['against']}, r² = {calibration['quality']:.5f}"
            )
        t = meta.get("temperature_K")
        lines.append(f"temperature: {t:g} K ({meta['temperature_source']})" if t is not None else "temperature: -")
        m = meta.get("modulation")
        lines.append(f"modulation: {m['value_mV']:g} mV {m['kind']} ({m['source']})" if m else "modulation: -")
        if meta.get("setpoint_bias_mV") is not None or meta.get("setpoint_current_nA") is not None:
            lines.append(
                f"setpoint: {meta.get('setpoint_bias_mV')} mV, {meta.get('setpoint_current_nA')} nA, "
                f"G_set {meta.get('g_set_uS')} µS"
            )
        for title, key in (("missing", "missing"), ("assumed", None)):
            items = info.get("missing", []) if key else meta.get("assumed", [])
            if items:
                lines.append(f"{title}:")
                lines += [f"  - {item}" for item in items]
    return "\n".join(lines)
