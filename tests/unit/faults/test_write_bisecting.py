"""ingest.writer: a refused body is bisected so every good line is written (issue 8)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.writer import PostResult, TransientWriteError, classify, write_bisecting


class FakeInflux:
    """Refuses any body containing a bad line; with ``partial`` it stores the good ones of a
    refused body too (InfluxDB's 'partial write: points beyond retention policy')."""

    def __init__(self, bad: set[str], *, partial: bool = False) -> None:
        self.bad, self.partial = bad, partial
        self.stored: set[str] = set()
        self.requests = 0

    def __call__(self, lines: Sequence[str]) -> PostResult:
        self.requests += 1
        refused = [ln for ln in lines if ln in self.bad]
        if refused and not self.partial:
            return PostResult("refused", f"HTTP 400: unable to parse '{refused[0]}'")
        self.stored.update(ln for ln in lines if ln not in self.bad)
        if refused:
            return PostResult("refused", f"HTTP 400: partial write: dropped={len(refused)}")
        return PostResult("ok")


groups_st = st.lists(
    st.lists(st.integers(0, 10_000).map(lambda i: f"line{i}"), max_size=12, unique=True),
    max_size=12,
)


@given(groups_st, st.data(), st.booleans())
@settings(max_examples=300, deadline=None)
def test_exactly_the_refused_lines_come_back_and_all_others_are_stored(
    groups: list[list[str]], data: st.DataObject, partial: bool
) -> None:
    everything = sorted({ln for g in groups for ln in g})
    bad: set[str] = set()
    if everything:
        bad = set(data.draw(st.lists(st.sampled_from(everything), unique=True)))
    influx = FakeInflux(bad, partial=partial)
    refused = write_bisecting(groups, influx)
    assert len(refused) == len(groups)
    for g, r in zip(groups, refused, strict=True):
        assert [ln for ln, _ in r] == [ln for ln in g if ln in bad]
        assert all(reason.startswith("HTTP 400") for _, reason in r)
    assert influx.stored == set(everything) - bad


def test_one_request_when_nothing_is_refused() -> None:
    influx = FakeInflux(set())
    assert write_bisecting([["a", "b"], ["c"]], influx) == [[], []]
    assert influx.requests == 1


def test_cost_of_one_bad_line_in_20000_is_logarithmic() -> None:
    groups = [[f"m{m}l{i}" for i in range(40)] for m in range(500)]
    influx = FakeInflux({"m250l17"})
    refused = write_bisecting(groups, influx)
    assert refused[250] == [("m250l17", "HTTP 400: unable to parse 'm250l17'")]
    assert influx.requests <= 2 * (9 + 6) + 1  # log2(500) groups + log2(40) lines, two halves each


def test_transient_failure_is_raised_not_refused() -> None:
    calls: list[int] = []

    def post(lines: Sequence[str]) -> PostResult:
        calls.append(len(lines))
        if len(calls) == 1:
            return PostResult("refused", "HTTP 400: x")
        return PostResult("transient", "HTTP 503: down")

    with pytest.raises(TransientWriteError, match="503"):
        write_bisecting([["a"], ["b"]], post)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (204, "ok"),
        (200, "ok"),
        (400, "refused"),
        (413, "refused"),
        (401, "transient"),  # credentials: a person fixes them; never drop data for it
        (403, "transient"),
        (404, "transient"),  # database not found: configuration
        (500, "transient"),
        (503, "transient"),
    ],
)
def test_classify(status: int, outcome: str) -> None:
    assert classify(status, '{"error":"x"}').outcome == outcome
