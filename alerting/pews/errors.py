"""Error hierarchy of the PEWS package.

One root (`PewsError`) split by whose fault it is, so callers can decide without parsing text:
a bad observation set or age is the caller's (`PewsInputError`, the CLI maps it to exit code 2,
the streaming engine to a rejected set), a broken table file is the deployer's
(`PewsTableError`, raised at load time so a bad table never reaches a ward).
"""

from __future__ import annotations


class PewsError(Exception):
    """Root of every error raised by `alerting.pews`."""


class PewsInputError(PewsError, ValueError):
    """An observation set, age or system name that cannot be scored.

    The message always starts with the offending field, e.g. ``spo2_pct: 101 is above 100``.

    Attributes:
        field: Dotted name of the offending input field (``oxygen.fio2_pct``, ``age_days``).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PewsTableError(PewsError):
    """A scoring-table file that is missing, malformed or clinically inconsistent.

    Attributes:
        path: The file that failed validation.
        field: Dotted location inside the file (``numeric.hr.bands.BP-A``).
    """

    def __init__(self, path: str, field: str, message: str) -> None:
        super().__init__(f"{path}: {field}: {message}")
        self.path = path
        self.field = field
