"""The edge agent shell: drivers -> outbox -> MQTT, plus birth/heartbeat/last-will status.

Threads: one per device driver (blocking pyserial reads), paho's network thread, and the main
loop here, which seals batches, publishes them within an in-flight window and sends heartbeats.
Every decision (when to seal, how much to publish, what a PUBACK means) comes from
``outbox_core``; this module only does the I/O.

Broker connection: the drivers start first, so readings reach the outbox whether or not the
broker is there. A broker that cannot be reached at start (or later) is retried on paho's
network thread with capped, jittered backoff (``servicekit.mqtt.Backoff``), so a ward
of gateways does not reconnect in lockstep after a broker restart. A broker that *answers* but
cannot be trusted or refuses us (``TlsFailed``, ``BrokerRefused``) is a configuration error:
``run()`` stops the drivers and raises, visibly, instead of collecting forever for nobody.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent import __version__
from edge_agent.admission import ClockPolicy, admit
from edge_agent.config import EdgeConfig
from edge_agent.drivers import DeviceDriver, DeviceHealth, SinkReport, make_driver
from edge_agent.outbox import Outbox
from edge_agent.outbox_core import plan_seal, publish_window
from edge_agent.protocols.base import Reading, WaveformChunk
from servicekit.backoff import Backoff
from servicekit.clock import utcnow
from servicekit.mqtt import BrokerUnreachable, MqttParams, MqttSession
from wardwire import topics
from wardwire.models import DeviceStatus, GatewayState, GatewayStatus

log = logging.getLogger(__name__)
StatusReason = Literal["birth", "heartbeat", "shutdown", "lwt"]


def _counters(h: DeviceHealth) -> dict[str, int]:
    """The ``DeviceStatus`` counters of a driver's health."""
    return {
        "readings": h.readings,
        "frames_rejected": h.frames_rejected,
        "values_invalid": h.values_invalid,
        "values_retimed": h.values_retimed,
        "values_refused": h.values_refused,
        "values_dropped": h.dropped,
        "reconnects": h.reconnects,
    }


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
        self.stop_event = threading.Event()
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
            make_driver(d, self._on_readings, clock, self.stop_event) for d in cfg.devices
        ]
        self._inflight_seqs: set[int] = set()  # batches handed to MQTT, not yet answered
        self._lock = threading.Lock()
        self.published_batches = 0
        self.refused_batches = 0
        self.mqtt: MqttSession | None = None

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
            **_counters(h),
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
                counters = _counters(d.health)
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
        self._publish_status(GatewayState.ONLINE, "birth")
        for d in self.drivers:
            with d.lock:
                d.health.changed = True

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

    # -- main loop ---------------------------------------------------------------------------
    def _mqtt_params(self) -> MqttParams:
        b = self.cfg.broker
        return MqttParams(
            host=b.host,
            port=b.port,
            username=b.username or self.cfg.gateway.id,
            password=b.resolved_password(),
            ca_file=b.tls.ca_file if b.tls else None,
            cert_file=b.tls.cert_file if b.tls else None,
            key_file=b.tls.key_file if b.tls else None,
            keepalive_s=b.keepalive_s,
            session_expiry_s=b.session_expiry_s,
            reconnect=self.reconnect,
        )

    def step(self, *, flush: bool = False) -> None:
        """Seal what is due and publish sealed batches within the in-flight window."""
        ob = self.cfg.outbox
        now = self.clock()
        while True:
            pending, oldest = self.outbox.oldest_pending_ms()
            n = plan_seal(
                pending,
                oldest,
                int(now.timestamp() * 1000),
                batch_max=ob.batch_max,
                linger_ms=ob.linger_ms,
                flush=flush,
            )
            if not n:
                break
            self.outbox.seal(
                n, gateway_id=self.cfg.gateway.id, generation=self.cfg.gateway.generation, now=now
            )
        if self.mqtt is None or not self.mqtt.connected.is_set():
            return
        with self._lock:
            room = publish_window(len(self._inflight_seqs), ob.inflight_max)
            skip = set(self._inflight_seqs)
        if room <= 0:
            return
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

    def run(self) -> None:
        """Run until ``stop()``; then drain the outbox (bounded) and say goodbye."""
        gw = self.cfg.gateway
        will = GatewayStatus(
            gateway_id=gw.id,
            state=GatewayState.OFFLINE,
            reason="lwt",
            generation=gw.generation,
            agent_version=__version__,
        )
        self.mqtt = MqttSession(
            self._mqtt_params(),
            gw.id,
            will=(self.status_topic, will.model_dump_json().encode()),
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            log_name=__name__,
        )
        threads = [
            threading.Thread(target=d.run, name=f"driver-{d.device.id}", daemon=True)
            for d in self.drivers
        ]
        for t in threads:
            t.start()
        try:
            self.mqtt.start()
        except BrokerUnreachable as exc:
            log.warning("%s; collecting into the outbox and retrying with backoff", exc)
            self.mqtt.start_in_background()
        except BaseException:
            self.stop_event.set()
            for t in threads:
                t.join(timeout=5)
            self.outbox.close()
            raise
        next_heartbeat = 0.0
        while not self.stop_event.wait(0.05):
            self.step()
            mono = time.monotonic()
            if self.mqtt.connected.is_set():
                heartbeat = mono >= next_heartbeat
                self._publish_device_statuses(refresh=heartbeat)
                if heartbeat:
                    self._publish_status(GatewayState.ONLINE, "heartbeat")
                    next_heartbeat = mono + self.cfg.heartbeat_s
        for t in threads:
            t.join(timeout=5)
        self._drain(deadline_s=15.0)
        info = self._publish_status(GatewayState.OFFLINE, "shutdown")
        if info is not None and self.mqtt.connected.is_set():
            info.wait_for_publish(timeout=5)
        self.mqtt.stop()
        self.outbox.close()

    def _drain(self, deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            self.step(flush=True)
            if self.outbox.stats().depth == 0:
                return
            time.sleep(0.02)  # drain poll interval (waits on the broker, not on a test)
        log.warning(
            "shutdown with %d observations still in the outbox (kept for next start)",
            self.outbox.stats().depth,
        )

    def stop(self) -> None:
        self.stop_event.set()
