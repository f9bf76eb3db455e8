"""Interval notation and compiled value -> score lookups.

Theory of operation: a table cell is written exactly as in the tables of docs/clinical/, e.g.
``"(90, 110]"`` (docs/clinical/conventions.md#interval-notation), so a clinical reviewer can
compare the data file with the published table cell by cell.
`compile_partition` parses every cell with `Decimal` (so ``50 - 49.99`` is exactly ``0.01``),
sorts them, and proves at load time that they form a partition of the parameter's domain:

* no two cells overlap (a shared end point may be closed on one side only);
* no gap, except where the table's own rule defines what a gap scores:
  - ``gap_rule = "higher_score"`` (UK NPEWS spec C1.4): a value strictly between two published
    bands scores the *higher-scoring* neighbour; gaps wider than ``max_gap`` are still errors,
    so a typo cannot silently widen a band;
  - ``round_digits`` (NEWS2): values are rounded half-up before lookup, so a gap that contains
    no point of the rounding grid (``[9, 11]`` then ``[12, 20]``) can never be reached;
* the domain of the input (e.g. ``[0, 100]`` for SpO2) is covered end to end.

Gap cells are materialised as synthetic segments, so `Partition.lookup` is one `bisect` over a
contiguous list of segments, whatever the system's boundary conventions.
"""

from __future__ import annotations

import itertools
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Literal

GapRule = Literal["none", "higher_score"]

_NUMBER = r"[+-]?\d+(?:\.\d+)?"
_INTERVAL = re.compile(rf"^\s*([\[(])\s*(-inf|{_NUMBER})\s*,\s*(\+?inf|{_NUMBER})\s*([\])])\s*$")


@dataclass(frozen=True, slots=True)
class Interval:
    """One interval as written in a table; ``None`` bounds mean -inf / +inf."""

    lo: Decimal | None
    hi: Decimal | None
    lo_closed: bool
    hi_closed: bool
    text: str


@dataclass(frozen=True, slots=True)
class Domain:
    """The physically possible values of an input, e.g. ``[0, 100]`` for SpO2."""

    lo: Decimal | None
    hi: Decimal | None

    def describe(self) -> str:
        """Return the domain in the tables' own interval notation."""
        lo = "-inf" if self.lo is None else str(self.lo)
        hi = "+inf" if self.hi is None else str(self.hi)
        return f"{'(' if self.lo is None else '['}{lo}, {hi}{')' if self.hi is None else ']'}"


def parse_interval(text: str) -> Interval:
    """Parse ``"[a, b)"``-style notation (``-inf``/``+inf`` allowed; infinite ends are open).

    Raises:
        ValueError: The text is not an interval or is empty (``(5, 5)``, ``[6, 5]``).
    """
    m = _INTERVAL.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not an interval like '[30, 49.99]' or '(90, 110]'")
    lo = None if m.group(2) == "-inf" else Decimal(m.group(2))
    hi = None if m.group(3).lstrip("+") == "inf" else Decimal(m.group(3))
    lo_closed = m.group(1) == "[" and lo is not None
    hi_closed = m.group(4) == "]" and hi is not None
    if (
        lo is not None
        and hi is not None
        and (lo > hi or (lo == hi and not (lo_closed and hi_closed)))
    ):
        raise ValueError(f"{text!r} is empty")
    return Interval(lo, hi, lo_closed, hi_closed, text.strip())


def round_half_up(value: float, digits: int) -> float:
    """Round half-up on the decimal reading of `value` (36.05 -> 36.1, 20.5 -> 21).

    Why Decimal: binary floats make ``36.05 * 10`` equal 360.4999..., which would round down.
    """
    if digits == 0 and isinstance(value, int):
        return value
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class Partition:
    """A compiled, validated lookup from a number to a sub-score.

    Attributes:
        cells: The cells as written in the file, ``(score, interval text)``, for display.
        round_digits: Half-up rounding applied before lookup (NEWS2), or ``None``.
    """

    los: tuple[float, ...]
    lo_closed: tuple[bool, ...]
    scores: tuple[int, ...]
    cells: tuple[tuple[int, str], ...]
    round_digits: int | None

    def lookup(self, value: float) -> int:
        """Return the sub-score for a value inside the validated domain."""
        if self.round_digits is not None:
            value = round_half_up(value, self.round_digits)
        i = bisect_right(self.los, value) - 1
        if value == self.los[i] and not self.lo_closed[i]:
            i -= 1
        return self.scores[i]

    @property
    def min_score(self) -> int:
        """Lowest sub-score any value can earn (used when only "some support" is known)."""
        return min(self.scores)


