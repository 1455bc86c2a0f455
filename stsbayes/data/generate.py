"""Regenerate the bundled example data: ``python -m stsbayes.data.generate [--out DIR] [--only NAME ...]``.

Every bundled ``.dat`` is ``stsbayes simulate`` of a spec beside it, run with the window, points, seed and header
metadata that :data:`TABLE` gives: the table is the single source of truth, and README.md is written from it.
Single spectra have hand-written specs (copied along when ``--out`` is elsewhere). The series' per-spectrum specs
and manifests are written here from the laws of physics.md §5 (:func:`stsbayes.series.law_spectra`), so each
spectrum is again one ``stsbayes simulate`` of its own spec. Seeds are fixed: the data columns regenerate exactly;
only the header's Date line changes.
"""

import argparse
import contextlib
import csv
import io
import json
import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import InputError
from . import DATA

BATH_K = 0.08  # the paper's 80 mK bath: the header's T, which a fit takes as the lower bound of its T_eff prior


def num(x) -> str:
    """A number as short as it round-trips (arguments, manifests and README must give back the exact float)."""
    x = float(x)
    short = f"{x:g}"
    return short if float(short) == x else repr(x)


@dataclass(frozen=True)
class Entry:
    """One bundled spectrum: ``stsbayes simulate SPEC`` over [start, stop] mV at ``points`` points with ``seed``;
    ``setpoint`` = (V_set mV, I_set nA) for the header when the setpoint lies outside the sweep."""

    spec: str  # relative to the data folder
    start: float
    stop: float
    points: int
    seed: int
    about: str = ""
    setpoint: tuple[float, float] | None = None

    @property
    def dat(self) -> str:
        return str(PurePosixPath(self.spec).with_suffix(".dat"))

    @property
    def bias(self) -> np.ndarray:
        return np.linspace(self.start, self.stop, self.points)  # exactly the bias `stsbayes simulate` uses

    def arguments(self) -> list[str]:
        """The ``stsbayes`` arguments, run in the data folder (relative paths keep the header's comment portable)."""
        args = ["simulate", self.spec, "--bias-start", num(self.start), "--bias-stop", num(self.stop),
                "--points", str(self.points), "--seed", str(self.seed), "--temperature", num(BATH_K)]
        if self.setpoint is not None:
            args += ["--setpoint-bias", num(self.setpoint[0]), "--setpoint-current", num(self.setpoint[1])]
        return args + ["--format", "nanonis", "--out", self.dat]

    def command(self) -> str:
        return "stsbayes " + " ".join(self.arguments())


@dataclass(frozen=True)
class Series:
    """A series (physics.md §5) in its own folder: one spectrum per condition under ``hypothesis``'s law at
    ``truth`` on ``background`` (metal tip, µS), noise 2 % of each spectrum's G_n, seeds ``seed``, ``seed`` + 1, ...
    ``stems`` name the files; ``columns`` are the manifest's condition columns."""

    kind: str
    hypothesis: str
    about: str
    truth: dict
    conditions: dict
    background: dict
    stems: tuple
    start: float
    stop: float
    points: int
    seed: int
    columns: tuple = field(default=())

    def entries(self, folder: str) -> dict[str, Entry]:
        out = {}
        for j, stem in enumerate(self.stems):
            setpoint = None
            if self.kind == "gn":
                setpoint = (self.conditions["setpoint_bias_mV"][j], self.conditions["setpoint_current_nA"][j])
            out[f"{folder}/{stem}"] = Entry(f"{folder}/{stem}.toml", self.start, self.stop, self.points,
                                            self.seed + j, self.describe(j), setpoint)
        return out

    def describe(self, j: int) -> str:
        if self.kind == "gn":
            i, v = self.conditions["setpoint_current_nA"][j], self.conditions["setpoint_bias_mV"][j]
            return f"I_set = {num(i)} nA at V_set = {num(v)} mV (G_set = {i / v:.3g} µS)"
        if self.kind == "field":
            return f"B = {num(self.conditions['field_T'][j])} T"
        return f"defect {self.conditions['defect'][j]}"


