"""``wardwatch alerting`` / ``python -m alerting``: the streaming PEWS engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from servicekit.cli import (
    ContextOption,
    MetricsPortOption,
    WardOption,
    context_source_or_exit,
    service_app,
    unit_context_or_exit,
)

app = service_app("Streaming PEWS engine and alerts.")
audit_app = typer.Typer(no_args_is_help=True, help="The alert journal (who did what, when).")
app.add_typer(audit_app, name="audit")

DEFAULT_STATE = Path("alerting-state.sqlite")
StateOption = Annotated[
    Path,
    typer.Option(
        "--state",
        "--db",
        envvar="WM_ALERTING_STATE",
        help="The engine's state file (SQLite): open alerts, timers, the journal, undelivered "
        "alert messages. One per unit.",
    ),
]


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
    state: StateOption = DEFAULT_STATE,
    heartbeat_s: Annotated[
        float, typer.Option(min=0.5, max=600, help="Engine status heartbeat, seconds.")
    ] = 5.0,
    context_refresh_s: Annotated[
        float,
        typer.Option(min=1, max=3600, help="Read the unit context again this often (seconds)."),
    ] = 10.0,
    crash_after_commit: Annotated[
        str | None, typer.Option(hidden=True, help="Test only: kill -9 after committing it.")
    ] = None,
    context_cache: Annotated[
        Path | None,
        typer.Option(
            help="Keep the last good registry context here (0600) and start and run on it while "
            "the registry cannot be reached, with context_unavailable raised on every bed "
            "(default: next to the state file, STATE.context.json; only for a registry URL)."
        ),
    ] = None,
    pager_url: Annotated[
        str | None,
        typer.Option(
            envvar="WM_PAGER_URL",
            help="The nurse-call / pager gateway's webhook (docs/pager.md). Prefer the "
            "environment variable when the URL carries a token.",
        ),
    ] = None,
) -> None:
    """Score every bed of the unit and raise, escalate and resolve alerts.

    Alert state, the journal and undelivered alert messages live in the state file (SQLite):
    a restart resumes every open alert with its acknowledgement and timers."""
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
    cache = context_cache if context_cache is not None else state.with_name(
        state.name + ".context.json")
    source, unit = context_source_or_exit(s, ward, context, cache)
    zone = unit.time_zone or unit_rules.time_zone
    if zone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            typer.echo(f"unit {unit.unit}: unknown time zone {zone!r} (an IANA name such as "
                       "Asia/Shanghai)", err=True)
            raise typer.Exit(2) from None
    from alerting.store import StoreError

    try:
        service = AlertingService(
            s.mqtt_params(),
            unit,
            unit_rules,
            score,
            root=s.topic_root,
            state=state,
            heartbeat_s=heartbeat_s,
            context_loader=source.load,
            context_refresh_s=context_refresh_s,
            context_stale=lambda: source.last_error if source.stale else None,
            crash_after_commit=crash_after_commit,
            pager_url=pager_url,
        )
    except (StoreError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
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


@audit_app.command("verify")
def audit_verify(
    state: StateOption = DEFAULT_STATE,
    expect_head: Annotated[
        str | None,
        typer.Option(
            help="SEQ:HASH of a record known from outside the file (the engine's retained "
            "status carries journal_seq and journal_head): that record must be there, with "
            "that hash. Catches a journal cut short or rewritten from its end."
        ),
    ] = None,
) -> None:
    """Check the journal's hash chain: exit 1 naming the first broken record, 0 if intact."""
    import sqlite3
    import time

    from alerting.journal import verify
    from alerting.store import read_journal

    if not state.exists():
        typer.echo(f"{state}: no such state file", err=True)
        raise typer.Exit(2)
    t0 = time.perf_counter()
    try:
        records = read_journal(state)
    except sqlite3.Error as exc:
        typer.echo(f"{state}: cannot read the journal: {exc}", err=True)
        raise typer.Exit(2) from None
    n, broken = verify(records)
    ms = (time.perf_counter() - t0) * 1000
    if broken is not None:
        typer.echo(f"{state}: journal BROKEN at record {broken.seq}: {broken.reason}", err=True)
        raise typer.Exit(1)
    if expect_head is not None:
        seq_text, _, want = expect_head.partition(":")
        if not seq_text.isdigit() or len(want) != 64:
            typer.echo("--expect-head: give SEQ:HASH (a number, a colon, 64 hex digits)",
                       err=True)
            raise typer.Exit(2)
        found = {r.seq: r.hash for r in records}.get(int(seq_text))
        if found != want:
            why = "is missing" if found is None else "has another hash"
            typer.echo(f"{state}: journal BROKEN at record {seq_text}: it {why} than the "
                       "anchored head says (cut short or rewritten)", err=True)
            raise typer.Exit(1)
    last = records[-1] if records else None
    head = f"; head {last.seq}:{last.hash}" if last is not None else ""
    typer.echo(f"{state}: journal intact: {n} records verified in {ms:.0f} ms{head}")


