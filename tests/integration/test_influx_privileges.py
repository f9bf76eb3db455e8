"""What the InfluxDB 1.6 service users may do (issue 9): ``ingest`` READ and WRITE on its own
database and never admin, ``reader`` READ only, measured on the real influxd.

InfluxDB 1.x has no finer grain than READ / WRITE per database, and some destructive statements
need only WRITE. What it enforces is tested as refused; what it cannot enforce is tested as
allowed, so that the day a server version starts refusing it, the docs are updated too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ingest.storage import DownsamplingPlan, setup_database
from servicekit.influx import InfluxError, InfluxTarget, query
from wardwatch.devstack import Influx, Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def db(stack: Stack) -> Iterator[str]:
    """A database with the production layout (setup-db as admin) and the service grants."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = InfluxTarget(stack.influx.url, name, "admin", stack.influx.admin_password)
    with httpx.Client(timeout=30) as http:
        setup_database(http, admin, DownsamplingPlan(name))
    stack.influx.grant_service_users(name)
    yield name
    stack.influx.drop_database(name)


def as_user(influx: Influx, user: str, db: str) -> InfluxTarget:
    password = {"ingest": influx.writer_password, "reader": influx.reader_password}[user]
    return InfluxTarget(influx.url, db, user, password)


def run(target: InfluxTarget, q: str) -> str:
    """``ok`` or the error InfluxDB answered (403s arrive as InfluxError)."""
    with httpx.Client(timeout=30) as http:
        try:
            query(http, target, q, write=True)
        except InfluxError as exc:
            return str(exc)
    return "ok"


def write(target: InfluxTarget, body: str) -> int:
    with httpx.Client(timeout=30) as http:
        r = http.post(
            f"{target.url}/write",
            params={"db": target.db, "precision": "s"},
            content=body.encode(),
            auth=target.auth(),
        )
        return r.status_code


def _now_s() -> int:
    return int(datetime.now(UTC).timestamp())


def test_ingest_holds_read_and_write_on_its_database_and_is_not_admin(
    stack: Stack, db: str
) -> None:
    users = stack.influx.query("SHOW USERS")["results"][0]["series"][0]["values"]  # type: ignore[index]
    assert dict(map(tuple, users)) == {"admin": True, "ingest": False, "reader": False}
    grants = stack.influx.query('SHOW GRANTS FOR "ingest"')["results"][0]["series"][0]  # type: ignore[index]
    # database-scoped ALL = READ + WRITE (the only way to hold both in 1.x)
    assert [db, "ALL PRIVILEGES"] in grants["values"]
    reader = stack.influx.query('SHOW GRANTS FOR "reader"')["results"][0]["series"][0]  # type: ignore[index]
    assert [db, "READ"] in reader["values"]

    ingest = as_user(stack.influx, "ingest", db)
    assert write(ingest, f"obs,bed=b1,param=HR value=100.0 {_now_s()}") == 204
    assert run(ingest, 'SELECT count("value") FROM "obs"') == "ok"
    # the late-data backfill ingest runs (SELECT … INTO agg.obs_1m) needs both
    now = datetime.now(UTC)
    plan = DownsamplingPlan(db)
    assert run(ingest, plan.backfill_statement(now - timedelta(minutes=5), now)) == "ok"


def test_what_influxdb_refuses_ingest(stack: Stack, db: str) -> None:
    other = f"t_{uuid.uuid4().hex[:10]}"
    stack.influx.create_database(other)
    stack.influx.query(f'REVOKE ALL ON "{other}" FROM "ingest"')
    try:
        ingest = as_user(stack.influx, "ingest", db)
        assert write(as_user(stack.influx, "ingest", other), f"obs value=1.0 {_now_s()}") == 403
        refused = [
            'CREATE DATABASE "evil"',
            f'DROP DATABASE "{other}"',
            f'DROP DATABASE "{db}"',
            "CREATE USER evil WITH PASSWORD 'x' WITH ALL PRIVILEGES",
            "SET PASSWORD FOR reader = 'x'",
            'GRANT ALL PRIVILEGES TO "ingest"',
            f'GRANT ALL ON "{other}" TO "ingest"',
            "SHOW USERS",
            'DROP MEASUREMENT "obs"',
            "DROP SHARD 1",
            f'CREATE RETENTION POLICY "x" ON "{db}" DURATION 1h REPLICATION 1',
            f'ALTER RETENTION POLICY "raw" ON "{db}" DURATION 1h',
            "KILL QUERY 1",
        ]
        for q in refused:
            assert "not authorized" in run(ingest, q), q
    finally:
        stack.influx.drop_database(other)


