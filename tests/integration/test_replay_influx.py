"""``wardwatch replay --from-influx`` on a real influxd: a unit's history written the way ingest
writes it (ingest's own ``route`` / ``route_chart`` turn wire messages into line protocol,
written as the ``ingest`` user into a database set up by ``setup_database``), read back as the
``reader`` user, with ages from a ward file or a registry-style context URL."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from typer.testing import CliRunner

from ingest.chart import AcceptedChart, route_chart
from ingest.core import Accepted, WardIndex, route
from ingest.storage import DownsamplingPlan, setup_database, write_charted
from servicekit.context import dump_ward_file
from servicekit.influx import InfluxTarget, write
from wardwatch.cli import app
from wardwatch.devstack import Stack
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import ChartedSet, Generation, Observation, ObservationBatch, Quality

pytestmark = pytest.mark.integration

#: within the raw retention policy (30 days: InfluxDB refuses older points), whole minutes
T0 = (datetime.now(UTC) - timedelta(hours=6)).replace(second=0, microsecond=0)
MINUTES = 180
runner = CliRunner()
WARD = UnitContext(
    site="s1",
    unit="u1",
    generation=Generation.TEST,
    gateways=[GatewayContext(id="gw1")],
    beds=[
        BedContext(id="b1", gateway="gw1", devices=["mon1"], patient="P-aaaa1",
                   dob=date(2021, 3, 1)),
        BedContext(id="b2", gateway="gw1", devices=["mon2"], patient="P-bbbb2",
                   dob=date(2012, 7, 1)),
        BedContext(id="b3", gateway="gw1", devices=["mon3"]),  # no child admitted
    ],
)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def vitals(bed: str, m: int) -> dict[str, float]:
    if bed == "b1" and m >= 60:  # b1 deteriorates after an hour
        return {"HR": 185.0, "RR": 65.0, "SPO2": 86.0}
    if bed == "b2":
        return {"HR": 80.0, "RR": 18.0, "SPO2": 98.0}
    return {"HR": 110.0, "RR": 25.0, "SPO2": 98.0}


def batches() -> Iterator[bytes]:
    for m in range(MINUTES):
        t = T0 + timedelta(minutes=m)
        obs = []
        for bed, dev in (("b1", "mon1"), ("b2", "mon2"), ("b3", "mon3")):
            for code, v in vitals(bed, m).items():
                q = Quality.VALID
                if bed == "b2" and m == 30 and code == "SPO2":
                    q, v = Quality.INVALID, 10.0  # probe off
                elif bed == "b2" and m == 31 and code == "SPO2":
                    q = Quality.QUESTIONABLE
                obs.append(Observation(
                    device_id=dev, code=code, value=v, unit=_UNIT[code], measured_at=t,
                    received_at=t, quality=q,
                    quality_reason="probe off" if q is Quality.INVALID else None,
                ))
        yield ObservationBatch(
            gateway_id="gw1", seq=m + 1, sent_at=t, generation=Generation.TEST, observations=obs,
        ).model_dump_json().encode()


_UNIT = {"HR": "/min", "RR": "/min", "SPO2": "%"}


def charted_sets() -> Iterator[bytes]:
    for h in range(3):
        t = T0 + timedelta(minutes=5 + 60 * h)
        for bed in ("b1", "b2"):
            effort = "moderate" if bed == "b1" and h >= 1 else "normal"
            yield ChartedSet(
                set_id=f"set-{bed}-{h}", unit="u1", bed_id=bed, by="nurse-a", observed_at=t,
                charted_at=t + timedelta(minutes=2), generation=Generation.TEST,
                items={"resp_effort": effort, "crt_s": 2, "oxygen": {"device": "room_air"}},
            ).model_dump_json().encode()


@pytest.fixture(scope="module")
def stored(stack: Stack) -> Iterator[str]:
    """A database with the production layout holding the unit's 3 h, written as ingest does."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = InfluxTarget(stack.influx.url, name, "admin", stack.influx.admin_password)
    writer = InfluxTarget(stack.influx.url, name, "ingest", stack.influx.writer_password)
    index = WardIndex(WARD)
    topic = topics.gateway_obs("s1", "u1", "gw1")
    lines: list[str] = []
    for payload in batches():
        acc = route(topic, payload, index)
        assert isinstance(acc, Accepted), acc
        lines += acc.lines
    chart_lines: list[str] = []
    for payload in charted_sets():
        got = route_chart(topics.charting("s1", "u1"), payload, WARD)
        assert isinstance(got, AcceptedChart), got
        chart_lines += got.lines
    with httpx.Client(timeout=30) as http:
        setup_database(http, admin, DownsamplingPlan(name))
        stack.influx.grant_service_users(name)
        assert write(http, writer, lines).status_code == 204
        assert write_charted(http, writer, chart_lines).status_code == 204
    yield name
    stack.influx.drop_database(name)


