"""The gateway on one event loop, on a real broker and real ptys: no thread per device, the
drivers' counters on ``/metrics``, and a stop that always ends the run (broker down, or before
the run has even started)."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import pytest

from device_sims.burst import WwmonBurstSim
from edge_agent.agent import EdgeAgent
from edge_agent.config import MetricsSection
from servicekit.metrics import parse_metric
from tests.helpers.wait import wait_until
from tests.integration.edge.harness import FAST, SITE, UNIT, edge_config, obs_topic, start_recorder
from wardwatch.devstack import Mosquitto
from wardwire.models import DeviceState

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
