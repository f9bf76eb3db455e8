"""Red-team findings on ``wardwatch replay`` (issue 17): input that passes the line schema but
broke what is behind it. Each test failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerting.core import default_rules
from alerting.replay import MalformedLine, Replay
from alerting.replay_influx import LabelsError, read_labels
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
