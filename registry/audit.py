"""The registry's hash-chained audit log: every change, login, token and user change, in the
same transaction as what it records.

Theory of operation. SQLAlchemy session events make forgetting impossible: ``after_flush``
collects every inserted, updated and deleted row of a registry table (its entity, its ids, the
fields set or changed, never a secret, a date of birth or a patient's pseudonym); :func:`record`
adds an explicit record (a login, an enrolment, a revocation). Both wait in the session until
``before_commit``, which flushes, locks the single ``audit_head`` row (``FOR UPDATE`` on
PostgreSQL; SQLite's writers are already serialised by ``BEGIN IMMEDIATE``), appends the records
to the chain and moves the head, all inside the committing transaction: a rolled-back change
leaves no record, and concurrent writers append one chain (the head is their last lock, taken
just before commit, so it cannot take part in a deadlock cycle).

Each record's hash is the SHA-256 of the canonical JSON (``servicekit.hashchain``) of its
sequence number, time, actor, action, subject, detail and the previous record's hash.
:func:`verify` walks the chain and names the first record that does not check out: a changed
field, a deleted or inserted record, a reordering, or a truncated tail (the head names the last
record). Who acts is the session's actor (:func:`act_as`): the API's authenticated user, the CLI's
OS user or ``--as``; ``system`` when nobody said.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import event, insert, inspect, select, update
from sqlalchemy.orm import Session, UOWTransaction

from registry.models import AuditHead, AuditRecord, Base
from servicekit.hashchain import GENESIS, digest

__all__ = [
    "Broken",
    "Entry",
    "Verdict",
    "act_as",
    "actor_of",
    "entries",
    "record",
    "record_hash",
    "verify",
]

_PENDING = "wardwatch.audit.pending"
_ACTOR = "wardwatch.audit.actor"
SYSTEM = "system"

#: column values never written into the audit log (the field's name is)
REDACTED: frozenset[tuple[str, str]] = frozenset({
    ("patients", "id"), ("patients", "dob"),  # a pseudonym and a date of birth
    ("users", "password_hash"), ("tokens", "secret_hash"),
})
#: how a row is named in a record: its table's public id column, unless redacted
_UNAUDITED = frozenset({AuditRecord.__tablename__, AuditHead.__tablename__})


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: Mapping[str, Any]
    prev: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": _iso(self.at), "actor": self.actor,
                "action": self.action, "subject": self.subject, "detail": dict(self.detail),
                "prev": self.prev, "hash": self.hash}


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds")


def record_hash(seq: int, at: datetime, actor: str, action: str, subject: str,
                detail: Any, prev: str) -> str:
    """The hash a record with these fields must carry."""
    return digest({"seq": seq, "at": _iso(at), "actor": actor, "action": action,
                   "subject": subject, "detail": detail, "prev": prev})


def act_as(session: Session, actor: str) -> None:
    """Records this session writes name ``actor`` as who acted."""
    session.info[_ACTOR] = actor[:64] or SYSTEM


def actor_of(session: Session) -> str:
    return str(session.info.get(_ACTOR, SYSTEM))


def record(session: Session, actor: str | None, action: str, subject: str,
           detail: Mapping[str, Any] | None = None, *, now: datetime) -> None:
    """Append an explicit record (a login, an enrolment, a revocation, a rotation) to the
    chain when ``session`` commits; nothing if it rolls back. ``detail`` must be JSON: ids and
    facts, never a secret or a patient's pseudonym or date of birth."""
    if len(action) > 64 or not action:
        raise ValueError(f"audit action {action!r}: 1 to 64 characters")
    body = dict(detail or {})
    json.dumps(body)  # refuse what cannot be written, here, at the caller
    _pending(session).append(
        (now, (actor or actor_of(session))[:64], action, subject[:256], body))


def _pending(session: Session) -> list[tuple[datetime | None, str, str, str, dict[str, Any]]]:
    pending: list[tuple[datetime | None, str, str, str, dict[str, Any]]] = (
        session.info.setdefault(_PENDING, []))
    return pending


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _describe(obj: Any, action: str) -> tuple[str, str, dict[str, Any]] | None:
    """(action, subject, detail) for a changed row of a registry table."""
    if not isinstance(obj, Base):
        return None
    table = obj.__table__.name  # type: ignore[attr-defined]
    if table in _UNAUDITED:
        return None
    state = inspect(obj)
    fields: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        name = attr.key
        hist = state.attrs[name].history
        if action == "update" and not hist.has_changes():
            continue
        if action == "delete":
            continue
        value = hist.added[0] if hist.added else getattr(obj, name, None)
        fields[name] = "<redacted>" if (table, name) in REDACTED else _plain(value)
    if action == "update" and not fields:
        return None
    pk = state.identity[0] if state.identity else getattr(obj, "pk", None)
    public = getattr(obj, "id", None)
    subject = f"{table}/{pk}"
    if isinstance(public, str) and (table, "id") not in REDACTED:
        subject += f" ({public})"
    return f"{table}.{action}", subject, fields


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _flush: UOWTransaction) -> None:
    pending = _pending(session)
    actor = actor_of(session)
    for objs, action in ((session.new, "insert"), (session.dirty, "update"),
                         (session.deleted, "delete")):
        for obj in objs:
            if action == "update" and not session.is_modified(obj, include_collections=False):
                continue
            described = _describe(obj, action)
            if described is not None:
                what, subject, detail = described
                pending.append((None, actor, what, subject, detail))


