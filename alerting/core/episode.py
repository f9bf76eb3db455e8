"""An alert episode: the *signal* nurses see, separate from the *condition* the rules decide.

Theory of operation
-------------------
The bed's rules decide what the condition is (raise at a level, worsen, ease, gone); nurses
act (acknowledge, snooze); time passes (escalation of an unanswered alert, the reminder when an
acknowledged alert's reassessment time runs out, a snooze ending). Each of these is a method
that takes ``now``, changes the episode and returns the events to publish. No clock is read.

States and the transitions allowed (anything else raises ``IllegalTransition``)::

    ACTIVE --ack--> ACKNOWLEDGED --reminder / worsened--> ACTIVE
    ACTIVE --snooze--> SNOOZED --expiry / worsened--> ACTIVE
    any open state --resolve--> RESOLVED (closed)

Clinical alerts *latch* (IEC 60601-1-8): when the condition goes before anyone acknowledged,
the episode stays ACTIVE with ``condition_present = False`` until a nurse acknowledges it, so a
deterioration that eased on its own is never missed. Technical alerts about a state (device
offline, no data) follow their condition; technical alerts about an event that already happened
(a sequence gap, an outbox overflow) latch like clinical ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from wardwire.models import (
    WIRE_TIME_MAX,
    Alert,
    AlertEventType,
    AlertKind,
    AlertState,
    Generation,
    Priority,
)

__all__ = ["AlertEffect", "Episode", "IllegalTransition", "alert_id_for"]

#: the last time the wire carries: a reassessment or snooze end beyond it (an ack in the last
#: hours of 2099) is shown as this, never refused by the wire model (found by red-team)
_WIRE_LAST = WIRE_TIME_MAX - timedelta(microseconds=1)


#: the shortest time a timer of an episode can run (datetime's resolution)
_SHORTEST = timedelta(microseconds=1)


def _on_wire(t: datetime | None) -> datetime | None:
    return t if t is None or t < WIRE_TIME_MAX else _WIRE_LAST

_ALLOWED: dict[tuple[AlertState, str], frozenset[AlertState]] = {
    (AlertState.ACTIVE, "ack"): frozenset({AlertState.ACKNOWLEDGED}),
    (AlertState.SNOOZED, "ack"): frozenset({AlertState.ACKNOWLEDGED}),
    (AlertState.ACTIVE, "snooze"): frozenset({AlertState.SNOOZED}),
    (AlertState.ACKNOWLEDGED, "snooze"): frozenset({AlertState.SNOOZED}),
    (AlertState.SNOOZED, "snooze"): frozenset({AlertState.SNOOZED}),
    (AlertState.ACKNOWLEDGED, "renotify"): frozenset({AlertState.ACTIVE}),
    (AlertState.SNOOZED, "renotify"): frozenset({AlertState.ACTIVE}),
    (AlertState.ACTIVE, "renotify"): frozenset({AlertState.ACTIVE}),
}


class IllegalTransition(Exception):
    """An action that cannot apply to the episode's state (a bug, never ignored)."""


@dataclass(frozen=True, slots=True)
class AlertEffect:
    """Publish this: the alert's state after ``event`` (retained while open) and the event."""

    event: AlertEventType
    alert: Alert
    at: datetime
    by: str | None = None
    #: ``<alert_id>-<n>``: the n-th event of this alert (a consumer drops a redelivery by it)
    event_id: str | None = None


def alert_id_for(unit: str, bed: str, condition: str, raised_at: datetime) -> str:
    """Deterministic: the same stream gives the same ids (replay is byte-identical)."""
    h = hashlib.sha1(f"{unit}/{bed}/{condition}/{raised_at.isoformat()}".encode()).hexdigest()
    return f"a-{h[:12]}"


