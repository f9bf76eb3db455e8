"""What every service CLI shares: its Typer app, the unit-context options, and reading the
context with an operator-readable error."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from servicekit.context import ContextSource
    from servicekit.settings import ServiceSettings
    from wardwire.context import UnitContext

__all__ = ["ContextCacheOption", "ContextOption", "MetricsPortOption", "WardOption",
           "context_source_or_exit", "service_app", "unit_context_or_exit"]

WardOption = Annotated[Path | None, typer.Option(help="Ward file (default $WM_WARD_FILE).")]
ContextOption = Annotated[
    str | None,
    typer.Option(
        help="Unit context source: a ward file path or the registry's http(s) URL (default "
        "$WM_CONTEXT, else the ward file)."
    ),
]
ContextCacheOption = Annotated[
    Path | None,
    typer.Option(
        help="Keep the last good registry context here (0600) and run on it while the "
        "registry cannot be reached, saying so (metrics, technical event)."
    ),
]
MetricsPortOption = Annotated[
    int | None, typer.Option(help="Serve Prometheus /metrics on this port (0 = any).")
]


def service_app(help_text: str) -> typer.Typer:
    """A service's command group (``wardwatch <service> ...`` and ``python -m <service>``)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, help=help_text)

    @app.callback()
    def _group() -> None:
        # A callback keeps the group a group: with one command (``alerting run``) Typer would
        # otherwise make the command the app and refuse its name.
        pass

    return app


def unit_context_or_exit(
    settings: ServiceSettings, ward: Path | None = None, context: str | None = None
) -> UnitContext:
    """The unit context from ``--context``, ``--ward`` or the settings; exit 2 if unusable."""
    from servicekit.context import UnitContextError, load_unit_context, registry_token

    try:
        source = settings.context_source(context or ward)
        token = registry_token(source, settings.registry_token_value(),
                               settings.registry_token_file)
        return load_unit_context(source, ca_file=settings.registry_ca_file, token=token)
    except UnitContextError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def context_source_or_exit(
    settings: ServiceSettings, ward: Path | None, context: str | None, cache: Path | None
) -> tuple[ContextSource, UnitContext]:
    """The unit context source (with its cache for a registry URL) and its first context; a
    service may start on the cache while the registry is down (a warning on stderr says so).
    Exit 2 if there is neither."""
    from servicekit.context import ContextSource, UnitContextError

    source = ContextSource(
        settings.context_source(context or ward), cache, ca_file=settings.registry_ca_file,
        token=settings.registry_token_value(), token_file=settings.registry_token_file,
    )
    try:
        unit = source.load()
    except UnitContextError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if source.stale:
        typer.echo(f"warning: starting on the cached unit context: {source.last_error}", err=True)
    return source, unit
