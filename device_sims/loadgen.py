"""Ward-scale load generator: thousands of simulated gateways from one process.

Many simulated gateways are multiplexed over a few MQTT connections under the test-site
identity ``loadgen`` (its ACL may publish below any ``…/gw/`` topic; a real gateway may only
publish its own subtree). Each simulated gateway serves ``beds_per_gateway`` beds with one
monitor each and publishes one ``ObservationBatch`` per second of simulated time, carrying every
bed's ``params`` for that second. Values are deterministic (seeded), generation is ``test``.

Two ways to drive it:

* ``LoadSpec.payloads()`` builds messages ahead of time (benchmarks: publishing cost only);
* ``publish_all`` sends a sequence of (topic, payload) with a bounded in-flight window per
  connection and counts what the broker acknowledged; ``rate_hz`` paces it in simulated
  seconds per wall second (``None`` = as fast as the broker takes it).
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from servicekit.mqtt import MqttParams, MqttSession
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation, Observation, ObservationBatch
from wardwire.params import BY_CODE

#: Typical central values per parameter for the generated data.
BASE = {
    "HR": 110.0,
    "PR": 110.0,
    "RR": 28.0,
    "SPO2": 97.0,
    "TEMP": 36.9,
    "NIBP_SYS": 100.0,
    "NIBP_DIA": 60.0,
    "NIBP_MEAN": 75.0,
    "PI": 3.0,
}
SPREAD = {
    "HR": 10.0,
    "PR": 10.0,
    "RR": 4.0,
    "SPO2": 1.5,
    "TEMP": 0.3,
    "NIBP_SYS": 8.0,
    "NIBP_DIA": 6.0,
    "NIBP_MEAN": 6.0,
    "PI": 1.0,
}
#: How long a message may stay unanswered by the broker before the run fails.
ANSWER_TIMEOUT_S = 120.0

DEFAULT_PARAMS = ("HR", "PR", "RR", "SPO2", "TEMP", "NIBP_SYS", "NIBP_DIA", "NIBP_MEAN")


@dataclass(frozen=True)
class LoadSpec:
    gateways: int = 500
    beds_per_gateway: int = 10
    params: tuple[str, ...] = DEFAULT_PARAMS
    site: str = "loadsite"
    unit: str = "load"
    root: str = topics.ROOT
    seed: int = 7
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    @property
    def beds(self) -> int:
        return self.gateways * self.beds_per_gateway

    @property
    def obs_per_second(self) -> int:
        return self.beds * len(self.params)

    def gateway_id(self, g: int) -> str:
        return f"lg-gw{g:05d}"

    def device_id(self, g: int, b: int) -> str:
        return f"lg-mon{g:05d}-{b:02d}"

    def ward(self) -> UnitContext:
        gws = [GatewayContext(id=self.gateway_id(g)) for g in range(self.gateways)]
        beds = [
            BedContext(
                id=f"lg-bed{g:05d}-{b:02d}",
                gateway=self.gateway_id(g),
                devices=[self.device_id(g, b)],
            )
            for g in range(self.gateways)
            for b in range(self.beds_per_gateway)
        ]
        return UnitContext(
            site=self.site,
            unit=self.unit,
            generation=Generation.TEST,
            gateways=gws,
            beds=beds,
        )

    def batch(self, g: int, second: int, rng: random.Random) -> tuple[str, bytes]:
        """The batch gateway ``g`` sends for simulated second ``second`` (its seq)."""
        t = self.start + timedelta(seconds=second)
        obs = []
        for b in range(self.beds_per_gateway):
            dev = self.device_id(g, b)
            for code in self.params:
                p = BY_CODE[code]
                v = round(min(p.high, max(p.low, rng.gauss(BASE[code], SPREAD[code] / 3))), 1)
                obs.append(
                    Observation(
                        device_id=dev, code=code, value=v, unit=p.ucum, measured_at=t, received_at=t
                    )
                )
        batch = ObservationBatch(
            gateway_id=self.gateway_id(g),
            seq=second,
            sent_at=t,
            generation=Generation.TEST,
            observations=obs,
        )
        topic = topics.gateway_obs(self.site, self.unit, self.gateway_id(g), root=self.root)
        return topic, batch.model_dump_json().encode()

    def payloads(self, seconds: int) -> Iterator[tuple[str, bytes]]:
        """All gateways' batches for ``seconds`` simulated seconds, second by second."""
        rng = random.Random(self.seed)
        for s in range(seconds):
            for g in range(self.gateways):
                yield self.batch(g, s, rng)


@dataclass
class PublishResult:
    messages: int
    acked: int
    refused: int
    elapsed_s: float


def publish_all(
    params: MqttParams,
    messages: Iterable[tuple[str, bytes]],
    *,
    connections: int = 2,
    window: int = 200,
    rate_hz: float | None = None,
    messages_per_tick: int = 1,
    client_prefix: str = "loadgen",
) -> PublishResult:
    """Publish QoS 1 over ``connections`` clients, at most ``window`` unacknowledged each.

    The window is the back-pressure (paho silently refuses past 65,535 queued QoS 1 messages;
    see platform notes). ``rate_hz`` paces ticks of ``messages_per_tick`` messages.
    """
    p = replace(params, session_expiry_s=0)
    sessions = [MqttSession(p, f"{client_prefix}-{i}") for i in range(connections)]
    # One permit per message that may be unanswered on a connection: the back-pressure.
    windows = [threading.BoundedSemaphore(window) for _ in sessions]
    sent = acked = refused = 0
    lock = threading.Lock()

    def done(k: int, rc: ReasonCode) -> None:  # the broker answered one message (paho thread)
        nonlocal acked, refused
        with lock:
            if rc.is_failure:
                refused += 1  # PUBACK with a failure reason (e.g. not authorized)
            else:
                acked += 1
        windows[k].release()

    t0 = time.monotonic()
    tick = 0
    try:
        for s in sessions:
            s.start()
        for i, (topic, payload) in enumerate(messages):
            if rate_hz is not None and i % messages_per_tick == 0:
                due = t0 + tick / rate_hz
                tick += 1
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing a load generator, not test synchronisation
            k = i % len(sessions)
            if not windows[k].acquire(timeout=ANSWER_TIMEOUT_S):
                raise RuntimeError(f"no PUBACK within {ANSWER_TIMEOUT_S} s on connection {k}")
            info = sessions[k].publish(topic, payload, qos=1, on_done=functools.partial(done, k))
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise RuntimeError(f"publish refused locally: rc={info.rc}")
            sent += 1
        # Every permit back = every message answered (a reconnect resends the unanswered).
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        for w in windows:
            for _ in range(window):
                if not w.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    break
    finally:
        for s in sessions:
            s.stop()
    with lock:
        unanswered = sent - acked - refused
    return PublishResult(sent, acked, refused + unanswered, time.monotonic() - t0)
