"""Live fuzz (issue 8): thousands of valid and hostile payloads through real mosquitto, ingest,
alerting and influxd; every one must end where the intended behaviour says.

``WARDWATCH_FUZZ_N`` payloads (default 3,000; ``WARDWATCH_FUZZ_SEED``, default 8) are generated
by ``tests/helpers/fuzz.py: LiveFuzzer`` and published QoS 1 on the gateways' ``obs`` topics:
valid ``ObservationBatch`` es of registered devices (boundary values, implausible values as
``quality=invalid`` with a ``quality_reason``, re-timed values, times at both edges of the wire
range written with UTC offsets up to ±14:00), batches mixing known and unknown devices, and
hostile payloads: ``"value": true`` / ``"100"``, ``"seq": "7"``, times in the years 0001
(+14:00), 1500, 1700, 2200 and 9999 (-14:00), leap seconds, NaN/Infinity literals, duplicate
and unknown keys, structured and byte-level mutations, a ``gateway_id`` disagreeing with the
topic, unregistered gateways, another generation, a ``seq`` beyond int64, garbage bytes, an
empty payload and payloads of 1-4 MB.

The expected behaviour (docs/architecture.md, "Fault boundaries"), decided per payload by
``tests/helpers/fuzz.py: expected_fate`` from the wire contract and the ward file only:

1. **Both services stay up**: ingest's and alerting's threads are alive at the end, both are
   ready (readiness is liveness), ingest's ``/metrics`` answers with ``ready 1`` and
   ``stats()`` works, and both stop cleanly when asked.
2. **Every valid observation is stored**, exactly once per series and time (bed, device,
   param, source, ns), with its value, quality, quality_reason, time_source and device_time.
3. **Nothing else is stored**: the number of points equals the number of valid observations,
   no ``wave`` points, no point outside [2000, 2100).
4. **Every payload ingest cannot store is dead-lettered** on ``topics.dead_letter("ingest")``
   with a non-empty reason, once, matched by topic and payload (cut to 64 KiB) and its size:
   contract failures, identity mismatches, unknown gateways, another generation; a batch with
   unknown devices yields one ``unknown_device`` dead letter *and* its known devices' points;
   a ``seq`` beyond int64 is refused by the contract (or, if the contract let it through, by
   InfluxDB: those points are dead-lettered as ``influx_refused``).
   No other dead letters. Ingest's counters agree.
5. **Alerting dead-letters what it cannot use** on ``topics.dead_letter("alerting")``: every
   payload that fails the contract and every payload whose ``gateway_id`` disagrees with its
   topic (the topic is the publisher's identity: such a payload must never be scored). It
   ignores (without a dead letter) unregistered gateways, other generations, unknown devices.
6. **Alerting keeps scoring**: after the fuzz it still publishes score updates, and a valid
   batch of bed b1's device with current times moves b1's score (its values become the
   score's inputs), whatever the fuzz sent before, including values stamped in the future.
7. The generator and the contract agree on what every non-mutant payload is (e.g. the contract
   must refuse ``"value": true``).

All checks run and are reported together (``FuzzReport.failures``). Every wait is bounded
(``tests/helpers/wait.py``): it ends when its target is reached, or when nothing has moved for
``IDLE_S`` seconds. ``bench/fuzz_live.py`` runs the same at 100,000 payloads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from pydantic import ValidationError

from ingest.core import WardIndex
from ingest.service import IngestOptions, IngestService
from servicekit.faults import DEAD_LETTER_PAYLOAD_MAX
from servicekit.metrics import parse_metric
from servicekit.mqtt import connect_blocking, make_client
from tests.helpers.alerting import alerting_service
from tests.helpers.fuzz import (
    FUZZ_WARD,
    SITE,
    UNIT,
    Fate,
    LiveCase,
    LiveFuzzer,
    PointKey,
    expected_fate,
    ns,
)
from tests.helpers.mqtt import Collector, collector, params
from tests.helpers.wait import wait_until
from wardwatch.devstack import Influx, Mosquitto, Stack
from wardwire import topics
from wardwire.models import (
    WIRE_TIME_MAX,
    WIRE_TIME_MIN,
    DeadLetter,
    Generation,
    Observation,
    ObservationBatch,
    ScoreUpdate,
)

pytestmark = pytest.mark.integration

N = int(os.environ.get("WARDWATCH_FUZZ_N", "3000"))
SEED = int(os.environ.get("WARDWATCH_FUZZ_SEED", "8"))
#: a wait gives up when nothing it watches has moved for this long
IDLE_S = 10.0
#: publishes in flight at most (paho's packet ids are 16 bits)
PUBLISH_WINDOW = 10_000

#: a dead letter's identity: (topic, sha256 of the kept payload, the payload's full size)
DlKey = tuple[str, str, int]


def dl_key(topic: str, payload: bytes) -> DlKey:
    kept = payload[:DEAD_LETTER_PAYLOAD_MAX]
    return topic, hashlib.sha256(kept).hexdigest(), len(payload)


@dataclass
class FuzzReport:
    counts: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: Callable[[], str] | str = "") -> bool:
        if not ok:
            text = detail() if callable(detail) else detail
            self.failures.append(f"{name}: {text}")
        return ok


class Runner:
    """A thread running a service's ``run()``, keeping what it raised."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        self.errors: list[BaseException] = []

        def run() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - kept and reported by the test
                self.errors.append(exc)

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()


