"""Throughput of ``wardwatch replay`` on a synthetic ward recording.

    python bench/replay.py                      # 40 beds x 720 lines (12 h at 1 line/min)
    python bench/replay.py --beds 40 --minutes 1440 --keep /tmp/ward.jsonl
    python bench/replay.py --labels             # + a label line per deteriorating bed at the end

Writes a recording of ``--beds`` beds, one line per bed per minute for ``--minutes`` minutes
(``beds x minutes`` device lines, plus an hourly charted set per bed merged into that minute's
line and a nurse's ``ack`` on the deteriorating beds every 30 minutes), then replays it twice:

1. in process: ``alerting.replay.replay`` over the file's lines (no interpreter start-up,
   imports already done by a warm-up on the first 200 lines);
2. as a subprocess: ``python -m wardwatch.cli replay --input FILE --json``, wall time from
   spawn to exit, i.e. including interpreter start-up, imports and writing stdout.

The recording is realistic in shape, not clinically validated: ages from newborn to 17 years
(Bedside PEWS, UK NPEWS, and NEWS2 for the 16+), vital signs drifting around an age-typical
baseline, about 15 % of beds deteriorating over the run (HR and RR rising, SpO2 falling), now
and then a probe off (``spo2_pct: null``) or an artefact (``hr_bpm: 400``). Seeded: the same
arguments give the same file.

Two more in-process phases check the extensions of issue 17: ``resume`` replays the first
half, keeps ``Replay.snapshot()`` (through JSON, as ``--state`` does), resumes on the second
half and says whether the output is the same bytes as one pass; ``compare`` feeds every line
to two replays (the default rules twice, as ``--compare`` does) and gives its lines/s.

Prints one JSON line per phase and last ``{"lines", "seconds", "lines_per_s", ...}`` for the
subprocess run (start-up included), with the in-process figures, the number of alert events,
whether both runs printed the same bytes, and the machine's 1-minute load average before and
after. No assertion on speed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: (max age in days, HR, RR, SBP): a rough age-typical baseline
BASELINES = [
    (28, 140, 45, 70),
    (365, 130, 38, 85),
    (5 * 365, 110, 26, 95),
    (12 * 365, 90, 20, 105),
    (18 * 365, 75, 16, 115),
]


def _baseline(age_days: float) -> tuple[float, float, float]:
    for top, hr, rr, sbp in BASELINES:
        if age_days <= top:
            return hr, rr, sbp
    return BASELINES[-1][1:]


def generate(path: Path, beds: int, minutes: int, seed: int, labels: bool = False) -> int:
    """Write the recording; returns the number of lines."""
    rnd = random.Random(seed)
    t0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
    ward = []
    for i in range(beds):
        age = rnd.choice([rnd.uniform(2, 28), rnd.uniform(29, 365), rnd.uniform(366, 12 * 365),
                          rnd.uniform(12 * 365, 6200)])
        system = "news2" if age >= 16 * 365.25 else rnd.choice(["bedside_pews"] * 3 + ["uk_npews"])
        hr, rr, sbp = _baseline(age)
        ward.append({
            "bed": f"bed-{i + 1:02d}", "age": round(age, 1), "system": system,
            "hr": hr, "rr": rr, "sbp": sbp, "spo2": 98.0,
            "worse": rnd.random() < 0.15, "phase": rnd.randrange(60),
        })
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for m in range(minutes):
            t = (t0 + timedelta(minutes=m)).isoformat().replace("+00:00", "Z")
            for b in ward:
                drift = m / max(minutes, 1) if b["worse"] else 0.0
                hr = b["hr"] * (1 + 0.6 * drift) + rnd.gauss(0, 4)
                rr = b["rr"] * (1 + 0.9 * drift) + rnd.gauss(0, 2)
                spo2 = min(100.0, b["spo2"] - 12 * drift + rnd.gauss(0, 1))
                inputs: dict[str, object] = {
                    "hr_bpm": round(hr), "rr_bpm": round(rr), "spo2_pct": round(spo2),
                }
                roll = rnd.random()
                if roll < 0.01:
                    inputs["spo2_pct"] = None  # probe off
                elif roll < 0.015:
                    inputs["hr_bpm"] = 400  # artefact
                if (m + b["phase"]) % 60 == 0:  # the hourly charted set
                    inputs["sbp_mmhg"] = round(b["sbp"] * (1 - 0.2 * drift) + rnd.gauss(0, 5))
                    inputs["temp_c"] = round(36.8 + 1.5 * drift + rnd.gauss(0, 0.2), 1)
                    inputs["crt_s"] = 2 if drift < 0.5 else 3
                    effort = "normal" if drift < 0.3 else ("mild" if drift < 0.7 else "moderate")
                    if b["system"] == "uk_npews":
                        inputs["resp_distress"] = "none" if effort == "normal" else effort
                        inputs["avpu"] = "A"
                    elif b["system"] == "news2":
                        inputs["consciousness"] = "A"
                        inputs["on_oxygen"] = False
                    else:
                        inputs["resp_effort"] = effort
                        inputs["oxygen"] = {"device": "room_air"}
                line: dict[str, object] = {"t": t, "bed": b["bed"]}
                if m == 0:
                    line.update(age_days=b["age"], system=b["system"])
                line["inputs"] = inputs
                f.write(json.dumps(line) + "\n")
                n += 1
                if b["worse"] and m % 30 == 29:
                    f.write(json.dumps({"t": t, "bed": b["bed"], "command": "ack"}) + "\n")
                    n += 1
        if labels:
            t = (t0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
            for b in ward:
                if b["worse"]:
                    f.write(json.dumps({"t": t, "bed": b["bed"], "label": "deterioration"}) + "\n")
                    n += 1
    return n


def in_process(path: Path) -> tuple[float, int, bytes]:
    from alerting.core import load_rules
    from alerting.replay import replay

    rules = load_rules(None)
    with path.open("rb") as f:  # warm-up: imports, tables, first evaluations
        head = [next(f, b"") for _ in range(200)]
    for _ in replay(head, rules):
        pass
    started = time.perf_counter()
    out = []
    events = 0
    with path.open("rb") as f:
        for d in replay(f, rules):
            events += "bed" in d
            out.append(json.dumps(d))
    seconds = time.perf_counter() - started
    return seconds, events, ("\n".join(out) + "\n").encode()


def resumed(path: Path) -> tuple[float, bytes]:
    """The first half, the state through JSON, then the second half on the restored replay."""
    from alerting.core import load_rules
    from alerting.replay import replay

    rules = load_rules(None)
    lines = path.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    started = time.perf_counter()
    saved: list[dict[str, object]] = []
    out = [json.dumps(d) for d in replay(lines[:half], rules,
                                         done=lambda r: saved.append(r.snapshot()))][:-1]
    state = json.loads(json.dumps(saved[0], sort_keys=True))
    out += [json.dumps(d) for d in replay(lines[half:], rules, state=state)]
    return time.perf_counter() - started, ("\n".join(out) + "\n").encode()


def compared(path: Path) -> float:
    """Both rule packs in one pass, as ``--compare`` does (the default rules twice)."""
    from alerting.core import load_rules
    from alerting.replay import Replay

    a, b = Replay(load_rules(None)), Replay(load_rules(None))
    started = time.perf_counter()
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            a.feed(raw, lineno)
            b.feed(raw, lineno)
    a.summary(beds_alerted=True)
    b.summary(beds_alerted=True)
    return time.perf_counter() - started


def as_subprocess(path: Path) -> tuple[float, bytes]:
    started = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "wardwatch.cli", "replay", "--input", str(path), "--json"],
        cwd=REPO, capture_output=True, check=True,
    )
    return time.perf_counter() - started, res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--beds", type=int, default=40)
    ap.add_argument("--minutes", type=int, default=720, help="lines per bed (1 a minute)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="write the recording here (kept)")
    ap.add_argument("--labels", action="store_true",
                    help="end with a label line per deteriorating bed (lead times in the summary)")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "ward.jsonl"
        lines = generate(path, args.beds, args.minutes, args.seed, args.labels)
        s_in, events, out_in = in_process(path)
        print(json.dumps({"phase": "in_process", "lines": lines, "seconds": round(s_in, 3),
                          "lines_per_s": round(lines / s_in), "events": events}), flush=True)
        s_res, out_res = resumed(path)
        print(json.dumps({"phase": "resume", "lines": lines, "seconds": round(s_res, 3),
                          "same_output": out_res == out_in}), flush=True)
        s_cmp = compared(path)
        print(json.dumps({"phase": "compare", "lines": lines, "seconds": round(s_cmp, 3),
                          "lines_per_s": round(lines / s_cmp)}), flush=True)
        s_sub, out_sub = as_subprocess(path)
    print(json.dumps({
        "lines": lines,
        "seconds": round(s_sub, 3),
        "lines_per_s": round(lines / s_sub),
        "phase": "subprocess (start-up included)",
        "in_process": {"seconds": round(s_in, 3), "lines_per_s": round(lines / s_in)},
        "beds": args.beds,
        "events": events,
        "same_output": out_in == out_sub,
        "resume_same_output": out_res == out_in,
        "compare_lines_per_s": round(lines / s_cmp),
        "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
