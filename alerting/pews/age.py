"""Age in months, the one quantity every age band is compared against.

Why months: every band edge in the spec is a whole number of months (3 m, 12 m) or years
(1, 5, 13, 16, 18 y = 12, 60, 156, 192, 216 m), so one comparison axis serves all tables.

* Production (`age_from_dob`): completed calendar months between the date of birth and the
  *observation's* date — never a cached band, a child can cross a boundary mid-admission.
* Validation cases (docs/clinical/conventions.md#age): ``age_days`` converts as
  ``months = days / 30.4375`` (= days x 12 / 365.25); ``age_months`` are completed months.

Pure: no clock is read here; the CLI shell supplies "now" when ``--at`` is omitted.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math

from .errors import PewsInputError

DAYS_PER_MONTH = 30.4375  # 365.25 / 12, for validation cases: docs/clinical/conventions.md#age


def completed_months(dob: dt.date, on: dt.date) -> int:
    """Completed calendar months from `dob` to `on`.

    A monthly anniversary that does not exist in a short month falls on that month's last day
    (born 31 Jan -> 1 month on 28/29 Feb; born 29 Feb -> 12 months on 28 Feb).

    Raises:
        PewsInputError: `on` is before `dob`.
    """
    if on < dob:
        # names neither date: the text reaches the wire (the engine's cannot_score alert), and
        # the date of birth is a patient identifier; whoever reads it knows which child it is
        raise PewsInputError("dob", "the date of birth is after the observation date")
    months = (on.year - dob.year) * 12 + (on.month - dob.month)
    anniversary_day = min(dob.day, calendar.monthrange(on.year, on.month)[1])
    if on.day < anniversary_day:
        months -= 1
    return months


def resolve_age_months(
    *,
    age_days: float | None = None,
    age_months: int | None = None,
    dob: dt.date | None = None,
    at: dt.datetime | None = None,
) -> float:
    """Turn exactly one of the three age inputs into months.

    `at` is required with `dob`; its calendar date *in its own time zone* is used, so pass the
    ward's local time (a birthday starts at local midnight, not UTC midnight).

    Raises:
        PewsInputError: None or several ages given, wrong type, negative, or dob after `at`.
    """
    given = [
        name
        for name, v in (("age_days", age_days), ("age_months", age_months), ("dob", dob))
        if v is not None
    ]
    if len(given) != 1:
        raise PewsInputError(
            "age", f"give exactly one of age_days, age_months, dob (got {given or 'none'})"
        )
    if age_days is not None:
        if (
            isinstance(age_days, bool)
            or not isinstance(age_days, int | float)
            or not math.isfinite(age_days)
        ):
            raise PewsInputError("age_days", f"expected a finite number, got {age_days!r}")
        if age_days < 0:
            raise PewsInputError("age_days", f"{age_days!r} is negative")
        return age_days / DAYS_PER_MONTH
    if age_months is not None:
        if isinstance(age_months, bool) or not isinstance(age_months, int):
            raise PewsInputError(
                "age_months", f"expected a whole number of completed months, got {age_months!r}"
            )
        if age_months < 0:
            raise PewsInputError("age_months", f"{age_months!r} is negative")
        return float(age_months)
    assert dob is not None
    if not isinstance(dob, dt.date) or isinstance(dob, dt.datetime):
        raise PewsInputError("dob", f"expected a date, got {type(dob).__name__}")  # not its value
    if not isinstance(at, dt.datetime):
        raise PewsInputError("at", "the observation time is required with dob")
    return float(completed_months(dob, at.date()))
