"""The service kit's metrics: families built from plain counters at scrape time, a registry per
service, the text format, and an HTTP endpoint on any free port that stops cleanly."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client import REGISTRY

from servicekit.metrics import (
    Families,
    counter,
    gauge,
    metrics_text,
    parse_metric,
    percentile,
    quantiles,
    serve,
    service_registry,
)


class Counters:
    def __init__(self) -> None:
        self.received = 0
        self.reasons: dict[str, int] = {}

    def families(self) -> Families:
        w = {"worker": "w1"}
        yield counter("demo_received_total", "messages received", [(w, self.received)])
        yield counter(
            "demo_dead_lettered_total",
            "dead letters",
            [({**w, "reason": k}, n) for k, n in sorted(self.reasons.items())],
        )
        yield gauge("demo_ready", "1 when ready", [(w, 1)])
        yield quantiles("demo_latency_seconds", "latency", [(w, {0.5: 0.25, 0.99: 1.5})])


def test_text_keeps_the_sample_names_and_reads_the_counters_at_every_scrape() -> None:
    c = Counters()
    registry = service_registry(c.families)
    text = metrics_text(registry)
    assert text.splitlines() == [
        "# HELP demo_received_total messages received",
        "# TYPE demo_received_total counter",
        'demo_received_total{worker="w1"} 0.0',
        # a family without samples is left out (as before: no HELP/TYPE for nothing)
        "# HELP demo_ready 1 when ready",
        "# TYPE demo_ready gauge",
        'demo_ready{worker="w1"} 1.0',
        "# HELP demo_latency_seconds latency",
        "# TYPE demo_latency_seconds summary",
        'demo_latency_seconds{quantile="0.5",worker="w1"} 0.25',
        'demo_latency_seconds{quantile="0.99",worker="w1"} 1.5',
    ]
    assert "_created" not in text
    c.received = 7
    c.reasons["schema"] = 2
    text = metrics_text(registry)
    assert parse_metric(text, "demo_received_total") == 7
    assert 'demo_dead_lettered_total{reason="schema",worker="w1"} 2.0' in text.splitlines()


def test_registries_are_per_service_never_the_global_one() -> None:
    a, b = Counters(), Counters()
    ra, rb = service_registry(a.families), service_registry(b.families)  # same names: no clash
    a.received = 3
    assert parse_metric(metrics_text(ra), "demo_received_total") == 3
    assert parse_metric(metrics_text(rb), "demo_received_total") == 0
    assert ra is not REGISTRY and REGISTRY.get_sample_value("demo_received_total") is None


def test_family_builders_refuse_what_would_change_names_or_mix_labels() -> None:
    with pytest.raises(ValueError, match="_total"):
        counter("demo_received", "no suffix", [({}, 1)])
    with pytest.raises(ValueError, match="labels"):
        gauge("demo_g", "mixed", [({"a": "1"}, 1), ({"b": "2"}, 2)])
    # label values are escaped; label names come out sorted
    g = gauge("demo_g", "h", [({"z": "1", "a": 'say "hi"\n'}, 1)])
    assert g.samples[0].labels == {"a": 'say "hi"\n', "z": "1"}
    text = metrics_text(service_registry(lambda: [g]))
    assert 'demo_g{a="say \\"hi\\"\\n",z="1"} 1.0' in text


def test_server_on_any_free_port_serves_and_stops() -> None:
    c = Counters()
    server = serve(service_registry(c.families), 0)
    try:
        assert server.port > 0 and server.host == "127.0.0.1"
        c.received = 5
        r = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert parse_metric(r.text, "demo_received_total") == 5
    finally:
        server.stop()
    assert not server.thread.is_alive()
    server.stop()  # idempotent
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=2)
    with socket.socket() as s:  # nothing listens there any more (the scrape left a TIME_WAIT)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", server.port))
        s.listen()


def test_parse_metric_and_percentile() -> None:
    text = 'a_total{x="1"} 3.0\na 4\nab 5\n'
    assert parse_metric(text, "a_total") == 3.0
    assert parse_metric(text, "a") == 4.0
    assert parse_metric(text, "b") is None
    assert percentile([], 0.5) == 0.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([3.0, 1.0, 2.0], 0.99) == 3.0
