"""ingest.core.ClockWatch: a gateway whose clock is off is reported; a drained backlog is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.core import ClockWatch

T0 = datetime(2026, 12, 2, 12, tzinfo=UTC)


def test_a_clock_ahead_is_reported_at_once_and_cleared_when_right() -> None:
    w = ClockWatch(tolerance_s=300, window_s=300)
    f = w.observe("gw1", T0 + timedelta(hours=1), T0)
    assert f is not None and "ahead" in f and "3600 s" in f
    assert w.observe("gw1", T0 + timedelta(hours=1), T0 + timedelta(seconds=1)) is None  # once
    assert w.offsets()["gw1"] > 3500
    # in tolerance again for a whole window -> cleared
    now = T0 + timedelta(seconds=2)
    res = [w.observe("gw1", now + timedelta(seconds=s), now + timedelta(seconds=s)) for s in
           range(0, 400, 10)]
    assert [r for r in res if r] == ["gateway clock back within 300 s of ingest's"]


def test_a_backlog_drained_after_an_outage_is_not_a_clock_problem() -> None:
    w = ClockWatch(tolerance_s=300, window_s=300)
    now = T0
    findings = []
    # an hour of sealed batches drains within 30 s, then live batches (lag ~0.2 s) follow
    for i in range(3600):
        findings.append(w.observe("gw1", T0 - timedelta(hours=1) + timedelta(seconds=i), now))
        if i % 120 == 0:
            now += timedelta(seconds=1)
    for _ in range(600):
        now += timedelta(seconds=1)
        findings.append(w.observe("gw1", now - timedelta(seconds=0.2), now))
    assert [f for f in findings if f] == []


def test_a_clock_behind_is_reported_after_one_window() -> None:
    w = ClockWatch(tolerance_s=300, window_s=300)
    out = [w.observe("gw1", T0 + timedelta(seconds=s - 900), T0 + timedelta(seconds=s))
           for s in range(400)]
    found = [f for f in out if f]
    assert len(found) == 1 and "900 s behind" in found[0]


@given(st.lists(st.floats(-250, 250), min_size=1, max_size=200))
@settings(max_examples=100, deadline=None)
def test_offsets_within_tolerance_never_report(offsets: list[float]) -> None:
    w = ClockWatch(tolerance_s=300, window_s=60)
    for i, off in enumerate(offsets):
        now = T0 + timedelta(seconds=10 * i)
        assert w.observe("gw", now + timedelta(seconds=off), now) is None
