"""Golden captures: byte files in tests/captures replayed through the parsers.

Each ``<name>.bin`` has a ``<name>.json`` beside it naming the parser, the device clock's zone
and the expected events (provenance in tests/captures/README.md). Captures are replayed in one
chunk and byte by byte. ``gatt_values.json`` holds characteristic values and their events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from edge_agent.protocols.base import Parser
from edge_agent.protocols.gatt import characteristic
from edge_agent.protocols.masimo_ascii import MasimoAscii1Parser
from edge_agent.protocols.nonin_oem import NoninFormat2Parser

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
ToJson = Callable[[Any], list[dict[str, Any]]]
PARSERS: dict[str, Callable[[Any], Parser]] = {
    "masimo_ascii1": lambda tz: MasimoAscii1Parser(device_tz=tz),
    "nonin_format2": lambda tz: NoninFormat2Parser(),
}
STREAM_CAPTURES = sorted(p for p in CAPTURES.glob("*.bin"))


def zone(minutes: int | None) -> timezone | None:
    return None if minutes is None else timezone(timedelta(minutes=minutes))


def test_every_capture_has_its_expectations() -> None:
    assert len(STREAM_CAPTURES) >= 4
    for path in STREAM_CAPTURES:
        assert path.with_suffix(".json").exists(), path.name


@pytest.mark.parametrize("path", STREAM_CAPTURES, ids=[p.stem for p in STREAM_CAPTURES])
def test_stream_capture_replays_to_its_expected_events(path: Path, as_json: ToJson) -> None:
    spec = json.loads(path.with_suffix(".json").read_text())
    data = path.read_bytes()
    make = PARSERS[spec["parser"]]
    tz = zone(spec["device_tz_offset_minutes"])
    whole = make(tz).feed(data)
    assert as_json(whole) == spec["events"]
    bytewise = make(tz)
    assert [e for i in range(len(data)) for e in bytewise.feed(data[i : i + 1])] == whole


GATT_CASES = json.loads((CAPTURES / "gatt_values.json").read_text())["cases"]


@pytest.mark.parametrize(
    "case", GATT_CASES, ids=[f"{c['characteristic']}-{c['value_hex']}" for c in GATT_CASES]
)
def test_gatt_value_decodes_to_its_expected_events(case: dict[str, Any], as_json: ToJson) -> None:
    char = characteristic(case["characteristic"])
    assert char is not None
    events = char.decode(
        bytes.fromhex(case["value_hex"]), tz=zone(case["device_tz_offset_minutes"])
    )
    assert as_json(events) == case["events"]
