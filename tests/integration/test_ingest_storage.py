"""Retention, downsampling, late-data backfill, trends, metrics and seq gaps on real services."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ingest.core import WardIndex
from ingest.service import IngestOptions, IngestService
from ingest.storage import DownsamplingPlan, setup_database, trend
from servicekit.influx import InfluxTarget, query
from tests.helpers.mqtt import collector, params
from tests.helpers.wait import wait_until
from tests.integration.test_ingest import Publisher
from wardwatch.devstack import Stack
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation, Observation, ObservationBatch

pytestmark = pytest.mark.integration

WARD = UnitContext(
    site="s1",
    unit="u1",
    generation=Generation.TEST,
    gateways=[GatewayContext(id="gw1")],
    beds=[BedContext(id="b1", gateway="gw1", devices=["d1"])],
)


def hr_batch(seq: int, start: datetime, values: list[float]) -> bytes:
    obs = [
        Observation(
            device_id="d1",
            code="HR",
            value=v,
            unit="/min",
            measured_at=start + timedelta(seconds=i),
            received_at=start,
        )
        for i, v in enumerate(values)
    ]
    return (
        ObservationBatch(
            gateway_id="gw1", seq=seq, sent_at=start, generation=Generation.TEST, observations=obs
        )
        .model_dump_json()
        .encode()
    )


@pytest.fixture
def db(stack: Stack) -> str:
    """A database with the production layout: raw + agg retention policies and the CQ."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = InfluxTarget(stack.influx.url, name, "admin", stack.influx.admin_password)
    with httpx.Client(timeout=30) as http:
        setup_database(http, admin, DownsamplingPlan(name))
        setup_database(http, admin, DownsamplingPlan(name))  # idempotent
        query(http, admin, f'GRANT ALL ON "{name}" TO "ingest"', write=True)
        query(http, admin, f'GRANT READ ON "{name}" TO "reader"', write=True)
    return name


def run(stack: Stack, db: str, root: str, **kw: object) -> tuple[IngestService, threading.Thread]:
    opts = IngestOptions(
        influx_url=stack.influx.url,
        influx_db=db,
        influx_user="ingest",
        influx_password=stack.influx.writer_password,
        topic_root=root,
        worker_id=f"ingest-{uuid.uuid4().hex[:6]}",
        linger_s=0.05,
        **kw,
    )  # type: ignore[arg-type]
    svc = IngestService(params(stack.broker, "ingest"), WardIndex(WARD), opts)
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    assert svc.ready.wait(10)
    return svc, t


def test_setup_creates_retention_policies_and_the_continuous_query(stack: Stack, db: str) -> None:
    admin = InfluxTarget(stack.influx.url, db, "admin", stack.influx.admin_password)
    with httpx.Client(timeout=30) as http:
        rps = query(http, admin, f'SHOW RETENTION POLICIES ON "{db}"')[0]["series"][0]
        cqs = query(http, admin, "SHOW CONTINUOUS QUERIES")[0]["series"]
    by_name = {row[0]: row for row in rps["values"]}
    assert set(by_name) >= {"raw", "agg"}
    assert by_name["raw"][-1] is True  # default
    assert by_name["raw"][1] == "720h0m0s"
    mine = next(s for s in cqs if s["name"] == db)
    assert any("cq_obs_1m" in v[0] and "GROUP BY time(1m)" in v[1] for v in mine["values"])


