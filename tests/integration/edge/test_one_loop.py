"""The gateway on one event loop, on a real broker and real ptys: no thread per device, the
drivers' counters on ``/metrics``, and a stop that always ends the run (broker down, or before
the run has even started)."""

from __future__ import annotations

import fcntl
import signal
import struct
import termios
import threading
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from device_sims.burst import WwmonBurstSim
from device_sims.serial_devices import PtyPort
from edge_agent.agent import EdgeAgent
from edge_agent.config import MetricsSection
from edge_agent.protocols.wwmon import WwmonEncoder
from servicekit.metrics import parse_metric
from tests.helpers.wait import wait_until
from tests.integration.edge.harness import (
    FAST,
    SITE,
    UNIT,
    Message,
    batches,
    check_replay,
    edge_config,
    obs_topic,
    observations_received,
    start_recorder,
)
from wardwatch.devstack import Mosquitto
from wardwire.models import DeviceState, ObservationBatch

pytestmark = pytest.mark.integration


def agent_threads(before: set[threading.Thread]) -> list[str]:
    """Threads started since ``before``, minus the simulators' own and the test's runner."""
    return sorted(
        t.name for t in threading.enumerate()
        if t not in before and not t.name.startswith("burst-") and t.name != "agent"
    )


def run_agent(agent: EdgeAgent) -> threading.Thread:
    t = threading.Thread(target=agent.run, name="agent", daemon=True)
    t.start()
    return t


def test_threads_do_not_grow_with_devices_and_metrics_show_the_counters(
    private_broker: Mosquitto, topic_root: str, tmp_path: Path,
    bursts: dict[str, WwmonBurstSim],
) -> None:
    broker, gw = private_broker, "gw-loop"
    password = broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    rec = start_recorder(broker, [obs_topic(topic_root, gw)], client_id=f"rec-{gw}")
    counts: dict[int, list[str]] = {}
    try:
        for n in (1, 3):
            devices = {d: s.link for d, s in list(bursts.items())[:n]}
            cfg = edge_config(broker, gw, topic_root, tmp_path / f"outbox-{n}.db", devices,
                              password=password, linger_ms=100)
            cfg = cfg.model_copy(update={"metrics": MetricsSection(port=0)})
            before = set(threading.enumerate())
            agent = EdgeAgent(cfg, reconnect=FAST)
            runner = run_agent(agent)
            try:
                wait_until(lambda a=agent: a.mqtt is not None and a.mqtt.connected.is_set()
                           and all(d.health.state is DeviceState.CONNECTED for d in a.drivers))
                already = {d: bursts[d].emitted for d in devices}  # sent to an earlier agent
                dones = [bursts[d].burst(50, 200.0) for d in devices]
                for done in dones:
                    assert done.wait(30)
                want = {d: bursts[d].emitted - already[d] for d in devices}
                wait_until(lambda a=agent, w=want: all(
                    x.health.readings >= w[x.device.id] for x in a.drivers), timeout=30)
                counts[n] = agent_threads(before)
                assert agent.metrics_port is not None
                url = f"http://127.0.0.1:{agent.metrics_port}/metrics"
                text = urllib.request.urlopen(url, timeout=10).read().decode()
                for d in agent.drivers:
                    line = next(
                        ln for ln in text.splitlines()
                        if ln.startswith("wardwatch_edge_device_readings_total{")
                        and f'device="{d.device.id}"' in ln
                    )
                    assert float(line.rsplit(" ", 1)[1]) == d.health.readings
                assert parse_metric(text, "wardwatch_edge_broker_connected") == 1
                assert parse_metric(text, "wardwatch_edge_outbox_depth") is not None
            finally:
                agent.stop()
                runner.join(30)
                assert not runner.is_alive()
        # paho's network thread, the outbox disk thread, the metrics server, asyncio's
        # executor for the blocking connect: the same set whether 1 device or 3.
        assert len(counts[3]) == len(counts[1]), counts
        assert not any("driver" in name or "device" in name for name in counts[3]), counts
    finally:
        rec.close()


def test_stop_with_the_broker_down_ends_the_run_and_keeps_the_readings(
    private_broker: Mosquitto, topic_root: str, tmp_path: Path,
    bursts: dict[str, WwmonBurstSim],
) -> None:
    broker, gw = private_broker, "gw-down"
    password = broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    devices = {d: s.link for d, s in bursts.items()}
    cfg = edge_config(broker, gw, topic_root, tmp_path / "outbox.db", devices,
                      password=password, linger_ms=100)
    agent = EdgeAgent(cfg, reconnect=FAST)
    runner = run_agent(agent)
    wait_until(lambda: agent.mqtt is not None and agent.mqtt.connected.is_set()
               and all(d.health.state is DeviceState.CONNECTED for d in agent.drivers))
    broker.stop()
    wait_until(lambda: not agent.mqtt.connected.is_set())  # type: ignore[union-attr]
    for done in [s.burst(40, 200.0) for s in bursts.values()]:
        assert done.wait(30)
    emitted = sum(s.emitted for s in bursts.values())
    wait_until(lambda: sum(d.health.readings for d in agent.drivers) >= emitted, timeout=30)
    agent.stop()
    runner.join(40)  # the drain gives up after 15 s without a broker
    assert not runner.is_alive()
    from edge_agent.outbox import Outbox

    kept = Outbox(tmp_path / "outbox.db", max_rows=2_000_000, overflow="drop_oldest")
    try:
        assert kept.stats().depth == emitted
    finally:
        kept.close()


