"""``wardwatch console`` / ``python -m console``: the nurses' central station."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from servicekit.cli import CONTEXT_HELP, WARD_HELP, unit_context_or_exit

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Nurses' central station.")


@app.callback()
def _group() -> None:
    """Keeps the subcommand name (``run``) even while the group has a single command."""


@app.command("board")
def board(
    ward: Annotated[Path | None, typer.Option(help=WARD_HELP)] = None,
    context: Annotated[str | None, typer.Option(help=CONTEXT_HELP)] = None,
) -> None:
    """Live terminal board of a unit (beds, vitals, scores, alerts) until Ctrl-C."""
    from console.board import run_board
    from servicekit.settings import ServiceSettings

    s = ServiceSettings()
    run_board(s.mqtt_params(), unit_context_or_exit(s, ward, context), root=s.topic_root)


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch console")
