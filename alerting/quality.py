"""Alarm quality from alert events and labelled events: sensitivity, lead time, alarm burden.

Pure functions, no I/O, no clock: the same events and labels give the same numbers. Used by
``wardwatch eval`` (simulated scenarios with ground truth) and meant for ``wardwatch replay
--compare`` (lead times where the input carries label lines).

Inputs
------
*Events* are the alert event dicts ``alerting.replay`` yields (keys ``EVENT_KEYS``: ``t`` as
an ISO-8601 string ending in ``Z``, ``bed``, ``alert_id``, ``event``, ``kind``, ``priority``,
...); the summary dict (no ``bed`` key) may be passed along and is ignored.
``AlertActivation``\\ s can also be built directly.

*Labels* are ``Label(t, bed, label)``; a replay label line
``{"t": "...Z", "bed": "b07", "label": "deterioration"}`` becomes one with ``label_from_line``.
Only labels named ``deterioration`` (``DETERIORATION``) mark a deteriorating bed; a bed's
labelled event time is its *earliest* deterioration label.

*Bed-days* map each bed to the days it was observed (``Replay.spans``: first to last line).

Definitions
-----------
*Activation* of an alert: the first event of a bed's ``alert_id`` at which its kind is the one asked
for and its priority is in the asked set, i.e. a ``raised`` event at medium/high, or the
``worsened``/``updated`` event that lifted a low alert to medium/high. Each alert counts once.

``sensitivity``
    deteriorating beds with a clinical medium/high activation in the window
    ``[event - window_h, event]`` (default 24 h), over deteriorating beds; ``None`` without any
    deteriorating bed.
``median_lead_time_h``
    median over detected beds of (event - first activation in that window), hours; ``None``
    when no bed was detected. Never negative and never above ``window_h``.
``false_alerts_per_bed_day``
    clinical medium/high activations on beds that never deteriorate, over those beds' bed-days.
``false_alerts_per_bed_day_any_priority``
    the same at any priority (low included).
``technical_alerts_per_bed_day``
    technical activations at any priority on every bed, over every bed's bed-days.

Typical use::

    from alerting.quality import Label, quality
    m = quality(events, [Label(t, "b07")], {"b07": 1.0, "b08": 1.0})
    m.sensitivity, m.median_lead_time_h, m.false_alerts_per_bed_day, m.as_dict()
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "ALERTING_PRIORITIES",
    "ALL_PRIORITIES",
    "CLINICAL",
    "DEFAULT_WINDOW_H",
    "DETERIORATION",
    "GOALS",
    "TECHNICAL",
    "AlertActivation",
    "BedOutcome",
    "Label",
    "QualityMetrics",
    "activations",
    "event_times",
    "goals",
    "label_from_line",
    "median",
    "outcomes",
    "parse_time",
    "quality",
    "wilson_interval",
]

DETERIORATION = "deterioration"
CLINICAL = "clinical"
TECHNICAL = "technical"
#: the priorities an alert must reach to count as detecting deterioration (and as a false alert)
ALERTING_PRIORITIES: frozenset[str] = frozenset({"medium", "high"})
ALL_PRIORITIES: frozenset[str] = frozenset({"low", "medium", "high", "info"})
DEFAULT_WINDOW_H = 24.0
#: the issue's goals: key -> (comparison, target)
GOALS: dict[str, tuple[str, float]] = {
    "sensitivity": (">=", 0.95),
    "median_lead_time_h": (">=", 2.0),
    "false_alerts_per_bed_day": ("<=", 0.5),
}


def parse_time(text: str) -> datetime:
    """An aware UTC datetime from an ISO-8601 string (``Z`` or an offset); ``ValueError``
    for anything else, a naive time included."""
    t = datetime.fromisoformat(text)
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{text!r} has no time zone")
    return t.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class AlertActivation:
    """An alert reaching the asked kind and priority for the first time."""

    t: datetime
    bed: str
    alert_id: str
    kind: str
    priority: str


@dataclass(frozen=True, slots=True)
class Label:
    """A labelled event on a bed (e.g. the time of a rapid-response call or PICU transfer)."""

    t: datetime
    bed: str
    label: str = DETERIORATION


def label_from_line(rec: Mapping[str, object]) -> Label:
    """A ``Label`` from a replay label line's parsed JSON; ``ValueError`` if it is not one."""
    t, bed, label = rec.get("t"), rec.get("bed"), rec.get("label")
    if not isinstance(t, str) or not isinstance(bed, str) or not isinstance(label, str):
        raise ValueError("a label line needs string t, bed and label")
    if "inputs" in rec or "command" in rec:
        raise ValueError("a label line carries neither inputs nor command")
    return Label(parse_time(t), bed, label)


