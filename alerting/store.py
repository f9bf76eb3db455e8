"""The alert engine's durable state: one SQLite file (WAL) per unit.

Theory of operation
-------------------
Three things live here, and one transaction writes them together:

* ``bed_state``: each bed's engine state (``Bed.snapshot()``), written for the beds a step
  touched; with ``engine_meta`` it is everything ``UnitEngine`` needs to resume;
* ``journal``: an append-only, hash-chained record of every alert event, command, rules change
  and context change (``alerting.journal``), kept without expiry; triggers refuse ``UPDATE`` and
  ``DELETE``, and ``verify`` finds any change made around them;
* ``outbox``: what must reach the broker (retained alert state, alert events), deleted once the
  broker acknowledged it.

The shell's rule is *commit, then publish*: an alert decision is durable (state, journal and the
messages that announce it) before anything leaves the process. A kill -9 between the commit and
the publish loses nothing (the outbox is published again at start) and raises nothing twice
(the restored engine knows the alert); a kill -9 before the commit leaves the broker to deliver
the message again (the engine's MQTT session is persistent and acknowledges after handling).

``synchronous=FULL``: an acknowledged alert must survive a power cut, not only a crash.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alerting.journal import GENESIS, Record, chain_hash, verify

__all__ = ["Entry", "Outgoing", "StateStore", "StoreError", "backup", "restore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS engine_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bed_state (bed_id TEXT PRIMARY KEY, snapshot TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    body TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"""
FORMAT = "1"

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The state file cannot be used (unreadable, another unit's, a newer format)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A journal record to append (its sequence number and hashes are the store's)."""

    kind: str
    at: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class Step:
    """What one step of the engine changed: written in one transaction."""

    beds: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    journal: list[Entry] = field(default_factory=list)
    outbox: list[Outgoing] = field(default_factory=list)
    drop_beds: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.beds or self.meta or self.journal or self.outbox or self.drop_beds)


class StateStore:
    """One unit's state file. Thread-safe: every method takes the store's own lock."""

    def __init__(self, path: Path, *, site: str, unit: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # One writer: a second engine on the same state (a unit owned twice) is refused.
        self._owner_fd = _lock_file(path)
        try:
            self._open(site, unit)
        except BaseException:  # refused or unreadable: hold nothing (neither lock nor file)
            if hasattr(self, "db"):
                self.db.close()
            os.close(self._owner_fd)
            raise

    def _open(self, site: str, unit: str) -> None:
        path = self.path
        _private_file(path, "the alert state")
        try:
            self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the alert state: {exc}") from exc
        owner = self._meta("owner")
        want = {"site": site, "unit": unit, "format": FORMAT}
        if owner is None:
            self._put_meta({"owner": want})
        elif owner != want:
            raise StoreError(
                f"{path}: this state belongs to {owner.get('site')}/{owner.get('unit')} "
                f"(format {owner.get('format')}), not {site}/{unit} (format {FORMAT})"
            )
        row = self.db.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
        self._seq: int = row[0] if row else 0
        self._head: str = row[1] if row else GENESIS

    # -- reading -----------------------------------------------------------------------------
    def _meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM engine_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def meta(self, key: str) -> Any:
        with self._lock:
            return self._meta(key)

    def beds(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self.db.execute("SELECT snapshot FROM bed_state ORDER BY bed_id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def outbox(self) -> list[tuple[int, Outgoing]]:
        with self._lock:
            rows = self.db.execute(
                "SELECT seq, topic, payload, retain FROM outbox ORDER BY seq"
            ).fetchall()
        return [(r[0], Outgoing(r[1], bytes(r[2]), bool(r[3]))) for r in rows]

    def outbox_depth(self) -> int:
        with self._lock:
            row = self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0])

    def journal_head(self) -> tuple[int, str]:
        """The last record's sequence number and hash (0 and GENESIS when empty)."""
        with self._lock:
            return self._seq, self._head

    def journal(self, after: int = 0) -> Iterator[Record]:
        with self._lock:
            rows = self.db.execute(
                "SELECT seq, kind, at, recorded_at, body, prev, hash FROM journal "
                "WHERE seq > ? ORDER BY seq",
                (after,),
            ).fetchall()
        for seq, kind, at, rec, body, prev, h in rows:
            yield Record(seq, kind, at, rec, json.loads(body), prev, h)

    def last(self, kind: str) -> Record | None:
        with self._lock:
            row = self.db.execute(
                "SELECT seq, kind, at, recorded_at, body, prev, hash FROM journal "
                "WHERE kind = ? ORDER BY seq DESC LIMIT 1",
                (kind,),
            ).fetchone()
        if row is None:
            return None
        return Record(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6])

    # -- writing -----------------------------------------------------------------------------
    def _put_meta(self, meta: Mapping[str, Any]) -> None:
        for k, v in meta.items():
            self.db.execute(
                "INSERT INTO engine_meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (k, json.dumps(v, sort_keys=True)),
            )

    def commit(self, step: Step, recorded_at: str) -> list[tuple[int, Outgoing]]:
        """Write one step atomically; returns the outbox rows to publish, with their ids."""
        if step.empty():
            return []
        with self._lock:
            seq, head = self._seq, self._head
            out: list[tuple[int, Outgoing]] = []
            try:
                self.db.execute("BEGIN IMMEDIATE")
                for bed_id, snap in step.beds.items():
                    self.db.execute(
                        "INSERT INTO bed_state(bed_id, snapshot) VALUES (?, ?) "
                        "ON CONFLICT(bed_id) DO UPDATE SET snapshot = excluded.snapshot",
                        (bed_id, json.dumps(snap, separators=(",", ":"))),
                    )
                for bed_id in step.drop_beds:
                    self.db.execute("DELETE FROM bed_state WHERE bed_id = ?", (bed_id,))
                self._put_meta(step.meta)
                for e in step.journal:
                    seq += 1
                    text = json.dumps(dict(e.body), sort_keys=True, separators=(",", ":"))
                    # hash the body as it will be read back: JSON makes every key a string
                    # (2 and 10 become "2" and "10", which sort the other way round)
                    h = chain_hash(seq, e.kind, e.at, recorded_at, json.loads(text), head)
                    self.db.execute(
                        "INSERT INTO journal(seq, kind, at, recorded_at, body, prev, hash) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (seq, e.kind, e.at, recorded_at, text, head, h),
                    )
                    head = h
                for o in step.outbox:
                    cur = self.db.execute(
                        "INSERT INTO outbox(topic, payload, retain) VALUES (?, ?, ?)",
                        (o.topic, o.payload, int(o.retain)),
                    )
                    assert cur.lastrowid is not None
                    out.append((cur.lastrowid, o))
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            self._seq, self._head = seq, head
            return out

    def published(self, seqs: Iterable[int]) -> None:
        """The broker acknowledged these outbox rows: they are done."""
        ids = [(s,) for s in seqs]
        if not ids:
            return
        with self._lock:
            self.db.executemany("DELETE FROM outbox WHERE seq = ?", ids)

    def close(self) -> None:
        with self._lock:
            if self._owner_fd < 0:  # closed already: that number may be another file's now
                return
            self.db.close()
            os.close(self._owner_fd)
            self._owner_fd = -1


