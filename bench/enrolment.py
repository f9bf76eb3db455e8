"""Gateway enrolment on a real mosquitto (dynamic security) and a real registry database.

    python bench/enrolment.py --json [--gateways 200]

Enrols ``--gateways`` gateways one after another with the registry's service layer (what the
CLI and ``POST /gateways/{gw}/enroll`` run: the database rows, the broker identity over the
control topic, the audit record), then rotates and revokes each, and reconciles once with all
of them enrolled; prints the latency of each operation (ms: p50, p95, max), the rate, and the
wall time of one ``wardwatch registry gateway enroll`` process (imports included). Also checks
that every enrolled gateway can connect (a CONNACK with its password and bound client id) and
that every revoked one cannot.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry import assets
from registry.db import open_database, transaction
from registry.enroll import AdminSession, BrokerTarget, EnrollRequest, enroll, reconcile, revoke
from registry.enroll import rotate as rotate_gw
from registry.schemas import SiteRequest, UnitRequest
from wardwatch.devstack import Mosquitto


def _stats(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    return {"p50_ms": round(statistics.median(s), 2),
            "p95_ms": round(s[max(0, int(len(s) * 0.95) - 1)], 2),
            "max_ms": round(s[-1], 2), "per_s": round(len(s) / (sum(s) / 1000), 1)}


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateways", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    now = lambda: datetime.now(UTC)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-enrol-") as tmp:
        d = Path(tmp)
        broker = Mosquitto(d / "mosquitto")
        broker.start()
        try:
            db = f"sqlite:///{d / 'registry.db'}"
            engine = open_database(db)
            with transaction(engine) as s:
                assets.add_site(s, SiteRequest(id="s1"), now=now())
                assets.add_unit(s, UnitRequest.model_validate(
                    {"site": "s1", "id": "u1", "time_zone": "UTC"}), now=now())
            target = BrokerTarget(host=broker.host, port=broker.port)
            gws = [f"gw-{i:04d}" for i in range(args.gateways)]
            times: dict[str, list[float]] = {"enroll": [], "rotate": [], "revoke": []}
            passwords: dict[str, str] = {}
            with AdminSession(broker.params("registry")) as admin:
                for gw in gws:
                    def one(gw: str = gw) -> None:
                        out = enroll(engine, admin, gw, EnrollRequest(unit="u1", site="s1"),
                                     broker=target, actor="bench", now=now)
                        passwords[gw] = out.broker.password
                    times["enroll"].append(_timed(one))
                recon_ms = _timed(lambda: reconcile(engine, admin, fix=False, actor="bench",
                                                    now=now))
                sample = gws[:: max(1, len(gws) // 20)]
                connect_ok = sum(broker.try_connect(g, passwords[g], client_id=g)
                                 for g in sample)
                for gw in gws:
                    def rot(gw: str = gw) -> None:
                        passwords[gw] = rotate_gw(engine, admin, gw, broker=target,
                                                  actor="bench", now=now).broker.password
                    times["rotate"].append(_timed(rot))
                for gw in gws:
                    times["revoke"].append(_timed(lambda gw=gw: revoke(  # type: ignore[misc]
                        engine, admin, gw, actor="bench", now=now)))
                refused = sum(not broker.try_connect(g, passwords[g], client_id=g)
                              for g in sample)
            engine.dispose()
            # one CLI process, as an operator runs it (imports, connection, one enrolment)
            pw_file = d / "registry.pass"
            pw_file.write_text(broker.passwords["registry"])
            pw_file.chmod(0o600)
            env = {**os.environ, "WM_MQTT_HOST": broker.host, "WM_MQTT_PORT": str(broker.port),
                   "WM_MQTT_USERNAME": "registry", "WM_MQTT_PASSWORD_FILE": str(pw_file)}
            env.pop("WM_MQTT_PASSWORD", None)
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "registry", "gateway", "enroll", "gw-cli",
                            "--unit", "s1/u1", "--db", db, "--json"], env=env, check=True,
                           capture_output=True, timeout=120)
            cli_s = time.perf_counter() - t
        finally:
            broker.stop()
    result = {
        "bench": "enrolment", "gateways": args.gateways,
        **{op: _stats(ms) for op, ms in times.items()},
        "reconcile_ms": round(recon_ms, 1),
        "connect_checked": len(sample), "connect_ok": connect_ok,
        "revoked_refused": refused, "cli_enroll_s": round(cli_s, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    if connect_ok != len(sample) or refused != len(sample):
        sys.exit(1)


if __name__ == "__main__":
    main()
