"""The registry's one MQTT connection (``wardwatch registry serve --mqtt``).

What the registry says on the broker goes through here: :class:`~wardwire.models.ContextChanged`
events (``registry.events``), and what other parts of the registry need of the broker (alert
commands on behalf of an authenticated nurse, dynamic-security requests for gateway
enrolment) use the same connection.

The connection is the services' kit (``servicekit.mqtt.MqttSession``): persistent session, TLS
when a CA is given, reconnects with jittered backoff on paho's thread. A publish made while the
broker is away is queued by paho (QoS 1) and sent on reconnect; :meth:`RegistryBroker.publish`
never blocks a request on the broker. ``published`` / ``refused`` count what the broker answered
(the serve process's metrics).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from paho.mqtt.reasoncodes import ReasonCode

from registry.enroll import BrokerTarget, DynsecChannel
from servicekit import dynsec
from servicekit.mqtt import MqttParams, MqttSession
from wardwire import topics
from wardwire.models import AlertCommand, ChartedSet, ContextChanged

__all__ = ["RegistryBroker"]

log = logging.getLogger("registry.broker")


class RegistryBroker:
    """The registry's broker session. ``start()`` connects in the background (the API serves
    whether or not the broker is there); ``stop()`` disconnects."""

    def __init__(self, params: MqttParams, *, client_id: str | None = None,
                 root: str = topics.ROOT) -> None:
        self.root = root
        # gateway enrolment (registry.enroll): dynamic-security requests on this connection,
        # their answers matched by correlation data
        self.dynsec = DynsecChannel()
        self.session = MqttSession(
            params, client_id or f"registry-{socket.gethostname()}"[:64],
            log_name="registry.broker",
            subscriptions=[(dynsec.RESPONSE_TOPIC, 1)],
            on_message=self.dynsec.on_message,
        )
        self.dynsec.session = self.session
        self._lock = threading.Lock()
        self.published = 0
        self.refused = 0

    @property
    def connected(self) -> bool:
        return self.session.connected.is_set()

    def start(self) -> None:
        self.session.start_in_background()

    def stop(self) -> None:
        self.session.stop()

    def control(
        self, commands: Sequence[Mapping[str, Any]], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Run dynamic-security commands as the registry identity (``registry.enroll``)."""
        return self.dynsec.control(commands, timeout)

    def target(self) -> BrokerTarget:
        """Where a gateway enrolled by this registry connects, by default: this broker."""
        p = self.session.params
        return BrokerTarget(host=p.host, port=p.port,
                            ca_file=str(p.ca_file) if p.ca_file else None, topic_root=self.root)

    def _done(self, what: str) -> Callable[[ReasonCode], None]:
        def done(rc: ReasonCode) -> None:
            with self._lock:
                if rc.is_failure:
                    self.refused += 1
                    log.error("the broker refused %s: %s", what, rc)
                else:
                    self.published += 1
        return done

    def _publish_confirmed(self, topic: str, payload: str, what: str, timeout: float) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK; raise if not connected, if paho
        cannot send it, if the broker refuses it or does not answer within ``timeout``."""
        if not self.connected:
            raise ConnectionError("the registry is not connected to the broker")
        done = threading.Event()
        answer: list[ReasonCode] = []

        def completed(rc: ReasonCode) -> None:
            answer.append(rc)
            done.set()

        info = self.session.publish(topic, payload, qos=1, on_done=completed)
        if info.rc not in (0,):
            raise ConnectionError(f"the {what} could not be sent (paho rc {info.rc})")
        if not done.wait(timeout):
            raise TimeoutError(f"the broker did not confirm the {what} within {timeout} s")
        if answer[0].is_failure:
            raise PermissionError(f"the broker refused the {what}: {answer[0]}")

    def publish_command(self, site: str, unit: str, command: AlertCommand,
                        timeout: float = 5.0) -> None:
        """A nurse's alert command (``POST /units/…/alerts/…``) to the unit's alert engine; waits
        for the broker's answer so the nurse is told at once whether it went (raises otherwise:
        the API answers 503 with the reason, and the nurse tries again)."""
        self._publish_confirmed(topics.alert_commands(site, unit, root=self.root),
                                command.model_dump_json(), "command", timeout)

    def publish_chart(self, site: str, unit: str, charted: ChartedSet,
                      timeout: float = 5.0) -> None:
        """A nurse's charted set (``POST /units/…/charted-sets``) on the unit's charting topic
        (ingest stores it, the alert engine scores it); waits for the broker's PUBACK like
        :meth:`publish_command` (raises otherwise: 503, nothing audited, the nurse tries
        again)."""
        self._publish_confirmed(topics.charting(site, unit, root=self.root),
                                charted.model_dump_json(), "charted set", timeout)

    def publish_change(self, event: ContextChanged) -> None:
        """Publish a unit's change event (QoS 1, not retained)."""
        topic = topics.context_changed(event.site, event.unit, root=self.root)
        self.session.publish(
            topic, event.model_dump_json(), qos=1,
            on_done=self._done(f"the change event of {event.site}/{event.unit}"),
        )