def bounded_wait(
    progress: Callable[[], tuple[int, ...]],
    done: Callable[[tuple[int, ...]], bool],
    max_s: float,
    idle_s: float = IDLE_S,
    interval: float = 0.2,
) -> bool:
    """Wait until ``done(progress())``, or until ``progress()`` stopped changing for
    ``idle_s`` (or ``max_s`` passed). Returns whether ``done`` was reached."""
    state: dict[str, Any] = {"last": None, "since": time.monotonic(), "done": False}

    def pred() -> bool:
        now = progress()
        if done(now):
            state["done"] = True
            return True
        if now != state["last"]:
            state["last"], state["since"] = now, time.monotonic()
        return time.monotonic() - state["since"] > idle_s

    try:
        wait_until(pred, timeout=max_s, interval=interval)
    except TimeoutError:
        pass
    return bool(state["done"])


def stored_points(influx: Influx, db: str) -> tuple[dict[PointKey, dict[str, Any]], int]:
    """Every ``obs`` point as key -> fields, and the number of rows read (duplicates would
    show as rows > keys)."""
    q = (
        'SELECT "value","quality","quality_reason","time_source","device_time" FROM "obs" '
        'GROUP BY "bed","device","param","source"'
    )
    r = httpx.post(
        f"{influx.url}/query",
        data={"q": q, "db": db, "epoch": "ns"},
        auth=("admin", influx.admin_password),
        timeout=120,
    )
    r.raise_for_status()
    res = r.json()["results"][0]
    assert "error" not in res, res
    out: dict[PointKey, dict[str, Any]] = {}
    rows = 0
    for s in res.get("series", []):
        assert not s.get("partial"), "InfluxDB cut the result (max-row-limit)"
        t = s["tags"]
        cols = s["columns"]
        for v in s["values"]:
            row = dict(zip(cols, v, strict=True))
            rows += 1
            key = (t["bed"], t["device"], t["param"], t["source"], int(row["time"]))
            out[key] = {
                k: row.get(k)
                for k in ("value", "quality", "quality_reason", "time_source", "device_time")
            }
    return out, rows


def dead_letters(col: Collector, service: str, report: FuzzReport) -> list[tuple[DlKey, str]]:
    """The dead letters received, as (key, reason); each must be a valid DeadLetter."""
    with col.cond:
        raw = list(col.messages)
    out: list[tuple[DlKey, str]] = []
    bad = 0
    for _, payload in raw:
        try:
            dl = DeadLetter.model_validate_json(payload)
        except ValidationError:
            bad += 1
            continue
        kept = base64.b64decode(dl.payload_b64)
        out.append(((dl.topic, hashlib.sha256(kept).hexdigest(), dl.payload_bytes), dl.reason))
        if dl.service != service:
            bad += 1
    report.check(
        f"{service}_dead_letters_are_wire_valid",
        bad == 0,
        f"{bad} of {len(raw)} dead letters are not valid DeadLetters of {service!r}",
    )
    return out


