"""The alert engine's durable state (``alerting.store``) and its journal's hash chain
(``alerting.journal``), with ``wardwatch alerting audit verify | backup | restore``.

What the chain can tell, given its design (each record's hash covers its own sequence number,
kind, times, body and the previous record's hash; ``verify`` checks, record by record, the
sequence number, the kind, the previous-hash link, then the record's own hash):

* a change to any one stored field of record K (body, at, kind, prev, hash) is reported at K
  itself, never later: K's own hash no longer matches its fields (or, for prev, the link to
  K-1 does not);
* a forger who changes K *and* recomputes K's hash moves the report to K+1 (whose prev no
  longer matches); deleting K is reported at K+1 ("expected record K"); a pair swapped is
  reported at the first of the two;
* the chain carries no key and no anchor outside the file: a forger who recomputes every hash
  from K to the end, appends a well-hashed record, or drops records at the end, is not
  detected; nor is a body re-spelt as the same JSON value (the hash covers the value, not the
  stored text). ``test_limit_*`` pin these limits down so that a change to them is deliberate.

Tampering goes around the append-only triggers with plain sqlite3 (dropping them first).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from alerting.journal import GENESIS, KINDS, Broken, Record, canonical, chain_hash, verify
from alerting.store import Entry, Outgoing, StateStore, Step, StoreError, backup, restore
from wardwatch.cli import app

REPO = Path(__file__).resolve().parents[3]
SITE, UNIT = "st-olaf", "picu-2"
COLUMNS = "seq, kind, at, recorded_at, body, prev, hash"
TABLES = {"engine_meta", "bed_state", "journal", "outbox"}
runner = CliRunner()

Row = tuple[Any, ...]


# -- helpers ----------------------------------------------------------------------------------
def open_store(path: Path, site: str = SITE, unit: str = UNIT) -> StateStore:
    return StateStore(path, site=site, unit=unit)


def at(i: int) -> str:
    return f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}+00:00"


def rows(path: Path, table: str = "journal") -> list[Row]:
    order = {"journal": "seq", "outbox": "seq", "bed_state": "bed_id", "engine_meta": "key"}
    cols = COLUMNS if table == "journal" else "*"
    with closing(sqlite3.connect(path)) as db:
        return db.execute(f"SELECT {cols} FROM {table} ORDER BY {order[table]}").fetchall()


def everything(path: Path) -> dict[str, list[Row]]:
    return {t: rows(path, t) for t in sorted(TABLES)}


def tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def records(path: Path) -> list[Record]:
    return [Record(s, k, a, r, json.loads(b), p, h) for s, k, a, r, b, p, h in rows(path)]


def check(path: Path) -> tuple[int, Broken | None]:
    return verify(records(path))


def tamper(path: Path, change: Callable[[sqlite3.Connection], object]) -> None:
    """Change the journal around its append-only triggers (as anyone with the file can)."""
    with closing(sqlite3.connect(path)) as db:
        db.execute("DROP TRIGGER IF EXISTS journal_no_update")
        db.execute("DROP TRIGGER IF EXISTS journal_no_delete")
        change(db)
        db.commit()


def rehash(db: sqlite3.Connection, seq: int) -> None:
    """Recompute one record's hash from its (changed) fields, as a forger would."""
    s, k, a, r, b, p, _ = db.execute(
        f"SELECT {COLUMNS} FROM journal WHERE seq = ?", (seq,)
    ).fetchone()
    db.execute("UPDATE journal SET hash = ? WHERE seq = ?",
               (chain_hash(s, k, a, r, json.loads(b), p), seq))


def cli(*args: str) -> Result:
    return runner.invoke(app, ["alerting", *args])


def cli_verify(path: Path) -> Result:
    return cli("audit", "verify", "--db", str(path))


def commit_batches(path: Path, batches: list[list[Entry]]) -> None:
    store = open_store(path)
    try:
        for i, batch in enumerate(batches):
            store.commit(Step(journal=batch), at(100 + i))
    finally:
        store.close()


# Eight records over three commits: the fixture journal the tampering tests start from.
BATCHES = [
    [
        Entry("started", at(0), {"instance": "alerting-1", "recovered_alerts": 0}),
        Entry("rules", at(0), {"version": "2024.1", "hash": "ab" * 32, "previous_hash": None}),
        Entry("context", at(0), {"beds_added": ["b1", "b2"], "beds_removed": []}),
    ],
    [
        Entry("raised", at(5), {"alert": {"bed_id": "b1", "priority": "high"}, "by": None,
                                "event_id": "e1"}),
        Entry("command", at(7), {"command": "ack", "command_id": "c1", "user": "Zoë\tNurse"}),
        Entry("acknowledged", at(7), {"alert": {"bed_id": "b1"}, "by": "Zoë\tNurse",
                                      "event_id": "e2"}),
    ],
    [
        Entry("receipt", at(9), {"state": "viewed", "nested": {"deep": [1, 2.5, None, True]}}),
        Entry("resolved", at(12), {"alert": {"bed_id": "b1"}, "by": None, "event_id": "e3"}),
    ],
]
N = sum(len(b) for b in BATCHES)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state.sqlite"
    commit_batches(path, BATCHES)
    return path


