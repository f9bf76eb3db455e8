"""Charted sets, pure: validate one message from a unit's charting topic and make its point.

A nurse's ``ChartedSet`` (``{root}/chart/{site}/{unit}``, published only by the console's broker
identity) is checked against the contract and the unit context, then turned into one line of
line protocol for the no-expiry ``charted`` retention policy (the layout is
``ingest.storage``; docs/charting.md). Like :func:`ingest.core.route`, :func:`route_chart`
never raises on bad input: everything refused comes back as ``Rejected`` with a reason, which
the shell dead-letters and counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from ingest.core import Rejected
from ingest.lineproto import encode_point
from ingest.storage import CHARTED_MEASUREMENT, charted_fields, time_ns
from wardwire import topics
from wardwire.context import UnitContext
from wardwire.models import ChartedSet, validation_summary

__all__ = ["MAX_CHART_BYTES", "AcceptedChart", "chart_point", "route_chart"]

#: A charted set's payload is refused above this size before it is parsed. The largest set the
#: contract allows (every charting key, each an object of 8 entries of the longest keys and
#: strings, every character escaped as ``\\uXXXX``) is about 120 kB of JSON
#: (tests/unit/ingest_chart), so no legitimate set comes near it.
MAX_CHART_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class AcceptedChart:
    """A charted set to write: one point in the ``charted`` retention policy."""

    set_id: str
    bed_id: str
    lines: list[str]
    observed_at: datetime
    supersedes: str | None = None


def chart_point(cs: ChartedSet) -> str:
    """The line of a charted set (``ingest.storage``, "The charted record"). Raises
    ``ValueError`` for a set line protocol cannot carry (a ``by`` ending in a backslash)."""
    tags = {
        "unit": cs.unit,
        "bed": cs.bed_id,
        "set_id": cs.set_id,
        "by": cs.by,
        "generation": cs.generation.value,
        "supersedes": cs.supersedes or "",  # omitted when empty
    }
    fields: dict[str, float | int | str | bool] = dict(charted_fields(cs.items))
    fields["charted_at"] = cs.charted_at.isoformat()
    fields["already_escalated"] = cs.already_escalated
    return encode_point(CHARTED_MEASUREMENT, tags, fields, time_ns(cs.observed_at))


def route_chart(
    topic: str, payload: bytes, ward: UnitContext, *, root: str | None = None
) -> AcceptedChart | Rejected:
    """Validate one message from the unit's charting topic and turn it into its point.

    Refused (``Rejected.kind``): ``topic`` (not this unit's charting topic), ``oversized``
    (over :data:`MAX_CHART_BYTES`), ``malformed`` (fails the contract, or supersedes itself),
    ``wrong_unit`` (the set names another unit than its topic), ``unknown_bed`` (not a bed of
    the unit), ``wrong_generation`` (like observation batches: a test set on a real ward is not
    stored), ``unstorable`` (a value line protocol cannot carry).
    """
    expected = topics.charting(ward.site, ward.unit, root=root)
    if topic != expected:
        return Rejected("topic", f"charted set on {topic!r}, not the unit's topic {expected!r}")
    if len(payload) > MAX_CHART_BYTES:
        return Rejected(
            "oversized", f"{len(payload)} bytes; a charted set is at most {MAX_CHART_BYTES}"
        )
    try:
        cs = ChartedSet.model_validate_json(payload)
    except ValidationError as exc:
        why = validation_summary(exc).replace("Value error, ", "")
        return Rejected("malformed", f"{why} ({exc.error_count()} errors)")
    if cs.unit != ward.unit:
        return Rejected(
            "wrong_unit", f"set for unit {cs.unit!r} on the charting topic of {ward.unit!r}"
        )
    if not any(b.id == cs.bed_id for b in ward.beds):
        return Rejected(
            "unknown_bed", f"bed {cs.bed_id!r} is not a bed of {ward.site}/{ward.unit}"
        )
    if cs.generation != ward.generation:
        return Rejected(
            "wrong_generation",
            f"{cs.generation.value} data on a {ward.generation.value} ward is not stored",
        )
    if cs.supersedes == cs.set_id:
        return Rejected("malformed", f"supersedes: set {cs.set_id!r} cannot supersede itself")
    try:
        line = chart_point(cs)
    except ValueError as exc:
        return Rejected("unstorable", str(exc))
    return AcceptedChart(cs.set_id, cs.bed_id, [line], cs.observed_at, cs.supersedes)
