"""Red-team findings on ``wardwatch replay`` (issue 17): input that passes the line schema but
broke what is behind it. Each test failed before its fix."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from alerting.core import default_rules
from alerting.replay import MalformedLine, Replay, StateError
from alerting.replay_influx import Converter, LabelsError, bed_specs, read_labels
from wardwatch.cli import app

runner = CliRunner()
DEEP = "[" * 100_000 + "]" * 100_000


def test_a_deeply_nested_line_is_malformed_not_a_crash() -> None:
    r = Replay(default_rules())
    raw = '{"t":"2024-05-01T10:00:00Z","bed":"b1","age_days":1000,"inputs":{"avpu":' + DEEP
    raw += "}}"
    with pytest.raises(MalformedLine) as exc:
        r.feed(raw, 3)
    assert exc.value.lineno == 3
    assert "nested" in exc.value.reason


def test_a_deeply_nested_line_exits_2_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "in.jsonl"
    p.write_text('{"t":"2024-05-01T10:00:00Z","bed":"b1","age_days":1000,"inputs":{}}\n'
                 + DEEP + "\n", encoding="utf-8")
    res = runner.invoke(app, ["replay", "--input", str(p), "--json"])
    assert res.exit_code == 2
    assert "line 2" in res.stderr


def test_a_deeply_nested_state_file_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "in.jsonl"
    p.write_text('{"t":"2024-05-01T10:00:00Z","bed":"b1","age_days":1000,"inputs":{}}\n',
                 encoding="utf-8")
    state = tmp_path / "state.json"
    state.write_text(DEEP, encoding="utf-8")
    res = runner.invoke(app, ["replay", "--input", str(p), "--json", "--state", str(state)])
    assert res.exit_code == 2
    assert "--state" in res.stderr
    assert state.read_text(encoding="utf-8") == DEEP  # left as it was


@pytest.mark.parametrize(
    "raw",
    [
        DEEP,
        json.dumps({"t": "0001-01-01T00:00:00+14:00", "bed": "b1", "label": "x"}),
        json.dumps({"t": "9999-12-31T23:59:00-14:00", "bed": "b1", "label": "x"}),
    ],
)
def test_a_labels_file_that_breaks_the_parser_is_a_labels_error(raw: str) -> None:
    with pytest.raises(LabelsError, match="line 1"):
        read_labels([raw])


HIGH = {"hr_bpm": 210, "rr_bpm": 70, "spo2_pct": 85}
LOW = {"hr_bpm": 170, "rr_bpm": 50, "spo2_pct": 93}


def _end_of_2099(command: dict[str, object], inputs: dict[str, int]) -> list[str]:
    """A child in the last ten minutes the wire can carry, then ``command``."""
    out = []
    for i in range(0, 590, 5):
        m, s = divmod(i, 60)
        out.append(json.dumps({"t": f"2099-12-31T23:{50 + m:02d}:{s:02d}Z", "bed": "b1",
                               "age_days": 1000,
                               "inputs": inputs}))
    out.append(json.dumps({"t": "2099-12-31T23:59:59.999999Z", "bed": "b1", **command}))
    return out


@pytest.mark.parametrize(
    ("command", "inputs"),
    [({"command": "ack"}, HIGH), ({"command": "snooze", "minutes": 60}, LOW)],
    ids=["ack", "snooze"],
)
def test_a_command_at_the_end_of_2099_is_replayed(
    command: dict[str, object], inputs: dict[str, int]
) -> None:
    """Found by red-team: an ack in the last hours before 2100 (a valid ``t``) made the core
    build an alert whose reassessment time lies past the wire's range: a pydantic
    ValidationError traceback instead of the ack."""
    r = Replay(default_rules())
    out = []
    for n, raw in enumerate(_end_of_2099(command, inputs), start=1):
        out += r.feed(raw, n)
    assert any(d["event"] == "raised" and d["kind"] == "clinical" for d in out)
    assert out[-1]["event"] == ("acknowledged" if command["command"] == "ack" else "snoozed")


def _saved() -> dict[str, object]:
    r = Replay(default_rules())
    for n, raw in enumerate(_end_of_2099({"command": "ack"}, HIGH)[:60], start=1):
        r.feed(raw.replace("2099-12-31T23", "2024-05-01T10"), n)
    r.feed(json.dumps({"t": "2024-05-01T10:55:00Z", "bed": "b1", "label": "deterioration"}), 61)
    saved: dict[str, object] = json.loads(json.dumps(r.snapshot()))
    return saved


def _tamper(state: dict[str, Any], what: str) -> None:
    if what == "last_t naive":
        state["last_t"] = "2024-05-01T10:04:55"
    elif what == "span naive":
        state["spans"]["b1"] = ["2024-05-01T10:00:00", "2024-05-01T10:04:55"]
    elif what == "activation naive":
        state["leads"]["recent"]["b1"][0][0] = "2024-05-01T10:02:00"
    elif what == "label naive":
        state["leads"]["labels"][0][2] = "2024-05-01T10:05:00"
    elif what == "unknown event":
        state["events"]["exploded"] = 3
    elif what == "unknown kind":
        state["raised"]["psychic"] = {"high": 1}
    elif what == "alerted not a list":
        state["alerted"]["clinical"] = "b1"


@pytest.mark.parametrize(
    "what",
    ["last_t naive", "span naive", "activation naive", "label naive", "unknown event",
     "unknown kind", "alerted not a list"],
)
def test_a_tampered_state_is_refused_not_a_crash_or_a_wrong_summary(what: str) -> None:
    """Found by red-team: a saved state edited by hand (still JSON) restored, and then the
    next line ended the replay with a TypeError (naive times), or the summary carried keys or
    counts no replay produces. Now ``restore`` refuses it with ``StateError``."""
    state = _saved()
    _tamper(state, what)
    r = Replay(default_rules())
    with pytest.raises(StateError):
        r.restore(state)


def test_an_untampered_state_still_resumes() -> None:
    r = Replay(default_rules())
    r.restore(_saved())
    more = json.dumps({"t": "2024-05-01T10:56:00Z", "bed": "b1", "inputs": HIGH})
    r.feed(more, 62)
    assert r.summary()["labelled_events"] == 1


# -- stored history that does not convert -----------------------------------------------------
def _conv() -> tuple[Converter, list[str]]:
    from tests.unit.alerting.test_replay_convert import ctx

    specs, without = bed_specs(ctx(b1=date(2021, 1, 1)))
    warnings: list[str] = []
    return Converter(specs, without=without, warn=warnings.append), warnings


@pytest.mark.parametrize("quality", ["INVALID", "calibrating", "", "questionable "])
def test_a_stored_quality_the_converter_does_not_know_is_skipped_not_scored(
    quality: str,
) -> None:
    """Found by red-team: any quality tag but ``invalid`` (another spelling, a quality a later
    ingest stores) was replayed as a valid value and scored; a value of unknown quality is
    now skipped and counted (``unknown_quality``), never taken as valid."""
    from tests.unit.alerting.test_replay_convert import obs

    conv, _ = _conv()
    lines = conv.page([obs(0, "b1", "HR", 210.0, quality=quality),
                       obs(0, "b1", "RR", 30.0)], [])
    assert [ln["inputs"] for ln in lines] == [{"rr_bpm": 30.0}]
    assert conv.skipped["unknown_quality"] == 1


@pytest.mark.parametrize("stored", ["{not json", DEEP])
def test_a_stored_charted_field_that_is_not_json_skips_the_set(stored: str) -> None:
    """Found by red-team: a charted ``__json`` field that does not parse (a damaged point)
    ended ``--from-influx`` with a JSONDecodeError or RecursionError traceback; the set is now
    skipped, counted and said, and the replay goes on."""
    from tests.unit.alerting.test_replay_convert import chart, obs

    conv, warnings = _conv()
    lines = conv.page([obs(0, "b1", "HR", 120.0)],
                      [chart(0, "b1", "set-1", crt_s=2.0, oxygen__json=stored)])
    assert [ln["inputs"] for ln in lines] == [{"hr_bpm": 120.0}]
    assert conv.skipped["chart_refused"] == 1
    assert any("set-1" in w for w in warnings)


def test_a_state_saved_under_other_rules_of_the_same_version_is_refused(tmp_path: Path) -> None:
    """Found by red-team: ``--state`` checked only the rules' ``version`` string (``"1"`` by
    default, and kept by a copy edited for a what-if), so a state saved under the shipped
    rules resumed under a changed pack without a word, mixing the two in one summary."""
    shipped = Path(__file__).resolve().parents[3] / "alerting" / "unit_rules.toml"
    edited = tmp_path / "edited.toml"
    text = shipped.read_text(encoding="utf-8")
    assert 'version = "1"' in text
    assert "high_s = 90" in text
    edited.write_text(text.replace("high_s = 90", "high_s = 30", 1), encoding="utf-8")
    first = tmp_path / "a.jsonl"
    first.write_text("\n".join(_end_of_2099({"command": "ack"}, HIGH)[:10]).replace(
        "2099-12-31T23", "2024-05-01T10") + "\n", encoding="utf-8")
    second = tmp_path / "b.jsonl"
    second.write_text(json.dumps({"t": "2024-05-01T11:00:00Z", "bed": "b1", "inputs": HIGH})
                      + "\n", encoding="utf-8")
    state = tmp_path / "state.json"
    res = runner.invoke(app, ["replay", "--input", str(first), "--json", "--state", str(state)])
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(app, ["replay", "--input", str(second), "--json", "--state", str(state),
                              "--config", str(edited)])
    assert res.exit_code == 2
    assert "rules" in res.stderr
    same = runner.invoke(app, ["replay", "--input", str(second), "--json", "--state",
                               str(state), "--config", str(shipped)])
    assert same.exit_code == 0, same.stderr


@pytest.mark.parametrize("minutes", [1e-9, 1e-300, 5e-324])
def test_a_snooze_shorter_than_a_microsecond_ends_and_reminds(minutes: float) -> None:
    """Found by red-team: a snooze of a positive number of minutes below a microsecond passed
    the bounds check, ended *at* the command's time, and the bed's timer keeps only times after
    now: the alert stayed snoozed, silent, for as long as readings kept coming (no reminder).
    The same through the live engine's AlertCommand."""
    r = Replay(default_rules())
    out: list[dict[str, Any]] = []
    for n, raw in enumerate(_end_of_2099({"command": "ack"}, LOW)[:-1], start=1):
        out += r.feed(raw.replace("2099-12-31T23", "2024-05-01T10"), n)
    assert out[-1]["event"] == "raised" and out[-1]["priority"] == "low"
    out += r.feed(json.dumps({"t": "2024-05-01T10:59:50Z", "bed": "b1", "command": "snooze",
                              "minutes": minutes}), 500)
    assert out[-1]["event"] == "snoozed"
    for k in range(1, 13):  # the child stays as it was, a line every 10 s, two more minutes
        out += r.feed(json.dumps({"t": f"2024-05-01T11:{k // 6:02d}:{k % 6 * 10:02d}Z",
                                  "bed": "b1", "inputs": LOW}), 500 + k)
    assert out[-1]["event"] == "reminder" and out[-1]["state"] == "active"
