"""Snapshots of what ingest and alerting expose on ``/metrics``: every family (HELP and TYPE
line), every sample name with its labels, in order, and the values.

Operators' dashboards and alert rules, the demo and the integration tests read these names, so
a change must show up as a reviewed diff. Values are compared as numbers (``5`` and ``5.0`` are
the same sample). To accept an intended change, review it and regenerate the snapshots::

    WARDWATCH_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/core/test_metrics_snapshots.py
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from alerting.pews import score
from alerting.service import AlertingService
from ingest.core import WardIndex
from ingest.service import IngestOptions, IngestService
from servicekit.mqtt import MqttParams
from tests.helpers.alerting import instant_rules
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import AlertKind, Generation, Priority

SNAPSHOTS = Path(__file__).parent / "snapshots" / "metrics"
UPDATE = os.environ.get("WARDWATCH_UPDATE_SNAPSHOTS") == "1"

WARD = UnitContext(
    site="s1",
    unit="picu",
    generation=Generation.TEST,
    gateways=[GatewayContext(id="gw1"), GatewayContext(id="gw2")],
    beds=[
        BedContext(id="b1", dob=date(2020, 1, 1), gateway="gw1", devices=["d1"]),
        BedContext(id="b2", dob=date(2018, 6, 1), gateway="gw2", devices=["d2"]),
    ],
)


def ingest_service() -> IngestService:
    opts = IngestOptions(
        influx_url="http://influx", influx_db="w", influx_user=None, influx_password=None,
        worker_id="ingest-7",
    )
    return IngestService(MqttParams(), WardIndex(WARD), opts)


def alerting_service() -> AlertingService:
    t0 = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)  # a fixed clock: ages are 0, not jitter
    return AlertingService(MqttParams(), WARD, instant_rules(), score, client_id="alerting-snap",
                           clock=lambda: t0)


def ingest_idle() -> str:
    return ingest_service().metrics_text()


def ingest_busy() -> str:
    svc = ingest_service()
    c = svc.counters
    (c.received, c.written_obs, c.written_points, c.write_failures, c.seq_gaps) = (11, 12, 13, 1, 2)
    (c.seq_duplicates, c.outbox_resets, c.seq_jumps, c.backfills) = (3, 4, 5, 6)
    (c.refused_points, c.clock_skew_events) = (7, 8)
    c.dead_letter_reasons.update({"unknown_device": 2, "schema": 9})
    c.write_latency_ms.extend([12.0, 3.0, 250.0, 40.0, 7.5])
    svc.clock_watch.offset_s.update({"gw2": -1.25, "gw1": 400.5})
    svc.boundary.faults.update({"ValueError": 2, "KeyError": 1})
    svc._q.put_nowait(object())  # only counted
    svc._q.put_nowait(object())
    svc.ready.set()  # no threads registered yet: alive
    return svc.metrics_text()


def alerting_idle() -> str:
    return alerting_service().metrics_text()


def alerting_busy() -> str:
    svc = alerting_service()
    svc.ready.set()
    b1, b2 = svc.engine.beds["b1"], svc.engine.beds["b2"]
    b1.counters.update({"cannot_score": 3, "future": 4, "artefact": 2, "unconfirmed": 1})
    b2.counters.update({"hr_pr_disagree": 1})
    (svc.scores_published, svc.ignored, svc.commands_refused) = (17, 5, 1)
    svc.observations = 240
    svc.dead_letters.update({"schema": 3, "fault": 1})
    svc.boundary.faults.update({"RuntimeError": 1})

    def rec(kind: AlertKind, priority: Priority) -> SimpleNamespace:
        return SimpleNamespace(kind=kind, priority=priority)

    b1.episodes.update({
        "pews": rec(AlertKind.CLINICAL, Priority.HIGH),  # type: ignore[dict-item]
        "stale": rec(AlertKind.TECHNICAL, Priority.LOW),  # type: ignore[dict-item]
    })
    b2.episodes.update({"pews": rec(AlertKind.CLINICAL, Priority.HIGH)})  # type: ignore[dict-item]
    return svc.metrics_text()


CASES: dict[str, Callable[[], str]] = {
    "ingest_idle": ingest_idle,
    "ingest_busy": ingest_busy,
    "alerting_idle": alerting_idle,
    "alerting_busy": alerting_busy,
}


def normalise(text: str) -> list[tuple[str, float | None]]:
    """Comment lines as they are; a sample as (name and labels as written, value as a number)."""
    out: list[tuple[str, float | None]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            out.append((line, None))
        else:
            series, value = line.rsplit(" ", 1)
            out.append((series, float(value)))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_metrics_match_snapshot(case: str) -> None:
    current = CASES[case]()
    path = SNAPSHOTS / f"{case}.prom"
    if UPDATE:
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        path.write_text(current, encoding="utf-8")
        return
    assert path.exists(), f"no snapshot {path}: generate it with WARDWATCH_UPDATE_SNAPSHOTS=1"
    recorded = path.read_text(encoding="utf-8")
    assert normalise(current) == normalise(recorded), (
        f"what {case.split('_')[0]} exposes on /metrics changed. Dashboards and alert rules read "
        "these names: review the diff and, if intended, regenerate the snapshots with "
        "WARDWATCH_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/core/test_metrics_snapshots.py"
    )


def test_every_sample_has_a_family_and_counters_end_in_total() -> None:
    for case, make in CASES.items():
        types: dict[str, str] = {}
        for line, value in normalise(make()):
            if value is None:
                if line.startswith("# TYPE "):
                    _, _, name, kind = line.split(" ")
                    types[name] = kind
                continue
            name = line.split("{", 1)[0]
            assert name in types, (case, name)
            if types[name] == "counter":
                assert name.endswith("_total"), (case, name)
