"""Simulated children on a ward, minute by minute, with ground truth: the evaluation scenario set.

Not ramps: each child has an age-appropriate baseline and a day of its own, and some of them
deteriorate over hours the way sick children do. Everything is drawn from ``random.Random``
seeded per bed from the set's seed, so the same ``(seed, beds, days)`` gives the same lines,
byte for byte. Changing what the generator produces for a given seed means bumping
``SCENARIO_SET_VERSION`` (eval's JSON carries it, so numbers from different generators are
never compared unknowingly).

What is modelled (sources and limits: docs/evaluation.md):

* **Baselines** from the Fleming 2011 centiles of heart and respiratory rate by age
  (``HR_CENTILES``, ``RR_CENTILES``): a child sits at its own centile (z ~ N(0, 0.5), kept
  between the 10th and 90th), and
  slow autocorrelated variation plus measurement noise move it minute by minute. Systolic
  pressure, temperature and SpO2 around typical values for age.
* **Sleep and circadian dips**: asleep at night (and an afternoon nap under 3 years) HR about
  10 % and RR about 12 % lower, temperature a few tenths lower at night.
* **Crying**: awake children cry for minutes at a time (more often the younger they are):
  HR and RR up 25-50 %, and motion spoils the oximeter.
* **Fever without deterioration** (kind ``fever``): episodes of 38.5-39.8 °C for hours, HR up
  about 10 /min and RR about 2.5 /min per °C, then an antipyretic brings it down; behaviour
  irritable while febrile.
* **Deterioration** over 6-24 h, to a labelled event (the time a rapid-response call or PICU
  transfer would happen; the child leaves the bed a minute later):
  ``sepsis`` (tachycardia, tachypnoea, fever, prolonged capillary refill, late falling
  pressure, pale then mottled skin, lethargy, late reduced consciousness),
  ``resp_failure`` (rising RR and effort, falling SpO2 that the nurse treats by escalating
  oxygen - room air, nasal prongs, face mask, high flow - which *masks* the fall: the shown
  SpO2 recovers after each step) and ``subtle_drift`` (many items each a little worse over
  12-24 h, none alarming alone).
* **Artefacts and gaps**, on every child (``artefacts`` kind: four times as often): SpO2
  probe off (``spo2_pct: null`` for minutes), motion (falsely low SpO2 for a minute or three),
  single-minute HR spikes, RR 0 or 120 from the impedance lead, single missing minutes, and
  device gaps of 20-60 min (no device line at all: a bath, a walk, a trip to radiology).
* **Nurse sets** every 1, 2 or 4 h (hourly once a deteriorating child is visibly unwell, and
  when oxygen is changed): the charted items of the child's scoring system
  (``CHARTED_KEYS``) plus a spot systolic pressure and temperature; the nurse acknowledges
  the bed's open alerts at each set and on a half-hourly board round (command lines).

Stable children (every kind but the deteriorating ones) cover every age band of every scoring
system (``AGE_BANDS``) as soon as there are at least ``len(COMBOS)`` of them.

Output: ``generate(seed, beds, days)`` -> ``ScenarioSet`` whose ``lines()`` are replay input
and command lines (``alerting/replay.py``'s format) in time order, and whose ``labels()`` are
the ground-truth label lines ``{"t": ..., "bed": ..., "label": "deterioration"}``.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "AGE_BANDS",
    "COMBOS",
    "DETERIORATING_KINDS",
    "HR_CENTILES",
    "KINDS",
    "RR_CENTILES",
    "SCENARIO_SET_VERSION",
    "START",
    "BedScenario",
    "ScenarioSet",
    "centile_value",
    "generate",
]

#: days per month, as the scorer counts them (alerting/pews/age.py)
DAYS_PER_MONTH = 365.25 / 12
#: bump whenever the lines generated for a given (seed, beds, days) change
SCENARIO_SET_VERSION = "1"
#: the ward's first minute (a Monday, midnight UTC; the ward clock is UTC)
START = datetime(2026, 1, 5, tzinfo=UTC)
DEFAULT_SEED = 17
DEFAULT_BEDS = 48
DEFAULT_DAYS = 1.5

# Fleming S et al. Normal ranges of heart rate and respiratory rate in children from birth to
# 18 years of age: a systematic review of observational studies. Lancet 2011;377:1011-18,
# Table 2 (centiles 1, 10, 25, 50, 75, 90, 99 by age band; ages in months, half-open).
CENTILES = (1, 10, 25, 50, 75, 90, 99)
_Z = (-2.3263, -1.2816, -0.6745, 0.0, 0.6745, 1.2816, 2.3263)
#: a child's baseline centile stays within +-Z_WELL (inside the 10th-90th centiles)
Z_WELL = 1.2
HR_CENTILES: tuple[tuple[int, int, tuple[int, ...]], ...] = (
    (0, 3, (107, 123, 133, 143, 154, 164, 181)),
    (3, 6, (104, 120, 129, 140, 150, 159, 175)),
    (6, 9, (98, 114, 123, 134, 143, 152, 168)),
    (9, 12, (93, 109, 118, 128, 137, 145, 161)),
    (12, 18, (88, 103, 112, 123, 132, 140, 156)),
    (18, 24, (82, 98, 106, 116, 126, 135, 149)),
    (24, 36, (76, 92, 100, 110, 119, 128, 142)),
    (36, 48, (70, 86, 94, 104, 113, 123, 136)),
    (48, 72, (65, 81, 89, 98, 108, 117, 131)),
    (72, 96, (59, 74, 82, 91, 101, 111, 123)),
    (96, 144, (52, 67, 75, 84, 93, 103, 115)),
    (144, 180, (47, 62, 69, 78, 87, 96, 108)),
    (180, 216, (43, 58, 65, 73, 83, 92, 104)),
)
RR_CENTILES: tuple[tuple[int, int, tuple[int, ...]], ...] = (
    (0, 3, (25, 34, 40, 43, 52, 57, 66)),
    (3, 6, (24, 33, 38, 41, 49, 55, 64)),
    (6, 9, (23, 31, 36, 39, 47, 52, 61)),
    (9, 12, (22, 30, 35, 37, 45, 50, 58)),
    (12, 18, (21, 28, 32, 35, 42, 46, 53)),
    (18, 24, (19, 25, 29, 31, 36, 40, 46)),
    (24, 36, (18, 22, 25, 28, 31, 34, 38)),
    (36, 48, (17, 21, 23, 25, 27, 29, 33)),
    (48, 72, (17, 20, 21, 23, 25, 27, 29)),
    (72, 96, (16, 18, 20, 21, 23, 24, 27)),
    (96, 144, (14, 16, 18, 19, 21, 22, 25)),
    (144, 180, (12, 15, 16, 18, 19, 21, 23)),
    (180, 216, (11, 13, 15, 16, 18, 19, 22)),
)

#: every scoring system's age bands as (band, from month, to month), half-open; Brighton's
#: are the rows of its example age-normal table (alerting/pews/tables)
AGE_BANDS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "bedside_pews": (("BP-A", 0, 3), ("BP-B", 3, 12), ("BP-C", 12, 60), ("BP-D", 60, 156),
                     ("BP-E", 156, 216)),
    "uk_npews": (("UK-A", 0, 12), ("UK-B", 12, 60), ("UK-C", 60, 156), ("UK-D", 156, 216)),
    "brighton_pews": (("<1y", 0, 12), ("1-2y", 12, 24), ("2-5y", 24, 60), ("5-12y", 60, 156),
                      (">12y", 156, 216)),
    "news2": (("NEWS2", 192, 216),),
}
#: every (system, band, from month, to month), the systems interleaved (so a few beds
#: already cover every system)
COMBOS: tuple[tuple[str, str, int, int], ...] = tuple(
    (system, *bands[i])
    for i in range(max(len(b) for b in AGE_BANDS.values()))
    for system, bands in AGE_BANDS.items()
    if i < len(bands)
)

STABLE_KINDS = ("stable", "crying", "fever", "artefacts")
DETERIORATING_KINDS = ("sepsis", "resp_failure", "subtle_drift")
#: kinds in the order beds get them (bed i: KIND_CYCLE[i % 8]): 3 of 8 deteriorate
KIND_CYCLE = ("stable", "sepsis", "crying", "resp_failure", "fever", "subtle_drift",
              "stable", "artefacts")
KINDS = STABLE_KINDS + DETERIORATING_KINDS

#: what the nurse charts for each system (besides a spot systolic pressure and temperature)
CHARTED_KEYS: dict[str, tuple[str, ...]] = {
    "bedside_pews": ("crt_s", "resp_effort", "oxygen"),
    "uk_npews": ("crt_s", "resp_distress", "avpu", "oxygen"),
    "brighton_pews": ("crt_s", "behaviour", "skin_colour", "resp_signs", "oxygen",
                      "quarter_hourly_nebs", "persistent_postop_vomiting"),
    "news2": ("consciousness", "on_oxygen", "oxygen"),
}

# oxygen steps for respiratory failure: (device, flow l/min, SpO2 points it adds)
_O2_STEPS = (("room_air", None, 0.0), ("NP", 2.0, 4.0), ("FM", 6.0, 7.0), ("HF", 15.0, 10.0))


def _age_row(table: tuple[tuple[int, int, tuple[int, ...]], ...], months: float
             ) -> tuple[int, ...]:
    for lo, hi, row in table:
        if lo <= months < hi:
            return row
    return table[-1][2]


def centile_value(table: tuple[tuple[int, int, tuple[int, ...]], ...], months: float,
                  z: float) -> float:
    """The value at standard score ``z`` for age ``months``: piecewise linear through the
    tabulated centiles of that age band (clamped to the 1st and 99th)."""
    row = _age_row(table, months)
    if z <= _Z[0]:
        return float(row[0])
    for i in range(1, len(_Z)):
        if z <= _Z[i]:
            f = (z - _Z[i - 1]) / (_Z[i] - _Z[i - 1])
            return row[i - 1] + f * (row[i] - row[i - 1])
    return float(row[-1])


def centile_range(table: tuple[tuple[int, int, tuple[int, ...]], ...], months: float,
                  lo: int, hi: int) -> tuple[float, float]:
    """The tabulated ``lo``-th and ``hi``-th centiles for age ``months`` (e.g. 1 and 99)."""
    row = _age_row(table, months)
    return float(row[CENTILES.index(lo)]), float(row[CENTILES.index(hi)])


def _sbp_median(months: float) -> float:
    # typical resting systolic pressure by age (about the 50th centile of the NHBPEP 2004
    # tables at the 50th height centile; infants from APLS normal values)
    if months < 12:
        return 85.0
    if months < 60:
        return 95.0
    if months < 156:
        return 105.0
    return 115.0


@dataclass(frozen=True, slots=True)
class BedScenario:
    """One bed's child and its ground truth."""

    bed: str
    kind: str
    system: str
    band: str
    age_days: int
    start: datetime
    end: datetime
    #: the labelled event (rapid response / PICU transfer); ``None``: never deteriorates
    event: datetime | None
    #: when the deterioration course starts (``None`` for stable children)
    onset: datetime | None
    #: what rebuilds the child: (seed, index, kind, system, band, from month, to month, days)
    source: tuple[int, int, str, str, str, int, int, float] = field(repr=False)

    def iter_lines(self) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """(t seconds from START, bed order, line dict): the bed's replay input and command
        lines in time order, generated afresh (the same every time; memory: one child)."""
        return _Child(*self.source).iter_lines()

    @property
    def lines(self) -> tuple[tuple[int, int, dict[str, Any]], ...]:
        """``iter_lines()``, all of them."""
        return tuple(self.iter_lines())

    @property
    def deteriorates(self) -> bool:
        return self.event is not None

    @property
    def bed_days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def truth(self) -> dict[str, Any]:
        return {
            "bed": self.bed,
            "kind": self.kind,
            "system": self.system,
            "band": self.band,
            "age_days": self.age_days,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "deteriorates": self.deteriorates,
            "onset": _iso(self.onset) if self.onset else None,
            "event": _iso(self.event) if self.event else None,
        }


