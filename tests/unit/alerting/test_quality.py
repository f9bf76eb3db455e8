"""alerting.quality: activations, outcomes, and the metrics, by example and by property."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.quality import (
    Label,
    activations,
    event_times,
    goals,
    label_from_line,
    median,
    outcomes,
    parse_time,
    quality,
    wilson_interval,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def ev(minutes: float, bed: str, aid: str, *, event: str = "raised", kind: str = "clinical",
       priority: str = "medium") -> dict[str, object]:
    t = (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    return {"t": t, "bed": bed, "alert_id": aid, "event": event, "kind": kind, "rule": "r",
            "priority": priority, "level": "x", "state": "active"}


def test_activation_is_first_medium_or_high_event_of_an_alert() -> None:
    events = [
        ev(0, "b1", "a1", priority="low"),
        ev(5, "b1", "a1", event="updated", priority="low"),
        ev(10, "b1", "a1", event="worsened", priority="high"),
        ev(20, "b1", "a1", event="escalated", priority="high"),
        ev(30, "b2", "a2", kind="technical", priority="low"),
        {"lines": 3, "beds": 2},  # the replay summary: ignored
    ]
    acts = activations(events)
    assert [(a.alert_id, a.t) for a in acts] == [("a1", T0 + timedelta(minutes=10))]
    assert [a.alert_id for a in activations(events, priorities={"low"})] == ["a1"]
    assert [a.alert_id for a in activations(events, kind="technical",
                                            priorities={"low"})] == ["a2"]


def test_not_an_event_is_an_error() -> None:
    with pytest.raises(ValueError, match="not an alert event"):
        activations([{"bed": "b1", "t": "2024-05-01T00:00:00Z"}])
    with pytest.raises(ValueError, match="time zone"):
        parse_time("2024-05-01T00:00:00")


def test_window_and_lead_time() -> None:
    events = [
        ev(-25 * 60, "b1", "early"),   # before the 24 h window: not a detection
        ev(-3 * 60, "b1", "in"),       # 3 h before: the detection
        ev(-60, "b1", "later"),
        ev(10, "b2", "after"),         # after b2's event: not a detection
        ev(0, "b3", "at"),             # exactly at the event: lead 0
        ev(30, "s1", "false1"),        # a stable bed: a false alert
        ev(40, "s1", "false2", priority="low"),
        ev(50, "s1", "tech", kind="technical", priority="low"),
    ]
    labels = [Label(T0, "b1"), Label(T0, "b2"), Label(T0, "b3"),
              Label(T0 + timedelta(hours=1), "b1"),  # later label of b1: its first counts
              Label(T0, "s1", "discharge")]          # not a deterioration label
    m = quality(events, labels, {"b1": 1.0, "b2": 1.0, "b3": 1.0, "s1": 2.0})
    assert m.deteriorating_beds == 3
    assert m.detected_beds == 2
    assert m.sensitivity == pytest.approx(2 / 3)
    assert m.median_lead_time_h == pytest.approx(1.5)  # leads 3 h and 0 h
    assert m.false_alerts == 1 and m.false_alerts_per_bed_day == pytest.approx(0.5)
    assert m.false_alerts_any_priority == 2
    assert m.false_alerts_per_bed_day_any_priority == pytest.approx(1.0)
    assert m.technical_alerts == 1 and m.technical_alerts_per_bed_day == pytest.approx(0.2)
    assert [o.bed for o in m.outcomes] == ["b1", "b2", "b3"]
    d = m.as_dict()
    assert d["sensitivity"] == 0.6667 and d["beds"] == 4
    g = goals(m)
    assert g["sensitivity"]["met"] is False and g["false_alerts_per_bed_day"]["met"] is True
    assert g["median_lead_time_h"] == {"goal": ">= 2", "value": 1.5, "met": False}


def test_nothing_to_measure_is_none_not_zero() -> None:
    m = quality([], [], {})
    assert m.sensitivity is None and m.median_lead_time_h is None
    assert m.false_alerts_per_bed_day is None
    assert all(not g["met"] for g in goals(m).values())


def test_bad_bed_days_and_window_refused() -> None:
    with pytest.raises(ValueError, match="bed_days"):
        quality([], [], {"b1": float("nan")})
    with pytest.raises(ValueError, match="bed_days"):
        quality([], [], {"b1": -1.0})
    with pytest.raises(ValueError, match="window_h"):
        outcomes([], {}, window_h=float("inf"))


def test_label_line() -> None:
    lb = label_from_line({"t": "2024-05-01T10:00:00Z", "bed": "b07", "label": "deterioration"})
    assert lb == Label(datetime(2024, 5, 1, 10, tzinfo=UTC), "b07")
    with pytest.raises(ValueError):
        label_from_line({"t": "2024-05-01T10:00:00Z", "bed": "b07", "label": "deterioration",
                         "inputs": {}})
    with pytest.raises(ValueError):
        label_from_line({"t": "2024-05-01T10:00:00Z", "bed": 7, "label": "deterioration"})


def test_median() -> None:
    assert median([]) is None
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5


BEDS = st.sampled_from(["b1", "b2", "b3", "b4", "b5"])
EVENT = st.builds(
    ev,
    st.floats(-48 * 60, 48 * 60, allow_nan=False),
    BEDS,
    st.sampled_from(["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"]),
    event=st.sampled_from(["raised", "updated", "worsened", "resolved"]),
    kind=st.sampled_from(["clinical", "technical"]),
    priority=st.sampled_from(["low", "medium", "high"]),
)
LABEL = st.builds(
    lambda m, b: Label(T0 + timedelta(minutes=m), b),
    st.floats(-24 * 60, 24 * 60, allow_nan=False), BEDS,
)
DAYS = st.dictionaries(BEDS, st.floats(0, 10, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(st.lists(EVENT, max_size=30), st.lists(LABEL, max_size=6), DAYS,
       st.floats(0, 48, allow_nan=False))
def test_properties(events: list[dict[str, object]], labels: list[Label],
                    days: dict[str, float], window_h: float) -> None:
    m = quality(events, labels, days, window_h=window_h)
    if m.sensitivity is not None:
        assert 0.0 <= m.sensitivity <= 1.0
    assert m.detected_beds <= m.deteriorating_beds == len(event_times(labels))
    for o in m.outcomes:
        if o.lead_time_h is not None:
            assert 0.0 <= o.lead_time_h <= window_h + 1e-9
    if m.median_lead_time_h is not None:
        assert 0.0 <= m.median_lead_time_h <= window_h + 1e-9
    assert (m.median_lead_time_h is None) == (m.detected_beds == 0)
    for rate in (m.false_alerts_per_bed_day, m.false_alerts_per_bed_day_any_priority,
                 m.technical_alerts_per_bed_day):
        assert rate is None or rate >= 0
    # low included can only add alerts; each alert counts at most once
    assert m.false_alerts <= m.false_alerts_any_priority
    ids = len({(e["bed"], e["alert_id"]) for e in events})
    assert m.false_alerts_any_priority <= ids and m.technical_alerts <= ids
    # the order of events of different alerts does not matter for the counts
    m2 = quality(list(reversed(events)), labels, days, window_h=window_h)
    if len({(e["bed"], e["alert_id"]) for e in events}) == len(events):
        assert (m2.sensitivity, m2.false_alerts, m2.technical_alerts) == (
            m.sensitivity, m.false_alerts, m.technical_alerts)


@settings(max_examples=100, deadline=None)
@given(st.lists(EVENT, max_size=30), st.lists(LABEL, min_size=1, max_size=6), DAYS)
def test_wider_window_never_detects_less(events: list[dict[str, object]], labels: list[Label],
                                         days: dict[str, float]) -> None:
    narrow = quality(events, labels, days, window_h=2)
    wide = quality(events, labels, days, window_h=24)
    assert wide.detected_beds >= narrow.detected_beds
    assert wide.false_alerts == narrow.false_alerts


def test_wilson_interval() -> None:
    lo, hi = wilson_interval(18, 18)
    assert 0.8 < lo < 0.85 and hi == 1.0
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and 0.25 < hi < 0.35
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_estimate(kn: tuple[int, int]) -> None:
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
