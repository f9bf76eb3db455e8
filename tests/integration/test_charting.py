"""The charting path on real mosquitto + influxd (issue 14): who may publish a charted set, how
ingest stores it (the no-expiry retention policy, back-entry, corrections, idempotency), what it
dead-letters, and ``wardwatch chart`` end to end."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.chart import MAX_CHART_BYTES
from ingest.core import WardIndex
from ingest.service import IngestOptions, IngestService
from ingest.storage import ChartedRecord, DownsamplingPlan, charted_sets, setup_database
from registry import audit
from registry.db import open_database, transaction
from servicekit.influx import InfluxTarget, query
from servicekit.metrics import parse_metric
from tests.helpers.mqtt import Collector, collector, params
from tests.helpers.wait import wait_until
from tests.integration.test_broker_security import Client, arrived_before, not_authorized
from tests.integration.test_ingest import Publisher, batch
from tests.unit.registry.authn import token_for
from wardwatch.devstack import Stack
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation

pytestmark = pytest.mark.integration

WARD = UnitContext(
    site="s1",
    unit="u1",
    time_zone="Asia/Shanghai",
    generation=Generation.TEST,
    gateways=[GatewayContext(id="gw1")],
    beds=[
        BedContext(id="b1", gateway="gw1", devices=["d1"]),
        BedContext(id="b2", gateway="gw1", devices=["d2"]),
    ],
)
WARD_TOML = """\
site = "s1"
unit = "u1"
time_zone = "Asia/Shanghai"
generation = "test"

[[gateways]]
id = "gw1"

[[beds]]
id = "b1"
gateway = "gw1"
devices = ["d1"]

[[beds]]
id = "b2"
gateway = "gw1"
devices = ["d2"]
"""
REPO = Path(__file__).resolve().parents[2]


def iso(t: datetime) -> str:
    return t.isoformat()


def chart_set(**over: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "schema_version": 1,
        "kind": "charted_set",
        "set_id": f"cs-{uuid.uuid4().hex[:12]}",
        "unit": "u1",
        "bed_id": "b1",
        "by": "nurse-7",
        "observed_at": iso(now - timedelta(minutes=1)),
        "charted_at": iso(now),
        "generation": "test",
        "items": {"avpu": "V", "crt_s": 3, "oxygen": {"device": "NP", "flow_lpm": 1.5},
                  "resp_signs": ["grunting"], "on_oxygen": True, "rr_bpm": None},
    }
    body.update(over)
    return body


def setup_db(stack: Stack, name: str) -> None:
    """The production layout (setup-db, twice: idempotent) and the service users' grants."""
    admin = InfluxTarget(stack.influx.url, name, "admin", stack.influx.admin_password)
    with httpx.Client(timeout=30) as http:
        setup_database(http, admin, DownsamplingPlan(name))
        setup_database(http, admin, DownsamplingPlan(name))
        query(http, admin, f'GRANT ALL ON "{name}" TO "ingest"', write=True)
        query(http, admin, f'GRANT READ ON "{name}" TO "reader"', write=True)


@dataclass
class Charting:
    """A unit's ingest worker, a console publisher and a dead-letter watcher on one stack."""

    stack: Stack
    root: str
    db: str
    ingest: IngestService
    thread: threading.Thread
    console: Client
    dlq: Collector

    @property
    def topic(self) -> str:
        return topics.charting("s1", "u1", root=self.root)

    def chart(self, body: dict[str, Any] | bytes) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        rc = self.console.publish(self.topic, payload)
        assert not rc.is_failure, rc

    def reader(self) -> InfluxTarget:
        return InfluxTarget(self.stack.influx.url, self.db, "reader",
                            self.stack.influx.reader_password)

    def sets(self, bed: str = "b1", start: datetime | None = None,
             end: datetime | None = None) -> list[ChartedRecord]:
        now = datetime.now(UTC)
        with httpx.Client(timeout=30) as http:
            return charted_sets(http, self.reader(), unit="u1", bed=bed,
                                start=start or now - timedelta(days=1),
                                end=end or now + timedelta(hours=1))

    def points(self, where: str = "") -> list[dict[str, Any]]:
        """Every point of the charted record (times in ns), as the admin sees it."""
        clause = f" WHERE {where}" if where else ""
        res = self.stack.influx.query(
            f'SELECT * FROM "{self.db}"."charted"."charted"{clause}', db=self.db
        )
        rows: list[dict[str, Any]] = []
        for s in res["results"][0].get("series") or []:  # type: ignore[index]
            rows += [dict(zip(s["columns"], v, strict=True)) for v in s["values"]]
        return rows

    def dead_letters(self) -> list[dict[str, Any]]:
        with self.dlq.cond:
            return [json.loads(p) for _, p in self.dlq.messages]


