"""Alert latency and engine cost: observation published -> alert published, at ward scale.

    python bench/alert_latency.py --json                  # 2,000 beds at 1 Hz, 30 s window
    python bench/alert_latency.py --beds 20 --seconds 3   # a smoke run (the test does this)

Starts its own mosquitto (``wardwatch.devstack.Mosquitto``: dynamic security, the service
identities of ``SERVICE_ROLES``) in a temp dir, writes a ward file of ``--beds`` beds (children
of 3 to 4.8 years, Bedside PEWS, ``--beds-per-gateway`` beds per gateway, one monitor per bed)
and starts the real alert engine as a subprocess, ``python -m alerting run --context WARD
--rules RULES --state FILE --metrics-port P``, its broker credentials in the environment
(``WM_MQTT_*``, never argv). Then the simulated gateways publish, as the test-only ``loadgen``
identity over ``--connections`` connections (``device_sims.loadgen.publish_all``, QoS 1 with a
bounded window), one ``ObservationBatch`` per gateway per second, spread evenly over the second,
with HR, RR and SpO2 of each of its beds stamped with the wall clock (the engine scores in wall
time): ``--warmup`` seconds first (not measured), then ``--seconds`` measured.

**Latency.** In the measured window ``--probes-per-s`` beds a second (a rotating subset, each
bed at most once, spread over the gateways) turn: HR 150, RR 60, SpO2 85, a jump from the
baseline inside every artefact-jump limit (so no confirmation is awaited) that scores 5 (LOW).
The engine runs with a rules file whose onset windows are 0 (``[onset] high_s = medium_s =
low_s = 0``: every other rule is the shipped default), so the alert is raised by the very
observation that carries the probe: the measured time is transport + engine, never a configured
onset delay. The clock starts just before the probe's batch is handed to paho and stops when
the ``raised`` event of that bed arrives on the unit's alert event topic at a subscriber in this
process (the console identity): one process, one monotonic clock. A probed bed keeps its bad
values (it stays deteriorated). The baseline (HR 110, RR 28, SpO2 97, small noise) scores 0:
any other clinical alert is counted as ``unexpected_alerts``.

**Ceiling.** ``--pings-per-s`` small messages go the same way (the same publisher connections,
the same broker) to the same subscriber, without the engine: ``broker_p50_ms`` /
``broker_p99_ms`` is one publish -> subscribe hop under the same load. The alert path has two
(gateway -> broker -> engine, engine -> broker -> subscriber) plus the engine's work.

**Cost.** The engine's CPU time (utime + stime of its process, ``/proc/<pid>/stat``) from the
window's first message until the engine has handled everything published (a sentinel probe on a
reserved bed is published after the window; its alert arriving means the engine's one message
thread got through all that came before), divided by the observations published meanwhile:
``score_us_per_obs`` (everything the engine does: MQTT in, validation, scoring, alert decisions,
its state file, score and alert messages out). ``engine_observations`` is the engine's own
``wardwatch_alerting_observations_total`` (``/metrics``) at the end: equal to
``observations_published`` (warm-up included) when the engine saw every one.

**Where the time goes.** ``to_decision_*_ms`` / ``decision_to_alert_*_ms`` split each probe on
the wall clock at the engine's decision time (the event's ``at``): published -> decision
(broker, the engine's queue, validation, scoring) and decision -> arrival (state commit,
publish, broker). ``--profile FILE`` instead runs the engine service in this process on the same
load without a broker (its message boundary per batch, its tick per simulated second) under
cProfile and prints the shares of the core, the scorer, the state file, validation and score
messages.

Prints progress to stderr and last one JSON line (``--json``: compact)::

    {"p50_ms", "p99_ms", "score_us_per_obs", "beds", "obs_per_s", "alerts_measured", ...}

The goal is p99 <= 50 ms; it is reported (``goal_met``), never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerting.pews import score
from device_sims.loadgen import publish_all
from servicekit.context import dump_ward_file
from servicekit.metrics import parse_metric, percentile
from servicekit.mqtt import MqttSession
from wardwatch.devstack import Mosquitto, free_port
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import (
    AlertEvent,
    AlertEventType,
    Generation,
    Observation,
    ObservationBatch,
)
from wardwire.params import BY_CODE

SITE, UNIT, ROOT = "benchsite", "latency", topics.ROOT
SYSTEM = "bedside_pews"
#: (code, baseline, noise sd, probe value): the probe jumps less than the shipped artefact
#: jump limits (HR 50, RR 40, SpO2 15) from any baseline value the noise gives
VITALS = (("HR", 110.0, 2.0, 150.0), ("RR", 28.0, 1.0, 60.0), ("SPO2", 97.0, 0.5, 85.0))
SCORER_KEYS = {"HR": "hr_bpm", "RR": "rr_bpm", "SPO2": "spo2_pct"}
#: ages in days: Bedside PEWS scores the baseline 0 and the probe 5 (LOW) in this band
#: (checked at start: ``check_scores``)
AGE_DAYS = (1150, 1750)
#: the rules the engine runs with: the shipped defaults, onset windows 0
RULES_TOML = """\
# bench/alert_latency.py: the shipped defaults, but no onset window, so a value that scores
# an alert level raises at once and the latency measured is transport + engine only
[onset]
high_s = 0
medium_s = 0
low_s = 0
"""
READY_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ward(beds: int, per_gateway: int, today: date) -> UnitContext:
    """``beds`` beds, ``per_gateway`` per gateway, each with one monitor and a child's dob."""
    n_gw = -(-beds // per_gateway)
    gws = [GatewayContext(id=f"gw{g:04d}") for g in range(n_gw)]
    lo, hi = AGE_DAYS
    return UnitContext(
        site=SITE,
        unit=UNIT,
        scoring_system=SYSTEM,
        generation=Generation.TEST,
        gateways=gws,
        beds=[
            BedContext(
                id=f"bed{i:05d}",
                patient=f"P-bench{i:05d}",
                dob=today - timedelta(days=lo + (i * 37) % (hi - lo)),
                gateway=f"gw{i // per_gateway:04d}",
                devices=[f"mon{i:05d}"],
            )
            for i in range(beds)
        ],
    )


def check_scores(today: date) -> None:
    """Fail early if the scoring tables no longer score the baseline 0 and the probe LOW+."""
    for days in AGE_DAYS:
        dob = today - timedelta(days=days)
        at = datetime.now(UTC)
        for lo_hi in (-3, 3):
            base = {SCORER_KEYS[c]: round(v + lo_hi * sd) for c, v, sd, _ in VITALS}
            total = score(SYSTEM, base, dob=dob, at=at).total
            if total != 0:
                raise SystemExit(f"baseline {base} scores {total} at {days} days (want 0)")
        probe = {SCORER_KEYS[c]: p for c, _, _, p in VITALS}
        total = score(SYSTEM, probe, dob=dob, at=at).total
        if total < 5:
            raise SystemExit(f"probe {probe} scores {total} at {days} days (want >= 5, LOW)")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Receiver:
    """The subscriber: alert events of the unit and the ceiling's pings, timed on arrival."""

    def __init__(self, broker: Mosquitto, ping_topic: str) -> None:
        self.events_topic = topics.alert_events(SITE, UNIT, root=ROOT)
        self.ping_topic = ping_topic
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.raised: dict[str, float] = {}  # bed -> arrival of its first clinical "raised"
        #: bed -> (the engine's decision time, arrival), both wall clock, for the split
        self.raised_wall: dict[str, tuple[float, float]] = {}
        self.pings: dict[int, float] = {}
        self.events = 0
        self.clinical_raised = 0
        self.technical_raised: dict[str, int] = {}
        self.bad: list[str] = []
        self.session = MqttSession(
            broker.params("console", session_expiry_s=0),
            f"bench-latency-sub-{os.getpid()}",
            subscriptions=[(self.events_topic, 1), (ping_topic, 1)],
            on_message=self._on_message,
        )

    def start(self) -> None:
        self.session.start()
        if not self.session.subscribed.wait(10):
            raise SystemExit(f"subscriber not granted: {self.session.refused_filters}")

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        now, wall = time.monotonic(), time.time()
        if msg.topic == self.ping_topic:
            with self.lock:
                self.pings.setdefault(int(msg.payload), now)
            return
        try:
            ev = AlertEvent.model_validate_json(msg.payload)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            with self.lock:
                self.bad.append(str(exc)[:200])
            return
        with self.cond:
            self.events += 1
            if ev.event is not AlertEventType.RAISED:
                return
            if ev.alert.condition != "pews":
                rule = ev.alert.rule or ev.alert.condition
                self.technical_raised[rule] = self.technical_raised.get(rule, 0) + 1
                return
            self.clinical_raised += 1
            self.raised.setdefault(ev.alert.bed_id, now)
            self.raised_wall.setdefault(ev.alert.bed_id, (ev.at.timestamp(), wall))
            self.cond.notify_all()

    def wait_raised(self, bed: str, timeout: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: bed in self.raised, timeout)
            return self.raised.get(bed)

    def stop(self) -> None:
        self.session.stop()


class Load:
    """The gateways' batches, paced in wall time, with probes, pings and the sentinel.

    A generator for ``publish_all`` (which publishes each item as soon as it is yielded): the
    pacing happens here, so the time noted before ``yield`` is the publish time."""

    def __init__(self, ctx: UnitContext, args: argparse.Namespace, ping_topic: str) -> None:
        self.ctx, self.args, self.ping_topic = ctx, args, ping_topic
        self.paced = True  # False: as fast as the consumer takes them (--profile)
        self.by_gw: dict[str, list[BedContext]] = {}
        for b in ctx.beds:
            self.by_gw.setdefault(b.gateway, []).append(b)
        self.gws = list(self.by_gw)
        rng = random.Random(args.seed)
        order = [b.id for b in ctx.beds]
        rng.shuffle(order)
        self.sentinel = order.pop()  # reserved: probed once, after the window
        per_s = min(args.probes_per_s, max(1, len(order) // max(1, args.seconds)))
        self.probe_plan: dict[int, set[str]] = {
            s: set(order[s * per_s : (s + 1) * per_s]) for s in range(args.seconds)
        }
        self.bad: set[str] = set()  # beds sending the probe values (since their probe)
        self.probe_sent: dict[str, float] = {}
        self.probe_sent_wall: dict[str, float] = {}
        self.ping_sent: dict[int, float] = {}
        self.rng = random.Random(args.seed + 1)
        self.observations = 0  # in the window (and the sentinel's batch)
        self.observations_all = 0  # warm-up included: what the engine must have received
        self.messages = 0
        self.late_max_s = 0.0
        self.window_start: float | None = None
        self.window_end: float | None = None
        self.cpu_start: float | None = None

    def batch(self, gw: str, seq: int, probes: set[str]) -> bytes:
        now = datetime.now(UTC)
        obs = []
        for b in self.by_gw[gw]:
            bad = b.id in self.bad or b.id in probes
            for code, base, sd, probe in VITALS:
                # noise within 3 sd: the range check_scores checked scores 0
                noise = max(-3 * sd, min(3 * sd, self.rng.gauss(0.0, sd)))
                v = probe if bad else round(base + noise)
                if code == "SPO2":
                    v = min(v, 100.0)
                obs.append(
                    Observation(
                        device_id=b.devices[0], code=code, value=float(v),
                        unit=BY_CODE[code].ucum, measured_at=now, received_at=now,
                    )
                )
        return (
            ObservationBatch(
                gateway_id=gw, seq=seq, sent_at=now, generation=Generation.TEST, observations=obs
            )
            .model_dump_json()
            .encode()
        )

    def _pace(self, due: float) -> None:
        if not self.paced:
            return
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing a load generator, not test synchronisation
        else:
            self.late_max_s = max(self.late_max_s, -delay)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        a = self.args
        n_gw = len(self.gws)
        ping_every = max(1, round(n_gw / a.pings_per_s)) if a.pings_per_s > 0 else 0
        n_ping = 0
        t0 = time.monotonic() + 0.2
        total = a.warmup + a.seconds
        for s in range(total):
            measured = s >= a.warmup
            probes = self.probe_plan.get(s - a.warmup, set()) if measured else set()
            if measured and self.window_start is None:
                self.window_start = time.monotonic()
                self.cpu_start = cpu_seconds(self.args.engine_pid)
                log(f"window: {a.seconds} s measured")
            for g, gw in enumerate(self.gws):
                self._pace(t0 + s + g / n_gw)
                payload = self.batch(gw, s, probes)
                sent, sent_wall = time.monotonic(), time.time()
                for b in self.by_gw[gw]:
                    if b.id in probes:
                        self.probe_sent[b.id] = sent
                        self.probe_sent_wall[b.id] = sent_wall
                        self.bad.add(b.id)
                n_obs = len(self.by_gw[gw]) * len(VITALS)
                self.observations_all += n_obs
                if measured:
                    self.observations += n_obs
                self.messages += 1
                yield topics.gateway_obs(SITE, UNIT, gw, root=ROOT), payload
                if measured and ping_every and g % ping_every == 0:
                    self.ping_sent[n_ping] = time.monotonic()
                    yield self.ping_topic, str(n_ping).encode()
                    n_ping += 1
        self.window_end = time.monotonic()
        # the sentinel: its alert arriving means the engine handled all that came before
        sgw = next(b.gateway for b in self.ctx.beds if b.id == self.sentinel)
        payload = self.batch(sgw, total, {self.sentinel})
        self.probe_sent[self.sentinel] = time.monotonic()
        self.observations += len(self.by_gw[sgw]) * len(VITALS)
        self.observations_all += len(self.by_gw[sgw]) * len(VITALS)
        self.messages += 1
        yield topics.gateway_obs(SITE, UNIT, sgw, root=ROOT), payload


def ms(xs: list[float], q: float) -> float | None:
    return round(percentile(xs, q) * 1000, 2) if xs else None


def engine_metrics(url: str) -> str:
    try:
        with httpx.Client(timeout=5) as http:
            return http.get(url).text
    except httpx.HTTPError:
        return ""


def _die_with_parent() -> None:
    """In the engine's child process: SIGTERM it when this benchmark dies, even by kill -9
    (Linux ``PR_SET_PDEATHSIG``), so no engine outlives an interrupted run."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # unwinds: the engine and broker stop


def wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    end = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=2) as http:
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise SystemExit(f"the alert engine exited ({proc.returncode}):\n{tail}")
            try:
                if parse_metric(http.get(url).text, "wardwatch_alerting_ready") == 1.0:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            if time.monotonic() > end:
                raise SystemExit(f"the alert engine was not ready within {READY_TIMEOUT_S} s")
            time.sleep(0.05)  # readiness poll interval


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    check_scores(today)
    ctx = ward(args.beds, args.beds_per_gateway, today)
    ward_path, rules_path = work / "ward.toml", work / "rules.toml"
    ward_path.write_text(dump_ward_file(ctx), encoding="utf-8")
    rules_path.write_text(RULES_TOML, encoding="utf-8")
    broker = Mosquitto(work / "mosquitto")
    broker.start()
    proc: subprocess.Popen[bytes] | None = None
    rx: Receiver | None = None
    try:
        mport = free_port()
        metrics_url = f"http://127.0.0.1:{mport}/metrics"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WM_")}
        env.update({
            "WM_MQTT_HOST": broker.host,
            "WM_MQTT_PORT": str(broker.port),
            "WM_MQTT_USERNAME": "alerting",
            "WM_MQTT_PASSWORD": broker.passwords["alerting"],
            "WM_TOPIC_ROOT": ROOT,
            "WM_LOG_LEVEL": "WARNING",
        })
        engine_log = work / "alerting.log"
        with engine_log.open("wb") as log_f:
            proc = subprocess.Popen(
                [sys.executable, "-m", "alerting", "run", "--context", str(ward_path),
                 "--rules", str(rules_path), "--state", str(work / "state.sqlite"),
                 "--metrics-port", str(mport)],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_f,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        t = time.monotonic()
        wait_ready(proc, metrics_url, engine_log)
        log(f"engine ready in {time.monotonic() - t:.1f} s ({args.beds} beds)")
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        if any(pw.encode() in argv for pw in broker.passwords.values()):
            raise SystemExit("a broker password is on the engine's command line")
        args.engine_pid = proc.pid
        rx = Receiver(broker, topics.gateway_obs(SITE, "latency-ping", "ping", root=ROOT))
        rx.start()
        load = Load(ctx, args, rx.ping_topic)
        load_before = os.getloadavg()[0]
        bench_cpu0 = time.process_time()
        broker_cpu0 = cpu_seconds(broker.proc.pid) if broker.proc else 0.0
        pub = publish_all(
            broker.params("loadgen"), load, connections=args.connections, window=args.window,
            client_prefix=f"bench-loadgen-{os.getpid()}",
        )
        drained_at = rx.wait_raised(load.sentinel, DRAIN_TIMEOUT_S)
        cpu_end = cpu_seconds(proc.pid)
        t_end = time.monotonic()
        broker_cpu = (cpu_seconds(broker.proc.pid) if broker.proc else 0.0) - broker_cpu0
        bench_cpu = time.process_time() - bench_cpu0
        metrics = engine_metrics(metrics_url)
        if proc.poll() is not None:
            raise SystemExit(f"the alert engine died during the run ({proc.returncode})")
        assert load.window_start is not None and load.window_end is not None
        assert load.cpu_start is not None
        with rx.lock:
            raised = dict(rx.raised)
            raised_wall = dict(rx.raised_wall)
            pings = dict(rx.pings)
            technical = dict(rx.technical_raised)
            clinical = rx.clinical_raised
            bad_events = list(rx.bad)
        probes = {b: t0 for b, t0 in load.probe_sent.items() if b != load.sentinel}
        lat = [raised[b] - t0 for b, t0 in probes.items() if b in raised]
        # the split, on the wall clock: published -> the engine's decision (broker, the engine's
        # queue, validation, scoring) and decision -> arrival (commit, publish, broker)
        inbound = [raised_wall[b][0] - t0 for b, t0 in load.probe_sent_wall.items()
                   if b in raised_wall and b != load.sentinel]
        outbound = [raised_wall[b][1] - raised_wall[b][0] for b in probes if b in raised_wall]
        ping_lat = [pings[i] - t0 for i, t0 in load.ping_sent.items() if i in pings]
        unexpected = sorted(set(raised) - set(load.probe_sent))
        elapsed = (drained_at if drained_at is not None else t_end) - load.window_start
        engine_cpu = cpu_end - load.cpu_start
        obs = load.observations
        engine_obs = parse_metric(metrics, "wardwatch_alerting_observations_total")
        result: dict[str, Any] = {
            "p50_ms": ms(lat, 0.50),
            "p99_ms": ms(lat, 0.99),
            "score_us_per_obs": round(engine_cpu / obs * 1e6, 1) if obs else None,
            "beds": args.beds,
            "obs_per_s": round(args.beds * len(VITALS)),
            "bed_updates_per_s": args.beds,
            "max_ms": round(max(lat) * 1000, 2) if lat else None,
            "alerts_measured": len(lat),
            "probes": len(probes),
            "probes_missed": len(probes) - len(lat),
            "unexpected_alerts": len(unexpected),
            "technical_alerts": technical,
            "clinical_raised": clinical,
            "malformed_events": len(bad_events),
            "to_decision_p50_ms": ms(inbound, 0.50),
            "to_decision_p99_ms": ms(inbound, 0.99),
            "decision_to_alert_p50_ms": ms(outbound, 0.50),
            "decision_to_alert_p99_ms": ms(outbound, 0.99),
            "broker_p50_ms": ms(ping_lat, 0.50),
            "broker_p99_ms": ms(ping_lat, 0.99),
            "pings": len(load.ping_sent),
            "pings_lost": len(load.ping_sent) - len(ping_lat),
            "goal_p99_ms": 50,
            "goal_met": bool(lat) and percentile(lat, 0.99) * 1000 <= 50,
            "window_s": args.seconds,
            "warmup_s": args.warmup,
            "observations": obs,
            "observations_published": load.observations_all,
            "engine_observations": None if engine_obs is None else int(engine_obs),
            "batches": load.messages,
            "mqtt_messages": pub.messages,  # batches and pings
            "mqtt_acked": pub.acked,
            "mqtt_refused": pub.refused,
            "drained": drained_at is not None,
            "drain_ms": round((drained_at - load.window_end) * 1000, 1)
            if drained_at is not None else None,
            "engine_cpu_s": round(engine_cpu, 3),
            "engine_cpu_pct": round(100 * engine_cpu / elapsed, 1) if elapsed > 0 else None,
            "broker_cpu_pct": round(100 * broker_cpu / (t_end - load.window_start), 1),
            "bench_cpu_pct": round(100 * bench_cpu / (t_end - load.window_start), 1),
            "publisher_late_max_ms": round(load.late_max_s * 1000, 1),
            "scores_published": int(parse_metric(
                metrics, "wardwatch_alerting_scores_published_total") or 0),
            "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "cpus": os.cpu_count(),
        }
        if unexpected:
            log(f"unexpected clinical alerts on beds never probed: {unexpected[:10]}")
        if bad_events:
            log(f"alert events that did not validate: {bad_events[:3]}")
        return result
    finally:
        if rx is not None:
            rx.stop()
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        broker.stop()


def profile(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """cProfile of the engine on the same load, in this process and without a broker: the
    service's message handler (``AlertingService.boundary``) for every batch, its ``tick`` after
    every simulated second (paho keeps what the engine publishes while unconnected). Where the
    engine's time goes, as shares of the profiled total."""
    import cProfile
    import pstats

    import paho.mqtt.client as mqtt

    from alerting.core.config import load_rules
    from alerting.service import AlertingService
    from servicekit.mqtt import MqttParams

    today = datetime.now(UTC).date()
    check_scores(today)
    ctx = ward(args.beds, args.beds_per_gateway, today)
    rules_path = work / "rules.toml"
    rules_path.write_text(RULES_TOML, encoding="utf-8")
    svc = AlertingService(MqttParams(host="127.0.0.1", port=1), ctx, load_rules(rules_path),
                          score, root=ROOT, state=work / "state.sqlite")
    args.engine_pid, args.pings_per_s = os.getpid(), 0
    load = Load(ctx, args, "")
    load.paced = False
    msgs = []
    for topic, payload in load:  # built (and stamped) before profiling starts
        m = mqtt.MQTTMessage(topic=topic.encode())
        m.payload = payload
        msgs.append(m)
    per_s = len(load.gws)
    prof = cProfile.Profile()
    cpu0 = time.process_time()
    prof.enable()
    for i, m in enumerate(msgs):
        svc.boundary(svc.mqtt.client, None, m)
        if (i + 1) % per_s == 0:
            svc.tick()
    prof.disable()
    cpu = time.process_time() - cpu0
    stats = pstats.Stats(prof)
    if args.profile != Path("-"):
        stats.dump_stats(args.profile)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]

    def cumulative(path_end: str, func: str) -> float:
        return float(sum(v[3] for (f, _, fn), v in raw.items()
                         if f.endswith(path_end) and fn == func))

    total = cumulative("servicekit/faults.py", "__call__") + cumulative(
        "alerting/service.py", "tick")
    parts = {
        "core_on_readings": cumulative("alerting/core/unit.py", "on_readings"),
        "scorer": cumulative("alerting/pews/scoring.py", "score"),
        "state_file_commit": cumulative("alerting/service.py", "_commit"),
        "bed_snapshots": cumulative("alerting/core/bed.py", "snapshot"),
        "validate_json": cumulative("pydantic/main.py", "model_validate_json"),
        "score_messages": cumulative("alerting/service.py", "_publish_score"),
    }
    top = sorted(
        ((v[3], f"{Path(f).parent.name}/{Path(f).name}:{fn}") for (f, _, fn), v in raw.items()),
        reverse=True,
    )[:15]
    if svc.store is not None:
        svc.store.close()
    return {
        "profile": str(args.profile),
        "beds": args.beds,
        "seconds": args.seconds + args.warmup,
        "observations": load.observations_all,
        "us_per_obs_profiled": round(cpu / load.observations_all * 1e6, 1),
        "shares": {k: round(v / total, 3) for k, v in parts.items()},
        "top_cumulative_s": [[name, round(t, 3)] for t, name in top],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beds", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=30, help="measured window")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of load before the window")
    ap.add_argument("--beds-per-gateway", type=int, default=10)
    ap.add_argument("--probes-per-s", type=int, default=20)
    ap.add_argument("--pings-per-s", type=float, default=20.0)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--window", type=int, default=200, help="unacknowledged messages/connection")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--keep", type=Path, help="keep the work dir (ward, rules, engine log) here")
    ap.add_argument("--json", action="store_true", help="print the summary as one compact line")
    ap.add_argument("--profile", type=Path, help="instead: cProfile the engine on the same load "
                    "in process (no broker), write the stats here ('-': nowhere)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    for name in ("beds", "seconds", "beds_per_gateway", "probes_per_s", "connections", "window"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.beds < 2:
        ap.error("--beds must be at least 2 (one is the sentinel)")
    if args.warmup < 0:
        ap.error("--warmup must not be negative")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = (profile if args.profile else run)(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="wardwatch-latency-") as d:
            result = (profile if args.profile else run)(args, Path(d))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
