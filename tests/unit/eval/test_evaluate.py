"""``wardwatch eval``: a small scenario set through the alert core, and its replay files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerting.core.config import load_rules
from alerting.quality import label_from_line, quality
from alerting.replay import Replay, replay
from wardwatch.cli import app

runner = CliRunner()
SMALL = ["--beds", "8", "--days", "0.25", "--seed", "3"]
KEYS = {
    "sensitivity", "median_lead_time_h", "false_alerts_per_bed_day",
    "false_alerts_per_bed_day_any_priority", "technical_alerts_per_bed_day", "beds",
    "bed_days", "deteriorating_beds", "scenario_set_version", "goals", "by_kind",
}


def test_eval_json_small_set_is_deterministic() -> None:
    first = runner.invoke(app, ["eval", "--json", *SMALL])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["eval", "--json", *SMALL])
    assert first.stdout == second.stdout  # timings go to stderr only
    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert set(result) >= KEYS
    assert result["beds"] == 8 and result["deteriorating_beds"] == 3
    assert set(result["goals"]) == {"sensitivity", "median_lead_time_h",
                                    "false_alerts_per_bed_day"}
    for g in result["goals"].values():
        assert isinstance(g["met"], bool)
    assert set(result["by_kind"]) == {"stable", "sepsis", "crying", "resp_failure", "fever",
                                      "subtle_drift", "artefacts"}
    if result["sensitivity"] is not None:
        assert 0 <= result["sensitivity"] <= 1
    assert "timings" in first.stderr
    other = runner.invoke(app, ["eval", "--json", "--beds", "8", "--days", "0.25",
                                "--seed", "4"])
    assert other.stdout != first.stdout


def test_eval_table_and_bad_rules(tmp_path: Path) -> None:
    res = runner.invoke(app, ["eval", *SMALL])
    assert res.exit_code == 0 and "sensitivity" in res.stdout
    bad = tmp_path / "rules.toml"
    bad.write_text("threshold = 3\n")
    res = runner.invoke(app, ["eval", "--json", *SMALL, "--rules", str(bad)])
    assert res.exit_code == 2
    assert "threshold" in res.stderr and res.stdout == ""


def test_written_scenarios_replay_to_the_same_metrics(tmp_path: Path) -> None:
    res = runner.invoke(app, ["eval", "--write-scenarios", str(tmp_path / "set"), *SMALL])
    assert res.exit_code == 0, res.output
    written = json.loads(res.stdout.strip().splitlines()[-1])
    d = tmp_path / "set"
    assert sorted(p.name for p in d.iterdir()) == sorted(written["files"])
    truth = json.loads((d / "ground_truth.json").read_text())
    assert truth["scenario_set_version"] == written["scenario_set_version"]
    # the labelled file: the input lines plus the label lines, in time order
    labelled = [json.loads(x) for x in (d / "ward_labelled.jsonl").read_text().splitlines()]
    labels = [label_from_line(x) for x in labelled if "label" in x]
    assert len(labels) == written["labels"] == len(truth["labels"]) == 3
    assert [x["t"] for x in labelled] == sorted(x["t"] for x in labelled)
    plain = (d / "ward.jsonl").read_text().splitlines()
    assert [x for x in labelled if "label" not in x] == [json.loads(x) for x in plain]
    # today's replay reads ward.jsonl; its events and the labels give eval's numbers
    rep = Replay(load_rules(None), unit="eval")
    events = []
    for n, line in enumerate(plain, start=1):
        events += rep.feed(line, n)
    days = {b: (e - s).total_seconds() / 86400 for b, (s, e) in rep.spans.items()}
    m = quality(events, labels, days).as_dict()
    ev = runner.invoke(app, ["eval", "--json", *SMALL])
    result = json.loads(ev.stdout.strip().splitlines()[-1])
    for key, value in m.items():
        assert result[key] == value, key
    # replay reads the labelled file too, and its lead times are eval's
    *_, summary = replay((d / "ward_labelled.jsonl").read_text().splitlines(),
                         load_rules(None), unit="eval")
    assert summary["labelled_events"] == 3
    by_time = sorted(result["deteriorating"], key=lambda r: next(
        lb.t for lb in labels if lb.bed == r["bed"]))
    assert summary["lead_times_h"] == pytest.approx(
        [r["lead_time_h"] for r in by_time], abs=1e-3)


def test_write_scenarios_onto_a_file_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("mine\n")
    res = runner.invoke(app, ["eval", "--write-scenarios", str(target), *SMALL])
    assert res.exit_code == 1
    assert "cannot write the scenarios" in res.stderr and res.stdout == ""
    assert target.read_text() == "mine\n"  # nothing lost