def activations(
    events: Iterable[Mapping[str, object]],
    *,
    kind: str = CLINICAL,
    priorities: Iterable[str] = ALERTING_PRIORITIES,
) -> list[AlertActivation]:
    """Each alert's activation (see the module doc), in event order.

    Dicts without ``bed`` (the replay summary) are skipped; an event dict missing ``t``,
    ``alert_id``, ``kind`` or ``priority`` raises ``ValueError``."""
    wanted = frozenset(priorities)
    seen: set[tuple[str, str]] = set()
    out: list[AlertActivation] = []
    for ev in events:
        bed = ev.get("bed")
        if bed is None:
            continue
        t, aid, k, prio = ev.get("t"), ev.get("alert_id"), ev.get("kind"), ev.get("priority")
        if not (
            isinstance(bed, str)
            and isinstance(t, str)
            and isinstance(aid, str)
            and isinstance(k, str)
            and isinstance(prio, str)
        ):
            raise ValueError(f"not an alert event: {dict(ev)!r}")
        if k != kind or prio not in wanted or (bed, aid) in seen:
            continue
        seen.add((bed, aid))
        out.append(AlertActivation(parse_time(t), bed, aid, k, prio))
    return out


def event_times(labels: Iterable[Label], label: str = DETERIORATION) -> dict[str, datetime]:
    """Each labelled bed's event time: its earliest label named ``label``."""
    out: dict[str, datetime] = {}
    for lb in labels:
        if lb.label != label:
            continue
        old = out.get(lb.bed)
        if old is None or lb.t < old:
            out[lb.bed] = lb.t
    return out


def median(xs: Iterable[float]) -> float | None:
    """The median (mean of the middle two for an even count); ``None`` for no values."""
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return None
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``k / n`` (95 % by default): small samples
    of deteriorating beds give wide intervals, and 18 of 18 is not 1.0 for sure."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, min(p, centre - half))
    hi = 1.0 if k == n else min(1.0, max(p, centre + half))
    return lo, hi


@dataclass(frozen=True, slots=True)
class BedOutcome:
    """One deteriorating bed: its event, and the first activation in the window if any."""

    bed: str
    event_t: datetime
    first_alert_t: datetime | None

    @property
    def detected(self) -> bool:
        return self.first_alert_t is not None

    @property
    def lead_time_h(self) -> float | None:
        if self.first_alert_t is None:
            return None
        return (self.event_t - self.first_alert_t).total_seconds() / 3600


def outcomes(
    acts: Iterable[AlertActivation],
    events_at: Mapping[str, datetime],
    *,
    window_h: float = DEFAULT_WINDOW_H,
) -> list[BedOutcome]:
    """For each labelled bed (sorted by bed id), the first activation in
    ``[event - window_h, event]``."""
    if not (math.isfinite(window_h) and window_h >= 0):
        raise ValueError(f"window_h must be a finite number >= 0, got {window_h!r}")
    first: dict[str, datetime] = {}
    for a in acts:
        ev = events_at.get(a.bed)
        if ev is None:
            continue
        lead_s = (ev - a.t).total_seconds()
        if 0 <= lead_s <= window_h * 3600:
            old = first.get(a.bed)
            if old is None or a.t < old:
                first[a.bed] = a.t
    return [BedOutcome(b, events_at[b], first.get(b)) for b in sorted(events_at)]


