"""Reading scoring-table files: typed access with errors that name file and field.

Every table file shares a skeleton that this module parses and validates: ``[meta]``
(provenance and sign-off), ``[[age_bands]]``, ``[scoring]`` (the gap rule), ``[numeric.*]``
(interval cells per band or for all ages) and ``[categorical.*]``. System-specific sections
(escalation, oxygen devices, Brighton's respiratory rules) are read by each system's module
through the same `Section` wrapper, so every error message looks alike:
``bedside_pews.toml: numeric.hr.bands.BP-A: gap: values between (80, 90] and (95, 110] ...``.

Unknown keys are errors everywhere: a typo such as ``to_year`` in a site's table must not be
silently ignored.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NoReturn, cast

from .errors import PewsTableError
from .intervals import GapRule, Partition, compile_partition
from .vocabulary import DOMAINS, ENUMS

SCHEMA_VERSION = 1
META_REQUIRED = (
    "system",
    "kind",
    "title",
    "version",
    "source",
    "reviewer",
    "review_status",
    "date",
)
META_OPTIONAL = ("source_url", "spec_reference", "notes")


class Section:
    """A TOML table plus where it came from, for error messages."""

    def __init__(self, path: str, field: str, data: Mapping[str, object]) -> None:
        self.path, self.field, self.data = path, field, data

    def where(self, key: str | None = None) -> str:
        """Dotted location of `key` inside the file."""
        if key is None:
            return self.field or "(top level)"
        return f"{self.field}.{key}" if self.field else key

    def fail(self, key: str | None, message: str) -> NoReturn:
        """Raise a `PewsTableError` located at `key`."""
        raise PewsTableError(self.path, self.where(key), message)

    def only(self, *allowed: str) -> None:
        """Reject keys outside `allowed` (catches typos in site tables)."""
        for key in self.data:
            if key not in allowed:
                self.fail(key, f"unknown key (allowed: {', '.join(allowed)})")

    def has(self, key: str) -> bool:
        """True if `key` is present."""
        return key in self.data

    def raw(self, key: str) -> object:
        """The value at `key`; missing keys are an error."""
        if key not in self.data:
            self.fail(key, "required key is missing")
        return self.data[key]

    def sub(self, key: str) -> Section:
        """The sub-table at `key`."""
        value = self.raw(key)
        if not isinstance(value, Mapping):
            self.fail(key, "expected a table")
        return Section(self.path, self.where(key), cast("Mapping[str, object]", value))

    def subs(self) -> dict[str, Section]:
        """Every entry of this table, each as a sub-table."""
        return {key: self.sub(key) for key in self.data}

    def text(self, key: str) -> str:
        """A non-empty string."""
        value = self.raw(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "expected a non-empty string")
        return value

    def integer(self, key: str) -> int:
        """An integer (booleans rejected)."""
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer, got {value!r}")
        return value

    def decimal(self, key: str) -> Decimal:
        """A number, read exactly (write fractional thresholds as strings to avoid float noise)."""
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.fail(key, f"expected a number, got {value!r}")
        try:
            return Decimal(str(value))
        except InvalidOperation:
            self.fail(key, f"expected a number, got {value!r}")

    def texts(self, key: str) -> tuple[str, ...]:
        """A list of strings."""
        value = self.raw(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, "expected a list of strings")
        return tuple(cast("list[str]", value))


def read_toml(path: Path) -> Section:
    """Read a table file; unreadable or malformed TOML becomes a `PewsTableError`."""
    try:
        with path.open("rb") as fh:
            return Section(str(path), "", tomllib.load(fh))
    except OSError as exc:
        raise PewsTableError(str(path), "(file)", f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PewsTableError(str(path), "(file)", f"not valid TOML: {exc}") from exc


@dataclass(frozen=True, slots=True)
class TableMeta:
    """Provenance of a table file, printed by ``wardwatch pews tables``."""

    system: str
    kind: str
    title: str
    version: str
    source: str
    reviewer: str
    review_status: str
    date: str
    source_url: str | None
    spec_reference: str | None
    notes: tuple[str, ...]
    path: str


def read_meta(top: Section) -> TableMeta:
    """Parse and check ``schema`` and ``[meta]``."""
    if top.integer("schema") != SCHEMA_VERSION:
        top.fail("schema", f"unsupported schema version (this code reads {SCHEMA_VERSION})")
    meta = top.sub("meta")
    meta.only(*META_REQUIRED, *META_OPTIONAL)
    date = meta.raw("date")
    if not isinstance(date, dt.date):
        meta.fail("date", "expected a TOML date such as 2025-11-26")
    return TableMeta(
        **{k: meta.text(k) for k in META_REQUIRED if k != "date"},
        date=date.isoformat(),
        source_url=meta.text("source_url") if meta.has("source_url") else None,
        spec_reference=meta.text("spec_reference") if meta.has("spec_reference") else None,
        notes=meta.texts("notes") if meta.has("notes") else (),
        path=top.path,
    )


@dataclass(frozen=True, slots=True)
class AgeBand:
    """A half-open age band ``lo <= age < hi`` in months (``hi`` None = no upper bound)."""

    id: str
    label: str
    lo_months: float
    hi_months: float | None
    rule: str


def _bound(sec: Section, end: str) -> tuple[float, str, str] | None:
    """``(months, "5 years", key)`` for a band's ``from``/``to`` end, or None if absent."""
    keys = [k for k in (f"{end}_months", f"{end}_years") if sec.has(k)]
    if len(keys) > 1:
        sec.fail(keys[1], f"give {end}_months or {end}_years, not both")
    if not keys:
        return None
    n = sec.integer(keys[0])
    if n < 0:
        sec.fail(keys[0], "must not be negative")
    unit = keys[0].split("_")[1]
    return (n * 12.0 if unit == "years" else float(n)), f"{n} {unit}", keys[0]


