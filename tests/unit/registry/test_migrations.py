"""Alembic migrations: a database at every earlier revision, with data in it, upgrades to the
newest and then matches the models exactly (autogenerate finds nothing to do); a fresh SQLite
file is created at the newest revision; an older database is refused until it is upgraded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from registry.db import (
    MIGRATIONS,
    create,
    current_revision,
    downgrade,
    head_revision,
    open_database,
    transaction,
    upgrade,
)
from registry.errors import Conflict
from registry.models import Base

NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


def revisions() -> list[str]:
    """Every revision, oldest first."""
    return [r.revision for r in reversed(list(ScriptDirectory(str(MIGRATIONS)).walk_revisions()))]


def test_there_is_more_than_one_revision() -> None:
    assert revisions()[:2] == ["0001", "0002"] and head_revision() == revisions()[-1]


SEED = [  # rows valid at revision 0001, as that revision's schema knew them
    "INSERT INTO sites (pk, id, name, status, created_at) VALUES (1, 'demo', NULL, 'active', :t)",
    "INSERT INTO units (pk, site_pk, id, time_zone, scoring_system, generation, status, "
    "created_at) VALUES (1, 1, 'picu', 'UTC', 'bedside_pews', 'real', 'active', :t)",
    "INSERT INTO gateways (pk, id, unit_pk, status, created_at) VALUES (1, 'gw', 1, 'active', :t)",
    "INSERT INTO beds (pk, unit_pk, id, gateway_pk, status, created_at) "
    "VALUES (1, 1, 'bed01', 1, 'active', :t)",
    "INSERT INTO devices (pk, id, manufacturer, model, serial_number, driver, status, "
    "created_at) VALUES (1, 'mon-1', 'Acme', 'M', 'SN1', 'wwmon', 'active', :t)",
    "INSERT INTO device_assignments (device_pk, gateway_pk, bed_pk, started_at) "
    "VALUES (1, 1, 1, :t)",
]


@pytest.mark.parametrize("start", ["base", *revisions()[:-1]])
def test_every_earlier_revision_upgrades_to_the_models(blank_url: str, start: str) -> None:
    engine = create(blank_url)
    try:
        if start != "base":
            upgrade(engine, start)
            assert current_revision(engine) == start
            stamp = NOW if engine.dialect.name != "sqlite" else NOW.replace(tzinfo=None)
            with engine.begin() as conn:
                for sql in SEED:
                    conn.execute(text(sql), {"t": stamp})
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
            assert diff == [], diff
            if start != "base":
                row = conn.execute(text(
                    "SELECT d.id, d.maintenance_due, b.id FROM devices d JOIN "
                    "device_assignments a ON a.device_pk = d.pk JOIN beds b ON b.pk = a.bed_pk"
                )).one()
                assert tuple(row) == ("mon-1", None, "bed01")
        # and back down and up again: the downgrades work too
        downgrade(engine, "base" if start == "base" else start)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_a_fresh_sqlite_file_is_created_at_the_newest_revision(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/sub/dir/registry.db"
    engine = open_database(url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_an_older_database_is_refused_until_upgraded(blank_url: str) -> None:
    engine = create(blank_url)
    upgrade(engine, "0001")
    engine.dispose()
    with pytest.raises(Conflict, match="db upgrade"):
        open_database(blank_url)
    engine = create(blank_url)
    upgrade(engine)
    engine.dispose()
    open_database(blank_url).dispose()


def test_an_empty_database_sqlite_is_migrated_postgresql_is_refused_until_upgraded(
    blank_url: str,
) -> None:
    if blank_url.startswith("sqlite"):
        open_database(blank_url).dispose()
    else:
        with pytest.raises(Conflict, match="revision none"):
            open_database(blank_url)
        engine = create(blank_url)
        upgrade(engine)
        engine.dispose()
    engine = open_database(blank_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_a_new_sqlite_registry_is_readable_by_its_owner_only(tmp_path: object) -> None:
    """(found by red-team) the registry's SQLite file (and its WAL and shared-memory files)
    holds the patients' pseudonyms and dates of birth, the password and token hashes and the
    audit log; it was created with the process's umask (0644: any local user read it), while
    its backup was 0600. A new file is 0600, and SQLite gives its -wal and -shm the same."""
    import os
    import stat
    from pathlib import Path

    from registry import assets, audit
    from registry.schemas import SiteRequest

    assert isinstance(tmp_path, Path)
    old = os.umask(0o022)
    try:
        path = tmp_path / "sub" / "registry.db"
        engine = open_database(f"sqlite:///{path}")
        with transaction(engine) as s:
            audit.act_as(s, "test")
            assets.add_site(s, SiteRequest(id="s1"), now=datetime.now(UTC))
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert p.exists(), p
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(p.stat().st_mode))
        engine.dispose()
    finally:
        os.umask(old)