def test_late_data_is_backfilled_into_the_downsampled_series(
    stack: Stack, db: str, topic_root: str
) -> None:
    svc, t = run(stack, db, topic_root)
    pub = Publisher(stack.broker)
    # A gateway's backlog after an outage: two hours old, so no continuous query covers it.
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    values = [float(100 + (i % 60)) for i in range(180)]  # three full minutes
    try:
        pub.publish(
            topics.gateway_obs("s1", "u1", "gw1", root=topic_root), hr_batch(0, start, values)
        )
        wait_until(lambda: svc.counters.backfills >= 1, timeout=30)
    finally:
        pub.close()
        svc.stop()
        t.join(30)
    reader = InfluxTarget(stack.influx.url, db, "reader", stack.influx.reader_password)
    with httpx.Client(timeout=30) as http:
        pts = trend(
            http,
            reader,
            bed="b1",
            param="HR",
            start=start,
            end=start + timedelta(minutes=3),
            resolution_s=60,
        )
        raw = trend(
            http,
            reader,
            bed="b1",
            param="HR",
            start=start,
            end=start + timedelta(minutes=3),
            resolution_s=30,
        )
    assert [p.at for p in pts] == [start + timedelta(minutes=m) for m in range(3)]
    for p in pts:
        assert (p.min, p.max, p.n) == (100.0, 159.0, 60)
        assert p.mean == pytest.approx(129.5)
    assert len(raw) == 6 and sum(p.n for p in raw) == 180  # finer resolutions read raw data
    assert raw[0].max == 129.0 and raw[1].min == 130.0


def test_metrics_endpoint_and_seq_gap_events(stack: Stack, influx_db: str, topic_root: str) -> None:
    svc, t = run(stack, influx_db, topic_root, metrics_port=0)
    tech = collector(
        stack.broker, "admin", [topics.technical("s1", "u1", "ingest", root=topic_root)]
    )
    pub = Publisher(stack.broker)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    topic = topics.gateway_obs("s1", "u1", "gw1", root=topic_root)
    try:
        for seq in (0, 1, 4, 2, 2):  # 3 never arrives; 2 arrives late, then again
            pub.publish(topic, hr_batch(seq, start + timedelta(minutes=seq), [100.0]))
        pub.publish(topic, b"junk")
        assert tech.wait_for(lambda m: len(m) >= 1)
        wait_until(lambda: svc.counters.written_obs == 5 and svc.counters.dead_lettered == 1)
        assert svc.metrics is not None
        text = httpx.get(f"http://127.0.0.1:{svc.metrics.port}/metrics", timeout=5).text
    finally:
        tech.close()
        pub.close()
        svc.stop()
        t.join(30)
    event = json.loads(tech.messages[0][1])
    assert event["event"] == "seq_gap" and event["gateway_id"] == "gw1" and event["count"] == 2
    values = {
        line.split("{")[0] + "{" + line.split("{")[1].split("}")[0] + "}": float(
            line.rsplit(" ", 1)[1]
        )
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    w = svc.opts.worker_id
    assert values[f'wardwatch_ingest_received_total{{worker="{w}"}}'] == 6
    assert values[f'wardwatch_ingest_written_observations_total{{worker="{w}"}}'] == 5
    assert values[f'wardwatch_ingest_dead_lettered_total{{reason="malformed",worker="{w}"}}'] == 1
    assert values[f'wardwatch_ingest_seq_missing{{worker="{w}"}}'] == 1  # only 3 is still missing
    assert values[f'wardwatch_ingest_seq_duplicates_total{{worker="{w}"}}'] == 1
    assert values[f'wardwatch_ingest_ready{{worker="{w}"}}'] == 1
    assert "# TYPE wardwatch_ingest_write_latency_seconds summary" in text


def test_escaped_line_protocol_round_trips_through_the_real_server(
    stack: Stack, influx_db: str
) -> None:
    """The encoder's escaping, checked against what InfluxDB itself stores and returns."""
    from ingest.lineproto import encode_point

    tags = ["plain", "with space", "com,ma", "eq=uals", "back\\slash", "ünïcödé 中文", "a, b=c d"]
    lines = [
        encode_point("esc test", {"t": v, "k ey": "x"}, {"value": float(i), "s": f'q"{v}\\'}, i)
        for i, v in enumerate(tags)
    ]
    r = httpx.post(
        f"{stack.influx.url}/write",
        params={"db": influx_db, "precision": "ns"},
        content="\n".join(lines).encode(),
        auth=("ingest", stack.influx.writer_password),
    )
    assert r.status_code == 204, r.text
    res = stack.influx.query('SELECT "value", "s", "t", "k ey" FROM "esc test"', db=influx_db)
    rows = res["results"][0]["series"][0]["values"]  # type: ignore[index]
    assert [(row[3], row[4], row[2]) for row in rows] == [(v, "x", f'q"{v}\\') for v in tags]
