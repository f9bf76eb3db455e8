"""``wardwatch chart``: a nurse charts a set of observations for one bed (docs/charting.md).

The command sends what the nurse entered to the registry's API, ``POST
/units/{site}/{unit}/charted-sets``, as the user whose token is in ``WM_REGISTRY_TOKEN_FILE``
(or ``WM_REGISTRY_TOKEN``): the registry checks the role (nurses only), builds the set (``by``
= the token's user, ``charted_at`` its clock, a new ``set_id``; ``wardwire.charting``),
validates it as ingest and the alert engine do, publishes it on ``{root}/chart/{site}/{unit}``
as the registry identity, waits for the broker's PUBACK and answers with the set. The console's
broker identity publishes nothing here: holding its password charts for nobody (issue 16).

The registry's URL is ``--registry``, else the ``--context``/``WM_CONTEXT`` URL without its
``/units/…`` path (``servicekit.registryapi``). The unit (site and id) is the one that URL names,
or a ward file's (``--ward``/``WM_WARD_FILE``); ``--at`` without a UTC offset is the unit's
local time, applied by the registry (its unit's time zone).

Exit status: 0 published (the set id is printed, the whole set with ``--json``); 1 the registry
or the broker is unavailable (503, not reachable); 2 refused or unusable (403, 404, 422: not a
nurse, a bed the unit does not have, not a charting key, a time that cannot be; bad JSON;
``--as`` another user than the token's; no registry URL or token).
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from datetime import datetime
from typing import Annotated, Any

import typer

from servicekit.cli import ContextOption, WardOption
from wardwire.charting import ChartEntryError, parse_observed_at

__all__ = ["ChartInputError", "app", "check_at", "items_of", "parse_at", "unit_of_url"]

app = typer.Typer(add_completion=False)

#: the input cannot make a set (exit status 2)
ChartInputError = ChartEntryError


def parse_at(text: str, time_zone: str | None) -> datetime:
    """``--at``: an ISO 8601 time; without a UTC offset the unit's local time (the unit
    context's ``time_zone``), unless a clock change makes it ambiguous or nonexistent; a unit
    without a time zone needs the offset (``wardwire.charting.parse_observed_at``)."""
    return parse_observed_at(text, time_zone, what="--at")


_ID = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"


def unit_of_url(url: str) -> tuple[str, str]:
    """The site and unit a registry's unit-context URL names (``…/units/SITE/UNIT/context``):
    the command does not need to read the context itself, so a registry that is down is
    "unavailable" (exit 1), not "an unusable context" (exit 2)."""
    path = urllib.parse.urlsplit(url).path
    m = re.search(rf"/units/({_ID})/({_ID})(?:/context)?/?$", path)
    if m is None:
        raise ChartInputError(f"{url}: not a unit's URL of the registry "
                              "(…/units/SITE/UNIT/context)")
    return m.group(1), m.group(2)


def check_at(text: str) -> str:
    """``--at`` as the registry reads it (ISO 8601; without an offset: the unit's local time,
    which the registry applies); refused here only if it is no time at all."""
    try:
        datetime.fromisoformat(text)
    except ValueError:
        parse_at(text, None)  # raises with the usual message
    return text


def items_of(obs: str) -> dict[str, Any]:
    """``--obs``: a JSON object of charting items (their keys and values the registry checks)."""
    try:
        items = json.loads(obs)
    except ValueError as exc:
        raise ChartInputError(f"--obs is not JSON: {exc}") from None
    except RecursionError:
        raise ChartInputError("--obs is nested too deeply") from None
    if not isinstance(items, dict):
        raise ChartInputError(
            '--obs must be a JSON object of charting items, e.g. \'{"avpu": "V", "crt_s": 3}\''
        )
    for key, value in items.items():
        if not _finite(value):  # JSON has no NaN or infinity: it could not even be sent
            raise ChartInputError(f"--obs items.{key}: not a finite number")
    return items


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


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
            help="Your user id, checked against your token's (the registry records who charted "
            "from the token, never from this flag). Default: $WM_USER, else not checked.",
        ),
    ] = None,
    ward: WardOption = None,
    context: ContextOption = None,
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="The registry's URL, https://HOST:PORT (default: from "
                     "the --context / WM_CONTEXT URL)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole set as JSON.")] = False,
    timeout: Annotated[
        float, typer.Option(min=0.5, max=600, help="Seconds to wait for the registry.")
    ] = 15.0,
) -> None:
    """Chart a set of observations for one bed, through the registry as your token's user;
    print its set id once the broker has it."""
    import httpx

    from servicekit.cli import unit_context_or_exit
    from servicekit.registryapi import RegistryClient, RegistryRefused, RegistryUnavailable
    from servicekit.settings import ServiceSettings

    s = ServiceSettings()
    source = s.context_source(context or ward)
    try:
        if source.startswith(("http://", "https://")):
            site, unit_id = unit_of_url(source)
        else:  # a ward file: read here (no network)
            ctx = unit_context_or_exit(s, ward, context)
            site, unit_id = ctx.site, ctx.unit
        items = items_of(obs)
        observed_at = check_at(at) if at is not None else None
    except ChartInputError as exc:
        typer.echo(f"not charted: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        client = RegistryClient.from_settings(s, registry, context)
    except RegistryUnavailable as exc:
        typer.echo(f"not charted: {exc}", err=True)
        raise typer.Exit(2) from None
    client.http.timeout = httpx.Timeout(timeout)
    body: dict[str, Any] = {"bed_id": bed, "items": items}
    if observed_at is not None:
        body["observed_at"] = observed_at
    if supersedes is not None:
        body["supersedes"] = supersedes
    if already_escalated:
        body["already_escalated"] = True
    try:
        if as_user is not None:
            me = client.me()
            if as_user != me:
                typer.echo(f"not charted: --as {as_user}, but the token is {me}'s", err=True)
                raise typer.Exit(2)
        answer = client.post(f"/units/{site}/{unit_id}/charted-sets", body)
    except RegistryRefused as exc:
        typer.echo(f"not charted: {exc}", err=True)
        raise typer.Exit(2) from None
    except RegistryUnavailable as exc:
        typer.echo(f"not charted: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()
    if answer.status == 202 and isinstance(answer.body, dict) and "set_id" in answer.body:
        typer.echo(json.dumps(answer.body) if as_json else answer.body["set_id"])
        return
    typer.echo(f"not charted ({answer.status}): {answer.reason}", err=True)
    raise typer.Exit(1 if answer.status >= 500 or answer.status == 202 else 2)


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch chart")
