"""One bed's alert state, pure: readings in, score and alert decisions out, ``now`` given.

Theory of operation
-------------------
*Readings.* Each input key holds its newest accepted reading. A device value is screened first
(``_screen``): outside the artefact limits it is rejected (the key becomes missing, never
normal); stamped too far ahead of ``now`` it is not scored and the device gets ``clock_skew``;
a device clock that stepped back is detected and its later readings are shifted onto the
engine's time line, so scoring goes on; a questionable value, or an abrupt jump, waits for a
confirming reading (``pending``). Each key stays current for its own freshness (continuous,
spot check, charted: ``items.kind_of``).

*Score.* ``evaluate`` builds the scorer inputs from current readings. While a clinical alert is
open, an input that contributed to it (sub-score > 0) and has gone missing, stale or rejected
is *held* at its last value, so its sub-score still counts, and ``parameter_lost`` is raised: a
missing item never lowers an alert.

*Onset by outcome.* Every evaluation appends the level reached to a timeline. A level is
*sustained* when, over its priority's onset window, it (or higher) covered at least
``sustained_fraction`` of the time and at least ``confirmations`` readings saw it (a spot check
or a charted set counts double). Flicker below the level for a moment does not restart
anything; a single reading or a few seconds never fill the window.

*Easing and clearing.* A lower level is accepted only after it held for ``clear_s`` on scores
that are complete (nothing missing or held) or charted; a partial score never lowers or
resolves anything.

*Timers.* ``due`` is the next time anything can change without new input (a reading going
stale, a sustained check, the clear time, an escalation, a reminder, a snooze ending, no data);
the engine calls ``on_time`` then.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from alerting.core.config import UnitRules
from alerting.core.episode import AlertEffect, Episode, alert_id_for
from alerting.core.items import (
    CONTINUOUS,
    EFFORT_TO_DISTRESS,
    ITEM_INPUTS,
    PR_KEY,
    Kind,
    Reading,
    kind_of,
)
from alerting.core.levels import LEVELS, Level, ScoreLike, level_of, priority_of_level
from wardwire.models import (
    AlertEventType,
    AlertKind,
    AlertState,
    Generation,
    Priority,
    Quality,
    Source,
)

__all__ = ["Bed", "BedInfo", "Env", "ScoreEffect"]

CLINICAL = "pews"
#: technical alerts about something that happened (not a state that can end): they latch
EVENT_RULES = frozenset({"seq_gap", "outbox_reset", "outbox_overflow"})
Scorer = Callable[..., ScoreLike]


@dataclass(frozen=True, slots=True)
class BedInfo:
    """Who lies in the bed, as far as scoring needs: the system, and an age."""

    bed_id: str
    system: str
    dob: date | None = None
    age_days: float | None = None
    age_at: datetime | None = None  # when age_days was true
    occupied: bool = True
    admission: str | None = None
    #: devices are assigned to the bed (it must send data: ``no_data`` if it does not);
    #: None: unknown (replay): expected once the bed has sent a device value
    monitored: bool | None = True


#: scorer input fields that are the child's age: a refusal naming one says what is wrong, never
#: the value (the ``alerting.pews`` names; a scorer is injected, so matched by name, not type)
_AGE_FIELDS = frozenset({"age", "age_days", "age_months", "dob", "at"})


def _refusal_text(exc: BaseException, info: BedInfo, on: date) -> str:
    """What a scorer refusal says in the bed's ``cannot_score`` alert, which goes on the wire
    (and into the engine's log): never the date of birth nor the exact age, both identify the
    child; the nurse sees which bed it is and looks the child up in the registry.

    ``on`` is the observation's ward-local date (the one the scorer compares the dob with).
    """
    if info.dob is not None and info.dob > on:
        return "the date of birth is after the observation date"
    field_name = getattr(exc, "field", None)
    if isinstance(field_name, str) and field_name.rsplit(".", 1)[-1] in _AGE_FIELDS:
        if "band" in str(exc):
            return f"the child's age is outside the {info.system} table's age bands"
        return f"the bed's age cannot be used ({field_name})"
    text = " ".join(str(exc).split())[:200] or type(exc).__name__
    return _without_dob(text, info.dob)


def _without_dob(text: str, dob: date | None) -> str:
    """``text`` with the date of birth blanked in the usual spellings (ISO, digits only, day
    and month either way round, Python's repr), whatever an injected scorer put in it."""
    if dob is None:
        return text
    y, m, d = dob.year, dob.month, dob.day
    spellings = {
        dob.isoformat(), f"{y:04d}{m:02d}{d:02d}", f"{y}/{m:02d}/{d:02d}", f"{y}.{m:02d}.{d:02d}",
        f"{d:02d}/{m:02d}/{y}", f"{m:02d}/{d:02d}/{y}", f"{d}/{m}/{y}", f"{m}/{d}/{y}",
        f"{d:02d}.{m:02d}.{y}", f"{d}.{m}.{y}", f"{d:02d}-{m:02d}-{y}", f"{y}, {m}, {d}",
        dob.strftime("%d %b %Y"), dob.strftime("%d %B %Y"), f"{d} {dob.strftime('%b')} {y}",
        f"{d} {dob.strftime('%B')} {y}", dob.strftime("%b %d, %Y"), dob.strftime("%B %d, %Y"),
    }
    for spelling in sorted(spellings, key=len, reverse=True):
        text = text.replace(spelling, "<date of birth>")
    return text


@dataclass(frozen=True, slots=True)
class Env:
    """What every bed of a unit shares."""

    rules: UnitRules
    unit: str
    generation: Generation
    tz: tzinfo
    scorer: Scorer
    artefact_limits: Mapping[str, tuple[float, float]]
    priorities: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ScoreEffect:
    """The bed's score after an evaluation (the shell publishes it, throttled)."""

    bed_id: str
    at: datetime
    result: ScoreLike
    level: Level
    held: tuple[str, ...]
    mode: str  # "provisional" | "charted"
    inputs: tuple[Reading, ...]


Effect = AlertEffect | ScoreEffect


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _dt(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s)


def _secs(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds()


def _number(v: object) -> float | None:
    """``v`` as a finite float, or ``None`` (not a number, a boolean, NaN, infinite, huge)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


@dataclass
class Bed:
    info: BedInfo
    env: Env
    started_at: datetime
    readings: dict[str, Reading] = field(default_factory=dict)
    pending: dict[str, Reading] = field(default_factory=dict)
    gone_at: dict[str, datetime] = field(default_factory=dict)
    interval_s: dict[str, float] = field(default_factory=dict)
    #: continuous device key -> when its last valid value goes stale (stale_parameter)
    stale_at: dict[str, datetime] = field(default_factory=dict)
    contributors: dict[str, Reading] = field(default_factory=dict)
    segments: list[tuple[datetime, int]] = field(default_factory=list)
    arrivals: list[tuple[datetime, int, int]] = field(default_factory=list)
    last_data_at: datetime | None = None
    below_since: datetime | None = None
    below_max: int = 0
    episodes: dict[str, Episode] = field(default_factory=dict)
    device_offset_s: dict[str, float] = field(default_factory=dict)
    device_last_at: dict[str, datetime] = field(default_factory=dict)
    paused: bool = False
    disagreeing: bool = False
    counters: dict[str, int] = field(default_factory=dict)
    due: datetime | None = None
    last_eval: datetime | None = None
    #: input key -> since when it is held for the open alert (parameter_lost after a while)
    held_since: dict[str, datetime] = field(default_factory=dict)
    #: episodes raised on this bed so far (part of each new alert id)
    raised_n: int = 0
    #: a nurse resolved the clinical alert: (level rank, until) it is not raised again at
    #: that level or below
    suppressed: tuple[int, datetime] | None = None
    #: technical conditions a nurse resolved: not raised again until the condition ends
    silenced: set[str] = field(default_factory=set)
    #: the AVPU charted before the current one (NPEWS: only a change is a trigger)
    avpu_prev: str | None = None
    #: input key -> until when its current reading is fresh (derived: kept with ``readings``)
    expires: dict[str, datetime] = field(default_factory=dict)

    # -- readings --------------------------------------------------------------------------
    def chart(
        self,
        readings: list[Reading],
        now: datetime,
        *,
        by: str,
        supersedes: str | None = None,
        quiet: bool = False,
    ) -> list[Effect]:
        """A nurse's charted set. A correction (``supersedes``) first takes back what the
        superseded set still holds; ``quiet`` (a back-entered set already acted on, NPEWS
        C3.9): scored, but a raise or a rise it causes is acknowledged at once by the nurse
        instead of notifying."""
        if supersedes is not None:
            for key, r in list(self.readings.items()):
                if r.origin == supersedes:
                    del self.readings[key]
                    self.expires.pop(key, None)
        out = self.take(readings, now)
        ep = self.episodes.get(CLINICAL)
        if quiet and ep is not None and ep.state is AlertState.ACTIVE and any(
            isinstance(e, AlertEffect) and e.alert.condition == CLINICAL
            and e.event in (AlertEventType.RAISED, AlertEventType.WORSENED)
            for e in out
        ):
            out += ep.acknowledge(
                now, f"{by} (already escalated)",
                self.env.rules.reassess_s(self.info.system, ep.level),
            )
            self._set_due(now)
        return out

    def take(self, readings: list[Reading], now: datetime) -> list[Effect]:
        """New readings at ``now``; then the bed is evaluated."""
        out: list[Effect] = []
        weight = 0
        charted = False
        for r in readings:
            r2, effects = self._screen(r, now)
            out += effects
            if r2 is None:
                continue
            if r2.key == "avpu" and r2.value is not None:
                cur = self.readings.get("avpu")
                if cur != r2 and (cur is None or cur.at <= r2.at):  # not a redelivery
                    self.avpu_prev = None if cur is None else str(cur.value)
            accepted = self._store(r2, now)
            if accepted and r2.value is not None:
                weight = max(weight, 1 if kind_of(r2.key, r2.source) is Kind.CONTINUOUS else 2)
                if r2.source is Source.ENTERED:
                    charted = True
                elif r2.key != "oxygen" and not r2.key.startswith("oxygen."):
                    t = min(r2.at, now)  # a backlog value counts from when it was measured
                    self.last_data_at = t if self.last_data_at is None else max(
                        self.last_data_at, t
                    )
        if self.paused and self.last_data_at is not None and self.last_data_at >= now:
            self.paused = False
            out += self._tech("monitoring_paused", False, now, "data again")
        if charted:
            ep = self.episodes.get(CLINICAL)
            if ep is not None:
                ep.reassessed(now, self.env.rules.reassess_s(self.info.system, ep.level))
        out += self.evaluate(now, weight, charted)
        return out

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    def _screen(self, r: Reading, now: datetime) -> tuple[Reading | None, list[Effect]]:
        """Device clock and artefact checks; ``None``: not taken at all."""
        out: list[Effect] = []
        if r.retimed:
            self._count("retimed")
            if r.device_id is not None and r.source is Source.MEASURED:
                out += self._tech(
                    "clock_skew", True, now,
                    f"{r.device_id}: clock implausible, values re-timed by the gateway: "
                    "not scored",
                    device=r.device_id,
                )
            return None, out
        rules = self.env.rules
        dev = r.device_id
        ahead = rules.freshness.max_ahead_s
        if _secs(r.at, now) > ahead:
            # a value from the future would stay "newest" until its time came and freeze the
            # key (older readings never overwrite): never taken, whoever sent it
            self._count("future")
            if dev is not None:
                out += self._tech(
                    "clock_skew", True, now,
                    f"{dev}: values stamped {_secs(r.at, now):.0f} s ahead: not scored",
                    device=dev,
                )
            return None, out
        if r.source is Source.MEASURED and dev is not None:
            # ``device_last_at`` is the device's own clock (raw) per device and key (an NIBP
            # is stamped when the cuff measured, legitimately before the HR sent with it);
            # ``device_offset_s`` is what we add to put the device's readings on the engine's
            # time line after its clock stepped back.
            off = self.device_offset_s.get(dev, 0.0)
            last = self.device_last_at.get(f"{dev}/{r.key}")
            if last is not None and _secs(last, r.at) > ahead:
                # the device's clock stepped back: put its readings on our time line
                off = _secs(now, r.at)
                self.device_offset_s[dev] = off
                self._count("clock_step")
                out += self._tech(
                    "clock_skew", True, now,
                    f"{dev}: clock stepped back {_secs(last, r.at):.0f} s; re-timed on arrival",
                    device=dev,
                )
            elif off != 0.0 and abs(_secs(r.at, now)) <= ahead:
                off = 0.0  # the device's clock is right again
                self.device_offset_s.pop(dev, None)
                out += self._tech("clock_skew", False, now, "clock right again", device=dev)
            elif off == 0.0 and f"clock_skew:{dev}" in self.episodes:
                out += self._tech("clock_skew", False, now, "clock right again", device=dev)
            self.device_last_at[f"{dev}/{r.key}"] = r.at
            if off != 0.0:
                at = min(r.at + timedelta(seconds=off), now)
                r = Reading(r.key, r.value, at, r.source, r.device_id, r.quality, r.retimed)
        lim = self.env.artefact_limits.get(r.key)
        if r.value is not None and r.source is Source.MEASURED and (
            lim is not None or r.key in CONTINUOUS
        ):
            # a device value for a numeric key that is not a finite number (text, a boolean,
            # NaN, an int too large for a float) is an artefact like one out of the limits
            v = _number(r.value)
            if v is None or (lim is not None and not lim[0] <= v <= lim[1]):
                self._count("artefact")
                r = Reading(r.key, None, r.at, r.source, r.device_id, Quality.INVALID)
        return r, out

    def _store(self, r: Reading, now: datetime) -> bool:
        """Take a screened reading; True when it became the key's current value."""
        cur = self.readings.get(r.key)
        if r == cur or r == self.pending.get(r.key):
            return False  # the same reading again (a redelivery): no new evidence
        if cur is not None and cur.at > r.at:
            return False  # older than what we have
        gone = self.gone_at.get(r.key)
        if gone is not None and gone > r.at:
            return False
        if r.value is None:
            self.readings.pop(r.key, None)
            self.expires.pop(r.key, None)
            self.pending.pop(r.key, None)
            self.gone_at[r.key] = r.at
            return True
        self.gone_at.pop(r.key, None)
        if r.source is Source.MEASURED and r.key in CONTINUOUS:
            if self._needs_confirmation(r, cur):
                return False
            if cur is not None and r.at > cur.at:
                # the sampling interval, learnt slowly upwards: one gap in the data (a
                # disconnection) must not stretch a 1 Hz device's freshness to the gap's length
                gap, prev = _secs(r.at, cur.at), self.interval_s.get(r.key)
                self.interval_s[r.key] = gap if prev is None else min(gap, 2 * prev)
            self.stale_at[r.key] = r.at + timedelta(seconds=self._stale_after(r.key))
        self.readings[r.key] = r
        self.expires[r.key] = r.at + timedelta(seconds=self._limit(r))
        return True

    def _needs_confirmation(self, r: Reading, cur: Reading | None) -> bool:
        rules = self.env.rules.artefact
        jump = rules.jump.get(r.key)
        pend = self.pending.get(r.key)
        assert isinstance(r.value, float | int)
        if pend is not None:
            assert isinstance(pend.value, float | int)
            del self.pending[r.key]
            close = jump is None or abs(float(r.value) - float(pend.value)) <= jump
            if close and _secs(r.at, pend.at) <= rules.confirm_s:
                return False  # confirmed: both were real
            self._count("unconfirmed")
        questionable = r.quality is Quality.QUESTIONABLE
        abrupt = (
            jump is not None
            and cur is not None
            and isinstance(cur.value, float | int)
            and abs(float(r.value) - float(cur.value)) > jump
            and _secs(r.at, cur.at) <= rules.jump_within_s
        )
        if questionable or abrupt:
            self.pending[r.key] = r
            return True
        return False

    # -- freshness and inputs --------------------------------------------------------------
    def _limit(self, r: Reading) -> float:
        f = self.env.rules.freshness
        kind = kind_of(r.key, r.source)
        if kind is Kind.CONTINUOUS:
            return self._stale_after(r.key)
        return f.spot_s if kind is Kind.SPOT else f.charted_s

    def _stale_after(self, key: str) -> float:
        """How long a continuous device parameter stays current (its freshness)."""
        f = self.env.rules.freshness
        return max(f.continuous_s, f.interval_factor * self.interval_s.get(key, 0.0))

    def _inputs(self, now: datetime) -> tuple[dict[str, object], list[Reading], list[str]]:
        exp = self.expires
        # fresh until (not at) its deadline: the deadline is when the engine looks again
        cur = {k: r for k, r in self.readings.items() if now < exp[k]}
        hr, pr = cur.pop("hr_bpm", None), cur.pop(PR_KEY, None)
        disagree = False
        if hr is not None and pr is not None and hr.source is pr.source is Source.MEASURED:
            a, b = float(hr.value), float(pr.value)  # type: ignore[arg-type]
            if abs(a - b) > self.env.rules.artefact.hr_pr_disagreement * max(a, b, 1.0):
                disagree = True
                hr = None
        if disagree and not self.disagreeing:
            self._count("hr_pr_disagree")
        self.disagreeing = disagree
        if hr is None and pr is not None and not disagree:
            hr = Reading("hr_bpm", pr.value, pr.at, pr.source, pr.device_id, pr.quality)
        if hr is not None:
            cur["hr_bpm"] = hr
        parts = {k: cur.pop(k) for k in list(cur) if k.startswith("oxygen.")}
        if "oxygen.device" in parts and (
            "oxygen" not in cur or cur["oxygen"].at < parts["oxygen.device"].at
        ):
            dev = parts["oxygen.device"]
            ox: dict[str, object] = {"device": dev.value}
            for k in ("flow_lpm", "fio2_pct"):
                p = parts.get(f"oxygen.{k}")
                if p is not None and p.at >= dev.at:  # charted with (or after) the device
                    ox[k] = p.value
            cur["oxygen"] = Reading("oxygen", ox, dev.at, dev.source, dev.device_id)
        system = self.info.system
        if system == "uk_npews" and "resp_effort" in cur and "resp_distress" not in cur:
            e = cur.pop("resp_effort")
            cur["resp_distress"] = Reading(
                "resp_distress", EFFORT_TO_DISTRESS.get(str(e.value), e.value), e.at, e.source
            )
        if system == "uk_npews" and "avpu" in cur and cur["avpu"].value == self.avpu_prev:
            # NPEWS triggers on AVPU *newly* V, P or U (docs/clinical/uk_npews.md): the same
            # value charted again is no new trigger; the first charted value is (a change)
            del cur["avpu"]
        if system == "news2" and "avpu" in cur and "consciousness" not in cur:
            a_ = cur["avpu"]
            if a_.value in ("A", "V", "P", "U"):
                cur["consciousness"] = Reading("consciousness", a_.value, a_.at, a_.source)
        held: list[str] = []
        is_open = CLINICAL in self.episodes
        bridge = self.env.rules.onset.bridge_s
        for k in [k for k in self.held_since if k not in self.contributors]:
            del self.held_since[k]
        for k, r in self.contributors.items():
            if k in cur:
                self.held_since.pop(k, None)
                continue
            since = self.held_since.setdefault(k, now)  # missing since
            # an open alert holds for as long as it takes; a condition still building up
            # bridges only a short gap (a probe reading nothing now and then)
            if is_open or _secs(now, since) < bridge:
                cur[k] = r
                held.append(k)
        inputs = {k: r.value for k, r in cur.items()}
        return inputs, list(cur.values()), sorted(held)

    def _age(self, now: datetime) -> dict[str, Any] | None:
        i = self.info
        if i.dob is not None:
            return {"dob": i.dob, "at": now.astimezone(self.env.tz)}
        if i.age_days is not None:
            days = i.age_days + (_secs(now, i.age_at) / 86400 if i.age_at else 0.0)
            return {"age_days": max(days, 0.0) if i.age_days >= 0 else i.age_days}
        return None

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, now: datetime, weight: int = 0, charted: bool = False) -> list[Effect]:
        out: list[Effect] = []
        self.last_eval = now
        if not self.info.occupied:
            self._set_due(now)
            return out
        out += self._no_data(now)
        age = self._age(now)
        out += self._tech("no_dob", age is None, now, "no date of birth: the bed cannot be scored")
        if age is None:
            self._set_due(now)
            return out
        inputs, used, held = self._inputs(now)
        try:
            result = self.env.scorer(self.info.system, inputs, **age)
            lv = level_of(result, self.env.priorities)
        except Exception as exc:  # noqa: BLE001 - the per-bed boundary: alerted on this bed
            self._count("cannot_score")
            text = _refusal_text(exc, self.info, now.astimezone(self.env.tz).date())
            out += self._tech("cannot_score", True, now, f"not scored: {text}")
            self._segment(now, -1)
            self._set_due(now)
            return out
        out += self._tech("cannot_score", False, now, "scored again")
        was_scored = bool(self.segments) and self.segments[-1][1] >= 0
        self._segment(now, lv.rank)
        if not weight and not was_scored and used:
            # values taken while the bed could not be scored (no date of birth, a scorer
            # refusal) count as arriving now, when they are first scored
            weight = max(1 if kind_of(r.key, r.source) is Kind.CONTINUOUS else 2 for r in used)
        if weight and lv.rank > 0:
            self.arrivals.append((now, lv.rank, weight))
        if used:  # a score of nothing is no score: never published as a total of 0
            out.append(
                ScoreEffect(
                    self.info.bed_id, now, result, lv, tuple(held),
                    "charted" if charted else "provisional", tuple(used),
                )
            )
        out += self._clinical(now, result, lv, held, charted, used)
        lost = sorted(
            k for k, t in self.held_since.items()
            if k in held and _secs(now, t) >= self.env.rules.freshness.lost_after_s
        ) if CLINICAL in self.episodes else []
        if lost or not held:
            out += self._tech(
                "parameter_lost", bool(lost), now,
                f"lost, held at the last value for the open alert: {', '.join(lost)}",
            )
        out += self._stale(now)
        self._set_due(now)
        return out

    def _segment(self, now: datetime, rank: int) -> None:
        if not self.segments or self.segments[-1][1] != rank:
            self.segments.append((now, rank))
        horizon = now - timedelta(seconds=self._max_window())
        while len(self.segments) > 1 and self.segments[1][0] <= horizon:
            self.segments.pop(0)
        while self.arrivals and self.arrivals[0][0] < horizon:
            self.arrivals.pop(0)

    def _max_window(self) -> float:
        o = self.env.rules.onset
        return max(o.high_s, o.medium_s, o.low_s)

    def _priority(self, rank: int) -> Priority | None:
        words = LEVELS[self.info.system]
        if rank < 0 or rank >= len(words):
            return None
        return priority_of_level(self.info.system, words[rank], self.env.priorities)

    def _shown(self, rank: int) -> bool:
        p = self._priority(rank)
        return p is not None and p.rank >= self.env.rules.min_priority.rank

    def _covered(self, rank: int, now: datetime, window: float) -> float:
        start = now - timedelta(seconds=window)
        total = 0.0
        segs = self.segments
        for i, (t, r) in enumerate(segs):
            end = segs[i + 1][0] if i + 1 < len(segs) else now
            if r >= rank and end > start:
                total += _secs(end, max(t, start))
        return total

    def _deficit(self, rank: int, now: datetime) -> float:
        """Seconds of sustained time still missing for ``rank`` (0: sustained, if confirmed)."""
        o = self.env.rules.onset
        p = self._priority(rank)
        assert p is not None
        w = o.window(p)
        if w <= 0:
            return 0.0
        return max(0.0, o.sustained_fraction * w - self._covered(rank, now, w))

    def _confirmed(self, rank: int, now: datetime) -> bool:
        o = self.env.rules.onset
        p = self._priority(rank)
        assert p is not None
        w = o.window(p)
        if w <= 0:
            return True
        start = now - timedelta(seconds=w)
        n = 0
        for t, r, wt in reversed(self.arrivals):
            if t < start:
                break
            if r >= rank:
                n += wt
                if n >= o.confirmations:
                    return True
        return False

    def _sustained_level(self, now: datetime, current: int, floor: int) -> int | None:
        """The highest shown rank in (floor, current] that is sustained now."""
        for rank in range(current, floor, -1):
            if self._shown(rank) and self._deficit(rank, now) <= 0 and self._confirmed(rank, now):
                return rank
        return None

    def _message(self, result: ScoreLike, lv: Level, held: list[str]) -> str:
        parts = [f"{result.system} {result.total} ({lv.word})"]
        missing = [m for m in result.missing]
        if missing:
            parts.append(f"partial: missing {', '.join(missing)}")
        if held:
            parts.append(f"held: {', '.join(held)}")
        return "; ".join(parts)

    def _clinical(
        self,
        now: datetime,
        result: ScoreLike,
        lv: Level,
        held: list[str],
        charted: bool,
        used: list[Reading],
    ) -> list[Effect]:
        out: list[Effect] = []
        ep = self.episodes.get(CLINICAL)
        held_items = tuple(
            sorted(
                item
                for item, keys in ITEM_INPUTS.get(self.info.system, {}).items()
                if any(k in held for k in keys)
            )
        )
        missing = tuple(sorted(set(result.missing) | set(held_items)))
        complete = result.complete and not held_items
        msg = self._message(result, lv, held)
        floor = ep.level_rank if ep is not None else 0
        words = LEVELS[self.info.system]
        rank = self._sustained_level(now, lv.rank, floor) if lv.rank > floor else None
        if rank is not None and ep is None and self.suppressed is not None:
            s_rank, s_until = self.suppressed
            if now < s_until and rank <= s_rank:
                rank = None  # a nurse resolved it with a reason; only worse raises again
            elif now >= s_until:
                self.suppressed = None
        if rank is not None:
            prio = self._priority(rank)
            assert prio is not None
            if ep is None:
                ep = Episode(
                    alert_id=self._new_alert_id(CLINICAL, now),
                    unit=self.env.unit,
                    bed_id=self.info.bed_id,
                    kind=AlertKind.CLINICAL,
                    condition=CLINICAL,
                    rule=self.info.system,
                    priority=prio,
                    level=words[rank],
                    level_rank=rank,
                    raised_at=now,
                    message=msg,
                    generation=self.env.generation,
                    latching=True,
                    recipient_role=self.env.rules.escalation.role(prio, 0, True),
                    total=result.total,
                    complete=complete,
                    missing=missing,
                    held=held_items,
                )
                self.episodes[CLINICAL] = ep
                out.append(ep._effect(AlertEventType.RAISED, now))
            else:
                ep.show(now, message=msg, total=result.total, complete=complete,
                        missing=missing, held=held_items)
                out += ep.worsen(now, words[rank], rank, prio)
            self.below_since = None
        elif ep is not None:
            trusted = complete or charted
            if lv.rank < ep.level_rank:
                if trusted:
                    if self.below_since is None:
                        self.below_since, self.below_max = now, lv.rank
                    self.below_max = max(self.below_max, lv.rank)
                else:
                    self.below_since = None
            else:
                self.below_since = None
                out += ep.condition_on(now)
            out += ep.show(now, message=msg, total=result.total, complete=complete,
                           missing=missing, held=held_items)
            if self.below_since is not None and _secs(now, self.below_since) >= (
                self.env.rules.clear.clear_s
            ):
                target = self.below_max
                self.below_since = None
                if self._shown(target):
                    prio = self._priority(target)
                    assert prio is not None
                    out += ep.ease(now, words[target], target, prio)
                else:
                    out += ep.condition_off(now, "score below the alert level on complete scores")
                    if ep.state is AlertState.RESOLVED:
                        self._close(CLINICAL)
        ep = self.episodes.get(CLINICAL)
        if ep is not None or self._shown(lv.rank):  # open, or building up to a raise
            self._contribute(result, used, held)
        elif not held:
            self.contributors.clear()
            self.held_since.clear()
        return out

    def _contribute(self, result: ScoreLike, used: list[Reading], held: list[str]) -> None:
        """Remember the values that gave the open alert its sub-scores (to hold them).

        ``used`` are the scorer inputs as scored, derived ones included (the oxygen object
        built from its charted parts, NPEWS distress from effort, HR from the pulse rate), so
        every item can be held, not only those read straight off one reading."""
        items = ITEM_INPUTS.get(self.info.system, {})
        by_key = {r.key: r for r in used}
        for item, sub in result.items.items():
            for k in items.get(item, ()):
                if k in held:
                    continue  # held: keep the value held
                r = by_key.get(k)
                if sub is not None and sub > 0 and r is not None and r.value is not None:
                    self.contributors[k] = r
                elif sub is not None and sub == 0:
                    self.contributors.pop(k, None)

    def _new_alert_id(self, condition: str, now: datetime) -> str:
        """Deterministic and unique on the bed: the same condition raised again at the same
        instant (after a resolve) gets a new id."""
        self.raised_n += 1
        return alert_id_for(self.env.unit, self.info.bed_id, f"{condition}#{self.raised_n}", now)

    def _close(self, condition: str) -> None:
        self.episodes.pop(condition, None)
        if condition == CLINICAL:
            self.contributors.clear()
            self.held_since.clear()
            self.below_since = None

    # -- technical alerts ------------------------------------------------------------------
    def _tech(
        self, rule: str, on: bool, now: datetime, message: str, device: str | None = None
    ) -> list[Effect]:
        cond = rule if device is None else f"{rule}:{device}"
        ep = self.episodes.get(cond)
        if ep is None:
            if not on:
                self.silenced.discard(cond)
            if not on or not self.info.occupied or cond in self.silenced:
                return []
            ep = Episode(
                alert_id=self._new_alert_id(cond, now),
                unit=self.env.unit,
                bed_id=self.info.bed_id,
                kind=AlertKind.TECHNICAL,
                condition=cond,
                rule=rule,
                priority=self.env.rules.technical_priority(rule),
                level=rule,
                level_rank=0,
                raised_at=now,
                message=message,
                generation=self.env.generation,
                latching=rule in EVENT_RULES,
                recipient_role=self.env.rules.escalation.technical_role,
                device_id=device,
            )
            self.episodes[cond] = ep
            return [ep._effect(AlertEventType.RAISED, now)]
        if on:
            return [*ep.condition_on(now), *ep.show(now, message=message)]
        out: list[Effect] = list(ep.condition_off(now, message))
        if ep.closed:
            self._close(cond)
        return out

    def _no_data(self, now: datetime) -> list[Effect]:
        since = self.last_data_at or self.started_at
        expected = self.info.monitored
        if expected is None:
            expected = self.last_data_at is not None
        if self.stale_at:  # a bed that streams continuous values: those are its data
            fresh = any(now < t for t in self.stale_at.values())
        else:  # spot checks only (an NIBP every 15 minutes is fresh for hours)
            fresh = any(
                r.source is Source.MEASURED and now < self.expires[k]
                for k, r in self.readings.items()
            )
        silent = (
            expected
            and not fresh
            and not self.paused
            and _secs(now, since) >= self.env.rules.freshness.no_data_s
        )
        what = "no usable device value" + (
            f" since {since.isoformat()}" if self.last_data_at else " since monitoring started"
        )
        return self._tech("no_data", silent, now, what)

    def _stale(self, now: datetime) -> list[Effect]:
        if "no_data" in self.episodes or self.paused:
            return self._tech("stale_parameter", False, now, "")
        stale = sorted(
            k
            for k, t in self.stale_at.items()
            if now >= t and k not in self.contributors
        )
        return self._tech("stale_parameter", bool(stale), now, f"no current {', '.join(stale)}")

    # -- statuses, events, commands --------------------------------------------------------
    def device(self, device: str, state: str, now: datetime) -> list[Effect]:
        if self.paused and state in ("disconnected", "no_signal", "error"):
            return []
        out = self._tech("device_offline", state in ("disconnected", "error"), now,
                         f"{device}: {state}", device=device)
        out += self._tech("no_signal", state == "no_signal", now, f"{device}: no signal",
                          device=device)
        out += self._tech("low_battery", state == "low_battery", now, f"{device}: battery low",
                          device=device)
        self._set_due(now)
        return out

    def gateway(self, reason: str, gateway: str, now: datetime) -> list[Effect]:
        out: list[Effect] = []
        if reason == "lwt":
            out += self._tech("gateway_offline", True, now, f"gateway {gateway} lost (no goodbye)")
        elif reason == "shutdown":
            self.paused = True
            out += self._tech("gateway_offline", False, now, "shut down in order")
            out += self._tech("no_data", False, now, "monitoring paused")
            out += self._tech(
                "monitoring_paused", True, now,
                f"gateway {gateway} shut down in order: this bed is not monitored",
            )
            for cond in [c for c in self.episodes if ":" in c]:
                out += self._tech(cond.split(":")[0], False, now, "gateway shut down",
                                  device=cond.split(":", 1)[1])
        else:
            out += self._tech("gateway_offline", False, now, f"gateway {gateway} back")
            if self.paused:
                self.paused = False
                self.started_at = max(self.started_at, now)
                out += self._tech("monitoring_paused", False, now, "gateway back")
        self._set_due(now)
        return out

    def condition(self, rule: str, on: bool, message: str, now: datetime) -> list[Effect]:
        out = self._tech(rule, on, now, message)
        self._set_due(now)
        return out

    def context(self, ok: bool, message: str, now: datetime) -> list[Effect]:
        out = self._tech("context_unavailable", not ok, now, message)
        self._set_due(now)
        return out

    def event(self, rule: str, message: str, now: datetime) -> list[Effect]:
        """A technical event that already happened (latches until acknowledged)."""
        out = self._tech(rule, True, now, message)
        out += self._tech(rule, False, now, message)
        self._set_due(now)
        return out

    def command(
        self,
        action: str,
        now: datetime,
        by: str,
        *,
        alert_id: str | None = None,
        minutes: float | None = None,
        command_id: str | None = None,
        reason: str | None = None,
        receipt: str | None = None,
        role: str | None = None,
    ) -> tuple[list[Effect], list[str]]:
        """Apply a nurse's command; returns the effects and the reasons of what was refused.

        Idempotent by ``command_id``: a command an alert has already applied changes nothing
        (a redelivery)."""
        out: list[Effect] = []
        refused: list[str] = []
        rules = self.env.rules
        esc = rules.escalation
        for cond, ep in list(self.episodes.items()):
            if alert_id is not None and ep.alert_id != alert_id:
                continue
            if ep.state is AlertState.RESOLVED:
                continue
            if command_id is not None and command_id in ep.commands:
                continue
            clinical = ep.kind is AlertKind.CLINICAL
            # an acknowledged technical alert reminds too while its condition lasts (a
            # silent monitor must not be forgotten): the default row, by priority
            reassess = (
                rules.reassess_s(self.info.system, ep.level)
                if clinical
                else rules.reassess_s("default", ep.priority.value)
            )
            if action == "ack":
                out += ep.acknowledge(now, by, reassess)
            elif action == "snooze":
                longest = rules.snooze.longest_min(ep.priority)
                if minutes is None or not 0 < minutes <= longest:  # NaN fails this too
                    refused.append(
                        f"{ep.alert_id}: snooze of {minutes} min refused for a "
                        f"{ep.priority.value} alert (at most {longest:g} min)"
                    )
                    continue
                out += ep.snooze(now, by, minutes * 60)
            elif action == "escalate":
                out += ep.escalate(
                    now, esc.role(ep.priority, ep.escalation_step + 1, clinical), by
                )
            elif action == "resolve":
                if not reason:
                    refused.append(f"{ep.alert_id}: a resolve needs a reason")
                    continue
                out += ep.resolve_by(now, by, reason)
                if clinical:
                    # not raised again at this level or below until its reassessment is due
                    self.suppressed = (ep.level_rank, now + timedelta(seconds=reassess))
                else:
                    self.silenced.add(cond)  # until its condition ends
            elif action == "receipt":
                if receipt not in ("received", "viewed", "accepted"):
                    refused.append(f"{ep.alert_id}: unknown receipt {receipt!r}")
                    continue
                out += ep.receipt(now, by, receipt, role, reassess)
            else:
                refused.append(f"unknown command {action!r}")
                break
            if command_id is not None:
                ep.commands.append(command_id)
            if ep.closed:
                self._close(cond)
        self._set_due(now)
        return out, refused

    # -- time ------------------------------------------------------------------------------
    def on_time(self, now: datetime) -> list[Effect]:
        if self.due is None or self.due > now:
            return []
        out = self.evaluate(now)
        esc = self.env.rules.escalation
        for cond, ep in list(self.episodes.items()):
            clinical = ep.kind is AlertKind.CLINICAL
            out += ep.on_time(
                now,
                esc.next_after(ep.priority, ep.escalation_step, clinical),
                esc.role(ep.priority, ep.escalation_step + 1, clinical),
            )
            if ep.state is AlertState.RESOLVED:
                self._close(cond)
        self._set_due(now)
        return out

    def _set_due(self, now: datetime) -> None:
        cands: list[datetime] = list(self.expires.values())
        cands += self.stale_at.values()
        for r in self.pending.values():
            cands.append(r.at + timedelta(seconds=self.env.rules.artefact.confirm_s))
        if self.occupied_and_monitored():
            since = self.last_data_at or self.started_at
            cands.append(since + timedelta(seconds=self.env.rules.freshness.no_data_s))
        ep = self.episodes.get(CLINICAL)
        floor = ep.level_rank if ep is not None else 0
        current = self.segments[-1][1] if self.segments else -1
        for rank in range(current, floor, -1):
            if self._shown(rank):
                d = self._deficit(rank, now)
                if d <= 0 and not self._confirmed(rank, now):
                    continue  # covered, unconfirmed: only a new reading can raise it
                cands.append(now + timedelta(seconds=max(d, 1.0)))
                break
        if self.below_since is not None:
            cands.append(self.below_since + timedelta(seconds=self.env.rules.clear.clear_s))
        for t in self.held_since.values():
            cands.append(t + timedelta(seconds=self.env.rules.freshness.lost_after_s))
            cands.append(t + timedelta(seconds=self.env.rules.onset.bridge_s))
        esc = self.env.rules.escalation
        for e in self.episodes.values():
            d2 = e.due(esc.next_after(e.priority, e.escalation_step,
                                      e.kind is AlertKind.CLINICAL))
            if d2 is not None:
                cands.append(d2)
        later = [c for c in cands if c > now]
        self.due = min(later) if later else None

    def occupied_and_monitored(self) -> bool:
        return self.info.occupied and not self.paused

    # -- persistence -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        def rd(r: Reading) -> dict[str, Any]:
            return {
                "key": r.key, "value": r.value, "at": r.at.isoformat(), "source": r.source.value,
                "device_id": r.device_id, "quality": r.quality.value, "origin": r.origin,
            }

        i = self.info
        return {
            "info": {
                "bed_id": i.bed_id, "system": i.system,
                "dob": i.dob.isoformat() if i.dob else None, "age_days": i.age_days,
                "age_at": _iso(i.age_at), "occupied": i.occupied, "admission": i.admission,
                "monitored": i.monitored,
            },
            "started_at": self.started_at.isoformat(),
            "readings": [rd(r) for r in self.readings.values()],
            "pending": [rd(r) for r in self.pending.values()],
            "contributors": [rd(r) for r in self.contributors.values()],
            "gone_at": {k: v.isoformat() for k, v in self.gone_at.items()},
            "interval_s": dict(self.interval_s),
            "stale_at": {k: v.isoformat() for k, v in self.stale_at.items()},
            "segments": [[t.isoformat(), r] for t, r in self.segments],
            "arrivals": [[t.isoformat(), r, w] for t, r, w in self.arrivals],
            "last_data_at": _iso(self.last_data_at),
            "below_since": _iso(self.below_since),
            "below_max": self.below_max,
            "episodes": [e.to_dict() for e in self.episodes.values()],
            "device_offset_s": dict(self.device_offset_s),
            "device_last_at": {k: v.isoformat() for k, v in self.device_last_at.items()},
            "paused": self.paused,
            "disagreeing": self.disagreeing,
            "counters": dict(self.counters),
            "due": _iso(self.due),
            "raised_n": self.raised_n,
            "suppressed": None if self.suppressed is None else [
                self.suppressed[0], self.suppressed[1].isoformat()
            ],
            "silenced": sorted(self.silenced),
            "avpu_prev": self.avpu_prev,
            "held_since": {k: v.isoformat() for k, v in self.held_since.items()},
            "last_eval": _iso(self.last_eval),
        }

    @classmethod
    def restore(cls, snap: Mapping[str, Any], env: Env) -> Bed:
        def rd(d: Mapping[str, Any]) -> Reading:
            return Reading(
                d["key"], d["value"], datetime.fromisoformat(d["at"]), Source(d["source"]),
                d["device_id"], Quality(d["quality"]), origin=d.get("origin"),
            )

        i = snap["info"]
        info = BedInfo(
            i["bed_id"], i["system"], date.fromisoformat(i["dob"]) if i["dob"] else None,
            i["age_days"], _dt(i["age_at"]), i["occupied"], i["admission"], i["monitored"],
        )
        bed = cls(info, env, datetime.fromisoformat(snap["started_at"]))
        bed.readings = {r.key: r for r in map(rd, snap["readings"])}
        bed.interval_s = dict(snap["interval_s"])
        bed.expires = {
            k: r.at + timedelta(seconds=bed._limit(r)) for k, r in bed.readings.items()
        }
        bed.pending = {r.key: r for r in map(rd, snap["pending"])}
        bed.contributors = {r.key: r for r in map(rd, snap["contributors"])}
        bed.gone_at = {k: datetime.fromisoformat(v) for k, v in snap["gone_at"].items()}
        bed.interval_s = dict(snap["interval_s"])
        bed.stale_at = {k: datetime.fromisoformat(v) for k, v in snap["stale_at"].items()}
        bed.segments = [(datetime.fromisoformat(t), r) for t, r in snap["segments"]]
        bed.arrivals = [(datetime.fromisoformat(t), r, w) for t, r, w in snap["arrivals"]]
        bed.last_data_at = _dt(snap["last_data_at"])
        bed.below_since = _dt(snap["below_since"])
        bed.below_max = snap["below_max"]
        bed.episodes = {e.condition: e for e in map(Episode.from_dict, snap["episodes"])}
        bed.device_offset_s = dict(snap["device_offset_s"])
        bed.device_last_at = {
            k: datetime.fromisoformat(v) for k, v in snap["device_last_at"].items()
        }
        bed.paused = snap["paused"]
        bed.disagreeing = snap["disagreeing"]
        bed.counters = dict(snap["counters"])
        bed.due = _dt(snap["due"])
        bed.raised_n = snap["raised_n"]
        sup = snap.get("suppressed")
        bed.suppressed = None if sup is None else (sup[0], datetime.fromisoformat(sup[1]))
        bed.silenced = set(snap.get("silenced", []))
        bed.avpu_prev = snap.get("avpu_prev")
        bed.held_since = {
            k: datetime.fromisoformat(v) for k, v in snap.get("held_since", {}).items()
        }
        bed.last_eval = _dt(snap["last_eval"])
        return bed
