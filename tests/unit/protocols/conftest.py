"""Shared helpers for the protocol tests: a stable JSON form of parser events.

Golden captures store their expected events in this form (tests/captures/*.json), so a change
in what a parser emits shows up as a readable diff rather than a repr mismatch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from edge_agent.protocols.base import (
    DeviceCondition,
    FrameRejected,
    ParserEvent,
    Reading,
    WaveformChunk,
)


def event_to_json(event: ParserEvent) -> dict[str, Any]:
    """One event as a JSON-able dict (the format of the ``events`` lists in tests/captures)."""
    if isinstance(event, Reading):
        return {
            "type": "Reading",
            "code": event.code,
            "value": event.value,
            "unit": event.unit,
            "device_time": None if event.device_time is None else event.device_time.isoformat(),
            "quality": event.quality.value,
        }
    if isinstance(event, WaveformChunk):
        return {
            "type": "WaveformChunk",
            "code": event.code,
            "unit": event.unit,
            "sample_rate_hz": event.sample_rate_hz,
            "samples": list(event.samples),
            "device_time": None if event.device_time is None else event.device_time.isoformat(),
        }
    if isinstance(event, DeviceCondition):
        return {
            "type": "DeviceCondition",
            "state": event.state.value,
            "detail": event.detail,
            "battery_pct": event.battery_pct,
        }
    assert isinstance(event, FrameRejected)
    return {"type": "FrameRejected", "reason": event.reason, "data_hex": event.data.hex()}


def events_to_json(events: Sequence[ParserEvent]) -> list[dict[str, Any]]:
    return [event_to_json(e) for e in events]


@pytest.fixture
def as_json() -> Callable[[Sequence[ParserEvent]], list[dict[str, Any]]]:
    """The event serialiser, as a fixture (test modules here are not importable packages)."""
    return events_to_json