def _describe(cases: list[LiveCase], idx: list[int], limit: int = 8) -> str:
    by = Counter(cases[i].label for i in idx)
    return ", ".join(f"{label} x{n}" for label, n in by.most_common(limit))


def compare_dead_letters(
    service: str,
    got: list[tuple[DlKey, str]],
    expected: list[tuple[DlKey, int]],
    cases: list[LiveCase],
    report: FuzzReport,
) -> tuple[int, int]:
    """Multiset comparison of dead letters by key; returns (missing, unexpected)."""
    want = Counter(k for k, _ in expected)
    have = Counter(k for k, _ in got)
    missing = want - have
    extra = have - want
    miss_idx = [i for k, i in expected if k in missing]
    report.check(
        f"{service}_dead_letters_all_there",
        not missing,
        lambda: (
            f"{sum(missing.values())} of {sum(want.values())} expected dead letters "
            f"missing; payloads: {_describe(cases, miss_idx)}"
        ),
    )
    extra_reasons = Counter(r.split(":", 1)[0] for k, r in got if k in extra)
    report.check(
        f"{service}_no_other_dead_letters",
        not extra,
        lambda: f"{sum(extra.values())} unexpected dead letters, reasons {dict(extra_reasons)}",
    )
    empty = [r for _, r in got if not r.strip()]
    report.check(
        f"{service}_dead_letters_have_reasons",
        not empty,
        f"{len(empty)} dead letters without a reason",
    )
    return sum(missing.values()), sum(extra.values())


def _metric(text: str, name: str) -> float | None:
    return parse_metric(text, name)