@dataclass
class Episode:
    alert_id: str
    unit: str
    bed_id: str
    kind: AlertKind
    condition: str
    rule: str
    priority: Priority
    level: str
    level_rank: int
    raised_at: datetime
    message: str
    generation: Generation
    latching: bool
    device_id: str | None = None
    state: AlertState = AlertState.ACTIVE
    updated_at: datetime | None = None
    escalation_step: int = 0
    acknowledged_by: str | None = None
    total: int | None = None
    complete: bool | None = None
    missing: tuple[str, ...] = ()
    held: tuple[str, ...] = ()
    condition_present: bool = True
    last_notified: datetime | None = None
    reassess_by: datetime | None = None
    snoozed_until: datetime | None = None
    resolved_reason: str | None = None
    #: command ids already applied (a redelivered command changes nothing)
    commands: list[str] = field(default_factory=list)
    #: events emitted so far (numbers each event: ``event_id``)
    events_n: int = 0
    #: who is notified now (the escalation chain's role at ``escalation_step``)
    recipient_role: str | None = None
    #: delivery receipts: [user, role, received|viewed|accepted, time]
    receipts: list[list[str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.raised_at
        self.last_notified = self.last_notified or self.raised_at

    @property
    def closed(self) -> bool:
        return self.state is AlertState.RESOLVED

    # -- the wire view -------------------------------------------------------------------------
    def alert(self, state: AlertState | None = None) -> Alert:
        return Alert(
            alert_id=self.alert_id,
            unit=self.unit,
            bed_id=self.bed_id,
            alert_kind=self.kind,
            condition=self.condition,
            priority=self.priority,
            state=state or self.state,
            raised_at=self.raised_at,
            updated_at=self.updated_at or self.raised_at,
            escalation_step=self.escalation_step,
            acknowledged_by=self.acknowledged_by,
            message=self.message,
            generation=self.generation,
            score_total=self.total,
            rule=self.rule,
            device_id=self.device_id,
            level=self.level if self.kind is AlertKind.CLINICAL else None,
            complete=self.complete,
            missing=list(self.missing),
            held=list(self.held),
            reassess_by=_on_wire(self.reassess_by) if self.state is AlertState.ACKNOWLEDGED
            else None,
            snoozed_until=_on_wire(self.snoozed_until) if self.state is AlertState.SNOOZED
            else None,
            condition_present=self.condition_present,
            resolved_reason=self.resolved_reason,
            recipient_role=self.recipient_role,
        )

    def _effect(self, event: AlertEventType, now: datetime, by: str | None = None) -> AlertEffect:
        self.updated_at = now
        self.events_n += 1
        return AlertEffect(event, self.alert(), now, by, f"{self.alert_id}-{self.events_n}")

    def _move(self, action: str, to: AlertState) -> None:
        allowed = _ALLOWED.get((self.state, action), frozenset())
        if to not in allowed:
            raise IllegalTransition(f"{self.alert_id}: {action} from {self.state.value}")
        self.state = to

    # -- the condition -------------------------------------------------------------------------
    def show(
        self,
        now: datetime,
        *,
        message: str,
        total: int | None = None,
        complete: bool | None = None,
        missing: tuple[str, ...] = (),
        held: tuple[str, ...] = (),
    ) -> list[AlertEffect]:
        """The current state changed (total, completeness, held items): ``updated``."""
        if (total, complete, missing, held, message) == (
            self.total, self.complete, self.missing, self.held, self.message
        ):
            return []
        self.total, self.complete, self.missing, self.held = total, complete, missing, held
        self.message = message
        return [self._effect(AlertEventType.UPDATED, now)]

    def worsen(self, now: datetime, level: str, rank: int, priority: Priority) -> list[AlertEffect]:
        """The level rose (even at the same priority): re-notified, active again."""
        self.level, self.level_rank = level, rank
        self.priority = max(self.priority, priority, key=lambda p: p.rank)
        self.condition_present = True
        self._move("renotify", AlertState.ACTIVE)
        self.last_notified, self.reassess_by, self.snoozed_until = now, None, None
        return [self._effect(AlertEventType.WORSENED, now)]

    def ease(self, now: datetime, level: str, rank: int, priority: Priority) -> list[AlertEffect]:
        """A lower level held on trustworthy scores for the clear time: shown as such."""
        self.level, self.level_rank, self.priority = level, rank, priority
        return [self._effect(AlertEventType.UPDATED, now)]

    def condition_on(self, now: datetime) -> list[AlertEffect]:
        if self.condition_present:
            return []
        self.condition_present = True
        return [self._effect(AlertEventType.UPDATED, now)]

    def condition_off(self, now: datetime, reason: str) -> list[AlertEffect]:
        """The condition is gone. Returns the events; ``self.state`` is RESOLVED if it closed."""
        if not self.condition_present:
            return []
        if self.latching and self.state is not AlertState.ACKNOWLEDGED:
            self.condition_present = False
            return [self._effect(AlertEventType.UPDATED, now)]
        return self.resolve(now, reason)

    def resolve(self, now: datetime, reason: str) -> list[AlertEffect]:
        self.state, self.condition_present = AlertState.RESOLVED, False
        self.resolved_reason = reason
        return [self._effect(AlertEventType.RESOLVED, now)]

    # -- people --------------------------------------------------------------------------------
    def acknowledge(
        self, now: datetime, by: str, reassess_s: float | None
    ) -> list[AlertEffect]:
        if self.state is AlertState.ACKNOWLEDGED:
            return []  # a second nurse pressing ack changes nothing
        self._move("ack", AlertState.ACKNOWLEDGED)
        self.acknowledged_by = by
        self.reassess_by = None if reassess_s is None else now + timedelta(seconds=reassess_s)
        self.snoozed_until = None
        out = [self._effect(AlertEventType.ACKNOWLEDGED, now, by)]
        if not self.condition_present:
            out += self.resolve(now, "condition gone before acknowledgement")
        return out

    def escalate(
        self, now: datetime, next_role: str | None, by: str | None = None
    ) -> list[AlertEffect]:
        """One step along the escalation chain (its timer ran out, or a nurse asked): the next
        role is notified; the IEC priority does not change."""
        self.escalation_step += 1
        self.recipient_role = next_role or self.recipient_role
        self.last_notified = now
        if self.state is not AlertState.ACTIVE:
            self._move("renotify", AlertState.ACTIVE)
            self.reassess_by = self.snoozed_until = None
        return [self._effect(AlertEventType.ESCALATED, now, by)]

    def resolve_by(self, now: datetime, by: str, reason: str) -> list[AlertEffect]:
        """A nurse closes the alert, with the reason (journaled with who and when)."""
        self.acknowledged_by = self.acknowledged_by or by
        self.state, self.condition_present = AlertState.RESOLVED, False
        self.resolved_reason = f"resolved by {by}: {reason}"
        return [self._effect(AlertEventType.RESOLVED, now, by)]

    def receipt(
        self, now: datetime, by: str, kind: str, role: str | None, reassess_s: float | None
    ) -> list[AlertEffect]:
        """A delivery receipt from a phone or pager. ``accepted`` is an acknowledgement by
        whoever accepted; ``received`` and ``viewed`` are recorded and announced."""
        self.receipts.append([by, role, kind, now.isoformat()])
        if kind == "accepted" and self.state is not AlertState.ACKNOWLEDGED:
            return self.acknowledge(now, by, reassess_s)
        return [self._effect(AlertEventType.RECEIPT, now, by)]

    def snooze(self, now: datetime, by: str, seconds: float) -> list[AlertEffect]:
        self._move("snooze", AlertState.SNOOZED)
        self.acknowledged_by = by
        # at least a microsecond on: a snooze ending *at* now (a positive number of minutes below
        # a microsecond) was never timed, and the alert stayed snoozed (found by red-team)
        self.snoozed_until = now + max(timedelta(seconds=seconds), _SHORTEST)
        return [self._effect(AlertEventType.SNOOZED, now, by)]

    def reassessed(self, now: datetime, reassess_s: float) -> None:
        """A nurse charted a set: the reassessment clock starts again."""
        if self.state is AlertState.ACKNOWLEDGED and self.reassess_by is not None:
            self.reassess_by = now + timedelta(seconds=reassess_s)

    # -- time ----------------------------------------------------------------------------------
    def due(self, escalate_s: float) -> datetime | None:
        if self.state is AlertState.ACTIVE:
            assert self.last_notified is not None
            if escalate_s <= 0:
                return None  # this priority never escalates (LOW: awareness only)
            return self.last_notified + timedelta(seconds=escalate_s)
        if self.state is AlertState.ACKNOWLEDGED:
            return self.reassess_by if self.condition_present else None
        if self.state is AlertState.SNOOZED:
            return self.snoozed_until
        return None

    def on_time(
        self, now: datetime, escalate_s: float, next_role: str | None = None
    ) -> list[AlertEffect]:
        due = self.due(escalate_s)
        if due is None or due > now:
            return []
        if self.state is AlertState.ACTIVE:
            return self.escalate(now, next_role)
        if self.state is AlertState.SNOOZED and not self.condition_present:
            return self.resolve(now, "condition gone while snoozed")
        self._move("renotify", AlertState.ACTIVE)
        self.last_notified, self.reassess_by, self.snoozed_until = now, None, None
        return [self._effect(AlertEventType.REMINDER, now)]

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, datetime):
                v = v.isoformat()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Episode:
        kw: dict[str, Any] = dict(d)
        for k in ("raised_at", "updated_at", "last_notified", "reassess_by", "snoozed_until"):
            if kw.get(k) is not None:
                kw[k] = datetime.fromisoformat(kw[k])
        kw["kind"] = AlertKind(kw["kind"])
        kw["priority"] = Priority(kw["priority"])
        kw["state"] = AlertState(kw["state"])
        kw["generation"] = Generation(kw["generation"])
        kw["missing"], kw["held"] = tuple(kw["missing"]), tuple(kw["held"])
        kw["commands"] = list(kw["commands"])
        return cls(**kw)
