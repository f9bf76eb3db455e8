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
    rules: Annotated[
        Path | None,
        typer.Option(
            "--rules",
            "--policy",
            help="Unit rules file (TOML: freshness, onset, clear, min_priority, reassessment, "
            "escalation, snooze, technical; docs/alerting.md); the shipped defaults when not "
            "given. --policy is the old name of the same option.",
        ),
    ] = None,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Score every bed of the unit and raise, escalate and resolve alerts."""
    from alerting.core.config import RulesError, load_rules
    from alerting.pews import score
    from alerting.service import AlertingService
    from servicekit.runner import run_until_signal, setup_logging
    from servicekit.settings import ServiceSettings

    s = ServiceSettings()
    setup_logging(s.log_level)
    try:
        unit_rules = load_rules(rules)
    except RulesError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    unit = unit_context_or_exit(s, ward, context)
    zone = unit.time_zone or unit_rules.time_zone
    if zone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            typer.echo(f"unit {unit.unit}: unknown time zone {zone!r} (an IANA name such as "
                       "Asia/Shanghai)", err=True)
            raise typer.Exit(2) from None
    service = AlertingService(s.mqtt_params(), unit, unit_rules, score, root=s.topic_root)
    raise typer.Exit(run_until_signal(service, metrics_port=metrics_port))


@app.command("check-rules")
def check_rules(
    path: Annotated[Path, typer.Argument(help="The unit rules file to check.")],
) -> None:
    """Validate a unit rules file (exit 2 naming every bad key) and print it in full."""
    import json

    from alerting.core.config import RulesError, load_rules

    try:
        r = load_rules(path)
    except RulesError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(r.model_dump(mode="json"), indent=2))


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch alerting")
