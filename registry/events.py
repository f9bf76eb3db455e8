"""Change events: the registry tells the services that a unit's context changed.

A service reading its unit context from the registry re-reads it every few seconds anyway (ingest
every 30 s, the alert engine every 10 s); a :class:`~wardwire.models.ContextChanged` on
``wm/v1/registry/{site}/{unit}/changed`` makes it re-read at once, so a child admitted to a bed
is scored from the first reading, not half a minute later.

What changed is found by comparing unit contexts, not by hooking each write: the
:class:`ContextWatcher` computes every active unit's context now and compares it with the one it
computed last. So every path that changes a context is covered the same way: an API request, the
CLI working on the database directly (another process), ``import-ward``, ``restore``. The serve
process polls after every successful write request and every few seconds.

An event carries ids only (beds, gateways, devices): never a patient pseudonym or a date of birth.
A bed whose occupant changed is named by its bed id; the service reads who is in it from the
registry, over the authenticated API.

:func:`context_change` is pure; :class:`ContextWatcher` reads the database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session

from registry.models import Site, Unit
from registry.unitcontext import unit_context
from wardwire.context import BedContext, UnitContext
from wardwire.models import ContextChanged

__all__ = ["ContextWatcher", "context_change"]


def _bed_key(bed: BedContext) -> tuple[object, ...]:
    return (bed.gateway, tuple(bed.devices), bed.admission, bed.patient, bed.dob)


def context_change(
    old: UnitContext | None, new: UnitContext | None, at: datetime
) -> ContextChanged | None:
    """What differs between two contexts of one unit, as an event (``None``: nothing).

    ``old`` None: the unit appeared; ``new`` None: it went away (retired); everything it held is
    named. A change of the unit's own settings (time zone, scoring system, generation) gives an
    event that names no bed.
    """
    if old is None and new is None:
        return None
    ref = new if new is not None else old
    assert ref is not None
    old_beds = {b.id: b for b in old.beds} if old else {}
    new_beds = {b.id: b for b in new.beds} if new else {}
    beds = sorted(
        bid for bid in old_beds.keys() | new_beds.keys()
        if bid not in old_beds or bid not in new_beds
        or _bed_key(old_beds[bid]) != _bed_key(new_beds[bid])
    )
    old_gws = {g.id for g in old.gateways} if old else set()
    new_gws = {g.id for g in new.gateways} if new else set()
    gateways = sorted(old_gws ^ new_gws)
    old_dev = {d: b.id for b in old_beds.values() for d in b.devices}
    new_dev = {d: b.id for b in new_beds.values() for d in b.devices}
    devices = sorted(d for d in old_dev.keys() | new_dev.keys() if old_dev.get(d) != new_dev.get(d))
    settings_changed = (
        old is None or new is None
        or (old.time_zone, old.scoring_system, old.generation)
        != (new.time_zone, new.scoring_system, new.generation)
    )
    if not (beds or gateways or devices or settings_changed):
        return None
    return ContextChanged(
        site=ref.site, unit=ref.unit, at=at, beds=beds, gateways=gateways, devices=devices
    )


class ContextWatcher:
    """Remembers every active unit's context and says which changed since the last look.

    ``poll(now)`` returns the events to publish. The first poll announces every unit with
    ``reason="started"`` (the registry may have changed while it was down, or a service may have
    started on a cached context): each service re-reads once.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._last: dict[tuple[str, str], UnitContext] = {}
        self._started = False

    def _contexts(self, now: datetime) -> dict[tuple[str, str], UnitContext]:
        with Session(self.engine) as session, session.begin():
            units = session.execute(
                select(Site.id, Unit.id)
                .join(Site, Site.pk == Unit.site_pk)
                .where(or_(Unit.retired_at.is_(None), Unit.retired_at > now))
                .where(or_(Site.retired_at.is_(None), Site.retired_at > now))
                .order_by(Site.id, Unit.id)
            ).all()
            return {(s, u): unit_context(session, s, u, at=now) for s, u in units}

    def poll(self, now: datetime) -> list[ContextChanged]:
        current = self._contexts(now)
        if not self._started:
            self._started = True
            self._last = current
            return [
                ContextChanged(site=s, unit=u, at=now, reason="started")
                for s, u in sorted(current)
            ]
        events = []
        for key in sorted(self._last.keys() | current.keys()):
            change = context_change(self._last.get(key), current.get(key), now)
            if change is not None:
                events.append(change)
        self._last = current
        return events


#: what the serve process hands the events to (the registry's broker connection)
Publish = Callable[[ContextChanged], None]
