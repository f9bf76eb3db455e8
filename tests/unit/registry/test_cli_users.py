"""``wardwatch registry user ...`` on a SQLite file: passwords from the prompt (twice) or stdin,
never argv; the policy refused with exit 2; a service without a password; tokens printed once
or written to a new 0600 file (never over an existing one); passwd and disable revoke tokens;
reads with --json."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry import users
from registry.cli import app
from registry.db import open_database, transaction
from registry.errors import Unauthorized

PW = "correct horse battery"


def cli(*args: str, code: int = 0, stdin: str | None = None) -> str:
    r = CliRunner().invoke(app, list(args), input=stdin)
    assert r.exit_code == code, (args, r.output)
    return r.output


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    from argon2 import PasswordHasher

    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                         parallelism=1))
    return f"sqlite:///{tmp_path / 'r.db'}"


def authenticate(db: str, token: str) -> str:
    engine = open_database(db)
    try:
        with transaction(engine) as s:
            return users.authenticate(s, token, now=datetime.now(UTC)).user
    finally:
        engine.dispose()


def test_users_from_the_command_line(db: str, tmp_path: Path) -> None:
    assert "added user kim (nurse)" in cli("user", "add", "kim", "--role", "nurse",
                                           "--db", db, stdin=f"{PW}\n{PW}\n")
    assert "differ" in cli("user", "add", "lee", "--role", "nurse", "--db", db,
                           stdin=f"{PW}\nsomething else\n", code=2)
    assert "at least 12" in cli("user", "add", "lee", "--role", "nurse", "--password-stdin",
                                "--db", db, stdin="short\n", code=2)
    assert "no password on standard input" in cli(
        "user", "add", "lee", "--role", "nurse", "--password-stdin", "--db", db, stdin="",
        code=2)
    assert "role" in cli("user", "add", "lee", "--role", "surgeon", "--password-stdin",
                         "--db", db, stdin=f"{PW}\n", code=2)
    assert "already exists" in cli("user", "add", "kim", "--role", "nurse", "--password-stdin",
                                   "--db", db, stdin=f"{PW}\n", code=2)
    assert "added user svc (service)" in cli("user", "add", "svc", "--role", "service",
                                             "--db", db)
    listed = json.loads(cli("user", "list", "--json", "--db", db))
    assert [(u["id"], u["role"], u["has_password"]) for u in listed] == [
        ("kim", "nurse", True), ("svc", "service", False)]

    printed = cli("user", "token", "kim", "--db", db).strip()
    assert authenticate(db, printed) == "kim"
    out = tmp_path / "svc.token"
    assert "written to" in cli("user", "token", "svc", "--days", "1", "--out", str(out),
                               "--db", db)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    token = out.read_text().strip()
    assert token not in cli("user", "show", "svc", "--db", db)
    assert authenticate(db, token) == "svc"
    assert "exists" in cli("user", "token", "svc", "--out", str(out), "--db", db, code=2)
    assert out.read_text().strip() == token  # never overwritten
    assert json.loads(cli("user", "show", "svc", "--json", "--db", db))["active_tokens"] == 1

    assert "tokens are revoked" in cli("user", "passwd", "kim", "--password-stdin", "--db", db,
                                       stdin="another horse battery\n")
    with pytest.raises(Unauthorized, match="revoked"):
        authenticate(db, printed)
    assert "disabled user svc" in cli("user", "disable", "svc", "--db", db)
    assert "already disabled" in cli("user", "disable", "svc", "--db", db, code=2)
    with pytest.raises(Unauthorized):
        authenticate(db, token)
    assert "enabled user svc" in cli("user", "enable", "svc", "--db", db)
    assert "unknown user" in cli("user", "show", "nobody", "--db", db, code=2)
    records = json.loads(cli("audit", "list", "--json", "--db", db))
    assert "tokens.revoke" in {r["action"] for r in records}
    assert token.split("_", 2)[2] not in json.dumps(records)
    assert "intact" in cli("audit", "verify", "--db", db)
