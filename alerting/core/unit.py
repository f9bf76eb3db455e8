"""The alert engine of one unit: every bed's state, driven by events with their own time.

``UnitEngine`` is pure: ``on_readings`` / ``on_device`` / ``on_gateway`` / ``on_event`` /
``on_command`` / ``on_deadline(now)`` return effects (scores and alert changes, as data) and
read no clock and no socket. The live service (``alerting.service``) and ``wardwatch replay``
(``alerting.replay``) drive this same class; ``snapshot()`` / ``restore()`` carry its whole
state across a restart.

Per-bed isolation: each bed is evaluated on its own (``Bed``); a bed that cannot be scored
raises ``cannot_score`` on itself and no other bed sees anything of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from alerting.core.bed import Bed, BedInfo, Effect, Env, ScoreEffect, Scorer
from alerting.core.config import UnitRules
from alerting.core.episode import AlertEffect
from alerting.core.items import NUMERIC_KEYS, Reading
from alerting.core.levels import load_priorities
from wardwire.models import Generation

__all__ = ["AlertEffect", "BedInfo", "Effect", "ScoreEffect", "UnitEngine", "artefact_limits"]

SNAPSHOT_VERSION = 1


def artefact_limits() -> dict[str, tuple[float, float]]:
    """The packaged artefact limits by scorer input key (``alerting/artefact_limits.toml``)."""
    import tomllib
    from importlib import resources

    raw = tomllib.loads(
        resources.files("alerting").joinpath("artefact_limits.toml").read_text(encoding="utf-8")
    )["limits"]
    return {
        NUMERIC_KEYS[code]: (float(v["low"]), float(v["high"]))
        for code, v in raw.items()
        if code in NUMERIC_KEYS
    }


class UnitEngine:
    """Every bed of one unit. Not thread-safe: one writer (the shell) drives it."""

    def __init__(
        self,
        rules: UnitRules,
        scorer: Scorer,
        *,
        unit: str,
        generation: Generation,
        tz: tzinfo | None = None,
        limits: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        zone = tz or (ZoneInfo(rules.time_zone) if rules.time_zone else UTC)
        self.env = Env(
            rules=rules,
            unit=unit,
            generation=generation,
            tz=zone,
            scorer=scorer,
            artefact_limits=dict(limits if limits is not None else artefact_limits()),
            priorities=load_priorities(),
        )
        self.beds: dict[str, Bed] = {}
        #: per gateway: the outbox_dropped count last seen (an increase is an overflow)
        self.gateway_dropped: dict[str, int] = {}
        #: beds changed since the shell last asked (what a durable shell must write)
        self.touched: set[str] = set()

    # -- beds ------------------------------------------------------------------------------
    def take_touched(self) -> set[str]:
        """The beds changed since the last call (and forget them)."""
        touched, self.touched = self.touched, set()
        return touched

    def remove_bed(self, bed_id: str, now: datetime, reason: str) -> list[Effect]:
        """The bed left the unit: its open alerts close with the reason."""
        bed = self.beds.pop(bed_id, None)
        if bed is None:
            return []
        self.touched.add(bed_id)
        out: list[Effect] = []
        for ep in bed.episodes.values():
            out += ep.resolve(now, reason)
        return out

    def set_bed(self, info: BedInfo, now: datetime) -> list[Effect]:
        """Add a bed, or change who lies in it. A new admission starts from nothing."""
        self.touched.add(info.bed_id)
        bed = self.beds.get(info.bed_id)
        if bed is None:
            self.beds[info.bed_id] = Bed(info, self.env, now)
            return self.beds[info.bed_id].evaluate(now)
        if bed.info == info:
            return []
        emptied = bed.info.occupied and not info.occupied
        if bed.info.admission != info.admission or bed.info.system != info.system or emptied:
            out: list[Effect] = []
            why = "the bed is empty" if emptied else "a new patient in the bed"
            for cond, ep in list(bed.episodes.items()):
                out += ep.resolve(now, why)
                bed.episodes.pop(cond)
            self.beds[info.bed_id] = Bed(info, self.env, now)
            return out + self.beds[info.bed_id].evaluate(now)
        bed.info = info
        return bed.evaluate(now)

    def bed(self, bed_id: str) -> Bed | None:
        return self.beds.get(bed_id)

    # -- inputs ----------------------------------------------------------------------------
    def on_readings(self, bed_id: str, readings: list[Reading], now: datetime) -> list[Effect]:
        bed = self.beds.get(bed_id)
        if bed is None:
            return []
        return self._due_first(bed, now) + bed.take(readings, now)

    def on_chart(
        self,
        bed_id: str,
        readings: list[Reading],
        now: datetime,
        *,
        by: str,
        supersedes: str | None = None,
        quiet: bool = False,
    ) -> list[Effect]:
        """A nurse's charted set for a bed (``Bed.chart``)."""
        bed = self.beds.get(bed_id)
        if bed is None:
            return []
        return self._due_first(bed, now) + bed.chart(
            readings, now, by=by, supersedes=supersedes, quiet=quiet
        )

    def on_device(self, bed_id: str, device_id: str, state: str, now: datetime) -> list[Effect]:
        bed = self.beds.get(bed_id)
        return [] if bed is None else self._due_first(bed, now) + bed.device(device_id, state, now)

    def on_gateway(
        self,
        gateway_id: str,
        reason: str,
        bed_ids: Iterable[str],
        now: datetime,
        outbox_dropped: int = 0,
    ) -> list[Effect]:
        out: list[Effect] = []
        beds = [self.beds[b] for b in bed_ids if b in self.beds]
        for bed in beds:
            out += self._due_first(bed, now) + bed.gateway(reason, gateway_id, now)
        seen = self.gateway_dropped.get(gateway_id)
        self.gateway_dropped[gateway_id] = outbox_dropped
        if seen is not None and outbox_dropped > seen:
            for bed in beds:
                out += bed.event(
                    "outbox_overflow",
                    f"gateway {gateway_id} dropped {outbox_dropped - seen} readings "
                    "(outbox full)",
                    now,
                )
        return out

    def on_event(
        self, rule: str, message: str, bed_ids: Iterable[str], now: datetime
    ) -> list[Effect]:
        """A technical event about the data path (seq_gap, outbox_reset) for these beds."""
        out: list[Effect] = []
        for b in bed_ids:
            bed = self.beds.get(b)
            if bed is not None:
                out += self._due_first(bed, now) + bed.event(rule, message, now)
        return out

    def on_command(
        self,
        action: str,
        now: datetime,
        by: str,
        *,
        bed_id: str | None = None,
        alert_id: str | None = None,
        minutes: float | None = None,
        command_id: str | None = None,
        reason: str | None = None,
        receipt: str | None = None,
        role: str | None = None,
    ) -> tuple[list[Effect], list[str]]:
        """A nurse's command for one alert (``alert_id``) or every open alert of a bed.

        Returns the effects and why anything was refused (an unknown alert, a snooze
        out of bounds)."""
        out: list[Effect] = []
        refused: list[str] = []
        if bed_id is not None and bed_id not in self.beds:
            return [], [f"unknown bed {bed_id}"]
        targets = [self.beds[bed_id]] if bed_id is not None else []
        if bed_id is None and alert_id is not None:
            targets = [
                b for b in self.beds.values()
                if any(e.alert_id == alert_id for e in b.episodes.values())
            ]
            if not targets:
                return [], [f"unknown alert {alert_id}"]
        for bed in targets:
            self.touched.add(bed.info.bed_id)
            eff, why = bed.command(
                action, now, by, alert_id=alert_id, minutes=minutes, command_id=command_id,
                reason=reason, receipt=receipt, role=role,
            )
            out += eff
            refused += why
        return out, refused

    def on_condition(
        self, rule: str, on: bool, message: str, bed_ids: Iterable[str], now: datetime
    ) -> list[Effect]:
        """A technical condition the shell observed (``pager_failed``) on these beds: raised
        while ``on``, resolved when it ends."""
        out: list[Effect] = []
        for b in bed_ids:
            bed = self.beds.get(b)
            if bed is not None:
                out += self._due_first(bed, now) + bed.condition(rule, on, message, now)
        return out

    def on_context(self, ok: bool, message: str, now: datetime) -> list[Effect]:
        """Whether the unit context could be refreshed: ``context_unavailable`` on every bed
        while it cannot (the engine goes on with the context it has)."""
        out: list[Effect] = []
        for bed in self.beds.values():
            out += self._due_first(bed, now) + bed.context(ok, message, now)
        return out

    # -- time ------------------------------------------------------------------------------
    def _due_first(self, bed: Bed, now: datetime) -> list[Effect]:
        """Timers of this bed that fell due before ``now`` happen first, at their own time."""
        self.touched.add(bed.info.bed_id)
        out: list[Effect] = []
        while bed.due is not None and bed.due < now:
            out += bed.on_time(bed.due)
        return out

    def next_deadline(self) -> datetime | None:
        dues = [b.due for b in self.beds.values() if b.due is not None]
        return min(dues) if dues else None

    def on_deadline(self, now: datetime) -> list[Effect]:
        """Run every timer due at or before ``now``, each at its own time, in time order."""
        out: list[Effect] = []
        for bed in self.beds.values():
            if bed.due is not None and bed.due <= now:
                self.touched.add(bed.info.bed_id)
            while bed.due is not None and bed.due <= now:
                out += bed.on_time(bed.due)
        return out

    # -- counters and persistence ----------------------------------------------------------
    def counters(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for bed in self.beds.values():
            for k, v in bed.counters.items():
                total[k] = total.get(k, 0) + v
        return total

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "unit": self.env.unit,
            "rules_version": self.env.rules.version,
            "beds": [b.snapshot() for b in self.beds.values()],
            "gateway_dropped": dict(self.gateway_dropped),
        }

    def restore_beds(
        self, beds: Iterable[Mapping[str, Any]], gateway_dropped: Mapping[str, int]
    ) -> None:
        """Resume from per-bed snapshots (what a durable shell keeps)."""
        for b in beds:
            bed = Bed.restore(b, self.env)
            self.beds[bed.info.bed_id] = bed
        self.gateway_dropped = dict(gateway_dropped)

    def restore(self, snap: Mapping[str, Any]) -> None:
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {snap.get('version')!r} is not {SNAPSHOT_VERSION}")
        self.beds = {}
        for b in snap["beds"]:
            bed = Bed.restore(b, self.env)
            self.beds[bed.info.bed_id] = bed
        self.gateway_dropped = dict(snap["gateway_dropped"])

