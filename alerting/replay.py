"""``wardwatch replay``: the pure alert engine core driven over a recorded stream, on event time.

The input is JSON lines, one event each, in time order::

    {"t": "2024-05-01T10:00:00Z", "bed": "b1", "age_days": 1100, "inputs": {"hr_bpm": 185}}
    {"t": "2024-05-01T10:00:10Z", "bed": "b1", "inputs": {"temp_c": 38.9}}
    {"t": "2024-05-01T10:05:00Z", "bed": "b1", "command": "ack", "by": "nurse-a"}

*Input lines.* Each key of ``inputs`` (the Appendix A vocabulary, ``alerting.pews.INPUT_KEYS``)
becomes one ``Reading`` at ``t``; ``null`` means "not obtained now" (the key goes missing).
Numeric device keys (``hr_bpm``, ``rr_bpm``, ``spo2_pct``, ``sbp_mmhg``, ``temp_c``) are
``measured``, every other key ``entered``; ``"source": "measured" | "entered"`` on the line
overrides that for the whole line. ``system`` (default ``bedside_pews``) and ``dob`` *or*
``age_days`` describe the child: a bed is created on its first input line, and a later input
line that declares a different system or age updates it (``age_days`` counts from that line's
``t``; a line that repeats the declared values, or leaves them out, changes nothing).

*Command lines.* ``"command": "ack"`` acknowledges every open alert of the bed at ``t``;
``"command": "snooze"`` with ``"minutes"`` snoozes them; ``"by"`` names the nurse (default
``replay``). Bed keys on a command line are ignored. A refused command (a snooze of a HIGH
alert) and a command for a bed that has no input line yet are reported through ``warn`` and
replay goes on.

*Label lines.* ``{"t": "...Z", "bed": "b07", "label": "deterioration"}`` (``label`` a short id:
letters, digits, ``_ . -``, at most 64) marks a clinical event of the bed (ground truth, e.g.
a transfer to intensive care). A label line yields no output line (the engine deadlines up to
its ``t`` run, as before any line); the summary then gains ``labelled_events``, ``detected``,
``median_lead_time_h`` and ``lead_times_h`` (see :mod:`alerting.replay_labels`). A label line
carries ``t``, ``bed`` and ``label`` only. Without label lines these keys are absent, so the
output of an unlabelled input is unchanged.

*Extensions for stored history* (``wardwatch replay --from-influx`` writes them; a recording
may use them too): ``inputs`` may also carry the engine's device keys that are not Appendix A
keys -- ``pr_bpm`` (an oximeter's pulse rate; measured by default), ``oxygen.device``,
``oxygen.flow_lpm`` and ``oxygen.fio2_pct`` (the parts of an oxygen item, as devices send
them) -- and an input line may say ``"quality": "questionable"`` (or ``"valid"``, the default)
for all its values: a questionable device value is taken only once confirmed, as live.

Blank lines are skipped (they keep their line numbers, and are not counted as lines).

*Time.* ``t`` never decreases; equal times apply in file order. Before a line at ``t`` every
engine deadline at or before ``t`` runs, each at its own time; after the last line no deadline
runs (the recording ended there).

*Malformed lines* stop the replay at the first one (``MalformedLine``; what was yielded before
stays valid): not JSON, not an object, an unknown key (of the line or of ``inputs``), a missing
or naive or out-of-range ``t`` (wire times lie in [2000, 2100) UTC), a ``t`` before the previous
line's, a missing or invalid ``bed`` id, neither or both of ``inputs`` and ``command``, an
unknown command, a snooze without a number of ``minutes`` (or NaN), ``minutes`` / ``by`` on an
input line or ``source`` on a command line, an unknown ``system``, a ``dob`` that is not an ISO
date, an ``age_days`` that is not a finite non-negative number, both ``dob`` and ``age_days``,
and a numeric input key (``hr_bpm`` ... ``temp_c``, the Brighton excess keys, ``pr_bpm``,
``oxygen.flow_lpm``, ``oxygen.fio2_pct``) whose value is not a JSON number or null; a
``quality`` other than ``valid`` / ``questionable``, or on a command line; a label line with
any key beside ``t``, ``bed`` and ``label``, or a ``label`` that is not a short id.
What the *scorer* refuses (an age outside the system's table, contradictory items, a value
out of range) is not malformed: the engine raises ``cannot_score`` on that bed and goes on.
Implausible device values are the engine's artefacts, not errors.

*Resuming.* ``Replay.snapshot()`` is the engine's whole state plus what the summary counts
(JSON-able); ``Replay.restore()`` resumes from it, so lines 1..N in one go yield the same
events and summary as lines 1..k, a snapshot, then lines k+1..N on the restored replay. A
first line before the snapshot's last time is refused (``StateAfterInput``).

Output (``replay`` yields dicts; ``alerting.replay_cli`` prints them as JSON lines): one dict
per alert event, keys in the pinned order ``EVENT_KEYS``, in the order the engine produced
them; then one summary dict (no ``bed`` key). Nothing depends on the wall clock: the same
input gives the same output.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from alerting.core import AlertEffect, BedInfo, Reading, UnitEngine, UnitRules
from alerting.pews import INPUT_KEYS, SYSTEMS
from alerting.pews import score as pews_score
from alerting.replay_labels import LeadTimes
from servicekit.hashchain import canonical
from wardwire.models import (
    WIRE_TIME_MAX,
    WIRE_TIME_MIN,
    AlertEventType,
    AlertKind,
    Generation,
    Quality,
    Source,
)

__all__ = [
    "DEFAULT_SYSTEM",
    "EVENT_KEYS",
    "MEASURED_KEYS",
    "MalformedLine",
    "Replay",
    "StateAfterInput",
    "StateError",
    "replay",
]

#: the keys of an event line, in this order (pinned: reviewers' scripts read them)
EVENT_KEYS = ("t", "bed", "alert_id", "event", "kind", "rule", "priority", "level", "state")
DEFAULT_SYSTEM = "bedside_pews"
#: input keys a device measures (every other key is entered by a nurse)
MEASURED_KEYS = frozenset({"hr_bpm", "rr_bpm", "spo2_pct", "sbp_mmhg", "temp_c", "pr_bpm"})
#: the engine's device keys beyond Appendix A (``alerting.core.items``): stored history has them
ENGINE_KEYS = frozenset({"pr_bpm", "oxygen.device", "oxygen.flow_lpm", "oxygen.fio2_pct"})
#: input keys whose value must be a JSON number (or null)
NUMBER_KEYS = frozenset(
    {
        "hr_bpm", "rr_bpm", "spo2_pct", "sbp_mmhg", "crt_s", "temp_c",
        "hr_above_upper_normal_bpm", "rr_above_upper_normal_bpm",
        "pr_bpm", "oxygen.flow_lpm", "oxygen.fio2_pct",
    }
)
COMMANDS = ("ack", "snooze")
BED_KEYS = ("system", "dob", "age_days")
LINE_KEYS = frozenset(
    {"t", "bed", "inputs", "source", "quality", "command", "minutes", "by", "label", *BED_KEYS}
)
LABEL_KEYS = frozenset({"t", "bed", "label"})
BED_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
#: the version of ``Replay.snapshot()``'s layout
STATE_VERSION = 1
#: bed-days never below one second (a one-line file still gives finite rates)
MIN_BED_DAYS = 1.0 / 86400
PRIORITIES = ("high", "medium", "low")
_INPUT_KEYS = frozenset(INPUT_KEYS) | ENGINE_KEYS
_SOURCES = {"measured": Source.MEASURED, "entered": Source.ENTERED}
_QUALITIES = {"valid": Quality.VALID, "questionable": Quality.QUESTIONABLE}


class MalformedLine(Exception):
    """A line replay cannot read (1-based line number and why); the replay stops there."""

    def __init__(self, lineno: int, reason: str) -> None:
        super().__init__(f"line {lineno}: {reason}")
        self.lineno = lineno
        self.reason = reason


class StateAfterInput(MalformedLine):
    """The input's first line is before the end of the restored state (replay it from there)."""