def _lo_key(iv: Interval) -> tuple[Decimal, int]:
    lo = iv.lo if iv.lo is not None else Decimal("-Infinity")
    return (lo, 0 if iv.lo_closed else 1)


def _grid_point_inside(a: Interval, b: Interval, digits: int) -> bool:
    """True if a rounded value could fall in the gap between `a` and `b`."""
    assert a.hi is not None and b.lo is not None
    q = Decimal(1).scaleb(-digits)
    g = (a.hi / q).to_integral_value(rounding=ROUND_FLOOR) * q
    while g <= a.hi if a.hi_closed else g < a.hi:
        g += q
    return g < b.lo or (g == b.lo and not b.lo_closed)


def compile_partition(
    cells: Mapping[int, Sequence[str]],
    *,
    domain: Domain,
    gap_rule: GapRule = "none",
    max_gap: Decimal | None = None,
    round_digits: int | None = None,
) -> Partition:
    """Validate the cells of one parameter (in one age band) and compile them.

    Args:
        cells: Sub-score -> interval texts earning it, as in the spec's tables.
        domain: Values the input can physically take; the cells must cover it.
        gap_rule: What a value between two published bands scores.
        max_gap: Widest gap the gap rule may fill (``None``: any width).
        round_digits: Half-up rounding before lookup; gaps without grid points are allowed.

    Raises:
        ValueError: Overlap, gap, or incomplete coverage, naming the cells involved.
    """
    parsed = sorted(
        ((parse_interval(t), score) for score, texts in cells.items() for t in texts),
        key=lambda p: _lo_key(p[0]),
    )
    if not parsed:
        raise ValueError("no cells")
    segments: list[tuple[Interval, int]] = [parsed[0]]
    for (a, sa), (b, sb) in itertools.pairwise(parsed):
        if a.hi is None or b.lo is None:
            raise ValueError(f"{a.text} and {b.text} overlap")
        if b.lo < a.hi or (b.lo == a.hi and a.hi_closed and b.lo_closed):
            raise ValueError(f"{a.text} and {b.text} overlap")
        if b.lo > a.hi or not (a.hi_closed or b.lo_closed):
            between = f"values between {a.text} and {b.text}"
            if round_digits is not None and not _grid_point_inside(a, b, round_digits):
                pass  # unreachable after rounding; filled below so lookup stays total
            elif gap_rule == "none":
                raise ValueError(f"gap: {between} have no score")
            elif max_gap is not None and b.lo - a.hi > max_gap:
                raise ValueError(f"gap wider than max_gap {max_gap}: {between}")
            gap = Interval(a.hi, b.lo, not a.hi_closed, not b.lo_closed, "(gap)")
            segments.append((gap, max(sa, sb)))
        segments.append((b, sb))
    first, last = segments[0][0], segments[-1][0]
    if first.lo is not None and (
        domain.lo is None or first.lo > domain.lo or (first.lo == domain.lo and not first.lo_closed)
    ):
        raise ValueError(f"does not cover the domain {domain.describe()}: starts at {first.text}")
    if last.hi is not None and (
        domain.hi is None or last.hi < domain.hi or (last.hi == domain.hi and not last.hi_closed)
    ):
        raise ValueError(f"does not cover the domain {domain.describe()}: ends at {last.text}")
    return Partition(
        los=tuple(float("-inf") if s.lo is None else float(s.lo) for s, _ in segments),
        lo_closed=tuple(s.lo_closed for s, _ in segments),
        scores=tuple(score for _, score in segments),
        cells=tuple((score, iv.text) for iv, score in parsed),
        round_digits=round_digits,
    )
