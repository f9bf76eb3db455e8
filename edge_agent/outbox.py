"""The durable outbox: SQLite in WAL mode, executing the decisions of ``outbox_core``.

Every write is one transaction with ``synchronous=FULL``, so a reading the driver handed over
survives ``kill -9`` and power loss, and a sealed batch is never half written. One connection is
shared by the driver and publisher threads behind a lock (SQLite serialises writers anyway).

History: each outbox has an *epoch* id, created with it and sent in every batch, and a small
marker file beside it (``<outbox>.epoch``: the epoch and the next seq) that outlives a deleted
outbox. Opening refuses, with a message naming the file and what to do, when

* the outbox file is missing but the marker says this gateway has run before (queued
  observations may have been lost: an operator must say so with ``new_epoch=True``,
  ``wardwatch edge run --new-outbox``);
* the outbox's epoch is not the marker's, or its seq is behind the marker's (an old copy
  restored): its seqs would repeat ones already sent;
* the file is not a healthy SQLite database (``OutboxCorrupt``).

A stored reading that no longer validates (written by an older version under a laxer
contract) is moved to the ``quarantine`` table at seal time and counted, never a crash loop.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from edge_agent.outbox_core import plan_overflow
from wardwire.models import (
    MAX_BATCH_OBSERVATIONS,
    MAX_BATCH_SAMPLES,
    MAX_BATCH_WAVEFORMS,
    Generation,
    Observation,
    ObservationBatch,
    WaveformBlock,
    validation_summary,
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
INSERT OR IGNORE INTO meta VALUES ('next_seq', 0), ('dropped', 0), ('rejected', 0),
    ('quarantined', 0);
CREATE TABLE IF NOT EXISTS identity (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""

log = logging.getLogger(__name__)


class OutboxError(RuntimeError):
    """The outbox cannot be used as it is; the message names the file and what to do."""


class OutboxHistoryError(OutboxError):
    """The outbox does not continue the history this gateway ran with (missing, replaced or
    restored from an old copy)."""


class OutboxCorrupt(OutboxError):
    """The outbox file is not a healthy SQLite database."""


def _new_epoch() -> str:
    return uuid.uuid4().hex[:16]


#: A sealed batch stays below this many bytes of readings, so it always fits the broker's
#: message_size_limit (8 MiB in the shipped configs) with room for the envelope.
MAX_SEAL_BYTES = 6 * 1024 * 1024


def _samples_of(body: str) -> int:
    """Samples in a stored waveform block (0 for a row that is not one: _decode quarantines
    it)."""
    try:
        return len(json.loads(body)["samples"])
    except (ValueError, KeyError, TypeError):
        return 0


def _fit_batch(rows: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """The longest prefix of ``rows`` that one wire batch may carry (the batch model caps
    rows, waveform blocks and samples; the broker caps bytes); the rest stays pending for the
    next batch, in order. Never empty when ``rows`` is not (one row always fits)."""
    waves = samples = size = 0
    rows = rows[:MAX_BATCH_OBSERVATIONS]
    for i, (_, kind, body) in enumerate(rows):
        size += len(body)
        if kind == "wave":
            waves += 1
            samples += _samples_of(body)
        if i and (waves > MAX_BATCH_WAVEFORMS or samples > MAX_BATCH_SAMPLES
                  or size > MAX_SEAL_BYTES):
            return rows[:i]
    return rows


def _decode(
    rows: list[tuple[int, str, str]],
) -> tuple[list[Observation], list[WaveformBlock], list[tuple[int, str]]]:
    obs: list[Observation] = []
    waves: list[WaveformBlock] = []
    bad: list[tuple[int, str]] = []
    for rid, kind, body in rows:
        try:
            if kind == "obs":
                obs.append(Observation.model_validate_json(body))
            else:
                waves.append(WaveformBlock.model_validate_json(body))
        except ValidationError as exc:
            bad.append((rid, validation_summary(exc)))
    return obs, waves, bad


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
    quarantined: int = 0

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
        new_epoch: bool = False,
    ) -> None:
        self.path = path
        self.marker = path.with_name(path.name + ".epoch")
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists() and path.stat().st_size > 0
        mark = self._read_marker()
        if not existed and mark is not None and not new_epoch:
            raise OutboxHistoryError(
                f"outbox {path} is missing, but this gateway has run before (epoch "
                f"{mark['epoch']}, next seq {mark['next_seq']}, per {self.marker}): readings "
                "queued in it may be lost. If that is known and accepted, start with "
                "--new-outbox to begin a new epoch (ingest will report outbox_reset)."
            )
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            check = self._db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise OutboxCorrupt(
                f"outbox {path} is corrupt ({exc}). Move it aside (keep it: its readings can "
                "be recovered with the sqlite3 tool), then start with --new-outbox."
            ) from exc
        self._lock = threading.Lock()
        self._max_rows = max_rows
        self._overflow = overflow
        self.epoch, self.epoch_reason = self._settle_epoch(existed, mark, new_epoch)
        self._write_marker()

    # -- history ---------------------------------------------------------------------------
    def _read_marker(self) -> dict[str, object] | None:
        try:
            text = self.marker.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            if not isinstance(data["epoch"], str) or not isinstance(data["next_seq"], int):
                raise TypeError("bad field types")
        except (ValueError, KeyError, TypeError) as exc:
            raise OutboxHistoryError(
                f"outbox marker {self.marker} is unreadable ({exc}); restore it, or remove it "
                "and start with --new-outbox"
            ) from exc
        return dict(data)

    def _write_marker(self, next_seq: int | None = None) -> None:
        tmp = self.marker.with_name(self.marker.name + ".tmp")
        if next_seq is None:
            with self._lock:
                next_seq = self._meta("next_seq")
        tmp.write_text(json.dumps({"epoch": self.epoch, "next_seq": next_seq}), encoding="utf-8")
        tmp.replace(self.marker)

    def _settle_epoch(
        self, existed: bool, mark: dict[str, object] | None, new_epoch: bool
    ) -> tuple[str, str | None]:
        row = self._db.execute("SELECT value FROM identity WHERE key = 'epoch'").fetchone()
        stored = str(row[0]) if row else None
        next_seq = self._meta("next_seq")
        problem: str | None = None
        if mark is not None and stored is not None and stored != mark["epoch"]:
            problem = (
                f"outbox {self.path} has epoch {stored}, but this gateway ran with epoch "
                f"{mark['epoch']} ({self.marker}): it is another gateway's or an old outbox"
            )
        elif mark is not None and stored is not None and next_seq < int(str(mark["next_seq"])):
            problem = (
                f"outbox {self.path} is at seq {next_seq}, behind the {mark['next_seq']} this "
                f"gateway already reached ({self.marker}): an old copy was restored"
            )
        elif mark is not None and not existed:
            problem = f"outbox {self.path} was missing (epoch {mark['epoch']} ended)"
        if problem is not None and not new_epoch:
            raise OutboxHistoryError(
                f"{problem}. Its seqs would repeat ones already sent. If that is understood, "
                "start with --new-outbox to begin a new epoch (ingest will report outbox_reset)."
            )
        if stored is not None and problem is None:
            return stored, None  # the history continues
        epoch = _new_epoch()
        if problem is not None:
            reason = f"--new-outbox: {problem}"
        elif stored is None and existed:
            reason = "outbox from an earlier version: epoch created"
        else:
            reason = "first start"
        self._db.execute("INSERT OR REPLACE INTO identity VALUES ('epoch', ?)", (epoch,))
        log.warning("outbox %s: new epoch %s (%s)", self.path, epoch, reason)
        return epoch, reason

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
                obs, waves, bad = _decode(rows)
                if bad:
                    self._quarantine(bad, rows)
                if not obs and not waves:
                    self._db.execute("DELETE FROM pending WHERE id <= ?", (rows[-1][0],))
                    self._db.execute("COMMIT")
                    return None
                seq = self._meta("next_seq")
                batch = ObservationBatch(
                    gateway_id=gateway_id,
                    seq=seq,
                    epoch=self.epoch,
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
                    (seq, len(obs), int(now.timestamp() * 1000), payload, len(obs) + len(waves)),
                )
                self._db.execute("DELETE FROM pending WHERE id <= ?", (rows[-1][0],))
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seq + 1,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._write_marker(seq + 1)
        return SealedBatch(seq, len(obs), payload, len(obs) + len(waves))

    def _quarantine(self, bad: list[tuple[int, str]], rows: list[tuple[int, str, str]]) -> None:
        """Keep readings that no longer validate aside (inside the seal's transaction)."""
        body = {r[0]: r for r in rows}
        self._db.executemany(
            "INSERT OR REPLACE INTO quarantine (id, kind, received_ms, body, reason) "
            "SELECT id, kind, received_ms, body, ? FROM pending WHERE id = ?",
            [(reason, rid) for rid, reason in bad],
        )
        self._db.execute(
            "UPDATE meta SET value = value + ? WHERE key = 'quarantined'", (len(bad),)
        )
        for rid, reason in bad:
            log.error("outbox %s: reading %d quarantined: %s (%s)", self.path, rid, reason,
                      body[rid][2][:200])

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
            return OutboxStats(
                pending,
                nb,
                no,
                self._meta("dropped"),
                self._meta("rejected"),
                self._meta("quarantined"),
            )
