"""The bundled example data (issue 8): every file loads with the metadata its spec implies, the manifests read, the
files regenerate from their specs, and the specs say what the paper says (physics.md §7)."""

import tomllib
from pathlib import Path

import numpy as np
import pytest

import stsbayes
from stsbayes.data import DATA
from stsbayes.data import generate as G
from stsbayes.io.nanonis import parse_dat
from stsbayes.models import load_spec
from stsbayes.series import read_manifest


@pytest.mark.parametrize("name", list(G.TABLE))
def test_every_bundled_spectrum_loads_with_its_specs_metadata(name):
    entry = G.TABLE[name]
    spectrum = stsbayes.load(DATA / entry.dat)
    junction = load_spec(DATA / entry.spec).junction
    np.testing.assert_allclose(spectrum.bias_mV, entry.bias, rtol=0, atol=1e-12)
    # series carry absolute conductances (their G_n follows from setpoints or is fitted); single spectra are normalised
    assert spectrum.units == ("uS" if "/" in name else "normalised")
    assert ("g_n" in junction) == ("/" in name)
    meta = spectrum.metadata
    assert meta["temperature_K"] == pytest.approx(G.BATH_K) and meta["temperature_source"] == "comment"
    kind = "rms" if "modulation_rms" in junction else "peak"
    assert meta["modulation"]["kind"] == kind
    assert meta["modulation"]["value_mV"] == pytest.approx(junction[f"modulation_{kind}"])
    assert not meta["assumed"]
    if entry.setpoint is not None:  # recorded, although outside the sweep
        assert meta["setpoint_bias_mV"] == pytest.approx(entry.setpoint[0])
        assert meta["setpoint_current_nA"] == pytest.approx(entry.setpoint[1])


def test_the_table_lists_every_bundled_file_and_the_readme_every_command():
    on_disk = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*.dat")}
    assert on_disk == {e.dat for e in G.TABLE.values()}
    for entry in G.TABLE.values():
        assert (DATA / entry.spec).is_file()
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert readme == G.readme_text()  # written from the table, so it cannot drift
    assert all(e.command() in readme for e in G.TABLE.values())
    size = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert size < 5e6


