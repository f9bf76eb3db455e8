"""Ingest's charting path, pure: ``ingest.chart.route_chart`` (what is stored, what is refused and
why) and the charted record's fields (``ingest.storage``), without any service."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.chart import MAX_CHART_BYTES, AcceptedChart, route_chart
from ingest.core import Rejected
from ingest.storage import (
    CHARTED_RP,
    DownsamplingPlan,
    charted_fields,
    charted_items,
    time_ns,
)
from tests.unit.core.test_lineproto import parse_line
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import CHART_KEYS, ChartedSet, Generation

WARD = UnitContext(
    site="s1",
    unit="u1",
    generation=Generation.TEST,
    gateways=[GatewayContext(id="gw1")],
    beds=[BedContext(id="b1", gateway="gw1", devices=["d1"]),
          BedContext(id="b2", gateway="gw1", devices=["d2"])],
)
TOPIC = topics.charting("s1", "u1")
OBSERVED = datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)


def chart_set(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema_version": 1,
        "kind": "charted_set",
        "set_id": "cs-1",
        "unit": "u1",
        "bed_id": "b1",
        "by": "nurse-7",
        "observed_at": OBSERVED.isoformat(),
        "charted_at": (OBSERVED + timedelta(hours=3)).isoformat(),
        "generation": "test",
        "items": {"avpu": "V", "crt_s": 3, "oxygen": {"device": "NP", "flow_lpm": 1.5},
                  "resp_signs": ["grunting"], "on_oxygen": True, "rr_bpm": None},
    }
    body.update(over)
    return body


def route(body: dict[str, Any] | bytes, topic: str = TOPIC) -> AcceptedChart | Rejected:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return route_chart(topic, payload, WARD)


def test_a_set_becomes_one_point_at_its_observed_time() -> None:
    acc = route(chart_set())
    assert isinstance(acc, AcceptedChart)
    (line,) = acc.lines
    head, fields, ts = parse_line(line)
    assert head == "charted,bed=b1,by=nurse-7,generation=test,set_id=cs-1,unit=u1"
    assert int(ts) == time_ns(OBSERVED) == 1772355600123456000  # microseconds kept
    assert {k: v for k, (_raw, v) in fields.items()} == {
        "avpu__str": "V",
        "crt_s": 3.0,
        "oxygen__json": '{"device":"NP","flow_lpm":1.5}',
        "resp_signs__json": '["grunting"]',
        "on_oxygen__bool": True,
        "rr_bpm__json": "null",
        "charted_at": "2026-03-01T12:00:00.123456+00:00",
        "already_escalated": False,
    }
    assert fields["crt_s"][0] == "3.0"  # a float field, never an integer one


def test_a_correction_is_tagged_with_the_set_it_supersedes() -> None:
    acc = route(chart_set(set_id="cs-2", supersedes="cs-1", already_escalated=True))
    assert isinstance(acc, AcceptedChart) and acc.supersedes == "cs-1"
    head, fields, _ = parse_line(acc.lines[0])
    assert ",set_id=cs-2,supersedes=cs-1," in head
    assert fields["already_escalated"][1] is True


def test_the_same_set_twice_is_the_same_point() -> None:
    """Idempotent: a redelivered set writes the same series at the same time again."""
    assert route(chart_set()) == route(chart_set())


def test_a_staff_id_with_separators_is_escaped_in_its_tag() -> None:
    acc = route(chart_set(by="Sr. Ng, ward 4=PICU"))
    assert isinstance(acc, AcceptedChart)
    assert r",by=Sr.\ Ng\,\ ward\ 4\=PICU," in acc.lines[0]


@pytest.mark.parametrize(
    ("body", "kind", "reason"),
    [
        (chart_set(items={"avpu": "V", "pain_score": 3}), "malformed",
         "not charting keys: ['pain_score']"),
        (chart_set(items={"avpu": {"nested": {"deeper": 1}}}), "malformed", "items.avpu"),
        (chart_set(items={"resp_signs": [["junk"]]}), "malformed", "items.resp_signs"),
        (chart_set(items={"avpu": "V" * 65}), "malformed", "items.avpu"),
        (chart_set(items={k: 1.0 for k in sorted(CHART_KEYS)} | {"x" * i: 1 for i in range(9)}),
         "malformed", "items"),
        (chart_set(items={}), "malformed", "items"),
        (chart_set(items={"hr_bpm": float("nan")}), "malformed", "items.hr_bpm"),
        (chart_set(items={"hr_bpm": "NaN"}), "accepted", ""),  # a string: the scorer judges it
        (chart_set(bed_id="b9"), "unknown_bed", "bed 'b9' is not a bed of s1/u1"),
        (chart_set(unit="u2"), "wrong_unit", "set for unit 'u2'"),
        (chart_set(generation="real"), "wrong_generation", "real data on a test ward"),
        (chart_set(supersedes="cs-1"), "malformed", "cannot supersede itself"),
        (chart_set(by="nurse\\"), "unstorable", "backslash"),
        (chart_set(observed_at="2026-03-01T13:00:00Z"), "malformed",
         "observed_at is after charted_at"),
        (chart_set(set_id="cs 1"), "malformed", "set_id"),
        (chart_set(by=""), "malformed", "by"),
        (chart_set(extra="x"), "malformed", "extra"),
        (b"not json", "malformed", "(payload)"),
        (b"[]", "malformed", ""),
        (b'{"kind": "observation_batch"}', "malformed", ""),
    ],
)
def test_hostile_or_wrong_sets_are_refused_with_a_reason(
    body: dict[str, Any] | bytes, kind: str, reason: str
) -> None:
    got = route(body)
    if kind == "accepted":
        assert isinstance(got, AcceptedChart)
        return
    assert isinstance(got, Rejected), got
    assert got.kind == kind and reason in got.reason, got


def test_an_oversized_payload_is_refused_before_it_is_parsed() -> None:
    padded = json.dumps(chart_set()).encode()
    padded = padded[:-1] + b" " * MAX_CHART_BYTES + b"}"  # valid JSON, only whitespace added
    got = route(padded)
    assert isinstance(got, Rejected) and got.kind == "oversized", got
    assert f"at most {MAX_CHART_BYTES}" in got.reason


def test_the_largest_set_the_contract_allows_fits_well_under_the_cap() -> None:
    """Every charting key, each an object of 8 entries with the longest keys and values,
    every character one JSON escapes as ``\\uXXXX``: still under half the cap."""
    ugly = "\x01" * 64
    items = {k: {f"{i}".rjust(32, "\x02"): ugly for i in range(8)} for k in sorted(CHART_KEYS)}
    body = chart_set(items=items, by="n" * 64, set_id="s" * 64, supersedes="p" * 64)
    payload = json.dumps(body).encode()
    assert isinstance(ChartedSet.model_validate_json(payload), ChartedSet)
    assert len(payload) < MAX_CHART_BYTES / 2, len(payload)
    assert isinstance(route(payload), AcceptedChart)


def test_a_set_on_another_units_topic_or_root_is_refused() -> None:
    for t in (topics.charting("s1", "u2"), topics.charting("s2", "u1"),
              topics.charting("s1", "u1", root="xx/v1"), TOPIC + "/extra"):
        got = route(chart_set(), topic=t)
        assert isinstance(got, Rejected) and got.kind == "topic", (t, got)


def test_a_set_charted_now_for_an_hour_ago_is_stored_at_the_hour_ago() -> None:
    now = datetime.now(UTC)
    acc = route(chart_set(observed_at=(now - timedelta(hours=3)).isoformat(),
                          charted_at=now.isoformat()))
    assert isinstance(acc, AcceptedChart)
    _, fields, ts = parse_line(acc.lines[0])
    assert int(ts) == time_ns(now - timedelta(hours=3))
    assert fields["charted_at"][1] == now.isoformat()


# -- the record's fields ---------------------------------------------------------------------
scalars = st.one_of(
    st.text(max_size=64), st.floats(allow_nan=False, allow_infinity=False), st.booleans()
)
values = st.one_of(
    scalars,
    st.none(),
    st.lists(st.text(max_size=64), max_size=16),
    st.dictionaries(st.text(max_size=32), st.none() | scalars, max_size=8),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.dictionaries(st.sampled_from(sorted(CHART_KEYS)), values, min_size=1))
def test_items_come_back_from_their_fields_as_charted(items: dict[str, Any]) -> None:
    cs = ChartedSet.model_validate_json(json.dumps(chart_set(items=items)))
    fields = charted_fields(cs.items)
    assert len(fields) == len(cs.items)  # one field per item
    assert charted_items(fields) == cs.items


def test_one_item_in_two_kinds_is_two_field_names() -> None:
    """InfluxDB refuses a field whose type differs from earlier points in the shard; a kind
    of its own per name makes that impossible."""
    a, b, c = (charted_fields({"crt_s": v}) for v in (3.0, "<2", True))
    assert set(a) == {"crt_s"} and set(b) == {"crt_s__str"} and set(c) == {"crt_s__bool"}


def test_setup_creates_a_charted_policy_that_never_expires() -> None:
    stmts = DownsamplingPlan("w").setup_statements()
    create = [s for s in stmts if s.startswith(f'CREATE RETENTION POLICY "{CHARTED_RP}"')]
    assert create == ['CREATE RETENTION POLICY "charted" ON "w" DURATION INF REPLICATION 1 '
                      "SHARD DURATION 52w"]
    assert f'ALTER RETENTION POLICY "{CHARTED_RP}" ON "w" DURATION INF' in stmts
    assert not any("DEFAULT" in s and CHARTED_RP in s for s in stmts)  # raw stays the default
