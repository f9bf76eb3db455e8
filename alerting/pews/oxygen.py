"""Oxygen therapy as one scored item: a device plus, optionally, a delivered level.

The three paediatric systems agree on the shape and differ only in numbers, which live in the
table's ``[oxygen.devices]`` map and ``numeric.oxygen_flow`` / ``numeric.oxygen_fio2`` cells:

* ``room_air`` scores its fixed value (0);
* a device with a fixed score (UK NPEWS / Bedside: HF, BiP, CP -> 4; Brighton: HF, BiP,
  CP -> 3, the respiratory domain maximum) scores at least that;
* otherwise the level scores: flow and FiO2 each looked up, the higher wins
  (docs/clinical/vocabulary.md#input-keys);
* a level device with neither flow nor FiO2 is *partial*: it scores the lowest value any level
  could earn (support is known to be present) and the item is reported missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .intervals import Partition
from .tablefile import NumericTable, Section
from .vocabulary import OXYGEN_DEVICES, Oxygen

LEVEL = "level"


@dataclass(frozen=True, slots=True)
class OxygenRule:
    """Compiled oxygen scoring for one system."""

    devices: Mapping[str, int | None]  # None = scored by the delivered level
    flow: Partition
    fio2: Partition

    def score(self, oxygen: Oxygen | None) -> tuple[int | None, bool]:
        """Return ``(score, fully_obtained)``; ``(None, False)`` when oxygen is not charted."""
        if oxygen is None:
            return None, False
        fixed = self.devices[oxygen.device]
        level: int | None = None
        if oxygen.flow_lpm is not None:
            level = self.flow.lookup(oxygen.flow_lpm)
        if oxygen.fio2_pct is not None:
            fio2 = self.fio2.lookup(oxygen.fio2_pct)
            level = fio2 if level is None else max(level, fio2)
        if fixed is not None:
            return (fixed if level is None else max(fixed, level)), True
        if level is None:
            return min(self.flow.min_score, self.fio2.min_score), False
        return level, True


def read_oxygen(sec: Section, numeric: Mapping[str, NumericTable]) -> OxygenRule:
    """Parse ``[oxygen.devices]``: every device of the vocabulary -> an integer or ``"level"``.

    Devices: docs/clinical/vocabulary.md#input-keys.
    """
    sec.only("devices")
    devices = sec.sub("devices")
    devices.only(*OXYGEN_DEVICES)
    parsed: dict[str, int | None] = {}
    for device in OXYGEN_DEVICES:
        value = devices.raw(device)
        if value == LEVEL and device != "room_air":
            parsed[device] = None
        else:
            parsed[device] = devices.integer(device)
    for name in ("oxygen_flow", "oxygen_fio2"):
        if "*" not in numeric[name].by_band:
            sec.fail(None, f"numeric.{name} must be an all_ages table")
    return OxygenRule(
        parsed, numeric["oxygen_flow"].for_band(None), numeric["oxygen_fio2"].for_band(None)
    )
