"""``wardwatch chart``: a nurse charts a set of observations for one bed (docs/charting.md).

The command builds one ``ChartedSet`` (a new ``set_id``; unit and generation from the unit
context; ``observed_at`` from ``--at`` or now, ``charted_at`` now), validates it against the
wire contract, publishes it at QoS 1 as the console's broker identity (``WM_MQTT_*``) on
``{root}/chart/{site}/{unit}`` and waits for the broker's PUBACK. Ingest stores it in the
charted record, the alert engine scores it.

Only the contract checks the items here (the keys are Appendix A's, the shapes and sizes are
bounded): the scorer's vocabulary belongs to the alert engine, which a console does not import.

Exit status: 0 published (the set id is printed, the whole set with ``--json``); 1 the broker
refused it or could not be reached; 2 the input is unusable (bad JSON, not a charting key, a
bed the unit does not have, a time that cannot be, no user).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from servicekit.cli import ContextOption, WardOption

if TYPE_CHECKING:
    from servicekit.mqtt import MqttParams
    from wardwire.context import UnitContext
    from wardwire.models import ChartedSet

__all__ = ["ChartInputError", "ChartPublishError", "app", "build_set", "parse_at", "publish_set"]

app = typer.Typer(add_completion=False)


class ChartInputError(ValueError):
    """The set cannot be built from what was given (exit status 2)."""


class ChartPublishError(RuntimeError):
    """The broker refused the set or could not be reached (exit status 1)."""


def new_set_id() -> str:
    """A set id unique without coordination (a correction names it in ``--supersedes``)."""
    return f"cs-{uuid.uuid4().hex}"


def parse_at(text: str, time_zone: str | None) -> datetime:
    """``--at``: an ISO 8601 time. Without a UTC offset it is the unit's local time (the unit
    context's ``time_zone``), unless a clock change makes that time ambiguous or nonexistent;
    a unit without a time zone needs the offset."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ChartInputError(
            f"--at {text!r} is not an ISO 8601 time (e.g. 2026-03-01T09:30+08:00, or "
            "2026-03-01T09:30 in the unit's time zone)"
        ) from None
    if at.tzinfo is not None:
        return at
    if time_zone is None:
        raise ChartInputError(
            f"--at {text!r} has no UTC offset and the unit context names no time zone: "
            "give the offset (…+08:00, or …Z for UTC)"
        )
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ChartInputError(f"the unit's time zone {time_zone!r} is not known here") from None
    local = at.replace(tzinfo=zone)
    if local.utcoffset() != local.replace(fold=1).utcoffset():
        # a clock change: that local time happened twice (clocks back) or never (forward)
        raise ChartInputError(
            f"--at {text!r} is ambiguous or does not exist in {time_zone} (a clock change): "
            "give the UTC offset"
        )
    return local


def _items(obs: str) -> dict[str, Any]:
    try:
        items = json.loads(obs)
    except ValueError as exc:
        raise ChartInputError(f"--obs is not JSON: {exc}") from None
    if not isinstance(items, dict):
        raise ChartInputError(
            '--obs must be a JSON object of charting items, e.g. \'{"avpu": "V", "crt_s": 3}\''
        )
    return items


def _explain(exc: Any) -> str:
    from wardwire.models import CHART_KEYS

    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "set"
        lines.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    text = "; ".join(lines)
    if "not charting keys" in text:
        text += f" (charting keys: {', '.join(sorted(CHART_KEYS))})"
    return text


def build_set(
    unit: UnitContext,
    *,
    bed: str,
    obs: str,
    by: str,
    observed_at: datetime,
    charted_at: datetime,
    supersedes: str | None = None,
    already_escalated: bool = False,
    set_id: str | None = None,
) -> ChartedSet:
    """The set, validated exactly as every consumer validates it (from its JSON bytes)."""
    from pydantic import ValidationError

    from wardwire.models import ChartedSet

    items = _items(obs)
    if not any(b.id == bed for b in unit.beds):
        beds = ", ".join(b.id for b in unit.beds) or "none"
        raise ChartInputError(f"bed {bed!r} is not a bed of {unit.site}/{unit.unit} (beds: {beds})")
    body = {
        "set_id": set_id or new_set_id(),
        "unit": unit.unit,
        "bed_id": bed,
        "by": by,
        "observed_at": observed_at.isoformat(),
        "charted_at": charted_at.isoformat(),
        "generation": unit.generation.value,
        "items": items,
        "supersedes": supersedes,
        "already_escalated": already_escalated,
    }
    try:
        return ChartedSet.model_validate_json(json.dumps(body))
    except ValidationError as exc:
        raise ChartInputError(_explain(exc)) from None


