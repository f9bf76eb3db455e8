"""Prometheus text exposition on a small HTTP endpoint (``/metrics``), for every service.

Hand-rolled (a dozen lines of the text format) rather than a dependency: each service keeps its
counters and renders them on each scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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


def render(metrics: list[tuple[str, str, str, float, dict[str, str]]]) -> str:
    """``(name, type, help, value, labels)`` rows -> Prometheus text format."""
    out: list[str] = []
    seen: set[str] = set()
    for name, kind, help_text, value, labels in metrics:
        if name not in seen:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            seen.add(name)
        lab = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        out.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")
    return "\n".join(out) + "\n"


class MetricsServer:
    """Serves ``/metrics`` from a render callback on 127.0.0.1 (or ``host``)."""

    def __init__(self, port: int, collect: Callable[[], str], host: str = "127.0.0.1") -> None:
        collect_fn = collect

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = collect_fn().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # scrapes are not news

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