def start_ingest(stack: Stack, db: str, root: str) -> tuple[IngestService, threading.Thread]:
    opts = IngestOptions(
        influx_url=stack.influx.url,
        influx_db=db,
        influx_user="ingest",
        influx_password=stack.influx.writer_password,
        topic_root=root,
        worker_id=f"ingest-{uuid.uuid4().hex[:6]}",
        linger_s=0.05,
    )
    svc = IngestService(params(stack.broker, "ingest"), WardIndex(WARD), opts)
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    assert svc.ready.wait(10), "ingest did not subscribe (both filters granted?)"
    return svc, t


@pytest.fixture
def charting(stack: Stack, topic_root: str) -> Iterator[Charting]:
    db = f"t_{uuid.uuid4().hex[:10]}"
    setup_db(stack, db)
    svc, t = start_ingest(stack, db, topic_root)
    # the registry's identity: the one publisher of charted sets
    console = Client.connect(stack.broker, "registry", f"registry-{uuid.uuid4().hex[:6]}")
    dlq = collector(stack.broker, "admin", [topics.dead_letter("ingest", root=topic_root)])
    try:
        yield Charting(stack, topic_root, db, svc, t, console, dlq)
    finally:
        console.close()
        dlq.close()
        svc.stop()
        t.join(30)
        stack.influx.drop_database(db)


# -- who may publish a charted set -----------------------------------------------------------
def test_only_the_registry_identity_may_publish_charted_sets(stack: Stack, topic_root: str) -> None:
    """A charted set is published by the registry, as the nurse who entered it through its API;
    no other broker identity may publish one: a gateway, ingest, alerting, and the console
    (whose password would otherwise chart as any nurse)."""
    b = stack.broker
    gw = f"gw-c{uuid.uuid4().hex[:6]}"
    b.add_user(gw, site="s1", unit="u1", root=topic_root)
    chart = topics.charting("s1", "u1", root=topic_root)
    watch = collector(b, "admin", [f"{topic_root}/#"])
    gateway = Client.connect(b, gw, gw)
    services = {u: Client.connect(b, u, f"{u}-{uuid.uuid4().hex[:6]}") for u in
                ("ingest", "alerting", "console", "registry")}
    try:
        # refused (PUBACK 0x87), and nothing is delivered
        assert not_authorized(gateway.publish(chart, b"from a gateway"))
        for user in ("ingest", "alerting", "console"):
            assert not_authorized(services[user].publish(chart, f"from {user}".encode())), user
        # ingest and alerting may subscribe (ingest also shared, for several workers per unit)
        for user, filters in (
            ("ingest", [chart, topics.shared("ingest", chart)]),
            ("alerting", [chart]),
        ):
            for f in filters:
                rc = services[user].subscribe(f)
                assert not rc.is_failure, (user, f, rc)
        # the registry may publish, and its set reaches the subscribers
        rc = services["registry"].publish(chart, b"from the registry")
        assert not rc.is_failure, rc
        for user in ("ingest", "alerting"):
            assert services[user].wait_for(
                lambda m: (chart, b"from the registry") in m, timeout=10
            ), user
        marker = uuid.uuid4().hex.encode()
        assert not services["registry"].publish(chart, marker).is_failure
        seen = [p for t, p in arrived_before(watch, marker) if t == chart]
        assert seen == [b"from the registry"]
    finally:
        watch.close()
        gateway.close()
        for c in services.values():
            c.close()