def test_what_influxdb_1_6_cannot_refuse_a_writer(stack: Stack, db: str) -> None:
    """Measured: DELETE, DROP SERIES, DROP RETENTION POLICY and DROP CONTINUOUS QUERY need
    only WRITE on the database (CREATE CONTINUOUS QUERY: READ and WRITE). Nothing in 1.x
    separates "may append" from "may delete", so a stolen ingest password can destroy that
    database's data: the defence is the backup and the password, not a privilege."""
    ingest = as_user(stack.influx, "ingest", db)
    t = _now_s()
    assert write(ingest, f"obs,bed=b1 value=1.0 {t}\nobs,bed=b2 value=2.0 {t}") == 204
    assert run(ingest, 'DELETE FROM "obs" WHERE "bed" = \'b1\'') == "ok"
    assert run(ingest, 'DROP SERIES FROM "obs" WHERE "bed" = \'b2\'') == "ok"
    assert stack.influx.count(db, where="") == 0
    cq = (
        f'CREATE CONTINUOUS QUERY "cq_x" ON "{db}" BEGIN SELECT mean("value") INTO '
        f'"{db}"."agg"."x" FROM "{db}"."raw"."obs" GROUP BY time(1m) END'
    )
    assert run(ingest, cq) == "ok"
    assert run(ingest, f'DROP CONTINUOUS QUERY "cq_obs_1m" ON "{db}"') == "ok"
    assert run(ingest, f'DROP RETENTION POLICY "agg" ON "{db}"') == "ok"
    rps = stack.influx.query(f'SHOW RETENTION POLICIES ON "{db}"')["results"][0]["series"][0]  # type: ignore[index]
    assert "agg" not in [r[0] for r in rps["values"]]


def test_reader_is_read_only(stack: Stack, db: str) -> None:
    ingest, reader = as_user(stack.influx, "ingest", db), as_user(stack.influx, "reader", db)
    assert write(ingest, f"obs,bed=b1 value=1.0 {_now_s()}") == 204
    assert run(reader, 'SELECT count("value") FROM "obs"') == "ok"
    assert write(reader, f"obs,bed=b1 value=2.0 {_now_s()}") == 403
    now = datetime.now(UTC)
    for q in [
        DownsamplingPlan(db).backfill_statement(now - timedelta(minutes=5), now),
        'DELETE FROM "obs" WHERE "bed" = \'b1\'',
        'DROP SERIES FROM "obs"',
        f'DROP RETENTION POLICY "agg" ON "{db}"',
        f'DROP CONTINUOUS QUERY "cq_obs_1m" ON "{db}"',
        'DROP MEASUREMENT "obs"',
        'CREATE DATABASE "evil"',
    ]:
        assert "not authorized" in run(reader, q), q
    assert stack.influx.count(db) == 1


def test_a_second_grant_replaces_the_first(stack: Stack) -> None:
    """Why ``grant_service_users`` says ``GRANT ALL ON <db>``: READ then WRITE is WRITE only."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    stack.influx.query(f'CREATE DATABASE "{name}"')
    try:
        stack.influx.query(f'GRANT READ ON "{name}" TO "ingest"')
        stack.influx.query(f'GRANT WRITE ON "{name}" TO "ingest"')
        grants = stack.influx.query('SHOW GRANTS FOR "ingest"')["results"][0]["series"][0]  # type: ignore[index]
        assert [name, "WRITE"] in grants["values"]
        assert "not authorized" in run(
            as_user(stack.influx, "ingest", name), 'SELECT count("value") FROM "obs"'
        )
    finally:
        stack.influx.drop_database(name)


def test_setup_db_runs_as_admin_not_as_ingest(stack: Stack) -> None:
    """``wardwatch ingest setup-db`` creates the database, retention policies and the
    continuous query: admin statements. With the ingest service's own environment it fails
    (nothing half-done); with admin credentials it succeeds, and ingest then writes."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    env = {**os.environ, **stack.env("ingest", name)}
    cli = [sys.executable, "-m", "wardwatch.cli", "ingest", "setup-db"]
    as_ingest = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60)
    assert as_ingest.returncode == 2 and "not authorized" in as_ingest.stderr
    assert name not in str(stack.influx.query("SHOW DATABASES"))
    admin_env = {
        **env,
        "WM_INFLUX_USERNAME": "admin",
        "WM_INFLUX_PASSWORD": stack.influx.admin_password,
    }
    try:
        as_admin = subprocess.run(cli, env=admin_env, capture_output=True, text=True, timeout=60)
        assert as_admin.returncode == 0, as_admin.stderr
        stack.influx.grant_service_users(name)
        assert write(as_user(stack.influx, "ingest", name), f"obs value=1.0 {_now_s()}") == 204
    finally:
        stack.influx.drop_database(name)
