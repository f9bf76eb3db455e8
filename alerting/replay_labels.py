"""Lead times of labelled events, streaming: how early the engine's alerts came before them.

A *labelled event* (a replay label line: a bed, a label such as ``deterioration``, a time) is
ground truth. The definitions are those of ``alerting.quality`` (and so of ``wardwatch
eval``): an alert's *activation* is its first event at kind ``clinical`` and priority medium
or high (a ``raised`` at medium, or the ``worsened``/``updated`` that lifted a low alert);
each alert counts once. A labelled event is *detected* when an activation on its bed lies in
``[event - 24 h, event]``; its *lead time* is from the first such activation, in hours.
Unlike ``alerting.quality.quality`` (which takes each bed's earliest ``deterioration``
label), every label line is its own labelled event here, whatever its label: a replay of
months of history may see a child deteriorate twice.

This module computes it in one pass over a time-ordered stream, with memory bounded by the
open alerts and 24 h of activations per bed, so a replay of long history never holds every
event. Pure: times are arguments, nothing reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alerting.quality import (
    ALERTING_PRIORITIES,
    CLINICAL,
    DEFAULT_WINDOW_H,
    AlertActivation,
    median,
    outcomes,
)

__all__ = ["LOOKBACK", "LeadTimes", "Outcome"]

LOOKBACK = timedelta(hours=DEFAULT_WINDOW_H)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One labelled event and how early it was caught (``lead_time_h`` None: missed)."""

    bed: str
    label: str
    at: datetime
    lead_time_h: float | None


@dataclass
class LeadTimes:
    """Feed alert events and labels in time order; :meth:`summary` gives the figures."""

    #: per bed: activations, oldest first, none older than LOOKBACK before the newest
    recent: dict[str, deque[AlertActivation]] = field(default_factory=dict)
    #: (bed, alert id) of open alerts already activated (each alert counts once)
    activated: set[tuple[str, str]] = field(default_factory=set)
    labels: list[Outcome] = field(default_factory=list)

    def alert_event(
        self, bed: str, alert_id: str, kind: str, priority: str, event: str, at: datetime
    ) -> None:
        key = (bed, alert_id)
        if kind == CLINICAL and priority in ALERTING_PRIORITIES and key not in self.activated:
            self.activated.add(key)
            q = self.recent.get(bed)
            if q is None:
                q = self.recent[bed] = deque()
            q.append(AlertActivation(at, bed, alert_id, kind, priority))
            while q and q[0].t < at - LOOKBACK:
                q.popleft()
        if event == "resolved":
            self.activated.discard(key)  # its id never comes back: forget it

    def label(self, bed: str, label: str, at: datetime) -> Outcome:
        """Record a labelled event at ``at``: its lead time from the activations so far."""
        (o,) = outcomes(self.recent.get(bed, ()), {bed: at}, window_h=DEFAULT_WINDOW_H)
        lead = o.lead_time_h
        out = Outcome(bed, label, at, None if lead is None else round(lead, 4))
        self.labels.append(out)
        return out

    def summary(self) -> dict[str, Any]:
        leads = [o.lead_time_h for o in self.labels]
        found = [x for x in leads if x is not None]
        med = median(found)
        return {
            "labelled_events": len(self.labels),
            "detected": len(found),
            "median_lead_time_h": None if med is None else round(med, 4),
            "lead_times_h": leads,
        }

    # -- resuming ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "recent": {
                b: [[a.t.isoformat(), a.alert_id, a.priority] for a in q]
                for b, q in sorted(self.recent.items())
            },
            "activated": sorted([b, a] for b, a in self.activated),
            "labels": [
                [o.bed, o.label, o.at.isoformat(), o.lead_time_h] for o in self.labels
            ],
        }

    @classmethod
    def restore(cls, snap: dict[str, Any]) -> LeadTimes:
        return cls(
            recent={
                b: deque(
                    AlertActivation(datetime.fromisoformat(t), b, aid, CLINICAL, prio)
                    for t, aid, prio in acts
                )
                for b, acts in snap["recent"].items()
            },
            activated={(b, a) for b, a in snap["activated"]},
            labels=[
                Outcome(b, lab, datetime.fromisoformat(at), lead)
                for b, lab, at, lead in snap["labels"]
            ],
        )
