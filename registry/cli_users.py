"""``wardwatch registry user ...`` and ``wardwatch registry audit ...``: accounts, tokens and the
audit log, straight on the database (the operator's shell on the server acts as a local
administrator; the audit log records the OS user, or ``--as USER``).

Passwords are read from a prompt (twice, not echoed) or, with ``--password-stdin``, from the first
line of standard input; never from the command line. A token is printed once (``--out FILE``
writes it to a new 0600 file instead, for a service's ``WM_REGISTRY_TOKEN_FILE``).
"""

from __future__ import annotations

import json as jsonlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from registry.cli_base import DbOption, JsonOption, emit, fail, parse_time, run

__all__ = ["audit_app", "user_app"]

user_app = typer.Typer(no_args_is_help=True, help="Users: roles, passwords, tokens.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")

USER_COLUMNS = ("id", "role", "status", "has_password", "active_tokens", "password_changed_at")
PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of standard input.")]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            fail("no password on standard input")
        return line.rstrip("\r\n")
    first = typer.prompt("Password", hide_input=True)
    if typer.prompt("Again", hide_input=True) != first:
        fail("the passwords differ")
    return str(first)


@user_app.command("add")
def user_add(
    user: str,
    role: Annotated[str, typer.Option(help="nurse, nurse_in_charge, biomed, unit_manager, "
                                      "admin, service (ingest, console) or alert_engine "
                                      "(the alert engine: reads dates of birth).")],
    no_password: Annotated[bool, typer.Option(
        "--no-password", help="No password (a service or the alert engine: it only holds "
        "tokens).")] = False,
    password_stdin: PasswordStdin = False,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Add a user (asks for the password unless --no-password)."""
    from pydantic import SecretStr

    from registry import users
    from registry.users import UserRequest

    if no_password and password_stdin:
        fail("--no-password and --password-stdin contradict each other")
    if not no_password and role in ("service", "alert_engine") and not password_stdin:
        no_password = True  # a service holds tokens, not a password
    pw = None if no_password else SecretStr(_read_password(password_stdin))
    v = run(db, lambda s, t: users.add_user(
        s, UserRequest.model_validate({"id": user, "role": role, "password": pw}), now=t))
    emit(v, json, message=f"added user {v.id} ({v.role.value})")


@user_app.command("list")
def user_list(db: DbOption = None, json: JsonOption = False) -> None:
    from registry import users

    emit(run(db, lambda s, t: users.list_users(s, now=t)), json, USER_COLUMNS)


@user_app.command("show")
def user_show(user: str, db: DbOption = None, json: JsonOption = False) -> None:
    from registry import users

    emit(run(db, lambda s, t: users.show_user(s, user, now=t)), json)


@user_app.command("passwd")
def user_passwd(user: str, password_stdin: PasswordStdin = False, db: DbOption = None,
                json: JsonOption = False) -> None:
    """Set a user's password; every token of the user is revoked."""
    from registry import users

    pw = _read_password(password_stdin)
    v = run(db, lambda s, t: users.set_password(s, user, pw, now=t))
    emit(v, json, message=f"password of {v.id} changed; its tokens are revoked")


@user_app.command("disable")
def user_disable(user: str, db: DbOption = None, json: JsonOption = False) -> None:
    """No more logins; every token of the user is revoked at once."""
    from registry import users

    v = run(db, lambda s, t: users.disable_user(s, user, now=t))
    emit(v, json, message=f"disabled user {v.id}; its tokens are revoked")


@user_app.command("enable")
def user_enable(user: str, db: DbOption = None, json: JsonOption = False) -> None:
    from registry import users

    v = run(db, lambda s, t: users.enable_user(s, user, now=t))
    emit(v, json, message=f"enabled user {v.id}")


@user_app.command("token")
def user_token(
    user: str,
    days: Annotated[int, typer.Option(min=1, max=400, help="How long it lasts.")] = 90,
    out: Annotated[Path | None, typer.Option(
        help="Write the token to this new file (mode 0600) instead of printing it.")] = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Issue a token for a user (a service's, for WM_REGISTRY_TOKEN_FILE). Shown once."""
    from datetime import timedelta

    from registry import users

    if out is not None and out.exists():
        fail(f"{out}: exists (a token file is never overwritten: remove it first)")
    issued = run(db, lambda s, t: users.issue_token(s, user, ttl=timedelta(days=days), now=t))
    if out is not None:
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            fail(f"{out}: {exc.strerror} (the token {issued.token_id} was issued, unused: "
                 f"disable and re-enable the user to revoke it, or issue another)")
        with os.fdopen(fd, "w") as f:
            f.write(issued.token + "\n")
        shown = issued.model_copy(update={"token": f"(in {out})"})
        emit(shown, json, message=f"token {issued.token_id} for {issued.user} written to {out}, "
             f"expires {issued.expires_at.isoformat()}")
        return
    emit(issued, json, message=issued.token)


@audit_app.command("verify")
def audit_verify(db: DbOption = None, json: JsonOption = False) -> None:
    """Check the hash chain: exit 0 if intact, 1 naming the first broken record."""
    from registry import audit

    verdict = run(db, lambda s, _: audit.verify(s))
    if json:
        typer.echo(jsonlib.dumps(verdict.as_json(), indent=2))
    elif verdict.broken is None:
        typer.echo(f"ok: {verdict.checked} records, the chain is intact")
    else:
        seq = verdict.broken.seq
        typer.echo(f"broken at record {seq}: "
                   f"{verdict.broken.reason.removeprefix(f'record {seq}: ')}")
    if verdict.broken is not None:
        raise typer.Exit(1)


@audit_app.command("list")
def audit_list(
    since: Annotated[str | None, typer.Option(
        help="From this time on (ISO 8601 with a UTC offset).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many records.")] = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """The audit log in chain order."""
    from registry import audit

    start = parse_time(since) if since is not None else None
    rows = run(db, lambda s, _: [e.as_json() for e in audit.entries(s, start, limit=limit)])
    if json:
        typer.echo(jsonlib.dumps(rows, indent=2))
        return
    for r in rows:
        detail = jsonlib.dumps(r["detail"], sort_keys=True, separators=(",", ":"))
        typer.echo(f"{r['seq']:>6}  {r['at']}  {r['actor']:<16}  {r['action']:<22}  "
                   f"{r['subject']}  {detail}")
