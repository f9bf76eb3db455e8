"""The durable outbox: SQLite in WAL mode, executing the decisions of ``outbox_core``.

Every write is one transaction with ``synchronous=FULL``, so a reading the driver handed over
survives ``kill -9`` and power loss, and a sealed batch is never half written. One connection is
shared by the driver and publisher threads behind a lock (SQLite serialises writers anyway).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from edge_agent.outbox_core import plan_overflow
from wardwire.models import (
    MAX_BATCH_OBSERVATIONS,
    MAX_BATCH_WAVEFORMS,
    Generation,
    Observation,
    ObservationBatch,
    WaveformBlock,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('obs', 'wave')),
    received_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY,
    n_obs INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    n_rows INTEGER NOT NULL  -- observations + waveform blocks (what depth and max_rows count)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('next_seq', 0), ('dropped', 0), ('rejected', 0);
"""


def _fit_batch(rows: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """The longest prefix of ``rows`` that one wire batch may carry (the batch model caps
    waveform blocks); the rest stays pending for the next batch, in order."""
    waves = 0
    for i, (_, kind, _) in enumerate(rows):
        if kind == "wave":
            waves += 1
            if waves > MAX_BATCH_WAVEFORMS:
                return rows[:i]
    return rows[:MAX_BATCH_OBSERVATIONS]


@dataclass(frozen=True, slots=True)
class SealedBatch:
    seq: int
    n_obs: int
    payload: bytes
    n_rows: int = 0  # observations + waveform blocks


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    sealed_batches: int
    sealed_obs: int
    dropped: int
    rejected: int

    @property
    def depth(self) -> int:
        """Observations held (pending + sealed, not yet acknowledged by the broker)."""
        return self.pending + self.sealed_obs


class Outbox:
    """A bounded, durable queue of readings and sealed batches."""

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = 2_000_000,
        overflow: Literal["drop_oldest", "reject_new"] = "drop_oldest",
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._max_rows = max_rows
        self._overflow = overflow

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0])

    def _counts(self) -> tuple[int, int, int]:
        pending = int(self._db.execute("SELECT count(*) FROM pending").fetchone()[0])
        nb, no = self._db.execute(
            "SELECT count(*), coalesce(sum(n_rows), 0) FROM batches"
        ).fetchone()
        return pending, int(nb), int(no)

    def add(
        self,
        observations: Sequence[Observation],
        waveforms: Sequence[WaveformBlock] = (),
        *,
        now: datetime,
    ) -> int:
        """Store readings durably; returns how many were accepted (see the overflow policy)."""
        items: list[tuple[str, str]] = [("obs", o.model_dump_json()) for o in observations]
        items += [("wave", w.model_dump_json()) for w in waveforms]
        if not items:
            return 0
        now_ms = int(now.timestamp() * 1000)
        with self._lock:
            pending, _, sealed_obs = self._counts()
            decision = plan_overflow(
                pending + sealed_obs,
                pending,
                len(items),
                max_rows=self._max_rows,
                policy=self._overflow,
            )
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if decision.drop_oldest:
                    self._db.execute(
                        "DELETE FROM pending WHERE id IN "
                        "(SELECT id FROM pending ORDER BY id LIMIT ?)",
                        (decision.drop_oldest,),
                    )
                    self._db.execute(
                        "UPDATE meta SET value = value + ? WHERE key = 'dropped'",
                        (decision.drop_oldest,),
                    )
                if decision.rejected:
                    self._db.execute(
                        "UPDATE meta SET value = value + ? WHERE key = 'rejected'",
                        (decision.rejected,),
                    )
                self._db.executemany(
                    "INSERT INTO pending (kind, received_ms, body) VALUES (?, ?, ?)",
                    [(k, now_ms, b) for k, b in items[: decision.accept]],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return decision.accept

    def oldest_pending_ms(self) -> tuple[int, int | None]:
        """(pending count, receive time of the oldest pending reading)."""
        with self._lock:
            n, oldest = self._db.execute(
                "SELECT count(*), min(received_ms) FROM pending"
            ).fetchone()
        return int(n), (int(oldest) if oldest is not None else None)

    def seal(
        self, count: int, *, gateway_id: str, generation: Generation, now: datetime
    ) -> SealedBatch | None:
        """Seal up to ``count`` oldest pending readings into the next batch (one transaction)."""
        if count <= 0:
            return None
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT id, kind, body FROM pending ORDER BY id LIMIT ?", (count,)
                ).fetchall()
                rows = _fit_batch(rows)
                if not rows:
                    self._db.execute("ROLLBACK")
                    return None
                obs = [Observation.model_validate_json(b) for _, k, b in rows if k == "obs"]
                waves = [WaveformBlock.model_validate_json(b) for _, k, b in rows if k == "wave"]
                seq = self._meta("next_seq")
                batch = ObservationBatch(
                    gateway_id=gateway_id,
                    seq=seq,
                    sent_at=now,
                    generation=generation,
                    observations=obs,
                    waveforms=waves,
                )
                payload = batch.model_dump_json().encode()
                # n_rows counts observations + waveform blocks, as the pending table does, so
                # depth and the overflow bound see sealed waveforms too.
                self._db.execute(
                    "INSERT INTO batches VALUES (?, ?, ?, ?, ?)",
                    (seq, len(obs), int(now.timestamp() * 1000), payload, len(rows)),
                )
                self._db.execute("DELETE FROM pending WHERE id <= ?", (rows[-1][0],))
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seq + 1,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return SealedBatch(seq, len(obs), payload, len(rows))

    def sealed(self, after_seq: int = -1, limit: int = 100) -> list[SealedBatch]:
        """Sealed batches in seq order (the publisher replays these after a restart)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, n_obs, payload, n_rows FROM batches WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [SealedBatch(int(s), int(n), bytes(p), int(r)) for s, n, p, r in rows]

    def ack(self, seq: int) -> None:
        """The broker acknowledged batch ``seq``: delete it."""
        with self._lock:
            self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))

    def stats(self) -> OutboxStats:
        with self._lock:
            pending, nb, no = self._counts()
            return OutboxStats(pending, nb, no, self._meta("dropped"), self._meta("rejected"))
