"""Seeded physiology scenarios with ground truth, for simulated bedside devices.

A scenario is a pure function of elapsed time: ``values(t) -> {code: value}``. Noise comes from
a seeded generator, so a run is reproducible. Every simulated value is labelled ``demo`` or
``test`` by the gateway config, never ``real``.

* ``stable``: a calm child, vitals near the middle of the normal range for a 3-year-old.
* ``deteriorating``: the same child, then from ``onset_s`` heart and breathing rate climb and
  SpO2 falls over ``ramp_s`` to a state that any of the supported scores rates as an emergency
  (HR 185, RR 65, SpO2 86 %). Compressed in time for CI and the demo: real deterioration takes
  hours, not seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

STABLE = {"HR": 105.0, "RR": 26.0, "SPO2": 98.0, "TEMP": 36.8}
DETERIORATED = {"HR": 185.0, "RR": 65.0, "SPO2": 86.0, "TEMP": 38.9}
NOISE = {"HR": 2.0, "RR": 1.0, "SPO2": 0.4, "TEMP": 0.05}
DECIMALS = {"HR": 0, "RR": 0, "SPO2": 0, "TEMP": 1}


@dataclass
class Scenario:
    name: str
    seed: int = 0
    onset_s: float = 2.0
    ramp_s: float = 5.0
    #: from this many seconds on, the SpO2 probe is off (the device sends no SpO2 value)
    probe_off_s: float | None = None
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        if self.name not in ("stable", "deteriorating"):
            raise ValueError(f"unknown scenario {self.name!r}")
        self.rng = random.Random(self.seed)

    @property
    def deteriorates(self) -> bool:
        return self.name == "deteriorating"

    def progress(self, t: float) -> float:
        """0 before onset, 1 once fully deteriorated (linear ramp in between)."""
        if not self.deteriorates or t <= self.onset_s:
            return 0.0
        return min(1.0, (t - self.onset_s) / self.ramp_s) if self.ramp_s > 0 else 1.0

    def probe_off(self, t: float) -> bool:
        """Whether the SpO2 probe is off at ``t`` (the device reports no signal for SpO2)."""
        return self.probe_off_s is not None and t >= self.probe_off_s

    def values(self, t: float) -> dict[str, float]:
        """Vital signs at ``t`` seconds into the run."""
        p = self.progress(t)
        out = {}
        for code, base in STABLE.items():
            target = base + (DETERIORATED[code] - base) * p
            v = target + self.rng.gauss(0.0, NOISE[code])
            if code == "SPO2":
                v = min(100.0, v)
            out[code] = round(v, DECIMALS[code])
        return out
