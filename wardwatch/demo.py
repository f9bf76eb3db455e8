"""``wardwatch demo``: the whole stack with a simulated ward, on this machine.

It starts a real mosquitto and influxd (``devstack``) and a registry of its own
(``registry serve --mqtt`` as the registry's broker identity), seeds the registry through its
REST API (site, unit, gateways, beds, devices, patients, admissions; a unit manager's token),
enrols every gateway through the API (a biomedical engineer's token; four beds per gateway) and
runs each edge agent on the config the registry printed for it. It starts the ingest, alerting
and edge agent *processes* exactly as an operator would (``python -m ...``; the services read
the unit context from the registry with a service token), then simulated monitors on ptys. After the
run it stops the monitors, lets the gateways drain and shut down in order, waits for ingest to
write everything, and reports what was published, what InfluxDB holds, and which beds alerted.

``published`` counts observations the simulated devices put on the wire; ``stored`` counts
observations queried back from InfluxDB; ``lost = published - stored``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx

from alerting.core.config import UnitRules
from console.board import WardView, render, subscribe_view
from device_sims.monitor import SimulatedMonitor
from device_sims.scenarios import Scenario
from edge_agent.config import dump_edge_config
from servicekit.context import dump_ward_file, load_unit_context
from servicekit.files import write_private
from servicekit.metrics import parse_metric
from servicekit.tomlio import dump_model
from wardwatch.devstack import Stack, free_port, running_stack
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation

BEDS_PER_GATEWAY = 4
DB = "wardwatch"


@dataclass(frozen=True)
class DemoOptions:
    beds: int = 8
    duration_s: float = 60.0  # 0 = until Ctrl-C
    headless: bool = False
    workdir: Path | None = None
    seed: int = 1
    generation: Generation = Generation.DEMO
    onset_s: float = 6.0
    #: seconds into the run when the SpO2 probe of the first deteriorating bed comes off
    #: (default: past half of the run, once its alert is up; 60 s for an open-ended run)
    probe_off_s: float | None = None

    #: seconds into the run when the alert engine is killed (-9) and started again on its
    #: state (default: just before the probe comes off; 50 s for an open-ended run)
    engine_restart_s: float | None = None

    def probe_off_at(self) -> float:
        if self.probe_off_s is not None:
            return self.probe_off_s
        return 0.55 * self.duration_s if self.duration_s > 0 else 60.0

    def charting_at(self) -> tuple[float, float]:
        """When a nurse charts a full set on every bed, and when she charts the first
        deteriorating child's AVPU as V (a change)."""
        if self.duration_s <= 0:
            return 20.0, 40.0
        return 0.2 * self.duration_s, 0.35 * self.duration_s

    def engine_restart_at(self) -> float:
        if self.engine_restart_s is not None:
            return self.engine_restart_s
        return 0.45 * self.duration_s if self.duration_s > 0 else 50.0


def deteriorating_indices(beds: int) -> set[int]:
    """Which beds (0-based) get the deteriorating scenario: every 4th from the 2nd, >= 1."""
    return {i for i in range(beds) if i % 4 == 1} or {0}


def demo_rules(opts: DemoOptions) -> UnitRules:
    """The unit rules of a one-minute demo: every timing compressed (demo values, not a
    clinical recommendation; the shipped defaults are in alerting/unit_rules.toml)."""
    o = opts.onset_s
    return UnitRules.model_validate({
        "onset": {"high_s": o, "medium_s": o, "low_s": o},
        "clear": {"clear_s": 10},
        "freshness": {"continuous_s": 8, "no_data_s": 30, "lost_after_s": 3},
        "escalation": {"high_s": 30, "medium_s": 60, "low_s": 120},
    })