# -- ingest stores charted sets ---------------------------------------------------------------
def test_a_charted_set_is_stored_in_the_policy_that_never_expires(charting: Charting) -> None:
    body = chart_set()
    charting.chart(body)
    wait_until(lambda: charting.ingest.counters.charted_sets_written == 1, timeout=30)
    policies = charting.stack.influx.query(f'SHOW RETENTION POLICIES ON "{charting.db}"')
    rows = policies["results"][0]["series"][0]["values"]  # type: ignore[index]
    assert ["charted", "0s", "8736h0m0s", 1, False] in rows  # DURATION INF, not the default
    # nothing in the default policy: the record is only in "charted"
    default = charting.stack.influx.query('SELECT * FROM "charted"', db=charting.db)
    assert "series" not in default["results"][0]  # type: ignore[index]
    res = charting.stack.influx.query(
        f'SELECT * FROM "{charting.db}"."charted"."charted"', db=charting.db
    )
    series = res["results"][0]["series"][0]  # type: ignore[index]
    (point,) = [dict(zip(series["columns"], v, strict=True)) for v in series["values"]]
    observed = datetime.fromisoformat(body["observed_at"])
    assert point == {
        # the admin query answers in ms (charted_sets() reads ns, below)
        "time": (observed - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1),
        "unit": "u1", "bed": "b1", "set_id": body["set_id"], "by": "nurse-7",
        "generation": "test",
        "avpu__str": "V", "crt_s": 3.0, "oxygen__json": '{"device":"NP","flow_lpm":1.5}',
        "resp_signs__json": '["grunting"]', "on_oxygen__bool": True, "rr_bpm__json": "null",
        "charted_at": body["charted_at"], "already_escalated": False,
    }
    (rec,) = charting.sets()
    assert rec.set_id == body["set_id"] and rec.by == "nurse-7" and not rec.superseded
    assert rec.observed_at == observed  # to the microsecond
    assert rec.charted_at == datetime.fromisoformat(body["charted_at"])
    assert rec.items == {"avpu": "V", "crt_s": 3.0, "oxygen": {"device": "NP", "flow_lpm": 1.5},
                         "resp_signs": ["grunting"], "on_oxygen": True, "rr_bpm": None}
    metrics = charting.ingest.metrics_text()
    assert parse_metric(metrics, "wardwatch_ingest_charted_sets_written_total") == 1
    assert charting.dead_letters() == []


def test_a_back_entry_is_stored_at_the_time_it_was_observed(charting: Charting) -> None:
    now = datetime.now(UTC)
    three_h = now - timedelta(hours=3)
    body = chart_set(observed_at=iso(three_h), charted_at=iso(now), already_escalated=True)
    charting.chart(body)
    wait_until(lambda: charting.ingest.counters.charted_sets_written == 1, timeout=30)
    (rec,) = charting.sets(start=three_h - timedelta(minutes=1), end=three_h + timedelta(minutes=1))
    assert rec.observed_at == three_h and rec.charted_at == now and rec.already_escalated
    assert charting.sets(start=now - timedelta(hours=1), end=now + timedelta(minutes=1)) == []


def test_a_correction_supersedes_a_set_and_both_are_kept(charting: Charting) -> None:
    first = chart_set(items={"avpu": "P"})
    charting.chart(first)
    fix = chart_set(set_id=f"{first['set_id']}-fix", observed_at=first["observed_at"],
                    supersedes=first["set_id"], items={"avpu": "A"})
    charting.chart(fix)
    # a second correction of the first, observed at another time (outside the range read)
    later = chart_set(set_id=f"{first['set_id']}-fix2",
                      observed_at=iso(datetime.now(UTC)), supersedes=first["set_id"],
                      items={"avpu": "V"})
    charting.chart(later)
    wait_until(lambda: charting.ingest.counters.charted_sets_written == 3, timeout=30)
    observed = datetime.fromisoformat(first["observed_at"])
    recs = {r.set_id: r for r in charting.sets(start=observed, end=observed + timedelta(seconds=1))}
    assert set(recs) == {first["set_id"], fix["set_id"]}  # same time: two points, none lost
    orig, corr = recs[first["set_id"]], recs[fix["set_id"]]
    assert orig.items == {"avpu": "P"} and corr.items == {"avpu": "A"}
    assert orig.superseded_by == (fix["set_id"], later["set_id"]) and orig.superseded
    assert corr.supersedes == first["set_id"] and not corr.superseded
    assert len(charting.points()) == 3  # nothing deleted or overwritten


def test_the_same_set_delivered_twice_is_stored_once(charting: Charting) -> None:
    payload = json.dumps(chart_set()).encode()
    charting.chart(payload)
    charting.chart(payload)
    wait_until(lambda: charting.ingest.counters.charted_sets_written == 2, timeout=30)
    assert len(charting.points()) == 1
    assert len(charting.sets()) == 1


