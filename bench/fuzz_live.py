"""Live fuzz at scale (issue 8): 100,000 seeded valid and hostile payloads through a private
mosquitto + influxd, ingest and alerting; every payload must be stored or dead-lettered.

The same run and checks as ``tests/integration/test_fuzz_live.py`` (see its docstring for the
expected behaviour), on a devstack of its own in a temp dir. Progress goes to stderr; the last
line of stdout is one JSON object::

    {"published", "valid_obs", "stored", "dead_lettered", "unaccounted", "both_alive",
     "seconds", "failed_checks", ...}

``unaccounted`` = valid observations not stored + points stored that should not be + expected
ingest dead letters missing + unexpected ones. Exit status 1 if any check failed.

    .venv/bin/python bench/fuzz_live.py [--n 100000] [--seed 8] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.test_fuzz_live import run_fuzz
from wardwatch.devstack import running_stack


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="payloads to publish")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--verbose", action="store_true", help="the services' warnings on stderr")
    args = ap.parse_args()
    # one warning per dead letter would be ~50,000 lines
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.ERROR)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="fuzz-live-") as tmp, running_stack(Path(tmp)) as st:
        st.influx.create_database("fuzz")
        report = run_fuzz(st.broker, st.influx, "fuzz", n=args.n, seed=args.seed, log=log)
    for failure in report.failures:
        log(f"FAILED {failure[:2000]}")
    c = report.counts
    head = (
        "published",
        "valid_obs",
        "stored",
        "dead_lettered",
        "unaccounted",
        "both_alive",
        "seconds",
        "failed_checks",
    )
    out = {k: c.get(k) for k in head}
    out.update({k: v for k, v in c.items() if k not in out})
    print(json.dumps(out, default=str))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
