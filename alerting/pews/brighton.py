"""Brighton-type PEWS (Monaghan 2005) with a site-supplied age-normal HR/RR table.

docs/clinical/brighton_pews.md. Three domains scored 0-3 (highest criterion met wins) plus two
+2 add-ons. Everything a site may change is data: the domain wording maps, the
CRT/tachycardia/RR-excess cells, the oxygen thresholds (docs/clinical/brighton_pews.md#oxygen:
site-configurable, defaults 4/6/8 L/min and 30/40/50 %),
the oxygen device list (``[oxygen.devices]``: high-support devices with a fixed score, by
default HF/BiP/CP at the respiratory maximum), the "5 below normal" rule, and the age-normal
table (``normals_file``; the shipped one is an example that must be replaced).

Derived facts, when the caller did not chart them explicitly (explicit inputs always win):
HR/RR excess = rate - upper normal for age; bradycardia = HR below the lower normal; "RR 5
below normal" = RR <= lower normal - 5. A domain with some of its evidence missing scores the
highest criterion among what *is* known and is reported as missing (partial,
docs/clinical/brighton_pews.md#missing-items).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from .common import category, lookup
from .errors import PewsInputError
from .oxygen import read_oxygen
from .result import ScoreResult, missing_items, partial_total
from .tablefile import (
    AgeBand,
    Section,
    TableFile,
    TableMeta,
    find_band,
    read_age_bands,
    read_meta,
    read_table_file,
    read_toml,
)
from .vocabulary import ENUMS, Observation

SYSTEM = "brighton_pews"
ITEMS = ("behaviour", "cardiovascular", "respiratory", "nebs", "postop_vomiting")
DOMAINS = ("behaviour", "cardiovascular", "respiratory")
NUMERIC = {
    "crt": "crt_s",
    "hr_excess": "hr_above_upper_normal_bpm",
    "rr_excess": "rr_above_upper_normal_bpm",
    "oxygen_flow": "oxygen.flow_lpm",
    "oxygen_fio2": "oxygen.fio2_pct",
}
CATEGORICAL = {"behaviour": "behaviour", "skin_colour": "skin_colour", "resp_signs": "resp_signs"}
RATES = ("hr_low", "hr_high", "rr_low", "rr_high")
FLAGS = ("total_ge_3", "total_ge_5", "any_domain_3")


@dataclass(frozen=True, slots=True)
class NormalRow:
    """Age-normal heart and respiratory rates for one age band (site table)."""

    band: AgeBand
    hr_low: float
    hr_high: float
    rr_low: float
    rr_high: float


@dataclass(frozen=True, slots=True)
class AgeNormals:
    """The site's age-normal table with its own provenance."""

    meta: TableMeta
    rows: tuple[NormalRow, ...]

    def row_for(self, age_months: float) -> NormalRow:
        """The row for `age_months`, or a `PewsInputError` outside the table."""
        band = find_band(tuple(r.band for r in self.rows), age_months)
        if band is None:
            raise PewsInputError(
                "age", f"{age_months:.2f} months is outside the age-normal table {self.meta.path}"
            )
        return next(r for r in self.rows if r.band is band)


def read_normals(path: Path) -> AgeNormals:
    """Load and validate an age-normal HR/RR table file."""
    top = read_toml(path)
    top.only("schema", "meta", "rows")
    meta = read_meta(top)
    if meta.kind != "age_normals":
        top.fail("meta.kind", "expected 'age_normals'")
    bands = read_age_bands(top, "rows", RATES)
    raw_rows = cast("list[Mapping[str, object]]", top.raw("rows"))  # shape checked above
    rows = []
    for i, band in enumerate(bands):
        sec = Section(top.path, f"rows[{i}]", raw_rows[i])
        rates = {k: float(sec.decimal(k)) for k in RATES}
        if any(v < 0 for v in rates.values()):
            sec.fail(None, "rates must not be negative")
        if not (rates["hr_low"] < rates["hr_high"] and rates["rr_low"] < rates["rr_high"]):
            sec.fail(None, "need hr_low < hr_high and rr_low < rr_high")
        rows.append(NormalRow(band, **rates))
    return AgeNormals(meta, tuple(rows))


