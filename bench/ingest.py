"""Ingest benchmark: the end-to-end rate against the ceilings measured in the same run.

Three phases on one fresh mosquitto + influxd, with the same observations each time (ward-scale
load: G simulated gateways x B beds x 8 parameters, one batch per gateway per simulated second):

1. InfluxDB's raw write ceiling: one writer POSTing the points pre-encoded, 20,000 per request.
2. The MQTT path's ceiling: the same messages through mosquitto to a bare QoS 1 subscriber.
3. End to end: the same messages published to mosquitto, consumed by an ingest worker process
   (validate, encode, write, ack after write); the clock stops when the worker has written all.

``lost`` = observations published (acknowledged by the broker) minus observations queried back
from InfluxDB. Last line of output (``--json``):
``{"obs_per_s", "influx_ceiling_obs_per_s", "ratio", "mqtt_ceiling_obs_per_s", "ratio_mqtt",
"lost", "write_p50_ms", "write_p99_ms"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_sims.loadgen import LoadSpec
from ingest.core import Accepted, WardIndex, route
from servicekit.context import dump_ward_file
from servicekit.metrics import parse_metric
from servicekit.mqtt import MqttParams, connect_blocking, make_client
from wardwatch.devstack import Stack, free_port, running_stack
from wardwire import topics


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def influx_ceiling(stack: Stack, lines: list[str]) -> float:
    stack.influx.create_database("ceiling")
    chunks = ["\n".join(lines[i : i + 20_000]).encode() for i in range(0, len(lines), 20_000)]
    auth = ("ingest", stack.influx.writer_password)
    with httpx.Client(timeout=60) as http:
        t0 = time.monotonic()
        for body in chunks:
            r = http.post(
                f"{stack.influx.url}/write",
                params={"db": "ceiling", "precision": "ns"},
                content=body,
                auth=auth,
            )
            r.raise_for_status()
        elapsed = time.monotonic() - t0
    stored = stack.influx.count("ceiling")
    if stored != len(lines):
        log(f"warning: ceiling db holds {stored} of {len(lines)}")
    return len(lines) / elapsed


class Counter:
    """A bare subscriber counting messages and noting first/last arrival times."""

    def __init__(self, stack: Stack, filt: str, expect: int, qos: int) -> None:
        p = MqttParams(
            host=stack.broker.host,
            port=stack.broker.port,
            username="admin",
            password=stack.broker.passwords["admin"],
            session_expiry_s=0,
        )
        self.n = 0
        self.first = self.last = 0.0
        self.expect = expect
        self.done = threading.Event()
        self.sub = threading.Event()
        self.client = make_client(p, client_id=f"bench-counter-{qos}")
        self.client.on_connect = lambda c, u, f, rc, pr: c.subscribe(filt, qos=qos)
        self.client.on_subscribe = lambda *a: self.sub.set()
        self.client.on_message = self._on
        connect_blocking(self.client, p)
        self.sub.wait(10)

    def _on(self, c: Any, u: Any, m: Any) -> None:
        now = time.monotonic()
        if self.n == 0:
            self.first = now
        self.n += 1
        self.last = now
        if self.n >= self.expect:
            self.done.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_loadgen(
    stack: Stack, spec: LoadSpec, seconds: int, env_extra: dict[str, str]
) -> dict[str, Any]:
    env = {**os.environ, **stack.env("loadgen"), "WM_TOPIC_ROOT": spec.root, **env_extra}
    cmd = [
        sys.executable,
        "-m",
        "wardwatch.cli",
        "sim",
        "loadgen",
        "--gateways",
        str(spec.gateways),
        "--beds-per-gateway",
        str(spec.beds_per_gateway),
        "--seconds",
        str(seconds),
        "--connections",
        "2",
        "--site",
        spec.site,
        "--unit",
        spec.unit,
        "--prebuild",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def metric(text: str, name: str) -> float:
    return parse_metric(text, name) or 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print the JSON summary line")
    ap.add_argument("--quick", action="store_true", help="small run (< 60 s)")
    ap.add_argument("--gateways", type=int)
    ap.add_argument("--beds-per-gateway", type=int, default=10)
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--profile", type=Path, help="py-spy collapsed stacks of the ingest worker")
    ap.add_argument("--workers", type=int, default=1, help="ingest workers (>1: shared sub)")
    args = ap.parse_args()
    gateways = args.gateways or (100 if args.quick else 500)
    seconds = args.seconds or 25

    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-") as tmp:
        work = Path(tmp)
        with running_stack(work / "services") as stack:
            spec = LoadSpec(
                gateways=gateways, beds_per_gateway=args.beds_per_gateway, root="bench/v1"
            )
            ward_path = work / "ward.toml"
            ward_path.write_text(dump_ward_file(spec.ward()), encoding="utf-8")
            log(f"building {gateways * seconds} messages ({spec.beds} beds) ...")
            msgs = list(spec.payloads(seconds))
            index = WardIndex(spec.ward())
            lines: list[str] = []
            for t, p in msgs:
                acc = route(t, p, index, root=spec.root)
                assert isinstance(acc, Accepted), acc
                lines.extend(acc.lines)
            n_obs = len(lines)
            del msgs

            log(f"phase 1: InfluxDB raw write ceiling, {n_obs} points ...")
            ceiling = influx_ceiling(stack, lines)
            del lines

            log("phase 2: MQTT ceiling (bare subscriber) ...")
            filt = topics.gateway_obs(spec.site, spec.unit, "+", root=spec.root)
            counter = Counter(stack, filt, gateways * seconds, qos=1)
            pub = run_loadgen(stack, spec, seconds, {})
            counter.done.wait(120)
            mqtt_rate = (
                n_obs * counter.n / (gateways * seconds) / max(1e-9, counter.last - counter.first)
            )
            counter.close()

            log(f"phase 3: end to end through {args.workers} ingest worker(s) ...")
            stack.influx.create_database("e2e")
            env = {
                **os.environ,
                **stack.env("ingest", "e2e"),
                "WM_TOPIC_ROOT": spec.root,
                "WM_WARD_FILE": str(ward_path),
                "WM_LOG_LEVEL": "WARNING",
            }
            workers: list[tuple[subprocess.Popen[bytes], str, Path]] = []
            for k in range(args.workers):
                mport = free_port()
                stats = work / f"ingest-stats-{k}.json"
                cmd = [
                    sys.executable,
                    "-m",
                    "ingest",
                    "run",
                    "--worker-id",
                    f"bench-ingest-{k}",
                    "--metrics-port",
                    str(mport),
                    "--stats-file",
                    str(stats),
                    "--no-seq-audit",
                    "--subscription",
                    "shared" if args.workers > 1 else "exclusive",
                ]
                log_f = open(work / f"ingest-{k}.log", "wb")  # noqa: SIM115 - owned by the child
                proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log_f)
                workers.append((proc, f"http://127.0.0.1:{mport}/metrics", stats))
            try:
                with httpx.Client(timeout=2) as http:

                    def total(name: str) -> float:
                        out = 0.0
                        for _, url, _ in workers:
                            try:
                                out += metric(http.get(url).text, name)
                            except httpx.HTTPError:
                                out += 0.0
                        return out

                    end = time.monotonic() + 30
                    while total("wardwatch_ingest_ready") < args.workers:
                        if time.monotonic() > end:
                            raise RuntimeError("ingest workers not ready")
                        time.sleep(0.05)
                    spy = None
                    if args.profile is not None:  # sample the first worker while it works
                        spy = subprocess.Popen(
                            [
                                "py-spy",
                                "record",
                                "--pid",
                                str(workers[0][0].pid),
                                "--format",
                                "raw",
                                "--rate",
                                "250",
                                "--duration",
                                "8",
                                "-o",
                                str(args.profile),
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    first = Counter(stack, filt, 1, qos=0)
                    pub = run_loadgen(stack, spec, seconds, {})
                    published = int(pub["observations"])
                    end = time.monotonic() + 300
                    written = 0.0
                    while time.monotonic() < end:
                        written = total("wardwatch_ingest_written_observations_total")
                        if written >= published:
                            break
                        time.sleep(0.02)
                    t_done = time.monotonic()
                    e2e_rate = written / max(1e-9, t_done - first.first)
                    first.close()
                    if spy is not None:
                        spy.wait(60)
            finally:
                for proc, _, _ in workers:
                    proc.send_signal(signal.SIGTERM)
                for proc, _, _ in workers:
                    proc.wait(60)
            stored = stack.influx.count("e2e")
            lat: list[dict[str, Any]] = [
                json.loads(st.read_text()) for _, _, st in workers if st.exists()
            ]
            st = {
                "write_p50_ms": max((x["write_p50_ms"] for x in lat), default=None),
                "write_p99_ms": max((x["write_p99_ms"] for x in lat), default=None),
                "dead_lettered": sum(x["dead_lettered"] for x in lat),
            }

    result = {
        "obs_per_s": round(e2e_rate),
        "influx_ceiling_obs_per_s": round(ceiling),
        "ratio": round(e2e_rate / ceiling, 3),
        "mqtt_ceiling_obs_per_s": round(mqtt_rate),
        "ratio_mqtt": round(e2e_rate / mqtt_rate, 3),
        "lost": published - stored,
        "write_p50_ms": st.get("write_p50_ms"),
        "write_p99_ms": st.get("write_p99_ms"),
    }
    detail = {
        "observations": n_obs,
        "beds": spec.beds,
        "gateways": gateways,
        "messages": gateways * seconds,
        "published_obs": published,
        "stored_obs": stored,
        "dead_lettered": st.get("dead_lettered"),
    }
    log(json.dumps(detail))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
