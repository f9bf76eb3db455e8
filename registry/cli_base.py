"""What every database command of ``wardwatch registry`` shares: ``--db``, ``--json``, ``--time``,
one transaction per command, one-line errors with exit status 2, and the printing.

Heavy imports (SQLAlchemy, the service layer) happen when a command runs, so
``wardwatch registry --help`` stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

__all__ = [
    "DbOption",
    "JsonOption",
    "TimeOption",
    "actor",
    "emit",
    "fail",
    "open_engine",
    "parse_time",
    "run",
    "set_actor",
    "split_path",
]

T = TypeVar("T")

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="WM_REGISTRY_DB",
        show_default=False,
        help="Database URL: sqlite:///FILE or postgresql://USER@HOST:PORT/DB (default "
        "$WM_REGISTRY_DB, else sqlite under $XDG_DATA_HOME or ~/.local/share/wardwatch/"
        "registry.db).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TimeOption = Annotated[
    str | None,
    typer.Option(
        "--time", help="When it happened: ISO 8601 with a UTC offset, e.g. "
        "2025-06-01T14:02:00+08:00 or ...Z (default: now).",
    ),
]


#: who the audit log names for this command: ``--as USER``, else the OS user
_ACTOR: list[str] = []


def set_actor(user: str | None) -> None:
    _ACTOR[:] = [user] if user else []


def actor() -> str:
    """``cli:`` and the ``--as`` user, else the OS user running the command."""
    import getpass

    if _ACTOR:
        return f"cli:{_ACTOR[0]}"
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        import os

        return f"cli:uid{os.getuid()}"


def fail(reason: str) -> NoReturn:
    """One line on stderr, exit status 2."""
    typer.echo(" ".join(reason.split()), err=True)
    raise typer.Exit(2)


def _validation_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def split_path(text: str, parts: int) -> list[str]:
    """``SITE/UNIT`` or ``SITE/UNIT/BED``."""
    names = text.split("/")
    if len(names) != parts or not all(names):
        fail(f"{text!r}: expected {('SITE/UNIT', 'SITE/UNIT/BED')[parts - 2]}")
    return names


def parse_time(text: str) -> datetime:
    from pydantic import TypeAdapter, ValidationError

    from registry.schemas import Instant

    try:
        return TypeAdapter(Instant).validate_python(text)
    except ValidationError as exc:
        fail(f"--time {text}: {exc.errors()[0]['msg']}")


def open_engine(db: str | None) -> Engine:
    from registry.db import default_url, open_database
    from registry.errors import RegistryError

    try:
        return open_database(db or default_url())
    except RegistryError as exc:
        fail(exc.reason)


def run(db: str | None, action: Callable[[Session, datetime], T]) -> T:
    """Run ``action(session, now)`` in one transaction; a refusal exits 2 with its reason."""
    from pydantic import ValidationError
    from sqlalchemy.exc import DBAPIError

    from registry import audit
    from registry.db import transaction
    from registry.errors import RegistryError

    engine = open_engine(db)
    try:
        with transaction(engine) as session:
            now = datetime.now(UTC)
            audit.act_as(session, actor())
            audit.at_time(session, now)
            return action(session, now)
    except RegistryError as exc:
        fail(exc.reason)
    except ValidationError as exc:
        fail(_validation_line(exc))
    except DBAPIError as exc:
        fail(f"database error: {str(exc.orig).strip().splitlines()[0] if exc.orig else exc}")
    finally:
        engine.dispose()


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return ",".join(_plain(v) for v in value) or "-"
    return str(value)


def emit(
    value: BaseModel | Sequence[BaseModel],
    as_json: bool,
    columns: Sequence[str] = (),
    message: str | None = None,
) -> None:
    """Print a view: JSON with ``--json``; else ``message``, a table of ``columns`` for a
    list, or ``key: value`` lines for one view."""
    from pydantic import BaseModel

    if as_json:
        if isinstance(value, BaseModel):
            typer.echo(value.model_dump_json(indent=2))
        else:
            typer.echo(json.dumps([v.model_dump(mode="json") for v in value], indent=2))
        return
    if message is not None:
        typer.echo(message)
        return
    if isinstance(value, BaseModel):
        for key, field in value.model_dump().items():
            if isinstance(field, dict):
                field = " ".join(f"{k}={_plain(v)}" for k, v in field.items())
            elif isinstance(field, list) and field and isinstance(field[0], dict):
                for i, item in enumerate(field):
                    typer.echo(f"{key}[{i}]: " + " ".join(f"{k}={_plain(v)}"
                                                          for k, v in item.items()))
                continue
            typer.echo(f"{key}: {_plain(field)}")
        return
    rows = [[_plain(v.model_dump().get(c)) for c in columns] for v in value]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