HOSTILE: list[tuple[str, bytes, str]] = [
    ("unknown key", json.dumps(chart_set(items={"avpu": "V", "pain": 3})).encode(),
     "malformed: (payload): items: not charting keys: ['pain']"),
    ("wrong bed", json.dumps(chart_set(bed_id="b9")).encode(),
     "unknown_bed: bed 'b9' is not a bed of s1/u1"),
    ("wrong generation", json.dumps(chart_set(generation="real")).encode(),
     "wrong_generation: real data on a test ward is not stored"),
    ("wrong unit", json.dumps(chart_set(unit="u2")).encode(), "wrong_unit: set for unit 'u2'"),
    ("oversized", json.dumps(chart_set(items={"avpu": "V"})).encode()[:-1]
     + b" " * MAX_CHART_BYTES + b"}", "oversized: "),
    ("nested junk", json.dumps(chart_set(items={"oxygen": {"a": {"b": {"c": [1]}}}})).encode(),
     "malformed: items.oxygen"),
    ("too many entries", json.dumps(chart_set(items={"oxygen": {str(i): 1 for i in range(9)}}))
     .encode(), "malformed: items.oxygen"),
    ("not json", b"\x00\xff{not json", "malformed: "),
    ("another kind", json.dumps({"kind": "ack"}).encode(), "malformed: "),
    ("self-superseding", json.dumps(chart_set(set_id="cs-x", supersedes="cs-x")).encode(),
     "malformed: supersedes: set 'cs-x' cannot supersede itself"),
]


def test_hostile_charting_payloads_are_dead_lettered_with_a_reason(charting: Charting) -> None:
    for _name, payload, _reason in HOSTILE:
        charting.chart(payload)
    good = chart_set()
    charting.chart(good)  # the path never stalls
    assert charting.dlq.wait_for(lambda m: len(m) == len(HOSTILE), timeout=30)
    wait_until(lambda: charting.ingest.counters.charted_sets_written == 1, timeout=30)
    got = charting.dead_letters()
    for (name, payload, reason), dl in zip(HOSTILE, got, strict=True):
        assert dl["reason"].startswith(reason), (name, dl["reason"])
        assert dl["topic"] == charting.topic
        assert base64.b64decode(dl["payload_b64"]) == payload[:64 * 1024], name
    assert [r.set_id for r in charting.sets()] == [good["set_id"]]
    c = charting.ingest.counters
    assert c.charted_dead_lettered == {
        "malformed": 6, "unknown_bed": 1, "wrong_generation": 1, "wrong_unit": 1, "oversized": 1,
    }
    text = charting.ingest.metrics_text()
    line = ('wardwatch_ingest_charted_dead_lettered_total{reason="malformed",'
            f'worker="{charting.ingest.opts.worker_id}"}} 6.0')
    assert line in text


def test_a_database_without_the_charted_policy_holds_back_charted_sets_only(
    stack: Stack, topic_root: str, influx_db: str
) -> None:
    """Before setup-db made "charted", sets wait un-acknowledged; vital signs go on; once the
    policy exists the waiting set is written."""
    svc, t = start_ingest(stack, influx_db, topic_root)
    # the registry's identity: the one publisher of charted sets
    console = Client.connect(stack.broker, "registry", f"registry-{uuid.uuid4().hex[:6]}")
    pub = Publisher(stack.broker)
    try:
        body = chart_set()
        assert not console.publish(topics.charting("s1", "u1", root=topic_root),
                                   json.dumps(body).encode()).is_failure
        wait_until(lambda: svc.counters.charted_write_failures >= 1, timeout=30)
        pub.publish(topics.gateway_obs("s1", "u1", "gw1", root=topic_root), batch("gw1", "d1", 0))
        wait_until(lambda: stack.influx.count(influx_db) == 4, timeout=30)
        assert svc.counters.charted_sets_written == 0
        admin = InfluxTarget(stack.influx.url, influx_db, "admin", stack.influx.admin_password)
        with httpx.Client(timeout=30) as http:
            setup_database(http, admin, DownsamplingPlan(influx_db))
        wait_until(lambda: svc.counters.charted_sets_written == 1, timeout=30)
    finally:
        pub.close()
        console.close()
        svc.stop()
        t.join(30)
    assert svc.counters.dead_lettered == 0


# -- wardwatch chart, end to end --------------------------------------------------------------
def publish_marker(watch: Collector, topic: str, marker: bytes) -> None:
    """Publish on the watcher's own (admin) connection: no second client to leak."""
    info = watch.client.publish(topic, marker, qos=1)
    info.wait_for_publish(10)
    assert info.is_published()


