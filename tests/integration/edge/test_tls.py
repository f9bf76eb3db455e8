"""MQTT v5 over TLS with username/password: an agent configured with ``[broker.tls] ca_file``
publishes end to end; a CA that did not sign the broker's certificate fails at connect, fast."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_sims.burst import WwmonBurstSim
from edge_agent.agent import EdgeAgent
from servicekit.mqtt import TlsFailed
from tests.helpers.wait import wait_until
from tests.integration.edge.harness import (
    SITE,
    UNIT,
    batches,
    check_replay,
    edge_config,
    obs_topic,
    observations_received,
    start_recorder,
)
from wardwatch.devstack import Mosquitto, make_test_pki
from wardwire.models import DeviceState

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "mosquitto", tls=True)
    b.start()
    yield b
    b.stop()


def test_agent_publishes_over_tls(
    tls_broker: Mosquitto, topic_root: str, tmp_path: Path, bursts: dict[str, WwmonBurstSim]
) -> None:
    broker, gw = tls_broker, "gw-tls"
    assert broker.tls_port == broker.port and broker.ca_file  # TLS only: no plaintext port
    password = broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    topic = obs_topic(topic_root, gw)
    rec = start_recorder(broker, [topic])  # over TLS too
    cfg = edge_config(
        broker,
        gw,
        topic_root,
        tmp_path / "outbox.db",
        {d: s.link for d, s in bursts.items()},
        password=password,
        tls=True,
        linger_ms=100,
    )
    assert cfg.broker.port == broker.tls_port
    agent = EdgeAgent(cfg)
    runner = threading.Thread(target=agent.run, name="agent", daemon=True)
    runner.start()
    try:
        wait_until(lambda: all(d.health.state is DeviceState.CONNECTED for d in agent.drivers))
        for done in [s.burst(50, 100.0) for s in bursts.values()]:
            assert done.wait(30)
        emitted = sum(s.emitted for s in bursts.values())
        rec.wait_for(lambda m: observations_received(m) >= emitted)
    finally:
        agent.stop()
        runner.join(30)
        rec.close()
    check_replay(batches(rec.snapshot(), topic), emitted)


def test_wrong_ca_fails_at_connect_not_hang(
    tls_broker: Mosquitto, topic_root: str, tmp_path: Path, bursts: dict[str, WwmonBurstSim]
) -> None:
    password = tls_broker.add_user("gw-tls-bad", site=SITE, unit=UNIT, root=topic_root)
    stranger = make_test_pki(tmp_path / "other-ca")
    cfg = edge_config(
        tls_broker,
        "gw-tls-bad",
        topic_root,
        tmp_path / "outbox.db",
        {d: s.link for d, s in bursts.items()},
        password=password,
        tls=True,
        ca_file=stranger.ca_file,
    )
    agent = EdgeAgent(cfg)
    t0 = time.monotonic()
    with pytest.raises(TlsFailed, match="certificate"):
        agent.run()
    assert time.monotonic() - t0 < 10, "a TLS failure must surface at connect, not after retries"
