"""The alerting shell: MQTT in, the pure unit engine in the middle, scores and alerts out.

One engine instance owns every bed of one unit (one writer per bed's alert state); units shard
by topic filter. All decisions are made by ``alerting.core.UnitEngine`` (pure, event time); this
module only routes messages into it, runs its deadlines every ``tick_s`` with the wall clock as
``now``, and publishes what it returns:

* ``ScoreUpdate`` per bed, retained (state), when it changes or every ``score_refresh_s``;
* ``Alert`` state retained per open alert, cleared (empty retained message) when it resolves;
* ``AlertEvent`` on every lifecycle change (not retained).

Inputs: observations, gateway status (birth, heartbeat, orderly shutdown, last will), device
status, ingest's technical events (``seq_gap``, ``outbox_reset``) and acknowledgements.

Fault boundaries: every message is handled inside ``servicekit.faults.MessageBoundary``; what
cannot be used (a payload that fails validation, a payload whose identity disagrees with its
topic, or any exception while handling it) is dead-lettered on ``…/dlq/alerting`` with the
reason and counted by reason, and the engine goes on. Readiness is liveness: ``ready`` is 1 only
while subscribed and paho's network thread is alive; ``run()`` raises ``ServiceFailed`` when it
is not.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from alerting.core import AlertEffect, BedInfo, Reading, ScoreEffect, UnitEngine, UnitRules
from alerting.core.bed import Effect, Scorer
from alerting.core.items import from_observation
from alerting.journal import canonical
from alerting.pager import PagePolicy, PagerSink
from alerting.pews import PewsInputError, parse_observation
from alerting.store import Entry, Outgoing, StateStore, Step
from servicekit.clock import utcnow
from servicekit.faults import (
    Liveness,
    MessageBoundary,
    dead_letter_for,
    identity_mismatch_event,
)
from servicekit.metrics import CollectorRegistry, Families, counter, gauge, serve, service_registry
from servicekit.metrics import metrics_text as registry_text
from servicekit.mqtt import MqttError, MqttParams, MqttSession
from wardwire import topics
from wardwire.context import UnitContext
from wardwire.models import (
    AckCommand,
    AlertCommand,
    AlertEvent,
    AlertState,
    ChartedSet,
    CommandAction,
    ContextChanged,
    DeviceStatus,
    EngineState,
    EngineStatus,
    GatewayStatus,
    Generation,
    ObservationBatch,
    ScoreInput,
    ScoreUpdate,
    Source,
    TechnicalEvent,
    validation_summary,
)

log = logging.getLogger(__name__)
SERVICE = "alerting"
_T = TypeVar("_T")
#: beds whose state one transaction of the tick's flush writes (``AlertingService._flush``)
FLUSH_CHUNK = 200
#: a context read outstanding this many refresh periods is announced (context_unavailable)
CONTEXT_LATE_PERIODS = 3
#: ingest's technical events that become technical alerts on the gateway's beds
INGEST_EVENTS = {"seq_gap": "seq_gap", "outbox_reset": "outbox_reset"}
#: scorer input key -> wire code, for a score's provenance
_KEY_CODE = {
    "hr_bpm": "HR", "pr_bpm": "PR", "rr_bpm": "RR", "spo2_pct": "SPO2", "sbp_mmhg": "NIBP_SYS",
    "temp_c": "TEMP", "crt_s": "CRT",
}


def bed_infos(ward: UnitContext) -> list[BedInfo]:
    """The engine's view of each bed: system, date of birth, and whether a child lies there."""
    return [
        BedInfo(
            b.id,
            ward.scoring_system,
            dob=b.dob,
            occupied=b.patient is not None or b.dob is not None,
            # the child in the bed: the registry's admission id, else the pseudonymous patient
            admission=b.admission or b.patient,
            monitored=bool(b.devices),
        )
        for b in ward.beds
    ]



def _in_daemon_thread(fn: Callable[[], _T]) -> Future[_T]:
    """``fn()`` on a daemon thread of its own, as a future. Not a ThreadPoolExecutor: the
    interpreter joins its workers at exit, so a context read that never ends (a registry
    dripping its answer) kept a stopped engine from exiting (found by red-team)."""
    fut: Future[_T] = Future()

    def work() -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, as a pool would
            fut.set_exception(exc)

    threading.Thread(target=work, name="context", daemon=True).start()
    return fut

