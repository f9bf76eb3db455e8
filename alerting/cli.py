"""``wardwatch alerting`` / ``python -m alerting``: the streaming PEWS engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from servicekit.cli import (
    ContextOption,
    MetricsPortOption,
    WardOption,
    service_app,
    unit_context_or_exit,
)

app = service_app("Streaming PEWS engine and alerts.")


@app.command("run")
def run(
    ward: WardOption = None,
    context: ContextOption = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="Alerting policy file (TOML: onset_s, clear_s, stale_s, "
                     "escalate_after_s); defaults when not given."),
    ] = None,
    metrics_port: MetricsPortOption = None,
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
