"""MQTT v5 over TLS with username/password: an agent configured with ``[broker.tls] ca_file``
publishes end to end; with a CA that did not sign the broker's certificate it says so at once
and keeps every reading in its outbox, and ``edge check-config --broker`` fails fast."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from device_sims.burst import WwmonBurstSim
from edge_agent import cli as edge_cli
from edge_agent.agent import EdgeAgent
from edge_agent.config import EdgeConfig
from servicekit.tomlio import dump_model
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


def test_a_wrong_ca_is_said_at_once_and_the_readings_are_kept(
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
    refused_while_collecting(cfg, bursts, "certificate")
    # at install time the same mistake is an error at once
    cfg_file = tmp_path / "edge.toml"
    cfg_file.write_text(dump_model(cfg), encoding="utf-8")
    t0 = time.monotonic()
    out = CliRunner().invoke(edge_cli.app, ["check-config", str(cfg_file), "--broker"])
    assert out.exit_code == 2 and "certificate" in out.output, out.output
    assert time.monotonic() - t0 < 10, "a TLS failure must surface at connect, not after retries"


def refused_while_collecting(cfg: EdgeConfig, bursts: dict[str, WwmonBurstSim],
                             words: str) -> None:
    """The broker refuses the gateway: said at once (``broker_refused``, the metric), and every
    reading of the devices is kept in the outbox; the agent stops cleanly."""
    agent = EdgeAgent(cfg)
    runner = threading.Thread(target=agent.run, name="agent", daemon=True)
    runner.start()
    try:
        why = wait_until(lambda: agent.broker_refused, timeout=10)
        assert words in why
        wait_until(lambda: all(d.health.state is DeviceState.CONNECTED for d in agent.drivers))
        for done in [s.burst(20, 100.0) for s in bursts.values()]:
            assert done.wait(30)
        emitted = sum(s.emitted for s in bursts.values())
        wait_until(lambda: agent.outbox.stats().depth >= emitted, timeout=30)
        assert agent.published_batches == 0
    finally:
        agent.stop()
        runner.join(30)
    assert not runner.is_alive()