def build_ward(opts: DemoOptions, today: date) -> UnitContext:
    n_gw = (opts.beds + BEDS_PER_GATEWAY - 1) // BEDS_PER_GATEWAY
    gws = [GatewayContext(id=f"gw-{chr(ord('a') + g)}") for g in range(n_gw)]
    dob = today.replace(year=today.year - 3)
    beds = [
        BedContext(
            id=f"bed{i + 1:02d}",
            patient=f"P-demo{i + 1:02d}",
            dob=dob,
            gateway=gws[i // BEDS_PER_GATEWAY].id,
            devices=[f"mon-bed{i + 1:02d}"],
        )
        for i in range(opts.beds)
    ]
    return UnitContext(
        site="demo",
        unit="picu",
        scoring_system="bedside_pews",
        time_zone="Asia/Shanghai",
        generation=opts.generation,
        gateways=gws,
        beds=beds,
    )


class Demo:
    def __init__(self, opts: DemoOptions, stack: Stack, workdir: Path) -> None:
        self.opts, self.stack, self.workdir = opts, stack, workdir
        self.ward = build_ward(opts, datetime.now(UTC).date())
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.engine_restarts = 0
        self.monitors: dict[str, SimulatedMonitor] = {}
        det = deteriorating_indices(opts.beds)
        self.deteriorating = sorted(self.ward.beds[i].id for i in det)
        #: the deteriorating bed whose SpO2 probe comes off mid-run (its alert must hold)
        self.probe_off_bed = self.ward.beds[min(det)].id
        for i, bed in enumerate(self.ward.beds):
            sc = Scenario(
                "deteriorating" if i in det else "stable",
                seed=opts.seed * 100 + i,
                probe_off_s=opts.probe_off_at() if i == min(det) else None,
            )
            dev = bed.devices[0]
            self.monitors[bed.id] = SimulatedMonitor(dev, sc, workdir / "tty" / dev)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        full_env = {**os.environ, **env, "WM_LOG_LEVEL": "INFO"}
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", *args],
            stdout=log,
            stderr=log,
            env=full_env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def start(self) -> None:
        ward_path = self.workdir / "ward.toml"  # kept for reference (wardwatch registry show)
        ward_path.write_text(dump_ward_file(self.ward), encoding="utf-8")
        self.stack.influx.create_database(DB)
        rules_path = self.workdir / "alerting-rules.toml"
        rules_path.write_text(dump_model(demo_rules(self.opts)), encoding="utf-8")
        self.context_url = self.start_registry()
        self.edge_configs = self.enroll_gateways()
        common = {"WM_CONTEXT": self.context_url,
                  **({"WM_REGISTRY_CA_FILE": str(self.registry_ca)} if self.registry_ca else {})}
        # ingest reads the context without dates of birth; the alert engine with them
        token_role = {"ingest": "service", "alerting": "alert_engine"}
        self.metrics = {"ingest": free_port(), "alerting": free_port()}
        extra = {
            "ingest": ["--context-cache", str(self.workdir / "ingest-context.json")],
            "alerting": ["--rules", str(rules_path), "--state",
                         str(self.workdir / "alerting-state.sqlite"), "--heartbeat-s", "2"],
        }
        self.commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        for svc in ("ingest", "alerting"):
            self.commands[svc] = (
                [svc, "run", "--metrics-port", str(self.metrics[svc]), *extra[svc]],
                {**self.stack.env(svc, DB), **common,
                 "WM_REGISTRY_TOKEN_FILE": str(self.tokens[token_role[svc]])},
            )
            self._spawn(svc, *self.commands[svc])
        # Nothing may be published before both hold their subscriptions (a first-ever
        # subscription cannot receive what was published before it existed).
        self.wait_ready()
        for mon in self.monitors.values():
            mon.open()
        for gw, path in self.edge_configs.items():
            self._spawn(f"edge-{gw}", ["edge_agent", "run", "--config", str(path)], {})

    # -- the registry: users, served with its broker identity, seeded through its API --------
    def start_registry(self, deadline_s: float = 30.0) -> str:
        """A registry of the demo's own: its users (a unit manager who seeds the ward, a
        biomedical engineer who enrols the gateways, the services' token), ``registry serve
        --mqtt`` as the registry identity, the ward seeded through the REST API; returns the
        unit context URL the services read (as a real unit's would come from its registry)."""
        from pydantic import SecretStr

        from registry import users
        from registry.db import open_database, transaction
        from registry.users import UserRequest

        db = f"sqlite:///{(self.workdir / 'registry.db').resolve()}"
        engine = open_database(db)
        self.tokens: dict[str, Path] = {}
        try:
            with transaction(engine) as s:
                now = datetime.now(UTC)
                for user, role in (("demo-manager", "unit_manager"), ("demo-biomed", "biomed"),
                                   ("demo-services", "service"),
                                   ("demo-alerting", "alert_engine"), ("nurse-demo", "nurse")):
                    pw = (None if role in ("service", "alert_engine")
                          else SecretStr(secrets.token_urlsafe(24)))
                    users.add_user(s, UserRequest.model_validate(
                        {"id": user, "role": role, "password": pw}), now=now)
                    token = users.issue_token(s, user, now=now).token
                    path = self.workdir / f"{user}.token"
                    _write_private(path, token + "\n")
                    self.tokens[role] = path
        finally:
            engine.dispose()
        port = free_port()
        # with the TLS-only broker the registry serves HTTPS with the devstack's server
        # certificate, and everyone verifies it against the devstack's CA (issue 16)
        pki = self.stack.broker.pki
        self.registry_ca = pki.ca_file if pki else None
        https = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)] if pki \
            else []
        self._spawn("registry", ["registry", "serve", "--db", db, "--port", str(port), "--mqtt",
                                 *https], self.stack.env("registry", DB))
        self.registry_url = base = f"{'https' if pki else 'http'}://127.0.0.1:{port}"
        end = time.monotonic() + deadline_s
        with httpx.Client(timeout=1.0, verify=self._registry_tls()) as http:
            while True:
                self._check_procs()
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{base}/openapi.json").status_code == 200:
                        break
                if time.monotonic() > end:
                    raise RuntimeError(f"registry not ready after {deadline_s} s")
                time.sleep(0.05)  # readiness poll while the registry starts
        self.seed_registry()
        url = f"{base}/units/{self.ward.site}/{self.ward.unit}/context"
        served = load_unit_context(url, timeout_s=5, token=self._token("service"),
                                   ca_file=self.registry_ca)
        if served.device_index().keys() != self.ward.device_index().keys():
            raise RuntimeError(f"{url}: the registry's context is not the demo's ward")
        return url

    def _registry_tls(self) -> ssl.SSLContext | bool:
        """How the demo verifies its registry: against the devstack's CA when it serves HTTPS."""
        return ssl.create_default_context(cafile=str(self.registry_ca)) if self.registry_ca \
            else True

    def _token(self, role: str) -> str:
        return self.tokens[role].read_text(encoding="utf-8").strip()

    def _api(self, role: str, path: str, body: dict[str, Any], *, retry_503_s: float = 0.0,
             ) -> Any:
        """POST to the registry as ``role``'s user; refused: RuntimeError with the reason."""
        end = time.monotonic() + retry_503_s
        with httpx.Client(base_url=self.registry_url, timeout=30, verify=self._registry_tls(),
                          headers={"Authorization": f"Bearer {self._token(role)}"}) as http:
            while True:
                r = http.post(path, json=body)
                if r.status_code == 503 and time.monotonic() < end:
                    time.sleep(0.1)  # the registry's broker connection is still coming up
                    continue
                if r.is_error:
                    raise RuntimeError(f"registry POST {path}: {r.status_code} {r.text[:300]}")
                return r.json()

    def seed_registry(self) -> None:
        """The demo's ward through the registry's API, as a unit manager would enter it."""
        w = self.ward
        mgr = "unit_manager"
        self._api(mgr, "/sites", {"id": w.site, "name": "wardwatch demo hospital"})
        self._api(mgr, "/units", {"site": w.site, "id": w.unit, "time_zone": w.time_zone,
                                  "scoring_system": w.scoring_system,
                                  "generation": w.generation.value})
        for gw in w.gateways:
            self._api(mgr, f"/units/{w.site}/{w.unit}/gateways", {"id": gw.id})
        for i, bed in enumerate(w.beds):
            self._api(mgr, f"/units/{w.site}/{w.unit}/beds", {"id": bed.id,
                                                              "gateway": bed.gateway})
            for dev in bed.devices:
                self._api(mgr, "/devices", {
                    "id": dev, "manufacturer": "wardwatch", "model": "simulated monitor",
                    "serial_number": f"SIM{i + 1:05d}", "driver": "wwmon",
                    "port": str(self.monitors[bed.id].link)})
                self._api(mgr, "/assignments", {"device": dev, "site": w.site,
                                                "unit": w.unit, "bed": bed.id})
            if bed.patient and bed.dob:
                self._api(mgr, "/patients", {"id": bed.patient, "dob": bed.dob.isoformat()})
                self._api(mgr, "/admissions", {"patient": bed.patient, "site": w.site,
                                               "unit": w.unit, "bed": bed.id})

    def enroll_gateways(self) -> dict[str, Path]:
        """Each gateway's broker identity through the registry (as the biomedical engineer),
        and its edge config as the registry printed it (demo timings on top)."""
        from edge_agent.config import load_edge_config

        paths: dict[str, Path] = {}
        for gw in self.ward.gateways:
            out = self._api("biomed", f"/gateways/{gw.id}/enroll", {
                "site": self.ward.site, "unit": self.ward.unit,
                "outbox_path": str(self.workdir / f"outbox-{gw.id}.db"),
            }, retry_503_s=15.0)
            path = self.workdir / f"edge-{gw.id}.toml"
            _write_private(path, out["config"])
            cfg = load_edge_config(path)  # the registry's config, loadable as is
            cfg = cfg.model_copy(update={
                "outbox": cfg.outbox.model_copy(update={"linger_ms": 500}), "heartbeat_s": 5})
            _write_private(path, dump_edge_config(cfg))
            paths[gw.id] = path
        return paths

    def restart_engine(self) -> None:
        """kill -9 the alert engine, then start it again on its state file, as a supervisor
        would: every open alert must come back, none raised twice."""
        proc = self.procs["alerting"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        self.engine_restarts += 1
        self._spawn("alerting", *self.commands["alerting"])
        self.wait_ready(services=("alerting",))

    def wait_ready(self, deadline_s: float = 30.0, services: tuple[str, ...] = ()) -> None:
        end = time.monotonic() + deadline_s
        with httpx.Client(timeout=1.0) as http:
            for svc, port in self.metrics.items():
                if services and svc not in services:
                    continue
                while True:
                    self._check_procs()
                    with contextlib.suppress(httpx.HTTPError):
                        text = http.get(f"http://127.0.0.1:{port}/metrics").text
                        if parse_metric(text, f"wardwatch_{svc}_ready") == 1:
                            break
                    if time.monotonic() > end:
                        raise RuntimeError(f"{svc} not ready after {deadline_s} s")
                    time.sleep(0.05)  # readiness poll while the service starts

    def wait_devices_connected(self, view: WardView, deadline_s: float = 30.0) -> None:
        """Start the monitors only when every gateway has its devices open (pyserial flushes
        the input buffer on open, so earlier frames would be lost before the gateway)."""
        end = time.monotonic() + deadline_s
        want = {d for b in self.ward.beds for d in b.devices}
        while time.monotonic() < end:
            self._check_procs()
            with view.lock:
                ok = {
                    d.device_id
                    for s in view.gateways.values()
                    for d in s.devices
                    if d.state.value == "connected"
                }
            if want <= ok:
                return
            time.sleep(0.1)  # poll interval while services start
        raise RuntimeError(f"devices not connected after {deadline_s} s: {sorted(want - ok)}")

    def _check_procs(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{tail}")

    def stop_devices_and_drain(self) -> None:
        for mon in self.monitors.values():
            mon.stop()
        # the gateways still read what the monitors wrote last (a pty does not keep it for the
        # next reader); stop them once it is stored, or at the deadline
        self.wait_stored(self.published(), deadline_s=30.0)
        for name, p in self.procs.items():
            if name.startswith("edge-"):
                p.send_signal(signal.SIGTERM)
        for name, p in self.procs.items():
            if name.startswith("edge-"):
                p.wait(timeout=60)

    def published(self) -> int:
        return sum(m.emitted for m in self.monitors.values())

    def wait_stored(self, expected: int, deadline_s: float = 60.0) -> int:
        end = time.monotonic() + deadline_s
        stored = self.stack.influx.count(DB)
        while stored < expected and time.monotonic() < end:
            time.sleep(0.25)  # poll InfluxDB until ingest has written everything
            stored = self.stack.influx.count(DB)
        return stored

    def stop_services(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for mon in self.monitors.values():
            mon.close()


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    """Run the demo; returns the summary (the ``--json`` object)."""
    own_dir = opts.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="wardwatch-demo-")) if own_dir else opts.workdir
    assert workdir is not None
    workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    with contextlib.ExitStack() as cleanup:
        # SIGTERM/SIGHUP (a closed terminal) unwind like Ctrl-C, so the services we started in
        # their own sessions are stopped too; orphaned gateways would keep reopening pty paths
        # that the kernel hands to the next run.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            cleanup.callback(signal.signal, sig, signal.signal(sig, signal.default_int_handler))
        # TLS only (issue 16): the broker's one listener is TLS, no plaintext listener; every
        # process verifies it against the devstack's CA (WM_MQTT_CA_FILE, [broker.tls])
        stack = cleanup.enter_context(running_stack(workdir / "services", tls=True))
        demo = Demo(opts, stack, workdir)
        cleanup.callback(demo.stop_services)
        view = WardView(demo.ward)
        client = subscribe_view(view, _demo_params(stack), "demo-view", topics.ROOT)
        cleanup.callback(client.stop)
        demo.start()
        demo.wait_devices_connected(view)
        t0 = time.monotonic()
        wall0 = datetime.now(UTC)
        for mon in demo.monitors.values():
            mon.start()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            prev = signal.signal(sig, lambda *_: stop.set())  # end the run, then summarise
            cleanup.callback(signal.signal, sig, prev)
        end = t0 + opts.duration_s if opts.duration_s > 0 else float("inf")
        restart_at = t0 + opts.engine_restart_at()
        chart_at = [t0 + c for c in opts.charting_at()]
        nurse = cleanup.enter_context(
            Nurse(functools.partial(demo._api, "nurse", retry_503_s=10.0), demo.ward))
        if opts.headless:
            while not stop.wait(min(1.0, max(0.0, end - time.monotonic()))):
                if time.monotonic() >= end:
                    break
                if nurse.sets == 0 and time.monotonic() >= chart_at[0]:
                    nurse.round()
                if nurse.avpu_changes == 0 and time.monotonic() >= chart_at[1]:
                    nurse.avpu(demo.deteriorating[0], "V")
                if demo.engine_restarts == 0 and time.monotonic() >= restart_at:
                    demo.restart_engine()
                demo._check_procs()
        else:
            from rich.live import Live

            with Live(render(view), refresh_per_second=2) as live:
                while not stop.wait(0.5) and time.monotonic() < end:
                    live.update(render(view, title=f"wardwatch demo — {workdir}"))
                    demo._check_procs()
        demo.stop_devices_and_drain()
        published = demo.published()
        stored = demo.wait_stored(published)
        summary = {
            "beds": opts.beds,
            "published": published,
            "stored": stored,
            "lost": published - stored,
            "alerts": [
                {
                    "bed": e.alert.bed_id,
                    "event": e.event.value,
                    "condition": e.alert.condition,
                    "kind": e.alert.alert_kind.value,
                    "priority": e.alert.priority.value,
                    "at": e.at.isoformat(),
                    "t_s": round((e.at - wall0).total_seconds(), 1),
                    "message": e.alert.message,
                }
                for e in list(view.events)
            ],
            "deteriorating_beds": demo.deteriorating,
            "alerted_beds": view.clinical_alerted_beds(),
            "stable_alerted_beds": sorted(
                set(view.clinical_alerted_beds()) - set(demo.deteriorating)
            ),
            "probe_off_bed": demo.probe_off_bed,
            "engine_restarts": demo.engine_restarts,
            "charted_sets": nurse.sets,
            "charted_beds": sorted(view.charted_beds),
            "raised_twice": _raised_twice(view.events),
            "redelivered_events": view.redelivered,
            "probe_off_alert_held": _held(view.events, demo.probe_off_bed),
            "context_source": "registry",
            "mqtt_tls_only": stack.broker.tls,
            "registry_https": demo.context_url.startswith("https://"),
            "enrolled_gateways": sorted(demo.edge_configs),
            "duration_s": round(time.monotonic() - t0, 1),
            "workdir": str(workdir),
        }
    if own_dir and summary["lost"] == 0:
        shutil.rmtree(workdir, ignore_errors=True)
    return summary


class Nurse:
    """The demo's nurse: charts a full set on every bed (what no device measures), then a
    change of one child's AVPU, through the registry's API as herself (``nurse-demo``, a nurse's
    token): the registry publishes the set with her id, as for any nurse."""

    def __init__(self, post: Any, ward: UnitContext) -> None:
        self.post = post  # Demo._api bound to the nurse's token
        self.ward = ward
        self.sets = 0
        self.avpu_changes = 0

    def __enter__(self) -> Nurse:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _chart(self, bed: str, items: dict[str, Any]) -> None:
        self.post(f"/units/{self.ward.site}/{self.ward.unit}/charted-sets",
                  {"bed_id": bed, "items": items})
        self.sets += 1

    def round(self) -> None:
        for bed in self.ward.beds:
            self._chart(bed.id, {"avpu": "A", "crt_s": 1, "resp_effort": "normal",
                                 "oxygen": {"device": "room_air"}, "sbp_mmhg": 95})

    def avpu(self, bed: str, value: str) -> None:
        self.avpu_changes += 1
        self._chart(bed, {"avpu": value})


def _raised_twice(events: Any) -> list[str]:
    """``bed/condition`` raised again while its earlier alert was still open (a restart that
    forgot an alert raises it twice; a redelivered event, same event_id, is not counted)."""
    open_: set[tuple[str, str]] = set()
    twice: list[str] = []
    for e in list(events):
        key = (e.alert.bed_id, e.alert.condition)
        if e.event.value == "raised":
            if key in open_:
                twice.append("/".join(key))
            open_.add(key)
        elif e.event.value == "resolved":
            open_.discard(key)
    return twice


def _held(events: Any, bed: str) -> bool:
    """The probe-off bed's clinical alert stayed open, showing SpO2 as held, with
    ``parameter_lost`` raised: a missing item never lowers an alert."""
    evs = [e for e in list(events) if e.alert.bed_id == bed]
    held = any(e.alert.condition == "pews" and "spo2" in e.alert.held for e in evs)
    lost = any(e.alert.condition == "parameter_lost" and e.event.value == "raised" for e in evs)
    resolved = any(e.alert.condition == "pews" and e.event.value == "resolved" for e in evs)
    return held and lost and not resolved


def _write_private(path: Path, text: str) -> None:
    """A file holding a secret: created 0600 (replacing an older one)."""
    write_private(path, text)


def _demo_params(stack: Stack) -> Any:
    from servicekit.mqtt import MqttParams

    return MqttParams(
        host=stack.broker.host,
        port=stack.broker.port,
        username="demo",
        password=stack.broker.passwords["demo"],
        ca_file=stack.broker.ca_file,
    )
