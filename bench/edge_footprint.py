"""Edge agent footprint and outbox drain rate, on a real mosquitto and real ptys.

    python bench/edge_footprint.py --json
    python bench/edge_footprint.py --load bay --skip-drain --agent-src /tmp/edge-before

Runs the gateway agent as it runs on a gateway (``python -m edge_agent run --config FILE``)
under one of two loads (``--load``):

- ``standard`` (default): six simulated devices at 1 Hz (3 WWMON monitors, 3 Masimo ASCII 1
  oximeters) and one waveform device: a Nonin Data Format #2 oximeter paced at 250 frames/s,
  i.e. 250 pleth samples/s through the real Nonin driver and parser (Format #2 defines 75 Hz,
  so the blocks are labelled 75 Hz: this is a load test, not physiology). 7 devices in all.
- ``bay``: a full bay, 24 devices: 12 WWMON monitors and 11 Masimo ASCII 1 oximeters at 1 Hz
  plus the same single 250 frames/s Nonin (23 + 1; the simulators impose no limit, so this
  is exactly the intended mix).

1. Steady state: after a warm-up, the agent's CPU (% of one core, from utime+stime in
   /proc/<pid>/stat) and RSS (VmRSS in /proc/<pid>/status, mean and max of 1 s samples) over
   a fixed window, the agent's thread count at the end of the window (``Threads:`` in
   /proc/<pid>/status) and the machine's 1-minute load average (``os.getloadavg()``) at the
   start and end of the window, so contention from other processes is visible.
   ``readings`` is the number of values the agent read during the window: observations plus
   waveform samples whose ``received_at`` (the gateway's time when the bytes arrived) falls in
   the window, counted from the batches the bench's own MQTT subscriber receives (JSON parsed
   in the bench process, so counting costs the agent nothing; duplicates are dropped by
   ``seq``). After the window the bench waits until a batch carries a value received after it
   (at most ~1 s: the outbox linger), so values read late in the window are counted too.
   ``cpu_us_per_reading`` = agent CPU microseconds in the window / ``readings``.
2. Drain (skipped with ``--skip-drain``): the broker is stopped while readings accumulate in
   the outbox for ``--outage`` seconds, then restarted. The bench reads the agent's SQLite
   outbox (read-only) every 1 ms: ``reconnect_s`` runs from the broker's restart to the first
   acknowledged batch (the agent's jittered reconnect backoff), ``drain_s`` from there until
   every batch sealed during the outage has been acknowledged.
   ``drain_x_realtime = outage_s / drain_s``; ``drain_x_realtime_incl_reconnect`` also counts
   the reconnect wait. With ``--skip-drain`` the drain keys are ``null``.

``--agent-src DIR`` runs the agent from another source tree (e.g. a ``git worktree`` of an
older commit): the agent process gets ``PYTHONPATH=DIR`` prepended *and* runs with ``cwd=DIR``
(``python -m`` puts the working directory ahead of PYTHONPATH, so ``cwd=REPO`` would silently
load this tree's code). The config file is written by that tree's own ``edge_agent.config``
in a child process with the same environment, which also reports where ``edge_agent`` was
imported from (``agent_module``); ``agent_cwd`` is read back from /proc/<pid>/cwd. The
simulators, broker and bench always come from this tree, so the load is the same whichever
agent is measured.

Goals (reported, not asserted), for the standard load: RSS <= 60 MB, CPU <= 2 % of a core;
drain >= 30x real time.
The last line printed is ``{"rss_mb": ..., "cpu_pct": ..., "drain_x_realtime": ..., "load":
..., "devices": ..., "rss_mb_mean": ..., "rss_mb_max": ..., "readings": ...,
"cpu_us_per_reading": ..., "threads": ..., "loadavg_1m_start": ..., "loadavg_1m_end": ...}``
(``rss_mb`` is the max, as before).
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
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device_sims.scenarios import Scenario  # noqa: E402
from device_sims.serial_devices import MasimoSim, NoninSim, SerialDeviceSim, WwmonSim  # noqa: E402
from servicekit.backoff import Backoff  # noqa: E402
from servicekit.mqtt import MqttParams, connect_blocking, make_client  # noqa: E402
from wardwatch.devstack import Mosquitto  # noqa: E402
from wardwire import topics  # noqa: E402
from wardwire.models import GatewayStatus, Generation  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
GW, SITE, UNIT, ROOT = "gw-bench", "bench", "u1", f"b{uuid.uuid4().hex[:8]}/v1"
WAVE_FRAMES_PER_S = 250.0
#: --load -> (WWMON monitors at 1 Hz, Masimo ASCII 1 oximeters at 1 Hz); plus one Nonin.
LOADS = {"standard": (3, 3), "bay": (12, 11)}

# Run in a child with the agent's environment: the config is rendered by the code that will
# read it (the agent's tree may have another config schema than this one), and the child
# reports which edge_agent it imported.
CONFIG_WRITER = """\
import json, sys
import edge_agent
from edge_agent.config import EdgeConfig, dump_edge_config
cfg = EdgeConfig.model_validate(json.loads(sys.argv[2]))
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write(dump_edge_config(cfg))
print(edge_agent.__file__)
"""


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


def proc_status(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def rss_mb(pid: int) -> float:
    return int(proc_status(pid, "VmRSS").split()[0]) / 1024.0


def threads(pid: int) -> int:
    return int(proc_status(pid, "Threads"))


def loadavg_1m() -> float:
    return round(os.getloadavg()[0], 2)


def _epoch_s(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


class StatusWatch:
    """Records the gateway's status messages (birth, heartbeats) and counts the values in
    the observation batches it publishes, by the gateway's ``received_at``."""

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
        self.obs_topic = topics.gateway_obs(SITE, UNIT, GW, root=ROOT)
        self.statuses: list[GatewayStatus] = []
        self._lock = threading.Lock()
        self._seqs: set[tuple[str | None, int]] = set()
        self._received: list[tuple[float, int]] = []  # (received_at epoch s, values)
        self.latest_received = 0.0
        self.batches = 0
        self.client = make_client(p, client_id=f"bench-watch-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda c, *a: c.subscribe([(self.topic, 1), (self.obs_topic, 1)])
        self.client.on_message = self._on_message
        connect_blocking(self.client, p)

    def _on_message(self, c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        if m.topic == self.obs_topic:
            self._on_batch(m.payload)
        else:
            self.statuses.append(GatewayStatus.model_validate_json(m.payload))

    def _on_batch(self, payload: bytes | bytearray) -> None:
        batch = json.loads(payload)
        key = (batch.get("epoch"), int(batch["seq"]))
        rows = [(_epoch_s(o["received_at"]), 1) for o in batch.get("observations", [])]
        rows += [
            (_epoch_s(w["received_at"]), len(w["samples"])) for w in batch.get("waveforms", [])
        ]
        with self._lock:
            if key in self._seqs:
                return  # a redelivery
            self._seqs.add(key)
            self.batches += 1
            self._received.extend(rows)
            if rows:
                self.latest_received = max(self.latest_received, max(t for t, _ in rows))

    def readings_between(self, t0: float, t1: float) -> int:
        """Values (observations + waveform samples) the gateway received in [t0, t1)."""
        with self._lock:
            return sum(n for t, n in self._received if t0 <= t < t1)

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


def agent_env(agent_src: Path | None) -> tuple[dict[str, str], Path]:
    """Environment and working directory for the agent (and its config writer)."""
    env = dict(os.environ)
    if agent_src is None:
        return env, REPO
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(agent_src) + (os.pathsep + old if old else "")
    return env, agent_src


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON (always on; kept for make)")
    ap.add_argument("--load", choices=sorted(LOADS), default="standard", help="device mix")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--window", type=float, default=30.0, help="steady-state window, s")
    ap.add_argument("--outage", type=float, default=20.0, help="broker down for this long, s")
    ap.add_argument("--skip-drain", action="store_true", help="skip the outage/drain phase")
    ap.add_argument(
        "--agent-src",
        type=Path,
        default=None,
        metavar="DIR",
        help="run the agent from this source tree (PYTHONPATH=DIR prepended, cwd=DIR)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    agent_src: Path | None = None
    if args.agent_src is not None:
        agent_src = args.agent_src.resolve()
        if not (agent_src / "edge_agent" / "__init__.py").is_file():
            ap.error(f"--agent-src {agent_src}: no edge_agent package there")
    env, cwd = agent_env(agent_src)
    n_wwmon, n_masimo = LOADS[args.load]
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="edge-footprint-"))
    broker = Mosquitto(work / "mosquitto")
    sims: list[SerialDeviceSim] = []
    agent: subprocess.Popen[bytes] | None = None
    watch: StatusWatch | None = None
    try:
        broker.start()
        password = broker.add_user(GW, site=SITE, unit=UNIT, root=ROOT)
        for i in range(max(n_wwmon, n_masimo)):
            if i < n_wwmon:
                sims.append(WwmonSim(f"mon{i}", Scenario("stable", seed=i), work / f"tty/mon{i}"))
            if i < n_masimo:
                sims.append(
                    MasimoSim(f"spo{i}", Scenario("stable", seed=10 + i), work / f"tty/spo{i}")
                )
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
        cfg = {
            "gateway": {"id": GW, "site": SITE, "unit": UNIT, "generation": Generation.TEST.value},
            "broker": {
                "host": broker.host,
                "port": broker.port,
                "username": GW,
                "password": password,
                "topic_root": ROOT,
            },
            "outbox": {"path": str(db)},
            "heartbeat_s": 5.0,
            "devices": [
                {"id": s.device_id, "driver": drivers[type(s)], "port": str(s.link)} for s in sims
            ],
        }
        cfg_path = work / "edge.toml"
        wrote = subprocess.run(
            [sys.executable, "-c", CONFIG_WRITER, str(cfg_path), json.dumps(cfg)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        agent_module = wrote.stdout.strip().splitlines()[-1]
        watch = StatusWatch(broker)
        log = (work / "agent.log").open("ab")
        agent = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "--config", str(cfg_path)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        agent_cwd = str(Path(f"/proc/{agent.pid}/cwd").readlink())
        w = watch
        wait_for(
            lambda: any(
                len(s.devices) == len(sims) and all(d.state == "connected" for d in s.devices)
                for s in w.statuses
            ),
            30,
            "every device connected",
        )
        t_ready = time.monotonic() - t_start
        for s in sims:
            s.start()
        time.sleep(args.warmup)  # the measurement window itself, not synchronisation

        # -- steady state ---------------------------------------------------------------------
        pid = agent.pid
        rss: list[float] = []
        load_start = loadavg_1m()
        bench_c0 = os.times()
        c0, w0, wall0 = cpu_ticks(pid), time.monotonic(), time.time()
        end = w0 + args.window
        while time.monotonic() < end:
            rss.append(rss_mb(pid))
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))  # sampling period
        c1, w1, wall1 = cpu_ticks(pid), time.monotonic(), time.time()
        n_threads = threads(pid)
        load_end = loadavg_1m()
        bench_c1 = os.times()
        cpu_pct = (c1 - c0) / CLK_TCK / (w1 - w0) * 100.0
        bench_cpu_pct = (
            (bench_c1.user + bench_c1.system - bench_c0.user - bench_c0.system) / (w1 - w0) * 100
        )
        # values read at the end of the window are published after its linger (1 s default)
        try:
            wait_for(lambda: w.latest_received >= wall1 + 0.5, 15, "a batch from after the window")
            readings_complete = True
        except TimeoutError:
            readings_complete = False
        readings = w.readings_between(wall0, wall1)
        cpu_us_per_reading = (c1 - c0) / CLK_TCK * 1e6 / readings if readings else None

        # -- outage and drain -----------------------------------------------------------------
        drain: dict[str, Any] = dict.fromkeys(
            (
                "outage_s",
                "backlog_batches",
                "backlog_rows",
                "reconnect_s",
                "drain_s",
                "drain_x_realtime_incl_reconnect",
                "cpu_s_during_outage_and_drain",
            )
        )
        drain_x_realtime: float | None = None
        if not args.skip_drain:
            outbox = OutboxReader(db)
            c_down = cpu_ticks(pid)
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
            drain_x_realtime = round(outage_s / drain_s, 1)
            drain = {
                "outage_s": round(outage_s, 1),
                "backlog_batches": backlog_batches,
                "backlog_rows": sealed_rows + pending,
                "reconnect_s": round(reconnect_s, 3),
                "drain_s": round(drain_s, 3),
                "drain_x_realtime_incl_reconnect": round(outage_s / (t_drained - t_up), 1),
                "cpu_s_during_outage_and_drain": round((cpu_after - c_down) / CLK_TCK, 2),
            }
        detail = {
            "load": args.load,
            "devices": {
                "wwmon_1hz": n_wwmon,
                "masimo_ascii1_1hz": n_masimo,
                "nonin_format2_pleth_samples_per_s": WAVE_FRAMES_PER_S,
            },
            "agent_src": str(agent_src) if agent_src else None,
            "agent_module": agent_module,
            "agent_cwd": agent_cwd,
            "agent_ready_s": round(t_ready, 2),
            "window_s": round(w1 - w0, 1),
            "rss_mb_max": round(max(rss), 1),
            "rss_mb_mean": round(sum(rss) / len(rss), 1),
            "cpu_pct_window": round(cpu_pct, 2),
            "bench_cpu_pct_window": round(bench_cpu_pct, 2),
            "readings_window": readings,
            "readings_window_complete": readings_complete,
            "batches_received": w.batches,
            **drain,
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
                    "drain_x_realtime": drain_x_realtime,
                    "load": args.load,
                    "devices": len(sims),
                    "rss_mb_mean": round(sum(rss) / len(rss), 1),
                    "rss_mb_max": round(max(rss), 1),
                    "readings": readings,
                    "cpu_us_per_reading": (
                        round(cpu_us_per_reading, 1) if cpu_us_per_reading is not None else None
                    ),
                    "threads": n_threads,
                    "loadavg_1m_start": load_start,
                    "loadavg_1m_end": load_end,
                    "window_s": round(w1 - w0, 1),
                    "agent_src": str(agent_src) if agent_src else None,
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
