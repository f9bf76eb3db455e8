"""The alert engine's state file holds the beds' snapshots (the children's dates of birth) and
the journal: it, its -wal and -shm, a backup (``wardwatch alerting backup``) and a restored state
are created 0600 whatever the umask; an existing file keeps its mode, with a warning if its
group or others may read it (found by red-team: all were 0644 under the usual umask).

Real SQLite files in a temp dir (the store is a file, there is no service to start).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerting.store import Entry, StateStore, Step, StoreError, backup, restore
from wardwatch.cli import app

SNAPSHOT = {"bed_id": "b1", "info": {"dob": "2021-04-02"}}


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The most permissive umask: a file is 0600 because the code says so, not the umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def write_state(path: Path) -> StateStore:
    """An open store with a bed and a journal record committed (its -wal and -shm exist)."""
    store = StateStore(path, site="s1", unit="ward1")
    store.commit(
        Step(beds={"b1": SNAPSHOT}, journal=[Entry("started", "2024-05-01T10:00:00+00:00", {})]),
        "2024-05-01T10:00:00+00:00",
    )
    return store


def test_a_new_state_and_its_wal_and_shm_are_0600(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sub" / "state.sqlite"
    store = write_state(path)
    try:
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.lock")]
        assert all(f.exists() for f in files)
        assert {str(f): mode(f) for f in files} == {str(f): 0o600 for f in files}
    finally:
        store.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("existing", [0o644, 0o640, 0o604, 0o660, 0o600, 0o700])
def test_an_existing_state_keeps_its_mode_and_warns_if_others_may_read_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, existing: int
) -> None:
    path = tmp_path / "state.sqlite"
    write_state(path).close()
    path.chmod(existing)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="alerting.store"):
        store = write_state(path)  # reopened: the engine restarting on its state
        store.close()
    assert mode(path) == existing
    warned = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    if existing & 0o077:
        assert warned and f"{existing:04o}" in warned[0] and "chmod 600" in warned[0]
    else:
        assert not warned


def test_a_readable_wal_beside_a_private_state_is_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.sqlite"
    store = write_state(path)
    wal = Path(f"{path}-wal")
    try:
        wal.chmod(0o644)  # left by an older engine
        second = tmp_path / "other.sqlite"
        with caplog.at_level(logging.WARNING, logger="alerting.store"):
            StateStore(second, site="s1", unit="ward1").close()  # a new one: no warning
            assert not caplog.records
    finally:
        store.close()
    # closing the last connection checkpoints and deletes the -wal: make one that stays
    wal.write_bytes(b"")
    wal.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="alerting.store"):
        StateStore(path, site="s1", unit="ward1").close()
    assert any(f"{wal}:" in r.getMessage() for r in caplog.records)


def test_a_state_named_by_a_dangling_link_is_created_0600(tmp_path: Path) -> None:
    """SQLite follows the link and creates its target (and the -wal beside it)."""
    target = tmp_path / "real" / "state.sqlite"
    target.parent.mkdir()
    link = tmp_path / "state.sqlite"
    link.symlink_to(target)
    store = write_state(link)
    try:
        for f in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            assert mode(f) == 0o600, f
    finally:
        store.close()


def test_a_state_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "state.sqlite"  # a link into a directory that is not
    link = tmp_path / "state.sqlite"
    link.symlink_to(target)
    with pytest.raises(StoreError, match="cannot create the alert state"):
        StateStore(link, site="s1", unit="ward1")
    assert not target.parent.exists()


def test_backup_and_restore_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = write_state(path)
    dest = tmp_path / "backup.sqlite"
    try:
        backup(path, dest)  # while the engine holds the state open
    finally:
        store.close()
    assert mode(dest) == 0o600
    assert not Path(f"{dest}-journal").exists() and not Path(f"{dest}-wal").exists()
    with pytest.raises(StoreError, match="never overwrites"):
        backup(path, dest)
    assert mode(dest) == 0o600

    path.chmod(0o644)  # a state made by an older engine: the restored file is a new one
    restore(dest, path)
    assert mode(path) == 0o600
    assert StateStore(path, site="s1", unit="ward1").beds() == [SNAPSHOT]


def test_wardwatch_alerting_backup_writes_a_0600_copy(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    write_state(path).close()
    dest = tmp_path / "copy.sqlite"
    res = CliRunner().invoke(app, ["alerting", "backup", str(dest), "--state", str(path)])
    assert res.exit_code == 0, res.output
    assert mode(dest) == 0o600
    res = CliRunner().invoke(app, ["alerting", "backup", str(dest), "--state", str(path)])
    assert res.exit_code == 2 and "never overwrites" in res.output


def test_a_failed_backup_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "junk.sqlite"
    src.write_text("not a database\n" * 100)
    dest = tmp_path / "copy.sqlite"
    with pytest.raises(StoreError, match=r"junk\.sqlite"):
        backup(src, dest)
    assert not dest.exists()


def test_an_empty_private_file_left_by_a_kill_before_sqlite_wrote_is_a_new_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 between creating the 0600 file and SQLite's first write leaves it empty: the
    next start takes it as a new state, quietly (its mode is the one it was created with)."""
    path = tmp_path / "state.sqlite"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    with caplog.at_level(logging.WARNING, logger="alerting.store"):
        store = write_state(path)
    try:
        assert store.beds() == [SNAPSHOT] and mode(path) == 0o600
    finally:
        store.close()
    assert not caplog.records

