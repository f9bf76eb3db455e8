"""What users, tokens and the audit log cost the registry, in-process (FastAPI's TestClient on
a SQLite file in a temp dir), printed as JSON:

    python bench/registry_auth.py [--requests 300] [--writes 300]

- ``argon2_hash_ms`` / ``argon2_verify_ms``: the password hasher as configured (argon2-cffi's
  defaults): what one login costs in CPU, median of 5;
- ``login_ms``: POST /login end to end (verify, token row, audit records), median;
- ``get_authorized_ms``: an authenticated GET /sites (token check + the route), median and p95;
- ``write_audited_ms``: a service-layer transaction adding one bed, with its audit record
  (flush, head lock, append), median and p95; ``audit_verify_ms_per_1000``: verify's walk.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from registry import assets, audit, users
from registry.api import create_app
from registry.db import open_database, transaction
from registry.schemas import BedRequest, SiteRequest, UnitRequest

warnings.filterwarnings("ignore")
from fastapi.testclient import TestClient  # noqa: E402

PW = "correct horse battery"


def timed(fn: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1000)
    return out


def p95(xs: list[float]) -> float:
    return sorted(xs)[int(len(xs) * 0.95) - 1] if xs else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--writes", type=int, default=300)
    args = ap.parse_args()
    h = users.hasher()
    stored = h.hash(PW)
    hash_ms = statistics.median(timed(lambda: h.hash(PW), 5))
    verify_ms = statistics.median(timed(lambda: h.verify(stored, PW), 5))
    with tempfile.TemporaryDirectory() as d:
        engine = open_database(f"sqlite:///{Path(d) / 'r.db'}")
        now = datetime.now(UTC)
        with transaction(engine) as s:
            users.add_user(s, users.UserRequest(id="um", role="unit_manager",
                                                password=SecretStr(PW)), now=now)
            assets.add_site(s, SiteRequest(id="demo"), now=now)
            assets.add_unit(s, UnitRequest.model_validate(
                {"site": "demo", "id": "picu", "time_zone": "UTC"}), now=now)
        with TestClient(create_app(engine)) as c:
            logins = timed(lambda: c.post("/login", json={"user": "um", "password": PW}), 5)
            token = c.post("/login", json={"user": "um", "password": PW}).json()["token"]
            hdr = {"Authorization": f"Bearer {token}"}
            gets = timed(lambda: c.get("/sites", headers=hdr), args.requests)
        counter = iter(range(10**9))

        def write() -> None:
            with transaction(engine) as s:
                audit.act_as(s, "bench")
                assets.add_bed(s, "demo", "picu", BedRequest(id=f"b{next(counter)}"), now=now)

        writes = timed(write, args.writes)
        with transaction(engine) as s:
            t = time.perf_counter()
            v = audit.verify(s)
            verify_walk = (time.perf_counter() - t) * 1000
        engine.dispose()
    print(json.dumps({
        "argon2_hash_ms": round(hash_ms, 1),
        "argon2_verify_ms": round(verify_ms, 1),
        "login_ms": round(statistics.median(logins), 1),
        "get_authorized_ms_p50": round(statistics.median(gets), 2),
        "get_authorized_ms_p95": round(p95(gets), 2),
        "write_audited_ms_p50": round(statistics.median(writes), 2),
        "write_audited_ms_p95": round(p95(writes), 2),
        "audit_records": v.checked,
        "audit_verify_ms_per_1000": round(verify_walk * 1000 / max(v.checked, 1), 1),
        "audit_ok": v.ok,
    }, indent=2))


if __name__ == "__main__":
    main()