# ------------------------------------------------------------------------------------------------ the table
#
# The laws' truths mirror the series tests (tests/test_series_e2e.py: GN_YSR, PAPER_GN to 0.01 nA, DEFECT_EPS,
# DEFECT_WIDTHS, the eleven-defect weights) at the paper's conditions; the field law is stronger at 5 T than the
# test's and gentler at 2 T, as the paper saw, and the gn series shares the field and defects background.

# defect IV's two-gap background at the paper's metallic-tip ZECP conditions (T_eff 0.3 K, ΔV = 0.1 mV peak),
# shared by all three series: one defect type, one microscope (the tests' FIELD_BACKGROUND)
SERIES_BACKGROUND = {"sample": {"delta": [4.5, 5.8], "gamma": [0.02, 0.02], "weight": [0.5, 0.5]},
                     "junction": {"T_eff": 0.3, "modulation_peak": 0.1}, "observation": {"b0": 0.0, "b1": 0.0}}
# the paper's transmissivity series: V_set = 7 mV, I_set 2-116 nA (8 setpoints, geometric, to 0.01 nA)
GN_CONDITIONS = {"setpoint_current_nA": [round(float(x), 2) for x in np.geomspace(2.0, 116.0, 8)],
                 "setpoint_bias_mV": [7.0] * 8}
GN_YSR = dict(eps0=0.0059, alpha=0.0147, width=0.02, u2=0.3, v2=0.15)  # eps_j from 0.010 to 0.25 meV
# responsive: eps = ½ g_eff μ_B B, width 0.02 + 0.006 B: height 0.83 of zero field at 2 T (FWHM 0.19 -> 0.22 mV),
# 0.50 at 5 T (FWHM 0.36 mV), one peak throughout — little change at 2 T, strongly suppressed and much broader at
# 5 T (physics.md §7)
FIELD_YSR = dict(eps0=0.0, g_eff=0.6, width0=0.02, beta=0.006, u2=0.2, v2=0.2, gamma_field=0.002, g_n=1.0)
FIELD_CONDITIONS = {"field_T": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]}
DEFECT_NAMES = [f"d{k:02d}" for k in range(11)]
DEFECT_EPS = [0.052, 0.031, 0.067, 0.045, 0.058, 0.039, 0.072, 0.049, 0.035, 0.061, 0.044]
DEFECT_WIDTHS = [0.02, 0.025, 0.018, 0.03, 0.022, 0.027, 0.02, 0.024, 0.019, 0.028, 0.023]
_rng = np.random.default_rng(9)  # the weights and scales of the eleven-defect must-show, to 0.001
DEFECT_YSR = dict(eps_d=DEFECT_EPS, width_d=DEFECT_WIDTHS,
                  u2_d=[round(float(x), 3) for x in _rng.uniform(0.15, 0.35, 11)],
                  v2_d=[round(float(x), 3) for x in _rng.uniform(0.08, 0.25, 11)],
                  g_n=[round(float(x), 3) for x in _rng.uniform(0.8, 1.2, 11)])
del _rng

