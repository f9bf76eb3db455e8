"""Cost of the alert engine's durable state: restore at start, journal verification.

    python bench/alert_state.py --beds 40 --records 100000

Builds a state file as a running unit leaves it: ``--beds`` beds driven for an hour of one
reading a second (every fifth bed deteriorating, so alerts are open with held items and
timelines), their snapshots committed, and a journal of ``--records`` records appended in
commits of 10. Then measures, in this process:

* ``restore_ms``: open the state file and rebuild the engine (what a restart does before it
  connects);
* ``verify_ms``: walk and check the whole hash chain (``wardwatch alerting audit verify``);
* ``commit_us``: one commit of one bed snapshot plus two journal records and two outbox rows
  (what one alert decision costs on disk, ``synchronous=FULL``).

Prints one JSON line. No assertion on speed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerting.core import BedInfo, Reading, UnitEngine, default_rules
from alerting.journal import verify
from alerting.pews import score
from alerting.store import Entry, Outgoing, StateStore, Step
from wardwire.models import Generation, Source

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def build(path: Path, beds: int, records: int) -> int:
    eng = UnitEngine(default_rules(), score, unit="u1", generation=Generation.TEST)
    for b in range(beds):
        eng.set_bed(BedInfo(f"b{b}", "bedside_pews", age_days=1100, age_at=T0), T0)
    for s in range(3600):
        t = T0 + timedelta(seconds=s)
        eng.on_deadline(t)
        for b in range(beds):
            bad = b % 5 == 0 and s > 600
            vals = {"hr_bpm": 185.0 if bad else 105.0, "rr_bpm": 65.0 if bad else 26.0,
                    "spo2_pct": (None if s % 7 == 0 else 86.0) if bad else 98.0}
            eng.on_readings(f"b{b}", [Reading(k, v, t, Source.MEASURED, f"m{b}")
                                      for k, v in vals.items()], t)
    store = StateStore(path, site="s1", unit="u1")
    store.commit(Step(beds={k: b.snapshot() for k, b in eng.beds.items()},
                      meta={"gateway_dropped": {}}), T0.isoformat())
    body = {"alert": {"alert_id": "a-0123456789ab", "state": "active", "message": "x" * 200},
            "by": None}
    for i in range(0, records, 10):
        store.commit(Step(journal=[Entry("updated", T0.isoformat(), {**body, "n": i + j})
                                   for j in range(min(10, records - i))]), T0.isoformat())
    store.close()
    return sum(len(b.episodes) for b in eng.beds.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beds", type=int, default=40)
    ap.add_argument("--records", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "state.sqlite"
        open_alerts = build(path, args.beds, args.records)
        t = time.perf_counter()
        store = StateStore(path, site="s1", unit="u1")
        eng = UnitEngine(default_rules(), score, unit="u1", generation=Generation.TEST)
        eng.restore_beds(store.beds(), store.meta("gateway_dropped") or {})
        restore_ms = (time.perf_counter() - t) * 1000
        restored = sum(len(b.episodes) for b in eng.beds.values())
        t = time.perf_counter()
        n, broken = verify(store.journal())
        verify_ms = (time.perf_counter() - t) * 1000
        bed = next(iter(eng.beds.values())).snapshot()
        out = [Outgoing("t", b"x" * 600, True), Outgoing("e", b"y" * 900, False)]
        t = time.perf_counter()
        k = 200
        for i in range(k):
            store.commit(Step(beds={"b0": bed}, journal=[Entry("updated", T0.isoformat(),
                                                              {"i": i})] * 2, outbox=out),
                         T0.isoformat())
        commit_us = (time.perf_counter() - t) / k * 1e6
        size = path.stat().st_size
        store.close()
    print(json.dumps({
        "beds": args.beds, "open_alerts": open_alerts, "restored_alerts": restored,
        "restore_ms": round(restore_ms, 1), "journal_records": n, "intact": broken is None,
        "verify_ms": round(verify_ms, 1), "verify_records_per_s": round(n / verify_ms * 1000),
        "commit_us": round(commit_us), "state_bytes": size,
    }))


if __name__ == "__main__":
    main()
