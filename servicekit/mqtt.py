"""The one way wardwatch services open an MQTT v5 connection (paho-mqtt 2.x).

Every service gets the same safe defaults, the ones whose absence silently loses messages
(see docs/architecture.md, "lossless by construction"):

* a stable client id and ``clean_start=False`` with a session expiry, so the broker keeps the
  session (queued QoS 1 messages, un-acked deliveries) across disconnects and restarts -- paho's
  v5 default ``MQTT_CLEAN_START_FIRST_ONLY`` would wipe it;
* an explicit CONNACK deadline (``connect_blocking``), never hope;
* TLS (server verification against ``ca_file``; a client certificate optional) when a CA is
  given, with verification failures reported as :class:`TlsFailed`, not as a hang;
* reconnects on paho's network thread, on **our** schedule: capped exponential backoff with
  jitter (:class:`Backoff`). paho's own ``reconnect_delay_set`` doubles a fixed delay,
  so every gateway of a ward that lost the broker at the same instant would knock again at the
  same instants (1, 2, 4, ... s): a thundering herd on the restarted broker.

Errors are split by whose fault they are: :class:`BrokerUnreachable` (network, broker down:
retry), :class:`TlsFailed` and :class:`BrokerRefused` (configuration: certificates, credentials,
ACL; retrying will not help). All derive from :class:`MqttError`.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, _ConnectionState
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from servicekit.backoff import Backoff

__all__ = [
    "BrokerRefused",
    "BrokerUnreachable",
    "MqttError",
    "MqttParams",
    "MqttSession",
    "TlsFailed",
    "connect_blocking",
    "connect_in_background",
    "connect_properties",
    "make_client",
]


class MqttError(RuntimeError):
    """Could not connect, or the broker refused us."""


class BrokerUnreachable(MqttError):
    """No TCP connection or no CONNACK in time: the network or the broker is down (transient)."""


class TlsFailed(MqttError):
    """The TLS handshake failed (wrong CA, name mismatch, expired or missing certificate)."""


class BrokerRefused(MqttError):
    """The broker answered with a failing CONNACK (credentials, authorisation)."""


@dataclass(frozen=True, slots=True)
class MqttParams:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    receive_maximum: int = 1000
    connect_timeout_s: float = 5.0
    reconnect: Backoff = field(default_factory=Backoff)


# paho's network thread calls Client._reconnect_wait() between a lost connection (or a failed
# attempt) and the next attempt; it is the one place to put our schedule while keeping paho's
# thread, loop_stop() and retry_first_connection semantics. Fail loudly if a paho upgrade
# removes the hook (tests/unit/core/test_mqtt_backoff.py checks this too).
if not callable(getattr(mqtt.Client, "_reconnect_wait", None)):  # pragma: no cover
    raise ImportError("paho-mqtt no longer has Client._reconnect_wait; see servicekit/mqtt.py")

_STOPPING_STATES = frozenset(
    {_ConnectionState.MQTT_CS_DISCONNECTING, _ConnectionState.MQTT_CS_DISCONNECTED}
)


class JitteredClient(mqtt.Client):
    """A paho client whose automatic reconnects follow a :class:`Backoff`.

    ``reconnect_attempts`` counts waits since the last successful CONNACK; ``reconnect_waits``
    keeps the recent delays (observability, tests).
    """

    def __init__(
        self, *args: Any, backoff: Backoff, rng: random.Random, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.backoff = backoff
        self.rng = rng
        self.reconnect_attempts = 0
        self.reconnect_waits: list[float] = []

    def _reconnect_wait(self) -> None:
        with self._reconnect_delay_mutex:
            if self._reconnect_delay is None:  # paho resets this on every successful CONNACK
                self.reconnect_attempts = 0
                self._reconnect_delay = 0  # 'not reset': ours counts attempts
            delay = self.backoff.delay(self.reconnect_attempts, self.rng)
            self.reconnect_attempts += 1
            self.reconnect_waits = [*self.reconnect_waits[-31:], delay]
        end = time.monotonic() + delay
        # Same exit conditions as paho's own wait: disconnect() or loop_stop() end it early.
        while (
            self._state not in _STOPPING_STATES
            and not self._thread_terminate
            and (left := end - time.monotonic()) > 0
        ):
            time.sleep(min(left, 0.1))  # bounded wait on paho's thread, woken by stop flags


def make_client(
    params: MqttParams,
    client_id: str,
    *,
    manual_ack: bool = False,
    will: tuple[str, bytes] | None = None,
    rng: random.Random | None = None,
) -> mqtt.Client:
    """A configured (not yet connected) paho v5 client with jittered reconnects."""
    client = JitteredClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
        backoff=params.reconnect,
        rng=rng or random.Random(),
    )
    if params.username is not None:
        client.username_pw_set(params.username, params.password)
    if params.ca_file is not None:
        client.tls_set(
            ca_certs=str(params.ca_file),
            certfile=str(params.cert_file) if params.cert_file else None,
            keyfile=str(params.key_file) if params.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.connect_timeout = params.connect_timeout_s
    client.max_queued_messages_set(0)
    return client


def connect_properties(params: MqttParams) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = params.session_expiry_s
    props.ReceiveMaximum = params.receive_maximum
    return props


def _translate(exc: OSError, params: MqttParams) -> MqttError:
    where = f"{params.host}:{params.port}"
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
        return TlsFailed(f"TLS handshake with broker {where} failed: {reason}")
    return BrokerUnreachable(f"cannot reach broker {where}: {exc}")


def connect_blocking(client: mqtt.Client, params: MqttParams, timeout: float = 10.0) -> bool:
    """Connect with a persistent session, start the network thread, wait for CONNACK.

    Returns whether the broker still had our session. Raises ``BrokerUnreachable`` (no TCP
    connection, no CONNACK within ``timeout``), ``TlsFailed`` (certificate verification, ours
    of the broker or the broker's of our client certificate) or ``BrokerRefused`` (bad
    credentials); all are ``MqttError``. The caller's own ``on_connect`` and ``on_log`` (set
    before calling) still run.

    With TLS 1.3 the broker checks a client certificate *after* our side of the handshake has
    completed: a refused certificate (unknown CA, expired, missing) arrives as a TLS alert on
    the first read, which paho only logs before it reconnects. That log line is the one place
    the reason is known, so it ends the wait at once as :class:`TlsFailed`, instead of a
    misleading "no CONNACK" after the timeout.
    """
    done = threading.Event()
    outcome: dict[str, object] = {}
    user_on_connect: Any = client.on_connect
    user_on_log: Any = client.on_log

    def on_log(c: mqtt.Client, userdata: object, level: int, buf: str) -> None:
        if not done.is_set() and level == mqtt.MQTT_LOG_ERR and _is_tls_alert(buf):
            outcome["tls_alert"] = buf.split(": ", 1)[-1]
            done.set()
        if user_on_log is not None:
            user_on_log(c, userdata, level, buf)

    def on_connect(
        c: mqtt.Client, userdata: object, flags: object, rc: object, props: object
    ) -> None:
        first = not done.is_set()
        if first:
            outcome["rc"] = rc
            outcome["session_present"] = bool(getattr(flags, "session_present", False))
        try:
            if user_on_connect is not None:
                user_on_connect(c, userdata, flags, rc, props)
        finally:
            if first:  # after the caller's hook: what it set up is there when we return
                done.set()

    client.on_connect = on_connect
    client.on_log = on_log
    try:
        client.connect(
            params.host,
            params.port,
            keepalive=params.keepalive_s,
            clean_start=False,
            properties=connect_properties(params),
        )
    except OSError as exc:
        raise _translate(exc, params) from exc
    client.loop_start()
    finished = done.wait(timeout)
    if client.on_log is on_log:
        # ours only until the first answer: paho formats every debug line for an on_log
        # (about 1 us per message on the hot path), so a connected client carries none
        client.on_log = user_on_log
    if not finished:
        client.loop_stop()
        raise BrokerUnreachable(f"no CONNACK from {params.host}:{params.port} within {timeout} s")
    if "tls_alert" in outcome:
        client.loop_stop()
        raise TlsFailed(
            f"TLS with broker {params.host}:{params.port} failed: the broker refused the "
            f"handshake ({outcome['tls_alert']}); check the client certificate "
            f"({params.cert_file or 'none given'}): its CA, its validity, its key"
        )
    rc = outcome["rc"]
    if getattr(rc, "is_failure", False):
        client.loop_stop()
        raise BrokerRefused(f"broker refused connection: {rc}")
    return bool(outcome["session_present"])


def _is_tls_alert(log_line: str) -> bool:
    """A paho error line carrying a TLS alert from the peer (``[SSL: TLSV13_ALERT_…]``)."""
    return "[SSL: " in log_line and "_ALERT_" in log_line


def connect_in_background(client: mqtt.Client, params: MqttParams) -> None:
    """Start the network thread and let it connect (and reconnect) on the backoff schedule.

    For a service that must run while the broker is away (a gateway keeps filling its outbox);
    the caller's ``on_connect`` tells it when the broker is there.
    """
    client.connect_async(
        params.host,
        params.port,
        keepalive=params.keepalive_s,
        clean_start=False,
        properties=connect_properties(params),
    )
    client.loop_start()


# -- the session wrapper ---------------------------------------------------------------------
#: Called once per QoS>0 publish when the broker answered it (PUBACK), with its reason code.
Completion = Callable[[ReasonCode], None]
#: A paho ``on_message`` callback (usually a ``servicekit.faults.MessageBoundary``).
MessageCallback = Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]

# paho handles a PUBACK (and calls on_publish) holding ``_out_message_mutex``, the same RLock
# its publish() takes; holding it around publish() and registering the completion makes the
# PUBACK wait for the registration. Fail loudly if an upgrade removes it.
if "_out_message_mutex" not in mqtt.Client.__init__.__code__.co_names:  # pragma: no cover
    raise ImportError("paho-mqtt no longer has Client._out_message_mutex; see servicekit/mqtt.py")
# alive() reads paho's private ``_thread`` (its network thread); the same guard.
if "_thread" not in mqtt.Client.__init__.__code__.co_names:  # pragma: no cover
    raise ImportError("paho-mqtt no longer has Client._thread; see servicekit/mqtt.py")


class MqttSession:
    """One MQTT v5 connection whose paho callbacks are owned here, not by each service.

    What every service used to wire by hand:

    * **subscriptions** are (re)issued on every CONNACK (a broker that lost the session forgets
      them) and every SUBACK reason code is checked: a refused filter is logged and listed in
      ``refused_filters``; ``subscribed`` is set once the broker granted all of them;
    * **per-message completions**: ``publish(..., on_done=f)`` calls ``f(reason_code)`` when
      the broker answered that message, never earlier and never for another message (the
      registration happens under paho's own PUBACK lock, so a fast PUBACK cannot beat it);
    * **connection state**: ``connected`` is set between CONNACK and disconnect; the optional
      ``on_connect(session_present)`` / ``on_disconnect(reason_code)`` hooks run on paho's thread;
      a refused CONNACK is logged (and, for ``start()``, raised as :class:`BrokerRefused`).

    The paho client stays reachable as ``client`` for what is genuinely per-service (manual
    acks go through :meth:`ack`).
    """

    def __init__(
        self,
        params: MqttParams,
        client_id: str,
        *,
        subscriptions: Sequence[tuple[str, int]] = (),
        on_message: MessageCallback | None = None,
        on_connect: Callable[[bool], None] | None = None,
        on_disconnect: Callable[[ReasonCode], None] | None = None,
        manual_ack: bool = False,
        will: tuple[str, bytes] | None = None,
        rng: random.Random | None = None,
        log_name: str = "servicekit.mqtt",
    ) -> None:
        self.params = params
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self.client = make_client(params, client_id, manual_ack=manual_ack, will=will, rng=rng)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.refused_filters: list[str] = []
        self.refused_publishes = 0
        #: TLS alerts from the broker on (re)connects (a client certificate it refused: expired,
        #: another CA, missing), and the last one's text; paho would only log them and retry
        self.tls_refusals = 0
        self.last_tls_error: str | None = None
        self._user_connect = on_connect
        self._user_disconnect = on_disconnect
        self._pending: dict[int, Completion] = {}
        self._sub_mid: int | None = None
        self._log = logging.getLogger(log_name)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_log = self._on_log  # while disconnected only (see _on_connect)
        if on_message is not None:
            self.client.on_message = on_message

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> bool:
        """Connect (persistent session) and wait for CONNACK; returns whether the broker still
        had our session. Raises :class:`MqttError` subclasses (see :func:`connect_blocking`)."""
        return connect_blocking(self.client, self.params, timeout_s)

    def start_in_background(self) -> None:
        """Let paho connect and reconnect on the backoff schedule (the broker may be away)."""
        connect_in_background(self.client, self.params)

    def stop(self) -> None:
        """Disconnect cleanly (no last will) and stop the network thread. Subscriptions are
        kept by the broker with the persistent session: nothing is unsubscribed."""
        self.client.disconnect()
        self.client.loop_stop()

    def alive(self) -> bool:
        """Whether paho's network thread is running (part of a service's liveness)."""
        thread = getattr(self.client, "_thread", None)
        return isinstance(thread, threading.Thread) and thread.is_alive()

    # -- outbound ----------------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        on_done: Completion | None = None,
    ) -> mqtt.MQTTMessageInfo:
        """Publish; with ``on_done`` (QoS 1/2 only) be told the broker's answer for this one.

        While disconnected paho keeps a QoS>0 message and sends it on reconnect, so the
        completion still comes. A local failure (``info.rc`` other than success or no
        connection) registers nothing: the caller sees it in the returned info.
        """
        if on_done is not None and qos == 0:
            raise ValueError("a completion needs QoS 1 or 2 (QoS 0 has no answer)")
        with self.client._out_message_mutex:
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
            if on_done is not None and info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                self._pending[info.mid] = on_done
        return info

    def pending_completions(self) -> int:
        with self.client._out_message_mutex:
            return len(self._pending)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge an inbound message (``manual_ack=True`` sessions)."""
        self.client.ack(mid, qos)

    # -- paho callbacks (network thread) -----------------------------------------------------
    def _on_connect(
        self, c: mqtt.Client, u: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            self._log.error("%s: broker refused the connection: %s", self.client_id, rc)
            return
        c.on_log = None  # connected: no TLS alert to watch for, and no per-message formatting
        self.connected.set()
        if self.subscriptions:
            _, self._sub_mid = c.subscribe(self.subscriptions)
        if self._user_connect is not None:
            self._user_connect(bool(getattr(flags, "session_present", False)))

    def _on_disconnect(
        self, c: mqtt.Client, u: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        self.connected.clear()
        if c.on_log is None:  # (connect_blocking's watcher, when set, chains to ours)
            c.on_log = self._on_log  # reconnects follow: say if the broker refuses our cert
        if self._user_disconnect is not None:
            self._user_disconnect(rc)

    def _on_subscribe(
        self, c: mqtt.Client, u: Any, mid: int, rcs: list[ReasonCode], props: Any
    ) -> None:
        if mid != self._sub_mid:
            return  # a SUBACK of an earlier connection's request
        refused = [f for (f, _), rc in zip(self.subscriptions, rcs, strict=False) if rc.is_failure]
        if refused or len(rcs) != len(self.subscriptions):
            self.refused_filters = refused
            self._log.error(
                "%s: subscription refused by the broker: %s (%s)",
                self.client_id, ", ".join(refused) or "(count mismatch)",
                ", ".join(str(rc) for rc in rcs),
            )
            return
        self.refused_filters = []
        self.subscribed.set()

    def _on_log(self, c: mqtt.Client, u: Any, level: int, buf: str) -> None:
        # paho reports a failed read only here; a TLS alert means the broker refused our
        # certificate, which a reconnect on the backoff schedule will not cure by itself
        if level == mqtt.MQTT_LOG_ERR and _is_tls_alert(buf):
            self.tls_refusals += 1
            self.last_tls_error = buf.split(": ", 1)[-1]
            self._log.error(
                "%s: the broker refused TLS (client certificate %s): %s", self.client_id,
                self.params.cert_file or "none", self.last_tls_error,
            )

    def _on_publish(
        self, c: mqtt.Client, u: Any, mid: int, rc: ReasonCode, props: Any
    ) -> None:
        # Called with _out_message_mutex held (see publish()).
        done = self._pending.pop(mid, None)
        if rc.is_failure:
            self.refused_publishes += 1
        if done is not None:
            done(rc)