@pytest.fixture
def env(stack: Stack, stored: str) -> dict[str, str]:
    return {
        "WM_INFLUX_URL": stack.influx.url,
        "WM_INFLUX_DB": stored,
        "WM_INFLUX_USERNAME": "reader",
        "WM_INFLUX_PASSWORD": stack.influx.reader_password,
    }


@pytest.fixture
def ward_file(tmp_path: Path) -> Path:
    p = tmp_path / "ward.toml"
    p.write_text(dump_ward_file(WARD), encoding="utf-8")
    return p


def replay(env: dict[str, str], *args: str, start: datetime = T0,
           end: datetime = T0 + timedelta(minutes=MINUTES)) -> Any:
    return runner.invoke(app, [
        "replay", "--from-influx", "--unit", "u1", "--start", iso(start), "--end", iso(end),
        "--generation", "test", "--json", *args,
    ], env=env)


def parsed(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = [json.loads(x) for x in stdout.splitlines()]
    return rows[:-1], rows[-1]


def test_stored_history_replays_with_ages_from_the_ward_file(
    env: dict[str, str], ward_file: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "saved.jsonl"
    res = replay(env, "--ward", str(ward_file), "--save-input", str(saved))
    assert res.exit_code == 0, res.output
    events, summary = parsed(res.stdout)
    assert summary["beds"] == 2  # b3 has no child: skipped, said on stderr
    assert "bed b3" in res.stderr and "no_admission 540" in res.stderr
    assert summary["bed_days"] == pytest.approx(2 * (MINUTES - 1) / 1440, abs=1e-4)
    raised = [e for e in events if e["event"] == "raised" and e["kind"] == "clinical"]
    assert {e["bed"] for e in raised} == {"b1"}
    assert raised[0]["priority"] == "high"
    assert T0 + timedelta(minutes=60) < datetime.fromisoformat(raised[0]["t"])
    # what was read: the bed's spec first, provenance, quality, charted sets entered
    recs = [json.loads(x) for x in saved.read_text().splitlines()]
    assert saved.stat().st_mode & 0o777 == 0o600
    first_b1 = next(r for r in recs if r["bed"] == "b1")
    assert first_b1["dob"] == "2021-03-01" and first_b1["system"] == "bedside_pews"
    assert not any(r["bed"] == "b3" for r in recs)
    assert len([r for r in recs if r["source"] == "entered"]) == 6
    probe_off = [r for r in recs if r["bed"] == "b2" and r["t"] == iso(T0 + timedelta(minutes=30))]
    assert probe_off[0]["inputs"]["spo2_pct"] is None
    assert any(r.get("quality") == "questionable" and r["bed"] == "b2" for r in recs)
    # the saved lines replay to the same bytes
    again = runner.invoke(app, ["replay", "--input", str(saved), "--unit", "u1", "--json"])
    assert again.exit_code == 0 and again.stdout == res.stdout


def test_labels_from_a_file_give_lead_times_on_stored_history(
    env: dict[str, str], ward_file: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.jsonl"
    end = T0 + timedelta(minutes=MINUTES)
    labels.write_text("".join(
        json.dumps({"t": iso(end), "bed": b, "label": "deterioration"}) + "\n"
        for b in ("b1", "b2")
    ))
    res = replay(env, "--ward", str(ward_file), "--labels", str(labels))
    assert res.exit_code == 0, res.output
    events, summary = parsed(res.stdout)
    assert summary["labelled_events"] == 2 and summary["detected"] == 1
    first = next(e for e in events if e["bed"] == "b1" and e["kind"] == "clinical")
    lead = (end - datetime.fromisoformat(first["t"])).total_seconds() / 3600
    assert summary["lead_times_h"] == [pytest.approx(lead, abs=1e-4), None]
    plain = parsed(replay(env, "--ward", str(ward_file)).stdout)[0]
    # a label line has no output line of its own; like any line, it lets the engine's timers
    # run up to its time (here: an escalation between the last reading and the label)
    assert events[: len(plain)] == plain
    last = T0 + timedelta(minutes=MINUTES - 1)
    assert all(last < datetime.fromisoformat(e["t"]) <= end for e in events[len(plain):])
    labels.write_text('{"t": "nope", "bed": "b1", "label": "x"}\n')
    bad = replay(env, "--ward", str(ward_file), "--labels", str(labels))
    assert bad.exit_code == 2 and "--labels" in bad.output


def test_paging_and_resuming_across_ranges_give_the_same_bytes(
    env: dict[str, str], ward_file: Path, tmp_path: Path
) -> None:
    whole = replay(env, "--ward", str(ward_file))
    small = replay(env, "--ward", str(ward_file), "--page-minutes", "7")
    assert whole.exit_code == small.exit_code == 0, small.output
    assert whole.stdout == small.stdout
    state = tmp_path / "state.json"
    mid = T0 + timedelta(minutes=100)
    a = replay(env, "--ward", str(ward_file), "--state", str(state), end=mid)
    b = replay(env, "--ward", str(ward_file), "--state", str(state), start=mid)
    assert a.exit_code == b.exit_code == 0, b.output
    ea, _ = parsed(a.stdout)
    eb, sb = parsed(b.stdout)
    ew, sw = parsed(whole.stdout)
    assert ea + eb == ew and sb == sw
    again = replay(env, "--ward", str(ward_file), "--state", str(state), start=mid)
    assert again.exit_code == 2 and "before the end of the saved state" in again.output


def test_a_range_much_longer_than_the_data_skips_the_empty_stretches(
    env: dict[str, str], ward_file: Path
) -> None:
    exact = replay(env, "--ward", str(ward_file))
    wide = replay(env, "--ward", str(ward_file), start=T0 - timedelta(days=20),
                  end=T0 + timedelta(days=2))
    assert wide.exit_code == 0, wide.output
    assert wide.stdout == exact.stdout
    queries = int(wide.stderr.split(" queries")[0].rsplit(" ", 1)[1])
    assert queries < 100  # 22 days of 5-minute pages would be 12,672 queries


def test_only_the_chosen_generation_is_read(env: dict[str, str], ward_file: Path) -> None:
    res = runner.invoke(app, [
        "replay", "--from-influx", "--unit", "u1", "--start", iso(T0),
        "--end", iso(T0 + timedelta(minutes=MINUTES)), "--ward", str(ward_file), "--json",
    ], env=env)  # the default: real data only
    assert res.exit_code == 0, res.output
    _, summary = parsed(res.stdout)
    assert summary["lines"] == 0 and "test unit" in res.stderr


def test_compare_on_stored_history(env: dict[str, str], ward_file: Path, tmp_path: Path) -> None:
    fast = tmp_path / "fast.toml"
    fast.write_text('version = "fast"\n[onset]\nhigh_s = 0\n')
    default = Path(__file__).resolve().parents[2] / "alerting" / "unit_rules.toml"
    res = replay(env, "--ward", str(ward_file), "--compare", str(default), str(fast))
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["a"]["beds_alerted"]["clinical"] == out["b"]["beds_alerted"]["clinical"] == 1


class _Context(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        body = WARD.model_dump_json().encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_a: object) -> None:
        pass


def test_ages_from_a_registry_url_read_as_at_the_start(env: dict[str, str]) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/units/s1/u1/context"
        res = replay(env, "--registry", url, end=T0 + timedelta(minutes=90))
    finally:
        server.shutdown()
        server.server_close()
    assert res.exit_code == 0, res.output
    at = iso(T0).replace(":", "%3A")
    assert _Context.seen == [f"/units/s1/u1/context?at={at}"]
    _, summary = parsed(res.stdout)
    assert summary["beds"] == 2


def test_influx_that_cannot_be_read_exits_1(
    env: dict[str, str], ward_file: Path, stack: Stack
) -> None:
    bad = {**env, "WM_INFLUX_PASSWORD": "wrong"}
    res = replay(bad, "--ward", str(ward_file))
    assert res.exit_code == 1 and "InfluxDB" in res.output
    assert "wrong" not in res.output  # the password is never printed
    gone = {**env, "WM_INFLUX_URL": "http://127.0.0.1:9"}
    res = replay(gone, "--ward", str(ward_file))
    assert res.exit_code == 1 and "cannot read InfluxDB" in res.output


def test_bad_options_exit_2(env: dict[str, str], ward_file: Path) -> None:
    assert replay(env).exit_code == 2  # no context
    assert replay(env, "--ward", str(ward_file), "--registry", "http://x").exit_code == 2
    naive = runner.invoke(app, [
        "replay", "--from-influx", "--unit", "u1", "--start", "2024-05-01T06:00:00",
        "--end", iso(T0 + timedelta(hours=1)), "--ward", str(ward_file),
    ], env=env)
    assert naive.exit_code == 2 and "no time zone" in naive.output
    backwards = replay(env, "--ward", str(ward_file), end=T0)
    assert backwards.exit_code == 2
    other_unit = runner.invoke(app, [
        "replay", "--from-influx", "--unit", "u2", "--start", iso(T0),
        "--end", iso(T0 + timedelta(hours=1)), "--ward", str(ward_file),
    ], env=env)
    assert other_unit.exit_code == 2 and "unit context is unit 'u1'" in other_unit.output
