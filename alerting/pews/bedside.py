"""Bedside PEWS (Parshuram 2009/2011): seven items, 0-26, flags at >= 7 and >= 8.

Scored per docs/clinical/bedside_pews.md: age-banded HR/SBP/RR cells transcribed literally
(including the two irregular HR cells, docs/clinical/bedside_pews.md#irregular-cells, which live
in the data file, not here), CRT/SpO2/respiratory effort for all ages, and oxygen therapy room
air 0 / low support 2 / high support or HF/CPAP/BiPAP 4 (docs/clinical/bedside_pews.md#oxygen).
"""

from __future__ import annotations

from .common import band_for, category, lookup
from .oxygen import read_oxygen
from .result import ScoreResult, missing_items, partial_total
from .tablefile import Section, TableFile, read_table_file
from .vocabulary import Observation

SYSTEM = "bedside_pews"
ITEMS = ("hr", "sbp", "crt", "rr", "resp_effort", "spo2", "oxygen_therapy")
NUMERIC = {
    "hr": "hr_bpm",
    "sbp": "sbp_mmhg",
    "rr": "rr_bpm",
    "crt": "crt_s",
    "spo2": "spo2_pct",
    "oxygen_flow": "oxygen.flow_lpm",
    "oxygen_fio2": "oxygen.fio2_pct",
}
CATEGORICAL = {"resp_effort": "resp_effort"}
# Flag names: docs/clinical/vocabulary.md#escalation-fields; the totals they stand for are in
# the table file.
FLAGS = ("ge7", "ge8")


class BedsideScorer:
    """Compiled Bedside PEWS table."""

    system = SYSTEM

    def __init__(self, top: Section) -> None:
        self.file: TableFile = read_table_file(top, NUMERIC, CATEGORICAL, ("oxygen", "escalation"))
        self._oxygen = read_oxygen(top.sub("oxygen"), self.file.numeric)
        esc = top.sub("escalation")
        esc.only(*FLAGS)
        self._flags = {name: esc.integer(name) for name in FLAGS}
        self._parts = self.file.partitions()
        self._effort = self.file.categorical["resp_effort"]

    def score(self, obs: Observation, age_months: float) -> ScoreResult:
        """Score one observation set (docs/clinical/bedside_pews.md)."""
        band = band_for(self.file, age_months)
        part = self._parts[band.id]
        oxygen, oxygen_full = self._oxygen.score(obs.oxygen)
        items = {
            "hr": lookup(part["hr"], obs.hr_bpm),
            "sbp": lookup(part["sbp"], obs.sbp_mmhg),
            "crt": lookup(part["crt"], obs.crt_s),
            "rr": lookup(part["rr"], obs.rr_bpm),
            "resp_effort": category(self._effort, obs.resp_effort),
            "spo2": lookup(part["spo2"], obs.spo2_pct),
            "oxygen_therapy": oxygen,
        }
        missing = missing_items(
            items, frozenset() if oxygen_full else frozenset({"oxygen_therapy"})
        )
        total = partial_total(items)
        return ScoreResult(
            system=SYSTEM,
            band=band.id,
            total=total,
            items=items,
            complete=not missing,
            missing=missing,
            escalation={name: total >= at for name, at in self._flags.items()},
            table_version=self.file.meta.version,
        )
