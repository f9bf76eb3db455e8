"""Alert lifecycle state machine (condition vs signal, latching, escalation, ack)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.lifecycle import (
    Ack,
    AlertIdentity,
    AlertRecord,
    ClearState,
    ConditionOff,
    ConditionOn,
    Effect,
    Emit,
    IllegalTransition,
    LifecycleEvent,
    Policy,
    PublishState,
    Tick,
    transition,
)
from wardwire.models import Alert, AlertEventType, AlertKind, AlertState, Generation, Priority

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(escalate_after_s=120.0)


def ident(kind: AlertKind = AlertKind.CLINICAL) -> AlertIdentity:
    return AlertIdentity(
        alert_id="a1",
        unit="picu",
        bed_id="bed01",
        kind=kind,
        condition="pews_score",
        generation=Generation.TEST,
    )


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def on(s: float, prio: Priority = Priority.MEDIUM, total: int | None = 7) -> ConditionOn:
    return ConditionOn(at(s), prio, f"PEWS {total}", total)


def run(
    events: list[LifecycleEvent], kind: AlertKind = AlertKind.CLINICAL
) -> tuple[AlertRecord | None, list[list[Effect]]]:
    rec: AlertRecord | None = None
    out = []
    for ev in events:
        rec, eff = transition(rec, ev, ident(kind), POLICY)
        out.append(eff)
    return rec, out


def emitted(effects: list[Effect]) -> list[AlertEventType]:
    return [e.event.event for e in effects if isinstance(e, Emit)]


def test_raise() -> None:
    rec, (eff,) = run([on(0, Priority.HIGH, 9)])
    assert rec is not None
    assert rec.condition_present
    assert rec.last_notified == T0
    a = rec.alert
    assert (a.alert_id, a.unit, a.bed_id, a.condition) == ("a1", "picu", "bed01", "pews_score")
    assert (a.alert_kind, a.priority, a.state) == (
        AlertKind.CLINICAL,
        Priority.HIGH,
        AlertState.ACTIVE,
    )
    assert (a.raised_at, a.updated_at, a.escalation_step) == (T0, T0, 0)
    assert (a.message, a.score_total, a.acknowledged_by) == ("PEWS 9", 9, None)
    assert a.generation is Generation.TEST
    assert eff == [PublishState(a), eff[1]]
    assert isinstance(eff[1], Emit)
    assert eff[1].event.event is AlertEventType.RAISED
    assert eff[1].event.alert == a
    assert eff[1].event.at == T0
    assert eff[1].event.by is None


@pytest.mark.parametrize("event", [ConditionOff(T0), Tick(T0)])
def test_nothing_happens_without_an_open_alert(event: LifecycleEvent) -> None:
    assert transition(None, event, ident(), POLICY) == (None, [])


def test_ack_without_open_alert_is_illegal() -> None:
    with pytest.raises(IllegalTransition, match="a1"):
        transition(None, Ack(T0, "nurse"), ident(), POLICY)


def test_ack_then_off_resolves() -> None:
    rec, effs = run([on(0), Ack(at(10), "nurse-7"), ConditionOff(at(20))])
    assert rec is None
    ack_eff, off_eff = effs[1], effs[2]
    assert isinstance(ack_eff[0], PublishState)
    assert ack_eff[0].alert.state is AlertState.ACKNOWLEDGED
    assert ack_eff[0].alert.acknowledged_by == "nurse-7"
    assert ack_eff[0].alert.updated_at == at(10)
    assert emitted(ack_eff) == [AlertEventType.ACKNOWLEDGED]
    ack_ev = next(e for e in ack_eff if isinstance(e, Emit)).event
    assert (ack_ev.by, ack_ev.at) == ("nurse-7", at(10))
    assert isinstance(off_eff[0], ClearState)
    assert off_eff[0].alert.state is AlertState.RESOLVED
    assert off_eff[0].alert.updated_at == at(20)
    assert emitted(off_eff) == [AlertEventType.RESOLVED]


def test_clinical_alert_latches_until_acknowledged() -> None:
    rec, effs = run([on(0), ConditionOff(at(5))])
    assert rec is not None
    assert rec.alert.state is AlertState.ACTIVE  # still shown
    assert not rec.condition_present
    assert effs[1] == [PublishState(rec.alert)]
    assert rec.alert.updated_at == at(5)
    # a second off changes nothing
    assert transition(rec, ConditionOff(at(6)), ident(), POLICY) == (rec, [])
    # the nurse acknowledges the latched alert: it resolves at once
    rec2, eff = transition(rec, Ack(at(30), "n1"), ident(), POLICY)
    assert rec2 is None
    assert emitted(eff) == [AlertEventType.ACKNOWLEDGED, AlertEventType.RESOLVED]
    clear = next(e for e in eff if isinstance(e, ClearState))
    assert clear.alert.state is AlertState.RESOLVED
    assert clear.alert.acknowledged_by == "n1"
    assert not any(isinstance(e, PublishState) for e in eff)


def test_technical_alert_does_not_latch() -> None:
    rec, effs = run([on(0, Priority.LOW), ConditionOff(at(5))], kind=AlertKind.TECHNICAL)
    assert rec is None
    assert isinstance(effs[1][0], ClearState)
    assert effs[1][0].alert.state is AlertState.RESOLVED
    assert emitted(effs[1]) == [AlertEventType.RESOLVED]


def test_technical_alert_ack_then_off() -> None:
    rec, effs = run([on(0), Ack(at(1), "n"), ConditionOff(at(2))], kind=AlertKind.TECHNICAL)
    assert rec is None
    assert emitted(effs[2]) == [AlertEventType.RESOLVED]


def test_latched_alert_condition_returns() -> None:
    rec, effs = run([on(0), ConditionOff(at(5)), on(8)])
    assert rec is not None
    assert rec.condition_present
    assert rec.alert.state is AlertState.ACTIVE
    assert effs[2] == [PublishState(rec.alert)]
    assert emitted(effs[2]) == []  # not a new alert
    assert rec.alert.raised_at == T0


def test_ack_is_idempotent() -> None:
    rec, _ = run([on(0), Ack(at(1), "n1")])
    assert rec is not None
    again = transition(rec, Ack(at(2), "n2"), ident(), POLICY)
    assert again == (rec, [])
    assert rec.alert.acknowledged_by == "n1"


def test_escalates_after_escalate_after_s_on_tick() -> None:
    rec, effs = run([on(0), Tick(at(60)), Tick(at(119.999))])
    assert effs[1] == effs[2] == []
    assert rec is not None
    rec, eff = transition(rec, Tick(at(120)), ident(), POLICY)
    assert rec is not None
    assert rec.alert.escalation_step == 1
    assert rec.last_notified == at(120)
    assert rec.alert.updated_at == at(120)
    assert rec.alert.state is AlertState.ACTIVE
    assert eff == [PublishState(rec.alert), eff[1]]
    assert emitted(eff) == [AlertEventType.ESCALATED]
    # the next escalation is escalate_after_s after the last notification
    rec, eff = transition(rec, Tick(at(200)), ident(), POLICY)
    assert eff == []
    assert rec is not None
    rec, eff = transition(rec, Tick(at(240)), ident(), POLICY)
    assert rec is not None
    assert rec.alert.escalation_step == 2


def test_latched_unacknowledged_alert_still_escalates() -> None:
    rec, _ = run([on(0), ConditionOff(at(1))])
    assert rec is not None
    rec, eff = transition(rec, Tick(at(500)), ident(), POLICY)
    assert rec is not None
    assert emitted(eff) == [AlertEventType.ESCALATED]
    assert not rec.condition_present


def test_acknowledged_alert_does_not_escalate() -> None:
    rec, _ = run([on(0), Ack(at(1), "n")])
    assert rec is not None
    assert transition(rec, Tick(at(10_000)), ident(), POLICY) == (rec, [])


def test_higher_priority_renotifies_immediately() -> None:
    rec, effs = run([on(0, Priority.LOW, 5), on(3, Priority.HIGH, 9)])
    assert rec is not None
    a = rec.alert
    assert (a.priority, a.state, a.escalation_step, a.score_total) == (
        Priority.HIGH,
        AlertState.ACTIVE,
        1,
        9,
    )
    assert rec.last_notified == at(3)
    assert effs[1] == [PublishState(a), effs[1][1]]
    assert emitted(effs[1]) == [AlertEventType.ESCALATED]


def test_higher_priority_reactivates_an_acknowledged_alert() -> None:
    rec, effs = run([on(0, Priority.MEDIUM), Ack(at(1), "n"), on(2, Priority.HIGH)])
    assert rec is not None
    assert rec.alert.state is AlertState.ACTIVE
    assert rec.alert.priority is Priority.HIGH
    assert emitted(effs[2]) == [AlertEventType.ESCALATED]
    # and, active again, it escalates if nobody answers
    rec, eff = transition(rec, Tick(at(122)), ident(), POLICY)
    assert emitted(eff) == [AlertEventType.ESCALATED]


@pytest.mark.parametrize("prio", [Priority.MEDIUM, Priority.LOW, Priority.INFO])
def test_same_or_lower_priority_does_not_renotify(prio: Priority) -> None:
    rec, _ = run([on(0, Priority.MEDIUM, 7)])
    assert rec is not None
    same = transition(rec, on(5, prio, 7), ident(), POLICY)
    assert same == (rec, [])  # nothing changed: no effect
    rec2, eff = transition(rec, on(5, prio, 8), ident(), POLICY)  # new total: republish state
    assert rec2 is not None
    assert eff == [PublishState(rec2.alert)]
    assert rec2.alert.priority is Priority.MEDIUM  # never downgraded
    assert rec2.alert.score_total == 8
    assert rec2.alert.escalation_step == 0
    assert rec2.last_notified == T0


PRIOS = st.sampled_from(list(Priority))
events = st.one_of(
    st.builds(
        lambda s, p, t: ConditionOn(at(s), p, "m", t),
        st.integers(0, 10**4),
        PRIOS,
        st.none() | st.integers(0, 15),
    ),
    st.builds(lambda s: ConditionOff(at(s)), st.integers(0, 10**4)),
    st.builds(lambda s: Ack(at(s), "nurse"), st.integers(0, 10**4)),
    st.builds(lambda s: Tick(at(s)), st.integers(0, 10**4)),
)


@given(st.lists(events, max_size=25), st.sampled_from(list(AlertKind)))
@settings(max_examples=200, deadline=None)
def test_lifecycle_invariants(evs: list[LifecycleEvent], kind: AlertKind) -> None:
    evs = sorted(evs, key=lambda e: e.now)
    rec: AlertRecord | None = None
    for ev in evs:
        prev = rec
        try:
            rec, eff = transition(rec, ev, ident(kind), POLICY)
        except IllegalTransition:
            assert prev is None
            assert isinstance(ev, Ack)
            continue
        for e in eff:
            a: Alert = e.event.alert if isinstance(e, Emit) else e.alert
            assert Alert.model_validate_json(a.model_dump_json()) == a  # wire-valid
            if isinstance(e, ClearState):
                assert a.state is AlertState.RESOLVED
            if isinstance(e, PublishState):
                assert a.state is not AlertState.RESOLVED
        if rec is None:
            assert not eff or any(isinstance(e, ClearState) for e in eff) or prev is None
        else:
            assert rec.alert.state in (AlertState.ACTIVE, AlertState.ACKNOWLEDGED)
            if kind is AlertKind.TECHNICAL or rec.alert.state is AlertState.ACKNOWLEDGED:
                assert rec.condition_present  # only unacknowledged clinical alerts latch
            if prev is not None:
                assert rec.alert.raised_at == prev.alert.raised_at
                assert rec.alert.escalation_step >= prev.alert.escalation_step
                pr = {Priority.INFO: 0, Priority.LOW: 1, Priority.MEDIUM: 2, Priority.HIGH: 3}
                assert pr[rec.alert.priority] >= pr[prev.alert.priority]


def test_updated_at_is_normalised_to_utc() -> None:
    rec, _ = run([on(0)])
    assert rec is not None
    local = (T0 + timedelta(seconds=5)).astimezone(timezone(timedelta(hours=2)))
    rec, _ = transition(rec, Ack(local, "n"), ident(), POLICY)
    assert rec is not None
    assert rec.alert.updated_at.utcoffset() == timedelta(0)
