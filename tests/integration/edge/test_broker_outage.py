"""A broker outage while devices stream: the outbox holds the backlog and replays it in order.

"Ten minutes" of a ward is accelerated by size, not by waiting: three pty monitors at 300
frames/s fill the outbox with more than 10,000 readings while mosquitto is down. After it comes
back, every reading arrives, seqs are contiguous from 0 and each device's observations are in
measurement order (checked on what a persistent subscriber recorded, across the restart).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from device_sims.burst import WwmonBurstSim
from edge_agent.agent import EdgeAgent
from tests.helpers.wait import wait_until
from tests.integration.edge.harness import (
    FAST,
    SITE,
    UNIT,
    batches,
    check_replay,
    edge_config,
    obs_topic,
    observations_received,
    start_recorder,
)
from wardwatch.devstack import Mosquitto
from wardwire.models import DeviceState

pytestmark = pytest.mark.integration

RATE_HZ = 300.0
FRAMES = 1500  # per device: 3 x 1500 frames x 4 values = 18,000 readings in 5 s
BACKLOG = 10_000


def test_outage_backlog_is_replayed_without_loss_gap_or_reorder(
    private_broker: Mosquitto,
    topic_root: str,
    tmp_path: Path,
    bursts: dict[str, WwmonBurstSim],
) -> None:
    broker, gw = private_broker, "gw-outage"
    password = broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    topic = obs_topic(topic_root, gw)
    rec = start_recorder(broker, [topic], client_id=f"rec-{gw}")
    cfg = edge_config(
        broker,
        gw,
        topic_root,
        tmp_path / "outbox.db",
        {d: s.link for d, s in bursts.items()},
        password=password,
        linger_ms=200,
    )
    agent = EdgeAgent(cfg, reconnect=FAST)
    runner = threading.Thread(target=agent.run, name="agent", daemon=True)
    runner.start()
    try:
        wait_until(lambda: all(d.health.state is DeviceState.CONNECTED for d in agent.drivers))
        dones = [s.burst(FRAMES, RATE_HZ) for s in bursts.values()]
        rec.wait_for(lambda m: len(m) >= 3)  # streaming end to end

        broker.stop()
        down_at = time.monotonic()
        wait_until(lambda: agent.outbox.stats().depth >= BACKLOG, timeout=30)
        backlog = agent.outbox.stats()
        held_s = time.monotonic() - down_at
        assert not agent.mqtt.connected.is_set()
        held = agent.outbox.sealed(limit=1_000_000)
        backlog_end = held[-1].seq + 1 if held else 0
        broker.start()
        up_at = time.monotonic()
        wait_until(agent.mqtt.connected.is_set, timeout=30, interval=0.002)
        connected_at = time.monotonic()
        wait_until(
            lambda: all(b.seq >= backlog_end for b in agent.outbox.sealed(limit=1)), 30, 0.002
        )
        drained_s = time.monotonic() - connected_at

        for d in dones:
            assert d.wait(30)
        emitted = sum(s.emitted for s in bursts.values())
        assert emitted == 3 * FRAMES * 4
        assert all(s.write_errors == 0 for s in bursts.values())
        rec.wait_for(lambda m: observations_received(m) >= emitted, timeout=60)
        wait_until(lambda: agent.outbox.stats().depth == 0)
    finally:
        agent.stop()
        runner.join(30)
        rec.close()
    report = check_replay(batches(rec.snapshot(), topic), emitted)
    assert all(d.health.frames_rejected == 0 for d in agent.drivers)
    # Information only (tests never assert on speed; bench/edge_footprint.py measures).
    print(
        f"\noutage {held_s:.1f} s held {backlog.depth} readings "
        f"({backlog.sealed_batches} sealed batches); reconnected after "
        f"{connected_at - up_at:.2f} s; backlog acknowledged {drained_s:.3f} s later "
        f"({held_s / max(drained_s, 0.002):.0f}x real time); delivered {report}"
    )