# -- 1/2. the chain, and audit verify over tampered files -------------------------------------
def test_records_over_several_commits_chain_and_verify(state: Path) -> None:
    recs = records(state)
    assert [r.seq for r in recs] == list(range(1, N + 1))
    assert recs[0].prev == GENESIS
    for before, after in pairwise(recs):
        assert after.prev == before.hash
    assert [r.kind for r in recs] == [e.kind for b in BATCHES for e in b]
    assert [canonical(r.body) for r in recs] == [canonical(e.body) for b in BATCHES for e in b]
    # one recorded_at per commit
    assert [r.recorded_at for r in recs] == [at(100)] * 3 + [at(101)] * 3 + [at(102)] * 2
    assert check(state) == (N, None)
    result = cli_verify(state)
    assert result.exit_code == 0, result.output
    assert f"journal intact: {N} records verified" in result.stdout


def test_the_triggers_refuse_update_and_delete(state: Path) -> None:
    before = rows(state)
    with closing(sqlite3.connect(state)) as db:
        with pytest.raises(sqlite3.DatabaseError, match="the journal is append-only"):
            db.execute("UPDATE journal SET body = '{}' WHERE seq = 4")
        with pytest.raises(sqlite3.DatabaseError, match="the journal is append-only"):
            db.execute("DELETE FROM journal WHERE seq = 4")
        with pytest.raises(sqlite3.DatabaseError, match="the journal is append-only"):
            db.execute("DELETE FROM journal")
        db.rollback()
    assert rows(state) == before
    assert check(state) == (N, None)


def _change_body(db: sqlite3.Connection) -> None:
    body = {"command": "ack", "command_id": "c1", "user": "somebody else"}
    db.execute("UPDATE journal SET body = ? WHERE seq = 5", (json.dumps(body),))


def _rehash_one(db: sqlite3.Connection) -> None:
    _change_body(db)
    rehash(db, 5)


