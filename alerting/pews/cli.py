"""``wardwatch pews``: score validation cases and list/show the installed tables.

The I/O shell around the pure scorer: it parses arguments and JSON, supplies "now" when
``--at`` is omitted with ``--dob``, prints JSON, and maps `PewsInputError` to exit code 2
(in ``--jsonl`` mode: an ``{"error": ...}`` line, the other lines still scored, exit 2).
Mounted by the umbrella CLI as ``root.add_typer(app, name="pews")``; also
``python -m alerting.pews``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import PewsError, PewsInputError
from .render import render_list, render_table
from .scoring import score as score_one
from .tableset import SYSTEMS, TableSet, installed_tables, load_table, load_tables

app = typer.Typer(
    help="Paediatric early-warning scores: validation scoring and table sign-off.",
    no_args_is_help=True,
)

EXIT_INPUT = 2
JSONL_KEYS = ("system", "age_days", "age_months", "inputs")

TablesDir = Annotated[
    Path | None,
    typer.Option(
        "--tables-dir", help="Load every table from this folder instead of the installed ones."
    ),
]
TableFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--table", help="A site-supplied table file replacing its system's table; repeatable."
    ),
]


def _tables(tables_dir: Path | None, table_files: list[Path] | None) -> TableSet:
    tables = load_tables(tables_dir) if tables_dir is not None else installed_tables()
    for path in table_files or []:
        tables = tables.with_table(load_table(path))
    return tables


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_INPUT)


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _parse_at(at: str | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now().astimezone()  # the shell's clock; the core never reads one
    try:
        parsed = dt.datetime.fromisoformat(at)
    except ValueError as exc:
        raise PewsInputError("at", f"{at!r} is not an ISO 8601 date-time") from exc
    return parsed if parsed.tzinfo is not None else parsed.astimezone()


def _score_line(line: str, tables: TableSet) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise PewsInputError("line", f"not valid JSON: {exc.msg}") from exc
    if not isinstance(record, dict):
        raise PewsInputError("line", "expected a JSON object")
    for key in record:
        if key not in JSONL_KEYS:
            raise PewsInputError(key, f"unknown key (allowed: {', '.join(JSONL_KEYS)})")
    if "system" not in record:
        raise PewsInputError("system", "required")
    if not isinstance(record["system"], str):
        raise PewsInputError("system", f"expected a string, got {record['system']!r}")
    inputs = record.get("inputs", {})
    if inputs is None:
        inputs = {}
    return score_one(
        record["system"],
        inputs,
        age_days=record.get("age_days"),
        age_months=record.get("age_months"),
        tables=tables,
    ).as_dict()


@app.command()
def score(
    system: Annotated[
        str | None, typer.Option("--system", help=f"One of {', '.join(SYSTEMS)}.")
    ] = None,
    age_days: Annotated[
        float | None, typer.Option("--age-days", help="Age in days (months = days / 30.4375).")
    ] = None,
    age_months: Annotated[
        int | None, typer.Option("--age-months", help="Completed months.")
    ] = None,
    dob: Annotated[str | None, typer.Option("--dob", help="Date of birth, YYYY-MM-DD.")] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Observation time (ISO 8601; default now, local).")
    ] = None,
    obs: Annotated[
        str | None, typer.Option("--obs", help="Observation set as a JSON object.")
    ] = None,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="Read JSON lines from stdin, write one result per line.")
    ] = False,
    tables_dir: TablesDir = None,
    table: TableFiles = None,
) -> None:
    """Score one observation set (or a stream of them with --jsonl) and print JSON."""
    try:
        tables = _tables(tables_dir, table)
    except PewsError as exc:
        raise _fail(str(exc)) from exc
    if jsonl:
        if any(v is not None for v in (system, age_days, age_months, dob, at, obs)):
            raise _fail(
                "--jsonl reads system, age and inputs from each line; "
                "do not combine it with other options"
            )
        failed = False
        for raw in sys.stdin:
            try:
                out: dict[str, Any] = _score_line(raw, tables)
            except PewsInputError as exc:
                out, failed = {"error": str(exc)}, True
            typer.echo(_dumps(out))
        if failed:
            raise typer.Exit(EXIT_INPUT)
        return
    try:
        if system is None:
            raise PewsInputError("--system", "required (or use --jsonl)")
        if at is not None and dob is None:
            raise PewsInputError("--at", "only meaningful with --dob")
        birth = None
        if dob is not None:
            try:
                birth = dt.date.fromisoformat(dob)
            except ValueError as exc:
                raise PewsInputError("dob", f"{dob!r} is not a date YYYY-MM-DD") from exc
        try:
            inputs = json.loads(obs) if obs is not None else {}
        except json.JSONDecodeError as exc:
            raise PewsInputError("--obs", f"not valid JSON: {exc.msg}") from exc
        result = score_one(
            system,
            inputs,
            age_days=age_days,
            age_months=age_months,
            dob=birth,
            at=_parse_at(at) if birth is not None else None,
            tables=tables,
        )
    except PewsInputError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(_dumps(result.as_dict()))


@app.command("tables")
def tables_command(
    show: Annotated[
        str | None, typer.Option("--show", help="Print one system's table in full.")
    ] = None,
    tables_dir: TablesDir = None,
    table: TableFiles = None,
) -> None:
    """List the installed tables with version and source, or show one for sign-off."""
    try:
        tables = _tables(tables_dir, table)
        if show is None:
            typer.echo(render_list(tables))
        else:
            typer.echo(render_table(tables.scorer(show)))
    except PewsError as exc:
        raise _fail(str(exc)) from exc
