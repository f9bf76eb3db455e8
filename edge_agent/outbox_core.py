"""Outbox decisions, as pure functions (the SQLite shell, ``edge_agent.outbox``, executes them).

Theory of operation
-------------------
A reading enters the outbox as a *pending* row, durably, before its driver reads on. The
publisher *seals* pending rows into a batch: one transaction assigns the gateway's next ``seq``,
stores the serialised ``ObservationBatch`` and deletes the rows, so a batch's content and seq
never change afterwards (a republish after a crash is byte-identical and consumers treat it as a
duplicate). A sealed batch is *in flight* once handed to the MQTT client, and is deleted only
when its PUBACK arrives. A lost connection or a restart returns every in-flight batch to sealed,
and they are published again in seq order.

    pending --seal--> sealed --publish--> inflight --puback--> (deleted)
                        ^                    |
                        +----disconnect------+

The outbox is bounded (``max_rows`` observations). On overflow the documented policy applies:
``drop_oldest`` discards the oldest *pending* readings (never a sealed batch, which would make a
seq gap), ``reject_new`` refuses the new readings. Either way the count is kept and reported in
the gateway status: never silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


def plan_seal(
    pending: int,
    oldest_received_ms: int | None,
    now_ms: int,
    *,
    batch_max: int,
    linger_ms: int,
    flush: bool = False,
) -> int:
    """How many pending readings to seal into one batch now (0 = wait for more).

    A batch is sealed when it is full, when its oldest reading has waited ``linger_ms``, or
    when the caller flushes (shutdown).
    """
    if pending <= 0:
        return 0
    if pending >= batch_max or flush:
        return min(pending, batch_max)
    if oldest_received_ms is not None and now_ms - oldest_received_ms >= linger_ms:
        return pending
    return 0


@dataclass(frozen=True, slots=True)
class OverflowDecision:
    """What to do with ``incoming`` readings given the outbox's fill."""

    accept: int
    drop_oldest: int
    rejected: int


def plan_overflow(
    stored: int,
    pending: int,
    incoming: int,
    *,
    max_rows: int,
    policy: Literal["drop_oldest", "reject_new"],
) -> OverflowDecision:
    """Apply the overflow policy. ``stored`` counts all observations held (pending + sealed)."""
    room = max(0, max_rows - stored)
    if incoming <= room:
        return OverflowDecision(incoming, 0, 0)
    excess = incoming - room
    if policy == "reject_new":
        return OverflowDecision(room, 0, excess)
    # drop_oldest: only pending rows may be dropped (sealed batches own their seq).
    droppable = pending
    drop = min(excess, droppable)
    still_over = excess - drop
    return OverflowDecision(incoming - still_over, drop, still_over)


def publish_window(inflight: int, inflight_max: int) -> int:
    """How many more sealed batches may be handed to the MQTT client now."""
    return max(0, inflight_max - inflight)
