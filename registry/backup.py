"""Backup and restore of a SQLite registry: a consistent copy while the registry runs.

Both use SQLite's online backup API (``sqlite3.Connection.backup``): the copy is one consistent
snapshot even while the server writes, and a restore replaces the live database's pages under
its lock, so the server's next transaction sees the restored registry whole. A backup is written
to a temporary file beside the target and renamed into place, so a failed backup never leaves a
truncated file under the target's name. PostgreSQL has its own tools (``pg_dump`` and
``pg_restore``); the registry refuses there and says so.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from sqlalchemy import Engine

from registry.db import head_revision, sqlite_path
from registry.errors import Conflict, Invalid, Unsupported

__all__ = ["backup", "restore"]

PG_TOOLS = (
    "backup/restore copies SQLite registries; for PostgreSQL use pg_dump -Fc DB > FILE and "
    "pg_restore --clean -d DB FILE (docs/registry.md)"
)


def _live(engine: Engine) -> Path:
    path = sqlite_path(engine)
    if path is None:
        if engine.url.get_backend_name() == "sqlite":
            raise Unsupported("an in-memory registry has nothing to back up")
        raise Unsupported(PG_TOOLS)
    return path


def backup(engine: Engine, target: Path) -> int:
    """Copy the live registry to ``target`` (replaced if it exists); returns its size in bytes."""
    live = _live(engine)
    target = target.resolve()
    if target == live.resolve():
        raise Invalid(f"{target} is the live database")
    if not target.parent.is_dir():
        raise Invalid(f"{target.parent}: no such directory")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with closing(sqlite3.connect(live)) as src, closing(sqlite3.connect(tmp)) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target.stat().st_size


def _check_backup(source: Path) -> str:
    """The revision of a registry backup; refuses a file that is not one."""
    if not source.is_file():
        raise Invalid(f"{source}: no such file")
    try:
        with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as conn:
            (ok,) = conn.execute("PRAGMA integrity_check").fetchone()
            if ok != "ok":
                raise Invalid(f"{source}: the file is damaged ({ok})")
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise Invalid(f"{source}: not a registry backup ({exc})") from exc
    if row is None:
        raise Invalid(f"{source}: not a registry backup (no schema revision)")
    revision: str = row[0]
    return revision


def restore(engine: Engine, source: Path) -> str:
    """Replace the live registry's contents with the backup ``source``; returns the backup's
    schema revision. A backup from an older revision is restored, then needs ``db upgrade``."""
    live = _live(engine)
    revision = _check_backup(source)
    from alembic.script import ScriptDirectory

    from registry.db import MIGRATIONS

    known = {r.revision for r in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    if revision not in known:
        raise Conflict(
            f"{source}: schema revision {revision} is newer than this registry knows "
            f"(head {head_revision()})"
        )
    engine.dispose()  # no pooled connection holds the old file's state across the copy
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src, \
            closing(sqlite3.connect(live, timeout=15)) as dst:
        src.backup(dst)
    return revision