def run_chart(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wardwatch", "chart", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env={"PATH": os.environ.get("PATH", ""), **env},
    )


def registry_cli(db: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "registry", *args, "--db", db],
                          capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


@dataclass
class Registry:
    url: str
    tokens: dict[str, Path]
    db: str

    def env(self, user: str | None, ward: Path) -> dict[str, str]:
        """A nurse's shell: her token file, the ward file, no broker credential at all."""
        env = {"WM_WARD_FILE": str(ward)}
        if user is not None:
            env["WM_REGISTRY_TOKEN_FILE"] = str(self.tokens[user])
        return env


@pytest.fixture
def registry(stack: Stack, topic_root: str, tmp_path: Path) -> Iterator[Registry]:
    """``registry serve --mqtt`` for the unit of WARD_TOML (the registry identity on the
    stack's broker), with two nurses and a biomed and their tokens in 0600 files."""
    ward = tmp_path / "ward.toml"
    ward.write_text(WARD_TOML, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    registry_cli(db, "import-ward", str(ward))
    tokens = {}
    engine = open_database(db)  # the users straight through the service layer: no CLI start-ups
    try:
        for user, role in (("nurse-9", "nurse"), ("nurse-10", "nurse_in_charge"),
                           ("bme-1", "biomed")):
            tokens[user] = tmp_path / f"{user}.token"
            fd = os.open(tokens[user], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(token_for(engine, role, user) + "\n")
    finally:
        engine.dispose()
    # its change events at start say it is connected (a set charted before would be a 503)
    events = collector(stack.broker, "admin", [f"{topic_root}/registry/#"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry", "serve", "--db", db, "--port", "0", "--mqtt"],
        env={**os.environ, **stack.env("registry"), "WM_TOPIC_ROOT": topic_root},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("serving http://"), first
        wait_until(lambda: len(events.messages) >= 1, timeout=30)
        yield Registry(first.split()[1], tokens, db)
    finally:
        events.close()
        proc.terminate()
        proc.wait(30)


def test_wardwatch_chart_goes_through_the_registry_as_the_nurse_and_ingest_stores_it(
    charting: Charting, registry: Registry, tmp_path: Path
) -> None:
    ward = tmp_path / "ward.toml"
    watch = collector(charting.stack.broker, "admin", [charting.topic])
    env = registry.env("nurse-9", ward)
    try:
        done = run_chart(env, "--bed", "b1", "--obs",
                         '{"avpu": "P", "crt_s": 4, "on_oxygen": false}',
                         "--registry", registry.url)
        assert done.returncode == 0, done.stderr
        set_id = done.stdout.strip()
        assert set_id.startswith("cs-"), done.stdout
        wait_until(lambda: charting.ingest.counters.charted_sets_written == 1, timeout=30)
        (rec,) = charting.sets()
        assert (rec.set_id, rec.by, rec.items) == (
            set_id, "nurse-9", {"avpu": "P", "crt_s": 4.0, "on_oxygen": False}
        )
        # it arrived on the unit's charting topic, published by the registry, by the nurse
        wait_until(lambda: len(watch.messages) >= 1, timeout=30)
        with watch.cond:
            (topic, payload), = watch.messages
        assert topic == charting.topic and json.loads(payload)["by"] == "nurse-9"
    finally:
        watch.close()
    # a back-entry in the unit's local time (Asia/Shanghai, UTC+8) correcting it, --as checked
    local = (datetime.now(UTC) - timedelta(hours=3)).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Shanghai")).replace(microsecond=0, tzinfo=None)
    done = run_chart(registry.env("nurse-10", ward), "--bed", "b1", "--obs", '{"avpu": "A"}',
                     "--at", local.isoformat(), "--supersedes", set_id, "--already-escalated",
                     "--as", "nurse-10", "--json", "--context",
                     f"{registry.url}/units/s1/u1/context")
    assert done.returncode == 0, done.stderr
    fix = json.loads(done.stdout)
    assert fix["supersedes"] == set_id and fix["by"] == "nurse-10" and fix["already_escalated"]
    assert fix["observed_at"] == (local - timedelta(hours=8)).isoformat() + "Z"
    wait_until(lambda: charting.ingest.counters.charted_sets_written == 2, timeout=30)
    recs = {r.set_id: r for r in charting.sets()}
    assert recs[set_id].superseded_by == (fix["set_id"],)
    assert recs[fix["set_id"]].observed_at == local.replace(tzinfo=UTC) - timedelta(hours=8)
    # the registry's audit log: who charted which set, no values
    engine = open_database(registry.db)
    try:
        with transaction(engine) as session:
            entered = [(e.actor, e.detail["set"], e.subject) for e in audit.entries(session)
                       if e.action == "chart.entered"]
    finally:
        engine.dispose()
    assert entered == [("nurse-9", set_id, "charting/s1/u1/b1"),
                       ("nurse-10", fix["set_id"], "charting/s1/u1/b1")]


REFUSED = [
    # (user, args, exit status, what stderr says)
    ("nurse-9", ["--obs", '{"pain": 3}'], 2, "not charting keys: ['pain'] (charting keys: "),
    ("nurse-9", ["--obs", '{"avpu": "V"'], 2, "--obs is not JSON"),
    ("nurse-9", ["--obs", '["avpu"]'], 2, "--obs must be a JSON object"),
    ("nurse-9", ["--obs", '{"avpu": "V"}', "--bed", "b9"], 2,
     "bed 'b9' is not a bed of s1/u1 (beds: b1, b2)"),
    ("nurse-9", ["--obs", '{"avpu": "V"}', "--at", "2999-01-01T00:00Z"], 2, "in the future"),
    ("nurse-9", ["--obs", '{"avpu": "V"}', "--at", "yesterday"], 2, "not an ISO 8601 time"),
    ("nurse-9", ["--obs", '{"crt_s": NaN}'], 2, "items.crt_s"),
    ("nurse-9", ["--obs", '{"avpu": "V"}', "--supersedes", "no such id!"], 2, "supersedes"),
    # who may chart: the registry decides from the token, never from --as
    ("bme-1", ["--obs", '{"avpu": "V"}'], 2, "may not chart observations"),
    ("nurse-9", ["--obs", '{"avpu": "V"}', "--as", "nurse-10"], 2,
     "--as nurse-10, but the token is nurse-9's"),
    (None, ["--obs", '{"avpu": "V"}'], 2, "no registry token"),
]


def test_wardwatch_chart_refuses_and_publishes_nothing(
    stack: Stack, topic_root: str, registry: Registry, tmp_path: Path
) -> None:
    ward = tmp_path / "ward.toml"
    watch = collector(stack.broker, "admin", [f"{topic_root}/#"])
    try:
        for user, args, status, message in REFUSED:
            if "--bed" not in args:
                args = ["--bed", "b1", *args]
            done = run_chart(registry.env(user, ward), *args, "--registry", registry.url)
            assert done.returncode == status, (user, args, done.stdout, done.stderr)
            assert message in done.stderr, (args, done.stderr)
            assert done.stdout == ""
        # a registry that is not there: exit 1, nothing sent
        done = run_chart(registry.env("nurse-9", ward), "--bed", "b1", "--obs",
                         '{"avpu": "V"}', "--registry", "http://127.0.0.1:9")
        assert done.returncode == 1 and "cannot reach the registry" in done.stderr, done.stderr
        done = run_chart(registry.env("nurse-9", ward), "--bed", "b1", "--obs",
                         '{"avpu": "V"}', "--context", "http://127.0.0.1:9/units/s1/u1/context")
        assert done.returncode == 1 and "cannot reach the registry" in done.stderr, done.stderr
        # a registry without a broker (serve without --mqtt): 503, exit 1, nothing audited
        proc = subprocess.Popen(
            [sys.executable, "-m", "registry", "serve", "--db", registry.db, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("serving http://"), first
            done = run_chart(registry.env("nurse-9", ward), "--bed", "b1", "--obs",
                             '{"avpu": "V"}', "--registry", first.split()[1])
        finally:
            proc.terminate()
            proc.wait(30)
        assert done.returncode == 1, done.stderr
        assert "not charted (503): no broker configured" in done.stderr, done.stderr
        engine = open_database(registry.db)
        try:
            with transaction(engine) as session:
                assert not [e for e in audit.entries(session) if e.action == "chart.entered"]
        finally:
            engine.dispose()
        marker = uuid.uuid4().hex.encode()
        publish_marker(watch, f"{topic_root}/marker", marker)
        assert arrived_before(watch, marker) == []  # nothing was published
    finally:
        watch.close()
