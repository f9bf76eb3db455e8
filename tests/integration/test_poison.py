"""No single message can stop a unit (issue 8), on real mosquitto + influxd.

Each test is a finding that once stopped storage or scoring for a whole unit:

* a schema-valid batch whose time could not be converted to UTC (``0001-01-01T00:00:00+14:00``)
  raised ``OverflowError`` in paho's network thread in *both* ingest and alerting; the
  processes stayed alive and ready, and handled nothing more (and again after a restart);
* a point InfluxDB refuses (a time beyond the retention policy, a field type conflict) made the
  writer retry the whole body for ever;
* ``"value": true`` was stored as 1.0, ``"100"`` and ``"seq": "7"`` were accepted;
* SIGTERM could not stop ingest while InfluxDB was away.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerting.service import AlertingService
from ingest.core import WardIndex
from ingest.service import IngestOptions, IngestService
from ingest.storage import DownsamplingPlan, setup_database
from servicekit.context import dump_ward_file
from servicekit.influx import InfluxTarget
from servicekit.metrics import parse_metric
from tests.helpers.alerting import alerting_service
from tests.helpers.mqtt import Collector, collector, params
from tests.helpers.wait import wait_until
from tests.integration.test_ingest import Publisher
from wardwatch.devstack import Influx, Mosquitto, Stack, free_port
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation

pytestmark = pytest.mark.integration

WARD = UnitContext(
    site="s1",
    unit="u1",
    scoring_system="bedside_pews",
    generation=Generation.TEST,
    gateways=[GatewayContext(id="gw1")],
    beds=[
        BedContext(id="b1", patient="P-abcd", dob=date(2022, 1, 1), gateway="gw1", devices=["d1"])
    ],
)


def iso(dt: datetime) -> str:
    return dt.isoformat()


def obs(value: Any = 100.0, *, code: str = "HR", unit: str = "/min", at: str | None = None,
        **kw: Any) -> dict[str, Any]:
    when = at or iso(datetime.now(UTC))
    return {"device_id": "d1", "code": code, "value": value, "unit": unit,
            "measured_at": when, "received_at": iso(datetime.now(UTC)), **kw}


def raw_batch(seq: Any, observations: list[dict[str, Any]], **kw: Any) -> bytes:
    d = {"gateway_id": "gw1", "seq": seq, "sent_at": iso(datetime.now(UTC)),
         "generation": "test", "observations": observations, **kw}
    return json.dumps(d).encode()


@dataclass
class Unit:
    """Ingest and alerting of one unit, each running in a thread like in production."""

    root: str
    db: str
    influx: Influx
    ingest: IngestService
    alerting: AlertingService
    threads: list[threading.Thread]
    pub: Publisher
    dlq_ingest: Collector
    dlq_alerting: Collector
    scores: Collector
    seq: int = 0

    @property
    def obs_topic(self) -> str:
        return topics.gateway_obs("s1", "u1", "gw1", root=self.root)

    def publish(self, payload: bytes) -> None:
        self.pub.publish(self.obs_topic, payload)

    def good(self, n: int = 3, value: float = 100.0) -> None:
        """A valid batch of ``n`` HR values, now."""
        now = datetime.now(UTC)
        self.publish(raw_batch(self.next_seq(), [
            obs(value + i, at=iso(now - timedelta(milliseconds=10 * i))) for i in range(n)]))

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def stored(self, where: str = "") -> int:
        return self.influx.count(self.db, where=where)

    def dead_letters(self, col: Collector) -> list[dict[str, Any]]:
        with col.cond:
            return [json.loads(p) for _, p in col.messages]

    def alive(self) -> bool:
        return self.ingest.is_ready() and self.alerting.is_ready()


def _start(svc: Any) -> threading.Thread:
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    assert svc.ready.wait(10), f"{svc} did not subscribe"
    return t


@pytest.fixture
def unit(stack: Stack, influx_db: str) -> Iterator[Unit]:
    root = f"p{uuid.uuid4().hex[:8]}/v1"
    ing = IngestService(
        params(stack.broker, "ingest"),
        WardIndex(WARD),
        IngestOptions(
            influx_url=stack.influx.url,
            influx_db=influx_db,
            influx_user="ingest",
            influx_password=stack.influx.writer_password,
            topic_root=root,
            worker_id=f"ingest-{uuid.uuid4().hex[:6]}",
            linger_s=0.05,
        ),
    )
    alr = alerting_service(stack.broker, WARD, root)
    dlq_i = collector(stack.broker, "admin", [topics.dead_letter("ingest", root=root)])
    dlq_a = collector(stack.broker, "admin", [topics.dead_letter("alerting", root=root)])
    scores = collector(stack.broker, "admin", [topics.score("s1", "u1", "b1", root=root)])
    threads = [_start(ing), _start(alr)]
    u = Unit(root, influx_db, stack.influx, ing, alr, threads, Publisher(stack.broker),
             dlq_i, dlq_a, scores)
    yield u
    ing.stop()
    alr.stop()
    for t in threads:
        t.join(30)
    for c in (u.pub, dlq_i, dlq_a, scores):
        c.close()


def scored_since(u: Unit, n_before: int) -> bool:
    with u.scores.cond:
        return len(u.scores.messages) > n_before


POISON_TIMES = [
    "0001-01-01T00:00:00+14:00",  # OverflowError in astimezone(UTC)
    "9999-12-31T23:59:59-14:00",
    "1500-01-01T00:00:00Z",  # InfluxDB: 400 unable to parse (outside int64 ns)
    "1700-06-01T00:00:00Z",
    "2200-01-01T00:00:00Z",
]


@pytest.mark.parametrize("when", POISON_TIMES)
def test_a_poison_time_is_dead_lettered_and_both_services_go_on(unit: Unit, when: str) -> None:
    unit.publish(raw_batch(unit.next_seq(), [obs(at=when)]))
    unit.publish(raw_batch(unit.next_seq(), [obs()], sent_at=when))
    for col in (unit.dlq_ingest, unit.dlq_alerting):
        assert col.wait_for(lambda m: len(m) >= 2, timeout=20), "poison not dead-lettered"
    for col in (unit.dlq_ingest, unit.dlq_alerting):
        for dl in unit.dead_letters(col):
            assert dl["reason"].startswith("malformed:") and "time" in dl["reason"]
            assert json.loads(base64.b64decode(dl["payload_b64"]))["gateway_id"] == "gw1"
    n_scores = len(unit.scores.messages)
    unit.good(3)
    wait_until(lambda: unit.stored() == 3, timeout=20)
    wait_until(lambda: scored_since(unit, n_scores), timeout=20)
    assert unit.alive()
    assert unit.stored("time < '2000-01-01T00:00:00Z' OR time >= '2100-01-01T00:00:00Z'") == 0


@pytest.mark.parametrize(
    ("label", "payload"),
    [
        ("bool value", raw_batch(1, [obs(True)])),
        ("string value", raw_batch(1, [obs("100")])),
        ("string seq", raw_batch("7", [obs()])),
        ("float seq", raw_batch(7.0, [obs()])),
        ("epoch time", raw_batch(1, [obs(at=1_700_000_000)])),  # type: ignore[arg-type]
        ("spo2 101 as valid", raw_batch(1, [obs(101, code="SPO2", unit="%")])),
    ],
)
def test_lax_types_are_refused_not_coerced(unit: Unit, label: str, payload: bytes) -> None:
    unit.publish(payload)
    assert unit.dlq_ingest.wait_for(lambda m: len(m) >= 1, timeout=20), label
    unit.good(2)
    wait_until(lambda: unit.stored() == 2, timeout=20)
    assert unit.stored() == 2  # nothing of the refused payload, only the good batch
    assert unit.alive()


def test_an_implausible_value_flagged_invalid_is_stored_with_its_reason(unit: Unit) -> None:
    unit.publish(raw_batch(unit.next_seq(), [
        obs(101, code="SPO2", unit="%", quality="invalid",
            quality_reason="SPO2=101 outside the physical range [0, 100]"),
        obs(98, code="HR"),
    ]))
    wait_until(lambda: unit.stored() == 2, timeout=20)
    rows: Any = unit.influx.query(
        "SELECT value, quality, quality_reason FROM obs WHERE param='SPO2'", db=unit.db
    )
    values = rows["results"][0]["series"][0]["values"]
    assert [v[1:] for v in values] == [[101, "invalid", "SPO2=101 outside the physical range "
                                        "[0, 100]"]]


def _now_ns() -> int:
    return int(datetime.now(UTC).timestamp() * 1e9)


def test_points_influx_refuses_are_dead_lettered_and_storage_goes_on(unit: Unit) -> None:
    """Two kinds of permanent 400 in the middle of a stream: a point beyond the retention
    policy (a device clock reset that the edge did not catch) and a field type conflict."""
    admin = InfluxTarget(unit.influx.url, unit.db, "admin", unit.influx.admin_password)
    with httpx.Client(timeout=10) as http:
        setup_database(http, admin, DownsamplingPlan(unit.db, raw_retention="1h"))
        # Another writer typed quality_reason as an integer in the current shard.
        r = http.post(f"{unit.influx.url}/write", params={"db": unit.db, "precision": "ns"},
                      content=f"obs,bed=other quality_reason=1i {_now_ns()}".encode(),
                      auth=("admin", unit.influx.admin_password))
        assert r.status_code == 204, r.text
    unit.good(3)
    unit.publish(raw_batch(unit.next_seq(), [obs(120, at="2001-01-01T00:00:00Z"), obs(121)]))
    unit.publish(raw_batch(unit.next_seq(), [
        obs(101, code="SPO2", unit="%", quality="invalid", quality_reason="implausible"),
        obs(122)]))
    unit.good(3, value=130)
    wait_until(lambda: unit.stored("bed='b1'") == 8, timeout=30)
    assert unit.dlq_ingest.wait_for(lambda m: len(m) >= 2, timeout=20)
    reasons = sorted(dl["reason"] for dl in unit.dead_letters(unit.dlq_ingest))
    assert len(reasons) == 2
    assert all(r.startswith("influx_refused: 1 of 2 points refused by InfluxDB") for r in reasons)
    assert any("retention policy" in r for r in reasons)
    assert any("field type conflict" in r for r in reasons)
    assert unit.ingest.counters.refused_points == 2
    # and it goes on: the writer is not stuck on the refused body
    unit.good(2, value=140)
    wait_until(lambda: unit.stored("bed='b1'") == 10, timeout=20)
    assert unit.alive()


def test_a_fault_in_the_handler_is_dead_lettered_by_the_boundary(
    unit: Unit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any exception, not only a ValidationError: the boundary catches it for one message."""
    import ingest.service as svc_mod

    real_route = svc_mod.route

    def route(topic: str, payload: bytes, *a: Any, **kw: Any) -> Any:
        if b"BOOM" in payload:
            raise OverflowError("date value out of range")
        return real_route(topic, payload, *a, **kw)

    monkeypatch.setattr(svc_mod, "route", route)
    unit.publish(raw_batch(unit.next_seq(), [obs(device_id="BOOM")]))
    assert unit.dlq_ingest.wait_for(lambda m: len(m) >= 1, timeout=20)
    (dl,) = unit.dead_letters(unit.dlq_ingest)
    assert dl["reason"] == "fault: OverflowError: date value out of range"
    unit.good(2)
    wait_until(lambda: unit.stored() == 2, timeout=20)
    assert unit.ingest.boundary.faults == {"OverflowError": 1}
    metrics = unit.ingest.metrics_text()
    assert parse_metric(metrics, "wardwatch_ingest_faults_total") == 1
    assert parse_metric(metrics, "wardwatch_ingest_ready") == 1