def read_age_bands(sec: Section, key: str, extra: tuple[str, ...] = ()) -> tuple[AgeBand, ...]:
    """Parse contiguous, non-overlapping half-open age bands (the last may be open-ended).

    Args:
        sec: The enclosing table.
        key: The array of band tables.
        extra: Further keys a band may carry (read by the caller, e.g. age-normal rates).
    """
    raw = sec.raw(key)
    if not isinstance(raw, list) or not raw:
        sec.fail(key, "expected a non-empty array of tables")
    bands: list[AgeBand] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            sec.fail(f"{key}[{i}]", "expected a table")
        b = Section(sec.path, sec.where(f"{key}[{i}]"), item)
        b.only("id", "label", "from_months", "from_years", "to_months", "to_years", *extra)
        lo, hi = _bound(b, "from"), _bound(b, "to")
        if lo is None:
            b.fail("from_months", "every band needs from_months or from_years")
        if hi is None and i != len(raw) - 1:
            b.fail("to_months", "only the last band may be open-ended")
        if hi is not None and hi[0] <= lo[0]:
            b.fail(hi[2], "band ends before it starts")
        if bands and bands[-1].hi_months != lo[0]:
            b.fail(lo[2], f"not contiguous with band {bands[-1].id} (gap or overlap)")
        if any(x.id == b.text("id") for x in bands):
            b.fail("id", "duplicate band id")
        rule = f"{lo[1]} <= age" + (f" < {hi[1]}" if hi else "")
        bands.append(
            AgeBand(b.text("id"), b.text("label"), lo[0], None if hi is None else hi[0], rule)
        )
    return tuple(bands)


def find_band(bands: tuple[AgeBand, ...], months: float) -> AgeBand | None:
    """The band containing `months`, or None outside the table's age range."""
    for band in bands:
        if band.lo_months <= months and (band.hi_months is None or months < band.hi_months):
            return band
    return None


@dataclass(frozen=True, slots=True)
class NumericTable:
    """One continuous parameter: its cells per age band (``"*"`` = all ages)."""

    name: str
    label: str
    unit: str
    input: str
    by_band: Mapping[str, Partition]

    def for_band(self, band_id: str | None) -> Partition:
        """The partition for a band (all-ages tables ignore the band)."""
        return self.by_band.get("*") or self.by_band[band_id or ""]


def _cells(sec: Section) -> dict[int, tuple[str, ...]]:
    cells: dict[int, tuple[str, ...]] = {}
    for key in sec.data:
        try:
            score = int(key)
        except ValueError:
            sec.fail(key, 'cell keys are sub-scores such as "0", "1", "2", "4"')
        cells[score] = sec.texts(key)
    return cells