def publish_set(
    params: MqttParams, cs: ChartedSet, topic: str, *, timeout_s: float = 10.0
) -> None:
    """Publish at QoS 1 and wait for the broker's PUBACK; raise :class:`ChartPublishError` if it
    refuses the set (its reason, e.g. "Not authorized") or does not answer in time."""
    from servicekit.mqtt import MqttError, MqttSession

    # A one-shot publisher: its session ends when it disconnects.
    session = MqttSession(
        replace(params, session_expiry_s=0), f"chart-{uuid.uuid4().hex[:12]}",
        log_name=__name__,
    )
    try:
        session.start(timeout_s)
    except MqttError as exc:
        raise ChartPublishError(str(exc)) from None
    answered = threading.Event()
    answer: list[Any] = []

    def done(rc: Any) -> None:
        answer.append(rc)
        answered.set()

    try:
        session.publish(topic, cs.model_dump_json(), qos=1, on_done=done)
        if not answered.wait(timeout_s):
            raise ChartPublishError(f"no answer from the broker within {timeout_s:g} s")
        if answer[0].is_failure:
            raise ChartPublishError(f"the broker refused the set: {answer[0]}")
    finally:
        session.stop()


@app.command("chart")
def chart(
    bed: Annotated[str, typer.Option("--bed", help="The bed (an id of the unit).")],
    obs: Annotated[
        str,
        typer.Option("--obs", help='The items as a JSON object: \'{"avpu": "V", "crt_s": 3}\'.'),
    ],
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="When it was observed (ISO 8601; without an offset: the unit's local time). "
            "Default: now. Earlier than now is a back-entry.",
        ),
    ] = None,
    supersedes: Annotated[
        str | None,
        typer.Option(
            "--supersedes", metavar="SET_ID",
            help="This set corrects that one (entered in error); both are kept.",
        ),
    ] = None,
    already_escalated: Annotated[
        bool,
        typer.Option(
            "--already-escalated",
            help="A back-entry already acted on: scored, but no new notification.",
        ),
    ] = False,
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as", metavar="USER", envvar="WM_USER",
            help="The user id of who charted it (a staff id). Default: $WM_USER.",
        ),
    ] = None,
    ward: WardOption = None,
    context: ContextOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole set as JSON.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker.")] = 10.0,
) -> None:
    """Chart a set of observations for one bed: publish it (QoS 1) as the console identity
    and print its set id once the broker has it."""
    from servicekit.cli import unit_context_or_exit
    from servicekit.clock import utcnow
    from servicekit.settings import ServiceSettings
    from wardwire import topics

    if not as_user:
        typer.echo("who charted the set? give --as USER (or set WM_USER)", err=True)
        raise typer.Exit(2)
    s = ServiceSettings()
    unit = unit_context_or_exit(s, ward, context)
    now = utcnow()
    try:
        observed_at = parse_at(at, unit.time_zone) if at is not None else now
        cs = build_set(
            unit, bed=bed, obs=obs, by=as_user, observed_at=observed_at, charted_at=now,
            supersedes=supersedes, already_escalated=already_escalated,
        )
    except ChartInputError as exc:
        typer.echo(f"not charted: {exc}", err=True)
        raise typer.Exit(2) from None
    topic = topics.charting(unit.site, unit.unit, root=s.topic_root)
    # The session logs a refusal too; the one line below says it (a command, not a service).
    quiet = logging.getLogger(__name__)
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    try:
        publish_set(s.mqtt_params(), cs, topic, timeout_s=timeout)
    except ChartPublishError as exc:
        typer.echo(f"not charted: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(cs.model_dump_json() if as_json else cs.set_id)


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch chart")