def _delete_middle(db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM journal WHERE seq = 4")


def _delete_first(db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM journal WHERE seq = 1")


def _make_room_at(db: sqlite3.Connection, seq: int) -> str:
    """Renumber records seq.. one up; returns the hash of the record before seq."""
    db.execute("UPDATE journal SET seq = seq + 1000 WHERE seq >= ?", (seq,))
    db.execute("UPDATE journal SET seq = seq - 999 WHERE seq >= 1000")
    return str(db.execute("SELECT hash FROM journal WHERE seq = ?", (seq - 1,)).fetchone()[0])


def _insert_forged(db: sqlite3.Connection) -> None:
    """A well-formed record slipped in at 4 (its own prev and hash right, the rest renumbered)."""
    prev = _make_room_at(db, 4)
    body = {"command": "ack", "command_id": "forged", "user": "nobody"}
    h = chain_hash(4, "command", at(4), at(101), body, prev)
    db.execute(f"INSERT INTO journal({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (4, "command", at(4), at(101), json.dumps(body), prev, h))


def _insert_naive(db: sqlite3.Connection) -> None:
    _make_room_at(db, 4)
    db.execute(f"INSERT INTO journal({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (4, "command", at(4), at(101), "{}", "1" * 64, "2" * 64))


def _append_unchained(db: sqlite3.Connection) -> None:
    db.execute(f"INSERT INTO journal({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (N + 1, "command", at(50), at(150), "{}", GENESIS, "3" * 64))


def _swap(db: sqlite3.Connection) -> None:
    db.execute("UPDATE journal SET seq = -1 WHERE seq = 4")
    db.execute("UPDATE journal SET seq = 4 WHERE seq = 5")
    db.execute("UPDATE journal SET seq = 5 WHERE seq = -1")


def _unknown_kind(db: sqlite3.Connection) -> None:
    db.execute("UPDATE journal SET kind = 'bogus' WHERE seq = 6")


def _unknown_kind_rehashed(db: sqlite3.Connection) -> None:
    _unknown_kind(db)
    rehash(db, 6)


def _unreadable_body(db: sqlite3.Connection) -> None:
    db.execute("UPDATE journal SET body = 'not json {' WHERE seq = 3")


TAMPERING = {
    "body changed": (_change_body, 5, "its contents do not match its hash"),
    "one record re-hashed": (_rehash_one, 6, "its previous-hash does not match"),
    "middle record deleted": (_delete_middle, 5, "sequence gap: expected record 4, found 5"),
    "first record deleted": (_delete_first, 2, "sequence gap: expected record 1, found 2"),
    "well-formed record inserted": (_insert_forged, 5, "its previous-hash does not match"),
    "naive record inserted": (_insert_naive, 4, "its previous-hash does not match"),
    "record appended off the chain": (_append_unchained, N + 1,
                                      "its previous-hash does not match"),
    "pair reordered": (_swap, 4, "its previous-hash does not match"),
    "unknown kind": (_unknown_kind, 6, "unknown kind 'bogus'"),
    "unknown kind, re-hashed": (_unknown_kind_rehashed, 6, "unknown kind 'bogus'"),
    "body no longer JSON": (_unreadable_body, 3, "its contents do not match its hash"),
}


@pytest.mark.parametrize("case", TAMPERING.keys())
def test_verify_names_the_first_broken_record(state: Path, case: str) -> None:
    change, seq, reason = TAMPERING[case]
    tamper(state, change)
    if case != "body no longer JSON":  # the CLI reads such a body as {"unreadable": ...}
        n, broken = check(state)
        assert broken is not None
        assert broken.seq == seq
        assert broken.reason.startswith(reason)
        assert n <= seq  # stopped at the first break
    result = cli_verify(state)
    assert result.exit_code == 1, result.output
    assert f"journal BROKEN at record {seq}: {reason}" in result.stderr
    assert "intact" not in result.output


def test_verify_of_the_pure_chain() -> None:
    """``verify`` on records built by hand: empty, intact, and the first of two breaks."""
    assert verify([]) == (0, None)
    recs: list[Record] = []
    prev = GENESIS
    for seq in range(1, 5):
        body = {"n": seq}
        h = chain_hash(seq, "context", at(seq), at(seq), body, prev)
        recs.append(Record(seq, "context", at(seq), at(seq), body, prev, h))
        prev = h
    assert verify(recs) == (4, None)
    bad = list(recs)
    bad[1] = Record(2, "context", at(2), at(2), {"n": 99}, recs[1].prev, recs[1].hash)
    bad[3] = Record(4, "nonsense", at(4), at(4), {"n": 4}, recs[3].prev, recs[3].hash)
    assert verify(bad) == (2, Broken(2, "its contents do not match its hash (changed after "
                                        "writing)"))
    # recorded_at is covered too
    bad = [recs[0], Record(2, "context", at(2), at(59), {"n": 2}, recs[1].prev, recs[1].hash)]
    assert verify(bad)[1] == Broken(2, "its contents do not match its hash (changed after "
                                       "writing)")


def test_limit_a_forger_who_rehashes_the_whole_tail_is_not_detected(state: Path) -> None:
    """No key, no anchor: the chain shows edits, not a forger who recomputes every hash
    after the change (or changes the last record and recomputes only its hash)."""

    def rewrite_from_5(db: sqlite3.Connection) -> None:
        _change_body(db)
        for seq in range(5, N + 1):
            if seq > 5:
                prev = db.execute("SELECT hash FROM journal WHERE seq = ?", (seq - 1,)).fetchone()
                db.execute("UPDATE journal SET prev = ? WHERE seq = ?", (prev[0], seq))
            rehash(db, seq)

    tamper(state, rewrite_from_5)
    assert check(state) == (N, None)
    assert records(state)[4].body["user"] == "somebody else"

    def rewrite_last(db: sqlite3.Connection) -> None:
        db.execute("UPDATE journal SET body = '{}' WHERE seq = ?", (N,))
        rehash(db, N)

    tamper(state, rewrite_last)
    assert check(state) == (N, None)


def test_limit_the_end_of_the_chain_is_not_anchored(state: Path) -> None:
    """Records dropped at the end, or a well-hashed record appended, verify: nothing outside
    the journal (engine_meta, a backup) records where the chain ended."""
    tamper(state, lambda db: db.execute("DELETE FROM journal WHERE seq > 5"))
    assert check(state) == (5, None)
    assert cli_verify(state).exit_code == 0

    def append(db: sqlite3.Connection) -> None:
        prev = db.execute("SELECT hash FROM journal WHERE seq = 5").fetchone()[0]
        body = {"command": "ack", "command_id": "forged", "user": "nobody"}
        h = chain_hash(6, "command", at(30), at(130), body, prev)
        db.execute(f"INSERT INTO journal({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (6, "command", at(30), at(130), json.dumps(body), prev, h))

    tamper(state, append)
    assert check(state) == (6, None)
    assert "intact: 6 records" in cli_verify(state).stdout


def test_limit_a_reencoded_body_of_the_same_value_is_not_a_change(tmp_path: Path) -> None:
    """The hash covers the body's canonical JSON value, not the stored text: a byte change
    that spells the same value (a \\u escape's hex case, an exponent's 'e') verifies."""
    path = tmp_path / "state.sqlite"
    commit_batches(path, [[Entry("context", at(1), {"name": "é", "big": 1e16})]])
    stored = rows(path)[0][4]
    assert "\\u00e9" in stored and "1e+16" in stored
    tamper(path, lambda db: db.execute(
        "UPDATE journal SET body = replace(replace(body, 'u00e9', 'u00E9'), '1e+16', '1E+16')"))
    assert rows(path)[0][4] != stored
    assert cli_verify(path).exit_code == 0


def test_audit_verify_while_the_engine_writes(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = open_store(path)
    try:
        for i in range(3):
            store.commit(Step(journal=[Entry("context", at(i), {"i": i})]), at(i))
        result = cli_verify(path)
        assert result.exit_code == 0, result.output
        assert "journal intact: 3 records verified" in result.stdout
        store.commit(Step(journal=[Entry("context", at(9), {"i": 9})]), at(9))
    finally:
        store.close()
    assert "journal intact: 4 records verified" in cli_verify(path).stdout


def test_audit_verify_of_an_empty_journal(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    open_store(path).close()
    result = cli_verify(path)
    assert result.exit_code == 0
    assert "journal intact: 0 records" in result.stdout


def _sqlite_without_journal(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE beds (id TEXT)")
        db.commit()


NOT_STATE: dict[str, Callable[[Path], object]] = {
    "text file": lambda p: p.write_text("bed,score\nb1,7\n" * 200),
    "empty file": lambda p: p.write_bytes(b""),
    "another sqlite db": _sqlite_without_journal,
    "directory": lambda p: p.mkdir(),
}


def test_audit_verify_of_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.sqlite"
    result = cli_verify(path)
    assert result.exit_code == 2
    assert "no such state file" in result.stderr
    assert not path.exists()


@pytest.mark.parametrize("kind", NOT_STATE.keys())
def test_audit_verify_of_a_file_that_is_not_a_state_db(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "thing.sqlite"
    NOT_STATE[kind](path)
    result = cli_verify(path)
    assert result.exit_code == 2, result.output
    assert "cannot read the journal" in result.stderr


def test_audit_verify_of_a_path_with_uri_characters(tmp_path: Path) -> None:
    path = tmp_path / "ward #3.sqlite"
    commit_batches(path, [[Entry("context", at(1), {})]])
    before = set(tmp_path.iterdir())
    result = cli_verify(path)
    # a reader of a WAL database may create its -wal and -shm beside it, and nothing else
    assert set(tmp_path.iterdir()) - before <= {Path(f"{path}-wal"), Path(f"{path}-shm")}
    assert result.exit_code == 0, result.output


def test_audit_verify_names_a_record_whose_text_is_not_utf8(state: Path) -> None:
    tamper(state, lambda db: db.execute(
        "UPDATE journal SET at = CAST(X'32303234FF' AS TEXT) WHERE seq = 3"))
    result = cli_verify(state)
    assert result.exit_code != 0 and "intact" not in result.output  # it does fail closed
    assert result.exit_code == 1
    assert "BROKEN at record 3" in result.stderr


# -- 3. the store --------------------------------------------------------------------------------
def test_commit_beds_meta_outbox_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "still" / "state.sqlite"  # parents made
    store = open_store(path)
    try:
        assert store.commit(Step(), at(0)) == []  # an empty step writes nothing
        assert store.beds() == [] and store.outbox() == [] and list(store.journal()) == []
        payload = bytes(range(256))  # any bytes, not only UTF-8
        step = Step(
            beds={"b2": {"bed_id": "b2", "n": 2}, "b1": {"bed_id": "b1", "z": "Zoë\n"}},
            meta={"gateway_dropped": {"gw1": 3}, "other": [1, None, "x"]},
            journal=[Entry("raised", at(1), {"event_id": "e1"}),
                     Entry("escalated", at(2), {"event_id": "e2"})],
            outbox=[Outgoing("a/alerts/b1", payload, True),
                    Outgoing("a/events/b1", b"{}", False)],
        )
        out = store.commit(step, at(3))
        assert [o for _, o in out] == step.outbox
        assert store.outbox() == out
        assert out[0][0] < out[1][0]
        assert store.beds() == [{"bed_id": "b1", "z": "Zoë\n"}, {"bed_id": "b2", "n": 2}]
        assert store.meta("gateway_dropped") == {"gw1": 3}
        assert store.meta("other") == [1, None, "x"]
        assert store.meta("absent") is None
        assert store.meta("owner") == {"site": SITE, "unit": UNIT, "format": "1"}
        recs = list(store.journal())
        assert [(r.seq, r.kind, r.at, r.recorded_at, dict(r.body)) for r in recs] == [
            (1, "raised", at(1), at(3), {"event_id": "e1"}),
            (2, "escalated", at(2), at(3), {"event_id": "e2"}),
        ]
        assert [r.seq for r in store.journal(after=1)] == [2]
        assert store.last("raised") == recs[0]
        assert store.last("resolved") is None

        # a bed updated, a bed dropped, meta replaced
        store.commit(Step(beds={"b1": {"bed_id": "b1", "v": 2}}, drop_beds=["b2", "b9"],
                          meta={"gateway_dropped": {}}), at(4))
        assert store.beds() == [{"bed_id": "b1", "v": 2}]
        assert store.meta("gateway_dropped") == {}
        assert [r.seq for r in store.journal()] == [1, 2]  # no journal in that step

        # published rows go, others stay; ids are never reused
        first, second = (seq for seq, _ in out)
        store.published([first, 12345])
        assert store.outbox() == [out[1]]
        store.published([])
        assert store.outbox() == [out[1]]
        store.published([second])
        assert store.outbox() == []
        (new, _), = store.commit(Step(outbox=[Outgoing("t", b"x", False)]), at(5))
        assert new > second
    finally:
        store.close()
    # what is read after reopening is what was written
    store = open_store(path)
    try:
        assert store.beds() == [{"bed_id": "b1", "v": 2}]
        assert [o for _, o in store.outbox()] == [Outgoing("t", b"x", False)]
        assert [r.seq for r in store.journal()] == [1, 2]
    finally:
        store.close()
    assert check(path) == (2, None)


class Unserialisable:
    pass


FAILING_STEPS: dict[str, Callable[[], Step]] = {
    "second bed snapshot": lambda: Step(
        beds={"b1": {"v": "new"}, "b2": {"v": {1, 2}}}, journal=[Entry("updated", at(9), {})]),
    "meta value": lambda: Step(
        beds={"b1": {"v": "new"}}, drop_beds=["b2"], meta={"x": Unserialisable()},
        journal=[Entry("updated", at(9), {})]),
    "second journal body": lambda: Step(
        beds={"b1": {"v": "new"}}, drop_beds=["b2"], meta={"x": 2},
        journal=[Entry("updated", at(9), {"ok": 1}),
                 Entry("updated", at(9), {"bad": Unserialisable()})],
        outbox=[Outgoing("t", b"1", False)]),
    "outbox payload": lambda: Step(
        beds={"b1": {"v": "new"}}, drop_beds=["b2"], meta={"x": 2},
        journal=[Entry("updated", at(9), {"ok": 1})],
        outbox=[Outgoing("t", b"1", False), Outgoing("t", Unserialisable(), False)]),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("where", FAILING_STEPS.keys())
def test_a_commit_that_fails_midway_leaves_nothing_half_written(
    tmp_path: Path, where: str
) -> None:
    path = tmp_path / "state.sqlite"
    store = open_store(path)
    try:
        store.commit(Step(beds={"b1": {"v": "old"}, "b2": {"v": "old"}}, meta={"x": 1},
                          journal=[Entry("raised", at(1), {"n": 1}),
                                   Entry("raised", at(2), {"n": 2})],
                          outbox=[Outgoing("t", b"0", True)]), at(2))
        before = everything(path)
        head = rows(path)[-1]
        with pytest.raises((TypeError, ValueError, sqlite3.Error)):
            store.commit(FAILING_STEPS[where](), at(10))
        assert everything(path) == before
        assert store.beds() == [{"v": "old"}, {"v": "old"}]
        assert store.meta("x") == 1
        assert len(store.outbox()) == 1
        # the in-memory head and sequence did not move: the next commit chains on record 2
        store.commit(Step(journal=[Entry("resolved", at(11), {"n": 3})]), at(11))
        (seq, _, _, _, _, prev, _), = rows(path)[len(before["journal"]):]
        assert (seq, prev) == (head[0] + 1, head[6])
    finally:
        store.close()
    assert check(path) == (3, None)
    assert cli_verify(path).exit_code == 0


def test_one_writer_per_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    first = open_store(path)
    try:
        first.commit(Step(journal=[Entry("started", at(0), {})]), at(0))
        with pytest.raises(StoreError, match="another alert engine is running on this state"):
            open_store(path)
        with pytest.raises(StoreError, match="one writer per unit"):
            open_store(path)  # and again: the refusal itself holds nothing
    finally:
        first.close()
    second = open_store(path)
    try:
        assert [r.seq for r in second.journal()] == [1]
    finally:
        second.close()


def test_closing_twice_does_not_release_another_stores_lock(tmp_path: Path) -> None:
    a = open_store(tmp_path / "a.sqlite")
    a.close()
    b = open_store(tmp_path / "b.sqlite")  # may get a's old descriptor numbers
    try:
        a.close()  # a second close (an orderly shutdown after a failed one) is harmless
        with pytest.raises(StoreError, match="another alert engine is running"):
            open_store(tmp_path / "b.sqlite")
        b.commit(Step(journal=[Entry("started", at(0), {})]), at(0))
    finally:
        b.close()
    assert check(tmp_path / "b.sqlite") == (1, None)


@pytest.mark.parametrize(("site", "unit"), [(SITE, "nicu-1"), ("elsewhere", UNIT)])
def test_a_state_file_of_another_unit_is_refused(tmp_path: Path, site: str, unit: str) -> None:
    path = tmp_path / "state.sqlite"
    commit_batches(path, BATCHES)
    with pytest.raises(StoreError) as err:
        open_store(path, site=site, unit=unit)
    assert f"belongs to {SITE}/{UNIT}" in str(err.value)
    assert f"not {site}/{unit}" in str(err.value)
    # the refusal changed nothing and holds nothing: the right owner opens it at once
    assert check(path) == (N, None)
    store = open_store(path)
    try:
        assert store.meta("owner") == {"site": SITE, "unit": UNIT, "format": "1"}
    finally:
        store.close()


def test_a_state_file_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    open_store(path).close()
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE engine_meta SET value = ? WHERE key = 'owner'",
                   (json.dumps({"site": SITE, "unit": UNIT, "format": "2"}),))
        db.commit()
    with pytest.raises(StoreError, match=r"\(format 2\), not .* \(format 1\)"):
        open_store(path)


def test_a_file_that_is_not_a_state_db_is_refused_and_holds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_text("not a database at all\n" * 100)
    with pytest.raises(StoreError, match="cannot open the alert state"):
        open_store(path)
    path.unlink()
    open_store(path).close()  # the failed open left no lock behind


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    commit_batches(path, BATCHES[:2])
    head = rows(path)[-1]
    store = open_store(path)
    try:
        store.commit(Step(journal=BATCHES[2]), at(102))
    finally:
        store.close()
    seven = rows(path)[6]
    assert (seven[0], seven[5]) == (7, head[6])
    assert rows(path) == rows(_fresh_copy(tmp_path))
    assert check(path) == (N, None)


def _fresh_copy(tmp_path: Path) -> Path:
    """The same batches written by one store without a reopen (recorded_at the same)."""
    path = tmp_path / "fresh.sqlite"
    commit_batches(path, BATCHES)
    return path


KILLED = """
import os, signal, sys
from pathlib import Path
from alerting.store import Entry, Outgoing, StateStore, Step
s = StateStore(Path(sys.argv[1]), site=sys.argv[2], unit=sys.argv[3])
for i in range(3):
    s.commit(Step(beds={"b1": {"i": i}}, journal=[Entry("raised", "t", {"i": i})],
                  outbox=[Outgoing("t", b"%d" % i, True)]), "r")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_reopening_after_kill_9_loses_nothing_and_continues(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    done = subprocess.run([sys.executable, "-c", KILLED, str(path), SITE, UNIT], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60,
                          capture_output=True)
    assert done.returncode == -9, done.stderr
    store = open_store(path)  # the dead engine's lock went with it
    try:
        assert [r.seq for r in store.journal()] == [1, 2, 3]
        assert store.beds() == [{"i": 2}]
        assert [o.payload for _, o in store.outbox()] == [b"0", b"1", b"2"]
        store.commit(Step(journal=[Entry("started", "t2", {"recovered_alerts": 1})]), "r2")
        fourth = list(store.journal(after=3))
    finally:
        store.close()
    assert [r.seq for r in fourth] == [4]
    assert fourth[0].prev == rows(path)[2][6]
    assert check(path) == (4, None)


def test_a_body_with_non_string_keys_verifies(tmp_path: Path) -> None:
    """JSON turns 2 and 10 into "2" and "10", which sort the other way round: the record must
    still verify (what is hashed is what is read back)."""
    path = tmp_path / "state.sqlite"
    commit_batches(path, [[Entry("context", at(1), {"by_bed": {2: "b2", 10: "b10"}})]])
    assert records(path)[0].body == {"by_bed": {"10": "b10", "2": "b2"}}
    assert check(path) == (1, None)
    assert cli_verify(path).exit_code == 0


# -- 4. backup and restore ----------------------------------------------------------------------
def test_backup_while_the_engine_writes_is_consistent(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = open_store(path)
    total = 200
    first_written = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(1, total + 1):
                store.commit(Step(
                    beds={"b1": {"n": i}}, meta={"n": i},
                    journal=[Entry("updated", at(i), {"n": i, "text": "Zoë\x00\x1f"})],
                    outbox=[Outgoing("a/events/b1", str(i).encode(), False)],
                ), at(i))
                first_written.set()
        except BaseException as exc:
            failures.append(exc)
            first_written.set()
            raise

    thread = threading.Thread(target=writer)
    thread.start()
    copies = []
    try:
        assert first_written.wait(timeout=30)
        for j in range(4):
            dest = tmp_path / f"copy{j}.sqlite"
            backup(path, dest)
            copies.append(dest)
    finally:
        thread.join(timeout=120)
        assert not thread.is_alive()
    try:
        final = tmp_path / "final.sqlite"
        backup(path, final)  # and one after the last commit, the engine still open
        copies.append(final)
    finally:
        store.close()
    assert not failures
    counts = []
    for dest in copies:
        assert tables(dest) >= TABLES
        n, broken = check(dest)
        assert broken is None
        # a transaction boundary: bed state, meta, journal and outbox agree
        assert rows(dest, "bed_state") == [("b1", json.dumps({"n": n}, separators=(",", ":")))]
        meta = {str(k): v for k, v in rows(dest, "engine_meta")}
        assert json.loads(meta["n"]) == n
        assert len(rows(dest, "outbox")) == n
        assert not Path(f"{dest}-wal").exists()  # one self-contained file
        with closing(sqlite3.connect(dest)) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        result = cli_verify(dest)
        assert result.exit_code == 0 and f"intact: {n} records" in result.stdout
        counts.append(n)
    assert 1 <= counts[0] <= counts[1] <= counts[2] <= counts[3] <= total
    assert counts[-1] == total


def test_backup_never_overwrites(state: Path, tmp_path: Path) -> None:
    dest = tmp_path / "exists.sqlite"
    dest.write_bytes(b"precious")
    with pytest.raises(StoreError, match="exists already"):
        backup(state, dest)
    assert dest.read_bytes() == b"precious"
    with pytest.raises(StoreError, match="no such state file"):
        backup(tmp_path / "missing.sqlite", tmp_path / "new.sqlite")
    assert not (tmp_path / "new.sqlite").exists()


def test_backup_of_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    src = tmp_path / "junk.sqlite"
    src.write_text("not a database\n" * 100)
    dest = tmp_path / "copy.sqlite"
    with pytest.raises(StoreError, match=r"junk\.sqlite"):
        backup(src, dest)
    assert not dest.exists()  # nothing half-made that a retry would trip over


@pytest.fixture
def saved(state: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "backup.sqlite"
    backup(state, dest)
    return dest


def test_restore_is_refused_while_an_engine_runs_on_the_state(state: Path, saved: Path) -> None:
    store = open_store(state)
    try:
        store.commit(Step(journal=[Entry("started", at(60), {})]), at(160))
        before = everything(state)
        with pytest.raises(StoreError, match="another alert engine is running"):
            restore(saved, state)
        assert everything(state) == before
        store.commit(Step(journal=[Entry("started", at(61), {})]), at(161))  # still its own
    finally:
        store.close()
    assert check(state) == (N + 2, None)


def test_restore_puts_the_backup_in_place(state: Path, saved: Path) -> None:
    store = open_store(state)  # the engine went on after the backup, then stopped
    try:
        store.commit(Step(beds={"b1": {"after": True}},
                          journal=[Entry("started", at(60), {})]), at(160))
    finally:
        store.close()
    restore(saved, state)
    assert rows(state) == rows(saved)
    assert everything(state) == everything(saved)
    store = open_store(state)  # and it continues the backup's chain
    try:
        store.commit(Step(journal=[Entry("started", at(70), {})]), at(170))
    finally:
        store.close()
    last = rows(state)[-1]
    assert (last[0], last[5]) == (N + 1, rows(saved)[-1][6])
    assert check(state) == (N + 1, None)


def test_restore_over_a_state_left_by_a_crash(state: Path, saved: Path, tmp_path: Path) -> None:
    """A -wal left behind (the engine killed) must not leak into the restored state."""
    done = subprocess.run([sys.executable, "-c", KILLED, str(state), SITE, UNIT], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60,
                          capture_output=True)
    assert done.returncode == -9, done.stderr
    assert Path(f"{state}-wal").exists()
    restore(saved, state)
    assert everything(state) == everything(saved)
    assert check(state) == (N, None)


def test_restore_to_a_new_place(saved: Path, tmp_path: Path) -> None:
    dest = tmp_path / "new.sqlite"
    restore(saved, dest)
    assert rows(dest) == rows(saved)


def test_restore_refuses_what_is_not_a_state_backup(state: Path, tmp_path: Path) -> None:
    before = everything(state)
    missing = tmp_path / "missing.sqlite"
    with pytest.raises(StoreError, match="no such backup"):
        restore(missing, state)
    other = tmp_path / "other.sqlite"
    _sqlite_without_journal(other)
    with pytest.raises(StoreError, match="not an alert state backup"):
        restore(other, state)
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    with pytest.raises(StoreError, match="not an alert state backup"):
        restore(empty, state)
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database\n" * 100)
    with pytest.raises(StoreError, match=r"junk\.sqlite"):
        restore(junk, state)
    assert everything(state) == before
    open_store(state).close()  # no lock left behind


def test_cli_backup_and_restore_exit_codes(state: Path, tmp_path: Path) -> None:
    dest = tmp_path / "b.sqlite"
    result = cli("backup", str(dest), "--db", str(state))
    assert result.exit_code == 0, result.output
    assert f"{state} -> {dest}" in result.stdout
    assert cli_verify(dest).exit_code == 0

    result = cli("backup", str(dest), "--db", str(state))
    assert result.exit_code == 2
    assert "exists already" in result.stderr
    result = cli("backup", str(tmp_path / "c.sqlite"), "--db", str(tmp_path / "none.sqlite"))
    assert result.exit_code == 2
    assert "no such state file" in result.stderr

    store = open_store(state)
    try:
        result = cli("restore", str(dest), "--db", str(state))
        assert result.exit_code == 2
        assert "another alert engine is running" in result.stderr
    finally:
        store.close()
    result = cli("restore", str(dest), "--db", str(state))
    assert result.exit_code == 0, result.output
    assert f"{dest} -> {state}" in result.stdout

    result = cli("restore", str(tmp_path / "none.sqlite"), "--db", str(state))
    assert result.exit_code == 2
    assert "no such backup" in result.stderr
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database\n" * 100)
    result = cli("restore", str(junk), "--db", str(state))
    assert result.exit_code == 2, result.output
    other = tmp_path / "other.sqlite"
    _sqlite_without_journal(other)
    result = cli("restore", str(other), "--db", str(state))
    assert result.exit_code == 2
    assert "not an alert state backup" in result.stderr
    assert cli_verify(state).exit_code == 0


# -- 5. properties -------------------------------------------------------------------------------
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)  # any code point but lone surrogates: unicode, control chars, NUL
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=10,
)
BODIES = st.dictionaries(st.text(max_size=8), VALUES, max_size=5)
ENTRIES = st.builds(Entry, kind=st.sampled_from(sorted(KINDS)), at=st.text(max_size=30),
                    body=BODIES)
COMMITS = st.lists(st.lists(ENTRIES, min_size=1, max_size=4), min_size=1, max_size=5)
FIELDS = ("body", "at", "kind", "prev", "hash")
PROPERTY = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextmanager
def written(batches: list[list[Entry]]) -> Iterator[Path]:
    """A closed state file holding these commits, in a directory of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.sqlite"
        commit_batches(path, batches)
        yield path


def one_char_changed(data: st.DataObject, old: str) -> str:
    """The stored text with one character replaced (one byte, for the ASCII fields)."""
    if not old:
        return data.draw(st.characters(), label="added")
    i = data.draw(st.integers(0, len(old) - 1), label="position")
    new = data.draw(st.characters(max_codepoint=127) | st.characters(), label="char")
    if new == old[i]:
        new = "x" if old[i] != "x" else "y"
    return old[:i] + new + old[i + 1:]


def spells_the_same_value(old: str, new: str) -> bool:
    try:
        return canonical(json.loads(new)) == canonical(json.loads(old))
    except ValueError:
        return False


@PROPERTY
@given(batches=COMMITS, data=st.data())
def test_property_one_field_changed_is_reported_at_that_very_record(
    batches: list[list[Entry]], data: st.DataObject
) -> None:
    """Any commits of any JSON bodies verify; one field of one record changed is reported at
    that record (never the next, never later): its own hash covers its fields and its prev.
    The one exception: a body re-spelt to the same JSON value (see test_limit_a_reencoded_*)."""
    with written(batches) as path:
        entries = [e for b in batches for e in b]
        n = len(entries)
        recs = records(path)
        assert [(r.kind, r.at, canonical(r.body)) for r in recs] == [
            (e.kind, e.at, canonical(e.body)) for e in entries]
        assert check(path) == (n, None)
        result = cli_verify(path)
        assert result.exit_code == 0 and f"intact: {n} records" in result.stdout

        seq = data.draw(st.integers(1, n), label="record")
        field = data.draw(st.sampled_from(FIELDS), label="field")
        with closing(sqlite3.connect(path)) as db:
            old = db.execute(f"SELECT {field} FROM journal WHERE seq = ?", (seq,)).fetchone()[0]
        new = one_char_changed(data, old)
        tamper(path, lambda db: db.execute(
            f"UPDATE journal SET {field} = ? WHERE seq = ?", (new, seq)))

        result = cli_verify(path)
        if field == "body" and spells_the_same_value(old, new):
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code == 1, result.output
            assert f"journal BROKEN at record {seq}: " in result.stderr


@settings(PROPERTY, max_examples=30)
@given(batches=COMMITS, data=st.data())
def test_property_a_rehashed_record_is_reported_at_the_next_one(
    batches: list[list[Entry]], data: st.DataObject
) -> None:
    """A record's body changed *and* its hash recomputed: the next record's prev no longer
    matches, so the report names the next record; when it was the last, nothing is seen."""
    with written(batches) as path:
        n = sum(len(b) for b in batches)
        seq = data.draw(st.integers(1, n), label="record")
        body = data.draw(BODIES, label="body")
        before = records(path)[seq - 1].body
        if canonical(body) == canonical(before):
            body = {**body, "forged": True} if "forged" not in body else {}
        text = json.dumps(body)

        def forge(db: sqlite3.Connection) -> None:
            db.execute("UPDATE journal SET body = ? WHERE seq = ?", (text, seq))
            rehash(db, seq)

        tamper(path, forge)
        n_checked, broken = check(path)
        result = cli_verify(path)
        if seq == n:
            assert broken is None and result.exit_code == 0
        else:
            assert broken == Broken(seq + 1, "its previous-hash does not match the record "
                                             "before it")
            assert n_checked == seq + 1
            assert result.exit_code == 1
            assert f"journal BROKEN at record {seq + 1}: " in result.stderr


def test_a_body_with_a_lone_surrogate_is_kept_and_verifies(state: Path) -> None:
    """A text with a lone surrogate (what a tampered or mangled body may hold) is hashed, not
    refused: the journal keeps what it was given and the chain checks it."""
    commit_batches(state, [[Entry("updated", at(9), {"odd": "\ud800"})]])
    assert cli_verify(state).exit_code == 0
