"""The ingest shell: MQTT (shared subscription, manual ack) -> InfluxDB /write, ack after write.

Flow: paho's network thread validates each message with ``core.route`` and hands accepted ones
to a bounded queue; rejected ones are dead-lettered (with the reason) and acknowledged once the
dead letter itself is PUBACKed. The writer thread batches lines by size and linger, POSTs them
to InfluxDB, and only after a 2xx acknowledges the MQTT messages the batch came from. While
InfluxDB is down nothing is acknowledged: the broker keeps the messages (persistent session)
and redelivers them to us, or to another member of the shared subscription if we die.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from ingest.core import Accepted, Rejected, SeqTracker, WardIndex, route
from wardwatch.mqtt import MqttParams, connect_blocking, make_client
from wardwire import topics
from wardwire.models import DeadLetter, TechnicalEvent, utcnow

log = logging.getLogger(__name__)
SERVICE = "ingest"


@dataclass
class IngestCounters:
    received: int = 0
    written_obs: int = 0
    written_points: int = 0
    dead_lettered: int = 0
    write_failures: int = 0
    batches_written: int = 0
    write_latency_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    influx_url: str
    influx_db: str
    influx_user: str | None
    influx_password: str | None
    topic_root: str = topics.ROOT
    worker_id: str = "ingest-1"
    share_group: str = "ingest"
    batch_lines: int = 20_000
    linger_s: float = 0.2
    max_pending_msgs: int = 500


class IngestService:
    def __init__(self, mqtt_params: MqttParams, index: WardIndex, opts: IngestOptions) -> None:
        self.params = mqtt_params
        self.index = index
        self.opts = opts
        self.counters = IngestCounters()
        self.seq = SeqTracker()
        self.stop_event = threading.Event()
        self._q: queue.Queue[tuple[mqtt.MQTTMessage, Accepted]] = queue.Queue(
            maxsize=opts.max_pending_msgs
        )
        self._dlq_pending: dict[int, tuple[int, int]] = {}  # dlq publish mid -> (mid, qos)
        self._lock = threading.Lock()
        self.client = make_client(mqtt_params, client_id=opts.worker_id, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        #: set once the broker confirmed our subscription (readiness, for tests and health)
        self.ready = threading.Event()
        ward = index.ward
        self.obs_filter = topics.gateway_obs(ward.site, ward.unit, topics.ANY, root=opts.topic_root)

    # -- MQTT side ---------------------------------------------------------------------------
    def _on_connect(self, c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if getattr(rc, "is_failure", False):
            log.error("broker refused: %s", rc)
            return
        # Resubscribe on *every* connect (a broker that lost our session forgets it).
        c.subscribe(topics.shared(self.opts.share_group, self.obs_filter), qos=1)

    def _on_subscribe(self, c: mqtt.Client, u: Any, mid: int, rcs: Any, props: Any) -> None:
        if any(getattr(rc, "is_failure", False) for rc in rcs):
            log.error("subscription refused: %s", rcs)
            return
        self.ready.set()

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        self.counters.received += 1
        result = route(msg.topic, bytes(msg.payload), self.index, root=self.opts.topic_root)
        if isinstance(result, Rejected):
            self._dead_letter(msg, f"{result.kind}: {result.reason}")
            return
        s = self.seq.observe(result.gateway_id, result.seq)
        if s.new_gap:
            self._technical(result.gateway_id, f"seq gap of {s.new_gap} before seq {result.seq}")
        if result.unknown_devices:
            # Known devices' readings are written; the unknown ones are dead-lettered visibly.
            detail = ", ".join(f"{d} ({n})" for d, n in sorted(result.unknown_devices.items()))
            self._dead_letter(msg, f"unknown_device: not registered: {detail}", ack=False)
        # Blocks the network thread when the writer is behind: back-pressure to the broker,
        # which holds further messages (receive maximum) instead of us buffering unboundedly.
        self._q.put((msg, result))

    def _dead_letter(self, msg: mqtt.MQTTMessage, reason: str, *, ack: bool = True) -> None:
        self.counters.dead_lettered += 1
        dl = DeadLetter(
            service=SERVICE,
            reason=reason,
            topic=msg.topic,
            received_at=utcnow(),
            payload_b64=base64.b64encode(msg.payload[:65536]).decode(),
            payload_bytes=len(msg.payload),
        )
        log.warning("dead-lettered message on %s: %s", msg.topic, reason)
        info = self.client.publish(
            topics.dead_letter(SERVICE, root=self.opts.topic_root), dl.model_dump_json(), qos=1
        )
        if ack:
            with self._lock:
                self._dlq_pending[info.mid] = (msg.mid, msg.qos)

    def _technical(self, gateway: str, detail: str) -> None:
        ward = self.index.ward
        ev = TechnicalEvent(
            service=SERVICE, event="seq_gap", gateway_id=gateway, at=utcnow(), detail=detail
        )
        self.client.publish(
            topics.technical(ward.site, ward.unit, SERVICE, root=self.opts.topic_root),
            ev.model_dump_json(),
            qos=1,
        )

    def _on_publish(self, c: mqtt.Client, u: Any, mid: int, rc: Any, props: Any) -> None:
        with self._lock:
            orig = self._dlq_pending.pop(mid, None)
        if orig is not None and not getattr(rc, "is_failure", False):
            c.ack(*orig)  # the dead letter is safe with the broker: release the original

    # -- writer side -------------------------------------------------------------------------
    def _write(self, http: httpx.Client, body: bytes) -> bool:
        auth: tuple[str | bytes, str | bytes] | httpx._client.UseClientDefault = (
            (self.opts.influx_user, self.opts.influx_password or "")
            if self.opts.influx_user
            else httpx.USE_CLIENT_DEFAULT
        )
        t0 = time.monotonic()
        try:
            r = http.post(
                f"{self.opts.influx_url}/write",
                params={"db": self.opts.influx_db, "precision": "ns"},
                content=body,
                auth=auth,
            )
        except httpx.HTTPError as exc:
            log.warning("influx write failed: %s", exc)
            return False
        if r.status_code == 204:
            self.counters.write_latency_ms.append((time.monotonic() - t0) * 1000)
            if len(self.counters.write_latency_ms) > 10_000:
                del self.counters.write_latency_ms[:5000]
            return True
        log.warning("influx write refused: %s %s", r.status_code, r.text[:200])
        return False

    def _writer(self) -> None:
        backoff = 0.1
        with httpx.Client(timeout=30) as http:
            while not (self.stop_event.is_set() and self._q.empty()):
                batch: list[tuple[mqtt.MQTTMessage, Accepted]] = []
                n_lines = 0
                deadline = time.monotonic() + self.opts.linger_s
                while n_lines < self.opts.batch_lines:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        break
                    try:
                        item = self._q.get(timeout=timeout)
                    except queue.Empty:
                        break
                    batch.append(item)
                    n_lines += len(item[1].lines)
                if not batch:
                    continue
                body = "\n".join(line for _, a in batch for line in a.lines).encode()
                while body and not self._write(http, body):
                    self.counters.write_failures += 1
                    # Nothing is acknowledged while InfluxDB refuses: retry with capped backoff.
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                backoff = 0.1
                for msg, acc in batch:
                    self.client.ack(msg.mid, msg.qos)
                    self.counters.written_obs += acc.n_obs
                    self.counters.written_points += len(acc.lines)
                self.counters.batches_written += 1

    def run(self) -> None:
        """Run until ``stop()``; in-flight batches are written and acknowledged before exit."""
        connect_blocking(self.client, self.params)
        writer = threading.Thread(target=self._writer, name="influx-writer", daemon=True)
        writer.start()
        self.stop_event.wait()
        # Stop taking new messages, then let the writer drain what it holds.
        self.client.unsubscribe(topics.shared(self.opts.share_group, self.obs_filter))
        writer.join(timeout=60)
        self.client.disconnect()
        self.client.loop_stop()

    def stop(self) -> None:
        self.stop_event.set()