@dataclass(frozen=True, slots=True)
class ScenarioSet:
    version: str
    seed: int
    days: float
    beds: tuple[BedScenario, ...]

    def lines(self) -> Iterator[dict[str, Any]]:
        """Every bed's input and command lines, merged in time order (ties: bed order);
        streamed: memory grows with the beds, not with the days."""
        for _t, _o, line in heapq.merge(*(b.iter_lines() for b in self.beds),
                                        key=lambda x: (x[0], x[1])):
            yield line

    def labels(self) -> list[dict[str, Any]]:
        """The ground-truth label lines, in time order."""
        out = [
            {"t": _iso(b.event), "bed": b.bed, "label": "deterioration"}
            for b in self.beds if b.event is not None
        ]
        return sorted(out, key=lambda d: (d["t"], d["bed"]))

    @property
    def bed_days(self) -> float:
        return sum(b.bed_days for b in self.beds)

    def truth(self) -> dict[str, Any]:
        return {
            "scenario_set_version": self.version,
            "seed": self.seed,
            "days": self.days,
            "beds": [b.truth() for b in self.beds],
        }


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _episodes(rng: random.Random, total_min: int, per_day: float, lo: int, hi: int
              ) -> list[tuple[int, int]]:
    """Random episodes ``[start, end)`` in minutes: Poisson count, uniform start."""
    lam = per_day * total_min / 1440
    # Poisson by inversion (lam small)
    n, p, u = 0, math.exp(-lam), rng.random()
    cum = p
    while u > cum and n < 1000:
        n += 1
        p *= lam / n
        cum += p
    out = []
    for _ in range(n):
        s = rng.randrange(0, max(1, total_min))
        out.append((s, s + rng.randint(lo, hi)))
    return sorted(out)


