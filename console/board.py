"""The live terminal board: every bed of a unit with vitals, score and open alerts.

``WardView`` is the state (fed by MQTT messages, no I/O of its own), ``render`` turns it into a
rich table, ``run_board`` is the shell. The web central station (console issue) will reuse the
same view model.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from pydantic import ValidationError
from rich.console import Group
from rich.table import Table
from rich.text import Text

from servicekit.context import ContextSource, UnitContextError
from servicekit.faults import MessageBoundary
from servicekit.mqtt import MqttParams, MqttSession
from wardwire import topics
from wardwire.context import UnitContext
from wardwire.models import (
    Alert,
    AlertEvent,
    AlertKind,
    ContextChanged,
    EngineState,
    EngineStatus,
    GatewayStatus,
    ObservationBatch,
    ScoreUpdate,
    validation_summary,
)

log = logging.getLogger(__name__)
VITALS = ("HR", "RR", "SPO2", "TEMP")
PRIO_STYLE = {
    "high": "bold white on red",
    "medium": "bold black on yellow",
    "low": "cyan",
    "info": "dim",
}


@dataclass
class BedView:
    vitals: dict[str, float] = field(default_factory=dict)
    score: ScoreUpdate | None = None
    alerts: dict[str, Alert] = field(default_factory=dict)


@dataclass
class WardView:
    """What the central station knows, built only from wire messages."""

    ward: UnitContext
    beds: dict[str, BedView] = field(default_factory=dict)
    gateways: dict[str, GatewayStatus] = field(default_factory=dict)
    events: list[AlertEvent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rejected: int = 0
    #: alert engine instances owning this unit, by instance (retained EngineStatus)
    engines: dict[str, EngineStatus] = field(default_factory=dict)
    #: events seen again (an engine's outbox after a restart): shown once
    redelivered: int = 0
    #: beds that had a score from a nurse's charted set
    charted_beds: set[str] = field(default_factory=set)
    _event_ids: set[str] = field(default_factory=set)
    #: rejected messages by reason kind (malformed, identity, fault)
    rejections: dict[str, int] = field(default_factory=dict)
    root: str = topics.ROOT
    #: why the unit context shown is not the registry's answer of now (None: it is)
    context_stale: str | None = None
    #: set by the registry's change event for this unit: the shell re-reads the context
    context_changed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.beds = {b.id: BedView() for b in self.ward.beds}

    def set_context(self, ward: UnitContext, stale: str | None = None) -> None:
        """A re-read unit context: a new bed gets a row, a bed no longer in the unit loses its
        row; what is known of the other beds stays (the next messages bring the rest)."""
        if (ward.site, ward.unit) != (self.ward.site, self.ward.unit):
            raise ValueError(f"the context now names {ward.site}/{ward.unit}, not "
                             f"{self.ward.site}/{self.ward.unit}")
        with self.lock:
            self.ward = ward
            self.beds = {b.id: self.beds.get(b.id) or BedView() for b in ward.beds}
            self.context_stale = stale

    def filters(self, root: str) -> list[tuple[str, int]]:
        w = self.ward
        return [
            (topics.gateway_obs(w.site, w.unit, "+", root=root), 1),
            (topics.gateway_status(w.site, w.unit, "+", root=root), 1),
            (topics.score(w.site, w.unit, "+", root=root), 1),
            (topics.alert_state(w.site, w.unit, "+", "+", root=root), 1),
            (topics.alert_events(w.site, w.unit, root=root), 1),
            (f"{root}/alerting/{w.site}/{w.unit}/engine/+", 1),
            (topics.context_changed(w.site, w.unit, root=root), 1),
        ]

    def on_message(self, topic: str, payload: bytes) -> None:
        try:
            with self.lock:
                self._route(topic, payload)
        except ValidationError as exc:
            self.reject("malformed", f"{topic}: {validation_summary(exc)}")
        except topics.IdentityMismatch as exc:
            self.reject("identity", f"{topic}: {exc}")
        except ValueError as exc:  # a topic the view does not know
            self.reject("malformed", f"{topic}: {exc}")

    def reject(self, kind: str, reason: str) -> None:
        """Count a message the view cannot use (the console publishes nothing itself)."""
        log.warning("console: ignored message: %s: %s", kind, reason)
        with self.lock:
            self.rejected += 1
            self.rejections[kind] = self.rejections.get(kind, 0) + 1

    def _route(self, topic: str, payload: bytes) -> None:
        w = self.ward
        if topic == topics.context_changed(w.site, w.unit, root=self.root):
            ContextChanged.model_validate_json(payload)
            self.context_changed.set()
            return
        t = topics.parse_topic(topic, root=self.root)
        if (t.site, t.unit) != (w.site, w.unit):
            raise topics.IdentityMismatch(
                f"topic of {t.site}/{t.unit} is outside {w.site}/{w.unit}"
            )
        if isinstance(t, topics.GatewayTopic):
            if t.leaf == "obs":
                batch = ObservationBatch.model_validate_json(payload)
                topics.check_gateway_identity(t, batch.gateway_id)
                for o in batch.observations:
                    entry = w.bed_of(batch.gateway_id, o.device_id)
                    if entry is not None:
                        self.beds[entry.id].vitals[o.code] = o.value
            elif t.leaf == "status" and payload:
                st = GatewayStatus.model_validate_json(payload)
                topics.check_gateway_identity(t, st.gateway_id)
                self.gateways[st.gateway_id] = st
        elif t.leaf == "score" and t.bed in self.beds:
            s = ScoreUpdate.model_validate_json(payload)
            if s.bed_id != t.bed:
                raise topics.IdentityMismatch(f"score of bed {s.bed_id!r} on bed {t.bed!r}'s topic")
            self.beds[t.bed].score = s
            if s.mode == "charted":
                self.charted_beds.add(t.bed)
        elif t.leaf == "alert" and t.bed in self.beds and t.alert_id is not None:
            if payload:
                self.beds[t.bed].alerts[t.alert_id] = Alert.model_validate_json(payload)
            else:
                self.beds[t.bed].alerts.pop(t.alert_id, None)
        elif t.leaf == "events":
            ev = AlertEvent.model_validate_json(payload)
            if ev.event_id is not None:
                if ev.event_id in self._event_ids:
                    self.redelivered += 1
                    return
                self._event_ids.add(ev.event_id)
            self.events.append(ev)
        elif t.leaf == "engine" and t.instance is not None and payload:
            es = EngineStatus.model_validate_json(payload)
            if es.instance != t.instance or es.unit != t.unit:
                raise topics.IdentityMismatch(
                    f"engine status of {es.instance}/{es.unit} on {t.instance}/{t.unit}'s topic"
                )
            self.engines[t.instance] = es

    def monitored(self, now: datetime) -> bool:
        """Whether an alert engine watches this unit: one says online and its last word is at
        most two heartbeats old (a killed engine's last will, or silence, ends it)."""
        with self.lock:
            return any(
                s.state is EngineState.ONLINE
                and s.at is not None
                and (now - s.at).total_seconds() <= 2 * s.heartbeat_s
                for s in self.engines.values()
            )

    def clinical_alerted_beds(self) -> list[str]:
        """Beds that had a clinical alert raised at any time during this view's life."""
        with self.lock:
            return sorted(
                {
                    e.alert.bed_id
                    for e in self.events
                    if e.alert.alert_kind is AlertKind.CLINICAL and e.event.value == "raised"
                }
            )


def render(view: WardView, title: str = "", now: datetime | None = None) -> Group:
    watched = view.monitored(now or datetime.now(UTC))
    head = title or f"{view.ward.site}/{view.ward.unit}"
    if not watched:
        head += "  [NOT MONITORED: no alert engine]"
    stale = view.context_stale
    if stale is not None:
        head += f"  [BEDS AS LAST KNOWN: registry not answering: {stale[:80]}]"
    alarm = not watched or stale is not None
    t = Table(title=head, expand=True, title_style="bold white on red" if alarm else "")
    for col in ("bed", *VITALS, "score", "alerts"):
        t.add_column(col)
    with view.lock:
        for bed_id, b in view.beds.items():
            vit = [f"{b.vitals[c]:g}" if c in b.vitals else "—" for c in VITALS]
            if b.score is None:
                score = Text("—")
            else:
                s = b.score
                score = Text(f"{s.total}{'' if s.complete else '*'} {s.band or ''}")
            alerts = Text()
            for a in b.alerts.values():
                style = PRIO_STYLE.get(a.priority.value, "")
                alerts.append(f" {a.condition}:{a.priority.value}:{a.state.value} ", style=style)
            t.add_row(bed_id, *vit, score, alerts)
        gws = ", ".join(f"{g}={s.state.value}({s.outbox_depth})" for g, s in view.gateways.items())
    note = Text(f"* partial score (items missing). gateways: {gws}", style="dim")
    return Group(t, note)


def subscribe_view(
    view: WardView, params: MqttParams, client_id: str, root: str
) -> MqttSession:
    """A running MQTT session feeding ``view`` (stop it with ``.stop()``)."""
    # A view needs no persistent session: it rebuilds from retained state on connect.
    params = replace(params, session_expiry_s=0)
    view.root = root
    session = MqttSession(
        params,
        client_id,
        subscriptions=view.filters(root),
        on_message=MessageBoundary(
            "console",
            lambda c, u, m: view.on_message(m.topic, bytes(m.payload)),
            lambda m, kind, reason: view.reject(kind, f"{m.topic}: {reason}"),
        ),
        log_name=__name__,
    )
    session.start()
    return session


def refresh_context(view: WardView, source: ContextSource) -> None:
    """Re-read the unit context into the view; a failure is shown on the board, never raised."""
    try:
        ctx = source.load()
        view.set_context(ctx, source.last_error if source.stale else None)
    except (UnitContextError, ValueError) as exc:
        log.error("unit context not refreshed: %s", exc)
        with view.lock:
            view.context_stale = " ".join(str(exc).split())


def _context_loop(view: WardView, source: ContextSource, stop: threading.Event,
                  every_s: float) -> None:
    while not stop.is_set():
        view.context_changed.wait(every_s)
        view.context_changed.clear()
        if not stop.is_set():
            refresh_context(view, source)


def run_board(params: MqttParams, ward: UnitContext, *, root: str = topics.ROOT,
              source: ContextSource | None = None, refresh_s: float = 10.0) -> None:
    """Show the board until Ctrl-C. With a registry ``source`` the beds follow the registry:
    re-read every ``refresh_s`` and at once on its change event; shown as last known (and
    said in red) while it does not answer."""
    from rich.live import Live

    view = WardView(ward)
    if source is not None and source.stale:
        view.context_stale = source.last_error
    client = subscribe_view(
        view, params, f"console-board-{datetime.now(UTC).timestamp():.0f}", root
    )
    stop = threading.Event()
    if source is not None and source.is_url:
        threading.Thread(target=_context_loop, args=(view, source, stop, refresh_s),
                         name="context-refresh", daemon=True).start()
    try:
        with (
            contextlib.suppress(KeyboardInterrupt),
            Live(render(view), refresh_per_second=2) as live,
        ):
            while not stop.wait(0.5):
                live.update(render(view))
    finally:
        stop.set()
        view.context_changed.set()
        client.stop()
