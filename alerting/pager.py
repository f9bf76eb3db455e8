"""The pager sink: alert events out to a nurse-call or pager gateway over an HTTP webhook.

API (the service owns one sink per unit and feeds it every ``AlertEffect`` it publishes)::

    sink = PagerSink(url, policy=PagePolicy(), on_delivered=..., on_failed=...,
                     on_receipt=..., on_retry=None, headers={"Authorization": "Bearer ..."})
    sink.start()
    sink.submit(effect, role)      # -> Submitted (never blocks, never raises for a full queue)
    sink.stats()                   # -> PagerStats (a snapshot)
    left = sink.stop(drain_s=5.0)  # -> the event ids not delivered

Theory of operation
-------------------
Two parts, "plan, then do". ``PagePolicy.decide(effect, role)`` is pure: it says whether an
alert event is paged (a ``Page``, with its JSON body) or not (``Withheld``, with why). It pages
``raised``, ``worsened``, ``escalated`` and ``reminder``; it sends ``resolved`` as a *cancel* (a
pager that still shows a closed alert sends a nurse to a bed for nothing, and teaches the ward
to ignore pages); it sends nothing for ``updated``, ``acknowledged``, ``snoozed`` or ``receipt``
unless configured (``page_on``, ``cancel_on``). Data of generation ``test`` or ``demo`` is never
paged unless the policy allows that generation (``allow_generations``; ``PagePolicy.demo()``);
what that rule withheld is counted by generation. The body carries no patient identifier: the
alert has none, and the body is built field by field (``BODY_FIELDS``), never by dumping the
alert.

``PagerSink`` is the I/O shell: ``submit`` decides and enqueues (a bounded FIFO; when full the
new page is refused, counted, returned as ``Submitted.DROPPED`` and reported through
``on_failed``); one worker thread POSTs each page with httpx, in order, and retries a timeout,
a connection failure, 408, 425, 429 or 5xx on the one retry schedule (``servicekit.backoff``)
until the page's budget runs out: ``max_attempts`` attempts, and no attempt starting later
than ``max_age_s`` after the page was submitted (so a dead gateway reports every page within
about ``max_age_s`` instead of one budget after the other). Any other answer is final. Every
attempt of a page sends the same bytes and the same ``Idempotency-Key`` (the event id), so a
gateway that got an attempt whose answer was lost drops the repeat.

Callbacks (the owner's contract). All run on the worker thread, one at a time, in the order of
the outcomes, never inside ``submit`` (so the owner may hold its own lock while submitting and
take it again in a callback). An exception in a callback is logged and counted; the sink goes
on.

* ``on_delivered(event_id, status)``: the gateway answered 2xx. The first one after an
  ``on_failed`` is the recovery (``PagerStats.failing`` turns false).
* ``on_failed(event_id, reason)``: the page will not be delivered: its budget ran out, the
  gateway refused it for good (a 4xx), or the queue was full.
* ``on_receipt(event_id, receipt, role)``: the 2xx answer to a page (not to a cancel) carried
  ``{"receipt": "received" | "viewed" | "accepted"}``; called after ``on_delivered``. Receipts
  that arrive later, from the gateway's own callbacks, are commands on MQTT (not this module's).
* ``on_retry(event_id, attempt, reason, delay_s)`` (optional): attempt ``attempt`` (1-based)
  failed and the next follows in ``delay_s``; for logs and metrics.

Each queued event id ends in exactly one of ``on_delivered``, ``on_failed`` or ``stop()``'s
list; an event id submitted again while remembered (the last ``4 * max_queue`` queued) is
``Submitted.DUPLICATE`` and sent no more.

``stop(drain_s)`` keeps delivering (retries included) for at most ``drain_s`` and returns the
event ids still undelivered (queued, or abandoned mid-retry); they get no ``on_failed``. Pages
are not durable: a stopped sink loses what it holds and names it; a killed process cannot.

The HTTP contract is ``docs/pager.md``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from enum import StrEnum

import httpx

from alerting.core.episode import AlertEffect
from servicekit.backoff import Backoff
from wardwire.models import AlertEventType, Generation

__all__ = [
    "BODY_FIELDS",
    "RECEIPTS",
    "HoldReason",
    "Page",
    "PageAction",
    "PagePolicy",
    "PagerSink",
    "PagerStats",
    "Submitted",
    "Withheld",
]

log = logging.getLogger(__name__)

# -- the pure part: what is paged, and with which body ---------------------------------------

#: events paged by default: the alert needs someone now
PAGE_EVENTS = frozenset({
    AlertEventType.RAISED,
    AlertEventType.WORSENED,
    AlertEventType.ESCALATED,
    AlertEventType.REMINDER,
})
#: events sent as a cancel by default: the alert closed
CANCEL_EVENTS = frozenset({AlertEventType.RESOLVED})
#: receipts a gateway may return in its answer to a page
RECEIPTS = frozenset({"received", "viewed", "accepted"})
#: every key of a page's JSON body, in order (and nothing else, ever)
BODY_FIELDS = (
    "schema_version", "action", "event", "event_id", "alert_id", "unit", "bed", "priority",
    "level", "rule", "message", "role", "at", "generation",
)

JsonScalar = str | int | None


class PageAction(StrEnum):
    PAGE = "page"
    CANCEL = "cancel"  # the alert closed: clear it from the pager


class HoldReason(StrEnum):
    """Why an alert event was not paged."""

    EVENT = "event"  # the policy pages no such event (``updated``...)
    GENERATION = "generation"  # test or demo data, and the sink is not in demo mode


@dataclass(frozen=True, slots=True)
class Page:
    """One webhook call to make. ``key`` is the event id: the ``Idempotency-Key`` header."""

    key: str
    alert_id: str
    action: PageAction
    role: str | None
    body: dict[str, JsonScalar]

    def content(self) -> bytes:
        """The request body (compact JSON, UTF-8); the same bytes on every attempt."""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Withheld:
    key: str
    reason: HoldReason
    #: the event type (``reason`` event) or the generation (``reason`` generation)
    detail: str


@dataclass(frozen=True, slots=True)
class PagePolicy:
    """Which alert events are paged, which cancel a page, and which generations may page.

    ``real`` data always may; ``allow_generations`` adds others (a demo's own pager gateway
    allows ``demo``; a test may allow ``test``). Nothing else is configurable on purpose: the
    alert engine already decided priorities, escalation and who is notified.
    """

    page_on: frozenset[AlertEventType] = PAGE_EVENTS
    cancel_on: frozenset[AlertEventType] = CANCEL_EVENTS
    allow_generations: frozenset[Generation] = frozenset()

    def __post_init__(self) -> None:
        both = self.page_on & self.cancel_on
        if both:
            raise ValueError(f"an event either pages or cancels: {sorted(both)}")

    @classmethod
    def demo(cls) -> PagePolicy:
        """Demo mode: demo data pages too (for a demo's own pager gateway only)."""
        return cls(allow_generations=frozenset({Generation.DEMO}))

    def decide(self, effect: AlertEffect, role: str | None) -> Page | Withheld:
        """Page or not for ``effect``; ``role`` is who the escalation chain notifies now."""
        a = effect.alert
        if effect.at.tzinfo is None:
            raise ValueError("an alert effect's time must be aware (UTC)")
        at = effect.at.astimezone(UTC)
        # An effect from the engine always has its event id; the fallback keeps a real page
        # from being lost to bookkeeping, and is as stable across retries.
        key = effect.event_id or f"{a.alert_id}-{effect.event.value}-{at:%Y%m%dT%H%M%S%fZ}"
        if effect.event in self.page_on:
            action = PageAction.PAGE
        elif effect.event in self.cancel_on:
            action = PageAction.CANCEL
        else:
            return Withheld(key, HoldReason.EVENT, effect.event.value)
        if a.generation is not Generation.REAL and a.generation not in self.allow_generations:
            return Withheld(key, HoldReason.GENERATION, a.generation.value)
        body: dict[str, JsonScalar] = {
            "schema_version": 1,
            "action": action.value,
            "event": effect.event.value,
            "event_id": key,
            "alert_id": a.alert_id,
            "unit": a.unit,
            "bed": a.bed_id,
            "priority": a.priority.value,
            "level": a.level,
            "rule": a.rule,
            "message": a.message,
            "role": role,
            "at": at.isoformat().replace("+00:00", "Z"),
            "generation": a.generation.value,
        }
        return Page(key, a.alert_id, action, role, body)


# -- the shell: a bounded queue, one worker thread, HTTP with retries ------------------------

OnDelivered = Callable[[str, int], None]
OnFailed = Callable[[str, str], None]
OnReceipt = Callable[[str, str, str | None], None]
OnRetry = Callable[[str, int, str, float], None]

_RETRY_STATUS = frozenset({408, 425, 429})
_OWN_HEADERS = frozenset({"content-type", "idempotency-key", "wardwatch-attempt"})


class Submitted(StrEnum):
    """What ``submit`` did with an alert event."""

    QUEUED = "queued"
    NOT_PAGED = "not_paged"  # the policy pages no such event
    WITHHELD = "withheld"  # test or demo data outside demo mode
    DUPLICATE = "duplicate"  # this event id was queued before
    DROPPED = "dropped"  # the queue is full: reported through on_failed too
    CLOSED = "closed"  # the sink is stopping or stopped


@dataclass(frozen=True, slots=True)
class PagerStats:
    """A snapshot of the sink's counters (all since start, but ``waiting`` and ``failing``)."""

    waiting: int = 0  # queued or in flight now
    sent: int = 0  # delivered (2xx), pages and cancels
    failed_attempts: int = 0  # attempts that got no 2xx
    given_up: int = 0  # pages reported through on_failed (budget, 4xx)
    dropped: int = 0  # refused: queue full, or submitted after stop
    duplicates: int = 0
    left_at_stop: int = 0
    receipts: int = 0
    receipts_invalid: int = 0  # a receipt value outside RECEIPTS (logged, not reported)
    callback_errors: int = 0
    #: withheld by generation (``{"test": 3}``)
    withheld: dict[str, int] = field(default_factory=dict)
    #: not paged by event type (``{"updated": 40}``)
    not_paged: dict[str, int] = field(default_factory=dict)
    #: the last page given up, and nothing delivered since
    failing: bool = False


@dataclass(slots=True)
class _Counts:
    sent: int = 0
    failed_attempts: int = 0
    given_up: int = 0
    dropped: int = 0
    duplicates: int = 0
    left_at_stop: int = 0
    receipts: int = 0
    receipts_invalid: int = 0
    callback_errors: int = 0


@dataclass(slots=True)
class _Item:
    page: Page
    content: bytes
    submitted: float
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: int | None
    reason: str
    retry: bool
    response: httpx.Response | None = None


class PagerSink:
    """Deliver pages to ``url`` (POST), in order, with retries; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        on_delivered: OnDelivered,
        on_failed: OnFailed,
        on_receipt: OnReceipt | None = None,
        on_retry: OnRetry | None = None,
        policy: PagePolicy | None = None,
        backoff: Backoff | None = None,
        max_attempts: int = 8,
        max_age_s: float = 60.0,
        timeout_s: float = 5.0,
        max_queue: int = 1000,
        headers: Mapping[str, str] | None = None,
        http: httpx.Client | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``http``: a client the owner configured (TLS, proxies) and closes; by default the
        sink makes its own. ``headers``: added to every request (``Authorization``), never one
        of the sink's own. ``rng``: the backoff's jitter (seed it for tests)."""
        if httpx.URL(url).scheme not in ("http", "https"):
            raise ValueError(f"a pager URL is http(s)://, not {url!r}")
        if max_attempts < 1 or max_queue < 1 or max_age_s <= 0 or timeout_s <= 0:
            raise ValueError("max_attempts, max_queue, max_age_s and timeout_s must be positive")
        clash = {h.lower() for h in headers or {}} & _OWN_HEADERS
        if clash:
            raise ValueError(f"headers the sink sets itself: {sorted(clash)}")
        self.url, self.policy = url, policy or PagePolicy()
        self.backoff = backoff or Backoff()
        self.max_attempts, self.max_age_s, self.timeout_s = max_attempts, max_age_s, timeout_s
        self.max_queue = max_queue
        self._on_delivered, self._on_failed = on_delivered, on_failed
        self._on_receipt, self._on_retry = on_receipt, on_retry
        self._headers = {
            "Content-Type": "application/json", "User-Agent": "wardwatch-pager/1", **(headers or {})
        }
        self._http, self._own_http = http, http is None
        self._rng = rng or random.Random()
        self._cv = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._inflight: _Item | None = None
        self._notices: deque[tuple[str, str]] = deque(maxlen=max_queue)  # drops to report
        self._seen: OrderedDict[str, None] = OrderedDict()  # event ids queued, most recent
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._deadline: float | None = None  # set by stop(): when draining ends
        self._n = _Counts()
        self._withheld: dict[str, int] = {}
        self._not_paged: dict[str, int] = {}
        self._failing = False

    # -- the owner's side ----------------------------------------------------------------------
    def start(self) -> None:
        with self._cv:
            if self._thread is not None or self._stopping:
                raise RuntimeError("a pager sink starts once")
            if self._http is None:
                self._http = httpx.Client(timeout=self.timeout_s, follow_redirects=False)
            self._thread = threading.Thread(target=self._run, name="pager", daemon=True)
            self._thread.start()

    def submit(self, effect: AlertEffect, role: str | None) -> Submitted:
        """Decide and enqueue; thread-safe, never blocks on the network."""
        decision = self.policy.decide(effect, role)
        content = decision.content() if isinstance(decision, Page) else b""
        with self._cv:
            if isinstance(decision, Withheld):
                counts = self._withheld if decision.reason is HoldReason.GENERATION else (
                    self._not_paged)
                counts[decision.detail] = counts.get(decision.detail, 0) + 1
                return (Submitted.WITHHELD if decision.reason is HoldReason.GENERATION
                        else Submitted.NOT_PAGED)
            key = decision.key
            if self._stopping:
                self._n.dropped += 1
                log.error("page %s not sent: the pager sink is stopping", key)
                return Submitted.CLOSED
            if key in self._seen:
                self._n.duplicates += 1
                return Submitted.DUPLICATE
            if len(self._queue) >= self.max_queue:
                self._n.dropped += 1
                reason = f"dropped: the pager queue is full ({len(self._queue)} pages waiting)"
                log.error("page %s %s", key, reason)
                self._notices.append((key, reason))
                self._cv.notify_all()
                return Submitted.DROPPED
            self._seen[key] = None
            while len(self._seen) > 4 * self.max_queue:
                self._seen.popitem(last=False)
            self._queue.append(_Item(decision, content, time.monotonic()))
            self._cv.notify_all()
            return Submitted.QUEUED

    def stats(self) -> PagerStats:
        with self._cv:
            n = self._n
            return PagerStats(
                waiting=len(self._queue) + (self._inflight is not None),
                sent=n.sent,
                failed_attempts=n.failed_attempts,
                given_up=n.given_up,
                dropped=n.dropped,
                duplicates=n.duplicates,
                left_at_stop=n.left_at_stop,
                receipts=n.receipts,
                receipts_invalid=n.receipts_invalid,
                callback_errors=n.callback_errors,
                withheld=dict(self._withheld),
                not_paged=dict(self._not_paged),
                failing=self._failing,
            )

    def stop(self, drain_s: float = 5.0) -> list[str]:
        """Deliver what is queued for at most ``drain_s``, then stop; returns the event ids
        left undelivered (no ``on_failed`` for them). A second call returns ``[]``."""
        with self._cv:
            if self._stopping:
                return []
            self._stopping = True
            self._deadline = time.monotonic() + max(drain_s, 0.0)
            self._cv.notify_all()
            thread = self._thread
        if thread is not None:
            # an attempt's timeout is cut to the drain deadline, so this returns in time
            thread.join(max(drain_s, 0.0) + 1.0)
            if thread.is_alive():
                log.error("the pager worker did not stop within %.1f s", drain_s)
        with self._cv:
            items = list(self._queue)
            if self._inflight is not None:
                items.insert(0, self._inflight)
            left = [i.page.key for i in items]
            self._queue.clear()
            self._n.left_at_stop += len(left)
        if left:
            log.error("pager stopped with %d pages undelivered: %s", len(left), ", ".join(left))
        if self._own_http and self._http is not None and not (thread and thread.is_alive()):
            self._http.close()
        return left

    # -- the worker ----------------------------------------------------------------------------
    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _run(self) -> None:
        while True:
            with self._cv:
                while not (self._queue or self._notices or self._stopping):
                    self._cv.wait()
                notices = list(self._notices)
                self._notices.clear()
                item = None
                if self._queue and not self._past_deadline():
                    item = self._inflight = self._queue.popleft()
                stopping = self._stopping
            self._report_drops(notices)
            if item is not None:
                try:
                    self._deliver(item)
                except Exception as exc:  # a bug here must not stop paging for the unit
                    log.exception("page %s: the pager failed", item.page.key)
                    with self._cv:
                        self._n.given_up += 1
                        self._failing = True
                    self._call(self._on_failed, item.page.key, f"internal error: {exc!r}"[:200])
                with self._cv:
                    self._inflight = None
            elif stopping:
                return

    def _deliver(self, item: _Item) -> None:
        key = item.page.key
        while True:
            outcome = self._attempt(item)
            if outcome is None:  # the drain deadline came first: stop() reports it as left
                with self._cv:
                    self._queue.appendleft(item)
                    self._inflight = None
                return
            item.attempts += 1
            if outcome.status is not None and 200 <= outcome.status < 300:
                self._delivered(item, outcome)
                return
            with self._cv:
                self._n.failed_attempts += 1
            age = time.monotonic() - item.submitted
            delay = self.backoff.delay(item.attempts - 1, self._rng)
            if not outcome.retry or item.attempts >= self.max_attempts or (
                age + delay > self.max_age_s
            ):
                why = outcome.reason if not outcome.retry else (
                    f"{outcome.reason} (gave up after {item.attempts} attempts in {age:.1f} s)")
                with self._cv:
                    self._n.given_up += 1
                    self._failing = True
                log.error("page %s not delivered: %s", key, why)
                self._call(self._on_failed, key, why)
                return
            log.warning("page %s attempt %d failed (%s); next in %.2f s",
                        key, item.attempts, outcome.reason, delay)
            if self._on_retry is not None:
                self._call(self._on_retry, key, item.attempts, outcome.reason, delay)
            if not self._pause(delay):
                with self._cv:
                    self._queue.appendleft(item)
                    self._inflight = None
                return

    def _attempt(self, item: _Item) -> _Outcome | None:
        timeout = self.timeout_s
        with self._cv:
            if self._deadline is not None:
                timeout = min(timeout, self._deadline - time.monotonic())
        if timeout <= 0:
            return None
        assert self._http is not None
        headers = {**self._headers, "Idempotency-Key": item.page.key,
                   "Wardwatch-Attempt": str(item.attempts + 1)}
        try:
            r = self._http.post(self.url, content=item.content, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            return _Outcome(None, f"no answer within {timeout:.2f} s", True)
        except httpx.RequestError as exc:  # refused, reset, DNS: the gateway may come back
            return _Outcome(None, f"{type(exc).__name__}: {exc}"[:200], True)
        if 200 <= r.status_code < 300:
            return _Outcome(r.status_code, "delivered", False, r)
        retry = r.status_code in _RETRY_STATUS or r.status_code >= 500
        text = " ".join(r.text.split())[:200]
        return _Outcome(r.status_code, f"HTTP {r.status_code}" + (f": {text}" if text else ""),
                        retry)

    def _delivered(self, item: _Item, outcome: _Outcome) -> None:
        key, page = item.page.key, item.page
        with self._cv:
            self._n.sent += 1
            self._failing = False
        assert outcome.status is not None
        self._call(self._on_delivered, key, outcome.status)
        receipt = self._receipt(outcome.response)
        if receipt is not None and page.action is PageAction.PAGE and self._on_receipt:
            with self._cv:
                self._n.receipts += 1
            self._call(self._on_receipt, key, receipt, page.role)

    def _receipt(self, r: httpx.Response | None) -> str | None:
        """The synchronous receipt in a 2xx answer's JSON body, if any."""
        if r is None or not r.content:
            return None
        try:
            body = r.json()
        except ValueError:
            return None  # an answer without JSON carries no receipt
        value = body.get("receipt") if isinstance(body, dict) else None
        if value is None:
            return None
        if not isinstance(value, str) or value not in RECEIPTS:
            with self._cv:
                self._n.receipts_invalid += 1
            log.warning("pager gateway sent an unknown receipt %r", value)
            return None
        return str(value)

    def _pause(self, seconds: float) -> bool:
        """Wait out a retry delay, reporting drops meanwhile; False if stop()'s drain deadline
        came first."""
        wake = time.monotonic() + seconds
        while True:
            with self._cv:
                end = wake if self._deadline is None else min(wake, self._deadline)
                notices = list(self._notices)
                self._notices.clear()
                if not notices:
                    now = time.monotonic()
                    if now >= end:
                        return self._deadline is None or wake <= self._deadline
                    self._cv.wait(end - now)
                    continue
            self._report_drops(notices)

    def _report_drops(self, notices: list[tuple[str, str]]) -> None:
        for key, reason in notices:
            self._call(self._on_failed, key, reason)

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:  # the owner's bug must not stop paging (logged, counted)
            with self._cv:
                self._n.callback_errors += 1
            log.exception("pager callback %s raised", getattr(fn, "__name__", fn))