def read_numeric(
    sec: Section,
    name: str,
    input_key: str,
    bands: tuple[AgeBand, ...],
    gap_rule: GapRule,
    max_gap: Decimal | None,
) -> NumericTable:
    """Parse one ``[numeric.NAME]`` table and prove each partition covers the input's domain."""
    sec.only("label", "unit", "all_ages", "bands", "max_gap", "round_digits")
    if sec.has("max_gap"):
        max_gap = sec.decimal("max_gap")
    digits = sec.integer("round_digits") if sec.has("round_digits") else None
    by_band: dict[str, Section] = {}
    if sec.has("all_ages") == sec.has("bands"):
        sec.fail(None, "give exactly one of all_ages or bands")
    if sec.has("all_ages"):
        by_band["*"] = sec.sub("all_ages")
    else:
        by_band = sec.sub("bands").subs()
        expected = [b.id for b in bands]
        if sorted(by_band) != sorted(expected):
            sec.fail(
                "bands",
                f"must give exactly the age bands {', '.join(expected)} (got {', '.join(by_band)})",
            )
    compiled: dict[str, Partition] = {}
    for band_id, cells_sec in by_band.items():
        try:
            compiled[band_id] = compile_partition(
                _cells(cells_sec),
                domain=DOMAINS[input_key],
                gap_rule=gap_rule,
                max_gap=max_gap,
                round_digits=digits,
            )
        except ValueError as exc:
            cells_sec.fail(None, str(exc))
    return NumericTable(name, sec.text("label"), sec.text("unit"), input_key, compiled)


def read_categorical(sec: Section, kind: str) -> dict[str, int]:
    """Parse a value -> score map that must name every value of the input's vocabulary."""
    expected = ENUMS[kind]
    sec.only(*expected)
    missing = [v for v in expected if v not in sec.data]
    if missing:
        sec.fail(None, f"no score for {', '.join(missing)}")
    return {v: sec.integer(v) for v in expected}


@dataclass(frozen=True, slots=True)
class TableFile:
    """The common, validated part of a scoring table; `top` gives system-specific sections."""

    meta: TableMeta
    bands: tuple[AgeBand, ...]
    numeric: Mapping[str, NumericTable]
    categorical: Mapping[str, Mapping[str, int]]
    top: Section

    def partitions(self) -> dict[str, dict[str, Partition]]:
        """Band id -> parameter -> partition, resolved once at load (``""`` if unbanded)."""
        ids = [b.id for b in self.bands] or [""]
        return {bid: {name: t.for_band(bid) for name, t in self.numeric.items()} for bid in ids}


def read_table_file(
    top: Section,
    numeric: Mapping[str, str],
    categorical: Mapping[str, str],
    extra_sections: tuple[str, ...],
) -> TableFile:
    """Parse the shared skeleton given the system's required numeric and categorical tables.

    Args:
        top: The whole file.
        numeric: Table name -> the input key it scores (decides the domain to cover).
        categorical: Table name -> the vocabulary it maps.
        extra_sections: System-specific top-level sections the caller will read.
    """
    top.only("schema", "meta", "age_bands", "scoring", "numeric", "categorical", *extra_sections)
    meta = read_meta(top)
    bands = read_age_bands(top, "age_bands") if top.has("age_bands") else ()
    scoring = top.sub("scoring")
    scoring.only("gap_rule", "max_gap")
    gap_rule = scoring.text("gap_rule")
    if gap_rule not in ("none", "higher_score"):
        scoring.fail("gap_rule", "must be 'none' or 'higher_score'")
    max_gap = scoring.decimal("max_gap") if scoring.has("max_gap") else None
    num_sec, cat_sec = top.sub("numeric"), top.sub("categorical") if categorical else None
    num_sec.only(*numeric)
    tables = {
        name: read_numeric(num_sec.sub(name), name, key, bands, cast("GapRule", gap_rule), max_gap)
        for name, key in numeric.items()
    }
    cats: dict[str, Mapping[str, int]] = {}
    if cat_sec is not None:
        cat_sec.only(*categorical)
        cats = {
            name: read_categorical(cat_sec.sub(name), kind) for name, kind in categorical.items()
        }
    return TableFile(meta, bands, tables, cats, top)
