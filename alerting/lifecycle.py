"""Alert lifecycle: a pure state machine separating the alert *condition* from its *signal*.

Theory of operation
-------------------
The rules decide whether a condition is present (``ConditionOn`` / ``ConditionOff``); nurses
acknowledge (``Ack``); time passes (``Tick``). ``transition(record, event, policy)`` returns
the new record and the effects for the shell to execute (publish the retained alert state,
clear it, emit a lifecycle event). No clock is read here: every event carries ``now``.

Clinical alerts *latch* (IEC 60601-1-8): when the condition clears before anyone acknowledged,
the alert stays active (``condition_present=False``) until a nurse acknowledges it, so a brief
deterioration is never missed because it resolved on its own. Technical alerts do not latch.
An unacknowledged alert escalates (re-notifies, ``escalation_step + 1``) every
``escalate_after_s``; a condition that worsens to a higher priority re-notifies at once.

    (none) --on--> ACTIVE --ack--> ACKNOWLEDGED --off--> RESOLVED
                     |  ^              |
                     |  +--on(higher)--+
                     +--off (technical)--> RESOLVED
                     +--ack (condition already gone)--> RESOLVED
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from wardwire.models import (
    Alert,
    AlertEvent,
    AlertEventType,
    AlertKind,
    AlertState,
    Generation,
    Priority,
)


@dataclass(frozen=True, slots=True)
class ConditionOn:
    now: datetime
    priority: Priority
    message: str
    score_total: int | None = None


@dataclass(frozen=True, slots=True)
class ConditionOff:
    now: datetime


@dataclass(frozen=True, slots=True)
class Ack:
    now: datetime
    by: str


@dataclass(frozen=True, slots=True)
class Tick:
    now: datetime


LifecycleEvent = ConditionOn | ConditionOff | Ack | Tick


@dataclass(frozen=True, slots=True)
class AlertRecord:
    alert: Alert
    condition_present: bool
    last_notified: datetime


@dataclass(frozen=True, slots=True)
class PublishState:
    alert: Alert


@dataclass(frozen=True, slots=True)
class ClearState:
    alert: Alert


@dataclass(frozen=True, slots=True)
class Emit:
    event: AlertEvent


Effect = PublishState | ClearState | Emit


@dataclass(frozen=True, slots=True)
class AlertIdentity:
    """What an alert is about; fixed for the alert's life."""

    alert_id: str
    unit: str
    bed_id: str
    kind: AlertKind
    condition: str
    generation: Generation


@dataclass(frozen=True, slots=True)
class Policy:
    escalate_after_s: float = 120.0


class IllegalTransition(Exception):
    """An event that cannot apply to the alert's state (a bug, never ignored)."""


def _updated(alert: Alert, changes: dict[str, object]) -> Alert:
    """A changed copy of an alert, validated (``model_copy`` would skip validation, letting a
    non-UTC ``now`` through to the wire)."""
    return Alert.model_validate({**alert.model_dump(), **changes})


def _emit(kind: AlertEventType, alert: Alert, now: datetime, by: str | None = None) -> Emit:
    return Emit(AlertEvent(event=kind, at=now, by=by, alert=alert))


def transition(
    record: AlertRecord | None,
    event: LifecycleEvent,
    ident: AlertIdentity,
    policy: Policy,
) -> tuple[AlertRecord | None, list[Effect]]:
    """Apply one event. Returns the new record (``None`` = no open alert) and effects."""
    if record is None:
        if isinstance(event, ConditionOn):
            alert = Alert(
                alert_id=ident.alert_id,
                unit=ident.unit,
                bed_id=ident.bed_id,
                alert_kind=ident.kind,
                condition=ident.condition,
                priority=event.priority,
                state=AlertState.ACTIVE,
                raised_at=event.now,
                updated_at=event.now,
                message=event.message,
                generation=ident.generation,
                score_total=event.score_total,
            )
            rec = AlertRecord(alert, True, event.now)
            return rec, [PublishState(alert), _emit(AlertEventType.RAISED, alert, event.now)]
        if isinstance(event, Ack):
            raise IllegalTransition(f"ack of {ident.alert_id}: no open alert")
        return None, []

    a = record.alert
    latching = a.alert_kind is AlertKind.CLINICAL
    if isinstance(event, ConditionOn):
        higher = event.priority.rank > a.priority.rank
        upd = {"updated_at": event.now, "message": event.message, "score_total": event.score_total}
        if higher:
            new = _updated(
                a,
                {
                    **upd,
                    "priority": event.priority,
                    "state": AlertState.ACTIVE,
                    "escalation_step": a.escalation_step + 1,
                },
            )
            return AlertRecord(new, True, event.now), [
                PublishState(new),
                _emit(AlertEventType.ESCALATED, new, event.now),
            ]
        if not record.condition_present or event.score_total != a.score_total:
            new = _updated(a, upd)
            return replace(record, alert=new, condition_present=True), [PublishState(new)]
        return record, []

    if isinstance(event, ConditionOff):
        if not record.condition_present:
            return record, []
        if a.state is AlertState.ACKNOWLEDGED or not latching:
            new = _updated(a, {"state": AlertState.RESOLVED, "updated_at": event.now})
            return None, [ClearState(new), _emit(AlertEventType.RESOLVED, new, event.now)]
        new = _updated(a, {"updated_at": event.now})
        return replace(record, alert=new, condition_present=False), [PublishState(new)]

    if isinstance(event, Ack):
        if a.state is AlertState.ACKNOWLEDGED:
            return record, []  # idempotent: a second nurse pressing ack changes nothing
        acked = _updated(
            a,
            {
                "state": AlertState.ACKNOWLEDGED,
                "updated_at": event.now,
                "acknowledged_by": event.by,
            },
        )
        effects: list[Effect] = [_emit(AlertEventType.ACKNOWLEDGED, acked, event.now, event.by)]
        if not record.condition_present:
            done = _updated(acked, {"state": AlertState.RESOLVED})
            return None, [
                *effects,
                ClearState(done),
                _emit(AlertEventType.RESOLVED, done, event.now),
            ]
        return replace(record, alert=acked), [PublishState(acked), *effects]

    # Tick: escalate an unacknowledged alert that nobody answered.
    if a.state is AlertState.ACTIVE:
        waited = (event.now - record.last_notified).total_seconds()
        if waited >= policy.escalate_after_s:
            new = _updated(a, {"escalation_step": a.escalation_step + 1, "updated_at": event.now})
            return AlertRecord(new, record.condition_present, event.now), [
                PublishState(new),
                _emit(AlertEventType.ESCALATED, new, event.now),
            ]
    return record, []
