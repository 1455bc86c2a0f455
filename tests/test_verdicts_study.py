"""studies/verdicts.py: the verdict tallies and their Clopper-Pearson bounds on hand-counted records, the truths'
prior draws against the hypotheses' own PyMC priors, and the resumable study with a cheap stand-in for `compare`
whose verdict blocks come from inference/verdicts.py (the real format)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from stsbayes.inference import hypotheses as H
from stsbayes.inference import verdicts as V

ROOT = Path(__file__).resolve().parent.parent


def _load_study():
    module = importlib.util.spec_from_file_location("verdicts_study", ROOT / "studies" / "verdicts.py")
    study = importlib.util.module_from_spec(module)
    module.loader.exec_module(study)
    return study


study = _load_study()


# ------------------------------------------------------------------------------------------ the tallies


def _block(side, strength):
    return {"favoured": side, "strength": strength, "ln_bf": 4.0, "err": 0.2, "capped_by": None}


def _record(truth, index, zero=None, pair=None, *, converged=True, error=None):
    """A record as the study writes it, with the two verdicts given as (favoured side, strength)."""
    record = {"truth": truth, "index": index, "error": error, "converged": converged and not error,
              "timing_s": {"simulate": 0.1, "compare": 10.0}, "code": None,
              "diagnostics": {"unconverged": [] if converged else ["ysr"]}}
    record["verdicts"] = None if error else {"zero_vs_offset": _block(*zero), "mzm_vs_ysr2": _block(*pair)}
    return record


def _write(folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    for r in records:
        (folder / f"{r['truth']}_{r['index']:04d}.json").write_text(json.dumps(r))


def test_tallies_rates_and_bounds_by_hand(tmp_path):
    """mzm: 100 simulations, none strong for the wrong class among the converged (one unconverged run has a raw
    "very strong" offset verdict, which must not count), 2 errors; ysr2: 60 simulations, 3 strong for mzm."""
    mzm = ([_record("mzm", i, ("zero", "strong"), ("mzm", "very strong")) for i in range(40)]
           + [_record("mzm", 40 + i, ("offset", "positive"), ("ysr2", "inconclusive")) for i in range(57)]
           + [_record("mzm", 97, ("offset", "very strong"), ("ysr2", "strong"), converged=False)]
           + [_record("mzm", 98 + i, error="RuntimeError: boom") for i in range(2)])
    ysr2 = ([_record("ysr2", i, ("zero", "strong"), ("mzm", "very strong")) for i in range(3)]
            + [_record("ysr2", 3 + i, ("offset", "very strong"), ("ysr2", "positive")) for i in range(57)])
    _write(tmp_path / "verdicts", mzm + ysr2)
    records = study.load_records(tmp_path / "verdicts")
    assert [r["truth"] for r in records] == ["mzm"] * 100 + ["ysr2"] * 60
    s = study.summarize(records)

    m = s["truths"]["mzm"]
    assert (m["n_simulations"], m["n_errors"], m["n_unconverged"]) == (100, 2, 1)
    assert m["errors"] == {"98": "RuntimeError: boom", "99": "RuntimeError: boom"} and m["unconverged"] == {
        "97": ["ysr"]}
    q = m["questions"]["zero_vs_offset"]
    assert (q["right_side"], q["wrong_side"]) == ("zero", "offset")
    assert q["counts"]["zero"] == {"inconclusive": 0, "positive": 0, "strong": 40, "very strong": 0}
    assert q["counts"]["offset"] == {"inconclusive": 0, "positive": 57, "strong": 0, "very strong": 0}
    assert q["counts_unconverged"]["offset"]["very strong"] == 1 and q["errors"] == 2
    assert q["wrong_strong_unconverged"] == 1
    # 0 of 100: the upper bound solves (1 - p)^100 = 0.025
    w = q["wrong_strong"]
    assert (w["k"], w["n"], w["rate"], w["cp95"][0]) == (0, 100, 0.0, 0.0)
    assert w["cp95"][1] == pytest.approx(1 - 0.025 ** (1 / 100), abs=1e-10) == pytest.approx(0.0362, abs=5e-5)
    assert q["criterion"] == {"max_upper_95": 0.05, "upper_95": w["cp95"][1], "n": 100, "met": True}
    assert (q["right_strong"]["k"], q["right_strong"]["n"]) == (40, 100)
    assert (q["wrong_strong_among_converged"]["n"], q["right_strong_among_converged"]["rate"]) == (97, 40 / 97)
    assert q["at_least"]["offset"]["positive"]["k"] == 57 and q["at_least"]["zero"]["positive"]["k"] == 40
    assert q["at_least"]["zero"]["very strong"]["k"] == 0
    p = m["questions"]["mzm_vs_ysr2"]
    assert (p["wrong_side"], p["right_strong"]["k"], p["wrong_strong"]["k"]) == ("ysr2", 40, 0)
    assert p["counts"]["mzm"]["very strong"] == 40 and p["at_least"]["mzm"]["strong"]["k"] == 40

    y = s["truths"]["ysr2"]["questions"]
    for question, wrong in (("zero_vs_offset", "zero"), ("mzm_vs_ysr2", "mzm")):
        w = y[question]["wrong_strong"]
        assert (y[question]["wrong_side"], w["k"], w["n"], w["rate"]) == (wrong, 3, 60, 0.05)
        # the exact interval's definition: P(X <= 3 | p = upper) = P(X >= 3 | p = lower) = 2.5 %
        assert stats.binom.cdf(3, 60, w["cp95"][1]) == pytest.approx(0.025, abs=1e-9)
        assert stats.binom.sf(2, 60, w["cp95"][0]) == pytest.approx(0.025, abs=1e-9)
        assert not y[question]["criterion"]["met"]
    assert y["zero_vs_offset"]["right_strong"]["k"] == 57 and y["mzm_vs_ysr2"]["right_strong"]["k"] == 0
    assert not s["criterion"]["met"] and s["criterion"]["truths_present"] == ["mzm", "ysr2"]

    # with ysr2 cleared the must-show holds; with a truth missing it is not shown
    cleared = mzm + [_record("ysr2", i, ("offset", "strong"), ("ysr2", "strong")) for i in range(72)]
    assert study.summarize(cleared)["criterion"]["met"]
    assert not study.summarize(mzm)["criterion"]["met"]
    # 71 clean simulations are not enough: 1 - 0.025^(1/71) > 0.05
    short = mzm + [_record("ysr2", i, ("offset", "strong"), ("ysr2", "strong")) for i in range(71)]
    assert not study.summarize(short)["criterion"]["met"]
    summary = study.summarize(records)
    study.plot(summary, tmp_path / "verdicts.png")
    assert (tmp_path / "verdicts.png").stat().st_size > 0


# ------------------------------------------------------------------------------------------ the truths


def test_prior_truths_follow_the_hypotheses_priors():
    """Each truth's bound states, drawn with NumPy, against forward draws of the fit's own PyMC prior
    (hypotheses.bound_state_variables): two-sample KS per quantity at fixed seeds. ysr2's prior is the iid one
    restricted to ascending energies, so its PyMC forward draws (which ignore the ordering) are sorted first."""
    import pymc as pm

    from stsbayes.inference import hypotheses as H

    n = 8000
    rng = np.random.default_rng(11)
    for h in ("mzm", "ysr2"):
        draws = [study.prior_bound_states(h, rng) for _ in range(n)]
        ours = {k: np.array([[bs[k] for bs in d] for d in draws]) for k in study.BOUND_KEYS}
        assert all(len(d) == H.N_STATES[h] for d in draws)
        with pm.Model() as model:
            H.bound_state_variables(h)
        if h == "mzm":
            width, w = pm.draw([model["width_all"], model["w_0"]], draws=n, random_seed=12)
            theirs = {"width": width, "u2": 0.5 * w[:, None], "v2": 0.5 * w[:, None]}
            assert np.all(ours["eps"] == 0) and np.array_equal(ours["u2"], ours["v2"])
        else:
            names = ["eps_all", "width_all", "u2_all", "v2_all"]
            values = pm.draw([model[k] for k in names], draws=n, random_seed=12)
            theirs = dict(zip(study.BOUND_KEYS, values))
            theirs["eps"] = np.sort(theirs["eps"], axis=1)
            assert np.all(np.diff(ours["eps"], axis=1) >= 0)
        for key, value in theirs.items():
            for k in range(value.shape[1]):
                p = stats.ks_2samp(ours[key][:, k], value[:, k]).pvalue
                assert p > 1e-3, (h, key, k, p)
        # and the test has power: a width without the floor shift is told apart
        shifted = ours["width"][:, 0] - H.WIDTH_FLOOR_SHIFT
        assert stats.ks_2samp(shifted, theirs["width"][:, 0]).pvalue < 1e-6


def test_paper_truths():
    spec = study.Conditions(0.2).spec
    rng = np.random.default_rng(0)
    assert study.truth_bound_states("ysr2", "paper", rng, spec) == [
        {"eps": 0.03, "width": 0.02, "u2": 0.35, "v2": 0.12}, {"eps": 0.12, "width": 0.025, "u2": 0.10, "v2": 0.25}]
    assert study.truth_bound_states("mzm", "paper", rng, spec) == [{"eps": 0.0, "width": 0.02, "u2": 0.25,
                                                                     "v2": 0.25}]


# ------------------------------------------------------------------------------------------ the study


class StandIn:
    """A cheap ``compare`` with the real verdict blocks (inference/verdicts.py): ln Z from the simulated spectrum's
    zero-bias height, so the two truths get different verdicts. ``fail_at`` calls raise RuntimeError (a failed
    fit), ``interrupt_at`` raises KeyboardInterrupt, ``unconverged_at`` leaves ysr unconverged."""

    def __init__(self, fail_at=(), interrupt_at=None, unconverged_at=()):
        self.fail_at, self.interrupt_at, self.unconverged_at = set(fail_at), interrupt_at, set(unconverged_at)
        self.calls = []

    def __call__(self, data, fit_spec, *, hypotheses, tip, chains, draws, tune, smc_draws, replicates, seed,
                 progress, workers):
        self.calls.append(seed)
        n = len(self.calls)
        if n == self.interrupt_at:
            raise KeyboardInterrupt
        if n in self.fail_at:
            raise RuntimeError("the mode search found no finite log density")
        assert tuple(hypotheses) == ("mzm", "ysr", "ysr2") and chains == 2 and replicates == 4
        assert tip.adequacy["adequate"] and data.bias.size == 41
        rng = np.random.default_rng(seed)
        centre = float(data.y[np.argmin(np.abs(data.bias))])
        log_z = {"mzm": (10 * centre + rng.normal(0, 1), 0.2), "ysr": (5.0 + rng.normal(0, 1), 0.3),
                 "ysr2": (float(rng.normal(8, 6)), 0.25)}
        converged = {h: not (h == "ysr" and n in self.unconverged_at) for h in hypotheses}
        agree = dict.fromkeys(hypotheses, True)
        blocks = V.verdicts(log_z, halved=log_z, doubled=log_z, estimators_agree=agree,
                            ppc_passed=dict.fromkeys(hypotheses, True), converged=converged)
        per = {h: {"log_evidence": v, "log_evidence_err": e, "log_evidence_by_estimator": {"smc": v, "bridge": v},
                   "log_evidence_err_by_estimator": {"smc": e, "bridge": e}, "estimators_agree": True,
                   "converged": converged[h],
                   "parameters": {"delta_tip": {"mean": 1.37}, "width[0]": {"mean": 0.02, "q05": 0.01, "q95": 0.03}},
                   "diagnostics": {"failed_gates": [] if converged[h] else ["R-hat 1.100 > 1.01"],
                                   "ppc": {"passed": True}}}
               for h, (v, e) in log_z.items()}
        return {"hypotheses": per, "verdicts": blocks, "log_bayes_factors": V.log_bayes_factors(log_z),
                "statement": V.statement(blocks), "timing_s": {"total": 0.01},
                "diagnostics": {"converged": all(converged.values()),
                                "unconverged": [h for h in hypotheses if not converged[h]], "ppc_failed": [],
                                "estimators_disagree": []}}


ARGS = ["--simulations", "3", "--chains", "2", "--draws", "50", "--tune", "50", "--smc-draws", "100",
        "--window", "0.2", "--seed", "5"]


def _files(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.glob("*_*.json"))}


def test_study_resumes_refuses_other_settings_and_counts_errors(tmp_path, capsys):
    out = tmp_path / "res"
    folder = out / "verdicts"
    first = StandIn(fail_at={2}, unconverged_at={3})
    assert study.main(ARGS + ["--out", str(out), "--stop-after", "3"], compare_fn=first) == 0
    assert len(first.calls) == 3
    before = _files(folder)
    assert list(before) == ["mzm_0000.json", "mzm_0001.json", "ysr2_0000.json"]  # interleaved: mzm 0, ysr2 0, mzm 1

    # an interruption mid-comparison leaves no half record
    with pytest.raises(KeyboardInterrupt):
        study.main(ARGS + ["--out", str(out)], compare_fn=StandIn(interrupt_at=2))
    assert len(_files(folder)) == 4

    again = StandIn()
    assert study.main(ARGS + ["--out", str(out)], compare_fn=again) == 0
    assert len(again.calls) == 2  # only the two unfinished simulations ran
    after = _files(folder)
    assert len(after) == 6 and all(after[name] == before[name] for name in before)

    records = study.load_records(folder)
    error = next(r for r in records if r["error"])
    assert (error["truth"], error["index"], error["verdicts"], error["converged"]) == ("ysr2", 0, None, False)
    assert error["error"] == "RuntimeError: the mode search found no finite log density"
    unconverged = next(r for r in records if r["truth"] == "mzm" and r["index"] == 1)
    assert not unconverged["converged"] and unconverged["hypotheses"]["ysr"]["failed_gates"]
    # convergence caps the verdicts that involve ysr (zero vs offset), not mzm vs ysr2
    assert "convergence" in unconverged["verdicts"]["zero_vs_offset"]["capped_by"]
    for r in records:
        assert r["truth_bound_states"] and len(r["truth_bound_states"]) == (1 if r["truth"] == "mzm" else 2)
        assert set(r["seeds"]) == {"truth", "noise", "compare"} and r["code"]["stsbayes_sources_sha256"]
    ok = [r for r in records if not r["error"]]
    assert all(set(r["verdicts"]) == {"zero_vs_offset", "mzm_vs_ysr2"} for r in ok)
    assert all(r["hypotheses"]["mzm"]["bound_states"] == {"width[0]": {"mean": 0.02, "q05": 0.01, "q95": 0.03}}
               for r in ok)

    summary = json.loads((out / "verdicts.json").read_text())
    assert (out / "verdicts.png").stat().st_size > 0
    assert summary["n_records"] == 6 and summary["target_simulations"] == 3
    assert summary["truths"]["ysr2"]["n_errors"] == 1 and summary["truths"]["ysr2"]["errors"] == {
        "0": error["error"]}
    assert summary["truths"]["mzm"]["n_unconverged"] == 1
    for truth in ("mzm", "ysr2"):
        for q in ("zero_vs_offset", "mzm_vs_ysr2"):
            block = summary["truths"][truth]["questions"][q]
            assert block["n"] == 3 and block["wrong_strong"]["n"] == 3  # failed runs stay in the denominator
            counted = sum(sum(c.values()) for c in block["counts"].values())
            uncounted = sum(sum(c.values()) for c in block["counts_unconverged"].values())
            assert counted + uncounted + block["errors"] == 3
    assert summary["settings"]["draws"] == 50 and summary["settings"]["mode"] == "prior"
    assert summary["settings"]["compare"].endswith("StandIn")
    assert summary["settings"]["conditions"]["bias_mV"] == [-0.2, 0.2, 41]

    # a fresh study with the same seeds gives the same records: the resumed study is the uninterrupted one
    settings = {"chains": 2, "draws": 50, "tune": 50, "smc_draws": 100, "replicates": 4,
                "hypotheses": ["mzm", "ysr", "ysr2"], "priors": H.PRIOR_VERSION}
    fresh = study.run_study(study.Conditions(0.2), tmp_path / "fresh", truths=("mzm", "ysr2"), simulations=3,
                            mode="prior", seed=5, settings=settings,
                            compare_fn=StandIn(fail_at={2}, unconverged_at={3}), progress=None)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("timing_s", "code")} for r in rs]  # noqa: E731
    assert strip(fresh) == strip(records)
    assert json.loads((tmp_path / "fresh" / "settings.json").read_text()) == summary["settings"]

    # other settings in the same folder are refused with a sentence, and nothing runs
    capsys.readouterr()
    other = StandIn()
    assert study.main(ARGS + ["--out", str(out), "--simulations", "4", "--draws", "60"], compare_fn=other) == 2
    assert "other settings" in capsys.readouterr().err and not other.calls
    assert study.main(ARGS + ["--out", str(out), "--truths", "paper", "--truth", "mzm", "--stop-after", "1"],
                      compare_fn=StandIn()) == 0  # the paper's truths keep their own folder
    paper = study.load_records(out / "verdicts_paper")
    assert [r["truth_bound_states"] for r in paper] == [study.PAPER_MZM]
    assert (out / "verdicts_paper.json").exists()


def test_a_changed_summary_format_stops_the_study(tmp_path):
    """A summary without the fields the study reads is a bug to fix, not a failed fit to count."""
    def broken(*args, **kwargs):
        summary = StandIn()(*args, **kwargs)
        del summary["verdicts"]["mzm_vs_ysr2"]["strength"]
        return summary

    with pytest.raises(KeyError, match="format"):
        study.main(ARGS + ["--out", str(tmp_path), "--truth", "mzm"], compare_fn=broken)
    assert not list((tmp_path / "verdicts").glob("mzm_*.json"))
