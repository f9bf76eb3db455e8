"""The registry as it runs: ``wardwatch registry serve`` (uvicorn) on a free loopback port.

``servicekit.context`` loading the server's context URL gets the same ``UnitContext`` as
``export-context``; the CLI and the API write to the same SQLite file at once; a backup taken
while the server writes is a consistent registry; the server stops cleanly on SIGTERM. The API
is used with tokens the CLI issued (a unit manager's, a service's), as an operator would.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from registry.db import head_revision, open_database
from registry.unitcontext import without_dates_of_birth
from servicekit.context import UnitContextError, load_unit_context
from tests.unit.registry.authn import token_for
from wardwire.context import UnitContext

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Server:
    url: str
    db: str
    proc: subprocess.Popen[str]
    #: bearer tokens the CLI issued: a unit manager's (writes) and a service's (contexts)
    manager: str = ""
    service: str = ""

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.manager}"}


def issue_tokens(db: str) -> tuple[str, str]:
    """A unit manager's and a service's token, in-process (the user commands' own test is
    tests/unit/registry/test_cli_users.py; four more CLI processes per test cost seconds)."""
    engine = open_database(db)
    try:
        return token_for(engine, "unit_manager"), token_for(engine, "service")
    finally:
        engine.dispose()


def registry(*args: str, code: int = 0, stdin: str | None = None,
             env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "registry", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False,
                          input=stdin, env=None if env is None else {**os.environ, **env})
    assert proc.returncode == code, (args, proc.stdout, proc.stderr)
    return proc.stdout if code == 0 else proc.stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry", "serve", "--db", db, "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once the socket listens (bounded: timeout)
        assert first.startswith("serving http://127.0.0.1:"), first + proc.stderr.read()
        yield Server(first.split()[1], db, proc, *issue_tokens(db))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def seed(db: str) -> None:
    registry("site", "add", "demo", "--db", db)
    registry("unit", "add", "demo/picu", "--time-zone", "Asia/Shanghai", "--generation", "demo",
             "--db", db)
    registry("gateway", "add", "demo/picu", "gw-a", "--db", db)
    registry("bed", "add", "demo/picu/bed01", "--gateway", "gw-a", "--db", db)
    registry("device", "add", "mon-01", "--manufacturer", "Acme", "--model", "WW-1", "--serial",
             "SN-1", "--driver", "wwmon", "--db", db)
    registry("device", "assign", "mon-01", "demo/picu/bed01", "--db", db)
    registry("patient", "add", "P-1a2b3c", "--dob", "2022-03-14", "--db", db)
    registry("admit", "P-1a2b3c", "demo/picu/bed01", "--db", db)


def test_servicekit_reads_the_same_context_from_the_running_server(server: Server) -> None:
    seed(server.db)
    url = f"{server.url}/units/demo/picu/context"
    with pytest.raises(UnitContextError, match=r"401.*WM_REGISTRY_TOKEN_FILE"):
        load_unit_context(url)  # no token
    loaded = load_unit_context(url, token=server.service)
    exported = UnitContext.model_validate_json(
        registry("export-context", "--unit", "demo/picu", "--db", server.db))
    # a service token (ingest, the console) reads no date of birth; the local export has them
    assert loaded == without_dates_of_birth(exported)
    assert exported.beds[0].dob is not None and loaded.beds[0].dob is None
    assert loaded.beds[0].admission is not None and loaded.beds[0].patient == "P-1a2b3c"
    assert loaded.bed_of("gw-a", "mon-01") == loaded.beds[0]
    shown = json.loads(registry("show", url, env={"WM_REGISTRY_TOKEN": server.service}))
    assert UnitContext.model_validate(shown) == loaded
    with pytest.raises(UnitContextError, match="404"):
        load_unit_context(f"{server.url}/units/demo/nope/context", token=server.service)
    doc = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    assert doc["info"]["title"] == "wardwatch registry"


def test_cli_and_api_write_at_once_and_a_backup_taken_meanwhile_is_consistent(
    server: Server, tmp_path: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=30, headers=server.auth()) as c:
        for path, body in (("/sites", {"id": "demo"}),
                           ("/units", {"site": "demo", "id": "picu", "time_zone": "UTC"})):
            assert c.post(path, json=body).status_code == 201
    errors: list[str] = []

    def api_writer() -> None:
        with httpx.Client(base_url=server.url, timeout=30, headers=server.auth()) as c:
            for i in range(40):
                r = c.post("/devices", json={"id": f"api-{i}", "manufacturer": "Acme",
                                             "model": "X", "serial_number": f"API-{i}",
                                             "driver": "wwmon"})
                if r.status_code != 201:
                    errors.append(r.text)

    writer = threading.Thread(target=api_writer)
    writer.start()
    backups = []
    for i in range(3):
        registry("bed", "add", f"demo/picu/cli{i}", "--db", server.db)
        target = tmp_path / f"backup-{i}.db"
        assert "backed up" in registry("backup", str(target), "--db", server.db)
        backups.append(target)
    writer.join(timeout=120)
    assert not writer.is_alive() and errors == []
    for target in backups:
        with closing(sqlite3.connect(target)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
                head_revision(),)
            devices = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
            assert 0 <= devices <= 40
    listed = httpx.get(f"{server.url}/devices", timeout=10, headers=server.auth()).json()
    assert len(listed) == 40
    # restore the first backup under the running server: it serves the restored registry (its
    # users and their tokens too: the backups were taken after the tokens were issued)
    assert "restored" in registry("restore", str(backups[0]), "--db", server.db)
    after = httpx.get(f"{server.url}/devices", timeout=10, headers=server.auth()).json()
    with closing(sqlite3.connect(backups[0])) as conn:
        assert len(after) == conn.execute("SELECT count(*) FROM devices").fetchone()[0]
    r = httpx.post(f"{server.url}/sites", json={"id": "after"}, timeout=10,
                   headers=server.auth())
    assert r.status_code == 201, r.text


def test_serve_refuses_a_port_in_use(server: Server) -> None:
    port = server.url.rsplit(":", 1)[1]
    err = registry("serve", "--db", server.db, "--port", port, code=2)
    assert f"cannot listen on 127.0.0.1:{port}" in err
