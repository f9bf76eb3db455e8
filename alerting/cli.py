"""``wardwatch alerting`` / ``python -m alerting``: the streaming PEWS engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from servicekit.cli import CONTEXT_HELP, WARD_HELP, unit_context_or_exit

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Streaming PEWS engine and alerts."
)


@app.callback()
def _group() -> None:
    """Keeps the subcommand name (``run``) even while the group has a single command."""


@app.command("run")
def run(
    ward: Annotated[Path | None, typer.Option(help=WARD_HELP)] = None,
    context: Annotated[str | None, typer.Option(help=CONTEXT_HELP)] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="Alerting policy file (TOML: onset_s, clear_s, stale_s, "
                     "escalate_after_s); defaults when not given."),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics on this port (0 = any).")
    ] = None,
) -> None:
    """Score every bed of the unit and raise, escalate and resolve alerts."""
    from alerting.pews import score
    from alerting.policy import PolicyError, load_policy
    from alerting.service import AlertingService
    from servicekit.runner import run_until_signal, setup_logging
    from servicekit.settings import ServiceSettings

    s = ServiceSettings()
    setup_logging(s.log_level)
    try:
        pol = load_policy(policy)
    except PolicyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    unit = unit_context_or_exit(s, ward, context)
    service = AlertingService(
        s.mqtt_params(),
        unit,
        pol.rule_config(unit.scoring_system),
        score,
        root=s.topic_root,
        policy=pol.lifecycle(),
    )
    raise typer.Exit(run_until_signal(service, metrics_port=metrics_port))


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch alerting")