@app.command("backup")
def backup_cmd(
    dest: Annotated[Path, typer.Argument(help="Where the copy goes (must not exist).")],
    state: StateOption = DEFAULT_STATE,
) -> None:
    """A consistent copy of the state file, taken while the engine runs."""
    from alerting.store import StoreError, backup

    try:
        backup(state, dest)
    except StoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{state} -> {dest}")


@app.command("restore")
def restore_cmd(
    src: Annotated[Path, typer.Argument(help="A backup made by `wardwatch alerting backup`.")],
    state: StateOption = DEFAULT_STATE,
) -> None:
    """Put a backup in place of the state file (refused while an engine runs on it)."""
    from alerting.store import StoreError, restore

    try:
        restore(src, state)
    except StoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{src} -> {state}")


AlertOption = Annotated[str, typer.Option("--alert", help="The alert id (from the console).")]
AsOption = Annotated[
    str | None,
    typer.Option("--as", help="Your user id, checked against your token's (the registry "
                 "journals who acted from the token, never from this flag)."),
]
RegistryOption = Annotated[
    str | None,
    typer.Option("--registry", help="The registry's URL, https://HOST:PORT (default: from the "
                 "--context / WM_CONTEXT URL)."),
]


def _send_command(
    ward: Path | None, context: str | None, registry: str | None, action: str, alert: str,
    user: str | None, **fields: object,
) -> None:
    """Send a nurse's action on an alert through the registry's API, as the user whose token
    is in ``WM_REGISTRY_TOKEN_FILE``: the registry checks the role (nurses only), journals who
    acted, and hands the command to the broker (only the registry's identity may publish
    commands). Exit 2 when refused, 1 when the registry or the broker is not there."""
    from servicekit.registryapi import RegistryClient, RegistryRefused, RegistryUnavailable
    from servicekit.settings import ServiceSettings

    s = ServiceSettings()
    unit = unit_context_or_exit(s, ward, context)
    try:
        client = RegistryClient.from_settings(s, registry, context)
    except RegistryUnavailable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    try:
        me = client.me()
        if user is not None and user != me:
            typer.echo(f"--as {user}, but the token is {me}'s: nothing sent", err=True)
            raise typer.Exit(2)
        body = {k: v for k, v in fields.items() if v is not None}
        answer = client.post(f"/units/{unit.site}/{unit.unit}/alerts/{alert}/{action}",
                             body or None)
    except RegistryRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except RegistryUnavailable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()
    if answer.status == 202 and isinstance(answer.body, dict):
        typer.echo(f"{action} {alert} as {me}: sent ({answer.body.get('command_id')})")
        return
    typer.echo(f"refused ({answer.status}): {answer.reason}", err=True)
    raise typer.Exit(1 if answer.status >= 500 else 2)


@app.command("ack")
def ack_cmd(alert: AlertOption, user: AsOption = None, ward: WardOption = None,
            context: ContextOption = None, registry: RegistryOption = None) -> None:
    """Acknowledge an alert (through the registry, as your token's user)."""
    _send_command(ward, context, registry, "ack", alert, user)


@app.command("snooze")
def snooze_cmd(
    alert: AlertOption,
    minutes: Annotated[float, typer.Option(help="For how long (bounded per priority; a HIGH "
                                                 "alert is never snoozed).")],
    user: AsOption = None,
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    ward: WardOption = None,
    context: ContextOption = None,
    registry: RegistryOption = None,
) -> None:
    """Silence an alert for a while; it comes back when the time runs out."""
    _send_command(ward, context, registry, "snooze", alert, user, minutes=minutes,
                  reason=reason)


@app.command("escalate")
def escalate_cmd(alert: AlertOption, user: AsOption = None, ward: WardOption = None,
                 context: ContextOption = None, registry: RegistryOption = None) -> None:
    """Move an alert to the next role of its escalation chain now."""
    _send_command(ward, context, registry, "escalate", alert, user)


@app.command("resolve")
def resolve_cmd(
    alert: AlertOption,
    reason: Annotated[str, typer.Option(help="Why it is resolved (journaled).")],
    user: AsOption = None,
    ward: WardOption = None,
    context: ContextOption = None,
    registry: RegistryOption = None,
) -> None:
    """Close an alert, with a reason (a clinical one is not raised again at its level until
    its reassessment is due)."""
    _send_command(ward, context, registry, "resolve", alert, user, reason=reason)


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch alerting")
