"""The gateway's ``/metrics`` (``[metrics] port``): what its status messages carry, for a scraper.

Per device: the drivers' counters (readings, frames rejected, reconnects, values kept as
invalid, re-timed, refused, dropped) and its state; per gateway: the outbox (depth, dropped,
quarantined), batches published and refused by the broker, and whether the broker is connected.
Read at scrape time under the same locks the status messages use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_agent.drivers import device_counters
from servicekit.metrics import CollectorRegistry, Families, counter, gauge, service_registry
from wardwire.models import DeviceState

if TYPE_CHECKING:
    from edge_agent.agent import EdgeAgent

#: device counter -> (metric name, help)
DEVICE_COUNTERS = {
    "readings": ("wardwatch_edge_device_readings_total", "values read from the device"),
    "frames_rejected": (
        "wardwatch_edge_device_frames_rejected_total", "frames the parser rejected (line noise)"
    ),
    "reconnects": ("wardwatch_edge_device_reconnects_total", "links lost and reopened"),
    "values_invalid": (
        "wardwatch_edge_device_values_invalid_total", "implausible values kept as invalid"
    ),
    "values_retimed": (
        "wardwatch_edge_device_values_retimed_total",
        "values stamped with the gateway's time (implausible device clock)",
    ),
    "values_refused": (
        "wardwatch_edge_device_values_refused_total", "values the wire contract cannot carry"
    ),
    "values_dropped": ("wardwatch_edge_device_values_dropped_total", "values dropped"),
}


def edge_families(agent: EdgeAgent) -> Families:
    gw = {"gateway": agent.cfg.gateway.id}
    rows: dict[str, list[tuple[dict[str, str], float]]] = {k: [] for k in DEVICE_COUNTERS}
    states: list[tuple[dict[str, str], float]] = []
    for d in agent.drivers:
        labels = {**gw, "device": d.device.id}
        with d.lock:
            counters = device_counters(d.health)
            state = d.health.state
        for key in DEVICE_COUNTERS:
            rows[key].append((labels, counters[key]))
        states.extend(
            ({**labels, "state": s.value}, float(s is state)) for s in DeviceState
        )
    for key, (name, help_text) in DEVICE_COUNTERS.items():
        yield counter(name, help_text, rows[key])
    yield gauge("wardwatch_edge_device_state", "1 for the device's current state", states)
    stats = agent.outbox.stats()
    yield gauge(
        "wardwatch_edge_outbox_depth", "observations held in the outbox", [(gw, stats.depth)]
    )
    yield counter(
        "wardwatch_edge_outbox_dropped_total",
        "observations dropped or rejected by the outbox's overflow policy",
        [(gw, stats.dropped + stats.rejected)],
    )
    yield gauge(
        "wardwatch_edge_outbox_quarantined", "outbox rows set aside as unreadable",
        [(gw, stats.quarantined)],
    )
    yield counter(
        "wardwatch_edge_batches_published_total", "batches the broker acknowledged",
        [(gw, agent.published_batches)],
    )
    yield counter(
        "wardwatch_edge_batches_refused_total", "batches the broker refused (kept in the outbox)",
        [(gw, agent.refused_batches)],
    )
    connected = agent.mqtt is not None and agent.mqtt.connected.is_set()
    yield gauge("wardwatch_edge_broker_connected", "1 while connected to the broker",
                [(gw, float(connected))])
    yield gauge("wardwatch_edge_broker_refused",
                "1 while the broker refuses this gateway since start (TLS or credentials; "
                "readings are kept in the outbox)",
                [(gw, float(agent.broker_refused is not None))])


def edge_registry(agent: EdgeAgent) -> CollectorRegistry:
    return service_registry(lambda: edge_families(agent))