class AlertingService:
    def __init__(
        self,
        params: MqttParams,
        ward: UnitContext,
        rules: UnitRules,
        scorer: Scorer,
        *,
        root: str = topics.ROOT,
        client_id: str | None = None,
        tick_s: float = 1.0,
        score_refresh_s: float = 10.0,
        clock: Any = utcnow,
        state: Path | None = None,
        heartbeat_s: float = 5.0,
        context_loader: Callable[[], UnitContext] | None = None,
        context_refresh_s: float = 10.0,
        context_stale: Callable[[], str | None] | None = None,
        crash_after_commit: str | None = None,
        pager_url: str | None = None,
        pager_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.params, self.ward, self.rules, self.scorer = params, ward, rules, scorer
        self.root, self.tick_s, self.score_refresh_s, self.clock = (
            root,
            tick_s,
            score_refresh_s,
            clock,
        )
        self.client_id = client_id or f"alerting-{ward.site}-{ward.unit}"
        self.heartbeat_s, self.context_loader = heartbeat_s, context_loader
        self.context_refresh_s = context_refresh_s
        #: after a load: why the context it gave is not the registry's own answer (a cached
        #: copy while the registry is down), or None (``servicekit.context.ContextSource``)
        self.context_stale = context_stale
        #: test hook: kill -9 this process right after the commit of this event, before publish
        self.crash_after_commit = crash_after_commit
        #: the nurse-call / pager gateway (``alerting.pager``), fed every alert event published;
        #: demo data is paged only on a demo unit, test data never
        pager_kw: dict[str, Any] = {
            "policy": PagePolicy.demo() if ward.generation is Generation.DEMO else PagePolicy(),
            **dict(pager_options or {}),
        }
        self.pager = None if pager_url is None else PagerSink(
            pager_url,
            on_delivered=self._page_delivered,
            on_failed=self._page_failed,
            on_receipt=self._page_receipt,
            **pager_kw,
        )
        #: beds whose page failed (pager_failed raised) until a page gets through again
        self._pager_failed: set[str] = set()
        zone = ward.time_zone or rules.time_zone
        self.engine = UnitEngine(
            rules,
            scorer,
            unit=ward.unit,
            generation=ward.generation,
            tz=ZoneInfo(zone) if zone else None,
        )
        self.store = StateStore(state, site=ward.site, unit=ward.unit) if state else None
        self.started_at = self.clock()
        self.recovered_alerts = 0
        self._lock = threading.RLock()
        self._acked: deque[int] = deque()  # outbox rows the broker acknowledged
        self._dirty: set[str] = set()
        #: what start-up decided (restored state, a changed context), committed and published
        #: once connected
        self._initial: list[Effect] = []
        self._initial_journal: list[Entry] = []
        if self.store is not None:
            self.engine.restore_beds(self.store.beds(), self.store.meta("gateway_dropped") or {})
            self.recovered_alerts = sum(len(b.episodes) for b in self.engine.beds.values())
            self._initial_journal += self._rules_entries()
        self._initial += self._apply_context(ward, self.started_at)
        self.stop_event = threading.Event()
        self.ack_topic = topics.ack_commands(ward.site, ward.unit, root=root)
        self.command_topic = topics.alert_commands(ward.site, ward.unit, root=root)
        self.chart_topic = topics.charting(ward.site, ward.unit, root=root)
        self.tech_topic = topics.technical(ward.site, ward.unit, "ingest", root=root)
        self.changes_topic = topics.context_changed(ward.site, ward.unit, root=root)
        self.status_topic = topics.engine_status(ward.site, ward.unit, self.client_id, root=root)
        self.boundary = MessageBoundary(SERVICE, self._on_message, self._dead_letter)
        self.mqtt = MqttSession(
            params,
            self.client_id,
            subscriptions=[
                (topics.gateway_obs(ward.site, ward.unit, "+", root=root), 1),
                (topics.gateway_status(ward.site, ward.unit, "+", root=root), 1),
                (topics.device_status(ward.site, ward.unit, "+", "+", root=root), 1),
                (self.ack_topic, 1),
                (self.command_topic, 1),
                (self.chart_topic, 1),
                (self.tech_topic, 1),
                *([(self.changes_topic, 1)] if context_loader is not None else []),
            ],
            on_message=self.boundary,
            will=(self.status_topic, self._status("lwt").model_dump_json().encode()),
            log_name=__name__,
        )
        self.ignored = 0
        #: dead-lettered messages by reason kind
        self.dead_letters: dict[str, int] = {}
        #: commands refused (unknown alert, out of bounds)
        self.commands_refused = 0
        self.scores_published = 0
        #: observations received in valid batches on the unit's topics (the engine's input
        #: rate; bench/alert_latency.py divides its CPU time by it)
        self.observations = 0
        self.orphans_cleared = 0
        self._last_score: dict[str, tuple[object, ...]] = {}
        self._last_score_at: dict[str, datetime] = {}
        self._next_heartbeat: datetime | None = None
        self._next_context: datetime | None = None
        self._context_failing: str | None = None
        #: the registry said our unit's context changed: re-read at the next tick
        self._context_changed = threading.Event()
        self.context_changes = 0
        self.context_fallbacks = 0
        self._context_ok_at: datetime | None = self.started_at
        #: the context is read off the timer loop: one read at a time, applied by tick()
        self._context_fetch: Future[tuple[UnitContext | None, str | None]] | None = None
        self._context_fetch_at = self.started_at
        self._context_fetch_late = False
        self._last_tick = 0.0
        self.liveness = Liveness(SERVICE)
        #: set once the broker granted the subscriptions (readiness)
        self.ready = self.mqtt.subscribed

    # -- state, context, liveness -------------------------------------------------------------
    def _rules_entries(self) -> list[Entry]:
        """A journal record when the rules in force differ from the last ones recorded."""
        assert self.store is not None
        rules = self.rules.model_dump(mode="json")
        digest = hashlib.sha256(canonical(rules)).hexdigest()
        last = self.store.last("rules")
        if last is not None and last.body.get("hash") == digest:
            return []
        return [Entry("rules", self.started_at.isoformat(), {
            "version": self.rules.version, "hash": digest, "rules": rules,
            "previous_hash": None if last is None else last.body.get("hash"),
        })]

    def _apply_context(self, ward: UnitContext, now: datetime) -> list[Effect]:
        """Make the engine's beds the context's (a new admission closes the previous child's
        alerts; a bed that left the unit closes its own)."""
        out: list[Effect] = []
        for info in bed_infos(ward):
            out += self.engine.set_bed(info, now)
        keep = {b.id for b in ward.beds}
        for bed_id in [b for b in self.engine.beds if b not in keep]:
            out += self.engine.remove_bed(bed_id, now, "the bed left the unit")
        return out

    def _status(self, reason: str) -> EngineStatus:
        head = None if self.store is None or reason == "lwt" else self.store.journal_head()
        return EngineStatus(
            instance=self.client_id,
            unit=self.ward.unit,
            state=EngineState.OFFLINE if reason in ("lwt", "shutdown") else EngineState.ONLINE,
            reason=reason,
            at=None if reason == "lwt" else self.clock(),
            heartbeat_s=self.heartbeat_s,
            started_at=self.started_at,
            recovered_alerts=self.recovered_alerts,
            journal_seq=None if head is None else head[0],
            journal_head=None if head is None or head[0] == 0 else head[1],
        )

    def _publish_status(self, reason: str) -> mqtt.MQTTMessageInfo:
        return self.mqtt.publish(
            self.status_topic, self._status(reason).model_dump_json(), qos=1, retain=True
        )

    # -- inbound -----------------------------------------------------------------------------
    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        """Handle one message (inside the fault boundary, which dead-letters what raises)."""
        try:
            if msg.topic == self.ack_topic:
                self._on_ack(AckCommand.model_validate_json(msg.payload))
                return
            if msg.topic == self.command_topic:
                self._on_command(AlertCommand.model_validate_json(msg.payload))
                return
            if msg.topic == self.chart_topic:
                self._on_chart(msg, ChartedSet.model_validate_json(msg.payload))
                return
            if msg.topic == self.tech_topic:
                self._on_technical(TechnicalEvent.model_validate_json(msg.payload))
                return
            if msg.topic == self.changes_topic:
                ContextChanged.model_validate_json(msg.payload)  # a bad one is dead-lettered
                self.context_changes += 1
                self._context_changed.set()
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
        self.observations += len(batch.observations)
        if batch.generation != self.ward.generation:
            self.ignored += 1
            return
        per_bed: dict[str, list[Reading]] = defaultdict(list)
        for o in batch.observations:
            entry = self.ward.bed_of(batch.gateway_id, o.device_id)
            if entry is None:
                self.ignored += 1
                continue
            r = from_observation(o)
            if r is not None:
                per_bed[entry.id].append(r)
        now = self.clock()
        with self._lock:
            for bed_id, readings in per_bed.items():
                self._publish(self.engine.on_readings(bed_id, readings, now), beds={bed_id})

    def _on_gateway(self, st: GatewayStatus) -> None:
        beds = [b.id for b in self.ward.beds_of_gateway(st.gateway_id)]
        with self._lock:
            self._publish(
                self.engine.on_gateway(
                    st.gateway_id, st.reason, beds, self.clock(), st.outbox_dropped
                )
            )

    def _on_device(self, st: DeviceStatus) -> None:
        entry = self.ward.bed_of(st.gateway_id, st.device_id)
        if entry is None:
            return
        with self._lock:
            self._publish(
                self.engine.on_device(entry.id, st.device_id, st.state.value, self.clock())
            )

    def _on_technical(self, ev: TechnicalEvent) -> None:
        rule = INGEST_EVENTS.get(ev.event)
        if rule is None or ev.gateway_id is None:
            # findings about publishers, not about beds (identity, unknown devices), or about
            # ingest itself (its unit context)
            return
        beds = [b.id for b in self.ward.beds_of_gateway(ev.gateway_id)]
        with self._lock:
            self._publish(
                self.engine.on_event(rule, f"gateway {ev.gateway_id}: {ev.detail}", beds,
                                     self.clock())
            )

    def _on_ack(self, cmd: AckCommand) -> None:
        self._on_command(AlertCommand(
            command_id=cmd.command_id, action=CommandAction.ACK, alert_id=cmd.alert_id,
            by=cmd.by, at=cmd.at,
        ))

    def _on_chart(self, msg: mqtt.MQTTMessage, cs: ChartedSet) -> None:
        """A nurse's charted set: checked against the scoring vocabulary (a set the scorer
        would refuse is dead-lettered with the reason, never left to stop the bed), then
        scored with the device values as a charted score."""
        w = self.ward
        why = None
        if cs.unit != w.unit:
            why = f"unit: a set for {cs.unit} on {w.unit}'s topic"
        elif cs.bed_id not in {b.id for b in w.beds}:
            why = f"bed_id: {cs.bed_id} is not a bed of {w.unit}"
        elif cs.generation != w.generation:
            why = f"generation: {cs.generation.value}, the unit takes {w.generation.value}"
        else:
            try:
                parse_observation(cs.items)
            except PewsInputError as exc:
                why = str(exc)
        if why is not None:
            self._dead_letter(msg, "charting", why)
            return
        readings = [
            Reading(k, v, cs.observed_at, Source.ENTERED, f"chart-{cs.by}"[:64], origin=cs.set_id)
            for k, v in cs.items.items()
        ]
        received = self.clock()
        with self._lock:
            effects = self.engine.on_chart(
                cs.bed_id, readings, received, by=cs.by, supersedes=cs.supersedes,
                quiet=cs.already_escalated,
            )
            self._publish(effects, [Entry("charted", received.isoformat(), {
                "set_id": cs.set_id, "bed_id": cs.bed_id, "user": cs.by,
                "observed_at": cs.observed_at.isoformat(),
                "charted_at": cs.charted_at.isoformat(), "received_at": received.isoformat(),
                "items": sorted(cs.items), "supersedes": cs.supersedes,
                "already_escalated": cs.already_escalated,
            })])

    def _on_command(self, cmd: AlertCommand) -> None:
        """A nurse's command: applied once (by command_id), journaled with who, the command's
        own time and when it came, whatever the outcome."""
        received = self.clock()
        with self._lock:
            effects, refused = self.engine.on_command(
                cmd.action.value, received, cmd.by, alert_id=cmd.alert_id,
                command_id=cmd.command_id, minutes=cmd.minutes, reason=cmd.reason,
                receipt=cmd.receipt, role=cmd.role,
            )
            applied = any(isinstance(e, AlertEffect) for e in effects)
            body: dict[str, Any] = {
                "command": cmd.action.value,
                "command_id": cmd.command_id,
                "user": cmd.by,
                "alert_id": cmd.alert_id,
                "command_at": cmd.at.isoformat(),
                "received_at": received.isoformat(),
                "result": "; ".join(refused) if refused else (
                    "applied" if applied else "no change (already applied or a redelivery)"
                ),
            }
            for k in ("minutes", "reason", "receipt", "role"):
                v = getattr(cmd, k)
                if v is not None:
                    body[k] = v
            kind = "command_refused" if refused else (
                "receipt" if cmd.action is CommandAction.RECEIPT else "command"
            )
            self._publish(effects, [Entry(kind, received.isoformat(), body)])
        for why in refused:
            self.commands_refused += 1
            log.warning("%s %s by %s refused: %s", cmd.action.value, cmd.command_id, cmd.by, why)

    # -- outbound ----------------------------------------------------------------------------
    def _alert_messages(self, eff: AlertEffect) -> list[Outgoing]:
        w, a = self.ward, eff.alert
        t = topics.alert_state(w.site, w.unit, a.bed_id, a.alert_id, root=self.root)
        state = b"" if a.state is AlertState.RESOLVED else a.model_dump_json().encode()
        ev = AlertEvent(event=eff.event, at=eff.at, by=eff.by, alert=a, event_id=eff.event_id)
        return [
            Outgoing(t, state, True),
            Outgoing(topics.alert_events(w.site, w.unit, root=self.root),
                     ev.model_dump_json().encode(), False),
        ]

    def _publish(
        self,
        effects: list[Effect],
        journal: list[Entry] | None = None,
        *,
        beds: set[str] | None = None,
    ) -> None:
        """One step: commit what changed (bed state, journal, outbox), then publish.

        ``beds``: the beds this step decided about; only their state is written with it (the
        other beds touched meanwhile stay for the tick's flush, as they would without this
        step). None: every bed touched so far. Called with ``self._lock`` held. Without a
        state file (tests, a throwaway engine) the messages are published straight away."""
        alerts = [e for e in effects if isinstance(e, AlertEffect)]
        self._dirty |= self.engine.take_touched()
        entries = list(journal or [])
        outgoing: list[Outgoing] = []
        for eff in alerts:
            a = eff.alert
            entries.append(Entry(eff.event.value, eff.at.isoformat(), {
                "alert": a.model_dump(mode="json"), "by": eff.by, "event_id": eff.event_id,
            }))
            outgoing += self._alert_messages(eff)
            log.info(
                "alert %s %s bed=%s %s %s",
                eff.event.value, a.condition, a.bed_id, a.priority.value, a.message,
            )
        if self.store is not None and (entries or outgoing):
            rows = self._commit(entries, outgoing, beds)
            if self.crash_after_commit is not None and any(
                e.event.value == self.crash_after_commit for e in alerts
            ):
                log.error("fault injection: kill -9 after committing %s", self.crash_after_commit)
                os.kill(os.getpid(), signal.SIGKILL)
            for seq, o in rows:
                self._send(seq, o)
        else:
            for o in outgoing:
                self.mqtt.publish(o.topic, o.payload, qos=1, retain=o.retain)
        for score_eff in effects:
            if isinstance(score_eff, ScoreEffect):
                self._publish_score(score_eff)
        if self.pager is not None:
            for eff in alerts:
                if eff.alert.rule != "pager_failed":
                    self.pager.submit(eff, eff.alert.recipient_role)

    # -- the pager's outcomes (its worker thread; never inside submit) ------------------------
    def _page_failed(self, event_id: str, reason: str) -> None:
        bed = self._bed_of_event(event_id)
        log.error("page %s not delivered: %s", event_id, reason)
        if bed is None:
            return
        with self._lock:
            self._pager_failed.add(bed)
            self._publish(self.engine.on_condition(
                "pager_failed", True, f"page not delivered: {reason}"[:200], [bed], self.clock()
            ))

    def _page_delivered(self, event_id: str, status: int) -> None:
        if not self._pager_failed:
            return
        with self._lock:
            beds, self._pager_failed = self._pager_failed, set()
            self._publish(self.engine.on_condition(
                "pager_failed", False, "pages get through again", beds, self.clock()
            ))

    def _page_receipt(self, event_id: str, receipt: str, role: str | None) -> None:
        alert_id = event_id.rsplit("-", 1)[0]
        self._on_command(AlertCommand(
            command_id=f"page-{event_id}-{receipt}"[:64], action=CommandAction.RECEIPT,
            alert_id=alert_id, by="pager", at=self.clock(), receipt=receipt,
            role=role,
        ))

    def _bed_of_event(self, event_id: str) -> str | None:
        alert_id = event_id.rsplit("-", 1)[0]
        with self._lock:
            for bed in self.engine.beds.values():
                if any(ep.alert_id == alert_id for ep in bed.episodes.values()):
                    return bed.info.bed_id
        return None

    def _commit(
        self, entries: list[Entry], outgoing: list[Outgoing], beds: set[str] | None = None
    ) -> list[tuple[int, Outgoing]]:
        """One transaction: the journal records, the outbox rows and the state of the dirty
        beds (of those in ``beds`` only, when given). Called with ``self._lock`` held."""
        assert self.store is not None
        write = self._dirty if beds is None else self._dirty & beds
        step = Step(journal=entries, outbox=outgoing)
        for bed_id in write:
            bed = self.engine.beds.get(bed_id)
            if bed is None:
                step.drop_beds.append(bed_id)
            else:
                step.beds[bed_id] = bed.snapshot()
        step.meta["gateway_dropped"] = dict(self.engine.gateway_dropped)
        self._dirty = set() if beds is None else self._dirty - write
        return self.store.commit(step, utcnow().isoformat())

    def _send(self, seq: int, o: Outgoing) -> None:
        def done(rc: Any) -> None:  # paho's thread: never takes the service lock
            if not rc.is_failure:
                self._acked.append(seq)
            else:
                log.error("broker refused %s (%s): kept in the outbox", o.topic, rc)

        self.mqtt.publish(o.topic, o.payload, qos=1, retain=o.retain, on_done=done)

    def _flush(self) -> None:
        """Write the state of beds changed without an alert decision (readings, timelines),
        and forget outbox rows the broker acknowledged. Once a tick.

        In transactions of at most ``FLUSH_CHUNK`` beds, each under the lock: a unit's whole
        flush in one (2,000 beds: 100 ms and more) held every observation behind it that long
        (bench/alert_latency.py). Each bed's state is taken and written under the lock, so a
        decision committed between two chunks is never overwritten by an older state."""
        if self.store is None:
            with self._lock:
                self.engine.take_touched()
            return
        with self._lock:
            self._dirty |= self.engine.take_touched()
            todo = sorted(self._dirty)
        for i in range(0, len(todo), FLUSH_CHUNK):
            with self._lock:
                chunk = self._dirty.intersection(todo[i : i + FLUSH_CHUNK])
                if chunk:
                    self._commit([], [], chunk)
        acked = []
        while self._acked:
            acked.append(self._acked.popleft())
        self.store.published(acked)

    def _publish_score(self, eff: ScoreEffect) -> None:
        r = eff.result
        key = (r.total, r.complete, tuple(r.missing), r.band, eff.level.word, eff.held)
        last_at = self._last_score_at.get(eff.bed_id)
        due = last_at is None or (eff.at - last_at).total_seconds() >= self.score_refresh_s
        if key == self._last_score.get(eff.bed_id) and not due:
            return
        w = self.ward
        inputs = [
            ScoreInput(
                code=_KEY_CODE[i.key],
                value=float(i.value),  # type: ignore[arg-type, unused-ignore]
                source=i.source,
                device_id=i.device_id,
                measured_at=i.at,
            )
            for i in eff.inputs
            if i.key in _KEY_CODE and isinstance(i.value, int | float)
            and not isinstance(i.value, bool)
        ]
        upd = ScoreUpdate(
            unit=w.unit,
            bed_id=eff.bed_id,
            at=eff.at,
            system=r.system,
            table_version=r.table_version,
            band=r.band,
            total=r.total,
            complete=r.complete and not eff.held,
            missing=sorted(set(r.missing)),
            items=dict(r.items),
            mode="charted" if eff.mode == "charted" else "provisional",
            generation=w.generation,
            inputs=inputs,
            escalation={
                k: v
                for k, v in r.escalation.items()
                if isinstance(v, bool | str | int) or v is None
            },
            level=eff.level.word,
            held=list(eff.held),
        )
        self.scores_published += 1
        self.mqtt.publish(
            topics.score(w.site, w.unit, eff.bed_id, root=self.root),
            upd.model_dump_json(),
            qos=1,
            retain=True,
        )
        self._last_score[eff.bed_id], self._last_score_at[eff.bed_id] = key, eff.at

    # -- tick --------------------------------------------------------------------------------
    def tick(self) -> None:
        """Run every engine timer due by now (the wall clock is ``now``), then the housekeeping:
        state flush, heartbeat, context refresh."""
        now = self.clock()
        self._last_tick = time.monotonic()
        with self._lock:
            self._publish(self.engine.on_deadline(now))
        self._flush()
        if self._next_heartbeat is None or now >= self._next_heartbeat:
            self._publish_status("heartbeat")
            self._next_heartbeat = now + timedelta(seconds=self.heartbeat_s)
        fetch = self._context_fetch
        if fetch is not None and fetch.done():
            self._context_fetch = None
            self._apply_loaded(now, fetch.result())
        elif fetch is not None and not self._context_fetch_late and (
            now - self._context_fetch_at
        ).total_seconds() >= CONTEXT_LATE_PERIODS * self.context_refresh_s:
            # a source that answers, but never finishes (each read within its socket timeout):
            # the read cannot be cancelled, so say so while it lasts (found by red-team)
            self._context_fetch_late = True
            waited = (now - self._context_fetch_at).total_seconds()
            self._context_not_fresh(
                now, f"unit context not refreshed: the context source has not answered for "
                f"{waited:.0f} s",
            )
        if self.context_loader is not None and self._context_fetch is None and (
            self._next_context is None or now >= self._next_context
            or self._context_changed.is_set()
        ):
            self._context_changed.clear()
            self._next_context = now + timedelta(seconds=self.context_refresh_s)
            self._context_fetch = _in_daemon_thread(self._load_context)
            self._context_fetch_at, self._context_fetch_late = now, False

    def refresh_context(self, now: datetime) -> None:
        """Read the unit context again and apply what changed, without a restart. A context
        that cannot be read raises ``context_unavailable`` on every bed (the engine goes on
        with the context it has, and says so). The timer loop does the reading on a thread of
        its own (:meth:`tick`), so a registry that does not answer never delays a timer."""
        self._apply_loaded(now, self._load_context())

    def _load_context(self) -> tuple[UnitContext | None, str | None]:
        """``(context, None)`` fresh, ``(context, why)`` a cached copy, ``(None, why)`` none."""
        assert self.context_loader is not None
        try:
            ward = self.context_loader()
            if (ward.site, ward.unit) != (self.ward.site, self.ward.unit):
                raise ValueError(f"the context now names {ward.site}/{ward.unit}")
        except Exception as exc:  # noqa: BLE001 - any failure is reported, and we go on
            return None, f"unit context not refreshed: {exc}"
        stale = self.context_stale() if self.context_stale is not None else None
        return ward, None if stale is None else f"running on the cached unit context: {stale}"

    def _apply_loaded(self, now: datetime, loaded: tuple[UnitContext | None, str | None]) -> None:
        ward, stale = loaded
        if ward is None:
            self._context_not_fresh(now, stale or "unit context not refreshed")
            return
        with self._lock:
            effects: list[Effect] = []
            if stale is not None:
                # the cached copy: applied (it is the last the registry said), and the beds
                # keep context_unavailable until the registry answers again
                self._context_not_fresh(now, stale)
            else:
                self._context_ok_at = now
                if self._context_failing is not None:
                    self._context_failing = None
                    effects += self.engine.on_context(True, "unit context refreshed", now)
            journal: list[Entry] = []
            if ward != self.ward:
                before = {b.id: b.patient for b in self.ward.beds}
                after = {b.id: b.patient for b in ward.beds}
                journal.append(Entry("context", now.isoformat(), {
                    "beds_added": sorted(set(after) - set(before)),
                    "beds_removed": sorted(set(before) - set(after)),
                    "admissions_changed": sorted(
                        b for b in set(before) & set(after) if before[b] != after[b]
                    ),
                }))
                self.ward = ward
                effects += self._apply_context(ward, now)
            self._publish(effects, journal)

    def _context_not_fresh(self, now: datetime, why: str) -> None:
        """The unit context in use is not the registry's answer of now: ``context_unavailable``
        on every bed (the engine goes on with the context it has, and says so)."""
        why = " ".join(why.split())[:240]
        self.context_fallbacks += 1
        if self._context_failing is None:
            log.error("%s", why)
        self._context_failing = why
        with self._lock:
            self._publish(self.engine.on_context(False, why, now))

    def context_age_s(self, now: datetime | None = None) -> float:
        """Seconds since the unit context was last read fresh from its source."""
        if self._context_ok_at is None:
            return 0.0
        return max(0.0, ((now or self.clock()) - self._context_ok_at).total_seconds())

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
            counters = self.engine.counters()
            active: dict[tuple[str, str], int] = {}
            for bed in self.engine.beds.values():
                for ep in bed.episodes.values():
                    key = (ep.kind.value, ep.priority.value)
                    active[key] = active.get(key, 0) + 1
            n_beds = len(self.engine.beds)
        yield gauge(
            "wardwatch_alerting_ready",
            "1 while subscribed and paho's network thread is alive",
            [(u, float(self.is_ready()))],
        )
        yield gauge(
            "wardwatch_alerting_live",
            "1 while the engine's timer loop has run within three ticks (and paho is alive)",
            [(u, float(self.is_live()))],
        )
        yield gauge(
            "wardwatch_alerting_context_stale",
            "1 while the unit context in use is not the registry's answer of now (a cached copy, "
            "or the registry unreachable): context_unavailable is raised on every bed",
            [(u, float(self._context_failing is not None))],
        )
        yield gauge(
            "wardwatch_alerting_context_age_seconds",
            "seconds since the unit context was last read fresh from its source",
            [(u, self.context_age_s())],
        )
        yield counter(
            "wardwatch_alerting_context_fallbacks_total",
            "context reads that kept the cached or last context",
            [(u, self.context_fallbacks)],
        )
        yield counter(
            "wardwatch_alerting_context_changes_total",
            "the registry's change events for this unit received (each makes a re-read)",
            [(u, self.context_changes)],
        )
        yield gauge(
            "wardwatch_alerting_recovered_alerts",
            "open alerts restored from the state file at start",
            [(u, self.recovered_alerts)],
        )
        yield counter(
            "wardwatch_alerting_orphans_cleared_total",
            "retained alerts of the unit cleared at start (no open alert behind them)",
            [(u, self.orphans_cleared)],
        )
        store = self.store
        yield gauge(
            "wardwatch_alerting_outbox_depth",
            "alert messages committed and not yet acknowledged by the broker",
            [(u, 0 if store is None else store.outbox_depth())],
        )
        yield gauge(
            "wardwatch_alerting_journal_records",
            "records in the alert journal",
            [(u, 0 if store is None else store.journal_head()[0])],
        )
        yield counter(
            "wardwatch_alerting_bed_faults_total",
            "bed evaluations the scorer refused (technical alert cannot_score on that bed)",
            [(u, counters.get("cannot_score", 0))],
        )
        yield counter(
            "wardwatch_alerting_future_values_total",
            "values stamped too far ahead of the engine's clock (not scored)",
            [(u, counters.get("future", 0))],
        )
        yield counter(
            "wardwatch_alerting_values_rejected_total",
            "device values not scored: artefact limits, unconfirmed questionable or abrupt "
            "values, HR and pulse rate disagreeing, re-timed values, device clock steps",
            [
                ({**u, "reason": k}, counters.get(k, 0))
                for k in ("artefact", "unconfirmed", "hr_pr_disagree", "retimed", "clock_step")
            ],
        )
        yield counter(
            "wardwatch_alerting_faults_total",
            "messages whose handling raised (dead-lettered by the fault boundary)",
            [(u, self.boundary.faults_total)],
        )
        yield gauge("wardwatch_alerting_beds", "beds scored by this engine", [(u, n_beds)])
        yield counter(
            "wardwatch_alerting_scores_published_total",
            "score updates published",
            [(u, self.scores_published)],
        )
        yield counter(
            "wardwatch_alerting_observations_total",
            "observations received in valid batches (scored, or ignored and counted below)",
            [(u, self.observations)],
        )
        yield counter(
            "wardwatch_alerting_ignored_total",
            "messages that could not be used",
            [(u, self.ignored)],
        )
        yield counter(
            "wardwatch_alerting_commands_refused_total",
            "commands refused (unknown alert, out of bounds)",
            [(u, self.commands_refused)],
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
        with self._lock:
            if self.store is not None:
                for seq, o in self.store.outbox():  # decided before a crash, not yet delivered
                    self._send(seq, o)
            self._reconcile()
            journal = list(self._initial_journal)
            if self.store is not None:
                journal.append(Entry("started", self.started_at.isoformat(), {
                    "instance": self.client_id, "recovered_alerts": self.recovered_alerts,
                }))
            initial, self._initial, self._initial_journal = self._initial, [], []
            self._publish(initial, journal)
        if self.pager is not None:
            self.pager.start()
        self._publish_status("birth")
        self._next_heartbeat = self.clock() + timedelta(seconds=self.heartbeat_s)
        try:
            while not self.stop_event.wait(self.tick_s):
                self.liveness.raise_if_dead()
                self.tick()
        finally:
            try:
                with self._lock:
                    self._flush()
                self._publish_status("shutdown").wait_for_publish(2.0)
            except (RuntimeError, ValueError, sqlite3.Error) as exc:
                log.error("orderly shutdown incomplete: %s", exc)
            finally:
                if self.pager is not None:
                    left = self.pager.stop(drain_s=5.0)
                    if left:
                        log.error("pages not delivered at shutdown: %s", ", ".join(left))
                self.mqtt.stop()
                # a read in flight is abandoned (a daemon thread: it never holds up the exit)
                if self.store is not None:
                    self.store.close()
                if server is not None:
                    server.stop()

    def _reconcile(self, timeout_s: float = 10.0) -> None:
        """Make the broker's retained alerts the engine's open alerts: clear every retained
        alert of this unit the engine does not have open (an orphan of an earlier run), publish
        every open alert the broker does not hold as it is now.

        A separate short connection subscribes to the unit's alert states, then publishes a
        marker to a topic it also subscribed to: the broker sends the retained messages before
        the marker, so when the marker arrives every retained alert has been seen."""
        w = self.ward
        base = f"{self.root}/alerting/{w.site}/{w.unit}/alert/+/+"
        sync = topics.alert_sync(w.site, w.unit, uuid.uuid4().hex[:12], root=self.root)
        seen: dict[str, bytes] = {}
        done = threading.Event()

        def on_msg(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
            if msg.topic == sync:
                done.set()
            elif msg.retain and msg.payload:
                seen[msg.topic] = bytes(msg.payload)

        session = MqttSession(
            replace(self.params, session_expiry_s=0),
            f"{self.client_id}-sync",
            subscriptions=[(base, 1), (sync, 1)],
            on_message=on_msg,
            log_name=__name__,
        )
        try:
            session.start()
            if not session.subscribed.wait(timeout_s):
                log.error("retained alerts not reconciled: subscription not granted")
                return
            session.publish(sync, b"", qos=1)
            if not done.wait(timeout_s):
                log.error("retained alerts not reconciled: no marker within %.0f s", timeout_s)
                return
        except MqttError as exc:
            log.error("retained alerts not reconciled: %s", exc)
            return
        finally:
            session.stop()
        open_now = {
            topics.alert_state(w.site, w.unit, ep.bed_id, ep.alert_id, root=self.root): ep
            for bed in self.engine.beds.values()
            for ep in bed.episodes.values()
        }
        for topic in seen.keys() - open_now.keys():
            self.orphans_cleared += 1
            log.warning("clearing orphan retained alert %s", topic)
            self.mqtt.publish(topic, b"", qos=1, retain=True)
        for topic, ep in open_now.items():
            state = ep.alert().model_dump_json().encode()
            if seen.get(topic) != state:
                self.mqtt.publish(topic, state, qos=1, retain=True)

    def is_live(self) -> bool:
        """Liveness: the timer loop turns (a stuck lock or a dead network thread is not live)."""
        return (
            self.liveness.ok()
            and self._last_tick > 0
            and time.monotonic() - self._last_tick <= 3 * self.tick_s + 1
        )

    def is_ready(self) -> bool:
        """Readiness is liveness: subscribed, and paho's network thread still running."""
        return self.ready.is_set() and self.liveness.ok()

    def stop(self) -> None:
        self.stop_event.set()
