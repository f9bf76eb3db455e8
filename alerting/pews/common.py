"""Small pieces shared by the four system scorers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .errors import PewsInputError
from .intervals import Partition
from .result import ScoreResult
from .tablefile import AgeBand, TableFile, find_band
from .vocabulary import Observation


class SystemScorer(Protocol):
    """A system's compiled table: what `score` dispatches to."""

    @property
    def system(self) -> str:
        """System name, one of `SYSTEMS`."""
        ...

    @property
    def file(self) -> TableFile:
        """The validated table file (metadata, bands, cells) for display and audit."""
        ...

    def score(self, obs: Observation, age_months: float) -> ScoreResult:
        """Score one validated observation set for a child of `age_months`."""
        ...


def band_for(file: TableFile, age_months: float) -> AgeBand:
    """The age band for `age_months`, or a `PewsInputError` naming the table's age range."""
    band = find_band(file.bands, age_months)
    if band is None:
        ranges = "; ".join(f"{b.id}: {b.rule}" for b in file.bands)
        raise PewsInputError(
            "age",
            f"{age_months:.2f} months is outside the {file.meta.system} table's age bands "
            f"({ranges})",
        )
    return band


def lookup(partition: Partition, value: float | None) -> int | None:
    """Sub-score of an optional value (None stays None = not obtained)."""
    return None if value is None else partition.lookup(value)


def category(scores: Mapping[str, int] | None, value: str | None) -> int | None:
    """Sub-score of an optional categorical value."""
    return None if value is None or scores is None else scores[value]