def _mask(episodes: list[tuple[int, int]], total: int) -> bytearray:
    m = bytearray(total)
    for s, e in episodes:
        for i in range(max(0, s), min(total, e)):
            m[i] = 1
    return m


class _Child:
    """Generates one bed's lines."""

    def __init__(self, seed: int, index: int, kind: str, system: str, band: str,
                 lo_m: int, hi_m: int, days: float) -> None:
        self.source = (seed, index, kind, system, band, lo_m, hi_m, days)
        self.rng = rng = random.Random(seed * 1_000_003 + index * 7919 + 1)
        self.index = index
        self.bed = f"b{index + 1:02d}"
        self.kind, self.system, self.band = kind, system, band
        lo_d = int(lo_m * DAYS_PER_MONTH) + (7 if lo_m == 0 else 1)
        hi_d = int(hi_m * DAYS_PER_MONTH) - 2
        self.age_days = rng.randint(lo_d, max(lo_d, hi_d))
        self.months = self.age_days / DAYS_PER_MONTH
        self.start_min = (index * 17) % 60
        self.total = max(60, int(days * 1440))
        # a well child's own centile: N(0, 0.5), kept within the 10th-90th centiles
        z_hr = max(-Z_WELL, min(Z_WELL, rng.gauss(0, 0.5)))
        z_rr = max(-Z_WELL, min(Z_WELL, rng.gauss(0, 0.5)))
        self.hr0 = centile_value(HR_CENTILES, self.months, z_hr)
        self.rr0 = centile_value(RR_CENTILES, self.months, z_rr)
        self.sbp0 = _sbp_median(self.months) + rng.gauss(0, 5)
        self.spo2_0 = min(99.5, 97.8 + rng.gauss(0, 0.6))
        self.temp0 = 36.7 + rng.gauss(0, 0.2)
        self.crt0 = rng.choice((1.0, 1.5, 1.5, 2.0))
        self.nurse_h = rng.choice((1, 2, 2, 4, 4))
        # deterioration course (minutes from the bed's start)
        self.onset_min: int | None = None
        self.event_min: int | None = None
        if kind in DETERIORATING_KINDS:
            lo_h, hi_h = (12.0, 24.0) if kind == "subtle_drift" else (6.0, 24.0)
            stay_h = self.total / 60
            course_h = min(rng.uniform(lo_h, hi_h), max(1.0, 0.6 * stay_h))
            earliest = max(course_h + min(6.0, 0.2 * stay_h), 0.4 * stay_h)
            latest = max(earliest, stay_h - 0.5)
            event_h = rng.uniform(earliest, latest)
            self.event_min = int(event_h * 60)
            self.onset_min = max(0, self.event_min - int(course_h * 60))
            self.total = self.event_min + 1  # transferred a minute after the event
        # artefacts and behaviour, as minute masks
        heavy = 4.0 if kind == "artefacts" else 1.0
        young = self.months < 36
        total = self.total
        self.probe_off = _mask(_episodes(rng, total, 3 * heavy, 2, 20), total)
        self.motion = _mask(_episodes(rng, total, 4 * heavy, 1, 3), total)
        self.gaps = _mask(_episodes(rng, total, 0.5 * heavy, 20, 60), total)
        self.hr_spikes = set(s for s, _ in _episodes(rng, total, 3 * heavy, 1, 1))
        self.rr_art = set(s for s, _ in _episodes(rng, total, 3 * heavy, 1, 1))
        cry_rate = (8.0 if young else 3.0) * (2.0 if kind == "crying" else 1.0)
        self.crying = _mask(_episodes(rng, total, cry_rate, 3, 20), total)
        self.fevers: list[tuple[int, int, float]] = []
        if kind == "fever":
            for s, e in _episodes(rng, total, 1.5, 180, 480):
                self.fevers.append((s, e, rng.uniform(38.5, 39.8)))
            if not self.fevers:
                s = rng.randrange(0, max(1, total - 240))
                self.fevers.append((s, s + rng.randint(180, 480), rng.uniform(38.5, 39.8)))
        self.drop_p = 0.01 * heavy
        # slow physiological variation (AR(1), per minute)
        self.ar_hr = self.ar_rr = self.ar_spo2 = 0.0

    # -- state ------------------------------------------------------------------------------
    def clock_min(self, m: int) -> int:
        return (self.start_min + m) % 1440

    def asleep(self, m: int) -> bool:
        c = self.clock_min(m) / 60
        bed_h = 19.0 if self.months < 60 else (20.5 if self.months < 156 else 22.0)
        if c >= bed_h or c < 7.0:
            return True
        return self.months < 36 and 13.0 <= c < 14.5

    def severity(self, m: int) -> float:
        if self.onset_min is None or self.event_min is None or m < self.onset_min:
            return 0.0
        x = min(1.0, (m - self.onset_min) / max(1, self.event_min - self.onset_min))
        return x if self.kind == "subtle_drift" else x ** 1.3

    def fever_c(self, m: int) -> float:
        """Degrees above baseline from fever episodes (rise over 1 h, fall over 1 h)."""
        extra = 0.0
        for s, e, peak in self.fevers:
            if s <= m < e + 60:
                rise = min(1.0, (m - s) / 60)
                fall = 1.0 if m < e else max(0.0, 1 - (m - e) / 60)
                extra = max(extra, (peak - self.temp0) * rise * fall)
        return extra

    def truth_at(self, m: int) -> dict[str, Any]:
        """The child's true state at minute ``m`` (before measurement and artefacts)."""
        s = self.severity(m)
        asleep = self.asleep(m)
        crying = bool(self.crying[m]) and not asleep and s < 0.8
        hr, rr, spo2 = self.hr0, self.rr0, self.spo2_0
        temp = self.temp0 + self.fever_c(m)
        c = self.clock_min(m) / 60
        temp += 0.25 * math.cos((c - 17) / 24 * 2 * math.pi)  # warmest late afternoon
        sbp, crt = self.sbp0, self.crt0
        if asleep:
            hr *= 0.90
            rr *= 0.88
            spo2 -= 0.4
        k = self.kind
        if k == "sepsis":
            hr *= 1 + 0.45 * s
            rr *= 1 + 0.45 * s
            temp += 1.8 * min(1.0, 2 * s)
            sbp *= 1 - 0.25 * s * s
            crt += 3.0 * s
            spo2 -= 3 * s
        elif k == "resp_failure":
            hr *= 1 + 0.3 * s
            rr *= 1 + 0.8 * s
            spo2 -= 14 * s
            temp += 0.6 * s
        elif k == "subtle_drift":
            hr *= 1 + 0.2 * s
            rr *= 1 + 0.25 * s
            spo2 -= 3 * s
            crt += 1.2 * s
            temp += 0.7 * s
            sbp *= 1 - 0.08 * s
        fever = max(0.0, temp - 37.2)
        hr += 10 * fever
        rr += 2.5 * fever
        if crying:
            hr *= 1.3
            rr *= 1.45
        return {"s": s, "asleep": asleep, "crying": crying, "hr": hr, "rr": rr,
                "spo2": spo2, "temp": temp, "sbp": sbp, "crt": crt}

    # -- charted items ----------------------------------------------------------------------
    def charted(self, st: dict[str, Any], o2: int) -> dict[str, Any]:
        s, k, rng = st["s"], self.kind, self.rng
        resp = s if k == "resp_failure" else (0.5 * s if k in ("sepsis", "subtle_drift") else 0)
        if st["crying"]:
            resp = max(resp, 0.3)
        effort = ("normal", "mild", "moderate", "severe")[
            0 if resp < 0.3 else 1 if resp < 0.55 else 2 if resp < 0.8 else 3]
        distress = {"normal": "none"}.get(effort, effort)
        signs: list[str] = []
        if resp >= 0.3:
            signs.append("recession")
        if resp >= 0.55:
            signs.append("accessory_muscles")
        if resp >= 0.8:
            signs.append("grunting")
        unwell = s if k in ("sepsis", "subtle_drift") else 0.6 * s
        febrile = st["temp"] >= 38.0
        if st["asleep"] and unwell < 0.75:
            behaviour = "sleeping"
        elif unwell >= 0.75 and k == "sepsis":
            behaviour = "lethargic_confused_reduced_pain"
        elif unwell >= 0.6 or febrile or st["crying"]:
            behaviour = "irritable"
        else:
            behaviour = "playing_appropriate"
        skin = "pink"
        if k == "sepsis" and s >= 0.7:
            skin = "grey_mottled"
        elif (k == "sepsis" and s >= 0.4) or (k == "subtle_drift" and s >= 0.7) or (
                k == "resp_failure" and s >= 0.8):
            skin = "pale"
        reduced = k == "sepsis" and s >= 0.85
        avpu = "V" if reduced else ("asleep" if st["asleep"] else "A")
        crt = round(max(0.5, st["crt"] + rng.choice((-0.5, 0.0, 0.0, 0.5))) * 2) / 2
        device, flow, _gain = _O2_STEPS[o2]
        oxygen: dict[str, Any] = {"device": device}
        if flow is not None:
            oxygen["flow_lpm"] = flow
        items: dict[str, Any] = {
            "crt_s": crt, "resp_effort": effort, "resp_distress": distress, "avpu": avpu,
            "behaviour": behaviour, "skin_colour": skin, "resp_signs": signs,
            "oxygen": oxygen, "quarter_hourly_nebs": False,
            "persistent_postop_vomiting": False,
            "consciousness": "new_confusion" if reduced else "A",
            "on_oxygen": device != "room_air",
        }
        return {key: items[key] for key in CHARTED_KEYS[self.system]}

    # -- the lines --------------------------------------------------------------------------
    def scenario(self) -> BedScenario:
        start = START + timedelta(minutes=self.start_min)
        end = start + timedelta(minutes=self.total - 1)
        return BedScenario(
            bed=self.bed, kind=self.kind, system=self.system, band=self.band,
            age_days=self.age_days, start=start, end=end,
            event=(start + timedelta(minutes=self.event_min)
                   if self.event_min is not None else None),
            onset=(start + timedelta(minutes=self.onset_min)
                   if self.onset_min is not None else None),
            source=self.source,
        )

    def iter_lines(self) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """The bed's lines in time order (once per ``_Child``: it consumes its generator)."""
        rng = self.rng
        t0 = self.start_min * 60
        order = self.index
        bed = self.bed

        def at(t: int, line: dict[str, Any]) -> tuple[int, int, dict[str, Any]]:
            line["t"] = _iso(START + timedelta(seconds=t))
            return (t, order, line)

        o2 = 0  # index into _O2_STEPS
        low_since: int | None = None
        next_set = 0
        first = True
        nurse_round = 30
        for m in range(self.total):
            st = self.truth_at(m)
            gain = _O2_STEPS[o2][2]
            shown_spo2 = min(100.0, st["spo2"] + gain)
            t = t0 + m * 60
            # AR(1) physiological variation
            self.ar_hr = 0.9 * self.ar_hr + rng.gauss(0, 0.018)
            self.ar_rr = 0.9 * self.ar_rr + rng.gauss(0, 0.035)
            self.ar_spo2 = 0.85 * self.ar_spo2 + rng.gauss(0, 0.35)
            hr = st["hr"] * (1 + self.ar_hr) + rng.gauss(0, 1.5)
            rr = st["rr"] * (1 + self.ar_rr) + rng.gauss(0, 1.0)
            spo2 = shown_spo2 + self.ar_spo2 + rng.gauss(0, 0.4)
            # the nurse escalates oxygen after ~15 min of SpO2 below 92 % (respiratory failure)
            if shown_spo2 < 92 and o2 < len(_O2_STEPS) - 1:
                low_since = m if low_since is None else low_since
                if m - low_since >= 15:
                    o2 += 1
                    low_since = None
                    next_set = m  # chart the change now
            else:
                low_since = None
            # measurement: artefacts and gaps
            if not self.gaps[m] and rng.random() >= self.drop_p:
                inputs: dict[str, Any] = {}
                if m in self.hr_spikes:
                    hr = hr + rng.uniform(60, 100)
                inputs["hr_bpm"] = round(max(30.0, hr))
                if m in self.rr_art:
                    inputs["rr_bpm"] = rng.choice((0, 120))
                else:
                    inputs["rr_bpm"] = round(max(4.0, rr))
                if self.probe_off[m]:
                    inputs["spo2_pct"] = None
                elif self.motion[m] or (st["crying"] and rng.random() < 0.3):
                    inputs["spo2_pct"] = round(rng.uniform(75, 89))
                else:
                    inputs["spo2_pct"] = round(min(100.0, max(50.0, spo2)))
                line: dict[str, Any] = {"t": "", "bed": bed, "inputs": inputs}
                if first:
                    line["system"] = self.system
                    line["age_days"] = self.age_days
                    first = False
                yield at(t, line)
            if m >= next_set and not first:
                s = st["s"]
                spot = {"sbp_mmhg": round(st["sbp"] + rng.gauss(0, 4)),
                        "temp_c": round(st["temp"] + rng.gauss(0, 0.1), 1)}
                yield at(t + 20, {"t": "", "bed": bed, "inputs": spot})
                yield at(t + 30, {"t": "", "bed": bed, "inputs": self.charted(st, o2)})
                yield at(t + 40, {"t": "", "bed": bed, "command": "ack", "by": "sim-nurse"})
                hours = 1 if s >= 0.3 or o2 > 0 else self.nurse_h
                next_set = m + hours * 60 + rng.randint(-10, 10)
            elif m == nurse_round and not first:
                yield at(t + 45, {"t": "", "bed": bed, "command": "ack", "by": "sim-nurse"})
            if m >= nurse_round:
                nurse_round = m + 30