class StateError(ValueError):
    """A saved replay state that cannot be resumed here (another layout, unit or rules)."""


@dataclass(frozen=True, slots=True)
class _Spec:
    """What input lines declared about a bed's child (not the aged-forward value)."""

    system: str
    dob: date | None
    age_days: float | None


def iso_utc(t: datetime) -> str:
    """``2024-05-01T10:00:00Z`` (microseconds only when there are any)."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _rules_hash(rules: UnitRules) -> str:
    """The digest of the rules in force (as the live engine journals them)."""
    return hashlib.sha256(canonical(rules.model_dump(mode="json"))).hexdigest()


def _saved_time(text: object) -> datetime:
    """A time of a saved state: ISO-8601 with a zone (``ValueError``/``TypeError`` else)."""
    if not isinstance(text, str):
        raise TypeError(f"a time must be a string, got {_describe(text)}")
    t = datetime.fromisoformat(text)
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"time {text!r} has no zone")
    return t.astimezone(UTC)


def _describe(v: object) -> str:
    text = json.dumps(v)
    return text if len(text) <= 60 else text[:57] + "..."


class Replay:
    """One replay: an engine, the last line's time and what the summary counts.

    ``feed(raw, lineno)`` applies one line and returns its output dicts; ``summary()`` is the
    final dict. ``replay()`` below is the usual way in."""

    def __init__(
        self,
        rules: UnitRules,
        *,
        unit: str = "replay",
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = UnitEngine(rules, pews_score, unit=unit, generation=Generation.TEST)
        self.warn = warn or (lambda _msg: None)
        self.last_t: datetime | None = None
        self.lines = 0
        self.refused = 0
        self.specs: dict[str, _Spec] = {}
        #: bed -> [first line t, last line t] (lines of the bed once it exists)
        self.spans: dict[str, list[datetime]] = {}
        self.events: dict[str, int] = {e.value: 0 for e in AlertEventType}
        self.raised: dict[str, dict[str, int]] = {
            k.value: dict.fromkeys(PRIORITIES, 0) for k in AlertKind
        }
        #: labelled events and the clinical alerts before them (lead times)
        self.leads = LeadTimes()
        #: the time a restored state ended at (the first line must not be before it)
        self.resumed_at: datetime | None = None
        #: lines applied by this object (``lines`` counts those of a restored state too)
        self.lines_here = 0
        #: alert kind -> beds with an alert of that kind raised
        self.alerted: dict[str, set[str]] = {}
        self._t_text: str | None = None
        self._t_value: datetime | None = None

    # -- parsing ----------------------------------------------------------------------------
    def _time(self, raw: object, lineno: int) -> datetime:
        if raw == self._t_text and self._t_value is not None:
            return self._t_value  # many beds share one time stamp: parse it once
        if not isinstance(raw, str):
            raise MalformedLine(lineno, f"t: expected an ISO-8601 string, got {_describe(raw)}")
        try:
            t = datetime.fromisoformat(raw)
        except ValueError:
            raise MalformedLine(lineno, f"t: not an ISO-8601 time: {_describe(raw)}") from None
        if t.tzinfo is None or t.utcoffset() is None:
            raise MalformedLine(
                lineno, f"t: {raw!r} has no time zone (give UTC, e.g. {raw}Z)"
            )
        try:
            t = t.astimezone(UTC)
        except (OverflowError, ValueError):
            raise MalformedLine(lineno, f"t: {raw!r} cannot be represented in UTC") from None
        if not WIRE_TIME_MIN <= t < WIRE_TIME_MAX:
            raise MalformedLine(lineno, f"t: {raw!r} is outside [2000, 2100) UTC")
        self._t_text, self._t_value = raw, t
        return t

    def _spec(self, rec: dict[str, Any], lineno: int, bed: str) -> _Spec | None:
        """The bed spec this input line declares (``None``: it declares nothing new)."""
        system = rec.get("system")
        dob_raw = rec.get("dob")
        days = rec.get("age_days")
        if system is not None and (not isinstance(system, str) or system not in SYSTEMS):
            raise MalformedLine(
                lineno, f"system: {_describe(system)} is not one of {', '.join(SYSTEMS)}"
            )
        dob: date | None = None
        if dob_raw is not None:
            if not isinstance(dob_raw, str):
                raise MalformedLine(lineno, f"dob: expected an ISO date, got {_describe(dob_raw)}")
            try:
                dob = date.fromisoformat(dob_raw)
            except ValueError:
                raise MalformedLine(lineno, f"dob: not an ISO date: {dob_raw!r}") from None
        if days is not None:
            if isinstance(days, bool) or not isinstance(days, int | float):
                raise MalformedLine(lineno, f"age_days: expected a number, got {_describe(days)}")
            try:
                days = float(days)
            except OverflowError:
                raise MalformedLine(lineno, "age_days: not a finite number") from None
            if not math.isfinite(days) or days < 0:
                raise MalformedLine(
                    lineno, f"age_days: expected a finite number >= 0, got {_describe(days)}"
                )
        if dob is not None and days is not None:
            raise MalformedLine(lineno, "give dob or age_days, not both")
        old = self.specs.get(bed)
        if old is None:
            return _Spec(system or DEFAULT_SYSTEM, dob, days)
        new = _Spec(
            system or old.system,
            dob if (dob is not None or days is not None) else old.dob,
            days if (dob is not None or days is not None) else old.age_days,
        )
        return None if new == old else new

    def _readings(
        self, inputs: object, source: Source | None, quality: Quality, t: datetime, lineno: int
    ) -> list[Reading]:
        if not isinstance(inputs, dict):
            raise MalformedLine(lineno, f"inputs: expected an object, got {_describe(inputs)}")
        out: list[Reading] = []
        for key, value in inputs.items():
            if key not in _INPUT_KEYS:
                raise MalformedLine(
                    lineno,
                    f"inputs: unknown input key {key!r} (see docs/clinical/vocabulary.md)",
                )
            if key in NUMBER_KEYS and value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise MalformedLine(
                        lineno, f"inputs.{key}: expected a number or null, got {_describe(value)}"
                    )
                if isinstance(value, int):
                    try:
                        float(value)
                    except OverflowError:
                        raise MalformedLine(lineno, f"inputs.{key}: number too large") from None
            src = source or (Source.MEASURED if key in MEASURED_KEYS else Source.ENTERED)
            out.append(Reading(key, value, t, src, quality=quality))
        return out

    # -- applying ---------------------------------------------------------------------------
    def feed(self, raw: str | bytes, lineno: int) -> list[dict[str, Any]]:
        """Apply one line (blank lines are skipped); its output dicts, in engine order."""
        if not raw.strip():
            return []
        try:
            rec = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise MalformedLine(lineno, f"not JSON: {exc}") from None
        except RecursionError:  # found by red-team: [[[[... 100,000 deep
            raise MalformedLine(lineno, "not JSON this replay reads: nested too deeply") from None
        return self.feed_record(rec, lineno)

    def feed_record(self, rec: object, lineno: int) -> list[dict[str, Any]]:
        """Apply one line already parsed from JSON (what :meth:`feed` does after parsing)."""
        if not isinstance(rec, dict):
            raise MalformedLine(lineno, f"expected a JSON object, got {type(rec).__name__}")
        unknown = [k for k in rec if k not in LINE_KEYS]
        if unknown:
            raise MalformedLine(
                lineno,
                f"unknown key(s) {', '.join(map(repr, unknown))} "
                f"(allowed: {', '.join(sorted(LINE_KEYS))})",
            )
        if "t" not in rec:
            raise MalformedLine(lineno, "t: missing")
        t = self._time(rec["t"], lineno)
        bed = rec.get("bed")
        if bed is None:
            raise MalformedLine(lineno, "bed: missing")
        if not isinstance(bed, str) or not BED_ID.match(bed):
            raise MalformedLine(
                lineno, f"bed: {_describe(bed)} is not a bed id (letters, digits, _ . -)"
            )
        if self.last_t is not None and t < self.last_t:
            if self.lines_here == 0 and self.resumed_at is not None:
                raise StateAfterInput(
                    lineno,
                    f"t: {iso_utc(t)} is before the end of the saved state "
                    f"({iso_utc(self.resumed_at)}): the state already holds a later time than "
                    "this input's first line (resume with the input that follows it)",
                )
            raise MalformedLine(
                lineno, f"t: {iso_utc(t)} is before the previous line's {iso_utc(self.last_t)}"
            )
        has_inputs, command = "inputs" in rec, rec.get("command")
        if "label" in rec:
            extra = [k for k in rec if k not in LABEL_KEYS]
            if extra:
                raise MalformedLine(
                    lineno,
                    "a label line carries t, bed and label only, not "
                    + ", ".join(map(repr, extra)),
                )
            label = rec["label"]
            if not isinstance(label, str) or not BED_ID.match(label):
                raise MalformedLine(
                    lineno,
                    f"label: {_describe(label)} is not a label id (letters, digits, _ . -; "
                    "at most 64)",
                )
            effects = self._deadlines(t)
            out = self._out(effects)
            self.leads.label(bed, label, t)
            self._applied(t)
            return out
        if has_inputs and "command" in rec:
            raise MalformedLine(lineno, "a line carries inputs or a command, not both")
        if not has_inputs and "command" not in rec:
            raise MalformedLine(lineno, "neither inputs nor command (nor a label)")
        if has_inputs:
            for k in ("minutes", "by"):
                if k in rec:
                    raise MalformedLine(lineno, f"{k}: only on a command line")
            q_raw = rec.get("quality", "valid")
            quality = _QUALITIES.get(q_raw) if isinstance(q_raw, str) else None
            if quality is None:
                raise MalformedLine(
                    lineno, f"quality: expected valid or questionable, got {_describe(q_raw)}"
                )
            src_raw = rec.get("source")
            source = None
            if src_raw is not None:
                source = _SOURCES.get(src_raw) if isinstance(src_raw, str) else None
                if source is None:
                    raise MalformedLine(
                        lineno, f"source: expected measured or entered, got {_describe(src_raw)}"
                    )
            spec = self._spec(rec, lineno, bed)
            readings = self._readings(rec["inputs"], source, quality, t, lineno)
            effects = self._deadlines(t)
            if spec is not None:
                effects += self._set_bed(bed, spec, t)
            effects += self.engine.on_readings(bed, readings, t)
        else:
            if command not in COMMANDS:
                raise MalformedLine(
                    lineno, f"command: {_describe(command)} is not one of {', '.join(COMMANDS)}"
                )
            for k in ("source", "quality"):
                if k in rec:
                    raise MalformedLine(lineno, f"{k}: only on an input line")
            minutes = rec.get("minutes")
            if command == "snooze":
                if isinstance(minutes, bool) or not isinstance(minutes, int | float):
                    raise MalformedLine(
                        lineno, f"minutes: a snooze needs a number, got {_describe(minutes)}"
                    )
                try:
                    minutes = float(minutes)
                except OverflowError:
                    minutes = math.inf
                if math.isnan(minutes):  # the engine's bounds check would let NaN through
                    raise MalformedLine(lineno, "minutes: a snooze needs a number, got NaN")
            elif "minutes" in rec:
                raise MalformedLine(lineno, "minutes: only with snooze")
            by = rec.get("by", "replay")
            if not isinstance(by, str) or not by:
                raise MalformedLine(lineno, f"by: expected a name, got {_describe(by)}")
            effects = self._deadlines(t)
            if bed in self.engine.beds:
                eff, why = self.engine.on_command(command, t, by, bed_id=bed, minutes=minutes)
                effects += eff
                for reason in why:
                    self.refused += 1
                    self.warn(f"line {lineno}: {command} refused: {reason}")
            else:
                self.warn(f"line {lineno}: {command} for bed {bed} (no input line yet): skipped")
        self._applied(t)
        span = self.spans.get(bed)
        if span is not None:
            span[1] = t
        elif bed in self.engine.beds:
            self.spans[bed] = [t, t]
        return self._out(effects)

    def _applied(self, t: datetime) -> None:
        self.last_t = t
        self.lines += 1
        self.lines_here += 1

    def _deadlines(self, t: datetime) -> list[Any]:
        """Every engine deadline at or before ``t``, each at its own time."""
        eng = self.engine
        effects: list[Any] = []
        while (d := eng.next_deadline()) is not None and d <= t:
            effects += eng.on_deadline(d)
        return effects

    def _set_bed(self, bed: str, spec: _Spec, t: datetime) -> list[Any]:
        old = self.specs.get(bed)
        cur = self.engine.bed(bed)
        age_at: datetime | None = None
        if spec.age_days is not None:
            same_age = old is not None and old.age_days == spec.age_days and cur is not None
            age_at = cur.info.age_at if same_age and cur is not None else t
        self.specs[bed] = spec
        info = BedInfo(bed, spec.system, dob=spec.dob, age_days=spec.age_days, age_at=age_at,
                       monitored=None)
        return self.engine.set_bed(info, t)

    def _out(self, effects: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for e in effects:
            if type(e) is not AlertEffect:
                continue  # ScoreEffect: scores are not alert events
            a = e.alert
            event = e.event.value
            kind = a.alert_kind.value
            prio = a.priority.value
            self.events[event] += 1
            if event == "raised":
                row = self.raised[kind]
                row[prio] = row.get(prio, 0) + 1
                self.alerted.setdefault(kind, set()).add(a.bed_id)
            self.leads.alert_event(a.bed_id, a.alert_id, kind, prio, event, e.at)
            out.append(
                {
                    "t": iso_utc(e.at),
                    "bed": a.bed_id,
                    "alert_id": a.alert_id,
                    "event": event,
                    "kind": kind,
                    "rule": a.rule,
                    "priority": prio,
                    "level": a.level,
                    "state": a.state.value,
                }
            )
        return out

    # -- the end ----------------------------------------------------------------------------
    def bed_days(self) -> float:
        return sum((b - a).total_seconds() for a, b in self.spans.values()) / 86400

    def summary(self, *, beds_alerted: bool = False) -> dict[str, Any]:
        """The final line: counts, bed-days and raised alerts per bed-day by kind and priority;
        lead times when the input carried labels; with ``beds_alerted`` (``--compare``) also
        how many beds had an alert of each kind raised."""
        days = self.bed_days()
        per = max(days, MIN_BED_DAYS)
        out: dict[str, Any] = {
            "lines": self.lines,
            "beds": len(self.engine.beds),
            "bed_days": round(days, 6),
            "alerts": dict(self.events),
            "alerts_per_bed_day": {
                kind: {p: round(n / per, 4) for p, n in row.items()}
                for kind, row in self.raised.items()
            },
            "commands_refused": self.refused,
            "engine": dict(sorted(self.engine.counters().items())),
        }
        if beds_alerted:
            out["beds_alerted"] = {k.value: len(self.alerted.get(k.value, ())) for k in AlertKind}
        if self.leads.labels:
            out.update(self.leads.summary())
        return out

    # -- resuming ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything a later replay needs to go on as if it had read these lines itself."""
        return {
            "replay_state": STATE_VERSION,
            "unit": self.engine.env.unit,
            "rules_version": self.engine.env.rules.version,
            "rules_hash": _rules_hash(self.engine.env.rules),
            "last_t": None if self.last_t is None else iso_utc(self.last_t),
            "lines": self.lines,
            "refused": self.refused,
            "specs": {
                b: [s.system, None if s.dob is None else s.dob.isoformat(), s.age_days]
                for b, s in sorted(self.specs.items())
            },
            "spans": {b: [iso_utc(a), iso_utc(z)] for b, (a, z) in sorted(self.spans.items())},
            "events": dict(self.events),
            "raised": {k: dict(row) for k, row in self.raised.items()},
            "alerted": {k: sorted(v) for k, v in sorted(self.alerted.items())},
            "leads": self.leads.snapshot(),
            "engine": self.engine.snapshot(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`snapshot` (of a replay with this unit and rules version).

        Raises:
            StateError: another layout, unit or rules version, or a state that does not parse.
        """
        if not isinstance(state, dict) or state.get("replay_state") != STATE_VERSION:
            raise StateError(f"not a replay state of version {STATE_VERSION}")
        env = self.engine.env
        if state.get("unit") != env.unit:
            raise StateError(f"saved for unit {state.get('unit')!r}, this replay is {env.unit!r}")
        if state.get("rules_version") != env.rules.version:
            raise StateError(
                f"saved with rules version {state.get('rules_version')!r}, these rules are "
                f"{env.rules.version!r}"
            )
        # (found by red-team) an edited copy keeps its version: the rules themselves must match
        if "rules_hash" in state and state["rules_hash"] != _rules_hash(env.rules):
            raise StateError(
                f"saved with other rules of the same version {env.rules.version!r} (their "
                "digest differs): resume with the rules file the state was saved with"
            )
        try:
            last = state["last_t"]
            self.last_t = None if last is None else _saved_time(last)
            self.resumed_at = self.last_t
            self.lines = int(state["lines"])
            self.refused = int(state["refused"])
            self.specs = {}
            for b, (sys_, d, days) in state["specs"].items():
                if sys_ not in SYSTEMS or not (
                    days is None or (isinstance(days, int | float) and math.isfinite(days))
                ):
                    raise ValueError(f"specs[{b!r}]: {sys_!r}, {days!r}")
                self.specs[b] = _Spec(sys_, None if d is None else date.fromisoformat(d), days)
            self.spans = {
                b: [_saved_time(a), _saved_time(z)] for b, (a, z) in state["spans"].items()
            }
            # (found by red-team) a hand-edited state must not put keys or counts in the
            # summary that no replay produces, nor naive times that fail at the next line
            for k, v in state["events"].items():
                if k not in self.events:
                    raise ValueError(f"events: unknown event {k!r}")
                self.events[k] = int(v)
            for k, row in state["raised"].items():
                if k not in self.raised or not set(row) <= set(PRIORITIES):
                    raise ValueError(f"raised: unknown kind or priority in {k!r}: {row!r}")
                self.raised[k].update({p: int(n) for p, n in row.items()})
            self.alerted = {}
            for k, beds in state["alerted"].items():
                if k not in self.raised or not isinstance(beds, list) or not all(
                    isinstance(b, str) for b in beds
                ):
                    raise ValueError(f"alerted[{k!r}]: not a list of beds")
                self.alerted[k] = set(beds)
            self.leads = LeadTimes.restore(state["leads"])
            times = [o.at for o in self.leads.labels]
            times += [a.t for q in self.leads.recent.values() for a in q]
            if any(t.utcoffset() is None for t in times):
                raise ValueError("leads: a time without a zone")
            self.engine.restore(state["engine"])
        except (LookupError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise StateError(f"the state does not parse: {type(exc).__name__}: {exc}") from exc


def replay(
    lines: Iterable[str | bytes],
    rules: UnitRules,
    *,
    unit: str = "replay",
    warn: Callable[[str], None] | None = None,
    state: dict[str, Any] | None = None,
    done: Callable[[Replay], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every alert event of the recorded stream ``lines``, then the summary dict.

    ``state``: resume from a :meth:`Replay.snapshot`; ``done`` is called with the replay
    after the last line, before the summary is yielded (to save its snapshot).

    Raises:
        MalformedLine: at the first malformed line (the events before it were yielded).
        StateError: ``state`` cannot be resumed by this replay.
    """
    r = Replay(rules, unit=unit, warn=warn)
    if state is not None:
        r.restore(state)
    for lineno, raw in enumerate(lines, start=1):
        yield from r.feed(raw, lineno)
    if done is not None:
        done(r)
    yield r.summary()
