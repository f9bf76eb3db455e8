"""The pager sink against a real HTTP server on a free loopback port.

The server follows a script (a status per request, or an answer held back on an event), and
records each request with its arrival time. Nothing here sleeps to synchronise: the tests wait on
the server's and the callbacks' condition variables, with deadlines. Delays are only compared
with each other (their order), never with an amount of wall-clock time.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

import pytest

from alerting.core.episode import AlertEffect
from alerting.pager import PagePolicy, PagerSink, Submitted
from servicekit.backoff import Backoff
from wardwire.models import Alert, AlertEventType, AlertKind, AlertState, Generation, Priority

AT = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
WAIT_S = 5.0
T = TypeVar("T")
#: fast, and without jitter where the tests compare the gaps between attempts
FAST = Backoff(initial_s=0.02, cap_s=0.2, jitter=0.5)


def effect(
    n: int = 1,
    event: AlertEventType = AlertEventType.RAISED,
    generation: Generation = Generation.REAL,
) -> AlertEffect:
    alert = Alert(
        alert_id="a-0123456789ab", unit="picu", bed_id="bed-03", alert_kind=AlertKind.CLINICAL,
        condition="pews", priority=Priority.HIGH,
        state=AlertState.RESOLVED if event is AlertEventType.RESOLVED else AlertState.ACTIVE,
        raised_at=AT, updated_at=AT, message="Bedside PEWS 9 (high)", generation=generation,
        rule="bedside_pews", level="high",
    )
    return AlertEffect(event, alert, AT, None, f"a-0123456789ab-{n}")


# -- the gateway ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    #: hold the answer until this is set (a gateway that does not answer in time)
    hold: threading.Event | None = None


@dataclass(frozen=True)
class Request:
    at: float
    headers: dict[str, str]
    body: bytes


@dataclass
class Gateway:
    server: ThreadingHTTPServer
    script: deque[Reply] = field(default_factory=deque)
    otherwise: Reply = field(default_factory=Reply)
    requests: list[Request] = field(default_factory=list)
    cv: threading.Condition = field(default_factory=threading.Condition)
    released: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/page"

    def wait_requests(self, n: int) -> list[Request]:
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.requests) >= n, WAIT_S), (
                f"{len(self.requests)} requests, expected {n}")
            return list(self.requests)

    def seen_keys(self) -> list[str]:
        with self.cv:
            return [r.headers["idempotency-key"] for r in self.requests]


def serve(port: int = 0) -> Gateway:
    gw: Gateway

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with gw.cv:
                gw.requests.append(Request(
                    time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body))
                reply = gw.script.popleft() if gw.script else gw.otherwise
                gw.cv.notify_all()
            if reply.hold is not None:
                reply.hold.wait(WAIT_S)
            with contextlib.suppress(OSError):  # the client may have given up meanwhile
                self.send_response(reply.status)
                self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(reply.body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    gw = Gateway(server)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    return gw


def close(gw: Gateway) -> None:
    gw.released.set()
    gw.server.shutdown()
    gw.server.server_close()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = serve()
    yield gw
    close(gw)


# -- the owner's callbacks -----------------------------------------------------------------------

@dataclass
class Calls:
    cv: threading.Condition = field(default_factory=threading.Condition)
    delivered: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    receipts: list[tuple[str, str, str | None]] = field(default_factory=list)
    retries: list[tuple[str, int, str, float]] = field(default_factory=list)

    def _add(self, into: list[T], item: T) -> None:
        with self.cv:
            into.append(item)
            self.cv.notify_all()

    def on_delivered(self, key: str, status: int) -> None:
        self._add(self.delivered, (key, status))

    def on_failed(self, key: str, reason: str) -> None:
        self._add(self.failed, (key, reason))

    def on_receipt(self, key: str, receipt: str, role: str | None) -> None:
        self._add(self.receipts, (key, receipt, role))

    def on_retry(self, key: str, attempt: int, reason: str, delay: float) -> None:
        self._add(self.retries, (key, attempt, reason, delay))

    def wait(self, pred: Callable[[], bool]) -> None:
        with self.cv:
            assert self.cv.wait_for(pred, WAIT_S), "callback not seen before the deadline"


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def make_sink(calls: Calls) -> Iterator[Callable[..., PagerSink]]:
    sinks: list[PagerSink] = []

    def make(url: str, **kw: object) -> PagerSink:
        options: dict[str, object] = {
            "backoff": FAST, "timeout_s": 1.0, "max_attempts": 10, "rng": random.Random(7),
            "on_receipt": calls.on_receipt, "on_retry": calls.on_retry, **kw,
        }
        sink = PagerSink(url, on_delivered=calls.on_delivered, on_failed=calls.on_failed,
                         **options)  # type: ignore[arg-type]
        sinks.append(sink)
        sink.start()
        return sink

    yield make
    for s in sinks:
        s.stop(0.0)


def gaps(requests: list[Request]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(requests)]


# -- delivery with retries -----------------------------------------------------------------------

def test_server_errors_are_retried_with_growing_delays_and_delivered_once(
    gateway: Gateway, calls: Calls, make_sink: Callable[..., PagerSink]
) -> None:
    gateway.script.extend([Reply(500), Reply(503), Reply(502)])
    gateway.otherwise = Reply(200, b'{"receipt": "received"}')
    sink = make_sink(gateway.url, backoff=Backoff(initial_s=0.04, cap_s=1.0, jitter=0.0),
                     headers={"Authorization": "Bearer t0ken"})
    assert sink.submit(effect(), "bedside_nurse") is Submitted.QUEUED
    calls.wait(lambda: bool(calls.receipts))

    reqs = gateway.wait_requests(4)
    assert calls.delivered == [("a-0123456789ab-1", 200)]
    assert calls.receipts == [("a-0123456789ab-1", "received", "bedside_nurse")]
    assert calls.failed == []
    # one page: the same key and the same bytes on every attempt, numbered attempts
    assert {r.headers["idempotency-key"] for r in reqs} == {"a-0123456789ab-1"}
    assert len({r.body for r in reqs}) == 1
    assert [r.headers["wardwatch-attempt"] for r in reqs] == ["1", "2", "3", "4"]
    assert reqs[0].headers["content-type"] == "application/json"
    assert reqs[0].headers["authorization"] == "Bearer t0ken"
    # the waits grow: as planned, and as the gateway saw them
    planned = [r[3] for r in calls.retries]
    assert [r[1] for r in calls.retries] == [1, 2, 3]
    assert planned == sorted(planned) and planned[0] < planned[-1]
    seen = gaps(reqs)
    assert seen == sorted(seen)
    assert sink.stop(1.0) == []
    assert len(gateway.requests) == 4  # nothing more went out
    s = sink.stats()
    assert (s.sent, s.failed_attempts, s.given_up, s.receipts, s.failing) == (1, 3, 0, 1, False)


def test_a_gateway_that_does_not_answer_in_time_is_retried(
    gateway: Gateway, calls: Calls, make_sink: Callable[..., PagerSink]
) -> None:
    gateway.script.extend([Reply(hold=gateway.released), Reply(hold=gateway.released)])
    sink = make_sink(gateway.url, timeout_s=0.2)
    sink.submit(effect(), None)
    calls.wait(lambda: bool(calls.delivered))
    assert calls.delivered == [("a-0123456789ab-1", 200)]
    assert [r[2] for r in calls.retries] == ["no answer within 0.20 s"] * 2
    assert gateway.seen_keys() == ["a-0123456789ab-1"] * 3
    assert sink.stats().sent == 1


def test_connection_refused_until_the_gateway_comes_up(
    calls: Calls, make_sink: Callable[..., PagerSink]
) -> None:
    with socket.socket() as s:  # a free port nobody listens on (yet)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = make_sink(f"http://127.0.0.1:{port}/page", max_attempts=50, max_age_s=30.0)
    sink.submit(effect(), None)
    calls.wait(lambda: len(calls.retries) >= 2)
    gw = serve(port)
    try:
        calls.wait(lambda: bool(calls.delivered))
        assert calls.delivered == [("a-0123456789ab-1", 200)]
        assert all("ConnectError" in r[2] for r in calls.retries)
        assert gw.seen_keys() == ["a-0123456789ab-1"]
        assert sink.stats().failed_attempts == len(calls.retries) >= 2
    finally:
        close(gw)


# -- giving up, and the recovery after it --------------------------------------------------------

def test_gives_up_after_max_attempts_then_recovers(
    gateway: Gateway, calls: Calls, make_sink: Callable[..., PagerSink]
) -> None:
    gateway.script.extend([Reply(500)] * 3)
    sink = make_sink(gateway.url, max_attempts=3)
    sink.submit(effect(1), "bedside_nurse")
    calls.wait(lambda: bool(calls.failed))
    [(key, reason)] = calls.failed
    assert key == "a-0123456789ab-1"
    assert reason.startswith("HTTP 500") and "gave up after 3 attempts" in reason
    assert gateway.seen_keys() == ["a-0123456789ab-1"] * 3
    assert sink.stats().failing and sink.stats().given_up == 1

    sink.submit(effect(2), "bedside_nurse")  # the gateway answers again: the recovery
    calls.wait(lambda: bool(calls.delivered))
    assert calls.delivered == [("a-0123456789ab-2", 200)]
    assert len(calls.failed) == 1
    assert not sink.stats().failing


def test_gives_up_when_the_page_is_too_old(
    gateway: Gateway, calls: Calls, make_sink: Callable[..., PagerSink]
) -> None:
    gateway.otherwise = Reply(503)
    sink = make_sink(gateway.url, max_attempts=1000, max_age_s=1.0,
                     backoff=Backoff(initial_s=0.05, cap_s=0.1, jitter=0.0))
    sink.submit(effect(), None)
    calls.wait(lambda: bool(calls.failed))
    assert "HTTP 503" in calls.failed[0][1]
    assert 2 <= len(gateway.requests) < 1000
    assert calls.delivered == []


def test_a_refusal_is_final(
    gateway: Gateway, calls: Calls, make_sink: Callable[..., PagerSink]
) -> None:
    gateway.script.append(Reply(400, b'{"error": "unknown unit"}'))
    sink = make_sink(gateway.url)
    sink.submit(effect(), None)
    calls.wait(lambda: bool(calls.failed))
    assert calls.failed == [("a-0123456789ab-1", 'HTTP 400: {"error": "unknown unit"}')]
    assert calls.retries == [] and len(gateway.requests) == 1
    assert sink.stats().given_up == 1


# -- what is sent, what is not -------------------------------------------------------------------

def test_test_data_never_reaches_the_gateway_and_receipts_come_only_for_pages(
    gateway: Gateway, calls: Calls, make_sink: Callable[..., PagerSink]
) -> None:
    gateway.otherwise = Reply(200, b'{"receipt": "viewed"}')
    gateway.script.append(Reply(200, b'{"receipt": "opened"}'))  # not a receipt we know
    sink = make_sink(gateway.url)
    assert sink.submit(effect(1, generation=Generation.TEST), None) is Submitted.WITHHELD
    assert sink.submit(effect(2), "bedside_nurse") is Submitted.QUEUED
    assert sink.submit(effect(3, AlertEventType.UPDATED), None) is Submitted.NOT_PAGED
    assert sink.submit(effect(4), "nurse_in_charge") is Submitted.QUEUED
    assert sink.submit(effect(5, AlertEventType.RESOLVED), "nurse_in_charge") is (
        Submitted.QUEUED)
    calls.wait(lambda: len(calls.delivered) == 3)
    assert gateway.seen_keys() == ["a-0123456789ab-2", "a-0123456789ab-4", "a-0123456789ab-5"]
    assert calls.receipts == [("a-0123456789ab-4", "viewed", "nurse_in_charge")]
    s = sink.stats()
    assert (s.withheld, s.not_paged, s.receipts, s.receipts_invalid) == (
        {"test": 1}, {"updated": 1}, 1, 1)


def test_demo_mode_pages_demo_data(
    gateway: Gateway, calls: Calls, make_sink: Callable[..., PagerSink]
) -> None:
    sink = make_sink(gateway.url, policy=PagePolicy.demo())
    assert sink.submit(effect(generation=Generation.DEMO), None) is Submitted.QUEUED
    calls.wait(lambda: bool(calls.delivered))
    assert b'"generation":"demo"' in gateway.wait_requests(1)[0].body


# -- the queue, and stopping ---------------------------------------------------------------------

def test_a_full_queue_drops_the_new_page_and_says_so(
    gateway: Gateway, calls: Calls, make_sink: Callable[..., PagerSink]
) -> None:
    gate = threading.Event()
    gateway.script.append(Reply(hold=gate))
    sink = make_sink(gateway.url, max_queue=2)
    sink.submit(effect(1), None)
    gateway.wait_requests(1)  # page 1 is in flight, held by the gateway
    assert [sink.submit(effect(n), None) for n in (2, 3, 4)] == [
        Submitted.QUEUED, Submitted.QUEUED, Submitted.DROPPED]
    assert sink.stats().dropped == 1 and sink.stats().waiting == 3
    gate.set()
    calls.wait(lambda: len(calls.delivered) == 3 and bool(calls.failed))
    assert [k for k, _ in calls.delivered] == [f"a-0123456789ab-{n}" for n in (1, 2, 3)]
    assert calls.failed == [("a-0123456789ab-4",
                             "dropped: the pager queue is full (2 pages waiting)")]
    assert "a-0123456789ab-4" not in gateway.seen_keys()


def test_stop_drains_what_is_queued(
    gateway: Gateway, calls: Calls, make_sink: Callable[..., PagerSink]
) -> None:
    gateway.script.append(Reply(500))
    sink = make_sink(gateway.url, backoff=Backoff(initial_s=0.3, cap_s=0.3, jitter=0.0))
    for n in (1, 2, 3):
        sink.submit(effect(n), None)
    calls.wait(lambda: bool(calls.retries))  # page 1 failed once, the rest wait behind it
    assert sink.stop(drain_s=WAIT_S) == []
    assert [k for k, _ in calls.delivered] == [f"a-0123456789ab-{n}" for n in (1, 2, 3)]
    assert sink.stats().left_at_stop == 0


def test_stop_reports_what_it_could_not_deliver(
    gateway: Gateway, calls: Calls, make_sink: Callable[..., PagerSink]
) -> None:
    gateway.otherwise = Reply(500)
    sink = make_sink(gateway.url, backoff=Backoff(initial_s=30.0, cap_s=30.0))
    for n in (1, 2, 3):
        sink.submit(effect(n), None)
    calls.wait(lambda: bool(calls.retries))  # page 1 now waits 15-30 s for its next attempt
    left = sink.stop(drain_s=0.2)
    assert left == [f"a-0123456789ab-{n}" for n in (1, 2, 3)]
    assert calls.failed == [] and calls.delivered == []
    assert gateway.seen_keys() == ["a-0123456789ab-1"]
    assert sink.stats().left_at_stop == 3
    assert sink.submit(effect(4), None) is Submitted.CLOSED