def _lock_file(path: Path) -> int:
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"{path}: another alert engine is running on this state (one writer per unit)"
        ) from None
    return fd


def _private_file(path: Path, what: str) -> None:
    """Create ``path`` readable by its owner only (0600, whatever the umask): the state holds
    the beds' snapshots with the children's dates of birth, and the journal. SQLite creates
    its -wal, -shm and -journal files with the database file's mode, so they are 0600 too.

    An existing file keeps its mode (an operator may have chosen it), but a file, or a -wal or
    -shm beside it, that its group or others may read is logged as a warning.

    A symbolic link is followed, as SQLite follows it (its -wal and -shm go beside the
    target): a dangling one names the file to create.
    """
    path = Path(os.path.realpath(path))
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"{path}: cannot create {what}: {exc.strerror}") from exc
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(p.stat().st_mode)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"{p}: cannot read its mode: {exc.strerror}") from exc
        if mode & 0o077:
            log.warning(
                "%s: its group or others may read it (mode %04o); it holds the children's dates"
                " of birth: chmod 600 it", p, mode,
            )


def backup(src: Path, dest: Path) -> None:
    """A consistent copy of a state file, taken while the engine may be writing it."""
    if not src.exists():
        raise StoreError(f"{src}: no such state file")
    # created here, 0600 and exclusively (the copy holds what the state holds; two backups to
    # one name cannot both write it)
    try:
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        raise StoreError(f"{dest}: exists already (a backup never overwrites)") from None
    except OSError as exc:
        raise StoreError(f"{dest}: cannot create the backup: {exc.strerror}") from exc
    # closing(): a connection's own ``with`` only commits; left open (until the garbage
    # collector finds it) it keeps the source's -wal and -shm in use by this process
    try:
        with closing(sqlite3.connect(str(src))) as s, closing(sqlite3.connect(str(dest))) as d:
            s.backup(d)
        with closing(sqlite3.connect(str(dest))) as d:
            d.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    except sqlite3.Error as exc:  # not a database: nothing half-made left for a retry to meet
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{dest}{suffix}").unlink(missing_ok=True)
        raise StoreError(f"{src}: cannot back it up: {exc}") from exc


