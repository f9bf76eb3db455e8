"""The scorer API: one observation set (`score`) or many (`score_many`, for replay).

Pure and fast: no clock, no I/O after the tables are loaded (once per process, or passed in),
one validation pass over the inputs and a handful of bisects. The streaming engine calls
`score` per observation set; replay calls `score_many` over a patient's history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

from .age import resolve_age_months
from .errors import PewsInputError
from .result import ScoreResult
from .tableset import TableSet, installed_tables
from .vocabulary import parse_observation


def score(
    system: str,
    inputs: Mapping[str, object],
    *,
    age_days: float | None = None,
    age_months: int | None = None,
    dob: dt.date | None = None,
    at: dt.datetime | None = None,
    tables: TableSet | None = None,
) -> ScoreResult:
    """Score one observation set.

    Args:
        system: One of `SYSTEMS`.
        inputs: Observation set in the docs/clinical/vocabulary.md#input-keys vocabulary
            (absent/None = not obtained).
        age_days: Age in days (validation cases: months = days / 30.4375).
        age_months: Completed months.
        dob: Date of birth; requires `at`, the observation time (ward-local date is used).
        at: Observation time; required with `dob`, never defaulted here (pure core).
        tables: Tables to score with; default the installed tables.

    Returns:
        The result, with the band and table version used.

    Raises:
        PewsInputError: Bad system, age or input; the message starts with the field name.
    """
    scorer = (tables or installed_tables()).scorer(system)
    months = resolve_age_months(age_days=age_days, age_months=age_months, dob=dob, at=at)
    return scorer.score(parse_observation(inputs), months)


def _per_set(value: object, n: int) -> list[object]:
    if value is None:
        return [None] * n
    if isinstance(value, Iterable) and not isinstance(value, str | dt.date):
        tolist = getattr(value, "tolist", None)  # numpy arrays -> Python ints/floats
        values = list(tolist() if callable(tolist) else value)
        if len(values) != n:
            raise PewsInputError("age", f"{len(values)} ages for {n} observation sets")
        return values
    return [value] * n


def score_many(
    system: str,
    inputs: Sequence[Mapping[str, object]],
    *,
    age_days: float | Iterable[float] | None = None,
    age_months: int | Iterable[int] | None = None,
    dob: dt.date | None = None,
    at: Iterable[dt.datetime] | dt.datetime | None = None,
    tables: TableSet | None = None,
) -> list[ScoreResult]:
    """Score a sequence of observation sets (replay), in order.

    Each age argument is either one value for every set or one value per set (a list or a
    numpy array); with `dob`, `at` gives each set's observation time. The table is resolved
    once; each set then costs what `score` costs minus the dispatch.

    Raises:
        PewsInputError: The first bad set; the field is prefixed with its index
            (``inputs[12].spo2_pct``).
    """
    scorer = (tables or installed_tables()).scorer(system)
    n = len(inputs)
    days, months, ats = _per_set(age_days, n), _per_set(age_months, n), _per_set(at, n)
    results = []
    for i, obs in enumerate(inputs):
        try:
            age = resolve_age_months(
                age_days=days[i],  # type: ignore[arg-type]  # element types documented above
                age_months=months[i],  # type: ignore[arg-type]
                dob=dob,
                at=ats[i],  # type: ignore[arg-type]
            )
            results.append(scorer.score(parse_observation(obs), age))
        except PewsInputError as exc:
            raise PewsInputError(f"inputs[{i}].{exc.field}", str(exc).split(": ", 1)[1]) from exc
    return results