SINGLE = {
    "pb_pb": Entry("pb_pb.toml", -4.0, 4.0, 801, 1,
                   "Pb(111) with a Pb tip (SIS): the tip calibration's reference. Gaps 1.26/1.41 meV, tip 1.37 meV; "
                   "peaks at 2.63/2.78 mV (paper: 2.64/2.77 mV)."),
    "csca_metal_off_wrinkle": Entry(
        "csca_metal_off_wrinkle.toml", -12.0, 12.0, 2401, 11,
        "CsCa2Fe4As4F2 off a wrinkle, metallic tip: four gaps 4.45/5.75/7.55/9.2 meV (paper: four pairs of peaks "
        "between 3 and 10 meV; Pb-tip peaks at ±5.8/±7.1/±8.9 mV = Δ_t + Δ_1..3)."),
    "csca_metal_on_wrinkle": Entry(
        "csca_metal_on_wrinkle.toml", -12.0, 12.0, 2401, 12,
        "CsCa2Fe4As4F2 on a wrinkle, metallic tip: strain shrinks Δ_1, Δ_2 and enlarges Δ_3 by 0.3 meV, leaves Δ_4 "
        "(paper's wrinkle finding)."),
    "csca_pb_tip": Entry(
        "csca_pb_tip.toml", -10.0, 10.0, 2001, 13,
        "CsCa2Fe4As4F2 off a wrinkle with the Pb tip: peaks at ±1.41 (Δ_t = 1.37 meV, through the in-gap floor), "
        "±5.82, ±7.12, ±8.92 mV (paper: ±1.3, ±5.8, ±7.1, ±8.9 mV = ±Δ_t, ±(Δ_t + Δ_1..3))."),
    "zecp_metal_tip": Entry(
        "zecp_metal_tip.toml", -3.0, 3.0, 601, 2,
        "Defect IV, metallic tip: two nearly degenerate YSR pairs (eps 0.03/0.12 meV) merge into one ZECP of "
        "apparent FWHM 0.29 meV at ΔV = 0.1 mV peak (paper: FWHM down to 0.22 meV)."),
    "zecp_pb_tip": Entry(
        "zecp_pb_tip.toml", -3.0, 3.0, 601, 1,
        "Defect IV, Pb tip: the same two pairs show as unequal peaks at ±Δ_t plus side peaks (paper's ZECP with a Pb "
        "tip, and its conclusion: two nearly degenerate YSR pairs)."),
}

SERIES = {
    "gn_series": Series(
        "gn", "ysr",
        "Transmissivity series of one defect (paper Fig. 5): metallic tip, V_set = 7 mV, I_set 2-116 nA "
        "(G_set 0.29-16.6 µS). ysr law eps_j = |eps0 + alpha G_set,j| with eps0 = 0.0059 meV, alpha = 0.0147 "
        "meV/µS (eps_j 0.010-0.25 meV: the ZECP splits into two branches, the paper's conclusion), width 0.02 meV, "
        "u² 0.3, v² 0.15. G_n,j follows from each setpoint. ±1 mV window (the setpoints fix G_n, so the sweep "
        "needs no coherence peaks); the header records the setpoint (7 mV, I_set), outside the sweep.",
        GN_YSR, GN_CONDITIONS, SERIES_BACKGROUND, tuple(f"gn_{j:02d}" for j in range(8)), -1.0, 1.0, 201, 21,
        ("setpoint_current_nA", "setpoint_bias_mV")),
    "field_series": Series(
        "field", "ysr",
        "Field series of one defect (paper Fig. 4f-h): metallic tip, B = 0-5 T. Responsive ysr law eps(B) = "
        "½ g_eff μ_B B with g_eff = 0.6, width(B) = 0.02 + 0.006 B meV, u² = v² = 0.2, background gaps broadening "
        "by 0.002 meV/T, G_n = 1 µS: little change at 2 T (height 0.83 of 0 T, FWHM 0.19 -> 0.22 mV), strongly "
        "suppressed and broader at 5 T (height 0.50, FWHM 0.36 mV), one peak throughout. ±7 mV window: the "
        "coherence peaks fix each G_n.",
        FIELD_YSR, FIELD_CONDITIONS, SERIES_BACKGROUND, tuple(f"field_{b:g}T" for b in FIELD_CONDITIONS["field_T"]),
        -7.0, 7.0, 701, 31, ("field_T",)),
    "defects": Series(
        "defects", "ysr",
        "Eleven defects of one type (paper Fig. 4b): metallic tip, one YSR pair each, eps_d 0.031-0.072 meV and "
        "widths 0.018-0.03 meV from one population, weights u² 0.15-0.35 and v² 0.08-0.25, G_n 0.8-1.2 µS. "
        "±7 mV window: the coherence peaks fix each G_n.",
        DEFECT_YSR, {"defect": DEFECT_NAMES}, SERIES_BACKGROUND, tuple(DEFECT_NAMES), -7.0, 7.0, 701, 41,
        ("defect",)),
}


def _table() -> dict[str, Entry]:
    table = dict(SINGLE)
    for folder, s in SERIES.items():
        table.update(s.entries(folder))
    return table


TABLE = _table()  # name -> Entry for every bundled .dat: "pb_pb", "gn_series/gn_00", ...


