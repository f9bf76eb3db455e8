"""Listening for the registry's change events of one unit (``wardwire.models.ContextChanged``).

A service that reads its unit context from the registry re-reads it periodically; with a
:class:`ContextChanges` listener it re-reads as soon as the registry says the unit changed.
The listener has its own small MQTT connection (a plain subscription, no manual acks), so the
service's data connection and its acknowledgement discipline stay as they are.

The event is a hint, never data: it names ids only, and whatever it says the service reads the
context from the registry. A payload that is not a valid ``ContextChanged`` of this unit is
logged and counted (``malformed``) and still wakes the reader (a re-read is harmless, a missed
change is not). Missing an event costs at most one refresh period: the periodic re-read stays.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from servicekit.mqtt import MqttParams, MqttSession
from wardwire import topics
from wardwire.models import ContextChanged, validation_summary

__all__ = ["ContextChanges"]

log = logging.getLogger("servicekit.changes")


class ContextChanges:
    """``changed`` is set when an event for ``site``/``unit`` arrives; the reader clears it when
    it re-reads. ``received`` and ``malformed`` count events (metrics)."""

    def __init__(self, params: MqttParams, client_id: str, site: str, unit: str, *,
                 root: str = topics.ROOT) -> None:
        self.site, self.unit = site, unit
        self.topic = topics.context_changed(site, unit, root=root)
        self.changed = threading.Event()
        self.received = 0
        self.malformed = 0
        self.last: ContextChanged | None = None
        self.session = MqttSession(
            params, client_id, subscriptions=[(self.topic, 1)], on_message=self._on_message,
            log_name="servicekit.changes",
        )

    @property
    def subscribed(self) -> threading.Event:
        return self.session.subscribed

    def start(self) -> None:
        """Connect in the background (the service runs whether or not the broker is there)."""
        self.session.start_in_background()

    def stop(self) -> None:
        self.session.stop()

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            event = ContextChanged.model_validate_json(bytes(msg.payload))
        except ValidationError as exc:
            self.malformed += 1
            log.error("malformed change event on %s (re-reading anyway): %s", msg.topic,
                      validation_summary(exc))
        else:
            if (event.site, event.unit) != (self.site, self.unit):
                self.malformed += 1
                log.error("change event on %s names %s/%s (re-reading anyway)", msg.topic,
                          event.site, event.unit)
            else:
                self.received += 1
                self.last = event
        self.changed.set()