def test_a_gateway_clock_far_ahead_is_reported(unit: Unit, stack: Stack) -> None:
    tech = collector(stack.broker, "admin", [topics.technical("s1", "u1", "ingest",
                                                              root=unit.root)])
    try:
        ahead = iso(datetime.now(UTC) + timedelta(hours=2))
        unit.publish(raw_batch(unit.next_seq(), [obs()], sent_at=ahead))
        assert tech.wait_for(lambda m: len(m) >= 1, timeout=20)
        ev = json.loads(tech.messages[0][1])
        assert ev["event"] == "clock_skew" and ev["gateway_id"] == "gw1"
        assert "ahead" in ev["detail"]
        wait_until(lambda: unit.stored() == 1, timeout=20)  # the data itself is stored
        off = unit.ingest.clock_watch.offsets()["gw1"]
        assert off > 7000
    finally:
        tech.close()


def test_sigterm_stops_ingest_while_influx_is_down_and_loses_nothing(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    """SIGTERM drains for at most --drain-timeout, then exits; what was not written stays
    un-acknowledged and is written by the next run."""
    influx = Influx(tmp_path / "influx")
    influx.start()
    influx.create_database("w")
    ward_path = tmp_path / "ward.toml"
    ward_path.write_text(dump_ward_file(WARD), encoding="utf-8")
    root = "s/v1"
    port = free_port()
    env = {
        **os.environ,
        "WM_MQTT_HOST": private_broker.host,
        "WM_MQTT_PORT": str(private_broker.port),
        "WM_MQTT_USERNAME": "ingest",
        "WM_MQTT_PASSWORD": private_broker.passwords["ingest"],
        "WM_INFLUX_URL": influx.url,
        "WM_INFLUX_DB": "w",
        "WM_INFLUX_USERNAME": "ingest",
        "WM_INFLUX_PASSWORD": influx.writer_password,
        "WM_TOPIC_ROOT": root,
        "WM_WARD_FILE": str(ward_path),
    }
    args = [sys.executable, "-m", "ingest", "run", "--worker-id", "ingest-s",
            "--metrics-port", str(port), "--drain-timeout", "2"]
    log = tmp_path / "ingest.log"

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                stderr=log.open("ab"))
        wait_until(lambda: _metric(port, "wardwatch_ingest_ready") == 1, timeout=30)
        return proc

    pub = Publisher(private_broker)
    try:
        proc = start()
        influx.stop()
        topic = topics.gateway_obs("s1", "u1", "gw1", root=root)
        for seq in range(5):
            pub.publish(topic, raw_batch(seq, [obs(100 + seq)]))
        wait_until(lambda: _metric(port, "wardwatch_ingest_write_failures_total") >= 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-2000:]  # it used to never exit
        assert "left un-acked for redelivery" in log.read_text()
        influx.start()
        proc = start()
        wait_until(lambda: influx.count("w") == 5, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        pub.close()
        influx.stop()


def _metric(port: int, name: str) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return -1.0
    return parse_metric(text, name) or 0.0


def test_a_new_outbox_epoch_is_reported_as_a_reset_not_duplicates(
    unit: Unit, stack: Stack
) -> None:
    """Issue 9, finding 4: a gateway whose outbox was replaced starts its seqs again; ingest
    used to count every new seq as a duplicate. Seqs are per epoch; a forged jump is reported
    as such, not as thousands missing."""
    tech = collector(stack.broker, "admin", [topics.technical("s1", "u1", "ingest",
                                                              root=unit.root)])
    try:
        for seq in range(5):
            unit.publish(raw_batch(seq, [obs(100 + seq)], epoch="e1"))
        for seq in range(3):
            unit.publish(raw_batch(seq, [obs(110 + seq)], epoch="e2"))
        unit.publish(raw_batch(3_742_000, [obs(120)], epoch="e2"))
        wait_until(lambda: unit.stored() == 9, timeout=20)
        assert tech.wait_for(lambda m: len(m) >= 2, timeout=20)
        events = [json.loads(p) for _, p in tech.messages]
        assert [e["event"] for e in events] == ["outbox_reset", "seq_jump"]
        assert "e1 -> e2" in events[0]["detail"]
        c = unit.ingest.counters
        assert c.seq_duplicates == 0 and c.seq_gaps == 0 and c.outbox_resets == 1
        text = unit.ingest.metrics_text()
        assert parse_metric(text, "wardwatch_ingest_seq_missing") == 0
    finally:
        tech.close()


def test_a_value_from_the_future_cannot_freeze_a_bed(unit: Unit) -> None:
    """Found by the live fuzz: a valid value stamped in 2099 stayed the bed's newest HR (older
    readings never overwrite), so no later reading was ever scored. The engine takes no value
    stamped more than a minute ahead of its clock (and raises clock_skew for the device)."""
    future = iso(datetime.now(UTC) + timedelta(days=365))
    unit.publish(raw_batch(unit.next_seq(), [obs(40, at=future)]))
    wait_until(lambda: unit.alerting.engine.counters().get("future") == 1, timeout=20)
    n = len(unit.scores.messages)
    unit.publish(raw_batch(unit.next_seq(), [obs(185)]))

    def hr_scored() -> bool:
        with unit.scores.cond:
            msgs = [json.loads(p) for _, p in unit.scores.messages[n:]]
        return any(any(i["code"] == "HR" and i["value"] == 185 for i in m["inputs"]) for m in msgs)

    wait_until(hr_scored, timeout=20)
    assert unit.alive()


def test_an_empty_observation_message_is_dead_lettered_by_both(unit: Unit) -> None:
    unit.publish(b"")
    for col in (unit.dlq_ingest, unit.dlq_alerting):
        assert col.wait_for(lambda m: len(m) >= 1, timeout=20)


def test_a_bed_that_cannot_be_scored_alerts_itself_and_stops_no_other_bed(
    unit: Unit, stack: Stack
) -> None:
    """Found by the 100k live fuzz: charted room air together with an oxygen flow (valid on
    the wire, contradictory to the scorer) raised PewsInputError in tick() and ended the
    engine's run loop: no bed of the unit was scored any more."""
    events = collector(stack.broker, "admin", [topics.alert_events("s1", "u1", root=unit.root)])
    try:
        unit.publish(raw_batch(unit.next_seq(), [
            obs(0, code="O2_DEVICE", unit="{device}", source="entered"),
            obs(2, code="O2_FLOW", unit="L/min", source="entered"),
            obs(100, code="HR"),
        ]))

        def raised() -> bool:
            with events.cond:
                evs = [json.loads(p) for _, p in events.messages]
            return any(e["event"] == "raised" and e["alert"]["condition"] == "cannot_score"
                       for e in evs)

        wait_until(raised, timeout=20)
        assert unit.alerting.is_ready()
        for hr in (101, 102):  # every later reading of the bed is refused the same way
            unit.publish(raw_batch(unit.next_seq(), [obs(hr, code="HR")]))
        wait_until(lambda: unit.alerting.engine.counters().get("cannot_score", 0) >= 3,
                   timeout=20)
        assert unit.alerting.is_ready()  # still running, message after message
        assert parse_metric(unit.alerting.metrics_text(),
                            "wardwatch_alerting_bed_faults_total") >= 3
    finally:
        events.close()
