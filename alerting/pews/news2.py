"""NEWS2 (Royal College of Physicians 2017), offered for patients aged 16 and over.

docs/clinical/news2.md. NEWS2 is published on whole numbers (temperature on one decimal), so
its table files declare ``round_digits`` and values are rounded half-up before lookup
(docs/clinical/news2.md#rounding); this rounding applies to NEWS2 only.

Air or oxygen comes from ``on_oxygen``; when that is not charted it is derived from the shared
``oxygen`` object (any device other than room air = oxygen). When both are charted and disagree
(``on_oxygen: false`` with a device other than room air, or ``true`` with room air) the set is
rejected with a `PewsInputError` on ``on_oxygen`` rather than resolved either way (clinical lead
decision; like room air together with a flow). Only SpO2 scale 1 is supported.
"""

from __future__ import annotations

from .common import band_for, category, lookup
from .errors import PewsInputError
from .result import ScoreResult, missing_items, partial_total
from .tablefile import Section, TableFile, read_table_file
from .vocabulary import Observation

SYSTEM = "news2"
ITEMS = ("rr", "spo2", "air_or_oxygen", "sbp", "hr", "consciousness", "temp")
NUMERIC = {"rr": "rr_bpm", "spo2": "spo2_pct", "sbp": "sbp_mmhg", "hr": "hr_bpm", "temp": "temp_c"}
CATEGORICAL = {"consciousness": "consciousness", "air_or_oxygen": "air_or_oxygen"}


def air_or_oxygen(obs: Observation) -> str | None:
    """``"oxygen"``/``"air"`` from ``on_oxygen`` and/or the oxygen device, else None.

    Raises:
        PewsInputError: ``on_oxygen`` contradicts the charted oxygen device.
    """
    device = None if obs.oxygen is None else obs.oxygen.device
    from_device = None if device is None else ("air" if device == "room_air" else "oxygen")
    if obs.on_oxygen is None:
        return from_device
    charted = "oxygen" if obs.on_oxygen else "air"
    if from_device is not None and from_device != charted:
        raise PewsInputError(
            "on_oxygen",
            f"{str(obs.on_oxygen).lower()} but oxygen.device is {device} (contradictory)",
        )
    return charted


class News2Scorer:
    """Compiled NEWS2 table."""

    system = SYSTEM

    def __init__(self, top: Section) -> None:
        self.file: TableFile = read_table_file(top, NUMERIC, CATEGORICAL, ("escalation",))
        self._parts = self.file.partitions()
        self._conscious = self.file.categorical["consciousness"]
        self._air = self.file.categorical["air_or_oxygen"]
        esc = top.sub("escalation")
        esc.only("single_parameter_score", "medium_from", "high_from")
        self._single = esc.integer("single_parameter_score")
        self._medium, self._high = esc.integer("medium_from"), esc.integer("high_from")
        if not 0 < self._medium < self._high:
            esc.fail("high_from", "need 0 < medium_from < high_from")

    def score(self, obs: Observation, age_months: float) -> ScoreResult:
        """Score one observation set.

        Table: docs/clinical/news2.md#table; result: docs/clinical/vocabulary.md#escalation-fields.
        """
        band = band_for(self.file, age_months)
        part = self._parts[band.id]
        items = {
            "rr": lookup(part["rr"], obs.rr_bpm),
            "spo2": lookup(part["spo2"], obs.spo2_pct),
            "air_or_oxygen": category(self._air, air_or_oxygen(obs)),
            "sbp": lookup(part["sbp"], obs.sbp_mmhg),
            "hr": lookup(part["hr"], obs.hr_bpm),
            "consciousness": category(self._conscious, obs.consciousness),
            "temp": lookup(part["temp"], obs.temp_c),
        }
        missing = missing_items(items)
        total = partial_total(items)
        any_single = any(v is not None and v >= self._single for v in items.values())
        if total >= self._high:
            level = "high"
        elif total >= self._medium:
            level = "medium"
        else:
            level = "low_medium" if any_single else "low"
        return ScoreResult(
            system=SYSTEM,
            band=band.id,
            total=total,
            items=items,
            complete=not missing,
            missing=missing,
            escalation={"level": level, "any_single_3": any_single},
            table_version=self.file.meta.version,
        )
