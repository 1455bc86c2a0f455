"""The study scripts (studies/): steps resume, refuse bad input with exit code 2, and the index page puts the
paper's claim beside the posterior's answer with links that resolve. The steps' sampling itself is covered by the
tests of the commands they call; `make demo` runs the main line for real."""

import json
import sys
from pathlib import Path

import pytest

STUDIES = Path(__file__).resolve().parent.parent / "studies"
sys.path.insert(0, str(STUDIES))

import paper  # noqa: E402
import study  # noqa: E402
from stsbayes.models import load_spec  # noqa: E402
from stsbayes.reports.html import check_report_assets  # noqa: E402


def fake_step(name, calls, code=0):
    def run(folder, settings, log):
        calls.append(settings.name)
        exit_code = log(["info", study.DATA / "pb_pb.dat"]) if code == 0 else log(["info", folder / "missing.dat"])
        (folder / "report.html").write_text("<html><body><p>report</p></body></html>")
        return f"result of {name}", {"x": 1.0}, "report.html", exit_code == 0
    return study.Step(name, f"Title {name}", f"claim of {name}", run)


def test_a_finished_step_is_kept_and_rerun_only_for_other_settings(tmp_path, capsys):
    calls = []
    step = fake_step("one", calls)
    first = study.run_step(step, tmp_path, study.PASSES["demo"])
    assert first["converged"] and first["commands"] == [f"stsbayes info {study.DATA / 'pb_pb.dat'}"]
    again = study.run_step(step, tmp_path, study.PASSES["demo"])
    assert calls == ["demo"] and again["result"] == "result of one"
    study.run_step(step, tmp_path, study.PASSES["full"])
    study.run_step(step, tmp_path, study.PASSES["full"], force=True)
    assert calls == ["demo", "full", "full"]
    record = json.loads((tmp_path / "one" / "step.json").read_text())
    assert record["settings"]["name"] == "full" and record["claim"] == "claim of one"


def test_a_refused_command_stops_the_step_without_a_record(tmp_path, capsys):
    step = fake_step("bad", [], code=2)
    with pytest.raises(study.StepFailed, match="refused its input"):
        study.run_step(step, tmp_path, study.PASSES["demo"])
    assert not (tmp_path / "bad" / "step.json").exists()
    assert study.step_main(step, ["--pass", "demo", "--out", str(tmp_path)]) == 2


def test_a_pb_tip_step_without_the_calibration_says_what_to_run(tmp_path):
    with pytest.raises(study.StepFailed, match="tip_calibration.py first"):
        study.tip_folder(tmp_path)


def test_index_puts_claim_beside_result_and_links_resolve(tmp_path):
    records = [study.run_step(fake_step(name, []), tmp_path, study.PASSES["demo"]) for name in ("a", "b")]
    records[1]["converged"], records[1]["status"] = False, "NOT CONVERGED: do not quote"
    index = paper.index_page(records, tmp_path, study.PASSES["demo"])
    html = index.read_text()
    for text in ("claim of a", "result of a", 'href="a/report.html"', "NOT CONVERGED", "the paper", "the posterior"):
        assert text in html
    assert check_report_assets(index) == []


def test_every_step_is_described_and_its_inputs_exist():
    names = [s.name for s in paper.STEPS]
    assert names[:4] == ["tip_calibration", "gaps_strain", "pb_tip_sample", "zecp_origin"]
    assert set(paper.DEMO_STEPS) <= set(names)
    for step in paper.STEPS:
        assert step.claim and step.title and set(step.needs) <= set(names[:names.index(step.name)])
    for spec in study.SPECS.glob("*.toml"):
        load_spec(spec)  # every fit spec is valid
    for f in ("pb_pb.dat", "zecp_pb_tip.dat", "zecp_metal_tip.dat", "csca_pb_tip.dat", "csca_metal_on_wrinkle.dat",
              "csca_metal_off_wrinkle.dat", "gn_series/manifest.csv", "field_series/manifest.csv",
              "defects/manifest.csv"):
        assert (study.DATA / f).exists(), f


def test_paper_refuses_unknown_steps(capsys):
    assert paper.main(["--steps", "tip_calibration,nonsense"]) == 2
    assert "unknown step nonsense" in capsys.readouterr().err
