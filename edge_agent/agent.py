"""The edge agent shell: drivers -> outbox -> MQTT, plus birth/heartbeat/last-will status.

One event loop runs the whole gateway (``run_async``): a task per device (its driver's
supervisor), a publisher task and a status task, in one ``asyncio.TaskGroup``. Nothing polls:

* a driver's session waits for its link (a serial fd woken by data through ``add_reader``; a
  BLE notification), hands the values to the sink and reads on only once they are durable in
  the outbox. Every SQLite write runs on one disk thread (``_disk``), so a slow write never
  stalls another device; each device has at most one write outstanding, which bounds the
  hand-off, and the outbox itself (``max_rows``, overflow policy) bounds what waits for the
  broker;
* the publisher sleeps until woken -- by new readings, a broker answer that frees the
  in-flight window, a (re)connect -- or until the oldest pending reading's linger runs out;
* the status task publishes device statuses on a change and everything at each heartbeat.

Besides the loop: paho's network thread (the MQTT socket; it wakes the loop with
``call_soon_threadsafe``), the disk thread, and, with ``[metrics] port``, the metrics server.
``stop()`` (any thread, a signal handler) cancels the device tasks; the outbox is then flushed
(bounded) and the orderly-shutdown status published. Every decision (when to seal, how much to
publish, what a PUBACK means) comes from ``outbox_core``; this module only does the I/O.

Broker connection: the devices start first, so readings reach the outbox whether or not the
broker is there. A broker that cannot be reached at start (or later) is retried on paho's
network thread with capped, jittered backoff (``servicekit.backoff.Backoff``), so a ward of
gateways does not reconnect in lockstep after a broker restart. A broker that *answers* but
cannot be trusted or refuses us (``TlsFailed``, ``BrokerRefused``: a wrong CA, an expired
certificate, credentials rotated and not yet installed) is a configuration error, but the
children's readings are not: the devices go on into the outbox, the error is logged at ERROR
and kept in ``broker_refused`` (``wardwatch_edge_broker_refused`` on /metrics), and the
connection is retried with the same backoff, so fixing the configuration and restarting loses
nothing. ``wardwatch edge check-config --broker`` finds such an error at once, at install
time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent import __version__
from edge_agent.admission import ClockPolicy, admit
from edge_agent.config import EdgeConfig
from edge_agent.drivers import DeviceDriver, SinkReport, device_counters, make_driver
from edge_agent.outbox import Outbox
from edge_agent.outbox_core import plan_seal, publish_window
from edge_agent.protocols.base import Reading, WaveformChunk
from servicekit.backoff import Backoff
from servicekit.clock import utcnow
from servicekit.mqtt import BrokerUnreachable, MqttError, MqttParams, MqttSession
from servicekit.runner import StopFlag
from wardwire import topics
from wardwire.models import DeviceStatus, GatewayState, GatewayStatus

log = logging.getLogger(__name__)
_T = TypeVar("_T")
StatusReason = Literal["birth", "heartbeat", "shutdown", "lwt"]


class EdgeAgent:
    """One bedside gateway."""

    def __init__(
        self,
        cfg: EdgeConfig,
        clock: Callable[[], datetime] = utcnow,
        *,
        reconnect: Backoff | None = None,
        new_outbox: bool = False,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.reconnect = reconnect or Backoff()
        #: set by ``stop()`` (any thread, a signal handler); the loop awaits it without polling
        self.stop_event = StopFlag()
        # Refuses (OutboxError, naming the file and what to do) a missing, replaced, restored
        # or corrupt outbox unless new_outbox: queued readings are never silently forgotten.
        self.outbox = Outbox(
            cfg.outbox.path,
            max_rows=cfg.outbox.max_rows,
            overflow=cfg.outbox.overflow,
            new_epoch=new_outbox,
        )
        gw = cfg.gateway
        root = cfg.broker.topic_root
        self.obs_topic = topics.gateway_obs(gw.site, gw.unit, gw.id, root=root)
        self.status_topic = topics.gateway_status(gw.site, gw.unit, gw.id, root=root)
        self.clock_policy = ClockPolicy.from_config(cfg.clock)
        self._clock_bad: dict[str, bool] = {}  # device id -> its clock is implausible now
        self._refusals_logged: set[tuple[str, str]] = set()
        self._published_counters: dict[str, dict[str, int]] = {}
        self.drivers = [
            make_driver(d, self._store, clock, self.stop_event) for d in cfg.devices
        ]
        self._inflight_seqs: set[int] = set()  # batches handed to MQTT, not yet answered
        self._lock = threading.Lock()
        self.published_batches = 0
        self.refused_batches = 0
        #: why the broker refused us at start (TLS or credentials), until a connection succeeds
        self.broker_refused: str | None = None
        self.mqtt: MqttSession | None = None
        #: one thread for every SQLite write, off the event loop
        self._disk = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="outbox")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wake: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self.metrics_port: int | None = None
        self._connects = 0  # CONNACKs seen (each one published a birth status)
        #: pending readings as the disk thread last counted them (for waking the publisher)
        self._unsealed = 0

    # -- drivers -> outbox -------------------------------------------------------------------
    def _on_readings(
        self, device_id: str, values: list[Reading | WaveformChunk], now: datetime
    ) -> SinkReport:
        """The drivers' sink (called on the device's thread): admit, log, store, report.

        Never raises for a value (``edge_agent.admission``): an implausible value is stored as
        invalid, an implausible device clock re-timed, a value the contract cannot carry
        refused on its own; the driver counts each from the returned report.
        """
        adm = admit(device_id, values, now, self.clock_policy)
        for r in adm.refused:
            key = (device_id, r.code)
            # A driver bug repeats with every frame: the first is an error, the rest are
            # counted (values_refused in the device status) and logged at debug level.
            level = logging.DEBUG if key in self._refusals_logged else logging.ERROR
            self._refusals_logged.add(key)
            log.log(level, "device %s: %s value refused (driver bug?): %s", device_id, r.code,
                    r.reason)
        for o in adm.observations:
            if o.quality_reason is not None:
                log.info("device %s: kept as invalid: %s", device_id, o.quality_reason)
        # Only this device's thread writes its entry.
        was_bad = self._clock_bad.get(device_id, False)
        if adm.retimed and not was_bad:
            self._clock_bad[device_id] = True
            log.warning(
                "device %s: clock implausible (%s); its values are stamped with the gateway's "
                "receive time (time_source=gateway) until it is plausible again",
                device_id,
                adm.clock_problem,
            )
        elif was_bad and adm.device_timed and not adm.retimed:
            self._clock_bad[device_id] = False
            log.warning("device %s: clock plausible again; its own time is used", device_id)
        self.outbox.add(adm.observations, adm.waveforms, now=now)
        return SinkReport(invalid=adm.invalid, retimed=adm.retimed, refused=len(adm.refused))

    # -- status ------------------------------------------------------------------------------
    def _device_status(self, d: DeviceDriver, now: datetime) -> DeviceStatus:
        """The status of one device, with every counter its driver keeps (hold ``d.lock``)."""
        h = d.health
        return DeviceStatus(
            gateway_id=self.cfg.gateway.id,
            device_id=d.device.id,
            state=h.state,
            at=now,
            detail=h.detail,
            battery_pct=h.battery_pct,
            last_reading_at=h.last_reading_at,
            **device_counters(h),
        )

    def _status(self, state: GatewayState, reason: StatusReason) -> GatewayStatus:
        stats = self.outbox.stats()
        now = self.clock()
        devices = []
        skew: dict[str, float] = {}
        for d in self.drivers:
            with d.lock:
                devices.append(self._device_status(d, now))
                if d.health.skew_ms is not None:
                    skew[d.device.id] = round(d.health.skew_ms, 1)
        return GatewayStatus(
            gateway_id=self.cfg.gateway.id,
            state=state,
            reason=reason,
            at=now,
            generation=self.cfg.gateway.generation,
            agent_version=__version__,
            outbox_depth=stats.depth,
            outbox_dropped=stats.dropped + stats.rejected,
            outbox_epoch=self.outbox.epoch,
            outbox_epoch_reason=self.outbox.epoch_reason,
            outbox_quarantined=stats.quarantined,
            clock_skew_ms=skew,
            devices=devices,
        )

    def _publish_status(
        self, state: GatewayState, reason: StatusReason
    ) -> mqtt.MQTTMessageInfo | None:
        if self.mqtt is None:
            return None
        payload = self._status(state, reason).model_dump_json()
        return self.mqtt.publish(self.status_topic, payload, qos=1, retain=True)

    def _publish_device_statuses(self, *, refresh: bool = False) -> None:
        """Publish the retained status of each device whose state changed, and with
        ``refresh`` (at each heartbeat) of each device whose counters moved since."""
        assert self.mqtt is not None
        gw = self.cfg.gateway
        for d in self.drivers:
            with d.lock:
                counters = device_counters(d.health)
                moved = refresh and counters != self._published_counters.get(d.device.id)
                if not (d.health.changed or moved):
                    continue
                d.health.changed = False
                self._published_counters[d.device.id] = counters
                msg = self._device_status(d, self.clock())
            topic = topics.device_status(
                gw.site, gw.unit, gw.id, d.device.id, root=self.cfg.broker.topic_root
            )
            self.mqtt.publish(topic, msg.model_dump_json(), qos=1, retain=True)

    # -- MQTT hooks (paho network thread) ----------------------------------------------------
    def _on_connect(self, session_present: bool) -> None:
        self._connects += 1
        if self.broker_refused is not None:
            log.info("connected to the broker: it no longer refuses us")
            self.broker_refused = None
        self._publish_status(GatewayState.ONLINE, "birth")
        for d in self.drivers:
            with d.lock:
                d.health.changed = True
        self._wake_publisher()
        self._wake_statuses()

    def _on_disconnect(self, rc: ReasonCode) -> None:
        log.warning("disconnected from broker: %s", rc)

    def _settle(self, seq: int, rc: ReasonCode) -> None:
        """The broker answered batch ``seq`` (its completion, on paho's network thread)."""
        with self._lock:
            self._inflight_seqs.discard(seq)
        if rc.is_failure:
            self.refused_batches += 1
            log.error("broker refused batch seq=%d: %s (kept in outbox)", seq, rc)
            return
        self.outbox.ack(seq)
        self.published_batches += 1
        self._wake_publisher()  # the in-flight window has room again

    # -- main loop ---------------------------------------------------------------------------
    def _mqtt_params(self) -> MqttParams:
        return self.mqtt_params_of(self.cfg, self.reconnect)

    @staticmethod
    def mqtt_params_of(cfg: EdgeConfig, reconnect: Backoff | None = None) -> MqttParams:
        """The broker connection a gateway's config describes (``edge run``, ``check-config
        --broker``)."""
        b = cfg.broker
        return MqttParams(
            host=b.host,
            port=b.port,
            username=b.username or cfg.gateway.id,
            password=b.resolved_password(),
            ca_file=b.tls.ca_file if b.tls else None,
            cert_file=b.tls.cert_file if b.tls else None,
            key_file=b.tls.key_file if b.tls else None,
            keepalive_s=b.keepalive_s,
            session_expiry_s=b.session_expiry_s,
            reconnect=reconnect or Backoff(),
        )

    def step(self, *, flush: bool = False) -> float | None:
        """Seal what is due and publish sealed batches within the in-flight window.

        Returns the seconds until pending readings become due for sealing (their linger runs
        out), or None when nothing waits on time: the publisher then sleeps until woken by new
        readings, a broker answer or a (re)connect.
        """
        ob = self.cfg.outbox
        now = self.clock()
        now_ms = int(now.timestamp() * 1000)
        due_in: float | None = None
        while True:
            pending, oldest = self.outbox.oldest_pending_ms()
            n = plan_seal(
                pending, oldest, now_ms, batch_max=ob.batch_max, linger_ms=ob.linger_ms,
                flush=flush,
            )
            if not n:
                self._unsealed = pending
                if pending and oldest is not None:
                    due_in = max(0.0, (oldest + ob.linger_ms - now_ms) / 1000)
                break
            self.outbox.seal(
                n, gateway_id=self.cfg.gateway.id, generation=self.cfg.gateway.generation, now=now
            )
        if self.mqtt is None or not self.mqtt.connected.is_set():
            return due_in
        with self._lock:
            room = publish_window(len(self._inflight_seqs), ob.inflight_max)
            skip = set(self._inflight_seqs)
        if room <= 0:
            return due_in
        for batch in self.outbox.sealed(limit=room + len(skip)):
            if batch.seq in skip:
                continue
            if room <= 0:
                break
            # Never hold our lock across paho calls: its network thread runs the completions.
            with self._lock:
                self._inflight_seqs.add(batch.seq)
            info = self.mqtt.publish(
                self.obs_topic, batch.payload, qos=1,
                on_done=functools.partial(self._settle, batch.seq),
            )
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                with self._lock:
                    self._inflight_seqs.discard(batch.seq)
                log.error("publish of seq=%d failed locally: rc=%s", batch.seq, info.rc)
                break
            room -= 1
        return due_in

    # -- the one event loop ------------------------------------------------------------------
    def run(self) -> None:
        """Run until ``stop()``; then drain the outbox (bounded) and say goodbye."""
        asyncio.run(self.run_async())

    def stop(self) -> None:
        """Ask the agent to stop (from any thread or a signal handler)."""
        self.stop_event.set()

    def _wake_publisher(self) -> None:
        """Wake the publisher task; safe from any thread (paho's included)."""
        self._set_threadsafe(self._wake)

    def _wake_statuses(self) -> None:
        self._set_threadsafe(self._changed)

    def _set_threadsafe(self, wake: asyncio.Event | None) -> None:
        loop = self._loop
        if loop is None or wake is None:
            return
        if threading.get_ident() == self._loop_thread:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(wake.set)

    async def _store(
        self, device_id: str, values: list[Reading | WaveformChunk], now: datetime
    ) -> SinkReport:
        """The drivers' sink on the loop: the values are durable in the outbox (written on the
        disk thread, so one slow write never stalls the other devices) before the driver
        reads on."""
        loop = asyncio.get_running_loop()
        report, due = await loop.run_in_executor(
            self._disk, self._store_on_disk, device_id, values, now
        )
        if due:
            self._wake_publisher()
        return report

    def _store_on_disk(
        self, device_id: str, values: list[Reading | WaveformChunk], now: datetime
    ) -> tuple[SinkReport, bool]:
        """``_on_readings`` on the disk thread, and whether the publisher has to look now: the
        first pending reading starts its linger timer, a full batch is sealed at once; in
        between, new readings need no wake-up (runs serialised with ``step`` on that thread)."""
        before = self._unsealed
        report = self._on_readings(device_id, values, now)
        self._unsealed += len(values)
        return report, before == 0 or self._unsealed >= self.cfg.outbox.batch_max

    async def _disk_call(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._disk, fn, *args)

    async def _publisher(self, wake: asyncio.Event) -> None:
        """Seal and publish whenever there is something to do; otherwise sleep (no polling)."""
        while True:
            wake.clear()
            due_in = await self._disk_call(self.step)
            try:
                async with asyncio.timeout(due_in):
                    await wake.wait()
            except TimeoutError:
                pass  # pending readings' linger ran out: seal them

    async def _statuses(self, changed: asyncio.Event) -> None:
        """Device statuses at once on a change, everything at each heartbeat."""
        assert self.mqtt is not None
        mqtt_session = self.mqtt
        next_heartbeat = 0.0
        seen_connects = 0
        while True:
            changed.clear()
            if not mqtt_session.connected.is_set():
                await changed.wait()  # a (re)connect wakes us
                continue
            if self._connects != seen_connects:
                # The birth status just went out: the next heartbeat is a period away.
                seen_connects = self._connects
                next_heartbeat = time.monotonic() + self.cfg.heartbeat_s
            heartbeat = time.monotonic() >= next_heartbeat
            await self._disk_call(self._heartbeat_or_changes, heartbeat)
            if heartbeat:
                next_heartbeat = time.monotonic() + self.cfg.heartbeat_s
            try:
                async with asyncio.timeout(max(0.0, next_heartbeat - time.monotonic())):
                    await changed.wait()
            except TimeoutError:
                pass

    def _heartbeat_or_changes(self, heartbeat: bool) -> None:
        self._publish_device_statuses(refresh=heartbeat)
        if heartbeat:
            self._publish_status(GatewayState.ONLINE, "heartbeat")

    async def run_async(self) -> None:
        """The whole gateway on the running loop: a task per device, the publisher and the
        status task in one task group; ``stop()`` cancels the devices, the outbox is flushed
        and the orderly-shutdown status published."""
        gw = self.cfg.gateway
        loop = asyncio.get_running_loop()
        self._loop, self._loop_thread = loop, threading.get_ident()
        self._wake = wake = asyncio.Event()
        changed = asyncio.Event()
        self._changed = changed

        def on_change() -> None:
            changed.set()

        for d in self.drivers:
            d.on_change = on_change
        will = GatewayStatus(
            gateway_id=gw.id, state=GatewayState.OFFLINE, reason="lwt",
            generation=gw.generation, agent_version=__version__,
        )
        self.mqtt = MqttSession(
            self._mqtt_params(),
            gw.id,
            will=(self.status_topic, will.model_dump_json().encode()),
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            log_name=__name__,
        )
        metrics = self._start_metrics()
        try:
            async with asyncio.TaskGroup() as tg:
                devices = [
                    tg.create_task(d.run_async(), name=f"device-{d.device.id}")
                    for d in self.drivers
                ]
                background: list[asyncio.Task[None]] = []
                try:
                    await asyncio.to_thread(self.mqtt.start)
                except BrokerUnreachable as exc:
                    log.warning("%s; collecting into the outbox and retrying with backoff", exc)
                    self.mqtt.start_in_background()
                except MqttError as exc:
                    # TlsFailed / BrokerRefused: configuration. Said loudly, and the readings
                    # are kept all the same: the outbox holds them until it is fixed.
                    self.broker_refused = " ".join(str(exc).split())
                    log.error("the broker refuses this gateway: %s; collecting into the outbox "
                              "and retrying with backoff until the configuration is fixed",
                              self.broker_refused)
                    self.mqtt.start_in_background()
                background = [
                    tg.create_task(self._publisher(wake), name="publisher"),
                    tg.create_task(self._statuses(changed), name="statuses"),
                ]
                await self.stop_event.wait_async()
                for t in [*devices, *background]:
                    t.cancel()
            await self._drain(deadline_s=15.0)
            await asyncio.to_thread(self._say_goodbye)
        finally:
            self._loop = None
            if metrics is not None:
                metrics.stop()
            self._disk.shutdown(wait=True)
            self.outbox.close()

    def _say_goodbye(self) -> None:
        assert self.mqtt is not None
        info = self._publish_status(GatewayState.OFFLINE, "shutdown")
        if info is not None and self.mqtt.connected.is_set():
            info.wait_for_publish(timeout=5)
        self.mqtt.stop()

    async def _drain(self, deadline_s: float) -> None:
        """Seal everything and publish it, until the outbox is empty or the deadline passes
        (what is left stays in the outbox for the next start)."""
        wake = self._wake
        assert wake is not None
        if self.broker_refused is not None:
            # nobody to publish to: seal what is open (kept for the next start) and go
            await self._disk_call(functools.partial(self.step, flush=True))
            log.warning("shutdown while the broker refuses us: %d observations kept in the "
                        "outbox for the next start", self.outbox.stats().depth)
            return
        try:
            async with asyncio.timeout(deadline_s):
                while True:
                    wake.clear()
                    await self._disk_call(functools.partial(self.step, flush=True))
                    if (await self._disk_call(self.outbox.stats)).depth == 0:
                        return
                    await wake.wait()  # woken by a broker answer or a reconnect
        except TimeoutError:
            log.warning(
                "shutdown with %d observations still in the outbox (kept for next start)",
                self.outbox.stats().depth,
            )

    def _start_metrics(self) -> Any:
        port = self.cfg.metrics.port
        if port is None:
            return None
        from edge_agent.metrics import edge_registry
        from servicekit.metrics import serve

        server = serve(edge_registry(self), port, host=self.cfg.metrics.host)
        log.info("metrics on %s:%d/metrics", self.cfg.metrics.host, server.port)
        self.metrics_port = server.port
        return server