class BrightonScorer:
    """Compiled Brighton-type table plus the site's age-normal table."""

    system = SYSTEM

    def __init__(self, top: Section) -> None:
        extra = ("normals_file", "oxygen", "cardiovascular", "respiratory", "addons", "escalation")
        self.file: TableFile = read_table_file(top, NUMERIC, CATEGORICAL, extra)
        if self.file.bands:
            top.fail(
                "age_bands", "Brighton scores have no age bands; ages select a row of normals_file"
            )
        self.normals = read_normals(Path(top.path).parent / top.text("normals_file"))
        self._oxygen = read_oxygen(top.sub("oxygen"), self.file.numeric)
        part = self.file.partitions()[""]
        self._crt, self._hr_excess, self._rr_excess = (
            part["crt"],
            part["hr_excess"],
            part["rr_excess"],
        )
        cats = self.file.categorical
        self._behaviour, self._colour, self._signs = (
            cats["behaviour"],
            cats["skin_colour"],
            cats["resp_signs"],
        )
        cv = top.sub("cardiovascular")
        cv.only("bradycardia_score")
        self._brady = cv.integer("bradycardia_score")
        resp = top.sub("respiratory")
        resp.only("low_rr_below_lower_normal_by", "low_rr_signs", "low_rr_score")
        self._low_by = float(resp.decimal("low_rr_below_lower_normal_by"))
        self._low_signs = frozenset(resp.texts("low_rr_signs"))
        if not self._low_signs <= set(ENUMS["resp_signs"]):
            resp.fail("low_rr_signs", f"signs must be drawn from {', '.join(ENUMS['resp_signs'])}")
        self._low_score = resp.integer("low_rr_score")
        self._check_device_scores(top.sub("oxygen").sub("devices"))
        add = top.sub("addons")
        add.only("quarter_hourly_nebs", "persistent_postop_vomiting")
        self._nebs, self._vomit = (
            add.integer("quarter_hourly_nebs"),
            add.integer("persistent_postop_vomiting"),
        )
        esc = top.sub("escalation")
        esc.only(*FLAGS)
        self._flags = {name: esc.integer(name) for name in FLAGS}

    def _check_device_scores(self, devices: Section) -> None:
        """A fixed device score may not exceed the respiratory domain's highest criterion.

        Guards against copying Bedside/UK NPEWS device scores (4) into a 0-3 Brighton domain.
        """
        ceiling = max(
            *self._rr_excess.scores,
            *self._signs.values(),
            *self._oxygen.flow.scores,
            *self._oxygen.fio2.scores,
            self._low_score,
        )
        for device, fixed in self._oxygen.devices.items():
            if fixed is not None and fixed > ceiling:
                devices.fail(
                    device,
                    f"fixed score {fixed} exceeds the respiratory domain maximum {ceiling}",
                )

    def _cardiovascular(self, obs: Observation, row: NormalRow) -> tuple[int | None, bool]:
        excess = obs.hr_above_upper_normal_bpm
        if excess is None and obs.hr_bpm is not None:
            excess = obs.hr_bpm - row.hr_high
        brady = obs.bradycardia_for_age
        if brady is None and excess is not None:
            hr = obs.hr_bpm if obs.hr_bpm is not None else row.hr_high + excess
            brady = hr < row.hr_low
        heart = None
        if excess is not None or brady is not None:
            heart = max(lookup(self._hr_excess, excess) or 0, self._brady if brady else 0)
        parts = (category(self._colour, obs.skin_colour), lookup(self._crt, obs.crt_s), heart)
        return _domain(parts, full=excess is not None and brady is not None)

    def _respiratory(self, obs: Observation, row: NormalRow) -> tuple[int | None, bool]:
        excess = obs.rr_above_upper_normal_bpm
        if excess is None and obs.rr_bpm is not None:
            excess = obs.rr_bpm - row.rr_high
        rr = obs.rr_bpm if obs.rr_bpm is not None or excess is None else row.rr_high + excess
        signs = obs.resp_signs
        sign_score = None if signs is None else max((self._signs[s] for s in signs), default=0)
        low = 0
        if (
            rr is not None
            and signs is not None
            and rr <= row.rr_low - self._low_by
            and signs & self._low_signs
        ):
            low = self._low_score
        oxygen, oxygen_full = self._oxygen.score(obs.oxygen)
        parts = (lookup(self._rr_excess, excess), sign_score, oxygen)
        value, full = _domain(parts, full=oxygen_full)
        return (value if value is None else max(value, low)), full

    def score(self, obs: Observation, age_months: float) -> ScoreResult:
        """Score one observation set (docs/clinical/brighton_pews.md#domains)."""
        row = self.normals.row_for(age_months)
        cardio, cardio_full = self._cardiovascular(obs, row)
        resp, resp_full = self._respiratory(obs, row)
        items = {
            "behaviour": category(self._behaviour, obs.behaviour),
            "cardiovascular": cardio,
            "respiratory": resp,
            "nebs": None
            if obs.quarter_hourly_nebs is None
            else self._nebs * obs.quarter_hourly_nebs,
            "postop_vomiting": None
            if obs.persistent_postop_vomiting is None
            else self._vomit * obs.persistent_postop_vomiting,
        }
        partial = frozenset(
            name
            for name, full in (("cardiovascular", cardio_full), ("respiratory", resp_full))
            if not full
        )
        missing = missing_items(items, partial)
        total = partial_total(items)
        any_domain = any((items[d] or 0) >= self._flags["any_domain_3"] for d in DOMAINS)
        return ScoreResult(
            system=SYSTEM,
            band=None,
            total=total,
            items=items,
            complete=not missing,
            missing=missing,
            escalation={
                "total_ge_3": total >= self._flags["total_ge_3"],
                "total_ge_5": total >= self._flags["total_ge_5"],
                "any_domain_3": any_domain,
            },
            table_version=self.file.meta.version,
        )


def _domain(parts: tuple[int | None, ...], *, full: bool) -> tuple[int | None, bool]:
    """Highest known criterion; complete only if every component is known and `full`."""
    known = [p for p in parts if p is not None]
    return (max(known) if known else None), full and len(known) == len(parts)
