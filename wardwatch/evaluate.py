"""``wardwatch eval``: the simulated-children scenario set through the real alert core.

Generates the seeded scenario set (``device_sims.children``, streamed: memory grows with the
beds, not the days), feeds its input and command lines to ``alerting.replay.Replay`` in
process (the same line-driven driver, and so the same engine, as ``wardwatch replay``; the
labels stay here, replay never sees them) in accelerated event time, and measures alarm
quality with ``alerting.quality`` against the ground truth: overall,
per scenario kind and per scoring system. Nothing in the result depends on the wall clock: the
same seed, size and rules give the same dict (timings are returned apart).

``write_scenarios(dir, ...)`` writes the set as replay files instead (docs/evaluation.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerting.core.config import load_rules
from alerting.quality import (
    ALERTING_PRIORITIES,
    Label,
    QualityMetrics,
    activations,
    goals,
    median,
    parse_time,
    quality,
    wilson_interval,
)
from alerting.replay import Replay
from device_sims.children import (
    DEFAULT_BEDS,
    DEFAULT_DAYS,
    DEFAULT_SEED,
    KINDS,
    ScenarioSet,
    generate,
)

__all__ = ["EvalResult", "evaluate", "write_scenarios"]

SCENARIO_FILE = "ward.jsonl"
LABELLED_FILE = "ward_labelled.jsonl"
TRUTH_FILE = "ground_truth.json"


@dataclass(frozen=True, slots=True)
class EvalResult:
    #: the deterministic result (the JSON line)
    result: dict[str, Any]
    #: wall-clock seconds per phase (stderr only)
    timings: dict[str, float]


def _dumps(line: dict[str, Any]) -> str:
    return json.dumps(line, separators=(",", ":"))


def _subset(events: list[dict[str, Any]], labels: list[Label], days: dict[str, float],
            beds: set[str]) -> QualityMetrics:
    return quality(
        [e for e in events if e["bed"] in beds],
        [lb for lb in labels if lb.bed in beds],
        {b: d for b, d in days.items() if b in beds},
    )


def _group(m: QualityMetrics) -> dict[str, Any]:
    d = m.as_dict()
    d["missed_beds"] = [o.bed for o in m.outcomes if not o.detected]
    d["lead_times_h"] = {
        o.bed: round(o.lead_time_h, 3) for o in m.outcomes if o.lead_time_h is not None
    }
    return d


def evaluate(
    seed: int = DEFAULT_SEED,
    beds: int = DEFAULT_BEDS,
    days: float = DEFAULT_DAYS,
    *,
    rules_path: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> EvalResult:
    """Generate the set, replay it through the alert core, and measure it."""
    t0 = time.perf_counter()
    rules = load_rules(rules_path)
    sset = generate(seed, beds, days)
    t1 = time.perf_counter()
    rep = Replay(rules, unit="eval", warn=warn)
    stable = {b.bed for b in sset.beds if not b.deteriorates}
    # Only events that can be an activation are kept (each alert's first event, and its first
    # at medium/high): the metrics are the same, and memory does not grow with every update.
    events: list[dict[str, Any]] = []
    seen_any: set[tuple[str, str]] = set()
    seen_high: set[tuple[str, str]] = set()
    false_by_rule: dict[str, int] = {}
    n = n_events = 0
    for n, line in enumerate(sset.lines(), start=1):
        for e in rep.feed(_dumps(line), n):
            n_events += 1
            key = (e["bed"], e["alert_id"])
            high = e["priority"] in ALERTING_PRIORITIES
            if key not in seen_any or (high and key not in seen_high):
                events.append(e)
            seen_any.add(key)
            if high:
                seen_high.add(key)
            if e["event"] == "raised" and e["bed"] in stable:
                rule = f"{e['kind']}:{e['rule']}:{e['priority']}"
                false_by_rule[rule] = false_by_rule.get(rule, 0) + 1
    t2 = time.perf_counter()
    labels = [Label(parse_time(d["t"]), d["bed"], d["label"]) for d in sset.labels()]
    bed_days = {b: (e - s).total_seconds() / 86400 for b, (s, e) in rep.spans.items()}
    overall = quality(events, labels, bed_days)
    by_kind = {}
    for kind in KINDS:
        members = {b.bed for b in sset.beds if b.kind == kind}
        if members:
            by_kind[kind] = _group(_subset(events, labels, bed_days, members))
    by_system = {}
    for system in sorted({b.system for b in sset.beds}):
        members = {b.bed for b in sset.beds if b.system == system}
        by_system[system] = _group(_subset(events, labels, bed_days, members))
    # per deteriorating bed: the first alert in the window, and the first after the course
    # began (an earlier one, from crying or noise, counts for sensitivity by definition)
    acts = activations(events)
    per_bed = []
    after: list[float] = []
    outcome = {o.bed: o for o in overall.outcomes}
    for b in sset.beds:
        if b.event is None or b.onset is None:
            continue
        o = outcome[b.bed]
        first_after = next(
            (a.t for a in acts if a.bed == b.bed and b.onset <= a.t <= b.event), None
        )
        lead_after = (
            None if first_after is None else (b.event - first_after).total_seconds() / 3600
        )
        if lead_after is not None:
            after.append(lead_after)
        per_bed.append({
            "bed": b.bed, "kind": b.kind, "system": b.system, "band": b.band,
            "course_h": round((b.event - b.onset).total_seconds() / 3600, 2),
            "lead_time_h": None if o.lead_time_h is None else round(o.lead_time_h, 3),
            "lead_time_after_onset_h": None if lead_after is None else round(lead_after, 3),
        })
    n_det = overall.deteriorating_beds
    lo, hi = wilson_interval(overall.detected_beds, n_det) if n_det else (None, None)
    t3 = time.perf_counter()
    head = overall.as_dict()
    head["sensitivity_ci95"] = None if lo is None or hi is None else [round(lo, 4), round(hi, 4)]
    head["sensitivity_after_onset"] = round(len(after) / n_det, 4) if n_det else None
    m_after = median(after)
    head["median_lead_time_after_onset_h"] = None if m_after is None else round(m_after, 3)
    result: dict[str, Any] = {
        **head,
        "scenario_set_version": sset.version,
        "seed": seed,
        "days_per_bed": days,
        "rules_version": rules.version,
        "lines": n,
        "alert_events": n_events,
        "goals": goals(overall),
        "by_kind": by_kind,
        "by_system": by_system,
        "raised_on_stable_beds_by_rule": dict(sorted(false_by_rule.items())),
        "missed_beds": [o.bed for o in overall.outcomes if not o.detected],
        "deteriorating": per_bed,
    }
    timings = {
        "setup_s": round(t1 - t0, 3),
        "generate_and_replay_s": round(t2 - t1, 3),
        "metrics_s": round(t3 - t2, 3),
        "total_s": round(t3 - t0, 3),
        "lines_per_s": round(n / (t2 - t1), 1) if t2 > t1 else 0.0,
    }
    return EvalResult(result, timings)


def _write_lines(path: Path, lines: Iterable[str]) -> int:
    n = 0
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for text in lines:
                f.write(text)
                f.write("\n")
                n += 1
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half-written file is left behind
        raise
    return n


def _labelled(sset: ScenarioSet) -> Iterable[str]:
    labels = sset.labels()
    i = 0
    for line in sset.lines():
        while i < len(labels) and labels[i]["t"] <= line["t"]:
            yield _dumps(labels[i])
            i += 1
        yield _dumps(line)
    for lb in labels[i:]:
        yield _dumps(lb)


def write_scenarios(
    out: Path, seed: int = DEFAULT_SEED, beds: int = DEFAULT_BEDS, days: float = DEFAULT_DAYS
) -> dict[str, Any]:
    """Write the set into ``out`` (created): ``ward.jsonl`` (replay input and command lines),
    ``ward_labelled.jsonl`` (the same with the label lines at their times) and
    ``ground_truth.json``; returns what was written."""
    sset = generate(seed, beds, days)
    out.mkdir(parents=True, exist_ok=True)
    n = _write_lines(out / SCENARIO_FILE, (_dumps(line) for line in sset.lines()))
    n_lab = _write_lines(out / LABELLED_FILE, _labelled(sset))
    truth = sset.truth()
    truth["bed_days"] = round(sset.bed_days, 4)
    truth["labels"] = sset.labels()
    tmp = out / (TRUTH_FILE + ".tmp")
    tmp.write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out / TRUTH_FILE)
    return {
        "dir": str(out),
        "files": [SCENARIO_FILE, LABELLED_FILE, TRUTH_FILE],
        "lines": n,
        "labelled_lines": n_lab,
        "labels": len(truth["labels"]),
        "beds": len(sset.beds),
        "bed_days": round(sset.bed_days, 4),
        "scenario_set_version": sset.version,
        "seed": seed,
    }
