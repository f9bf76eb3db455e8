"""``wardwatch chart`` offline: the time a nurse gives, and the set built from the input (the
publishing half runs on real mosquitto in tests/integration/test_charting.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console.chart import ChartInputError, build_set, parse_at
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
        ("09:30 yesterday", "Asia/Shanghai", "not an ISO 8601 time"),
        ("2026-03-01T09:30", "Mars/Olympus_Mons", "not known here"),
        ("2026-10-25T01:30", "Europe/London", "ambiguous or does not exist"),  # twice
        ("2026-03-29T01:30", "Europe/London", "ambiguous or does not exist"),  # never
    ],
)
def test_an_unusable_at_is_refused(text: str, zone: str | None, message: str) -> None:
    with pytest.raises(ChartInputError, match=message):
        parse_at(text, zone)


def test_a_set_takes_unit_and_generation_from_the_context() -> None:
    cs = build_set(UNIT, bed="b1", obs='{"avpu": "V", "crt_s": 3}', by="nurse-7",
                   observed_at=NOW - timedelta(hours=3), charted_at=NOW, supersedes="cs-old",
                   already_escalated=True)
    assert isinstance(cs, ChartedSet)
    assert (cs.unit, cs.generation, cs.bed_id, cs.by) == ("u1", Generation.DEMO, "b1", "nurse-7")
    assert cs.observed_at == NOW - timedelta(hours=3) and cs.charted_at == NOW
    assert cs.supersedes == "cs-old" and cs.already_escalated
    assert cs.set_id.startswith("cs-") and len(cs.set_id) <= 64


def test_every_set_gets_its_own_id() -> None:
    ids = {build_set(UNIT, bed="b1", obs='{"avpu": "V"}', by="n", observed_at=NOW,
                     charted_at=NOW).set_id for _ in range(100)}
    assert len(ids) == 100


@pytest.mark.parametrize(
    ("bed", "obs", "by", "message"),
    [
        ("b1", '{"pain": 3, "avpu": "V"}', "n", "set: items: not charting keys: ['pain']"),
        ("b1", '{"avpu": 5, "crt_s": Infinity}', "n", "items.crt_s"),
        ("b1", '{"oxygen": {"a": {"b": 1}}}', "n", "items.oxygen"),
        ("b1", "{}", "n", "items"),
        ("b1", "[]", "n", "must be a JSON object"),
        ("b1", "{", "n", "is not JSON"),
        ("b2", '{"avpu": "V"}', "n", "bed 'b2' is not a bed of s1/u1 (beds: b1)"),
        ("b1", '{"avpu": "V"}', "nurse\n7", "by:"),
    ],
)
def test_bad_input_is_explained(bed: str, obs: str, by: str, message: str) -> None:
    with pytest.raises(ChartInputError) as err:
        build_set(UNIT, bed=bed, obs=obs, by=by, observed_at=NOW, charted_at=NOW)
    assert message in str(err.value)
    assert "Value error" not in str(err.value)


def test_a_set_observed_after_it_was_charted_is_refused() -> None:
    with pytest.raises(ChartInputError, match="observed_at is after charted_at"):
        build_set(UNIT, bed="b1", obs='{"avpu": "V"}', by="n", observed_at=NOW,
                  charted_at=NOW - timedelta(seconds=1))
