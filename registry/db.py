"""The registry's database: engine, transactions, schema revision.

SQLite is the embedded default (one file, WAL journal, foreign keys on, writers serialised with
``BEGIN IMMEDIATE`` so a check and the write it guards cannot interleave with another writer's);
a ``postgresql://`` URL works too (the psycopg 3 driver; writers lock the rows they check with
``SELECT ... FOR UPDATE``). Either way every request is one transaction: :func:`transaction`
commits it whole or rolls it back whole, and turns the database's own refusals (a unique or
foreign key violation from a race) into :class:`~registry.errors.Conflict`.

The schema is Alembic's (``registry/migrations``). A fresh SQLite file is created at the newest
revision on first use; any other database is upgraded with ``wardwatch registry db upgrade``,
and a database at an older revision is refused until it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session

# every session of the registry records its changes in the audit log (session events)
import registry.audit  # noqa: F401
from registry.errors import Conflict, Invalid, RegistryError

__all__ = [
    "MIGRATIONS",
    "create",
    "current_revision",
    "default_url",
    "downgrade",
    "head_revision",
    "is_sqlite",
    "open_database",
    "sqlite_path",
    "transaction",
    "upgrade",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: how long a writer waits for another writer's transaction before giving up (SQLite)
BUSY_TIMEOUT_MS = 15_000


def default_url(environ: dict[str, str] | None = None) -> str:
    """``sqlite:///$XDG_DATA_HOME/wardwatch/registry.db`` (``~/.local/share/...`` without it):
    one registry per user wherever the command runs, not one per working directory."""
    env = os.environ if environ is None else environ
    data = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{data / 'wardwatch' / 'registry.db'}"


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def sqlite_path(engine: Engine) -> Path | None:
    """The file of a SQLite database (None for PostgreSQL or an in-memory SQLite)."""
    if not is_sqlite(engine):
        return None
    db = engine.url.database
    return Path(db) if db and db != ":memory:" else None


def _normalise(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise Invalid(
            f"{url!r} is not a database URL (sqlite:///FILE or postgresql://...)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.get_driver_name() in ("psycopg2", "psycopg"):
        # the registry ships psycopg 3; "postgresql://" means it, not SQLAlchemy's psycopg2
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend not in ("sqlite", "postgresql"):
        raise Invalid(f"{parsed.drivername}: the registry runs on sqlite or postgresql")
    return url


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # let SQLAlchemy, not the driver, begin transactions (see _begin)
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode = WAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at BEGIN: the checks a request makes and the rows it
        # writes are one unit, never interleaved with another writer (readers go on in WAL)
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _private_file(path: Path) -> None:
    """Create a new SQLite registry file readable by its owner only (it holds the patients'
    pseudonyms and dates of birth, password and token hashes, the audit log); SQLite gives
    its -wal and -shm files the database file's mode. An existing file is left as it is."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise Invalid(f"{path}: cannot create the registry database: {exc.strerror}") from exc


def create(url: str) -> Engine:
    """An engine for ``url`` with the registry's settings, without touching the schema."""
    url = _normalise(url)
    if is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _private_file(Path(path))
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """A transaction for a migration. On SQLite, foreign keys are off while it runs (a batch
    migration copies a table, drops the original and renames the copy; SQLite only allows
    switching them outside a transaction) and every reference is checked before it commits."""
    with engine.connect() as conn:
        driver = conn.connection.driver_connection if is_sqlite(engine) else None
        if driver is not None:
            driver.execute("PRAGMA foreign_keys = OFF")
        try:
            with conn.begin():
                yield conn
                if driver is not None:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise Conflict(f"the migration would break references: {broken[:5]}")
        finally:
            if driver is not None:
                driver.execute("PRAGMA foreign_keys = ON")


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the schema to ``revision`` (the newest by default), in one transaction."""
    from alembic import command

    with _migrating(engine) as conn:
        command.upgrade(_alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with _migrating(engine) as conn:
        command.downgrade(_alembic_config(conn), revision)


def open_database(url: str, *, migrate_fresh: bool = True) -> Engine:
    """The engine for ``url``, its schema at the newest revision.

    An empty SQLite database is migrated on first use (``migrate_fresh``); any other database
    whose revision is not the newest is refused with the command that upgrades it.
    """
    engine = create(url)
    try:
        current = current_revision(engine)
        if current is None and is_sqlite(engine) and migrate_fresh:
            if inspect(engine).get_table_names():
                raise Conflict(f"{engine.url}: not a registry database (it has other tables)")
            upgrade(engine)
            return engine
    except DBAPIError as exc:
        engine.dispose()
        raise Invalid(f"{engine.url}: cannot open the database: {exc.orig}") from exc
    except RegistryError:
        engine.dispose()
        raise
    head = head_revision()
    if current != head:
        engine.dispose()
        raise Conflict(
            f"{engine.url}: the database schema is at revision {current or 'none'}, this "
            f"registry needs {head}: run `wardwatch registry db upgrade --db URL`"
        )
    return engine


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One request, one transaction: committed if the block returns, rolled back if it raises.

    The database's own refusals (a second open assignment for a device because two writers
    raced, a foreign key) become :class:`Conflict`; nothing of the request is written.
    """
    with Session(engine, expire_on_commit=False, autoflush=True) as session:
        try:
            with session.begin():
                yield session
        except IntegrityError as exc:
            raise Conflict(f"the database refused the change: {_first_line(exc.orig)}") from exc


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
