"""Charting offline: the time a nurse gives (``--at`` / ``observed_at``), and the set the
registry builds from an entry (``wardwire.charting``; the route is tested in
tests/unit/registry/test_charting_api.py, the whole path on real mosquitto in
tests/integration/test_charting.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.chart import ChartInputError, check_at, items_of, parse_at, unit_of_url
from wardwire.charting import (
    MAX_AHEAD,
    MAX_BACK_ENTRY,
    MAX_SET_BYTES,
    ChartEntryError,
    UnknownBed,
    build_charted_set,
)
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import ChartedSet, Generation

UNIT = UnitContext(
    site="s1",
    unit="u1",
    time_zone="Asia/Shanghai",
    generation=Generation.DEMO,
    gateways=[GatewayContext(id="gw1")],
    beds=[BedContext(id="b1", gateway="gw1", devices=["d1"])],
)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def build(**kw: object) -> ChartedSet:
    args: dict[str, object] = {"bed_id": "b1", "items": {"avpu": "V"}, "by": "n", "now": NOW}
    args.update(kw)
    return build_charted_set(UNIT, **args)  # type: ignore[arg-type]


def test_at_with_an_offset_is_taken_as_given() -> None:
    assert parse_at("2026-03-01T09:30:00+08:00", None) == datetime(2026, 3, 1, 1, 30, tzinfo=UTC)
    assert parse_at("2026-03-01T09:30Z", "Asia/Shanghai") == datetime(2026, 3, 1, 9, 30,
                                                                       tzinfo=UTC)


def test_at_without_an_offset_is_the_units_local_time() -> None:
    assert parse_at("2026-03-01T09:30", "Asia/Shanghai") == datetime(2026, 3, 1, 1, 30,
                                                                      tzinfo=UTC)
    assert parse_at("2026-07-01T09:30", "Europe/London") == datetime(2026, 7, 1, 8, 30,
                                                                      tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "zone", "message"),
    [
        ("2026-03-01T09:30", None, "has no UTC offset"),
        ("09:30 yesterday", "Asia/Shanghai", "--at '09:30 yesterday' is not an ISO 8601 time"),
        ("2026-03-01T09:30", "Mars/Olympus_Mons", "not known here"),
        ("2026-03-01T09:30", "../../etc/passwd", "not known here"),
        ("2026-10-25T01:30", "Europe/London", "ambiguous or does not exist"),  # twice
        ("2026-03-29T01:30", "Europe/London", "ambiguous or does not exist"),  # never
    ],
)
def test_an_unusable_at_is_refused(text: str, zone: str | None, message: str) -> None:
    with pytest.raises(ChartInputError, match=message):
        parse_at(text, zone)


def test_a_set_takes_unit_generation_and_charted_at_from_the_registry() -> None:
    cs = build(items={"avpu": "V", "crt_s": 3}, by="nurse-7",
               observed_at=NOW - timedelta(hours=3), supersedes="cs-old",
               already_escalated=True)
    assert (cs.unit, cs.generation, cs.bed_id, cs.by) == ("u1", Generation.DEMO, "b1", "nurse-7")
    assert cs.observed_at == NOW - timedelta(hours=3) and cs.charted_at == NOW
    assert cs.supersedes == "cs-old" and cs.already_escalated
    assert cs.set_id.startswith("cs-") and len(cs.set_id) <= 64
    assert build().observed_at == NOW  # no time: now
    assert build(observed_at="2026-03-01T17:30").observed_at == NOW - timedelta(hours=2,
                                                                                minutes=30)


def test_every_set_gets_its_own_id() -> None:
    assert len({build().set_id for _ in range(100)}) == 100


@pytest.mark.parametrize(
    ("bed", "items", "by", "message"),
    [
        ("b1", {"pain": 3, "avpu": "V"}, "n", "set: items: not charting keys: ['pain']"),
        ("b1", {"avpu": 5, "crt_s": float("inf")}, "n", "items.crt_s"),
        ("b1", {"crt_s": float("nan")}, "n", "items.crt_s"),
        ("b1", {"oxygen": {"a": {"b": 1}}}, "n", "items.oxygen"),
        ("b1", {}, "n", "items"),
        ("b1", ["avpu"], "n", "must be an object"),
        ("b1", {"avpu": "V"}, "nurse\n7", "by:"),
        ("b1", {"avpu": "V"}, "", "by:"),
        ("b1", {"avpu": object()}, "n", "not JSON values"),
        ("b1", {"avpu": "x" * (MAX_SET_BYTES + 1)}, "n", "larger than"),
    ],
)
def test_bad_input_is_explained(bed: str, items: object, by: str, message: str) -> None:
    with pytest.raises(ChartEntryError) as err:
        build(bed_id=bed, items=items, by=by)
    assert message in str(err.value)
    assert "Value error" not in str(err.value)


def test_a_bed_the_unit_does_not_have_is_its_own_error() -> None:
    with pytest.raises(UnknownBed, match=r"bed 'b2' is not a bed of s1/u1 \(beds: b1\)"):
        build(bed_id="b2")


def test_the_time_bounds() -> None:
    assert build(observed_at=NOW + MAX_AHEAD).observed_at == NOW  # two clocks: taken as now
    with pytest.raises(ChartEntryError, match="in the future"):
        build(observed_at=NOW + MAX_AHEAD + timedelta(microseconds=1))
    assert build(observed_at=NOW - MAX_BACK_ENTRY).observed_at == NOW - MAX_BACK_ENTRY
    with pytest.raises(ChartEntryError, match="too old for a back-entry"):
        build(observed_at=NOW - MAX_BACK_ENTRY - timedelta(microseconds=1))
    with pytest.raises(ChartEntryError, match="no UTC offset"):
        build(observed_at=datetime(2026, 3, 1, 11, 0))
    with pytest.raises(ValueError, match="aware"):
        build(now=datetime(2026, 3, 1, 12, 0))


def test_obs_must_be_a_json_object() -> None:
    assert items_of('{"avpu": "V"}') == {"avpu": "V"}
    for text, words in (("{", "is not JSON"), ("[]", "must be a JSON object"),
                        ("[" * 100_000, ""), ('{"crt_s": NaN}', "items.crt_s: not a finite"),
                        ('{"o": {"a": -1e400}}', "items.o: not a finite"),
                        ('{"r": [1, Infinity]}', "items.r: not a finite")):
        with pytest.raises(ChartInputError, match=words):
            items_of(text)


def test_the_unit_is_the_one_the_context_url_names() -> None:
    assert unit_of_url("https://reg.ward:8443/units/s1/picu/context") == ("s1", "picu")
    assert unit_of_url("http://127.0.0.1:1/base/units/s-1/u.2/") == ("s-1", "u.2")
    assert unit_of_url("https://r/units/s1/u1/context?at=2026-01-01T00:00Z") == ("s1", "u1")
    for url in ("https://r/units/s1", "https://r/", "https://r/units/s1/u1/beds",
                "https://r/units/../u1/context", "https://r/units/s1/u%2F1/context"):
        with pytest.raises(ChartInputError, match="not a unit's URL"):
            unit_of_url(url)


def test_at_is_sent_as_given_once_it_is_a_time() -> None:
    assert check_at("2026-03-01T09:30") == "2026-03-01T09:30"
    with pytest.raises(ChartInputError, match="--at 'noon' is not an ISO 8601 time"):
        check_at("noon")


def test_ingest_has_the_same_size_limit() -> None:
    from ingest.chart import MAX_CHART_BYTES

    assert MAX_SET_BYTES == MAX_CHART_BYTES


SCALAR = st.one_of(st.text(max_size=80), st.floats(), st.booleans(), st.none(),
                   st.integers(-10**20, 10**20))
ITEMS = st.dictionaries(
    st.one_of(st.sampled_from(sorted(__import__("wardwire.models").models.CHART_KEYS)),
              st.text(max_size=8)),
    st.one_of(SCALAR, st.lists(st.text(max_size=70), max_size=20),
              st.dictionaries(st.text(max_size=40), SCALAR, max_size=10)),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(items=ITEMS, ahead=st.integers(-8 * 86400, 120), by=st.text(max_size=70))
def test_a_set_built_is_one_every_consumer_takes_and_nothing_else_escapes(
    items: dict[str, object], ahead: int, by: str
) -> None:
    """Whatever the entry: either a ChartEntryError, or a set that round-trips through its own
    JSON bytes (what ingest and the alert engine parse), charted now, observed no later."""
    try:
        cs = build(items=items, by=by, observed_at=NOW + timedelta(seconds=ahead))
    except ChartEntryError:
        return
    again = ChartedSet.model_validate_json(cs.model_dump_json())
    assert again == cs and cs.charted_at == NOW and cs.observed_at <= NOW
    assert cs.observed_at >= NOW - MAX_BACK_ENTRY
    assert len(cs.model_dump_json().encode()) <= MAX_SET_BYTES
    assert json.loads(cs.model_dump_json())["by"] == by
