"""What every service CLI shares: reading the unit context with an operator-readable error."""

from __future__ import annotations

from pathlib import Path

import typer

from servicekit.context import UnitContextError, load_unit_context
from servicekit.settings import ServiceSettings
from wardwire.context import UnitContext

__all__ = ["CONTEXT_HELP", "WARD_HELP", "unit_context_or_exit"]

WARD_HELP = "Ward file (default $WM_WARD_FILE)."
CONTEXT_HELP = (
    "Unit context source: a ward file path or the registry's http(s) URL (default $WM_CONTEXT, "
    "else the ward file)."
)


def unit_context_or_exit(
    settings: ServiceSettings, ward: Path | None = None, context: str | None = None
) -> UnitContext:
    """The unit context from ``--context``, ``--ward`` or the settings; exit 2 if unusable."""
    try:
        return load_unit_context(settings.context_source(context or ward))
    except UnitContextError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
