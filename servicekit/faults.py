"""Fault boundaries for message consumers: one message can never stop a service.

Theory of operation
-------------------
paho-mqtt runs every callback on its network thread, and an exception that escapes a callback
ends that thread: the process stays alive, looks healthy, and handles nothing more. After a
restart the broker redelivers the same un-acknowledged message from the persistent session,
and the service dies again (a poison pill). Two mechanisms make that impossible:

* :class:`MessageBoundary` wraps a service's ``on_message`` handler. Whatever the handler
  raises while handling one message (a validation bug, an ``OverflowError`` deep in a datetime
  conversion, a ``KeyError`` in the service's own code) is caught *for that message only*: the
  message is dead-lettered with the exception as the reason, counted, logged with its
  traceback, and the consumer goes on with the next message. ``KeyboardInterrupt`` and
  ``SystemExit`` are not caught.
* :class:`Liveness` turns "the loop stopped" into something visible: a service's readiness
  gauge is 1 only while every thread it depends on (paho's network thread, a writer) is alive,
  and its run loop exits with :class:`ServiceFailed` (the process exits non-zero, so its
  supervisor restarts it) when one has died.

Every consumer (ingest, alerting, and every later one) uses these two; none writes its own
try/except around a message.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt

from servicekit.clock import utcnow
from wardwire.models import DeadLetter, TechnicalEvent

__all__ = [
    "DEAD_LETTER_PAYLOAD_MAX",
    "Liveness",
    "MessageBoundary",
    "ServiceFailed",
    "dead_letter_for",
    "identity_mismatch_event",
]

log = logging.getLogger(__name__)

#: The refused payload is kept in the dead letter up to this many bytes.
DEAD_LETTER_PAYLOAD_MAX = 65536

#: handler(client, userdata, message); raises on a message it cannot handle
Handler = Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]
#: dead_letter(message, kind, reason): publish the dead letter (and release the message)
DeadLetterSink = Callable[[mqtt.MQTTMessage, str, str], None]


class ServiceFailed(RuntimeError):
    """A thread the service depends on has died: exit non-zero so a supervisor restarts us."""


def dead_letter_for(service: str, topic: str, payload: bytes, reason: str) -> DeadLetter:
    """The dead letter of one refused message (the payload kept, cut to 64 KiB)."""
    return DeadLetter(
        service=service,
        reason=reason[:2000],
        topic=topic,
        received_at=utcnow(),
        payload_b64=base64.b64encode(payload[:DEAD_LETTER_PAYLOAD_MAX]).decode(),
        payload_bytes=len(payload),
    )


def identity_mismatch_event(
    service: str, publisher: str, reason: str, at: datetime
) -> TechnicalEvent:
    """A payload that disagreed with its topic, reported against the *publisher* (the topic's
    gateway), never against the gateway or beds the payload names."""
    log.warning("%s: gateway %s: %s", service, publisher, reason)
    return TechnicalEvent(
        service=service, event="identity_mismatch", gateway_id=publisher, at=at, detail=reason
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:500]}" if text else type(exc).__name__


@dataclass
class MessageBoundary:
    """A paho ``on_message`` callback that never lets a message's exception escape.

    ``faults`` counts the messages whose handling raised, by exception type;
    ``sink_failures`` counts dead letters that could not even be published (the message then
    stays un-acknowledged, so the broker redelivers it on the next connection: nothing lost).
    """

    service: str
    handler: Handler
    dead_letter: DeadLetterSink
    faults: dict[str, int] = field(default_factory=dict)
    sink_failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.handler(client, userdata, msg)
        except Exception as exc:  # the fault boundary itself: dead-lettered, counted, logged
            name = type(exc).__name__
            with self._lock:
                self.faults[name] = self.faults.get(name, 0) + 1
            log.exception("%s: fault while handling a message on %s", self.service, msg.topic)
            try:
                self.dead_letter(msg, "fault", _describe(exc))
            except Exception:  # counted and logged; the broker keeps the un-acked message
                with self._lock:
                    self.sink_failures += 1
                log.exception("%s: could not dead-letter a message on %s", self.service, msg.topic)

    @property
    def faults_total(self) -> int:
        with self._lock:
            return sum(self.faults.values())


@dataclass
class Liveness:
    """The threads a service needs, checked by name: readiness is liveness.

    ``checks`` maps a name ("mqtt", "writer") to a function telling whether it is alive.
    ``ok()`` is what the readiness gauge shows; ``raise_if_dead()`` is called by the run loop.
    """

    service: str
    checks: dict[str, Callable[[], bool]] = field(default_factory=dict)

    def add(self, name: str, alive: Callable[[], bool]) -> None:
        self.checks[name] = alive

    def dead(self) -> list[str]:
        return [name for name, alive in self.checks.items() if not alive()]

    def ok(self) -> bool:
        return not self.dead()

    def raise_if_dead(self) -> None:
        dead = self.dead()
        if dead:
            raise ServiceFailed(f"{self.service}: {', '.join(dead)} stopped; exiting for a restart")
