"""Bedside gateway: device drivers, durable outbox, MQTT publisher, gateway health."""

__version__ = "0.1.0"