def assign(beds: int) -> list[tuple[str, str, str, int, int]]:
    """(kind, system, band, from month, to month) for each bed: kinds by ``KIND_CYCLE``;
    stable and deteriorating children each take the (system, band) combinations in turn."""
    out = []
    n_stable = n_det = 0
    for i in range(beds):
        kind = KIND_CYCLE[i % len(KIND_CYCLE)]
        if kind in DETERIORATING_KINDS:
            combo = COMBOS[(n_det * 7 + 3) % len(COMBOS)]
            n_det += 1
        else:
            combo = COMBOS[n_stable % len(COMBOS)]
            n_stable += 1
        out.append((kind, *combo))
    return out


def generate(seed: int = DEFAULT_SEED, beds: int = DEFAULT_BEDS,
             days: float = DEFAULT_DAYS) -> ScenarioSet:
    """The scenario set for ``seed``: ``beds`` beds observed for ``days`` days each (a
    deteriorating child leaves the bed a minute after its labelled event)."""
    if beds < 1 or beds > 999:
        raise ValueError(f"beds must be in 1..999, got {beds}")
    if not (math.isfinite(days) and 1 / 24 <= days <= 30):
        raise ValueError(f"days must be in [1/24, 30], got {days}")
    out = []
    for i, (kind, system, band, lo, hi) in enumerate(assign(beds)):
        out.append(_Child(seed, i, kind, system, band, lo, hi, days).scenario())
    return ScenarioSet(SCENARIO_SET_VERSION, seed, days, tuple(out))
