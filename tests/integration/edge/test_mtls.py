"""The edge agent on a mutual-TLS broker (issue 16): with its client certificate (``[broker.tls]
cert_file``/``key_file``) and its password it publishes end to end; with an expired
certificate it fails at connect with the broker's reason, fast, instead of retrying for
nobody."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device_sims.burst import WwmonBurstSim
from edge_agent.agent import EdgeAgent
from edge_agent.config import EdgeConfig, TlsSection
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
from tests.integration.edge.test_tls import refused_while_collecting
from wardwatch.devstack import Mosquitto
from wardwire.models import DeviceState

pytestmark = pytest.mark.integration


@pytest.fixture
def mtls_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "mosquitto", client_certs="password")
    b.start()
    yield b
    b.stop()


def with_client_cert(cfg: EdgeConfig, cert: Path, key: Path) -> EdgeConfig:
    assert cfg.broker.tls is not None
    tls = TlsSection(ca_file=cfg.broker.tls.ca_file, cert_file=cert, key_file=key)
    return cfg.model_copy(update={"broker": cfg.broker.model_copy(update={"tls": tls})})


def test_agent_publishes_with_its_client_certificate(
    mtls_broker: Mosquitto, topic_root: str, tmp_path: Path, bursts: dict[str, WwmonBurstSim]
) -> None:
    broker, gw = mtls_broker, "gw-mtls"
    password = broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    topic = obs_topic(topic_root, gw)
    rec = start_recorder(broker, [topic])
    assert broker.pki is not None
    cfg = edge_config(broker, gw, topic_root, tmp_path / "outbox.db",
                      {d: s.link for d, s in bursts.items()}, password=password, tls=True,
                      linger_ms=100)
    agent = EdgeAgent(with_client_cert(cfg, *broker.pki.client_cert(gw)))
    runner = threading.Thread(target=agent.run, name="agent", daemon=True)
    runner.start()
    try:
        wait_until(lambda: all(d.health.state is DeviceState.CONNECTED for d in agent.drivers))
        for done in [s.burst(20, 100.0) for s in bursts.values()]:
            assert done.wait(30)
        emitted = sum(s.emitted for s in bursts.values())
        rec.wait_for(lambda m: observations_received(m) >= emitted)
    finally:
        agent.stop()
        runner.join(30)
        rec.close()
    check_replay(batches(rec.snapshot(), topic), emitted)


def test_an_expired_client_certificate_is_said_at_once_and_the_readings_are_kept(
    mtls_broker: Mosquitto, topic_root: str, tmp_path: Path, bursts: dict[str, WwmonBurstSim]
) -> None:
    broker, gw = mtls_broker, "gw-mtls-old"
    password = broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    assert broker.pki is not None
    cert, key = broker.pki.client_cert(gw, now=datetime.now(UTC) - timedelta(days=10), days=1)
    cfg = edge_config(broker, gw, topic_root, tmp_path / "outbox.db",
                      {d: s.link for d, s in bursts.items()}, password=password, tls=True)
    refused_while_collecting(with_client_cert(cfg, cert, key), bursts, "certificate expired")