def run_fuzz(
    broker: Mosquitto,
    influx: Influx,
    db: str,
    *,
    n: int = N,
    seed: int = SEED,
    log: Callable[[str], None] = lambda _m: None,
) -> FuzzReport:
    """Run the live fuzz against a broker and a database (which must exist) and check it."""
    t_start = time.monotonic()
    report = FuzzReport()
    c = report.counts
    root = f"z{uuid.uuid4().hex[:8]}/v1"
    ingest = IngestService(
        params(broker, "ingest"),
        WardIndex(FUZZ_WARD),
        IngestOptions(
            influx_url=influx.url,
            influx_db=db,
            influx_user="ingest",
            influx_password=influx.writer_password,
            topic_root=root,
            worker_id=f"ingest-fz-{uuid.uuid4().hex[:6]}",
            linger_s=0.05,
            metrics_port=0,
            drain_timeout_s=3.0,
        ),
    )
    alerting = alerting_service(broker, FUZZ_WARD, root, tick_s=0.2, client_prefix="alerting-fz")
    dlq_i = collector(broker, "admin", [topics.dead_letter("ingest", root=root)])
    dlq_a = collector(broker, "admin", [topics.dead_letter("alerting", root=root)])
    scores = collector(broker, "admin", [topics.score(SITE, UNIT, "+", root=root)])
    runners = [Runner("ingest", ingest.run), Runner("alerting", alerting.run)]
    pub = make_client(
        replace(params(broker, "admin"), session_expiry_s=0),
        client_id=f"fuzz-pub-{uuid.uuid4().hex[:6]}",
    )
    pub.max_inflight_messages_set(200)
    connect_blocking(pub, params(broker, "admin"))
    try:
        assert ingest.ready.wait(15), "ingest did not subscribe"
        assert alerting.ready.wait(15), "alerting did not subscribe"

        # -- generate and judge ------------------------------------------------------------
        now = datetime.now(UTC)
        cases = LiveFuzzer(seed, now).cases(n)
        fates: list[Fate] = [expected_fate(x) for x in cases]
        disagree = [
            i for i, (x, f) in enumerate(zip(cases, fates, strict=True)) if not x.agrees(f.category)
        ]
        report.check(
            "generator_and_contract_agree",
            not disagree,
            lambda: (
                f"{len(disagree)} payloads: "
                + ", ".join(f"{cases[i].label} is {fates[i].category}" for i in disagree[:8])
            ),
        )
        expected_points: dict[PointKey, list[dict[str, Any]]] = {}
        for f in fates:
            for key, fields in f.points:
                expected_points.setdefault(key, []).append(fields)
        topic = {
            gw: topics.gateway_obs(SITE, UNIT, gw, root=root) for gw in {x.gateway for x in cases}
        }
        want_i = [
            (dl_key(topic[x.gateway], x.payload), x.index)
            for x, f in zip(cases, fates, strict=True)
            for _ in f.ingest_dead_letters
        ]
        want_a = [
            (dl_key(topic[x.gateway], x.payload), x.index)
            for x, f in zip(cases, fates, strict=True)
            if f.alerting_dead_letter
        ]
        c.update(
            published=n,
            bytes=sum(len(x.payload) for x in cases),
            categories=dict(Counter(f.category for f in fates)),
            valid_obs=len(expected_points),
            expected_ingest_dead_letters=len(want_i),
            expected_alerting_dead_letters=len(want_a),
        )
        log(f"generated {n} payloads in {time.monotonic() - t_start:.1f} s: {c['categories']}")

        # -- publish -----------------------------------------------------------------------
        t_pub = time.monotonic()
        # a bounded window: paho's packet ids are 16 bits, so no more than this in flight
        window: deque[mqtt.MQTTMessageInfo] = deque()
        unacked = 0
        for i, x in enumerate(cases):
            window.append(pub.publish(topic[x.gateway], x.payload, qos=1))
            while window and (len(window) > PUBLISH_WINDOW or i == len(cases) - 1):
                info = window.popleft()
                info.wait_for_publish(120)
                unacked += not info.is_published()
        report.check("published_qos1", unacked == 0, f"{unacked} publishes not acknowledged")
        c["publish_s"] = round(time.monotonic() - t_pub, 2)
        log(f"published in {c['publish_s']} s")

        def progress() -> tuple[int, ...]:
            with dlq_i.cond, dlq_a.cond:
                nd_i, nd_a = len(dlq_i.messages), len(dlq_a.messages)
            return influx.count(db), nd_i, nd_a, ingest.counters.received

        target = (len(expected_points), len(want_i), len(want_a))
        settled = bounded_wait(progress, lambda p: tuple(p[:3]) >= target, max_s=60 + n / 50)
        c["settle_s"] = round(time.monotonic() - t_pub, 2)
        log(f"settled={settled} after {c['settle_s']} s: {progress()} of {target}")

        # -- after the fuzz: a valid batch still stored and still moves b1's score --------
        with scores.cond:
            n_scores = len(scores.messages)
        post_t = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        vitals = {"HR": (185.0, "/min"), "RR": (65.0, "/min"), "SPO2": (86.0, "%")}
        post = ObservationBatch(
            gateway_id="gw1",
            seq=10**6,
            sent_at=post_t,
            generation=Generation.TEST,
            observations=[
                Observation(
                    device_id="d1",
                    code=code,
                    value=v,
                    unit=u,
                    measured_at=post_t,
                    received_at=post_t,
                )
                for code, (v, u) in vitals.items()
            ],
        )
        post_info = pub.publish(
            topic.get("gw1") or topics.gateway_obs(SITE, UNIT, "gw1", root=root),
            post.model_dump_json().encode(),
            qos=1,
        )
        post_info.wait_for_publish(30)
        for o in post.observations:
            expected_points.setdefault(
                ("b1", "d1", o.code, "measured", ns(o.measured_at)), []
            ).append(
                {
                    "value": o.value,
                    "quality": "valid",
                    "quality_reason": None,
                    "time_source": None,
                    "device_time": None,
                }
            )

        c["valid_obs"] = len(expected_points)  # with the post-fuzz batch

        def moved(msgs: list[tuple[str, bytes]]) -> bool:
            for t, p in msgs[n_scores:]:
                if not t.endswith("/b1"):
                    continue
                try:
                    upd = ScoreUpdate.model_validate_json(p)
                except ValidationError:
                    continue
                used = {(i.code, i.value, i.measured_at) for i in upd.inputs}
                if all((code, v, post_t) in used for code, (v, _u) in vitals.items()):
                    return True
            return False

        any_score = scores.wait_for(lambda m: len(m) > n_scores, timeout=10)
        report.check(
            "alerting_publishes_scores_after_fuzz",
            any_score,
            "no score update at all after the post-fuzz batch",
        )
        ok = any_score and scores.wait_for(moved, timeout=10)

        def why_not() -> str:
            bed = alerting.engine.beds["b1"]  # read for the message only (no lock: it may be
            vals = {  # held by a dead thread)
                k: (r.value, r.at.isoformat()) for k, r in dict(bed.readings).items()
            }
            dead = {k: v.isoformat() for k, v in dict(bed.gone_at).items()}
            return (
                f"b1's score never used the post-fuzz HR/RR/SPO2 measured {post_t.isoformat()}"
                f"; alerting's latest values for b1: {vals}; missing since: {dead}; "
                f"pending: {dict(bed.pending)}; clock offsets: {dict(bed.device_offset_s)}"
            )

        report.check("valid_batch_moves_score_after_fuzz", ok, why_not)
        bounded_wait(
            lambda: (influx.count(db),), lambda p: p[0] >= len(expected_points), max_s=30, idle_s=5
        )

        # -- both alive --------------------------------------------------------------------
        ingest_alive = runners[0].thread.is_alive() and ingest.is_ready()
        alerting_alive = runners[1].thread.is_alive() and alerting.is_ready()
        report.check(
            "ingest_alive",
            ingest_alive,
            lambda: (
                f"thread alive={runners[0].thread.is_alive()} ready="
                f"{ingest.is_ready()} dead={ingest.liveness.dead()} "
                f"errors={runners[0].errors!r}"
            ),
        )
        report.check(
            "alerting_alive",
            alerting_alive,
            lambda: (
                f"thread alive={runners[1].thread.is_alive()} ready="
                f"{alerting.is_ready()} dead={alerting.liveness.dead()} "
                f"errors={runners[1].errors!r}"
            ),
        )
        try:
            assert ingest.metrics is not None
            text = httpx.get(f"http://127.0.0.1:{ingest.metrics.port}/metrics", timeout=5).text
            ready = _metric(text, "wardwatch_ingest_ready")
            report.check("ingest_metrics_ready", ready == 1, f"wardwatch_ingest_ready={ready}")
            stats = ingest.stats()
            c["ingest_stats"] = {
                k: stats.get(k)
                for k in (
                    "received",
                    "written_obs",
                    "dead_lettered",
                    "dead_letter_reasons",
                    "refused_points",
                    "faults",
                    "write_failures",
                    "disconnects",
                    "queue_full_waits",
                    "stale_acks_skipped",
                )
            }
        except Exception as exc:  # noqa: BLE001 - a broken /metrics or stats() is a finding
            report.check("ingest_metrics_ready", False, f"/metrics or stats() failed: {exc!r}")
        try:
            a_ready = _metric(alerting.metrics_text(), "wardwatch_alerting_ready")
            report.check(
                "alerting_metrics_ready", a_ready == 1, f"wardwatch_alerting_ready={a_ready}"
            )
            c["alerting"] = {
                "dead_letters": dict(alerting.dead_letters),
                "faults": dict(alerting.boundary.faults),
                "scores_published": alerting.scores_published,
            }
        except Exception as exc:  # noqa: BLE001 - a broken metrics_text() is a finding
            report.check("alerting_metrics_ready", False, f"metrics_text() failed: {exc!r}")
        c["both_alive"] = ingest_alive and alerting_alive

        # -- storage: exactly the valid observations --------------------------------------
        got, rows = stored_points(influx, db)
        missing = [k for k in expected_points if k not in got]
        unexpected = [k for k in got if k not in expected_points]
        c["stored"] = len(got)
        owner: dict[PointKey, int] = {}
        for x, f in zip(cases, fates, strict=True):
            for key, _ in f.points:
                owner[key] = x.index
        report.check(
            "every_valid_observation_stored",
            not missing,
            lambda: (
                f"{len(missing)} of {len(expected_points)} missing, from: "
                + _describe(cases, [owner[k] for k in missing if k in owner])
                + f"; e.g. {missing[:3]}"
            ),
        )
        report.check(
            "nothing_else_stored",
            not unexpected and rows == len(got),
            lambda: f"{len(unexpected)} unexpected points, e.g. {unexpected[:3]}",
        )
        wrong = [
            (k, got[k], cands)
            for k, cands in expected_points.items()
            if k in got and not any(_same(got[k], f) for f in cands)
        ]
        report.check(
            "stored_fields_as_sent",
            not wrong,
            lambda: f"{len(wrong)} points differ, e.g. {wrong[:2]}",
        )
        out_of_range = influx.count(
            db,
            where=f"time < '{WIRE_TIME_MIN.isoformat()}' OR time >= '{WIRE_TIME_MAX.isoformat()}'",
        )
        waves = influx.count(db, measurement="wave")
        report.check(
            "no_point_outside_2000_2100",
            out_of_range == 0,
            f"{out_of_range} points outside [2000, 2100)",
        )
        report.check("no_wave_points", waves == 0, f"{waves} wave points")
        report.check(
            "count_equals_valid",
            influx.count(db) == len(expected_points),
            lambda: f"count {influx.count(db)} != {len(expected_points)} valid",
        )

        # -- dead letters -----------------------------------------------------------------
        got_i = dead_letters(dlq_i, "ingest", report)
        got_a = dead_letters(dlq_a, "alerting", report)
        c["dead_lettered"] = len(got_i)
        c["alerting_dead_lettered"] = len(got_a)
        c["ingest_reasons"] = dict(Counter(r.split(":", 1)[0] for _, r in got_i))
        c["alerting_reasons"] = dict(Counter(r.split(":", 1)[0] for _, r in got_a))
        mi, ei = compare_dead_letters("ingest", got_i, want_i, cases, report)
        ma, ea = compare_dead_letters("alerting", got_a, want_a, cases, report)
        c["unaccounted"] = len(missing) + len(unexpected) + mi + ei
        c["alerting_unaccounted"] = ma + ea
        if "ingest_stats" in c:
            s = c["ingest_stats"]
            n_writes = sum(len(f.points) for f in fates) + len(post.observations)
            report.check(
                "ingest_counters_agree",
                s["written_obs"] == n_writes and s["dead_lettered"] == len(want_i),
                lambda: (
                    f"written_obs {s['written_obs']} (sent {n_writes} valid), "
                    f"dead_lettered {s['dead_lettered']} (expected {len(want_i)})"
                ),
            )
    finally:
        ingest.stop()
        alerting.stop()
        for r in runners:
            r.thread.join(30)
        pub.disconnect()
        pub.loop_stop()
        for col in (dlq_i, dlq_a, scores):
            col.close()
    for r in runners:
        report.check(
            f"{r.thread.name}_stops_cleanly",
            not r.thread.is_alive() and not r.errors,
            lambda r=r: f"alive={r.thread.is_alive()} errors={r.errors!r}",
        )
    c["seconds"] = round(time.monotonic() - t_start, 1)
    c["failed_checks"] = [f.split(":", 1)[0] for f in report.failures]
    return report


def _same(stored: dict[str, Any], sent: dict[str, Any]) -> bool:
    """A stored point is the observation sent: every field equal (and no field left over from
    another observation of the same series and time). InfluxDB's JSON writes a float64 such
    as 2**63 as the integer ``9223372036854776000``, so values compare as floats."""
    value = stored.get("value")
    if not isinstance(value, int | float) or float(value) != float(sent["value"]):
        return False
    return all(stored.get(k) == v for k, v in sent.items() if k != "value")


def test_live_fuzz(stack: Stack, influx_db: str) -> None:
    report = run_fuzz(stack.broker, stack.influx, influx_db, n=N, seed=SEED, log=print)
    print(json.dumps(report.counts, default=str))
    assert not report.failures, "\n".join(
        ["live fuzz failed checks:", *report.failures, json.dumps(report.counts, default=str)]
    )