@pytest.mark.parametrize("folder,n", [("gn_series", 8), ("field_series", 6), ("defects", 11)])
def test_each_manifest_reads(folder, n):
    series = G.SERIES[folder]
    datas, conditions, files = read_manifest(series.kind, DATA / folder / "manifest.csv")
    assert len(datas) == len(files) == n and all(d.units == "uS" for d in datas)
    assert [Path(f).name for f in files] == [f"{stem}.dat" for stem in series.stems]
    for column in series.columns:
        assert conditions[column] == series.conditions[column]
    if folder == "gn_series":  # the paper's transmissivity series: V_set 7 mV, I_set 2 to 116 nA
        assert conditions["setpoint_bias_mV"] == [7.0] * 8
        assert conditions["setpoint_current_nA"][0] == 2.0 and conditions["setpoint_current_nA"][-1] == 116.0
    if folder == "field_series":
        assert conditions["field_T"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def _table(path):
    return parse_dat(path).data  # bias, current, lock-in columns


def test_one_spectrum_and_one_series_regenerate_exactly(tmp_path):
    written = G.generate(tmp_path, only=["zecp_metal_tip", "gn_series"], readme=False)
    assert len(written) == 9
    for path in written:
        name = path.relative_to(tmp_path).as_posix()
        mine, bundled = _table(path), _table(DATA / name)
        # identical on this machine; the tolerance (1e-9 of each column's scale) only allows another machine's
        # last digits of FFTs and sums
        assert mine.shape == bundled.shape, name
        assert np.all(np.abs(mine - bundled) <= 1e-9 * np.max(np.abs(bundled), axis=0)), name
    manifest = "gn_series/manifest.csv"
    assert (tmp_path / manifest).read_text() == (DATA / manifest).read_text()
    for stem in G.SERIES["gn_series"].stems:
        mine = tomllib.loads((tmp_path / f"gn_series/{stem}.toml").read_text())
        bundled = tomllib.loads((DATA / f"gn_series/{stem}.toml").read_text())
        assert mine["junction"]["g_n"] == pytest.approx(bundled["junction"]["g_n"], rel=1e-12)
        assert mine["sample"]["bound_states"] == bundled["sample"]["bound_states"]


def test_the_wrinkle_changes_the_gaps_as_the_paper_says():
    """Strain shrinks Δ1 and Δ2, enlarges Δ3 and leaves Δ4; nothing else differs between on and off."""
    off = load_spec(DATA / "csca_metal_off_wrinkle.toml")
    on = load_spec(DATA / "csca_metal_on_wrinkle.toml")
    d_off, d_on = np.array(off.sample["delta"]), np.array(on.sample["delta"])
    assert len(d_off) == len(d_on) == 4
    assert d_on[0] < d_off[0] and d_on[1] < d_off[1] and d_on[2] > d_off[2] and d_on[3] == d_off[3]
    assert 3 < d_off.min() and d_off.max() < 10  # four pairs of peaks between 3 and 10 meV
    assert {k: v for k, v in on.sample.items() if k != "delta"} == {k: v for k, v in off.sample.items() if k != "delta"}
    assert on.junction == off.junction and on.tip == off.tip == {"kind": "metal"}


def test_the_pb_tip_spectrum_is_the_off_wrinkle_sample_with_the_pb_tip():
    """Pb-tip peaks at Δ_t + Δ_1..3 = 5.8, 7.1, 8.9 mV (paper), the tip of the Pb-Pb reference."""
    pb_tip = load_spec(DATA / "csca_pb_tip.toml")
    assert pb_tip.sample == load_spec(DATA / "csca_metal_off_wrinkle.toml").sample
    assert pb_tip.tip == load_spec(DATA / "pb_pb.toml").tip
    sums = pb_tip.tip["delta"] + np.array(pb_tip.sample["delta"][:3])
    np.testing.assert_allclose(sums, [5.8, 7.1, 8.9], atol=0.05)


def test_both_zecp_files_hold_the_same_pairs():
    metal = load_spec(DATA / "zecp_metal_tip.toml")
    pb = load_spec(DATA / "zecp_pb_tip.toml")
    assert metal.metal_tip and not pb.metal_tip
    assert metal.sample == pb.sample and len(metal.bound_states) == 2
    assert G.TABLE["zecp_metal_tip"].bias.tolist() == G.TABLE["zecp_pb_tip"].bias.tolist()


def _states(folder):
    return [tomllib.loads((DATA / f"{folder}/{stem}.toml").read_text())["sample"]["bound_states"][0]
            for stem in G.SERIES[folder].stems]


def test_the_gn_series_splits_into_two_branches():
    """The paper's conclusion: the ZECP's pair moves off zero as G_set grows, from 0.01 to 0.25 meV."""
    eps = [s["eps"] for s in _states("gn_series")]
    assert eps == sorted(eps) and eps[0] == pytest.approx(0.010, abs=5e-4) and eps[-1] == pytest.approx(0.25, abs=0.01)


def test_the_field_series_changes_little_at_2_tesla_and_much_at_5():
    """physics.md §7: little change at 2 T; at 5 T the peak is strongly suppressed and much broader (noise-free
    spectra of the bundled specs)."""
    bias = np.round(np.arange(-1.0, 1.0 + 1e-9, 0.005), 6)
    heights, widths = [], []
    for stem in ("field_0T", "field_2T", "field_5T"):
        y = stsbayes.simulate(DATA / f"field_series/{stem}.toml", bias, noise=0.0)
        peak = y.max() - y[0]
        above = bias[y >= y[0] + peak / 2]
        heights.append(peak)
        widths.append(above.max() - above.min())
        assert np.argmax(y) == pytest.approx(len(bias) // 2, abs=2)  # one peak, at zero bias
    assert heights[1] / heights[0] > 0.75 and widths[1] / widths[0] < 1.25
    assert heights[2] / heights[0] < 0.6 and widths[2] / widths[0] > 1.6


def test_the_defects_share_one_population_of_offset_pairs():
    states = _states("defects")
    assert len(states) == 11 and all(0.03 <= s["eps"] <= 0.075 and s["u2"] != s["v2"] for s in states)
