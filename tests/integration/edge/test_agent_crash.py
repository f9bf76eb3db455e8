"""``kill -9`` of a gateway agent process with a backlog in flight, then a restart on the same
outbox; and the gateway status it publishes along the way (birth, heartbeat, shutdown, LWT).

The agent runs as it does on a gateway: ``python -m edge_agent run --config FILE``. To kill it
with batches *published but not acknowledged*, the broker is frozen (SIGSTOP) while the devices
send a second burst: the agent seals and publishes into the frozen broker's socket, nothing is
acknowledged, and the outbox (read from the test) accounts for every reading of the burst before
the kill. The broker is then resumed (it delivers what was in its socket and publishes the last
will), and the restarted agent republishes every unacknowledged batch: duplicates must be
byte-identical copies, and the union must have no gap, no loss and no reordering.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_sims.burst import WwmonBurstSim
from edge_agent.config import dump_edge_config
from tests.helpers.wait import wait_until
from tests.integration.edge.harness import (
    SITE,
    UNIT,
    Message,
    Recorder,
    batches,
    check_replay,
    edge_config,
    last_status,
    obs_topic,
    observations_received,
    start_recorder,
    status_topic,
)
from wardwatch.devstack import Mosquitto
from wardwire.models import DeviceState, GatewayState, GatewayStatus

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
RATE_HZ = 300.0


class AgentProcess:
    """``python -m edge_agent run`` as a child process (its log goes to a file)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge_agent", "run", "--config", str(self.config)],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

    def signal(self, sig: int, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def outbox_obs_after(db: Path, seq: int) -> int:
    """Observations the outbox holds that are pending or sealed in a batch after ``seq``
    (one consistent read snapshot of the agent's WAL database)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        con.execute("BEGIN")
        pending = con.execute("SELECT count(*) FROM pending WHERE kind = 'obs'").fetchone()[0]
        sealed = con.execute(
            "SELECT coalesce(sum(n_obs), 0) FROM batches WHERE seq > ?", (seq,)
        ).fetchone()[0]
        con.execute("COMMIT")
        return int(pending) + int(sealed)
    finally:
        con.close()


def statuses(messages: list[Message], topic: str) -> list[GatewayStatus]:
    return [GatewayStatus.model_validate_json(m.payload) for m in messages if m.topic == topic]


def retained_status(broker: Mosquitto, topic: str) -> GatewayStatus:
    """What a newcomer gets on the status topic: the retained message."""
    fresh = start_recorder(broker, [topic])
    try:
        msgs = fresh.wait_for(lambda m: [x for x in m if x.topic == topic and x.retain], 10)
        return GatewayStatus.model_validate_json(msgs[-1].payload)
    finally:
        fresh.close()


@pytest.fixture
def recorder_for(private_broker: Mosquitto) -> Iterator[list[Recorder]]:
    made: list[Recorder] = []
    yield made
    for r in made:
        r.close()


def test_kill_9_replay_and_gateway_status(
    private_broker: Mosquitto,
    topic_root: str,
    tmp_path: Path,
    bursts: dict[str, WwmonBurstSim],
    recorder_for: list[Recorder],
) -> None:
    broker, gw = private_broker, "gw-crash"
    password = broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    obs_t, status_t = obs_topic(topic_root, gw), status_topic(topic_root, gw)
    rec = start_recorder(broker, [f"{topic_root}/gw/{SITE}/{UNIT}/{gw}/#"], client_id=f"rec-{gw}")
    recorder_for.append(rec)
    db = tmp_path / "outbox.db"
    cfg = edge_config(
        broker,
        gw,
        topic_root,
        db,
        {d: s.link for d, s in bursts.items()},
        password=password,
        heartbeat_s=0.5,
        linger_ms=200,
    )
    config = tmp_path / "edge.toml"
    config.write_text(dump_edge_config(cfg), encoding="utf-8")
    agent = AgentProcess(config, tmp_path / "agent.log")
    agent.start()
    try:
        # Birth, retained; then a heartbeat with every device connected.
        rec.wait_for(lambda m: (s := last_status(m, status_t)) and s.reason == "birth")
        birth = retained_status(broker, status_t)
        assert (birth.state, birth.reason) == (GatewayState.ONLINE, "birth")
        rec.wait_for(
            lambda m: any(
                s.reason == "heartbeat"
                and len(s.devices) == 3
                and all(d.state is DeviceState.CONNECTED for d in s.devices)
                for s in statuses(m, status_t)
            )
        )

        # Phase 1: a burst delivered normally.
        for done in [s.burst(300, RATE_HZ) for s in bursts.values()]:
            assert done.wait(30)
        emitted1 = sum(s.emitted for s in bursts.values())
        rec.wait_for(lambda m: observations_received(m) >= emitted1)
        acked_upto = max(m.seq for m in rec.snapshot() if m.seq is not None)
        hb = rec.wait_for(
            lambda m: next(
                (
                    s
                    for s in reversed(statuses(m, status_t))
                    if s.reason == "heartbeat" and len(s.clock_skew_ms) == 3
                ),
                None,
            )
        )
        assert set(hb.clock_skew_ms) == set(bursts)
        assert hb.outbox_depth >= 0 and hb.outbox_dropped == 0

        # Phase 2: the broker freezes; the agent seals and publishes into its socket.
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGSTOP)
        try:
            for done in [s.burst(600, RATE_HZ) for s in bursts.values()]:
                assert done.wait(30)
            emitted2 = sum(s.emitted for s in bursts.values()) - emitted1
            wait_until(lambda: outbox_obs_after(db, acked_upto) == emitted2, timeout=30)
            assert agent.signal(signal.SIGKILL) == -signal.SIGKILL
        finally:
            broker.proc.send_signal(signal.SIGCONT)

        # The broker publishes the last will for the vanished gateway.
        lwt = rec.wait_for(lambda m: (s := last_status(m, status_t)) and s.reason == "lwt" and s)
        assert lwt.state is GatewayState.OFFLINE

        # Restart on the same outbox: birth again, then everything arrives.
        agent.start()
        rec.wait_for(lambda m: (s := last_status(m, status_t)) and s.reason == "birth")
        emitted = emitted1 + emitted2
        rec.wait_for(lambda m: observations_received(m) >= emitted, timeout=60)
        rec.wait_for(
            lambda m: (
                (s := last_status(m, status_t)) and s.reason == "heartbeat" and s.outbox_depth == 0
            )
        )

        # Orderly shutdown: offline/shutdown, retained.
        assert agent.signal(signal.SIGTERM) == 0
        rec.wait_for(lambda m: (s := last_status(m, status_t)) and s.reason == "shutdown")
        bye = retained_status(broker, status_t)
        assert (bye.state, bye.reason) == (GatewayState.OFFLINE, "shutdown")
    finally:
        agent.ensure_dead()
    assert all(s.write_errors == 0 for s in bursts.values())
    report = check_replay(batches(rec.snapshot(), obs_t), emitted)
    print(f"\nkill -9 with {emitted2} readings unacknowledged; delivered {report}")
