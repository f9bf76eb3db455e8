"""Chaos on real services: outages sized by backlog (>= 100k observations), zero loss.

Ingest runs as real worker processes (``python -m ingest run``) so it can be ``kill -9``ed;
the load comes from the ward-scale load generator. "Lost" = observations the broker
acknowledged to the publisher minus observations queried back from InfluxDB.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from device_sims.loadgen import LoadSpec, PublishResult, publish_all
from servicekit.context import dump_ward_file
from servicekit.metrics import parse_metric
from tests.helpers.mqtt import collector, params
from tests.helpers.wait import wait_until
from wardwatch.devstack import Influx, Mosquitto, free_port
from wardwire import topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# 50 gateways x 10 beds x 8 parameters = 4,000 observations per simulated second.
SPEC_ARGS = {"gateways": 50, "beds_per_gateway": 10}
SECONDS = 30  # 120,000 observations, 1,500 messages


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    metrics_url: str
    log: Path

    def metric(self, name: str) -> float:
        try:
            text = httpx.get(self.metrics_url, timeout=2).text
        except httpx.HTTPError:
            return -1.0
        return parse_metric(text, name) or 0.0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class Rig:
    tmp: Path
    broker: Mosquitto
    influx: Influx
    spec: LoadSpec
    workers: list[Worker] = field(default_factory=list)

    @property
    def ward_path(self) -> Path:
        return self.tmp / "ward.toml"

    def start_worker(
        self,
        name: str,
        *,
        seq_audit: bool = False,
        subscription: str = "exclusive",
        extra: list[str] | None = None,
    ) -> Worker:
        port = free_port()
        env = {
            **os.environ,
            "WM_MQTT_HOST": self.broker.host,
            "WM_MQTT_PORT": str(self.broker.port),
            "WM_MQTT_USERNAME": "ingest",
            "WM_MQTT_PASSWORD": self.broker.passwords["ingest"],
            "WM_INFLUX_URL": self.influx.url,
            "WM_INFLUX_DB": "w",
            "WM_INFLUX_USERNAME": "ingest",
            "WM_INFLUX_PASSWORD": self.influx.writer_password,
            "WM_TOPIC_ROOT": self.spec.root,
            "WM_WARD_FILE": str(self.ward_path),
            "WM_LOG_LEVEL": "WARNING",
        }
        log = self.tmp / f"{name}.log"
        args = [
            sys.executable,
            "-m",
            "ingest",
            "run",
            "--worker-id",
            name,
            "--metrics-port",
            str(port),
            "--subscription",
            subscription,
        ]
        if not seq_audit:
            args.append("--no-seq-audit")
        args += extra or []
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))  # noqa: SIM115 - owned by the child
        w = Worker(name, proc, f"http://127.0.0.1:{port}/metrics", log)
        try:
            wait_until(lambda: w.metric("wardwatch_ingest_ready") == 1, timeout=30)
        except TimeoutError:
            raise AssertionError(log.read_text()[-2000:]) from None
        self.workers.append(w)
        return w

    def publish_in_background(
        self, seconds: int = SECONDS
    ) -> tuple[threading.Thread, list[PublishResult]]:
        out: list[PublishResult] = []

        def run() -> None:
            out.append(
                publish_all(
                    params(self.broker, "loadgen"),
                    self.spec.payloads(seconds),
                    connections=2,
                    window=100,
                )
            )

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, out

    def stored(self) -> int:
        return self.influx.count("w")


@pytest.fixture
def rig(tmp_path: Path, private_broker: Mosquitto) -> Iterator[Rig]:
    influx = Influx(tmp_path / "influx")
    influx.start()
    influx.create_database("w")
    spec = LoadSpec(**SPEC_ARGS, root=f"chaos{os.getpid()}/v1")  # type: ignore[arg-type]
    r = Rig(tmp_path, private_broker, influx, spec)
    r.ward_path.write_text(dump_ward_file(spec.ward()), encoding="utf-8")
    yield r
    for w in r.workers:
        w.stop()
    influx.stop()


def published_obs(res: list[PublishResult], spec: LoadSpec) -> int:
    assert res and res[0].refused == 0
    return res[0].acked * spec.beds_per_gateway * len(spec.params)


def test_influxdb_killed_and_restarted_loses_nothing(rig: Rig) -> None:
    w = rig.start_worker("ingest-a", seq_audit=True)
    t, res = rig.publish_in_background()
    wait_until(
        lambda: w.metric("wardwatch_ingest_written_observations_total") >= 20_000, timeout=120
    )
    rig.influx.kill()
    wait_until(lambda: w.metric("wardwatch_ingest_write_failures_total") >= 3, timeout=60)
    t.join(300)
    total = published_obs(res, rig.spec)
    assert total == 120_000
    assert rig.influx.proc is not None
    rig.influx.start()  # same ports, same data dir: acknowledged writes survived the kill
    wait_until(lambda: rig.stored() >= total, timeout=240, interval=0.5)
    assert rig.stored() == total
    assert w.metric("wardwatch_ingest_seq_missing") == 0


def test_mosquitto_restarted_mid_stream_loses_nothing(rig: Rig) -> None:
    w = rig.start_worker("ingest-a")
    t, res = rig.publish_in_background()
    wait_until(
        lambda: w.metric("wardwatch_ingest_written_observations_total") >= 20_000, timeout=120
    )
    rig.broker.stop()  # orderly: mosquitto saves sessions and queued messages
    rig.broker.start()  # same port; every client reconnects on its own
    t.join(300)
    total = published_obs(res, rig.spec)
    assert total == 120_000
    wait_until(lambda: rig.stored() >= total, timeout=240, interval=0.5)
    assert rig.stored() == total


def test_worker_killed_while_another_runs_loses_nothing(rig: Rig) -> None:
    a = rig.start_worker("ingest-a", subscription="shared")
    b = rig.start_worker("ingest-b", subscription="shared")
    t, res = rig.publish_in_background()
    wait_until(
        lambda: a.metric("wardwatch_ingest_written_observations_total") >= 10_000, timeout=120
    )
    a.kill()  # kill -9: its un-acked messages stay in its broker session
    t.join(300)
    total = published_obs(res, rig.spec)
    # b keeps writing what it is given; a's share waits in a's session until a is back
    # (a supervisor restarts it with the same identity), then it is redelivered.
    wait_until(lambda: b.metric("wardwatch_ingest_received_total") > 0, timeout=30)
    rig.workers.remove(a)
    rig.start_worker("ingest-a", subscription="shared")
    wait_until(lambda: rig.stored() >= total, timeout=240, interval=0.5)
    assert rig.stored() == total
    assert b.metric("wardwatch_ingest_written_observations_total") > 0


def test_ten_thousand_malformed_payloads_are_all_dead_lettered(rig: Rig) -> None:
    w = rig.start_worker("ingest-a")
    dlq = collector(rig.broker, "admin", [topics.dead_letter("ingest", root=rig.spec.root)])
    good = list(rig.spec.payloads(SECONDS))
    topic = good[0][0]
    kinds = [
        b"",
        b"garbage \xff\xfe",
        b"{}",
        b'{"schema_version": 9}',
        b"[1, 2, 3]",
        good[0][1][:-7],
        good[0][1].replace(b'"HR"', b'"XX"', 1),
        good[0][1].replace(b'"/min"', b'"bpm"', 1),
    ]
    bad = [(topic, kinds[i % len(kinds)] + b" " * (i // len(kinds) % 3)) for i in range(10_000)]
    mixed: list[tuple[str, bytes]] = []
    for i, m in enumerate(good):
        mixed.append(m)
        mixed.extend(bad[i * 7 : (i + 1) * 7])
    mixed.extend(bad[len(good) * 7 :])
    assert len(mixed) == len(good) + 10_000
    res = publish_all(params(rig.broker, "loadgen"), mixed, connections=2, window=100)
    assert res.refused == 0
    try:
        assert dlq.wait_for(lambda m: len(m) >= 10_000, timeout=240)
        wait_until(lambda: rig.stored() >= 120_000, timeout=240, interval=0.5)
    finally:
        dlq.close()
    assert rig.stored() == 120_000
    assert len(dlq.messages) == 10_000
    reasons = {json.loads(p)["reason"].split(":")[0] for _, p in dlq.messages}
    assert reasons == {"malformed"}
    originals = {base64.b64decode(json.loads(p)["payload_b64"]) for _, p in dlq.messages}
    assert originals == {p for _, p in bad}
    assert w.metric("wardwatch_ingest_dead_lettered_total") == 10_000


def test_orderly_shutdown_drains_what_it_holds(rig: Rig) -> None:
    stats = rig.tmp / "stats.json"
    w = rig.start_worker("ingest-a", extra=["--stats-file", str(stats)])
    t, res = rig.publish_in_background()
    wait_until(lambda: w.metric("wardwatch_ingest_received_total") >= 200, timeout=120)
    # Stop it mid-stream: it must write and ack everything it took before exiting.
    w.proc.send_signal(signal.SIGTERM)
    w.proc.wait(60)
    rig.workers.remove(w)
    assert w.proc.returncode == 0, w.log.read_text()[-2000:]
    st = json.loads(stats.read_text())
    assert st["accepted"] > 0
    assert st["acked_msgs"] == st["accepted"]
    assert rig.stored() == st["written_obs"]
    t.join(300)
    total = published_obs(res, rig.spec)
    # What was published while it was down waits in its session and arrives when it is back.
    rig.start_worker("ingest-a")
    wait_until(lambda: rig.stored() >= total, timeout=240, interval=0.5)
    assert rig.stored() == total