def test_stop_before_or_right_after_the_start_never_hangs(
    private_broker: Mosquitto, topic_root: str, tmp_path: Path,
    bursts: dict[str, WwmonBurstSim],
) -> None:
    broker, gw = private_broker, "gw-early"
    password = broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    devices = {d: s.link for d, s in bursts.items()}
    for i, early in enumerate((True, False)):
        cfg = edge_config(broker, gw, topic_root, tmp_path / f"outbox-{i}.db", devices,
                          password=password)
        agent = EdgeAgent(cfg, reconnect=FAST)
        if early:
            agent.stop()
        runner = run_agent(agent)
        if not early:
            agent.stop()
        runner.join(30)
        assert not runner.is_alive()


class ProbeOffFlood:
    """A WWMON monitor with its probe off on a pty, flooding frames that carry no value (every
    value ``---``) until stopped: line traffic that never reaches the sink."""

    def __init__(self, link: Path) -> None:
        self.port = PtyPort(link)
        self.frame = WwmonEncoder().encode_frame(
            datetime.now(UTC), {"HR": None, "SPO2": None, "RR": None, "TEMP": None}
        )
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="burst-probe-off", daemon=True)

    @property
    def link(self) -> Path:
        return self.port.link

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        chunk = self.frame * 10
        while not self._stop.is_set():
            if self.port.write(chunk):
                self.written += 10
            self._stop.wait(0.001)  # pacing of the flood (~10k frames/s), not a synchronisation

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.port.unplug()


def pty_unread(port: PtyPort) -> int:
    """Bytes written to the device end of a pty that the gateway has not read yet."""
    return struct.unpack("i", fcntl.ioctl(port._slave, termios.FIONREAD, b"\0" * 4))[0]


def per_device(messages: list[Message], topic: str) -> Counter[str]:
    """Observations per device in the distinct batches received (duplicates counted once)."""
    out: Counter[str] = Counter()
    for payload in dict(batches(messages, topic)).values():
        out.update(o.device_id for o in ObservationBatch.model_validate_json(payload).observations)
    return out


def test_flooding_devices_do_not_cost_a_slow_device_a_reading(
    private_broker: Mosquitto, topic_root: str, tmp_path: Path,
) -> None:
    """One monitor floods 10,000 frames/s, another floods probe-off frames (no value: nothing
    for the sink, so nothing that would give the loop back but the link's own wait), while a
    third sends a frame every 200 ms. Every reading of the slow one arrives, and, at the end,
    what the broker got from each device is exactly what its driver counted."""
    broker, gw = private_broker, "gw-flood"
    password = broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    topic = obs_topic(topic_root, gw)
    rec = start_recorder(broker, [topic], client_id=f"rec-{gw}")
    fast = WwmonBurstSim("fast", tmp_path / "tty" / "fast", seed=1)
    slow = WwmonBurstSim("slow", tmp_path / "tty" / "slow", seed=2)
    off = ProbeOffFlood(tmp_path / "tty" / "off")
    for s in (fast, slow):
        s.open()
    off.port.plug()
    cfg = edge_config(broker, gw, topic_root, tmp_path / "outbox.db",
                      {"fast": fast.link, "slow": slow.link, "off": off.link},
                      password=password, linger_ms=100)
    agent = EdgeAgent(cfg, reconnect=FAST)
    drv = {d.device.id: d for d in agent.drivers}
    runner = run_agent(agent)
    try:
        wait_until(lambda: agent.mqtt is not None and agent.mqtt.connected.is_set()
                   and all(drv[d].health.state is DeviceState.CONNECTED for d in ("fast", "slow")))
        off.start()
        fast_done = fast.burst(30_000, 10_000.0)
        slow_done = slow.burst(15, 5.0)  # 3 s, the length of the flood
        assert slow_done.wait(30)
        assert slow.write_errors == 0  # the slow device's pty was always drained
        wait_until(lambda: drv["slow"].health.readings >= slow.emitted, timeout=30)
        rec.wait_for(lambda m: per_device(m, topic)["slow"] >= slow.emitted, timeout=30)
        assert fast_done.wait(30)
        off.close()
        wait_until(lambda: drv["off"].health.state is not DeviceState.CONNECTED, timeout=30)
        # quiescent: the gateway has read everything the fast device's pty holds
        wait_until(lambda: pty_unread(fast.port) == 0, timeout=30)
    finally:
        off.close()
        agent.stop()
        runner.join(40)
        alive = runner.is_alive()
        fast.close()
        slow.close()
        rec.close()
    assert not alive, "stop() did not end the run"
    got = per_device(rec.snapshot(), topic)
    assert drv["slow"].health.readings == slow.emitted == got["slow"]
    # every frame the flood wrote whole arrived (the cut ones were rejected, as line noise)
    assert got["fast"] == drv["fast"].health.readings == fast.emitted > 0
    assert "off" not in got and drv["off"].health.readings == 0
    print(f"\nfast: {fast.emitted} values sent whole ({fast.write_errors} frames lost at a "
          f"full pty), {got['fast']} delivered, {drv['fast'].health.frames_rejected} frames "
          f"rejected; slow: {got['slow']}; probe-off frames {off.written}")


