"""A nurse's entry becomes a :class:`~wardwire.models.ChartedSet`: the rules, written once.

The registry's ``POST /units/{site}/{unit}/charted-sets`` builds every set with
:func:`build_charted_set` (``by`` the authenticated user, ``charted_at`` its clock); the
console's ``wardwatch chart`` uses :func:`parse_observed_at` and the same error type for what it
says before asking. What this refuses is what ingest or the alert engine would refuse from the
wire (the set is validated from its JSON bytes, as they validate it), so nothing that passes
here is dead-lettered downstream for its shape.

The rules:

* the bed is one of the unit's beds (:class:`UnknownBed`, a 404 in the API);
* ``observed_at`` is an ISO 8601 time; without a UTC offset it is the unit's local time (its
  ``time_zone``), unless a clock change makes that time ambiguous or nonexistent; a unit without
  a time zone needs the offset. Absent: ``now``;
* ``observed_at`` is not later than ``now`` by more than :data:`MAX_AHEAD` (two clocks that
  disagree by a few seconds: such a time is taken as ``now``, since a set cannot be observed
  after it was charted), and not earlier than ``now`` by more than :data:`MAX_BACK_ENTRY`;
* the items are Appendix A charting keys with bounded values (the wire model: ``CHART_KEYS``);
* the whole set is at most :data:`MAX_SET_BYTES` of JSON (ingest's limit).

Pure: ``now`` is an argument; no I/O.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from wardwire.context import UnitContext
from wardwire.models import CHART_KEYS, ChartedSet

__all__ = [
    "MAX_AHEAD",
    "MAX_BACK_ENTRY",
    "MAX_SET_BYTES",
    "ChartEntryError",
    "UnknownBed",
    "build_charted_set",
    "explain",
    "new_set_id",
    "parse_observed_at",
]

#: a time this much later than the charting clock is that clock's ``now`` (clocks differ)
MAX_AHEAD: Final = timedelta(seconds=60)
#: the oldest back-entry: a set observed longer ago than this is refused
MAX_BACK_ENTRY: Final = timedelta(days=7)
#: ingest's limit for one charted set's payload (``ingest.chart.MAX_CHART_BYTES``)
MAX_SET_BYTES: Final = 256 * 1024


class ChartEntryError(ValueError):
    """The entry cannot become a set; the message says why, in one line."""


class UnknownBed(ChartEntryError):
    """The bed is not one of the unit's."""


def new_set_id() -> str:
    """A set id unique without coordination (a correction names it in ``supersedes``)."""
    return f"cs-{uuid.uuid4().hex}"


def parse_observed_at(text: str, time_zone: str | None, *, what: str = "observed_at"
                      ) -> datetime:
    """An ISO 8601 time; without a UTC offset the unit's local time (``time_zone``), unless a
    clock change makes it ambiguous or nonexistent; a unit without a time zone needs the offset.
    ``what`` names the input in the message (``--at`` on the command line)."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ChartEntryError(
            f"{what} {text!r} is not an ISO 8601 time (e.g. 2026-03-01T09:30+08:00, or "
            "2026-03-01T09:30 in the unit's time zone)"
        ) from None
    if at.tzinfo is not None:
        if at.utcoffset() is None:  # a tzinfo that gives no offset: not a time
            raise ChartEntryError(f"{what} {text!r} has no usable UTC offset")
        return at
    if time_zone is None:
        raise ChartEntryError(
            f"{what} {text!r} has no UTC offset and the unit names no time zone: "
            "give the offset (…+08:00, or …Z for UTC)"
        )
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ChartEntryError(f"the unit's time zone {time_zone!r} is not known here") from None
    local = at.replace(tzinfo=zone)
    if local.utcoffset() != local.replace(fold=1).utcoffset():
        # a clock change: that local time happened twice (clocks back) or never (forward)
        raise ChartEntryError(
            f"{what} {text!r} is ambiguous or does not exist in {time_zone} (a clock change): "
            "give the UTC offset"
        )
    return local


def explain(exc: ValidationError) -> str:
    """A wire model's refusal of a set, in one line (the keys listed if one is unknown)."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "set"
        lines.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    text = "; ".join(lines[:8]) + (f" (and {len(lines) - 8} more)" if len(lines) > 8 else "")
    if "not charting keys" in text:
        text += f" (charting keys: {', '.join(sorted(CHART_KEYS))})"
    return text


def build_charted_set(
    unit: UnitContext,
    *,
    bed_id: str,
    items: Mapping[str, Any],
    by: str,
    now: datetime,
    observed_at: str | datetime | None = None,
    supersedes: str | None = None,
    already_escalated: bool = False,
    set_id: str | None = None,
) -> ChartedSet:
    """The set a nurse's entry makes: ``charted_at`` = ``now`` (aware), unit and generation
    from ``unit``, validated exactly as every consumer validates it (from its JSON bytes).
    Raises :class:`UnknownBed` or :class:`ChartEntryError`."""
    if now.utcoffset() is None:
        raise ValueError("now must be an aware time")
    if not any(b.id == bed_id for b in unit.beds):
        beds = ", ".join(b.id for b in unit.beds) or "none"
        raise UnknownBed(f"bed {bed_id!r} is not a bed of {unit.site}/{unit.unit} (beds: {beds})")
    if not isinstance(items, Mapping):
        raise ChartEntryError("items must be an object of charting items, "
                              'e.g. {"avpu": "V", "crt_s": 3}')
    if observed_at is None:
        at = now
    elif isinstance(observed_at, datetime):
        if observed_at.utcoffset() is None:
            raise ChartEntryError("observed_at has no UTC offset")
        at = observed_at
    else:
        at = parse_observed_at(observed_at, unit.time_zone)
    if at > now + MAX_AHEAD:
        raise ChartEntryError(
            f"observed_at {at.isoformat()} is in the future (later than {now.isoformat()}, the "
            f"charting clock, by more than {MAX_AHEAD.total_seconds():g} s)")
    if at < now - MAX_BACK_ENTRY:
        raise ChartEntryError(
            f"observed_at {at.isoformat()} is more than {MAX_BACK_ENTRY.days} days before "
            f"{now.isoformat()}: too old for a back-entry")
    at = min(at, now)
    body = {
        "set_id": set_id or new_set_id(),
        "unit": unit.unit,
        "bed_id": bed_id,
        "by": by,
        "observed_at": at.isoformat(),
        "charted_at": now.isoformat(),
        "generation": unit.generation.value,
        "items": dict(items),
        "supersedes": supersedes,
        "already_escalated": already_escalated,
    }
    try:
        raw = json.dumps(body, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as exc:  # not JSON values, too deep
        raise ChartEntryError(f"items: not JSON values: {exc}") from None
    if len(raw.encode()) > MAX_SET_BYTES:
        raise ChartEntryError(f"the set is larger than {MAX_SET_BYTES} bytes")
    try:
        cs = ChartedSet.model_validate_json(raw)
    except ValidationError as exc:
        raise ChartEntryError(explain(exc)) from None
    if cs.supersedes is not None and cs.supersedes == cs.set_id:
        raise ChartEntryError(f"supersedes: set {cs.set_id!r} cannot supersede itself")
    return cs
