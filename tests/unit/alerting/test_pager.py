"""The pager's pure policy (what is paged, with which body) and the sink's bookkeeping that needs
no network (withheld and not-paged counts, duplicates, a stopped sink, bad configuration)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from alerting.core.episode import AlertEffect
from alerting.pager import (
    BODY_FIELDS,
    HoldReason,
    Page,
    PageAction,
    PagePolicy,
    PagerSink,
    Submitted,
    Withheld,
)
from wardwire.models import Alert, AlertEventType, AlertKind, AlertState, Generation, Priority

AT = datetime(2026, 3, 1, 8, 30, 15, 250000, tzinfo=UTC)
PAGED = {
    AlertEventType.RAISED, AlertEventType.WORSENED, AlertEventType.ESCALATED,
    AlertEventType.REMINDER,
}


def effect(
    event: AlertEventType = AlertEventType.RAISED,
    generation: Generation = Generation.REAL,
    *,
    event_id: str | None = "a-0123456789ab-1",
    at: datetime = AT,
    **alert: object,
) -> AlertEffect:
    fields: dict[str, object] = {
        "alert_id": "a-0123456789ab",
        "unit": "picu",
        "bed_id": "bed-03",
        "alert_kind": AlertKind.CLINICAL,
        "condition": "pews",
        "priority": Priority.HIGH,
        "state": AlertState.RESOLVED if event is AlertEventType.RESOLVED else AlertState.ACTIVE,
        "raised_at": AT - timedelta(minutes=5),
        "updated_at": AT,
        "message": "Bedside PEWS 9 (high): HR 185, RR 65, SpO2 86",
        "generation": generation,
        "score_total": 9,
        "rule": "bedside_pews",
        "level": "high",
        **alert,
    }
    return AlertEffect(event, Alert.model_validate(fields), at, None, event_id)


@pytest.mark.parametrize("event", list(AlertEventType), ids=lambda e: e.value)
def test_every_event_type_default_policy(event: AlertEventType) -> None:
    d = PagePolicy().decide(effect(event), "bedside_nurse")
    if event in PAGED:
        assert isinstance(d, Page) and d.action is PageAction.PAGE
    elif event is AlertEventType.RESOLVED:
        assert isinstance(d, Page) and d.action is PageAction.CANCEL
    else:  # updated, acknowledged, snoozed, receipt: nothing for a pager
        assert d == Withheld("a-0123456789ab-1", HoldReason.EVENT, event.value)


@pytest.mark.parametrize("event", [*sorted(PAGED), AlertEventType.RESOLVED])
@pytest.mark.parametrize("generation", list(Generation), ids=lambda g: g.value)
def test_only_real_data_pages_outside_demo_mode(
    event: AlertEventType, generation: Generation
) -> None:
    d = PagePolicy().decide(effect(event, generation), "bedside_nurse")
    if generation is Generation.REAL:
        assert isinstance(d, Page)
    else:
        assert d == Withheld("a-0123456789ab-1", HoldReason.GENERATION, generation.value)


@pytest.mark.parametrize("generation", list(Generation), ids=lambda g: g.value)
def test_demo_mode_pages_demo_data_and_still_never_test_data(generation: Generation) -> None:
    d = PagePolicy.demo().decide(effect(generation=generation), None)
    if generation is Generation.TEST:
        assert isinstance(d, Withheld) and d.reason is HoldReason.GENERATION
    else:
        assert isinstance(d, Page)
        assert d.body["generation"] == generation.value


def test_a_test_sink_may_allow_test_data_explicitly() -> None:
    policy = PagePolicy(allow_generations=frozenset({Generation.TEST}))
    assert isinstance(policy.decide(effect(generation=Generation.TEST), None), Page)
    assert isinstance(policy.decide(effect(generation=Generation.DEMO), None), Withheld)


def test_an_event_not_paged_counts_as_such_whatever_its_generation() -> None:
    d = PagePolicy().decide(effect(AlertEventType.UPDATED, Generation.TEST), None)
    assert d == Withheld("a-0123456789ab-1", HoldReason.EVENT, "updated")


def test_body_has_exactly_the_contract_fields() -> None:
    d = PagePolicy().decide(effect(AlertEventType.ESCALATED), "nurse_in_charge")
    assert isinstance(d, Page)
    assert tuple(d.body) == BODY_FIELDS
    assert d.body == {
        "schema_version": 1,
        "action": "page",
        "event": "escalated",
        "event_id": "a-0123456789ab-1",
        "alert_id": "a-0123456789ab",
        "unit": "picu",
        "bed": "bed-03",
        "priority": "high",
        "level": "high",
        "rule": "bedside_pews",
        "message": "Bedside PEWS 9 (high): HR 185, RR 65, SpO2 86",
        "role": "nurse_in_charge",
        "at": "2026-03-01T08:30:15.250000Z",
        "generation": "real",
    }
    assert (d.key, d.alert_id, d.role) == ("a-0123456789ab-1", "a-0123456789ab", "nurse_in_charge")
    assert json.loads(d.content()) == d.body
    assert d.content() == d.content()  # the same bytes on every attempt


def test_body_never_carries_more_of_the_alert_than_the_contract() -> None:
    """Whatever the alert holds (acknowledged by, score items, device), only the listed
    fields leave: the body is built field by field, not dumped from the alert."""
    eff = effect(
        AlertEventType.REMINDER,
        acknowledged_by="nurse.li",
        device_id="mon-7",
        missing=["crt_s"],
        held=["spo2_pct"],
        alert_kind=AlertKind.TECHNICAL,
        rule="device_offline",
        level=None,
    )
    d = PagePolicy().decide(eff, None)
    assert isinstance(d, Page)
    assert set(json.loads(d.content())) == set(BODY_FIELDS)
    assert (d.body["level"], d.body["rule"], d.body["role"]) == (None, "device_offline", None)
    text = d.content().decode()
    for leaked in ("nurse.li", "mon-7", "crt_s", "spo2_pct", "patient", "dob"):
        assert leaked not in text


def test_cancel_body() -> None:
    d = PagePolicy().decide(effect(AlertEventType.RESOLVED), "bedside_nurse")
    assert isinstance(d, Page)
    assert (d.body["action"], d.body["event"]) == ("cancel", "resolved")


def test_event_time_is_sent_in_utc() -> None:
    shanghai = timezone(timedelta(hours=8))
    d = PagePolicy().decide(effect(at=AT.astimezone(shanghai)), None)
    assert isinstance(d, Page) and d.body["at"] == "2026-03-01T08:30:15.250000Z"


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        PagePolicy().decide(effect(at=AT.replace(tzinfo=None)), None)


def test_without_an_event_id_the_key_is_derived_and_stable() -> None:
    a = PagePolicy().decide(effect(event_id=None), None)
    b = PagePolicy().decide(effect(event_id=None), None)
    c = PagePolicy().decide(effect(AlertEventType.ESCALATED, event_id=None), None)
    assert isinstance(a, Page) and isinstance(b, Page) and isinstance(c, Page)
    assert a.key == b.key == a.body["event_id"] == "a-0123456789ab-raised-20260301T083015250000Z"
    assert c.key != a.key


def test_policy_is_configurable() -> None:
    policy = PagePolicy(
        page_on=frozenset({AlertEventType.RAISED, AlertEventType.ACKNOWLEDGED}),
        cancel_on=frozenset(),
    )
    assert isinstance(policy.decide(effect(AlertEventType.ACKNOWLEDGED), None), Page)
    assert isinstance(policy.decide(effect(AlertEventType.RESOLVED), None), Withheld)
    assert isinstance(policy.decide(effect(AlertEventType.ESCALATED), None), Withheld)
    with pytest.raises(ValueError, match="either pages or cancels"):
        PagePolicy(cancel_on=frozenset({AlertEventType.RAISED}))


# -- the sink's bookkeeping (never started: no network) ---------------------------------------

def _sink(**kw: object) -> PagerSink:
    def ignore(*_: object) -> None:
        return None

    return PagerSink("http://127.0.0.1:9/page", on_delivered=ignore, on_failed=ignore, **kw)  # type: ignore[arg-type]


def test_submit_counts_what_it_withholds_and_skips() -> None:
    sink = _sink()
    assert sink.submit(effect(generation=Generation.TEST), None) is Submitted.WITHHELD
    assert sink.submit(effect(generation=Generation.DEMO), None) is Submitted.WITHHELD
    assert sink.submit(effect(generation=Generation.DEMO, event_id="x-2"), None) is (
        Submitted.WITHHELD)
    assert sink.submit(effect(AlertEventType.UPDATED), None) is Submitted.NOT_PAGED
    assert sink.submit(effect(), "bedside_nurse") is Submitted.QUEUED
    assert sink.submit(effect(), "bedside_nurse") is Submitted.DUPLICATE
    s = sink.stats()
    assert s.withheld == {"test": 1, "demo": 2}
    assert s.not_paged == {"updated": 1}
    assert (s.waiting, s.duplicates, s.dropped, s.sent) == (1, 1, 0, 0)


def test_a_sink_stopped_before_start_reports_its_queue_and_refuses_more() -> None:
    sink = _sink()
    assert sink.submit(effect(event_id="a-1"), None) is Submitted.QUEUED
    assert sink.submit(effect(event_id="a-2"), None) is Submitted.QUEUED
    assert sink.stop(0.0) == ["a-1", "a-2"]
    assert sink.stop(0.0) == []
    assert sink.submit(effect(event_id="a-3"), None) is Submitted.CLOSED
    s = sink.stats()
    assert (s.left_at_stop, s.dropped, s.waiting) == (2, 1, 0)
    with pytest.raises(RuntimeError):
        sink.start()


def test_full_queue_refuses_the_new_page() -> None:
    sink = _sink(max_queue=1)
    assert sink.submit(effect(event_id="a-1"), None) is Submitted.QUEUED
    assert sink.submit(effect(event_id="a-2"), None) is Submitted.DROPPED
    assert sink.stats().dropped == 1
    assert sink.stop(0.0) == ["a-1"]


@pytest.mark.parametrize(
    ("url", "kw", "match"),
    [
        ("ftp://gw/page", {}, "http"),
        ("http://gw/page", {"max_attempts": 0}, "positive"),
        ("http://gw/page", {"headers": {"idempotency-key": "x"}}, "sets itself"),
    ],
)
def test_bad_configuration_is_refused(url: str, kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PagerSink(url, on_delivered=print, on_failed=print, **kw)  # type: ignore[arg-type]
