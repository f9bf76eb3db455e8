"""Edge agent footprint and outbox drain rate, on a real mosquitto and real ptys.

    python bench/edge_footprint.py --json

Runs the gateway agent as it runs on a gateway (``python -m edge_agent run --config FILE``)
with six simulated devices at 1 Hz (3 WWMON monitors, 3 Masimo ASCII 1 oximeters) and one
waveform device: a Nonin Data Format #2 oximeter paced at 250 frames/s, i.e. 250 pleth
samples/s through the real Nonin driver and parser (Format #2 defines 75 Hz, so the blocks are
labelled 75 Hz: this is a load test, not physiology).

1. Steady state: after a warm-up, the agent's CPU (% of one core, from utime+stime in
   /proc/<pid>/stat) and RSS (VmRSS in /proc/<pid>/status, mean and max of 1 s samples) over
   a fixed window.
2. Drain: the broker is stopped while readings accumulate in the outbox for ``--outage``
   seconds, then restarted. The bench reads the agent's SQLite outbox (read-only) every 1 ms:
   ``reconnect_s`` runs from the broker's restart to the first acknowledged batch (the agent's
   jittered reconnect backoff), ``drain_s`` from there until every batch sealed during the
   outage has been acknowledged. ``drain_x_realtime = outage_s / drain_s``;
   ``drain_x_realtime_incl_reconnect`` also counts the reconnect wait.

Goals (reported, not asserted): RSS <= 60 MB, CPU <= 3 % of a core, drain >= 30x real time.
The last line printed is ``{"rss_mb": ..., "cpu_pct": ..., "drain_x_realtime": ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device_sims.scenarios import Scenario  # noqa: E402
from device_sims.serial_devices import MasimoSim, NoninSim, SerialDeviceSim, WwmonSim  # noqa: E402
from edge_agent.config import (  # noqa: E402
    BrokerSection,
    DeviceSection,
    EdgeConfig,
    GatewaySection,
    dump_edge_config,
)
from edge_agent.config import OutboxSection as OutboxCfg  # noqa: E402
from servicekit.backoff import Backoff  # noqa: E402
from servicekit.mqtt import MqttParams, connect_blocking, make_client  # noqa: E402
from wardwatch.devstack import Mosquitto  # noqa: E402
from wardwire import topics  # noqa: E402
from wardwire.models import GatewayStatus, Generation  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
GW, SITE, UNIT, ROOT = "gw-bench", "bench", "u1", f"b{uuid.uuid4().hex[:8]}/v1"
WAVE_FRAMES_PER_S = 250.0


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.01) -> Any:
    end = time.monotonic() + timeout
    while not (value := pred()):
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)  # deadline-bounded poll
    return value


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


class StatusWatch:
    """Records the gateway's status messages (birth, heartbeats)."""

    def __init__(self, broker: Mosquitto) -> None:
        p = MqttParams(
            host=broker.host,
            port=broker.port,
            username="admin",
            password=broker.passwords["admin"],
            session_expiry_s=0,
            reconnect=Backoff(initial_s=0.05, cap_s=0.5),
        )
        self.topic = topics.gateway_status(SITE, UNIT, GW, root=ROOT)
        self.statuses: list[GatewayStatus] = []
        self.client = make_client(p, client_id=f"bench-watch-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda c, *a: c.subscribe(self.topic, qos=1)
        self.client.on_message = self._on_message
        connect_blocking(self.client, p)

    def _on_message(self, c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        self.statuses.append(GatewayStatus.model_validate_json(m.payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class OutboxReader:
    """Read-only view of the agent's outbox database."""

    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def next_seq(self) -> int:
        return int(self.con.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0])

    def sealed_before(self, seq: int) -> int:
        return int(
            self.con.execute("SELECT count(*) FROM batches WHERE seq < ?", (seq,)).fetchone()[0]
        )

    def depth(self) -> tuple[int, int]:
        p = int(self.con.execute("SELECT count(*) FROM pending").fetchone()[0])
        b = int(self.con.execute("SELECT coalesce(sum(n_rows), 0) FROM batches").fetchone()[0])
        return p, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON (always on; kept for make)")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--window", type=float, default=30.0, help="steady-state window, s")
    ap.add_argument("--outage", type=float, default=20.0, help="broker down for this long, s")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="edge-footprint-"))
    broker = Mosquitto(work / "mosquitto")
    sims: list[SerialDeviceSim] = []
    agent: subprocess.Popen[bytes] | None = None
    watch: StatusWatch | None = None
    try:
        broker.start()
        password = broker.add_user(GW, site=SITE, unit=UNIT, root=ROOT)
        for i in range(3):
            sims.append(WwmonSim(f"mon{i}", Scenario("stable", seed=i), work / f"tty/mon{i}"))
            sims.append(MasimoSim(f"spo{i}", Scenario("stable", seed=10 + i), work / f"tty/spo{i}"))
        sims.append(
            NoninSim(
                "pleth0",
                Scenario("stable", seed=99),
                work / "tty/pleth0",
                period_s=25 / WAVE_FRAMES_PER_S,  # one 25-frame packet per 0.1 s
            )
        )
        drivers = {WwmonSim: "wwmon", MasimoSim: "masimo_ascii1", NoninSim: "nonin_format2"}
        for s in sims:
            s.open()
        db = work / "outbox.db"
        cfg = EdgeConfig(
            gateway=GatewaySection(id=GW, site=SITE, unit=UNIT, generation=Generation.TEST),
            broker=BrokerSection(
                host=broker.host, port=broker.port, username=GW, password=password, topic_root=ROOT
            ),
            outbox=OutboxCfg(path=db),
            heartbeat_s=5.0,
            devices=[
                DeviceSection(id=s.device_id, driver=drivers[type(s)], port=str(s.link))
                for s in sims
            ],
        )
        (work / "edge.toml").write_text(dump_edge_config(cfg), encoding="utf-8")
        watch = StatusWatch(broker)
        log = (work / "agent.log").open("ab")
        agent = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "--config", str(work / "edge.toml")],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        w = watch
        wait_for(
            lambda: any(
                len(s.devices) == len(sims) and all(d.state == "connected" for d in s.devices)
                for s in w.statuses
            ),
            20,
            "every device connected",
        )
        t_ready = time.monotonic() - t_start
        for s in sims:
            s.start()
        time.sleep(args.warmup)  # the measurement window itself, not synchronisation

        # -- steady state ---------------------------------------------------------------------
        pid = agent.pid
        rss: list[float] = []
        c0, w0 = cpu_ticks(pid), time.monotonic()
        end = w0 + args.window
        while time.monotonic() < end:
            rss.append(rss_mb(pid))
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))  # sampling period
        c1, w1 = cpu_ticks(pid), time.monotonic()
        cpu_pct = (c1 - c0) / CLK_TCK / (w1 - w0) * 100.0

        # -- outage and drain -----------------------------------------------------------------
        outbox = OutboxReader(db)
        broker.stop()
        t_down = time.monotonic()
        time.sleep(args.outage)  # the outage being simulated
        outage_s = time.monotonic() - t_down
        backlog_end = outbox.next_seq()
        backlog_batches = outbox.sealed_before(backlog_end)
        pending, sealed_rows = outbox.depth()
        broker.start()
        t_up = time.monotonic()
        wait_for(
            lambda: outbox.sealed_before(backlog_end) < backlog_batches, 60, "first ack", 0.001
        )
        t_first_ack = time.monotonic()
        wait_for(lambda: outbox.sealed_before(backlog_end) == 0, 60, "drain", 0.001)
        t_drained = time.monotonic()
        reconnect_s = t_first_ack - t_up
        drain_s = max(t_drained - t_first_ack, 0.001)  # the poll interval bounds resolution
        cpu_after = cpu_ticks(pid)
        detail = {
            "devices": {
                "wwmon_1hz": 3,
                "masimo_ascii1_1hz": 3,
                "nonin_format2_pleth_samples_per_s": WAVE_FRAMES_PER_S,
            },
            "agent_ready_s": round(t_ready, 2),
            "window_s": round(w1 - w0, 1),
            "rss_mb_max": round(max(rss), 1),
            "rss_mb_mean": round(sum(rss) / len(rss), 1),
            "cpu_pct_window": round(cpu_pct, 2),
            "outage_s": round(outage_s, 1),
            "backlog_batches": backlog_batches,
            "backlog_rows": sealed_rows + pending,
            "reconnect_s": round(reconnect_s, 3),
            "drain_s": round(drain_s, 3),
            "drain_x_realtime_incl_reconnect": round(outage_s / (t_drained - t_up), 1),
            "cpu_s_during_outage_and_drain": round((cpu_after - c1) / CLK_TCK, 2),
            "readings_sent": sum(s.emitted for s in sims),
            "sim_write_errors": sum(s.write_errors for s in sims),
            "agent_alive": agent.poll() is None,
            "total_s": round(time.monotonic() - t_start, 1),
        }
        print(json.dumps(detail))
        print(
            json.dumps(
                {
                    "rss_mb": round(max(rss), 1),
                    "cpu_pct": round(cpu_pct, 2),
                    "drain_x_realtime": round(outage_s / drain_s, 1),
                }
            )
        )
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(30)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(5)
        if watch is not None:
            watch.close()
        for s in sims:
            s.close()
        broker.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
