"""The vital-sign parameter table: one row per thing wardwatch measures or charts.

Every observation on the wire names its parameter by ``code`` (a short, stable string). This
table maps each code to its display name, UCUM unit, IEEE 11073-10101 MDC reference id (where
one exists), LOINC code and plausibility limits.

Plausibility limits are *physical* bounds ("a value outside this cannot be a reading of this
parameter"); they are used by ingest to dead-letter nonsense. They are deliberately wider than
the alerting engine's artefact limits (docs/clinical/artefact_limits.md#limits), which are
clinical and configurable.

LOINC codes are given only where we are sure of them; ``None`` means "not yet mapped" and is
waiting for a terminology review, never a guess.

Nurse-charted categorical items (AVPU, respiratory effort, oxygen device) carry their value as
an index into ``categories``; the numeric value on the wire is that index, so every
observation keeps a single float ``value`` field.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ParamKind(StrEnum):
    """How a parameter's value is to be read."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    WAVEFORM = "waveform"


@dataclass(frozen=True, slots=True)
class Parameter:
    """One row of the parameter table."""

    code: str
    name: str
    ucum: str
    mdc: str | None
    loinc: str | None
    low: float
    high: float
    kind: ParamKind = ParamKind.NUMERIC
    categories: tuple[str, ...] = ()
    charted: bool = False

    def plausible(self, value: float) -> bool:
        """True when ``value`` can physically be a reading of this parameter."""
        if self.kind is ParamKind.CATEGORICAL:
            return value == int(value) and 0 <= value < len(self.categories)
        return self.low <= value <= self.high

    def category(self, value: float) -> str:
        """The category name of a categorical value."""
        if self.kind is not ParamKind.CATEGORICAL or not self.plausible(value):
            raise ValueError(f"{value!r} is not a category of {self.code}")
        return self.categories[int(value)]


_C = ParamKind.CATEGORICAL

PARAMETERS: tuple[Parameter, ...] = (
    # Device numerics.
    Parameter("HR", "Heart rate", "/min", "MDC_ECG_HEART_RATE", "8867-4", 0, 350),
    Parameter("PR", "Pulse rate (oximeter)", "/min", "MDC_PULS_OXIM_PULS_RATE", "8889-8", 0, 350),
    Parameter("RR", "Respiratory rate", "/min", "MDC_RESP_RATE", "9279-1", 0, 200),
    Parameter("SPO2", "Oxygen saturation (SpO2)", "%", "MDC_PULS_OXIM_SAT_O2", "59408-5", 0, 100),
    Parameter("TEMP", "Body temperature", "Cel", "MDC_TEMP_BODY", "8310-5", 15, 47),
    Parameter(
        "NIBP_SYS",
        "Non-invasive BP systolic",
        "mm[Hg]",
        "MDC_PRESS_BLD_NONINV_SYS",
        "8480-6",
        0,
        300,
    ),
    Parameter(
        "NIBP_DIA",
        "Non-invasive BP diastolic",
        "mm[Hg]",
        "MDC_PRESS_BLD_NONINV_DIA",
        "8462-4",
        0,
        300,
    ),
    Parameter(
        "NIBP_MEAN", "Non-invasive BP mean", "mm[Hg]", "MDC_PRESS_BLD_NONINV_MEAN", "8478-0", 0, 300
    ),
    Parameter("PI", "Perfusion index", "%", "MDC_PULS_OXIM_PERF_REL", None, 0, 100),
    # Nurse-charted items.
    Parameter(
        "AVPU",
        "Level of consciousness (AVPU)",
        "{score}",
        None,
        None,
        0,
        4,
        _C,
        ("A", "V", "P", "U", "asleep"),
        True,
    ),
    Parameter(
        "RESP_EFFORT",
        "Respiratory effort / distress",
        "{score}",
        None,
        None,
        0,
        4,
        _C,
        ("normal", "mild", "moderate", "severe", "apnoea"),
        True,
    ),
    Parameter("CRT", "Capillary refill time", "s", None, "44963-7", 0, 30, charted=True),
    Parameter(
        "O2_DEVICE",
        "Oxygen delivery device",
        "{device}",
        None,
        None,
        0,
        7,
        _C,
        ("room_air", "NP", "FM", "HB", "NRB", "HF", "BiP", "CP"),
        True,
    ),
    Parameter("O2_FLOW", "Oxygen flow", "L/min", None, "3151-8", 0, 80, charted=True),
    Parameter("FIO2", "Inspired oxygen concentration", "%", None, "3150-0", 21, 100, charted=True),
    # Waveforms (travel as blocks, never one message per sample).
    Parameter(
        "PLETH",
        "Plethysmogram",
        "{unitless}",
        "MDC_PULS_OXIM_PLETH",
        None,
        -1e6,
        1e6,
        ParamKind.WAVEFORM,
    ),
    Parameter(
        "ECG_II", "ECG lead II", "mV", "MDC_ECG_ELEC_POTL_II", None, -50, 50, ParamKind.WAVEFORM
    ),
)

BY_CODE: dict[str, Parameter] = {p.code: p for p in PARAMETERS}


def parameter(code: str) -> Parameter:
    """Look a parameter up by code; raises ``KeyError`` naming the code."""
    try:
        return BY_CODE[code]
    except KeyError:
        raise KeyError(f"unknown parameter code {code!r}") from None
