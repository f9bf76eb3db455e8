"""The alert journal's hash chain, pure: what a record is, how it is hashed, how a chain is
checked.

Every record carries the hash of the record before it; its own hash covers its sequence
number, its fields and that previous hash, over a canonical JSON form (sorted keys, no
whitespace, UTF-8; ``servicekit.hashchain``, shared with the registry's audit log). Changing,
inserting or deleting any record breaks the chain at that record or at the one after it, and
``verify`` names the first record that does not check out. The first record's previous hash is
``GENESIS``.

The store (``alerting.store``) appends records inside the same transaction as the engine state
they describe; ``wardwatch alerting audit verify`` reads them back through ``verify``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from servicekit.hashchain import GENESIS, canonical

__all__ = ["GENESIS", "KINDS", "Broken", "Record", "canonical", "chain_hash", "verify"]

#: what a journal record may be about
KINDS = frozenset({
    "raised", "updated", "worsened", "escalated", "reminder", "acknowledged", "snoozed",
    "resolved",  # alert events (the AlertEventType values)
    "command",  # a nurse's command as received (user, its own time, receive time, id)
    "command_refused",
    "receipt",  # a delivery receipt (received / viewed / accepted)
    "rules",  # the unit rules in force changed (version, hash and the rules themselves)
    "context",  # the unit context changed (admissions, beds)
    "charted",  # a nurse's charted set arrived (set id, who, observed and charted times)
    "started",  # an engine instance started on this state (after a restart: recovered)
})


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    kind: str
    at: str  # the engine's time of what happened, ISO-8601 UTC
    recorded_at: str  # the wall clock when it was written
    body: Mapping[str, Any]
    prev: str
    hash: str


def chain_hash(
    seq: int, kind: str, at: str, recorded_at: str, body: Mapping[str, Any], prev: str
) -> str:
    """The hash a record with these fields must carry."""
    payload = canonical(
        {"seq": seq, "kind": kind, "at": at, "recorded_at": recorded_at, "body": body,
         "prev": prev}
    )
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True, slots=True)
class Broken:
    """The first record that does not check out, and why."""

    seq: int
    reason: str


def verify(records: Iterable[Record]) -> tuple[int, Broken | None]:
    """Check a chain in sequence order; returns (records checked, first break or None)."""
    prev, expect_seq, n = GENESIS, 1, 0
    for r in records:
        n += 1
        if r.seq != expect_seq:
            return n, Broken(r.seq, f"sequence gap: expected record {expect_seq}, found {r.seq}")
        if r.kind not in KINDS:
            return n, Broken(r.seq, f"unknown kind {r.kind!r}")
        if r.prev != prev:
            return n, Broken(r.seq, "its previous-hash does not match the record before it")
        want = chain_hash(r.seq, r.kind, r.at, r.recorded_at, r.body, r.prev)
        if r.hash != want:
            return n, Broken(r.seq, "its contents do not match its hash (changed after writing)")
        prev, expect_seq = r.hash, r.seq + 1
    return n, None