# ------------------------------------------------------------------------------------------------ writing


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for the ASCII names used here
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, (int, float, np.integer, np.floating)):
        x = float(v)
        if not math.isfinite(x):
            raise InputError(f"cannot write {x} into a spec: every true value must be finite")
        return repr(x)  # the shortest text that reads back as the same float
    raise InputError(f"cannot write {v!r} into a spec: only numbers, strings and lists of them")


def spec_toml(spec: dict, header: str) -> str:
    """A spec dict as TOML (tables of numbers, strings and lists; ``sample.bound_states`` as an array of tables),
    each float written so that it reads back exactly."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for table in ("tip", "sample", "junction", "observation"):
        values = spec.get(table)
        if not values:
            continue
        lines += ["", f"[{table}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if k != "bound_states"]
        for state in values.get("bound_states", []) if table == "sample" else []:
            lines += ["", "[[sample.bound_states]]"] + [f"{k} = {_toml_value(v)}" for k, v in state.items()]
    return "\n".join(lines) + "\n"


def _series_files(folder: str, series: Series, out: Path) -> None:
    """The per-spectrum specs (law_spectra's true specs, noise 2 % of G_n) and the manifest of one series."""
    from ..series import NOISE_FRACTION, law_spectra

    entries = list(series.entries(folder).values())
    specs = law_spectra(series.kind, series.hypothesis, series.truth, series.conditions, series.background,
                        entries[0].bias)
    (out / folder).mkdir(parents=True, exist_ok=True)
    law = ", ".join(f"{k} = {num(v)}" for k, v in series.truth.items() if not isinstance(v, list))
    for j, (entry, spec) in enumerate(zip(entries, specs, strict=True)):
        spec["observation"]["sigma"] = NOISE_FRACTION * spec["junction"]["g_n"]
        header = (f"{folder}: spectrum {j + 1} of {len(entries)}, {entry.about}.\n"
                  f"True values of the {series.kind} series' {series.hypothesis} law (physics.md §5) for this "
                  "spectrum, from stsbayes.series.law_spectra" + (f" at\n{law}" if law else "") + ".\n"
                  "junction.g_n is G_n in µS; observation.sigma is 2 % of it.\n"
                  "Written by `python -m stsbayes.data.generate`: edit stsbayes/data/generate.py, not this file.")
        (out / entry.spec).write_text(spec_toml(spec, header), encoding="utf-8")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("file",) + series.columns)
    for j, entry in enumerate(entries):
        values = [series.conditions[c][j] for c in series.columns]
        writer.writerow([PurePosixPath(entry.dat).name] + [v if isinstance(v, str) else num(v) for v in values])
    (out / folder / "manifest.csv").write_text(buffer.getvalue(), encoding="utf-8")


def _selected(only) -> tuple[list[str], list[str]]:
    if not only:
        return list(SINGLE), list(SERIES)
    unknown = [n for n in only if n not in SINGLE and n not in SERIES]
    if unknown:
        raise InputError(f"no bundled data named {unknown[0]!r}: choose from {', '.join([*SINGLE, *SERIES])}")
    return [n for n in SINGLE if n in only], [n for n in SERIES if n in only]


def generate(out=DATA, only=None, *, readme=True) -> list[Path]:
    """Write the bundled data into ``out`` (default the package's data folder); ``only`` names single spectra
    and/or series folders to write (default all). Returns the .dat files written."""
    from ..cli import main

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    singles, series = _selected(only)
    entries = []
    for name in singles:
        entry = SINGLE[name]
        if (out / entry.spec).resolve() != (DATA / entry.spec).resolve():
            shutil.copyfile(DATA / entry.spec, out / entry.spec)
        entries.append(entry)
    for folder in series:
        _series_files(folder, SERIES[folder], out)
        entries += list(SERIES[folder].entries(folder).values())
    written = []
    with contextlib.chdir(out):
        for entry in entries:
            code = main(entry.arguments())
            if code != 0:
                raise InputError(f"`{entry.command()}` failed with exit code {code}: see the message above")
            written.append(out / entry.dat)
    if readme:
        (out / "README.md").write_text(readme_text(), encoding="utf-8")
    return written


# ------------------------------------------------------------------------------------------------ README


