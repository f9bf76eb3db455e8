"""The ingest shell: MQTT (persistent session, manual ack) -> InfluxDB /write, ack after write.

Flow: paho's network thread validates each message with ``core.route`` and hands accepted ones
to a bounded queue; rejected ones are dead-lettered (with the reason) and acknowledged once the
dead letter itself is PUBACKed. The writer thread batches lines by size and linger, POSTs them
to InfluxDB, and only after a 2xx acknowledges the MQTT messages the batch came from. While
InfluxDB is down nothing is acknowledged: the broker keeps the messages (persistent session)
and redelivers them when we (or, for a dead worker, its restarted successor) reconnect.

Subscription modes (``IngestOptions.subscription``):

* ``exclusive`` (default): one worker per unit holds a plain subscription to the unit's
  observation topics in a persistent session. Scale-out is by unit (topic-filter sharding).
  It survives broker restarts: mosquitto restores plain subscriptions from its persistence file.
* ``shared``: several workers on one unit share ``$share/<group>/...``. Measured on mosquitto
  2.0.11 (Debian 12): shared subscriptions are *not* restored after a broker restart, so what
  gateways publish between the restart and the workers' resubscribe is dropped by the broker
  (docs/architecture.md, "Known limits"). Use it with a broker that persists shared
  subscriptions.

Fault boundaries (docs/architecture.md, "Fault boundaries"):

* every message is handled inside ``servicekit.faults.MessageBoundary``: whatever handling one
  message raises dead-letters *that* message (reason ``fault: <exception>``), is counted, and
  the consumer goes on; paho's network thread never dies from a payload;
* the writer tells a refused write from a failed one (``ingest.writer``): a 400 is bisected,
  every good line written, the refused lines dead-lettered with InfluxDB's message and their
  messages acknowledged; 5xx, no connection, 401/403/404 are retried with backoff;
* readiness is liveness: ``ready`` is 1 only while the subscription is confirmed *and* the
  network and writer threads are alive; if one dies, ``run()`` raises ``ServiceFailed`` (the
  process exits non-zero to be restarted);
* SIGTERM drains for at most ``drain_timeout_s`` (10 s), then exits, leaving what is not
  written un-acknowledged for the broker to redeliver.

Per-gateway ``seq`` tracking needs every message: in exclusive mode the worker sees them all;
in shared mode one worker (``seq_audit=True``) adds a plain persistent subscription that only
tracks sequences (gaps become technical events, duplicates are counted).

Charted sets (docs/charting.md): the same session also subscribes to the unit's charting topic
(``{root}/chart/{site}/{unit}``, shared in shared mode). ``ingest.chart.route_chart`` validates
each set (dead letters and counts like batches); accepted sets go to a second write lane of
their own (queue and writer thread) that writes to the no-expiry ``charted`` retention policy
and acknowledges after the write. A lane of its own, so that a database set up before charting
existed (no ``charted`` policy yet: InfluxDB answers 500, retried) holds back charted sets
only, never the unit's vital signs.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from ingest.chart import AcceptedChart, route_chart
from ingest.core import Accepted, ClockWatch, Rejected, SeqTracker, WardIndex, route
from ingest.storage import CHARTED_RP, DownsamplingPlan, charted_rp_exists, write_charted
from ingest.writer import PostResult, TransientWriteError, classify, write_bisecting
from servicekit import influx
from servicekit.backoff import Backoff
from servicekit.changes import ContextChanges
from servicekit.clock import utcnow
from servicekit.context import ContextSource, UnitContextError
from servicekit.faults import (
    Liveness,
    MessageBoundary,
    dead_letter_for,
    identity_mismatch_event,
)
from servicekit.influx import InfluxError, InfluxTarget, query
from servicekit.metrics import (
    CollectorRegistry,
    Families,
    MetricsServer,
    counter,
    gauge,
    percentile,
    quantiles,
    serve,
    service_registry,
)
from servicekit.metrics import metrics_text as registry_text
from servicekit.mqtt import MqttParams, MqttSession
from wardwire import topics
from wardwire.models import ObservationBatch, TechnicalEvent

log = logging.getLogger(__name__)
SERVICE = "ingest"
#: InfluxDB write retries: 0.1 s doubling to 5 s, jittered like every other retry.
WRITE_RETRY = Backoff(initial_s=0.1, cap_s=5.0)

#: a received message, what route() (or route_chart()) made of it, and the connection epoch
#: it arrived on
Pending = tuple[mqtt.MQTTMessage, Accepted | AcceptedChart, int]


@dataclass(eq=False)
class WriteLane:
    """One queue and its writer thread: observations into the default retention policy, or
    charted sets into ``charted`` (``rp``)."""

    name: str
    rp: str | None
    q: queue.Queue[Pending]
    #: set by the writer once stopping and nothing is left to write
    drained: bool = False


@dataclass
class IngestCounters:
    received: int = 0
    written_obs: int = 0
    written_points: int = 0
    dead_lettered: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    write_failures: int = 0
    batches_written: int = 0
    backfills: int = 0
    seq_gaps: int = 0
    seq_duplicates: int = 0
    outbox_resets: int = 0
    seq_jumps: int = 0
    stale_acks_skipped: int = 0
    accepted: int = 0  # messages taken for writing
    acked_msgs: int = 0  # of those, written and acknowledged
    deferred: int = 0  # arrived while shutting down: left for redelivery
    refused_points: int = 0  # lines InfluxDB refused for good (dead-lettered)
    abandoned_msgs: int = 0  # not written when the drain deadline passed: left for redelivery
    clock_skew_events: int = 0
    queue_full_waits: int = 0  # the network thread had to wait (should stay 0)
    audit_skipped: int = 0  # messages the shared-mode seq auditor could not use
    disconnects: int = 0
    charted_sets_written: int = 0  # charted sets written (and acknowledged)
    charted_dead_lettered: dict[str, int] = field(default_factory=dict)  # by reason
    charted_write_failures: int = 0  # failed writes of charted sets (retried)
    write_latency_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    influx_url: str
    influx_db: str
    influx_user: str | None
    influx_password: str | None
    topic_root: str = topics.ROOT
    worker_id: str = "ingest-1"
    subscription: Literal["exclusive", "shared"] = "exclusive"
    share_group: str = "ingest"
    batch_lines: int = 20_000
    linger_s: float = 0.2
    max_pending_msgs: int = 500
    seq_audit: bool = True
    metrics_port: int | None = None  # None = no endpoint; 0 = any free port
    backfill_after_s: float = 300.0  # data older than this on arrival is back-filled
    stats_file: Path | None = None
    drain_timeout_s: float = 10.0  # on stop: write what was taken for at most this long
    clock_tolerance_s: float = 300.0  # a gateway clock further off is reported
    context_refresh_s: float = 30.0  # re-read a registry URL context this often


class IngestService:
    def __init__(
        self,
        mqtt_params: MqttParams,
        index: WardIndex,
        opts: IngestOptions,
        context_source: ContextSource | None = None,
    ) -> None:
        self.params = mqtt_params
        self.index = index
        #: where ``index`` came from; with a registry URL it is re-read every context_refresh_s
        self.context_source = context_source
        self.context_fallbacks = 0  # refreshes that fell back to the cache or kept the last
        self._context_thread: threading.Thread | None = None
        #: the registry's change events for our unit (with a registry URL): re-read at once
        self.context_changes: ContextChanges | None = None
        self.opts = opts
        self.counters = IngestCounters()
        self.seq = SeqTracker()
        self.stop_event = threading.Event()
        self.target = InfluxTarget(
            opts.influx_url, opts.influx_db, opts.influx_user, opts.influx_password
        )
        # The broker never has more than our receive maximum delivered and un-acknowledged,
        # so a queue that holds that many never fills: paho's network thread never blocks
        # on it (a blocked network thread misses keepalives and is dropped by the broker).
        self._q: queue.Queue[Pending] = queue.Queue(
            maxsize=max(opts.max_pending_msgs, mqtt_params.receive_maximum) + 16
        )
        # Charted sets have a lane of their own (module docstring); the same bound.
        self._obs_lane = WriteLane("obs", None, self._q)
        self._chart_lane = WriteLane(
            "charted", CHARTED_RP, queue.Queue(maxsize=self._q.maxsize)
        )
        #: set when the drain deadline passed: the writer gives up, nothing more is acked
        self._abandon = threading.Event()
        self.clock_watch = ClockWatch(tolerance_s=opts.clock_tolerance_s)
        self._epoch = 0
        self._ack_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._lock = threading.Lock()
        self._rng = random.Random()
        ward = index.ward
        self.obs_filter = topics.gateway_obs(ward.site, ward.unit, topics.ANY, root=opts.topic_root)
        self.subscription_filter = (
            topics.shared(opts.share_group, self.obs_filter)
            if opts.subscription == "shared"
            else self.obs_filter
        )
        self.chart_topic = topics.charting(ward.site, ward.unit, root=opts.topic_root)
        self._chart_prefix = f"{opts.topic_root}/chart/"
        self.chart_subscription = (
            topics.shared(opts.share_group, self.chart_topic)
            if opts.subscription == "shared"
            else self.chart_topic
        )
        self.boundary = MessageBoundary(SERVICE, self._on_message, self._dead_letter)
        self.mqtt = MqttSession(
            mqtt_params,
            opts.worker_id,
            manual_ack=True,
            subscriptions=[(self.subscription_filter, 1), (self.chart_subscription, 1)],
            on_message=self.boundary,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            log_name=__name__,
        )
        #: the paho client underneath (acks go through the session)
        self.client = self.mqtt.client
        #: set once the broker granted our subscription (readiness, for tests and health)
        self.ready = self.mqtt.subscribed
        self.auditor: MqttSession | None = None
        self.metrics: MetricsServer | None = None
        self.liveness = Liveness(SERVICE)
        self._writer_thread: threading.Thread | None = None
        self._chart_writer_thread: threading.Thread | None = None
        self._late: tuple[int, int] | None = None  # ns range of late data awaiting backfill

    # -- MQTT side ---------------------------------------------------------------------------
    def _new_epoch(self) -> None:
        # Packet ids belong to a connection: after a reconnect the broker redelivers un-acked
        # messages and may reuse an old id for a *different* message, so an ack for a message
        # received on an earlier connection must never be sent (it could ack an unwritten one).
        with self._ack_lock:
            self._epoch += 1

    def _ack(self, mid: int, qos: int, epoch: int) -> None:
        with self._ack_lock:
            if epoch != self._epoch:
                self.counters.stale_acks_skipped += 1  # the broker redelivers it; writes are
                return  # idempotent, so the duplicate is harmless
            self.mqtt.ack(mid, qos)

    def _on_disconnect(self, rc: ReasonCode) -> None:
        self._new_epoch()
        self.counters.disconnects += 1
        log.log(logging.WARNING if rc.is_failure else logging.INFO,
                "disconnected from broker: %s", rc)

    def _on_connect(self, session_present: bool) -> None:
        # Runs before any message of the new connection is handled (paho's one thread); the
        # session re-subscribes on every connect (a broker that lost our session forgets it).
        self._new_epoch()

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        """Handle one message (inside the fault boundary).

        Everything that can fail is decided first; only then is the message taken (queued for
        writing) and the side messages published, so a fault can never leave a message both
        queued and dead-lettered (its packet id would be acknowledged twice).
        """
        self.counters.received += 1
        if msg.topic.startswith(self._chart_prefix):
            self._on_charted(msg)
            return
        result = route(msg.topic, bytes(msg.payload), self.index, root=self.opts.topic_root)
        if isinstance(result, Rejected):
            if result.kind == "identity":
                self._identity_event(msg.topic, result.reason)
            self._dead_letter(msg, result.kind, result.reason)
            return
        notes: list[tuple[str, str]] = []  # (topic, payload) published once the message is taken
        if result.unknown_devices:
            # Known devices' readings are written; the unknown ones are dead-lettered visibly.
            detail = ", ".join(f"{d} ({n})" for d, n in sorted(result.unknown_devices.items()))
            notes.append(self._dead_letter_note(msg, "unknown_device", f"not registered: {detail}"))
        if self.opts.subscription == "exclusive" and self.opts.seq_audit:
            notes += self._seq_notes(result.gateway_id, result.seq, result.epoch)
        notes += self._clock_notes(result.gateway_id, result.sent_at)
        if not self._take(msg, result):
            return
        for topic, payload in notes:
            self.mqtt.publish(topic, payload, qos=1)

    def _on_charted(self, msg: mqtt.MQTTMessage) -> None:
        """One message from the unit's charting topic: dead-letter it with the reason, or take
        it for the charted lane (acknowledged once written)."""
        result = route_chart(
            msg.topic, bytes(msg.payload), self.index.ward, root=self.opts.topic_root
        )
        if isinstance(result, Rejected):
            self._dead_letter(msg, result.kind, result.reason)
            return
        self._take(msg, result)

    def _take(self, msg: mqtt.MQTTMessage, result: Accepted | AcceptedChart) -> bool:
        """Queue a message for writing; False if we are stopping (left for redelivery).

        The queue holds at least the broker's receive maximum, which bounds the messages
        delivered to us and not yet acknowledged, so a put does not block in normal operation;
        while stopping, the wait is bounded and ends with the drain.
        """
        item = (msg, result, self._epoch)
        lane = self._chart_lane if isinstance(result, AcceptedChart) else self._obs_lane
        while True:
            with self._drain_lock:
                if lane.drained or self._abandon.is_set():
                    # Neither written nor acked: the broker keeps it for our next connection
                    # (the subscription stays in the persistent session).
                    self.counters.deferred += 1
                    return False
                try:
                    lane.q.put(item, timeout=0.1)
                except queue.Full:
                    # Only if the broker ignored our receive maximum: wait, visibly.
                    self.counters.queue_full_waits += 1
                    continue
                self.counters.accepted += 1
                return True

    def _dead_letter_note(self, msg: mqtt.MQTTMessage, kind: str, reason: str) -> tuple[str, str]:
        self._count_dead_letter(kind, charted=msg.topic.startswith(self._chart_prefix))
        log.warning("dead-lettered message on %s: %s: %s", msg.topic, kind, reason)
        dl = dead_letter_for(SERVICE, msg.topic, bytes(msg.payload), f"{kind}: {reason}")
        return topics.dead_letter(SERVICE, root=self.opts.topic_root), dl.model_dump_json()

    def _count_dead_letter(self, kind: str, *, charted: bool = False) -> None:
        with self._lock:
            self.counters.dead_lettered += 1
            reasons = self.counters.dead_letter_reasons
            reasons[kind] = reasons.get(kind, 0) + 1
            if charted:
                by_reason = self.counters.charted_dead_lettered
                by_reason[kind] = by_reason.get(kind, 0) + 1

    def _dead_letter(self, msg: mqtt.MQTTMessage, kind: str, reason: str) -> None:
        """Dead-letter a whole message; it is acknowledged once the dead letter is PUBACKed.

        Called on paho's network thread.
        """
        topic, payload = self._dead_letter_note(msg, kind, reason)
        self._publish_dead_letter(topic, payload, msg, self._epoch)

    def _publish_dead_letter(
        self, topic: str, payload: str, msg: mqtt.MQTTMessage, epoch: int
    ) -> None:
        def release(rc: ReasonCode) -> None:
            if not rc.is_failure:
                self._ack(msg.mid, msg.qos, epoch)  # the dead letter is safe: ack the original
            else:  # left un-acked: the broker redelivers the original, and it is judged again
                log.error("dead letter for a message on %s refused by the broker: %s",
                          msg.topic, rc)

        self.mqtt.publish(topic, payload, qos=1, on_done=release)

    # -- sequence audit (plain subscription, sees every message) -----------------------------
    def _audit_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        """Track one message's seq (inside a fault boundary of its own). What is malformed or
        disagrees with its topic is not counted here: the shared subscriber dead-letters it."""
        try:
            batch = ObservationBatch.model_validate_json(msg.payload)
            topics.verify_gateway_payload(msg.topic, batch.gateway_id, root=self.opts.topic_root)
        except (ValidationError, topics.IdentityMismatch):
            self.counters.audit_skipped += 1
            return
        assert self.auditor is not None  # its own messages are what call this
        for topic, payload in self._seq_notes(batch.gateway_id, batch.seq, batch.epoch):
            self.auditor.publish(topic, payload, qos=1)

    def _audit_fault(self, msg: mqtt.MQTTMessage, kind: str, reason: str) -> None:
        # The shared subscriber owns dead letters; the auditor only counts (auto-acked).
        self.counters.audit_skipped += 1
        log.error("seq audit: %s on %s: %s", kind, msg.topic, reason)

    def _technical(self, event: TechnicalEvent) -> tuple[str, str]:
        ward = self.index.ward
        topic = topics.technical(ward.site, ward.unit, SERVICE, root=self.opts.topic_root)
        return topic, event.model_dump_json()

    def _seq_notes(
        self, gateway_id: str, seq: int, epoch: str | None = None
    ) -> list[tuple[str, str]]:
        s = self.seq.observe(gateway_id, seq, epoch)
        self.counters.seq_gaps = self.seq.gaps_total
        self.counters.seq_duplicates = self.seq.duplicates_total
        self.counters.outbox_resets = self.seq.resets_total
        self.counters.seq_jumps = self.seq.jumps_total
        if s.reset is None and not s.jump and not s.new_gap:
            return []  # the common case: nothing to report
        events: list[TechnicalEvent] = []
        now = utcnow()
        if s.reset is not None:
            old, lost = s.reset
            events.append(TechnicalEvent(
                service=SERVICE, event="outbox_reset", gateway_id=gateway_id, at=now,
                detail=f"outbox epoch {old} -> {epoch} (seqs start again at {seq}); "
                f"{lost} batches of the old epoch were never received",
                count=max(lost, 1),
            ))
        if s.jump:
            events.append(TechnicalEvent(
                service=SERVICE, event="seq_jump", gateway_id=gateway_id, at=now,
                detail=f"seq jumped by {s.jump} to {seq} (beyond the {self.seq.jump_window}-batch "
                "window): a forged or reset sequence, not counted as missing",
                count=s.jump,
            ))
        if s.new_gap:
            events.append(TechnicalEvent(
                service=SERVICE, event="seq_gap", gateway_id=gateway_id, at=now,
                detail=f"{s.new_gap} batches missing around seq {seq}", count=s.new_gap,
            ))
        for ev in events:
            log.warning("gateway %s: %s", gateway_id, ev.detail)
        return [self._technical(ev) for ev in events]

    def _identity_event(self, topic: str, reason: str) -> None:
        publisher = topics.parse_gateway_topic(topic, root=self.opts.topic_root).gateway
        t, payload = self._technical(identity_mismatch_event(SERVICE, publisher, reason, utcnow()))
        self.mqtt.publish(t, payload, qos=1)

    def _clock_notes(self, gateway_id: str, sent_at: datetime | None) -> list[tuple[str, str]]:
        now = utcnow()
        finding = self.clock_watch.observe(gateway_id, sent_at, now)
        if finding is None:
            return []
        self.counters.clock_skew_events += 1
        log.warning("gateway %s: %s", gateway_id, finding)
        ev = TechnicalEvent(
            service=SERVICE, event="clock_skew", gateway_id=gateway_id, at=now, detail=finding
        )
        return [self._technical(ev)]

    def _start_auditor(self) -> None:
        params = self.params  # persistent: a plain subscription survives broker restarts
        aud = MqttSession(
            params,
            f"{self.opts.worker_id}-seq-audit",
            subscriptions=[(self.obs_filter, 1)],
            on_message=MessageBoundary(
                f"{SERVICE}-seq-audit", self._audit_message, self._audit_fault
            ),
            log_name=f"{__name__}.seq-audit",
        )
        aud.start()
        self.auditor = aud
        self.liveness.add("seq-audit", aud.alive)

    # -- writer side -------------------------------------------------------------------------
    def _post(self, http: httpx.Client, lines: Any, rp: str | None = None) -> PostResult:
        t0 = time.monotonic()
        try:
            if rp is None:
                r = influx.write(http, self.target, lines)
            else:
                r = write_charted(http, self.target, list(lines))
        except httpx.RemoteProtocolError as exc:
            # InfluxDB answered something unreadable. It echoes a refused line in a header, so
            # a line httpx cannot carry in a header makes the refusal itself unreadable; if
            # the server is alive, this body is refused (and bisected), not retried for ever.
            if self._influx_alive(http):
                log.warning("influx write: unreadable answer from a live server: %r", exc)
                return PostResult("refused", f"unreadable InfluxDB response: {exc}")
            log.warning("influx write failed (will retry): %r", exc)
            return PostResult("transient", f"no answer from InfluxDB: {exc!r}")
        except httpx.HTTPError as exc:
            log.warning("influx write failed (will retry): %r", exc)
            return PostResult("transient", f"no answer from InfluxDB: {exc!r}")
        result = classify(r.status_code, r.text)
        if result.outcome == "ok":
            lat = self.counters.write_latency_ms
            lat.append((time.monotonic() - t0) * 1000)
            if len(lat) > 10_000:
                del lat[:5000]
        else:
            log.warning("influx write %s: %s", result.outcome, result.message)
        return result

    def _influx_alive(self, http: httpx.Client) -> bool:
        return influx.ping(http, self.target)

    def _write_batch(
        self, http: httpx.Client, batch: list[Pending], lane: WriteLane | None = None
    ) -> bool:
        """Write one batch; True once every message is written or dead-lettered and acked.

        Retries transient failures with capped backoff until it succeeds or the drain
        deadline passes (then False: nothing more is acknowledged).
        """
        rp = None if lane is None else lane.rp
        attempt = 0
        while True:
            try:
                groups = [acc.lines for _, acc, _ep in batch]
                refused = write_bisecting(groups, lambda lines: self._post(http, lines, rp))
                break
            except TransientWriteError:
                # Nothing is acknowledged while InfluxDB cannot take the batch.
                with self._lock:
                    self.counters.write_failures += 1
                    if rp is not None:
                        self.counters.charted_write_failures += 1
                if self._abandon.wait(WRITE_RETRY.delay(attempt, self._rng)):
                    return False
                attempt += 1
        obs = points = sets = 0
        for (msg, acc, epoch), bad in zip(batch, refused, strict=True):
            if bad:
                self._refused(msg, acc, epoch, bad)
            else:
                self._ack(msg.mid, msg.qos, epoch)
            if isinstance(acc, AcceptedChart):
                sets += 0 if bad else 1
            else:
                obs += acc.n_obs - sum(1 for ln, _ in bad if ln.startswith("obs"))
            points += len(acc.lines) - len(bad)
        with self._lock:  # two writer threads (observations, charted sets) count here
            c = self.counters
            c.acked_msgs += len(batch)
            c.written_obs += obs
            c.charted_sets_written += sets
            c.written_points += points
            c.batches_written += 1
        return True

    def _refused(
        self,
        msg: mqtt.MQTTMessage,
        acc: Accepted | AcceptedChart,
        epoch: int,
        bad: list[tuple[str, str]],
    ) -> None:
        """Dead-letter the points InfluxDB refused for good; the message is acknowledged when
        the dead letter is PUBACKed (by ``_on_publish``, like every other dead letter).

        Runs on the writer thread; the session registers the completion before paho's network
        thread can handle the PUBACK, without the writer ever waiting on that thread.
        """
        with self._lock:
            self.counters.refused_points += len(bad)
        reason = (
            f"{len(bad)} of {len(acc.lines)} points refused by InfluxDB: {bad[0][1]}; "
            f"first refused point: {bad[0][0][:300]}"
        )
        topic, payload = self._dead_letter_note(msg, "influx_refused", reason)
        self._publish_dead_letter(topic, payload, msg, epoch)

    def _note_late(self, batch: list[Pending]) -> None:
        cutoff = int((time.time() - self.opts.backfill_after_s) * 1e9)
        for _, acc, _ep in batch:
            if isinstance(acc, Accepted) and acc.n_obs and acc.t_min_ns < cutoff:
                lo, hi = self._late or (acc.t_min_ns, acc.t_max_ns)
                self._late = (min(lo, acc.t_min_ns), max(hi, acc.t_max_ns))

    def _backfill(self, http: httpx.Client) -> None:
        """Recompute the 1-minute aggregates that late data touched (continuous queries only
        cover recent windows). Idempotent: recomputed points overwrite the old ones."""
        if self._late is None:
            return
        lo, hi = self._late
        plan = DownsamplingPlan(self.opts.influx_db)
        stmt = plan.backfill_statement(
            datetime.fromtimestamp(lo / 1e9, tz=UTC), datetime.fromtimestamp(hi / 1e9, tz=UTC)
        )
        try:
            query(http, self.target, stmt, write=True)
        except (InfluxError, httpx.HTTPError) as exc:
            if "retention policy not found" in str(exc):
                log.info("no downsampling set up on %s; backfill skipped", self.opts.influx_db)
                self._late = None
            else:
                log.warning("backfill failed (will retry): %s", exc)
            return
        self.counters.backfills += 1
        self._late = None

    def _writer(self, lane: WriteLane | None = None) -> None:
        lane = lane or self._obs_lane
        obs = lane.rp is None
        next_backfill = time.monotonic()
        with httpx.Client(timeout=30) as http:
            if not obs:
                self._check_charted_rp(http)
            while True:
                if self.stop_event.is_set() and lane.q.empty():
                    with self._drain_lock:
                        if lane.q.empty():
                            lane.drained = True
                            break
                batch: list[Pending] = []
                n_lines = 0
                deadline = time.monotonic() + self.opts.linger_s
                while n_lines < self.opts.batch_lines:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        break
                    try:
                        item = lane.q.get(timeout=timeout)
                    except queue.Empty:
                        break
                    batch.append(item)
                    n_lines += len(item[1].lines)
                if obs and time.monotonic() >= next_backfill and self._late is not None:
                    self._backfill(http)
                    next_backfill = time.monotonic() + 5.0
                if not batch:
                    continue
                if not self._write_batch(http, batch, lane):
                    self.counters.abandoned_msgs += len(batch) + lane.q.qsize()
                    log.warning(
                        "drain deadline passed: %d %s messages left un-acked for redelivery",
                        len(batch) + lane.q.qsize(), lane.name,
                    )
                    return
                if obs:
                    self._note_late(batch)
            if obs:
                self._backfill(http)

    def _check_charted_rp(self, http: httpx.Client) -> None:
        """Say at start, loudly, if charted sets cannot be stored yet (they wait un-acked)."""
        try:
            exists = charted_rp_exists(http, self.target)
        except (InfluxError, httpx.HTTPError) as exc:
            log.warning("could not check for the %r retention policy: %s", CHARTED_RP, exc)
            return
        if not exists:
            log.error(
                "database %r has no %r retention policy: charted sets are not stored (they "
                "stay with the broker, un-acknowledged) until `wardwatch ingest setup-db` "
                "creates it", self.opts.influx_db, CHARTED_RP,
            )

    # -- unit context ------------------------------------------------------------------------
    def refresh_context(self) -> None:
        """Re-read the unit context; a changed one replaces the index (one attribute swap, so
        the network thread sees the old index or the new one). A context for another site or
        unit is refused (our subscriptions are for this one). When the source fails, the
        cached (or last) context stays in use and the fallback is logged and counted."""
        src = self.context_source
        if src is None:
            return
        was_stale = src.stale
        try:
            ctx = src.load()
        except UnitContextError as exc:
            self.context_fallbacks += 1
            log.warning("context_stale: %s; keeping the context in use", exc)
            return
        if src.stale:
            self.context_fallbacks += 1
            log.warning("context_stale: running on the cached unit context: %s", src.last_error)
            if not was_stale:
                self._context_event("context_stale", "running on the cached unit context: "
                                    f"{src.last_error}")
        elif was_stale:
            log.info("context_fresh: the context source answers again")
            self._context_event("context_fresh", "the registry answers again")
        ward = self.index.ward
        if (ctx.site, ctx.unit) != (ward.site, ward.unit):
            log.error(
                "context for %s/%s refused: this worker serves %s/%s (restart it to move)",
                ctx.site, ctx.unit, ward.site, ward.unit,
            )
            return
        if ctx != ward:
            self.index = WardIndex(ctx)
            log.info("unit context changed: %d beds, %d gateways", len(ctx.beds),
                     len(ctx.gateways))

    def _context_event(self, event: Literal["context_stale", "context_fresh"],
                       detail: str) -> None:
        """Tell operators (the technical topic) that ingest runs on its cached context, or no
        longer does; the same is in /metrics (``wardwatch_ingest_context_stale``)."""
        ev = TechnicalEvent(service=SERVICE, event=event, at=utcnow(), detail=detail[:500])
        t, payload = self._technical(ev)
        self.mqtt.publish(t, payload, qos=1)

    def _context_refresher(self) -> None:
        changes = self.context_changes
        while not self.stop_event.is_set():
            if changes is None:
                if self.stop_event.wait(self.opts.context_refresh_s):
                    return
            else:
                # a change event, the refresh period, or the stop (which sets it too)
                changes.changed.wait(self.opts.context_refresh_s)
                changes.changed.clear()
                if self.stop_event.is_set():
                    return
            try:
                self.refresh_context()
            except Exception:  # never let a refresh bug stop ingest: the old context stays
                log.exception("context refresh failed")

    # -- metrics -----------------------------------------------------------------------------
    def metrics_text(self) -> str:
        """What ``/metrics`` answers (the Prometheus text format)."""
        return registry_text(self.metrics_registry)

    @cached_property
    def metrics_registry(self) -> CollectorRegistry:
        """This service's own registry: the families below, built at every scrape."""
        return service_registry(self._metric_families)

    def _metric_families(self) -> Families:
        c = self.counters
        lat = list(c.write_latency_ms)
        w = {"worker": self.opts.worker_id}
        yield counter(
            "wardwatch_ingest_received_total", "MQTT messages received", [(w, c.received)]
        )
        yield counter(
            "wardwatch_ingest_written_observations_total",
            "observations written to InfluxDB",
            [(w, c.written_obs)],
        )
        yield counter(
            "wardwatch_ingest_written_points_total",
            "points written (incl. waves)",
            [(w, c.written_points)],
        )
        yield counter(
            "wardwatch_ingest_write_failures_total",
            "failed InfluxDB writes",
            [(w, c.write_failures)],
        )
        yield gauge(
            "wardwatch_ingest_seq_missing",
            "batches currently missing (per-gateway seq gaps not filled by late arrivals)",
            [(w, c.seq_gaps)],
        )
        yield counter(
            "wardwatch_ingest_seq_duplicates_total",
            "duplicate batches seen",
            [(w, c.seq_duplicates)],
        )
        yield counter(
            "wardwatch_ingest_outbox_resets_total",
            "gateway outbox epochs that changed (a replaced outbox)",
            [(w, c.outbox_resets)],
        )
        yield counter(
            "wardwatch_ingest_seq_jumps_total",
            "seq jumps beyond the window (forged or reset sequences)",
            [(w, c.seq_jumps)],
        )
        yield counter(
            "wardwatch_ingest_backfills_total",
            "late-data downsampling backfills",
            [(w, c.backfills)],
        )
        yield gauge(
            "wardwatch_ingest_backlog_messages",
            "accepted messages not yet written",
            [(w, self._q.qsize())],
        )
        yield gauge(
            "wardwatch_ingest_ready",
            "1 while subscribed and the network and writer threads are alive",
            [(w, 1 if self.is_ready() else 0)],
        )
        yield counter(
            "wardwatch_ingest_faults_total",
            "messages whose handling raised (dead-lettered by the fault boundary)",
            [(w, self.boundary.faults_total)],
        )
        yield counter(
            "wardwatch_ingest_refused_points_total",
            "points InfluxDB refused for good (dead-lettered)",
            [(w, c.refused_points)],
        )
        yield counter(
            "wardwatch_ingest_clock_skew_events_total",
            "gateway clock findings (sent_at against our clock)",
            [(w, c.clock_skew_events)],
        )
        yield gauge(
            "wardwatch_ingest_gateway_clock_offset_seconds",
            "latest sent_at minus receive time per gateway (> 0: gateway clock ahead)",
            [({**w, "gateway": gw}, off) for gw, off in sorted(self.clock_watch.offsets().items())],
        )
        reasons = sorted(c.dead_letter_reasons.items()) or [("none", 0)]
        yield counter(
            "wardwatch_ingest_dead_lettered_total",
            "dead-lettered messages",
            [({**w, "reason": k}, n) for k, n in reasons],
        )
        yield counter(
            "wardwatch_ingest_charted_sets_written_total",
            "nurses' charted sets written to the charted retention policy",
            [(w, c.charted_sets_written)],
        )
        charted = sorted(c.charted_dead_lettered.items()) or [("none", 0)]
        yield counter(
            "wardwatch_ingest_charted_dead_lettered_total",
            "charted sets dead-lettered (also counted in wardwatch_ingest_dead_lettered_total)",
            [({**w, "reason": k}, n) for k, n in charted],
        )
        yield counter(
            "wardwatch_ingest_charted_write_failures_total",
            "failed writes of charted sets (retried; e.g. no charted retention policy yet)",
            [(w, c.charted_write_failures)],
        )
        yield gauge(
            "wardwatch_ingest_charted_backlog_messages",
            "accepted charted sets not yet written",
            [(w, self._chart_lane.q.qsize())],
        )
        src = self.context_source
        yield gauge(
            "wardwatch_ingest_context_stale",
            "1 while running on the cached unit context (the registry did not answer well)",
            [(w, 1 if src is not None and src.stale else 0)],
        )
        age = src.age_seconds() if src is not None else None
        yield gauge(
            "wardwatch_ingest_context_age_seconds",
            "seconds since the unit context source last answered well (0 without a source)",
            [(w, age or 0.0)],
        )
        yield counter(
            "wardwatch_ingest_context_fallbacks_total",
            "context refreshes that kept the cached or last context (source unreachable or bad)",
            [(w, self.context_fallbacks)],
        )
        changes = self.context_changes
        yield counter(
            "wardwatch_ingest_context_changes_total",
            "the registry's change events for this unit received (each makes a re-read)",
            [(w, changes.received if changes is not None else 0)],
        )
        yield quantiles(
            "wardwatch_ingest_write_latency_seconds",
            "InfluxDB write latency",
            [(w, {q: percentile(lat, q) / 1000 for q in (0.5, 0.99)})],
        )

    def stats(self) -> dict[str, Any]:
        c = asdict(self.counters)
        lat = c.pop("write_latency_ms")
        c["write_p50_ms"] = round(percentile(lat, 0.5), 2)
        c["write_p99_ms"] = round(percentile(lat, 0.99), 2)
        c["faults"] = self.boundary.faults_total
        return c

    def is_ready(self) -> bool:
        """Readiness is liveness: subscribed, and every thread we need still running."""
        return self.ready.is_set() and self.liveness.ok()

    # -- run ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Run until ``stop()``; in-flight batches are written and acknowledged before exit."""
        if self.opts.metrics_port is not None:
            self.metrics = serve(self.metrics_registry, self.opts.metrics_port)
        if self.opts.subscription == "shared" and self.opts.seq_audit:
            self._start_auditor()
        self.mqtt.start()
        writer = threading.Thread(target=self._writer, name="influx-writer", daemon=True)
        writer.start()
        self._writer_thread = writer
        chart_writer = threading.Thread(
            target=self._writer, args=(self._chart_lane,), name="charted-writer", daemon=True
        )
        chart_writer.start()
        self._chart_writer_thread = chart_writer
        self.liveness.add("mqtt", self.mqtt.alive)
        self.liveness.add("writer", writer.is_alive)
        self.liveness.add("charted-writer", chart_writer.is_alive)
        if self.context_source is not None and self.context_source.is_url:
            ward = self.index.ward
            self.context_changes = ContextChanges(
                self.params, f"{self.opts.worker_id}-ctx", ward.site, ward.unit,
                root=self.opts.topic_root,
            )
            self.context_changes.start()
            if self.context_source.stale:  # started on the cache: the registry did not answer
                self._context_event("context_stale", "started on the cached unit context: "
                                    f"{self.context_source.last_error}")
            self._context_thread = threading.Thread(
                target=self._context_refresher, name="context-refresh", daemon=True
            )
            self._context_thread.start()
        try:
            while not self.stop_event.wait(0.5):
                self.liveness.raise_if_dead()
        finally:
            self._shutdown(writer, chart_writer)

    def _shutdown(self, *writers: threading.Thread) -> None:
        self.stop_event.set()
        if self.context_changes is not None:
            self.context_changes.changed.set()  # wakes the refresher to see the stop
            self.context_changes.stop()
        # Drain: write and ack everything taken, for at most drain_timeout_s; what arrives
        # meanwhile, or is not written by then, is left un-acked for the broker to redeliver.
        # Never unsubscribe: that would drop the subscription from the persistent session,
        # and the broker would discard what is published while we are down.
        deadline = time.monotonic() + self.opts.drain_timeout_s
        for w in writers:
            w.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(w.is_alive() for w in writers):
            self._abandon.set()
            for w in writers:
                w.join(timeout=5.0)
        self.mqtt.stop()
        if self.auditor is not None:
            self.auditor.stop()
        if self.metrics is not None:
            self.metrics.stop()
        if self.opts.stats_file is not None:
            self.opts.stats_file.write_text(json.dumps(self.stats()), encoding="utf-8")

    def stop(self) -> None:
        self.stop_event.set()