def restore(src: Path, dest: Path) -> None:
    """Put a backup in place of a state file (the engine of that unit must be stopped)."""
    if not src.exists():
        raise StoreError(f"{src}: no such backup")
    fd = _lock_file(dest)  # refused while an engine runs on it
    try:
        _restore(src, dest)
    except sqlite3.Error as exc:  # not a database at all
        raise StoreError(f"{src}: cannot restore it: {exc}") from exc
    finally:
        os.close(fd)


def _owner(db: sqlite3.Connection) -> Any:
    try:
        row = db.execute("SELECT value FROM engine_meta WHERE key = 'owner'").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else json.loads(row[0])


def _records(db: sqlite3.Connection) -> Iterator[Record]:
    rows = db.execute(
        "SELECT seq, kind, at, recorded_at, body, prev, hash FROM journal ORDER BY seq"
    ).fetchall()
    for seq, kind, at, rec, body, prev, h in rows:
        try:
            parsed = json.loads(body)
        except (json.JSONDecodeError, TypeError):
            parsed = {"unreadable": str(body)}
        yield Record(seq, kind, at, rec, parsed, prev, h)


def read_journal(path: Path) -> list[Record]:
    """Every journal record of a state file, read-only (text that is not UTF-8 is read with
    replacement characters, so it fails its hash at its own record instead of failing the
    read)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        db.text_factory = lambda b: b.decode("utf-8", "replace")
        return list(_records(db))


def _restore(src: Path, dest: Path) -> None:
    with closing(sqlite3.connect(str(src))) as s:
        ok = s.execute("PRAGMA integrity_check").fetchone()
        if ok is None or ok[0] != "ok":
            raise StoreError(f"{src}: not a sound database: {ok}")
        tables = {r[0] for r in s.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"journal", "bed_state", "engine_meta", "outbox"} <= tables:
            raise StoreError(f"{src}: not an alert state backup")
        s.text_factory = lambda b: b.decode("utf-8", "replace")
        _, broken = verify(_records(s))
        if broken is not None:
            raise StoreError(
                f"{src}: its journal is broken at record {broken.seq} ({broken.reason}): "
                "not restored"
            )
        src_owner = _owner(s)
    if dest.exists():
        with closing(sqlite3.connect(str(dest))) as d:
            dest_owner = _owner(d)
        if dest_owner is not None and src_owner != dest_owner:
            raise StoreError(
                f"{src} is the state of {src_owner}, {dest} of {dest_owner}: not restored"
            )
    # copy beside the destination first: a copy that fails leaves the destination as it was
    tmp = Path(f"{dest}.restoring")
    tmp.unlink(missing_ok=True)
    try:
        # a new state file: 0600 like one the engine creates (see _private_file)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        except OSError as exc:
            raise StoreError(f"{tmp}: cannot create the restored state: {exc.strerror}") from exc
        with closing(sqlite3.connect(str(src))) as s, closing(sqlite3.connect(str(tmp))) as t:
            s.backup(t)
        with closing(sqlite3.connect(str(tmp))) as t:
            t.execute("PRAGMA journal_mode=DELETE")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for suffix in ("-wal", "-shm"):
        Path(f"{dest}{suffix}").unlink(missing_ok=True)
    tmp.replace(dest)
