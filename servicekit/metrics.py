"""Prometheus ``/metrics`` for every service, on prometheus-client.

Each service keeps its counters as plain numbers (read under its own locks) and turns them into
metric families at scrape time: :func:`service_registry` wraps that function in a collector, in
a registry of the service's own -- never prometheus-client's global default one, since tests run
several services in one process. :func:`serve` exposes a registry over HTTP,
:func:`metrics_text` renders it.

The family builders keep the sample names as the services have always exposed them: a counter
named ``x_total`` is exposed as ``x_total`` (and without a ``_created`` sample), label names
come out sorted, a family with no samples is left out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

__all__ = [
    "CollectorRegistry",
    "Families",
    "FamilyCollector",
    "Labels",
    "Metric",
    "MetricsServer",
    "Samples",
    "counter",
    "gauge",
    "metrics_text",
    "parse_metric",
    "percentile",
    "quantiles",
    "serve",
    "service_registry",
]

Labels = Mapping[str, str]
#: ``(labels, value)`` per series of a family
Samples = Iterable[tuple[Labels, float]]
#: what a service's families function returns (a generator, typically)
Families = Iterable[Metric]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q * (len(s) - 1))))
    return s[k]


def parse_metric(text: str, name: str) -> float | None:
    """The value of ``name`` (first series, labelled or not) in Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


# -- families ----------------------------------------------------------------------------------
def _series(samples: Samples) -> tuple[list[str], list[tuple[list[str], float]]]:
    rows = [(dict(labels), float(value)) for labels, value in samples]
    names = sorted(rows[0][0]) if rows else []
    for labels, _ in rows:
        if sorted(labels) != names:
            raise ValueError(f"every series of a family needs the labels {names}: {labels}")
    return names, [([labels[n] for n in names], value) for labels, value in rows]


def counter(name: str, help_text: str, samples: Samples) -> CounterMetricFamily:
    """A counter family; ``name`` must end in ``_total`` (the sample name, as exposed)."""
    if not name.endswith("_total"):
        raise ValueError(f"a counter's name ends in _total: {name}")
    names, rows = _series(samples)
    family = CounterMetricFamily(name, help_text, labels=names)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def gauge(name: str, help_text: str, samples: Samples) -> GaugeMetricFamily:
    names, rows = _series(samples)
    family = GaugeMetricFamily(name, help_text, labels=names)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def quantiles(
    name: str, help_text: str, samples: Iterable[tuple[Labels, Mapping[float, float]]]
) -> SummaryMetricFamily:
    """A summary of quantiles only (``{quantile: value}`` per series), no ``_sum``/``_count``:
    for values over a recent window, where a sum and a count would not be monotonic."""
    family = SummaryMetricFamily(name, help_text)
    for labels, by_q in samples:
        for q, value in by_q.items():
            family.add_sample(name, {**labels, "quantile": str(q)}, float(value))
    return family


class FamilyCollector(Collector):
    """Yields the families a service builds from its own counters, on every scrape."""

    def __init__(self, families: Callable[[], Families]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        for family in self._families():
            if family.samples:
                yield family


def service_registry(families: Callable[[], Families]) -> CollectorRegistry:
    """A registry of a service's own that holds one :class:`FamilyCollector` of ``families``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FamilyCollector(families))
    return registry


def metrics_text(registry: CollectorRegistry) -> str:
    """The registry in the Prometheus text format (what a scrape without ``Accept`` gets)."""
    return generate_latest(registry).decode("utf-8")


# -- HTTP --------------------------------------------------------------------------------------
@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint (prometheus-client's WSGI server on its own thread)."""

    server: WSGIServer
    thread: threading.Thread
    host: str
    port: int  # the bound port (asked for 0: the one the OS chose)

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the thread (idempotent)."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(timeout=5.0)
        self.server.server_close()


def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``registry`` on ``host:port`` (``port`` 0: any free port; see ``.port``)."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread, host, int(server.server_port))