@dataclass(frozen=True, slots=True)
class QualityMetrics:
    """The numbers (see the module doc); ``as_dict()`` is their JSON form."""

    beds: int
    bed_days: float
    deteriorating_beds: int
    detected_beds: int
    sensitivity: float | None
    median_lead_time_h: float | None
    false_alerts: int
    false_alerts_any_priority: int
    technical_alerts: int
    stable_bed_days: float
    false_alerts_per_bed_day: float | None
    false_alerts_per_bed_day_any_priority: float | None
    technical_alerts_per_bed_day: float | None
    outcomes: tuple[BedOutcome, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        """Rounded numbers, JSON-ready (``None`` stays ``None``: no value, not zero)."""

        def r(x: float | None, nd: int = 4) -> float | None:
            return None if x is None else round(x, nd)

        return {
            "sensitivity": r(self.sensitivity),
            "median_lead_time_h": r(self.median_lead_time_h, 3),
            "false_alerts_per_bed_day": r(self.false_alerts_per_bed_day),
            "false_alerts_per_bed_day_any_priority": r(self.false_alerts_per_bed_day_any_priority),
            "technical_alerts_per_bed_day": r(self.technical_alerts_per_bed_day),
            "beds": self.beds,
            "bed_days": round(self.bed_days, 4),
            "deteriorating_beds": self.deteriorating_beds,
            "detected_beds": self.detected_beds,
            "false_alerts": self.false_alerts,
            "false_alerts_any_priority": self.false_alerts_any_priority,
            "technical_alerts": self.technical_alerts,
        }


def _rate(n: int, days: float) -> float | None:
    return n / days if days > 0 else None


def quality(
    events: Iterable[Mapping[str, object]],
    labels: Iterable[Label],
    bed_days: Mapping[str, float],
    *,
    window_h: float = DEFAULT_WINDOW_H,
) -> QualityMetrics:
    """Every metric of the module doc from one pass's alert events, labels and bed-days.

    Beds are those of ``bed_days`` plus any labelled or alerted bed; a bed missing from
    ``bed_days`` counts 0 days. Negative or non-finite bed-days raise ``ValueError``."""
    for b, d in bed_days.items():
        if not (math.isfinite(d) and d >= 0):
            raise ValueError(f"bed_days[{b!r}] must be a finite number >= 0, got {d!r}")
    evs = list(events)
    events_at = event_times(labels)
    clinical = activations(evs, kind=CLINICAL, priorities=ALERTING_PRIORITIES)
    clinical_any = activations(evs, kind=CLINICAL, priorities=ALL_PRIORITIES)
    technical = activations(evs, kind=TECHNICAL, priorities=ALL_PRIORITIES)
    outs = outcomes(clinical, events_at, window_h=window_h)
    detected = [o for o in outs if o.detected]
    leads = [o.lead_time_h for o in detected if o.lead_time_h is not None]
    beds = set(bed_days) | set(events_at) | {a.bed for a in clinical_any} | {
        a.bed for a in technical
    }
    total_days = sum(bed_days.values())
    stable_days = sum(d for b, d in bed_days.items() if b not in events_at)
    false = sum(1 for a in clinical if a.bed not in events_at)
    false_any = sum(1 for a in clinical_any if a.bed not in events_at)
    return QualityMetrics(
        beds=len(beds),
        bed_days=total_days,
        deteriorating_beds=len(events_at),
        detected_beds=len(detected),
        sensitivity=len(detected) / len(outs) if outs else None,
        median_lead_time_h=median(leads),
        false_alerts=false,
        false_alerts_any_priority=false_any,
        technical_alerts=len(technical),
        stable_bed_days=stable_days,
        false_alerts_per_bed_day=_rate(false, stable_days),
        false_alerts_per_bed_day_any_priority=_rate(false_any, stable_days),
        technical_alerts_per_bed_day=_rate(len(technical), total_days),
        outcomes=tuple(outs),
    )


def goals(m: QualityMetrics) -> dict[str, dict[str, object]]:
    """Each goal of ``GOALS``: its target, the value and whether it is met (a missing value
    never meets a goal)."""
    values: dict[str, float | None] = {
        "sensitivity": m.sensitivity,
        "median_lead_time_h": m.median_lead_time_h,
        "false_alerts_per_bed_day": m.false_alerts_per_bed_day,
    }
    out: dict[str, dict[str, object]] = {}
    for key, (op, target) in GOALS.items():
        v = values[key]
        met = v is not None and (v >= target if op == ">=" else v <= target)
        out[key] = {"goal": f"{op} {target:g}", "value": v, "met": met}
    return out
