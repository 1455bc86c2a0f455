"""Simulation-based calibration: the rank/band/coverage code on a conjugate model whose posterior is exact, its
power against a too-narrow posterior, resumability, and a tiny end-to-end run of the NIS study."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from stsbayes.diagnostics import sbc
from stsbayes.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


class Conjugate:
    """mu ~ N(0, 1), log_s ~ N(-1, 0.5), y_i ~ N(mu, 1) for 5 points, and an unobserved a ~ N(1, 2): the posterior
    is known in closed form, so its draws are exact (``narrow`` shrinks the posterior sd: a miscalibrated fit)."""

    parameters = ["mu", "a"]
    n_obs = 5

    def __init__(self, narrow=1.0, fail_every=None, interrupt_at=None):
        self.narrow, self.fail_every, self.interrupt_at = narrow, fail_every, interrupt_at
        self.calls = 0

    def simulate(self, seed):
        rng = np.random.default_rng(seed)
        mu, a = rng.normal(0.0, 1.0), rng.normal(1.0, 2.0)
        return {"mu": mu, "a": a}, rng.normal(mu, 1.0, size=self.n_obs)

    def fit(self, y, seed):
        self.calls += 1
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            raise KeyboardInterrupt  # an interruption mid-fit, as Ctrl-C or a kill would give
        rng = np.random.default_rng(seed)
        prec = 1.0 + self.n_obs
        mean, sd = y.sum() / prec, self.narrow / np.sqrt(prec)
        draws = {"mu": rng.normal(mean, sd, size=(4, 250)), "a": rng.normal(1.0, 2.0 * self.narrow, size=(4, 250))}
        failed = self.fail_every is not None and self.calls % self.fail_every == 0
        g = {"divergences": int(failed), "max_r_hat": 1.0, "min_ess_bulk": 1000.0, "converged": not failed,
             "failed_gates": ["1 divergent transitions"] if failed else []}
        return {"draws": draws, "gates": g, "timing_s": {"sample": 0.0}}


def _study(simulator, folder, n, **kw):
    return sbc.run_study(simulator, folder, simulations=n, seed=7, n_ranks=99, settings={"model": "conjugate"},
                         progress=None, **kw)


def test_exact_posterior_gives_uniform_ranks_and_nominal_coverage(tmp_path):
    records = _study(Conjugate(), tmp_path / "exact", 300)
    s = sbc.summarize_study(records, Conjugate.parameters, gaps=["mu", "a"], n_ranks=99)
    assert s["n_simulations"] == 300 and s["gate_failures"]["count"] == 0
    ranks = np.array(s["ranks"]["mu"])
    assert ranks.min() >= 0 and ranks.max() <= 99
    assert s["band"]["passed"], {p: b["points_outside"] for p, b in s["band"]["parameters"].items()}
    for level, key in ((0.5, "50"), (0.9, "90")):
        for p in Conjugate.parameters:
            c = s["coverage"][key][p]
            lo, hi = c["cp95"]
            assert lo <= level <= hi, (key, p, c)
    assert s["gap_coverage_90"]["passed"]


def test_band_and_coverage_reject_a_too_narrow_posterior(tmp_path):
    records = _study(Conjugate(narrow=0.5), tmp_path / "narrow", 200)
    s = sbc.summarize_study(records, Conjugate.parameters, gaps=["mu"], n_ranks=99)
    assert not s["band"]["passed"]
    assert not s["band"]["parameters"]["mu"]["inside"] and not s["band"]["parameters"]["a"]["inside"]
    assert s["coverage"]["90"]["mu"]["cp95"][1] < 0.9  # half-width intervals cover ~59 %
    assert not s["gap_coverage_90"]["passed"]


def test_band_is_simultaneous_at_its_level():
    # uniform ranks leave a single parameter's 95 % band in about 5 % of studies, not the pointwise ~50 %
    rng = np.random.default_rng(3)
    band = sbc.rank_ecdf_bands({"x": rng.integers(0, 100, size=100)}, 99, n_band_simulations=4000)
    lower, upper = band["parameters"]["x"]["lower"], band["parameters"]["x"]["upper"]
    z = np.arange(1, 100) / 100
    left = 0
    for _ in range(300):
        r = np.sort(rng.integers(0, 100, size=100))
        ecdf = np.searchsorted(r, np.arange(1, 100), side="left") / 100
        left += np.any((ecdf < lower - 1e-12) | (ecdf > upper + 1e-12))
    assert 0.01 <= left / 300 <= 0.10, left
    assert np.all(lower <= z) and np.all(upper >= z)


def test_failed_fits_are_counted_as_misses(tmp_path):
    records = _study(Conjugate(fail_every=4), tmp_path / "failing", 40)
    s = sbc.summarize_study(records, Conjugate.parameters, n_ranks=99)
    assert s["gate_failures"]["count"] == 10 and s["gate_failures"]["by_reason"]["divergences"] == 10
    assert s["coverage"]["90"]["mu"]["covered"] <= 30
    assert s["coverage_all_fits"]["90"]["mu"]["covered"] > s["coverage"]["90"]["mu"]["covered"]
    assert len(s["ranks"]["mu"]) == 40  # failed fits stay in the ranks too


def test_clopper_pearson_and_binomial_band():
    assert sbc.clopper_pearson(0, 10)[0] == 0.0 and sbc.clopper_pearson(10, 10)[1] == 1.0
    lo, hi = sbc.clopper_pearson(180, 200)
    assert abs(lo - 0.8497872) < 1e-6  # R: binom.test(180, 200)$conf.int
    assert abs(hi - (1 - sbc.clopper_pearson(20, 200)[0])) < 1e-12  # the interval is symmetric in k <-> n - k
    lo, hi = sbc.binomial_band(200, 0.9, 0.05 / 2)
    assert lo < 180 < hi and hi - lo < 25


def test_study_resumes_after_an_interruption(tmp_path):
    folder = tmp_path / "resume"
    with pytest.raises(KeyboardInterrupt):
        _study(Conjugate(interrupt_at=4), folder, 6)
    finished = sorted(folder.glob("sim_*.json"))
    assert [p.name for p in finished] == ["sim_0000.json", "sim_0001.json", "sim_0002.json"]
    assert not list(folder.glob(".*.tmp"))  # nothing half-written
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in finished}
    resumed = Conjugate()
    records = _study(resumed, folder, 6)
    assert resumed.calls == 3 and [r["index"] for r in records] == list(range(6))
    for name, (content, mtime) in before.items():
        assert (folder / name).read_bytes() == content and (folder / name).stat().st_mtime_ns == mtime
    # a fresh study with the same seeds gives the same records: the resumed one is the uninterrupted one
    fresh = _study(Conjugate(), tmp_path / "fresh", 6)
    assert [r["ranks"] for r in fresh] == [r["ranks"] for r in records]
    with pytest.raises(InputError, match="other settings"):
        sbc.run_study(Conjugate(), folder, simulations=6, seed=8, n_ranks=99, settings={"model": "conjugate"},
                      progress=None)


def _load_study():
    module = importlib.util.spec_from_file_location("sbc_study", ROOT / "studies" / "sbc.py")
    study = importlib.util.module_from_spec(module)
    module.loader.exec_module(study)
    return study


def test_tiny_nis_study_end_to_end(tmp_path):
    """Two NIS simulations with short, shallow chains through studies/sbc.py (one compiled model): the outputs
    and their schema. (Resuming is tested on the conjugate model above; the study uses the same run_study.)"""
    study = _load_study()
    args = ["--model", "nis", "--simulations", "2", "--chains", "2", "--draws", "30", "--tune", "30",
            "--ranks", "19", "--map-starts", "1", "--max-depth", "5", "--points", "61", "--out", str(tmp_path)]
    assert study.main(args) == 0
    s = json.loads((tmp_path / "sbc_nis.json").read_text())
    assert (tmp_path / "sbc_nis_ecdf.png").stat().st_size > 0 and (tmp_path / "sbc_nis_coverage.png").exists()
    names = ["T_eff", "delta[0]", "delta[1]", "gamma[0]", "gamma[1]", "weight[0]", "weight[1]", "g_n",
             "bias_offset", "b0", "b1", "sigma"]
    assert s["parameters"] == names and s["n_simulations"] == 2 and s["n_ranks"] == 19
    for key in ("ranks", "band", "coverage", "coverage_all_fits", "gate_failures", "gap_coverage_90", "timing_s",
                "code", "settings", "compile_s"):
        assert key in s, key
    assert all(len(s["ranks"][p]) == s["n_fitted"] for p in names)
    assert all(0 <= r <= 19 for p in names for r in s["ranks"][p])
    assert set(s["coverage"]) == {"50", "90"} and s["coverage"]["90"]["delta[0]"]["n"] == 2
    assert s["gap_coverage_90"]["counts"].keys() == {"delta[0]", "delta[1]"}
    assert s["settings"]["draws"] == 30 and s["code"]["versions"]["stsbayes"]
    records = sbc.load_records(tmp_path / "sbc_nis")
    for r in records:
        truth = r["truth"]
        assert truth["delta[0]"] < truth["delta[1]"] and abs(truth["weight[0]"] + truth["weight[1]"] - 1) < 1e-9
        assert truth["T_eff"] > 0.08 and r["timing_s"]["fit"] > 0