README_HEAD = """\
# Bundled example data

Simulated spectra at the conditions of the paper this package was built for (CsCa2Fe4As4F2 and Pb(111), metallic and
Pb tips, 80 mK UNISOKU STM; `shared/design/physics.md` §7), each written by `stsbayes simulate` as a Nanonis `.dat`
beside the spec it came from. This file is written by `generate.py` from its `TABLE`, the single source of truth:
edit `generate.py`, not this file. Regenerate everything with

    python -m stsbayes.data.generate              # into this folder
    python -m stsbayes.data.generate --out DIR    # elsewhere (the hand-written specs are copied along)
    python -m stsbayes.data.generate --only zecp_metal_tip gn_series

or any one file with the command listed for it, run in this folder. Seeds are fixed, so the data columns come back
exactly; only the header's `Date` line changes.

Conventions (physics.md §1): bias is the sample bias in mV; single spectra are normalised (G_n = 1, header comment
`units=normalised`); series are in µS (`junction.g_n` of each spec is its G_n). Noise is Gaussian, 2 % of G_n. Every
header says `T=80mK`, the paper's bath (written with `--temperature 0.08`): the specs' `T_eff` (0.3-0.32 K) is the
junction's effective temperature, above the bath, and a fit's default T_eff prior starts at the header's
temperature — so pass `--temperature` only to change that floor. The lock-in amplitude is in the header with its
kind (`Vac=...mVrms` or `mVpk`, and `Lock-in>Amplitude` as the peak value in V), as the spec gives it.
"""


def readme_text() -> str:
    lines = [README_HEAD, "## Single spectra", ""]
    lines += ["| file | spec | what it is (paper number) | window |", "|---|---|---|---|"]
    for entry in SINGLE.values():
        step = (entry.stop - entry.start) / (entry.points - 1)
        lines.append(f"| `{entry.dat}` | `{entry.spec}` | {entry.about} | {num(entry.start)} to {num(entry.stop)} "
                     f"mV, {entry.points} points ({num(round(step, 9))} mV steps) |")
    lines += ["", "Commands:", "", "```"] + [entry.command() for entry in SINGLE.values()] + ["```", ""]
    lines += ["## Series", "",
              "Each folder holds `manifest.csv` (its `file` column relative to the manifest; read it with "
              "`stsbayes series KIND manifest.csv` or `stsbayes.series.read_manifest`), one spec per spectrum "
              "(the true values, written by the generator from `stsbayes.series.law_spectra`) and the `.dat` beside "
              "it. Metallic tip; defect IV's background (gaps 4.5 and 5.8 meV, Dynes gamma 0.02 meV) at its ZECP "
              "conditions (T_eff 0.3 K, ΔV = 0.1 mV peak) in all three.", ""]
    for folder, s in SERIES.items():
        entries = s.entries(folder)
        step = (s.stop - s.start) / (s.points - 1)
        junction = s.background["junction"]
        modulation = (f"modulation_rms {num(junction['modulation_rms'])} mV" if "modulation_rms" in junction
                      else f"modulation_peak {num(junction['modulation_peak'])} mV")
        lines += [f"### `{folder}/` ({s.kind}, {len(entries)} spectra)", "", s.about, "",
                  f"T_eff {num(junction['T_eff'])} K, {modulation}; {num(s.start)} to {num(s.stop)} mV, "
                  f"{s.points} points ({num(round(step, 9))} mV steps); manifest columns "
                  f"`file,{','.join(s.columns)}`.", "",
                  "| file | condition | seed |", "|---|---|---|"]
        lines += [f"| `{e.dat}` | {e.about} | {e.seed} |" for e in entries.values()]
        lines += ["", "Commands (after the generator has written the specs):", "", "```"]
        lines += [e.command() for e in entries.values()] + ["```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stsbayes.data.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(DATA), help="output folder (default: the package's data folder)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help=f"write only these: {', '.join([*SINGLE, *SERIES])}")
    args = parser.parse_args(argv)
    try:
        written = generate(args.out, args.only)
    except InputError as err:
        print(f"stsbayes.data.generate: {err}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} spectra ({size / 1e6:.2f} MB) into {Path(args.out).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