@event.listens_for(Session, "before_commit")
def _append(session: Session) -> None:
    session.flush()  # collect what the commit's own flush would write
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    conn = session.connection()
    head = conn.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
    ).one_or_none()
    if head is None:
        raise RuntimeError("the audit log has no head row: the schema is not at revision 0003")
    seq, prev = head
    fallback = _now_of(session)
    rows = []
    for at, actor, action, subject, detail in pending:
        seq += 1
        when = (at or fallback).astimezone(UTC)  # hashed as read back: UTC
        h = record_hash(seq, when, actor, action, subject, detail, prev)
        rows.append({"seq": seq, "at": when, "actor": actor, "action": action,
                     "subject": subject, "detail": json.dumps(detail, sort_keys=True),
                     "prev": prev, "hash": h})
        prev = h
    conn.execute(insert(AuditRecord), rows)
    conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


_NOW = "wardwatch.audit.now"


def _now_of(session: Session) -> datetime:
    """The time of the changes the session recorded: the shell's ``now`` (:func:`at_time`),
    else the wall clock."""
    t = session.info.get(_NOW)
    return t if isinstance(t, datetime) else datetime.now(UTC)


def at_time(session: Session, now: datetime) -> None:
    """The changes this session records happened at ``now`` (the shell's clock)."""
    session.info[_NOW] = now


# -- reading and checking ---------------------------------------------------------------------
def entries(session: Session, since: datetime | None = None, *,
            limit: int | None = None) -> Iterator[Entry]:
    """The records in chain order (from ``since`` on)."""
    q = select(AuditRecord).order_by(AuditRecord.seq)
    if since is not None:
        q = q.where(AuditRecord.at >= since)
    if limit is not None:
        q = q.limit(limit)
    for r in session.scalars(q.execution_options(yield_per=1000)):
        try:
            detail = json.loads(r.detail)
        except ValueError:
            detail = {"unreadable": r.detail}
        yield Entry(r.seq, r.at, r.actor, r.action, r.subject, detail, r.prev, r.hash)


@dataclass(frozen=True, slots=True)
class Broken:
    """The first record that does not check out, and why."""

    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    checked: int
    head_seq: int
    broken: Broken | None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "head": self.head_seq,
                "broken": None if self.broken is None else
                {"seq": self.broken.seq, "reason": self.broken.reason}}


def verify(session: Session) -> Verdict:
    """Walk the whole chain; the first record that does not check out, if any."""
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
                           ).one_or_none()
    head_seq, head_hash = (head[0], head[1]) if head else (0, GENESIS)
    prev, expect, n = GENESIS, 1, 0
    for r in session.scalars(select(AuditRecord).order_by(AuditRecord.seq)
                             .execution_options(yield_per=1000)):
        n += 1
        if r.seq != expect:
            return Verdict(n, head_seq, Broken(
                expect, f"record {expect} is missing (the next record is {r.seq})"))
        if r.prev != prev:
            return Verdict(n, head_seq, Broken(
                r.seq, f"record {r.seq}: its previous-hash does not match record {r.seq - 1}"))
        try:
            detail = json.loads(r.detail)
        except ValueError:
            return Verdict(n, head_seq, Broken(r.seq, f"record {r.seq}: its detail is not JSON"))
        if r.hash != record_hash(r.seq, r.at, r.actor, r.action, r.subject, detail, r.prev):
            return Verdict(n, head_seq, Broken(
                r.seq, f"record {r.seq}: its contents do not match its hash "
                "(changed after it was written)"))
        prev, expect = r.hash, r.seq + 1
    if head is None:
        return Verdict(n, head_seq, Broken(0, "the audit head row is missing"))
    if head_seq != expect - 1 or head_hash != prev:
        last = expect - 1
        if head_seq > last:
            return Verdict(n, head_seq, Broken(
                last + 1, f"record {last + 1} is missing: the log ends at record {last}, its "
                f"head names record {head_seq}"))
        return Verdict(n, head_seq, Broken(
            head_seq, f"the audit head names record {head_seq} but the log ends at {last} "
            "with another hash"))
    return Verdict(n, head_seq, None)