class AgentRun:
    """``agent.run()`` on a thread, keeping what it raised."""

    def __init__(self, agent: EdgeAgent) -> None:
        self.agent = agent
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="agent", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.agent.run()
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            self.errors.append(exc)

    def stopped(self, timeout: float) -> bool:
        self.agent.stop()
        self.thread.join(timeout)
        return not self.thread.is_alive()


#: bounds of a stop with a broker that holds the TCP connection but never answers: the
#: CONNACK wait of the first connect (10 s), the drain (15 s), the goodbye's PUBACK wait (5 s)
FROZEN_STOP_BOUND_S = 10 + 15 + 5 + 10


def test_stop_while_the_broker_is_frozen_ends_the_run(
    private_broker: Mosquitto, topic_root: str, tmp_path: Path,
    bursts: dict[str, WwmonBurstSim],
) -> None:
    """A broker that accepts TCP but never answers (SIGSTOP) at the start: ``stop()`` right
    away still ends the run, and nothing raises."""
    broker, gw = private_broker, "gw-frozen0"
    password = broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    cfg = edge_config(broker, gw, topic_root, tmp_path / "outbox.db",
                      {d: s.link for d, s in bursts.items()}, password=password)
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGSTOP)
    try:
        run = AgentRun(EdgeAgent(cfg, reconnect=FAST))
        wait_until(lambda: run.agent.mqtt is not None)
        assert run.stopped(FROZEN_STOP_BOUND_S), "stop() did not end the run"
    finally:
        broker.proc.send_signal(signal.SIGCONT)
    assert not run.errors, run.errors


def test_stop_while_the_broker_is_frozen_mid_stream_loses_nothing(
    private_broker: Mosquitto, topic_root: str, tmp_path: Path,
    bursts: dict[str, WwmonBurstSim],
) -> None:
    """The broker freezes while the devices stream (batches go into its socket and are never
    acknowledged); ``stop()`` then ends the run within its bounds, and a restart on the same
    outbox once the broker is back delivers every reading: no loss, no gap, no reorder."""
    broker, gw = private_broker, "gw-frozen1"
    password = broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    topic = obs_topic(topic_root, gw)
    rec = start_recorder(broker, [topic], client_id=f"rec-{gw}")
    db = tmp_path / "outbox.db"
    cfg = edge_config(broker, gw, topic_root, db, {d: s.link for d, s in bursts.items()},
                      password=password, linger_ms=100)
    run = AgentRun(EdgeAgent(cfg, reconnect=FAST))
    restart: AgentRun | None = None
    try:
        agent = run.agent
        wait_until(lambda: agent.mqtt is not None and agent.mqtt.connected.is_set()
                   and all(d.health.state is DeviceState.CONNECTED for d in agent.drivers))
        for done in [s.burst(200, 300.0) for s in bursts.values()]:
            assert done.wait(30)
        first = sum(s.emitted for s in bursts.values())
        rec.wait_for(lambda m: observations_received(m) >= first)
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGSTOP)
        try:
            for done in [s.burst(300, 300.0) for s in bursts.values()]:
                assert done.wait(30)
            emitted = sum(s.emitted for s in bursts.values())
            wait_until(lambda: sum(d.health.readings for d in agent.drivers) >= emitted)
            assert run.stopped(FROZEN_STOP_BOUND_S), "stop() did not end the run"
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        assert not run.errors, run.errors
        assert sum(d.health.readings for d in agent.drivers) == emitted
        restart = AgentRun(EdgeAgent(cfg, reconnect=FAST))
        rec.wait_for(lambda m: observations_received(m) >= emitted, timeout=60)
        assert restart.stopped(40)
        assert not restart.errors, restart.errors
    finally:
        for r in (run, restart):
            if r is not None and r.thread.is_alive():
                r.stopped(40)
        rec.close()
    check_replay(batches(rec.snapshot(), topic), emitted)
