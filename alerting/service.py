"""The alerting shell: MQTT in (observations, gateway/device status, acks), scores and alerts out.

One engine instance owns the alert state of every bed of one unit (one writer per bed's alert
state); units shard by topic filter. Per-bed logic lives in ``rules`` and ``lifecycle``; this
module routes messages, runs the 1 s evaluation tick and publishes effects:

* ``ScoreUpdate`` per bed, retained (state), when it changes or every ``score_refresh_s``;
* ``Alert`` state retained per open alert, cleared (empty retained message) on resolve;
* ``AlertEvent`` on every lifecycle change (not retained).

Technical alerts: a gateway that vanished without saying goodbye (last will) raises
``gateway_offline`` on its beds; a device reporting no signal or an error raises
``device_problem``; a bed whose data went stale raises ``no_data``. An orderly gateway
shutdown pauses its beds without an alert.

Fault boundaries: every message is handled inside ``servicekit.faults.MessageBoundary``; what
cannot be used (a payload that fails validation, or any exception while handling it) is
dead-lettered on ``…/dlq/alerting`` with the reason and counted by reason, and the engine goes
on. Only valid, device-timed (``time_source=device``) values are scored; an invalid or
re-timed value makes its parameter missing, never normal. Readiness is liveness: ``ready`` is
1 only while paho's network thread is alive, and ``run()`` raises ``ServiceFailed`` when it
is not.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from alerting import lifecycle as lc
from alerting.rules import BedState, RuleConfig, Scorer, evaluate, observe, usable
from servicekit.clock import utcnow
from servicekit.faults import (
    Liveness,
    MessageBoundary,
    dead_letter_for,
    identity_mismatch_event,
)
from servicekit.metrics import CollectorRegistry, Families, counter, gauge, serve, service_registry
from servicekit.metrics import metrics_text as registry_text
from servicekit.mqtt import MqttParams, MqttSession
from wardwire import topics
from wardwire.context import BedContext, UnitContext
from wardwire.models import (
    AckCommand,
    AlertKind,
    DeviceState,
    DeviceStatus,
    GatewayStatus,
    ObservationBatch,
    Priority,
    ScoreUpdate,
    validation_summary,
)

log = logging.getLogger(__name__)
SERVICE = "alerting"


@dataclass
class BedRuntime:
    entry: BedContext
    rules: BedState = field(default_factory=BedState)
    alerts: dict[str, lc.AlertRecord] = field(default_factory=dict)  # condition -> record
    last_score: tuple[object, ...] | None = None
    last_score_at: datetime | None = None
    paused: bool = False  # its gateway shut down in order
    last_data_at: datetime | None = None


class AlertingService:
    def __init__(
        self,
        params: MqttParams,
        ward: UnitContext,
        cfg: RuleConfig,
        scorer: Scorer,
        *,
        root: str = topics.ROOT,
        client_id: str | None = None,
        policy: lc.Policy | None = None,
        tick_s: float = 1.0,
        score_refresh_s: float = 10.0,
        clock: Any = utcnow,
        max_ahead_s: float = 300.0,
    ) -> None:
        self.params, self.ward, self.cfg, self.scorer = params, ward, cfg, scorer
        self.root, self.tick_s, self.score_refresh_s, self.clock = (
            root,
            tick_s,
            score_refresh_s,
            clock,
        )
        self.policy = policy or lc.Policy()
        self.beds = {b.id: BedRuntime(b) for b in ward.beds}
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self.ack_topic = topics.ack_commands(ward.site, ward.unit, root=root)
        self.boundary = MessageBoundary(SERVICE, self._on_message, self._dead_letter)
        self.mqtt = MqttSession(
            params,
            client_id or f"alerting-{ward.site}-{ward.unit}",
            subscriptions=[
                (topics.gateway_obs(ward.site, ward.unit, "+", root=root), 1),
                (topics.gateway_status(ward.site, ward.unit, "+", root=root), 1),
                (topics.device_status(ward.site, ward.unit, "+", "+", root=root), 1),
                (self.ack_topic, 1),
            ],
            on_message=self.boundary,
            log_name=__name__,
        )
        self.ignored = 0
        #: values stamped further ahead of our clock than ``max_ahead_s`` (never scored)
        self.future_values = 0
        #: beds whose evaluation raised, by exception type (each raised ``scoring_error``)
        self.bed_faults: dict[str, int] = {}
        self.max_ahead_s = max_ahead_s
        #: dead-lettered messages by reason kind
        self.dead_letters: dict[str, int] = {}
        self.scores_published = 0
        self.liveness = Liveness(SERVICE)
        #: set once the broker granted the subscriptions (readiness)
        self.ready = self.mqtt.subscribed

    # -- inbound -----------------------------------------------------------------------------
    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        """Handle one message (inside the fault boundary, which dead-letters what raises)."""
        try:
            if msg.topic == self.ack_topic:
                self._on_ack(AckCommand.model_validate_json(msg.payload))
                return
            t = topics.parse_gateway_topic(msg.topic, root=self.root)
            if not msg.payload and t.leaf != "obs":
                return  # a retained status cleared by its owner
            if t.leaf == "obs":
                batch = ObservationBatch.model_validate_json(msg.payload)
                self._verify(t, batch.gateway_id)
                self._on_batch(batch)
            elif t.device is not None:
                st = DeviceStatus.model_validate_json(msg.payload)
                self._verify(t, st.gateway_id, st.device_id)
                self._on_device(st)
            elif t.leaf == "status":
                gs = GatewayStatus.model_validate_json(msg.payload)
                self._verify(t, gs.gateway_id)
                self._on_gateway(gs)
        except ValidationError as exc:
            self._dead_letter(msg, "malformed", validation_summary(exc))
        except topics.IdentityMismatch as exc:
            # Reported against the publisher (the topic's gateway) on the technical topic and
            # the dead-letter topic; never as an alert, and never on the beds it names.
            self._dead_letter(msg, "identity", str(exc))
            self._identity_event(t.gateway, str(exc))

    def _verify(
        self, t: topics.GatewayTopic, gateway_id: str, device_id: str | None = None
    ) -> None:
        w = self.ward
        topics.check_gateway_identity(t, gateway_id, device_id=device_id, site=w.site, unit=w.unit)

    def _identity_event(self, publisher: str, reason: str) -> None:
        w = self.ward
        ev = identity_mismatch_event(SERVICE, publisher, reason, self.clock())
        self.mqtt.publish(
            topics.technical(w.site, w.unit, SERVICE, root=self.root), ev.model_dump_json(), qos=1
        )

    def _dead_letter(self, msg: mqtt.MQTTMessage, kind: str, reason: str) -> None:
        """Publish what we cannot use to ``…/dlq/alerting`` (the message is never scored)."""
        self.ignored += 1
        self.dead_letters[kind] = self.dead_letters.get(kind, 0) + 1
        log.warning("dead-lettered message on %s: %s: %s", msg.topic, kind, reason)
        dl = dead_letter_for(SERVICE, msg.topic, bytes(msg.payload), f"{kind}: {reason}")
        self.mqtt.publish(
            topics.dead_letter(SERVICE, root=self.root), dl.model_dump_json(), qos=1
        )

    def _on_batch(self, batch: ObservationBatch) -> None:
        if batch.generation != self.ward.generation:
            self.ignored += 1
            return
        now = self.clock()
        ahead_limit = now + timedelta(seconds=self.max_ahead_s)
        with self._lock:
            for o in batch.observations:
                entry = self.ward.bed_of(batch.gateway_id, o.device_id)
                if entry is None:
                    self.ignored += 1
                    continue
                bed_id = entry.id
                if o.measured_at > ahead_limit:
                    # A value from the future would stay "newest" until its time comes and
                    # freeze the parameter (older readings never overwrite): never taken.
                    self.future_values += 1
                    log.warning(
                        "bed %s: %s stamped %s, %.0f s ahead of our clock: not scored",
                        bed_id, o.code, o.measured_at.isoformat(),
                        (o.measured_at - now).total_seconds(),
                    )
                    continue
                bed = self.beds[bed_id]
                observe(bed.rules, o)
                bed.paused = False
                if usable(o):
                    # Only a value that can be scored is "data"; a time ahead of our clock
                    # counts as now, so one future stamp cannot keep no_data quiet.
                    t = min(o.measured_at, now)
                    bed.last_data_at = max(bed.last_data_at or t, t)

    def _on_gateway(self, st: GatewayStatus) -> None:
        now = self.clock()
        with self._lock:
            for bed in self.beds.values():
                if bed.entry.gateway != st.gateway_id:
                    continue
                if st.reason == "lwt":
                    self._condition(
                        bed,
                        "gateway_offline",
                        AlertKind.TECHNICAL,
                        now,
                        True,
                        Priority.MEDIUM,
                        f"gateway {st.gateway_id} lost (no goodbye)",
                    )
                elif st.reason == "shutdown":
                    bed.paused = True
                    self._condition(bed, "gateway_offline", AlertKind.TECHNICAL, now, False)
                    self._condition(bed, "no_data", AlertKind.TECHNICAL, now, False)
                else:
                    self._condition(bed, "gateway_offline", AlertKind.TECHNICAL, now, False)

    def _on_device(self, st: DeviceStatus) -> None:
        entry = self.ward.bed_of(st.gateway_id, st.device_id)
        if entry is None:
            return
        bed_id = entry.id
        now = self.clock()
        bad = st.state in (DeviceState.NO_SIGNAL, DeviceState.DISCONNECTED, DeviceState.ERROR)
        with self._lock:
            bed = self.beds[bed_id]
            if bed.paused and bad:
                return
            self._condition(
                bed,
                "device_problem",
                AlertKind.TECHNICAL,
                now,
                bad,
                Priority.LOW,
                f"{st.device_id}: {st.state.value} {st.detail}".strip(),
            )

    def _on_ack(self, cmd: AckCommand) -> None:
        with self._lock:
            for bed in self.beds.values():
                for cond, rec in list(bed.alerts.items()):
                    if rec.alert.alert_id == cmd.alert_id:
                        self._apply(bed, cond, rec.alert.alert_kind, lc.Ack(self.clock(), cmd.by))
                        return
        log.warning("ack for unknown alert %s by %s", cmd.alert_id, cmd.by)

    # -- lifecycle plumbing ------------------------------------------------------------------
    def _ident(
        self, bed: BedRuntime, cond: str, kind: AlertKind, now: datetime
    ) -> lc.AlertIdentity:
        rec = bed.alerts.get(cond)
        if rec is not None:
            aid = rec.alert.alert_id
        else:
            h = hashlib.sha1(f"{bed.entry.id}/{cond}/{now.isoformat()}".encode()).hexdigest()[:12]
            aid = f"a-{h}"
        return lc.AlertIdentity(aid, self.ward.unit, bed.entry.id, kind, cond, self.ward.generation)

    def _condition(
        self,
        bed: BedRuntime,
        cond: str,
        kind: AlertKind,
        now: datetime,
        on: bool,
        priority: Priority = Priority.LOW,
        message: str = "",
        total: int | None = None,
    ) -> None:
        ev: lc.LifecycleEvent = (
            lc.ConditionOn(now, priority, message, total) if on else lc.ConditionOff(now)
        )
        self._apply(bed, cond, kind, ev)

    def _apply(self, bed: BedRuntime, cond: str, kind: AlertKind, ev: lc.LifecycleEvent) -> None:
        ident = self._ident(bed, cond, kind, ev.now)
        rec, effects = lc.transition(bed.alerts.get(cond), ev, ident, self.policy)
        if rec is None:
            bed.alerts.pop(cond, None)
        else:
            bed.alerts[cond] = rec
        w = self.ward
        for eff in effects:
            if isinstance(eff, lc.PublishState | lc.ClearState):
                t = topics.alert_state(
                    w.site, w.unit, eff.alert.bed_id, eff.alert.alert_id, root=self.root
                )
                payload = eff.alert.model_dump_json() if isinstance(eff, lc.PublishState) else b""
                self.mqtt.publish(t, payload, qos=1, retain=True)
            else:
                self.mqtt.publish(
                    topics.alert_events(w.site, w.unit, root=self.root),
                    eff.event.model_dump_json(),
                    qos=1,
                )
                log.info(
                    "alert %s %s bed=%s %s",
                    eff.event.event.value,
                    eff.event.alert.condition,
                    eff.event.alert.bed_id,
                    eff.event.alert.priority.value,
                )

    # -- tick --------------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock()
        with self._lock:
            for bed in self.beds.values():
                self._tick_guarded(bed, now)

    def _tick_guarded(self, bed: BedRuntime, now: datetime) -> None:
        """One bed's evaluation is a fault boundary: a bed that cannot be scored (inputs the
        scorer refuses, e.g. charted room air with an oxygen flow, an age outside the table,
        or a bug) raises a technical alert on *that* bed, and every other bed goes on."""
        try:
            self._tick_bed(bed, now)
        except Exception as exc:  # the per-bed boundary: alerted on the bed, counted, logged
            name = type(exc).__name__
            self.bed_faults[name] = self.bed_faults.get(name, 0) + 1
            if "scoring_error" not in bed.alerts:  # the traceback once, not every tick
                log.exception("bed %s: cannot be scored", bed.entry.id)
            text = " ".join(str(exc).split())[:200] or name
            self._condition(
                bed,
                "scoring_error",
                AlertKind.TECHNICAL,
                now,
                True,
                Priority.MEDIUM,
                f"not scored: {text}",
            )
            return
        if "scoring_error" in bed.alerts:
            self._condition(bed, "scoring_error", AlertKind.TECHNICAL, now, False)

    def _tick_bed(self, bed: BedRuntime, now: datetime) -> None:
        w = self.ward
        if bed.entry.dob is None:
            return
        stale = bed.last_data_at is not None and (
            (now - bed.last_data_at).total_seconds() > self.cfg.stale_s
        )
        if not bed.paused and bed.last_data_at is not None:
            self._condition(
                bed,
                "no_data",
                AlertKind.TECHNICAL,
                now,
                stale,
                Priority.MEDIUM,
                f"no valid data for {self.cfg.stale_s:.0f} s",
            )
        ev = evaluate(bed.rules, now, self.cfg, self.scorer, bed.entry.dob)
        if ev is not None:
            r = ev.result
            key = (r.total, r.complete, tuple(r.missing), r.band)
            due = bed.last_score_at is None or (
                (now - bed.last_score_at).total_seconds() >= self.score_refresh_s
            )
            if key != bed.last_score or due:
                upd = ScoreUpdate(
                    unit=w.unit,
                    bed_id=bed.entry.id,
                    at=now,
                    system=r.system,
                    table_version=r.table_version,
                    band=r.band,
                    total=r.total,
                    complete=r.complete,
                    missing=list(r.missing),
                    items=dict(r.items),
                    mode="provisional",
                    generation=w.generation,
                    inputs=ev.inputs,
                    escalation={
                        k: v
                        for k, v in r.escalation.items()
                        if isinstance(v, bool | str | int) or v is None
                    },
                )
                self.scores_published += 1
                self.mqtt.publish(
                    topics.score(w.site, w.unit, bed.entry.id, root=self.root),
                    upd.model_dump_json(),
                    qos=1,
                    retain=True,
                )
                bed.last_score, bed.last_score_at = key, now
            if ev.decision is not None:
                partial = "" if r.complete else f" (partial; missing {', '.join(r.missing)})"
                self._condition(
                    bed,
                    "pews",
                    AlertKind.CLINICAL,
                    now,
                    ev.decision == "on",
                    ev.priority or Priority.MEDIUM,
                    f"{r.system} {r.total}{partial}",
                    r.total,
                )
        for cond, rec in list(bed.alerts.items()):
            self._apply(bed, cond, rec.alert.alert_kind, lc.Tick(now))

    # -- run ---------------------------------------------------------------------------------
    def metrics_text(self) -> str:
        """What ``/metrics`` answers (the Prometheus text format)."""
        return registry_text(self.metrics_registry)

    @cached_property
    def metrics_registry(self) -> CollectorRegistry:
        """This engine's own registry: the families below, built at every scrape."""
        return service_registry(self._metric_families)

    def _metric_families(self) -> Families:
        u = {"unit": self.ward.unit}
        with self._lock:
            active: dict[tuple[str, str], int] = {}
            for bed in self.beds.values():
                for rec in bed.alerts.values():
                    key = (rec.alert.alert_kind.value, rec.alert.priority.value)
                    active[key] = active.get(key, 0) + 1
        yield gauge(
            "wardwatch_alerting_ready",
            "1 while subscribed and paho's network thread is alive",
            [(u, float(self.is_ready()))],
        )
        yield counter(
            "wardwatch_alerting_bed_faults_total",
            "bed evaluations that raised (technical alert scoring_error on that bed)",
            [(u, sum(self.bed_faults.values()))],
        )
        yield counter(
            "wardwatch_alerting_future_values_total",
            "values stamped too far ahead of the engine's clock (not scored)",
            [(u, self.future_values)],
        )
        yield counter(
            "wardwatch_alerting_faults_total",
            "messages whose handling raised (dead-lettered by the fault boundary)",
            [(u, self.boundary.faults_total)],
        )
        yield gauge("wardwatch_alerting_beds", "beds scored by this engine", [(u, len(self.beds))])
        yield counter(
            "wardwatch_alerting_scores_published_total",
            "score updates published",
            [(u, self.scores_published)],
        )
        yield counter(
            "wardwatch_alerting_ignored_total",
            "messages that could not be used",
            [(u, self.ignored)],
        )
        yield counter(
            "wardwatch_alerting_dead_lettered_total",
            "dead-lettered messages",
            [({**u, "reason": k}, n) for k, n in sorted(self.dead_letters.items())],
        )
        yield gauge(
            "wardwatch_alerting_open_alerts",
            "open alerts",
            [({**u, "kind": k, "priority": p}, n) for (k, p), n in sorted(active.items())],
        )

    def run(self, metrics_port: int | None = None) -> None:
        server = None
        if metrics_port is not None:
            server = serve(self.metrics_registry, metrics_port)
        self.mqtt.start()
        self.liveness.add("mqtt", self.mqtt.alive)
        try:
            while not self.stop_event.wait(self.tick_s):
                self.liveness.raise_if_dead()
                self.tick()
        finally:
            self.mqtt.stop()
            if server is not None:
                server.stop()

    def is_ready(self) -> bool:
        """Readiness is liveness: subscribed, and paho's network thread still running."""
        return self.ready.is_set() and self.liveness.ok()

    def stop(self) -> None:
        self.stop_event.set()
