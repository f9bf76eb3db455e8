"""Loading the installed scoring tables, or a site's own, into a `TableSet`.

A table file names its system in ``[meta] system``; the system's module compiles and
validates it (bands, cells, escalation) so a broken file fails at load with file and field
named, never at 3 a.m. on a ward. The installed tables live in the ``tables/`` package folder;
a site may load a whole directory of its own, or replace one system's table (e.g. a local
Brighton variant with its textbook's age-normal rates) with `TableSet.with_table`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .bedside import BedsideScorer
from .brighton import BrightonScorer
from .common import SystemScorer
from .errors import PewsError, PewsInputError, PewsTableError
from .news2 import News2Scorer
from .npews import NpewsScorer
from .tablefile import Section, read_toml

SYSTEMS = ("bedside_pews", "uk_npews", "brighton_pews", "news2")
_BUILDERS: dict[str, Callable[[Section], SystemScorer]] = {
    "bedside_pews": BedsideScorer,
    "uk_npews": NpewsScorer,
    "brighton_pews": BrightonScorer,
    "news2": News2Scorer,
}
SCORING_KIND = "scoring_table"


def installed_tables_dir() -> Path:
    """Folder of the tables shipped with the package."""
    return Path(str(resources.files("alerting.pews.tables")))


def load_table(path: Path) -> SystemScorer:
    """Load and validate one scoring-table file (installed or site-supplied).

    Raises:
        PewsTableError: Unreadable, malformed, or inconsistent file; names file and field.
    """
    top = read_toml(path)
    meta = top.sub("meta")
    system, kind = meta.text("system"), meta.text("kind")
    if kind != SCORING_KIND:
        meta.fail("kind", f"expected {SCORING_KIND!r}, got {kind!r}")
    if system not in _BUILDERS:
        meta.fail("system", f"unknown system {system!r} (known: {', '.join(SYSTEMS)})")
    return _BUILDERS[system](top)


@dataclass(frozen=True)
class TableSet:
    """The compiled tables a unit scores with, one per system."""

    scorers: Mapping[str, SystemScorer]

    def scorer(self, system: str) -> SystemScorer:
        """The table for `system`.

        Raises:
            PewsInputError: Unknown system name.
            PewsError: Known system, but no table for it in this set.
        """
        if system not in _BUILDERS:
            raise PewsInputError("system", f"{system!r} is not one of {', '.join(SYSTEMS)}")
        if system not in self.scorers:
            raise PewsError(f"system: no table loaded for {system!r}")
        return self.scorers[system]

    def with_table(self, table: SystemScorer) -> TableSet:
        """A copy in which `table` replaces the table of its system (site-supplied variant)."""
        return TableSet({**self.scorers, table.system: table})

    def __iter__(self) -> Iterator[SystemScorer]:
        return iter(self.scorers[s] for s in SYSTEMS if s in self.scorers)


def load_tables(directory: Path | None = None) -> TableSet:
    """Load every scoring table in `directory` (default: the installed tables).

    Files whose ``[meta] kind`` is not a scoring table (e.g. Brighton age normals) are skipped;
    they are loaded through the scoring table that references them.

    Raises:
        PewsTableError: Any file fails validation, or two files claim the same system.
    """
    folder = directory if directory is not None else installed_tables_dir()
    scorers: dict[str, SystemScorer] = {}
    for path in sorted(folder.glob("*.toml")):
        kind = read_toml(path).sub("meta").text("kind")
        if kind != SCORING_KIND:
            continue
        table = load_table(path)
        if table.system in scorers:
            raise PewsTableError(
                str(path), "meta.system", f"a second table for {table.system!r} in {folder}"
            )
        scorers[table.system] = table
    if not scorers:
        raise PewsTableError(str(folder), "(directory)", "no scoring tables found")
    return TableSet(scorers)


@functools.cache
def installed_tables() -> TableSet:
    """The installed tables, loaded once per process (validation runs at first use)."""
    return load_tables()
