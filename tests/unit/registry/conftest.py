"""The registry's fixtures: every test that takes ``registry_url`` (or ``engine``) runs twice,
on SQLite and on a real PostgreSQL (one server per test session, a fresh database per test).

Both backends hand out databases cloned from a template already at the newest schema revision:
a copied file for SQLite, ``CREATE DATABASE ... TEMPLATE`` for PostgreSQL.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from registry.db import create, open_database, upgrade
from tests.unit.registry.postgres import Postgres

BACKENDS = ["sqlite", "postgresql"]
TEMPLATE = "registry_template"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    pg.start()
    try:
        engine = create(pg.create_database(TEMPLATE))
        upgrade(engine)
        engine.dispose()
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry-template") / "registry.db"
    engine = open_database(f"sqlite:///{path}")
    engine.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def new_database(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Callable[[], str]:
    """Makes fresh registry databases at the newest revision, on each backend."""
    if request.param == "sqlite":
        def sqlite() -> str:
            path = tmp_path / f"registry-{uuid.uuid4().hex[:8]}.db"
            shutil.copyfile(sqlite_template, path)
            return f"sqlite:///{path}"

        return sqlite
    pg: Postgres = request.getfixturevalue("postgres")
    return lambda: pg.fresh_database(TEMPLATE)


@pytest.fixture(params=BACKENDS)
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no schema at all), on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'blank.db'}"
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.create_database(f"blank_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def registry_url(new_database: Callable[[], str]) -> str:
    return new_database()


@pytest.fixture
def engine(registry_url: str) -> Iterator[Engine]:
    e = open_database(registry_url)
    yield e
    e.dispose()


T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Callable[[float], datetime]:
    """Minutes after T0 (a fixed morning): ``clock(90)`` is 09:30 UTC."""
    return lambda minutes: T0 + timedelta(minutes=minutes)
