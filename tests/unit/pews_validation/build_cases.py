"""Builds cases.jsonl for the independent PEWS validation.

Every expected sub-score below was read BY HAND from the specification
(engine specification v0.1, now docs/clinical/README.md#provenance and the
pages it indexes) and is written out literally as a
(value, expected score) pair.  There is deliberately no interval evaluator here:
nothing in this file computes a score, it only lists values and the score the
spec table assigns to them, plus a normal baseline per age band so that the
total and `complete` can be checked as well.

Run:  .venv/bin/python tests/unit/pews_validation/build_cases.py
(rewrites cases.jsonl next to this file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Hand-written value tables are kept compact on purpose.
# fmt: off
OUT = Path(__file__).with_name("cases.jsonl")
CASES: list[dict[str, Any]] = []


def add(
    cid: str,
    system: str,
    inputs: dict[str, Any],
    expect: dict[str, Any],
    *,
    age_days: float | None = None,
    age_months: float | None = None,
    note: str | None = None,
) -> None:
    case: dict[str, Any] = {"id": cid, "system": system}
    if age_days is not None:
        case["age_days"] = age_days
    if age_months is not None:
        case["age_months"] = age_months
    case["inputs"] = inputs
    case["expect"] = expect
    if note:
        case["note"] = note
    CASES.append(case)


def fmt(v: float) -> str:
    return f"{v:g}"


# --------------------------------------------------------------------------------------
# Bedside PEWS (docs/clinical/bedside_pews.md#age-bands,
# docs/clinical/bedside_pews.md#continuous-items, docs/clinical/bedside_pews.md#all-age-items)
# --------------------------------------------------------------------------------------
BP_AGE = {"BP-A": 30, "BP-B": 200, "BP-C": 1000, "BP-D": 3000, "BP-E": 5500}
# normal values (score 0 in every continuous cell) per band: HR, SBP, RR
BP_NORMAL = {
    "BP-A": (130, 70, 45),
    "BP-B": (125, 90, 35),
    "BP-C": (105, 100, 30),
    "BP-D": (90, 105, 25),
    "BP-E": (80, 115, 14),
}
BP_ITEMS = ["hr", "sbp", "crt", "rr", "resp_effort", "spo2", "oxygen_therapy"]


def bp_base(band: str) -> dict[str, Any]:
    hr, sbp, rr = BP_NORMAL[band]
    return {
        "hr_bpm": hr,
        "sbp_mmhg": sbp,
        "crt_s": 2,
        "rr_bpm": rr,
        "resp_effort": "normal",
        "spo2_pct": 98,
        "oxygen": {"device": "room_air"},
    }


# docs/clinical/bedside_pews.md#continuous-items, both sides of every cell boundary;
# strict/inclusive probed with .5 steps
BP_HR = {
    "BP-A": [(79, 4), (80, 4), (80.5, 2), (90, 2), (90.5, 1), (110, 1), (110.5, 0),
             (149.5, 0), (150, 1), (179.5, 1), (180, 2), (189.5, 2), (190, 4)],
    "BP-B": [(70, 4), (70.5, 2), (80, 2), (80.5, 1), (100, 1), (100.5, 0), (149.5, 0),
             (150, 1), (169.5, 1), (170, 2), (179.5, 2), (180, 4)],
    "BP-C": [(60, 4), (60.5, 2), (70, 2), (70.5, 1), (90, 1), (90.5, 0), (119.5, 0),
             (120, 1), (149.5, 1), (150, 2), (169.5, 2), (170, 4)],
    # irregular cell: score 4 is strict ">150", so 150 scores 2
    # (docs/clinical/bedside_pews.md#irregular-cells)
    "BP-D": [(50, 4), (50.5, 2), (60, 2), (60.5, 1), (70, 1), (70.5, 0), (109.5, 0),
             (110, 1), (129.5, 1), (130, 2), (149, 2), (150, 2), (150.5, 4), (151, 4)],
    # irregular cell: score 2 is strict "<50", so 50 scores 1
    # (docs/clinical/bedside_pews.md#irregular-cells)
    "BP-E": [(40, 4), (40.5, 2), (49, 2), (49.5, 2), (50, 1), (51, 1), (60, 1), (60.5, 0),
             (99.5, 0), (100, 1), (119.5, 1), (120, 2), (139.5, 2), (140, 4)],
}
BP_SBP = {
    "BP-A": [(45, 4), (45.5, 2), (50, 2), (50.5, 1), (60, 1), (60.5, 0), (79.5, 0), (80, 1),
             (99.5, 1), (100, 2), (129.5, 2), (130, 4)],
    "BP-B": [(60, 4), (60.5, 2), (70, 2), (70.5, 1), (80, 1), (80.5, 0), (99.5, 0), (100, 1),
             (119.5, 1), (120, 2), (149.5, 2), (150, 4)],
    "BP-C": [(65, 4), (65.5, 2), (75, 2), (75.5, 1), (90, 1), (90.5, 0), (109.5, 0), (110, 1),
             (124.5, 1), (125, 2), (159.5, 2), (160, 4)],
    "BP-D": [(70, 4), (70.5, 2), (80, 2), (80.5, 1), (90, 1), (90.5, 0), (119.5, 0), (120, 1),
             (139.5, 1), (140, 2), (169.5, 2), (170, 4)],
    "BP-E": [(75, 4), (75.5, 2), (85, 2), (85.5, 1), (100, 1), (100.5, 0), (129.5, 0),
             (130, 1), (149.5, 1), (150, 2), (189.5, 2), (190, 4)],
}
BP_RR = {
    "BP-A": [(15, 4), (15.5, 2), (19, 2), (19.5, 1), (29, 1), (29.5, 0), (60.5, 0), (61, 1),
             (80.5, 1), (81, 2), (90.5, 2), (91, 4)],
    "BP-B": [(15, 4), (15.5, 2), (19, 2), (19.5, 1), (24, 1), (24.5, 0), (50.5, 0), (51, 1),
             (70.5, 1), (71, 2), (80.5, 2), (81, 4)],
    "BP-C": [(12, 4), (12.5, 2), (15, 2), (15.5, 1), (19, 1), (19.5, 0), (40.5, 0), (41, 1),
             (60.5, 1), (61, 2), (70.5, 2), (71, 4)],
    "BP-D": [(10, 4), (10.5, 2), (14, 2), (14.5, 1), (19, 1), (19.5, 0), (30.5, 0), (31, 1),
             (40.5, 1), (41, 2), (50.5, 2), (51, 4)],
    "BP-E": [(9, 4), (9.5, 2), (10, 2), (10.5, 1), (11, 1), (11.5, 0), (16.5, 0), (17, 1),
             (22.5, 1), (23, 2), (29.5, 2), (30, 4)],
}


def bedside() -> None:
    sysname = "bedside_pews"
    for band in BP_AGE:
        base = bp_base(band)
        add(f"bp-{band}-baseline", sysname, base,
            {"band": band, "total": 0, "complete": True, "missing": [],
             "items": dict.fromkeys(BP_ITEMS, 0),
             "escalation": {"ge7": False, "ge8": False}},
            age_days=BP_AGE[band])
        for key, item, table in (("hr_bpm", "hr", BP_HR), ("sbp_mmhg", "sbp", BP_SBP),
                                 ("rr_bpm", "rr", BP_RR)):
            for value, score in table[band]:
                inputs = {**base, key: value}
                add(f"bp-{band}-{item}-{fmt(value)}", sysname, inputs,
                    {"band": band, "items": {item: score}, "total": score, "complete": True},
                    age_days=BP_AGE[band])

    # docs/clinical/bedside_pews.md#all-age-items: categorical / all-age items (BP-C baseline)
    band = "BP-C"
    base = bp_base(band)
    for value, score in [(0, 0), (2, 0), (2.9, 0), (2.99, 0), (3, 4), (5, 4)]:
        add(f"bp-crt-{fmt(value)}", "bedside_pews", {**base, "crt_s": value},
            {"items": {"crt": score}, "total": score, "complete": True}, age_days=1000)
    for value, score in [("normal", 0), ("mild", 1), ("moderate", 2), ("severe", 4),
                         ("apnoea", 4)]:
        add(f"bp-effort-{value}", "bedside_pews", {**base, "resp_effort": value},
            {"items": {"resp_effort": score}, "total": score, "complete": True}, age_days=1000)
    for value, score in [(100, 0), (95, 0), (94.5, 0), (94, 1), (92, 1), (91, 1), (90.5, 1),
                         (90, 2), (85, 2), (0, 2)]:
        add(f"bp-spo2-{fmt(value)}", "bedside_pews", {**base, "spo2_pct": value},
            {"items": {"spo2": score}, "total": score, "complete": True}, age_days=1000)
    # oxygen therapy: room air 0; low support 2; flow >= 4 or conc >= 50 -> 4; HF/CP/BiP 4;
    # both flow and FiO2 -> the higher (docs/clinical/bedside_pews.md#oxygen,
    # docs/clinical/vocabulary.md#input-keys)
    oxy = [
        ("room_air", {"device": "room_air"}, 0),
        ("np-flow1", {"device": "NP", "flow_lpm": 1}, 2),
        ("np-flow0.25", {"device": "NP", "flow_lpm": 0.25}, 2),
        ("np-flow3.99", {"device": "NP", "flow_lpm": 3.99}, 2),
        ("np-flow4", {"device": "NP", "flow_lpm": 4}, 4),
        ("fm-flow6", {"device": "FM", "flow_lpm": 6}, 4),
        ("fm-fio2-30", {"device": "FM", "fio2_pct": 30}, 2),
        ("fm-fio2-49", {"device": "FM", "fio2_pct": 49}, 2),
        ("fm-fio2-50", {"device": "FM", "fio2_pct": 50}, 4),
        ("hb-fio2-40", {"device": "HB", "fio2_pct": 40}, 2),
        ("nrb-flow10", {"device": "NRB", "flow_lpm": 10}, 4),
        ("np-flow2-fio2-60", {"device": "NP", "flow_lpm": 2, "fio2_pct": 60}, 4),
        ("fm-flow6-fio2-30", {"device": "FM", "flow_lpm": 6, "fio2_pct": 30}, 4),
        ("np-flow1-fio2-30", {"device": "NP", "flow_lpm": 1, "fio2_pct": 30}, 2),
        ("hf-flow1", {"device": "HF", "flow_lpm": 1}, 4),
        ("hf-fio2-21", {"device": "HF", "fio2_pct": 21}, 4),
        ("hf-nolevel", {"device": "HF"}, 4),
        ("cp", {"device": "CP", "fio2_pct": 25}, 4),
        ("bip", {"device": "BiP", "fio2_pct": 25}, 4),
    ]
    for name, o2, score in oxy:
        add(f"bp-oxygen-{name}", "bedside_pews", {**base, "oxygen": o2},
            {"items": {"oxygen_therapy": score}, "total": score, "complete": True},
            age_days=1000)

    # docs/clinical/conventions.md#age-band-boundaries (integer-day cut points) and completed months
    for cid, day, band, hr, score in [
        ("bp-age-day91", 91, "BP-A", 105, 1), ("bp-age-day92", 92, "BP-B", 105, 0),
        ("bp-age-day365", 365, "BP-B", 95, 1), ("bp-age-day366", 366, "BP-C", 95, 0),
        ("bp-age-day1826", 1826, "BP-C", 65, 2), ("bp-age-day1827", 1827, "BP-D", 65, 1),
        ("bp-age-day4748", 4748, "BP-D", 105, 0), ("bp-age-day4749", 4749, "BP-E", 105, 1),
        ("bp-age-day5843", 5843, "BP-E", 105, 1), ("bp-age-day5844", 5844, "BP-E", 105, 1),
        ("bp-age-day0", 0, "BP-A", 105, 1),
    ]:
        add(cid, "bedside_pews", {"hr_bpm": hr}, {"band": band, "items": {"hr": score}},
            age_days=day)
    for months, band in [(0, "BP-A"), (2, "BP-A"), (3, "BP-B"), (11, "BP-B"), (12, "BP-C"),
                         (59, "BP-C"), (60, "BP-D"), (155, "BP-D"), (156, "BP-E"),
                         (200, "BP-E")]:
        add(f"bp-age-months{months}", "bedside_pews", {"hr_bpm": 130}, {"band": band},
            age_months=months)

    # docs/clinical/bedside_pews.md#escalation: engine thresholds ge7 / ge8 (BP-C)
    for cid, extra, total in [
        ("bp-esc-total6", {"hr_bpm": 170, "oxygen": {"device": "NP", "flow_lpm": 2}}, 6),
        ("bp-esc-total7", {"hr_bpm": 170, "oxygen": {"device": "NP", "flow_lpm": 2},
                           "spo2_pct": 93}, 7),
        ("bp-esc-total8", {"hr_bpm": 170, "crt_s": 3}, 8),
        ("bp-esc-total26", {"hr_bpm": 170, "sbp_mmhg": 160, "crt_s": 4, "rr_bpm": 71,
                            "resp_effort": "apnoea", "spo2_pct": 88,
                            "oxygen": {"device": "CP"}}, 26),
    ]:
        add(cid, "bedside_pews", {**base, **extra},
            {"total": total, "complete": True,
             "escalation": {"ge7": total >= 7, "ge8": total >= 8}}, age_days=1000)

    # docs/clinical/conventions.md#missing-items
    add("bp-missing-all-but-hr", "bedside_pews", {"hr_bpm": 190},
        {"band": "BP-A", "total": 4, "complete": False,
         "items": {"hr": 4, "sbp": None, "crt": None, "rr": None, "resp_effort": None,
                   "spo2": None, "oxygen_therapy": None},
         "missing": ["sbp", "crt", "rr", "resp_effort", "spo2", "oxygen_therapy"],
         "escalation": {"ge7": False, "ge8": False}}, age_days=30)
    add("bp-missing-null-spo2", "bedside_pews", {**base, "spo2_pct": None},
        {"total": 0, "complete": False, "missing": ["spo2"], "items": {"spo2": None}},
        age_days=1000)
    add("bp-missing-oxygen", "bedside_pews",
        {k: v for k, v in base.items() if k != "oxygen"},
        {"total": 0, "complete": False, "missing": ["oxygen_therapy"],
         "items": {"oxygen_therapy": None}}, age_days=1000)
    add("bp-missing-empty", "bedside_pews", {},
        {"total": 0, "complete": False, "missing": sorted(BP_ITEMS),
         "items": dict.fromkeys(BP_ITEMS)}, age_days=1000)
    add("bp-missing-partial-high", "bedside_pews",
        {"hr_bpm": 170, "crt_s": 3, "resp_effort": "severe"},
        {"total": 12, "complete": False, "missing": ["sbp", "rr", "spo2", "oxygen_therapy"],
         "escalation": {"ge7": True, "ge8": True}}, age_days=1000)
    # docs/clinical/vocabulary.md#input-keys: other systems' keys are accepted and ignored
    add("bp-foreign-keys-ignored", "bedside_pews",
        {**base, "avpu": "U", "resp_distress": "severe", "consciousness": "P",
         "on_oxygen": True, "behaviour": "irritable", "temp_c": 40.1},
        {"total": 0, "complete": True, "missing": []}, age_days=1000)


# --------------------------------------------------------------------------------------
# UK National PEWS (docs/clinical/uk_npews.md#age-charts to docs/clinical/uk_npews.md#escalation)
# --------------------------------------------------------------------------------------
UK_AGE = {"UK-A": 200, "UK-B": 1000, "UK-C": 3000, "UK-D": 5500}
UK_NORMAL = {  # RR, HR, SBP all scoring 0
    "UK-A": (40, 130, 80),
    "UK-B": (30, 110, 90),
    "UK-C": (22, 100, 100),
    "UK-D": (20, 85, 110),
}
UK_ITEMS = ["rr", "resp_distress", "spo2", "oxygen", "hr", "sbp", "crt"]


def uk_base(band: str) -> dict[str, Any]:
    rr, hr, sbp = UK_NORMAL[band]
    return {
        "rr_bpm": rr,
        "resp_distress": "none",
        "spo2_pct": 98,
        "oxygen": {"device": "room_air"},
        "hr_bpm": hr,
        "sbp_mmhg": sbp,
        "crt_s": 1,
    }


# docs/clinical/uk_npews.md#age-specific-items with the docs/clinical/uk_npews.md#gap-rule
# (value between two bands -> the higher score)
UK_RR = {
    "UK-A": [(9, 4), (9.99, 4), (10, 2), (19, 2), (19.995, 2), (20, 1), (29, 1), (29.995, 1),
             (30, 0), (49, 0), (49.99, 0), (49.995, 1), (50, 1), (59, 1), (59.995, 2),
             (60, 2), (69, 2), (69.995, 4), (70, 4)],
    "UK-B": [(9, 4), (10, 2), (19, 2), (19.995, 2), (20, 0), (39, 0), (39.995, 1), (40, 1),
             (49, 1), (49.995, 2), (50, 2), (59, 2), (59.995, 4), (60, 4)],
    "UK-C": [(9, 4), (10, 2), (14, 2), (14.995, 2), (15, 1), (19, 1), (19.995, 1), (20, 0),
             (24, 0), (24.995, 1), (25, 1), (39, 1), (39.995, 2), (40, 2), (49, 2),
             (49.995, 4), (50, 4)],
    "UK-D": [(9, 4), (9.5, 4), (10, 1), (14, 1), (14.995, 1), (15, 0), (24, 0), (24.995, 1),
             (25, 1), (29, 1), (29.995, 2), (30, 2), (39, 2), (39.995, 4), (40, 4)],
}
UK_HR = {
    "UK-A": [(79, 4), (79.5, 4), (80, 2), (89, 2), (89.995, 2), (90, 1), (109, 1),
             (109.995, 1), (110, 0), (149, 0), (149.995, 1), (150, 1), (169, 1),
             (169.995, 2), (170, 2), (179, 2), (179.995, 4), (180, 4)],
    "UK-B": [(59, 4), (60, 2), (69, 2), (69.995, 2), (70, 1), (89, 1), (89.995, 1), (90, 0),
             (139, 0), (139.995, 1), (140, 1), (149, 1), (149.995, 2), (150, 2), (169, 2),
             (169.995, 4), (170, 4)],
    "UK-C": [(59, 4), (60, 2), (69, 2), (69.995, 2), (70, 1), (79, 1), (79.995, 1), (80, 0),
             (119, 0), (119.99, 0), (119.995, 1), (120, 1), (139, 1), (139.995, 2), (140, 2),
             (159, 2), (159.995, 4), (160, 4)],
    "UK-D": [(49, 4), (50, 2), (59, 2), (59.995, 2), (60, 1), (69, 1), (69.995, 1), (70, 0),
             (99, 0), (99.995, 1), (100, 1), (119, 1), (119.995, 2), (120, 2), (129, 2),
             (129.995, 4), (130, 4)],
}
UK_SBP = {
    "UK-A": [(49, 4), (50, 2), (59, 2), (59.995, 2), (60, 1), (69, 1), (69.995, 1), (70, 0),
             (89, 0), (89.995, 1), (90, 1), (99, 1), (99.995, 2), (100, 2), (109, 2),
             (109.995, 4), (110, 4)],
    "UK-B": [(49, 4), (50, 2), (59, 2), (60, 1), (79, 1), (79.995, 1), (80, 0), (99, 0),
             (99.995, 1), (100, 1), (119, 1), (120, 2), (129, 2), (129.995, 4), (130, 4)],
    "UK-C": [(69, 4), (70, 2), (79, 2), (80, 1), (89, 1), (90, 0), (109, 0), (110, 1),
             (119, 1), (120, 2), (129, 2), (130, 4)],
    "UK-D": [(79, 4), (80, 2), (89, 2), (90, 1), (99, 1), (100, 0), (119, 0), (120, 1),
             (129, 1), (130, 2), (139, 2), (140, 4)],
}


def npews() -> None:
    sysname = "uk_npews"
    for band in UK_AGE:
        base = uk_base(band)
        add(f"uk-{band}-baseline", sysname, base,
            {"band": band, "total": 0, "complete": True, "missing": [],
             "items": dict.fromkeys(UK_ITEMS, 0),
             "escalation": {"score_level": "none", "final_level": "none"}},
            age_days=UK_AGE[band])
        for key, item, table in (("rr_bpm", "rr", UK_RR), ("hr_bpm", "hr", UK_HR),
                                 ("sbp_mmhg", "sbp", UK_SBP)):
            for value, score in table[band]:
                add(f"uk-{band}-{item}-{fmt(value)}", sysname, {**base, key: value},
                    {"band": band, "items": {item: score}, "total": score, "complete": True},
                    age_days=UK_AGE[band])

    base = uk_base("UK-C")
    # docs/clinical/uk_npews.md#all-age-items: common items
    for value, score in [(100, 0), (95, 0), (94.99, 1), (94.995, 1), (94, 1), (92, 1),
                         (91.5, 1), (91.01, 1), (91.005, 4), (91, 4), (90, 4), (0, 4)]:
        add(f"uk-spo2-{fmt(value)}", sysname, {**base, "spo2_pct": value},
            {"items": {"spo2": score}, "total": score, "complete": True}, age_days=3000)
    for value, score in [(0, 0), (1, 0), (2, 0), (2.01, 2), (2.5, 2), (3, 2), (6, 2)]:
        add(f"uk-crt-{fmt(value)}", sysname, {**base, "crt_s": value},
            {"items": {"crt": score}, "total": score, "complete": True}, age_days=3000)
    for value, score in [("none", 0), ("mild", 1), ("moderate", 2), ("severe", 4)]:
        add(f"uk-distress-{value}", sysname, {**base, "resp_distress": value},
            {"items": {"resp_distress": score}, "total": score, "complete": True},
            age_days=3000)
    oxy = [
        ("room_air", {"device": "room_air"}, 0),
        ("np-flow0.01", {"device": "NP", "flow_lpm": 0.01}, 1),
        ("np-flow0.5", {"device": "NP", "flow_lpm": 0.5}, 1),
        ("np-flow1.99", {"device": "NP", "flow_lpm": 1.99}, 1),
        ("np-flow2", {"device": "NP", "flow_lpm": 2}, 2),
        ("np-flow5.99", {"device": "NP", "flow_lpm": 5.99}, 2),
        ("fm-flow5.995-gap", {"device": "FM", "flow_lpm": 5.995}, 4),
        ("fm-flow6", {"device": "FM", "flow_lpm": 6}, 4),
        ("nrb-flow15", {"device": "NRB", "flow_lpm": 15}, 4),
        ("fm-fio2-29", {"device": "FM", "fio2_pct": 29}, 1),
        ("fm-fio2-30", {"device": "FM", "fio2_pct": 30}, 2),
        ("fm-fio2-49", {"device": "FM", "fio2_pct": 49}, 2),
        ("fm-fio2-49.995-gap", {"device": "FM", "fio2_pct": 49.995}, 4),
        ("nrb-fio2-50", {"device": "NRB", "fio2_pct": 50}, 4),
        ("hb-fio2-40", {"device": "HB", "fio2_pct": 40}, 2),
        ("hb-fio2-21", {"device": "HB", "fio2_pct": 21}, 1),
        ("hb-fio2-10-below16", {"device": "HB", "fio2_pct": 10}, 1),
        ("hf-flow1", {"device": "HF", "flow_lpm": 1}, 4),
        ("hf-fio2-21", {"device": "HF", "fio2_pct": 21}, 4),
        ("hf-nolevel", {"device": "HF"}, 4),
        ("bip-fio2-25", {"device": "BiP", "fio2_pct": 25}, 4),
        ("cp-flow1", {"device": "CP", "flow_lpm": 1}, 4),
        ("np-flow1-fio2-35-max", {"device": "NP", "flow_lpm": 1, "fio2_pct": 35}, 2),
        ("fm-flow6-fio2-25-max", {"device": "FM", "flow_lpm": 6, "fio2_pct": 25}, 4),
        ("fm-flow3-fio2-55-max", {"device": "FM", "flow_lpm": 3, "fio2_pct": 55}, 4),
    ]
    for name, o2, score in oxy:
        add(f"uk-oxygen-{name}", sysname, {**base, "oxygen": o2},
            {"items": {"oxygen": score}, "total": score, "complete": True}, age_days=3000)

    # docs/clinical/uk_npews.md#skip-codes: BP skip codes, scored and count as obtained
    no_sbp = {k: v for k, v in base.items() if k != "sbp_mmhg"}
    for code, score in [("NCO", 0), ("U0", 0), ("U4", 4), ("OTHER_0", 0), ("OTHER_4", 4)]:
        add(f"uk-skip-{code}", sysname, {**no_sbp, "bp_skip_code": code},
            {"items": {"sbp": score}, "total": score, "complete": True, "missing": []},
            age_days=3000)
    add("uk-skip-none-sbp-missing", sysname, no_sbp,
        {"items": {"sbp": None}, "total": 0, "complete": False, "missing": ["sbp"]},
        age_days=3000)

    # docs/clinical/uk_npews.md#age-charts
    for cid, day, band, hr, score in [
        ("uk-age-day0", 0, "UK-A", 100, 1),
        ("uk-age-day91", 91, "UK-A", 100, 1), ("uk-age-day92", 92, "UK-A", 100, 1),
        ("uk-age-day365", 365, "UK-A", 100, 1), ("uk-age-day366", 366, "UK-B", 100, 0),
        ("uk-age-day1826", 1826, "UK-B", 85, 1), ("uk-age-day1827", 1827, "UK-C", 85, 0),
        ("uk-age-day4748", 4748, "UK-C", 110, 0), ("uk-age-day4749", 4749, "UK-D", 110, 1),
        ("uk-age-day5843", 5843, "UK-D", 110, 1), ("uk-age-day5844", 5844, "UK-D", 110, 1),
    ]:
        add(cid, sysname, {"hr_bpm": hr}, {"band": band, "items": {"hr": score}}, age_days=day)
    for months, band in [(11, "UK-A"), (12, "UK-B"), (59, "UK-B"), (60, "UK-C"),
                         (155, "UK-C"), (156, "UK-D")]:
        add(f"uk-age-months{months}", sysname, {"hr_bpm": 100}, {"band": band},
            age_months=months)

    # docs/clinical/uk_npews.md#escalation — score_level bands (UK-C baseline)
    levels = [
        ("total0", {}, 0, "none"),
        ("total1", {"resp_distress": "mild"}, 1, "low"),
        ("total4-single-pink", {"hr_bpm": 160}, 4, "low"),
        ("total5", {"hr_bpm": 160, "resp_distress": "mild"}, 5, "medium"),
        ("total8", {"hr_bpm": 160, "rr_bpm": 50}, 8, "medium"),
        ("total9", {"hr_bpm": 160, "rr_bpm": 50, "resp_distress": "mild"}, 9, "high"),
        ("total12", {"hr_bpm": 160, "rr_bpm": 50, "spo2_pct": 90}, 12, "high"),
        ("total13", {"hr_bpm": 160, "rr_bpm": 50, "spo2_pct": 90, "resp_distress": "mild"},
         13, "emergency"),
        ("total26", {"rr_bpm": 50, "resp_distress": "severe", "spo2_pct": 85,
                     "oxygen": {"device": "HF", "fio2_pct": 60}, "hr_bpm": 170,
                     "sbp_mmhg": 140, "crt_s": 3}, 26, "emergency"),
    ]
    for name, extra, total, level in levels:
        add(f"uk-esc-{name}", sysname, {**base, **extra},
            {"total": total, "complete": True,
             "escalation": {"score_level": level, "final_level": level}}, age_days=3000)

    triggers = [
        ("avpu-A", {"avpu": "A"}, "none", "none"),
        ("avpu-V", {"avpu": "V"}, "none", "high"),
        ("avpu-P", {"avpu": "P"}, "none", "emergency"),
        ("avpu-U", {"avpu": "U"}, "none", "emergency"),
        ("avpu-asleep", {"avpu": "asleep"}, "none", "none"),
        ("avpu-V-total13", {"avpu": "V", "hr_bpm": 160, "rr_bpm": 50, "spo2_pct": 90,
                            "resp_distress": "mild"}, "emergency", "emergency"),
        ("avpu-V-total5", {"avpu": "V", "hr_bpm": 160, "resp_distress": "mild"},
         "medium", "high"),
        ("concern-sepsis", {"specific_concern": ["new_sepsis"]}, "none", "medium"),
        ("concern-shock", {"specific_concern": ["new_septic_shock"]}, "none", "high"),
        ("concern-pupils", {"specific_concern": ["abnormal_pupils"]}, "none", "emergency"),
        ("concern-sepsis-pupils", {"specific_concern": ["new_sepsis", "abnormal_pupils"]},
         "none", "emergency"),
        ("concern-empty", {"specific_concern": []}, "none", "none"),
        ("concern-sepsis-total9", {"specific_concern": ["new_sepsis"], "hr_bpm": 160,
                                   "rr_bpm": 50, "resp_distress": "mild"}, "high", "high"),
        ("carer-W-low", {"carer_question": {"response": "W", "escalation_level": "low"}},
         "none", "low"),
        ("carer-W-medium", {"carer_question": {"response": "W",
                                               "escalation_level": "medium"}},
         "none", "medium"),
        ("carer-W-emergency", {"carer_question": {"response": "W",
                                                  "escalation_level": "emergency"}},
         "none", "emergency"),
        ("carer-W-none", {"carer_question": {"response": "W", "escalation_level": "none"}},
         "none", "none"),
        ("carer-S-high-ignored", {"carer_question": {"response": "S",
                                                     "escalation_level": "high"}},
         "none", "none"),
        ("carer-B-emergency-ignored", {"carer_question": {"response": "B",
                                                          "escalation_level": "emergency"}},
         "none", "none"),
        ("carer-W-low-total9", {"carer_question": {"response": "W", "escalation_level": "low"},
                                "hr_bpm": 160, "rr_bpm": 50, "resp_distress": "mild"},
         "high", "high"),
        ("intuition-high", {"clinical_intuition": {"concerned": True,
                                                   "escalation_level": "high"}},
         "none", "high"),
        ("intuition-emergency", {"clinical_intuition": {"concerned": True,
                                                        "escalation_level": "emergency"}},
         "none", "emergency"),
        ("intuition-not-concerned", {"clinical_intuition": {"concerned": False,
                                                            "escalation_level": "high"}},
         "none", "none"),
        ("intuition-medium-total1", {"clinical_intuition": {"concerned": True,
                                                            "escalation_level": "medium"},
                                     "resp_distress": "mild"}, "low", "medium"),
        ("mixed-max", {"avpu": "V", "specific_concern": ["new_sepsis"],
                       "carer_question": {"response": "W", "escalation_level": "low"},
                       "clinical_intuition": {"concerned": True,
                                              "escalation_level": "medium"}},
         "none", "high"),
        ("temp-39-not-scored", {"temp_c": 39.0}, "none", "none"),
        ("temp-35-not-scored", {"temp_c": 35.0}, "none", "none"),
    ]
    for name, extra, score_level, final in triggers:
        add(f"uk-esc-{name}", sysname, {**base, **extra},
            {"complete": True,
             "escalation": {"score_level": score_level, "final_level": final}},
            age_days=3000)
    # triggers are not items: the total is unaffected
    add("uk-esc-avpu-U-total-unchanged", sysname, {**base, "avpu": "U", "temp_c": 39.5},
        {"total": 0, "complete": True, "missing": []}, age_days=3000)

    # docs/clinical/conventions.md#missing-items
    add("uk-missing-all-but-hr", sysname, {"hr_bpm": 160},
        {"band": "UK-C", "total": 4, "complete": False,
         "items": {"hr": 4, "rr": None, "resp_distress": None, "spo2": None, "oxygen": None,
                   "sbp": None, "crt": None},
         "missing": ["rr", "resp_distress", "spo2", "oxygen", "sbp", "crt"],
         "escalation": {"score_level": "low"}}, age_days=3000)
    add("uk-missing-null-crt", sysname, {**base, "crt_s": None},
        {"total": 0, "complete": False, "missing": ["crt"], "items": {"crt": None}},
        age_days=3000)
    add("uk-missing-empty-avpu-P", sysname, {"avpu": "P"},
        {"total": 0, "complete": False, "missing": sorted(UK_ITEMS),
         "escalation": {"final_level": "emergency"}}, age_days=3000)
    add("uk-foreign-effort-ignored", sysname,
        {k: v for k, v in base.items() if k != "resp_distress"} | {"resp_effort": "severe"},
        {"total": 0, "complete": False, "missing": ["resp_distress"]}, age_days=3000)


# --------------------------------------------------------------------------------------
# Brighton PEWS (docs/clinical/brighton_pews.md#domains,
# docs/clinical/brighton_pews.md#where-sources-disagree) with brighton_normals_example.toml
# --------------------------------------------------------------------------------------
# example normals: (hr_low, hr_high, rr_low, rr_high)
#   <1y 110-160 / 30-40; 1-2y 100-150 / 25-35; 2-5y 95-140 / 25-30;
#   5-12y (5 to <13) 80-120 / 20-25; >12y 60-100 / 15-20
BR_ITEMS = ["behaviour", "cardiovascular", "respiratory", "nebs", "postop_vomiting"]
BR_GROUPS = {  # age_days, normal HR, normal RR
    "<1y": (200, 130, 35),
    "1-2y": (500, 120, 30),
    "2-5y": (1000, 120, 28),
    "5-12y": (3000, 100, 22),
    ">12y": (5500, 80, 17),
}


def br_base(group: str) -> dict[str, Any]:
    _, hr, rr = BR_GROUPS[group]
    return {
        "behaviour": "playing_appropriate",
        "skin_colour": "pink",
        "crt_s": 1,
        "hr_bpm": hr,
        "rr_bpm": rr,
        "resp_signs": [],
        "oxygen": {"device": "room_air"},
        "quarter_hourly_nebs": False,
        "persistent_postop_vomiting": False,
    }


def brighton() -> None:
    sysname = "brighton_pews"
    for group, (day, _, _) in BR_GROUPS.items():
        add(f"br-{group}-baseline", sysname, br_base(group),
            {"band": None, "total": 0, "complete": True, "missing": [],
             "items": dict.fromkeys(BR_ITEMS, 0),
             "escalation": {"total_ge_3": False, "total_ge_5": False,
                            "any_domain_3": False}}, age_days=day)

    # HR computed from the example table: excess = HR - hr_high; brady = HR < hr_low
    hr_cases = {
        "<1y": [(109, 3), (110, 0), (160, 0), (179, 0), (180, 2), (189, 2), (190, 3)],
        "1-2y": [(99, 3), (100, 0), (169, 0), (170, 2), (179, 2), (180, 3)],
        "2-5y": [(94, 3), (95, 0), (159, 0), (160, 2), (169, 2), (170, 3)],
        "5-12y": [(79, 3), (80, 0), (139, 0), (140, 2), (149, 2), (150, 3)],
        ">12y": [(59, 3), (60, 0), (119, 0), (120, 2), (129, 2), (130, 3)],
    }
    # RR computed from the example table: >10 above rr_high -> 1, >20 above -> 2
    rr_cases = {
        "<1y": [(50, 0), (51, 1), (60, 1), (61, 2)],
        "1-2y": [(45, 0), (46, 1), (55, 1), (56, 2)],
        "2-5y": [(40, 0), (41, 1), (50, 1), (51, 2)],
        "5-12y": [(35, 0), (36, 1), (45, 1), (46, 2)],
        ">12y": [(30, 0), (31, 1), (40, 1), (41, 2)],
    }
    for group, (day, _, _) in BR_GROUPS.items():
        base = br_base(group)
        for value, score in hr_cases[group]:
            add(f"br-{group}-hr-{value}", sysname, {**base, "hr_bpm": value},
                {"items": {"cardiovascular": score}, "total": score}, age_days=day)
        for value, score in rr_cases[group]:
            add(f"br-{group}-rr-{value}", sysname, {**base, "rr_bpm": value},
                {"items": {"respiratory": score}, "total": score}, age_days=day)

    # "5 below normal RR" (RR <= rr_low - 5) WITH sternal recession / tug / grunting -> 3
    g = "<1y"
    day = 200
    base = br_base(g)
    resp = [
        ("rr25-sternal", {"rr_bpm": 25, "resp_signs": ["sternal_recession"]}, 3),
        ("rr25-tug", {"rr_bpm": 25, "resp_signs": ["tracheal_tug"]}, 3),
        ("rr25-grunting", {"rr_bpm": 25, "resp_signs": ["grunting"]}, 3),
        ("rr26-tug", {"rr_bpm": 26, "resp_signs": ["tracheal_tug"]}, 2),
        ("rr25-alone", {"rr_bpm": 25}, 0),
        ("accessory", {"resp_signs": ["accessory_muscles"]}, 1),
        ("recession", {"resp_signs": ["recession"]}, 2),
        ("tug", {"resp_signs": ["tracheal_tug"]}, 2),
        ("accessory-recession", {"resp_signs": ["accessory_muscles", "recession"]}, 2),
        ("rr51-recession", {"rr_bpm": 51, "resp_signs": ["recession"]}, 2),
        ("rr61-accessory", {"rr_bpm": 61, "resp_signs": ["accessory_muscles"]}, 2),
        ("o2-flow3.99", {"oxygen": {"device": "FM", "flow_lpm": 3.99}}, 0),
        ("o2-flow4", {"oxygen": {"device": "FM", "flow_lpm": 4}}, 1),
        ("o2-flow5.99", {"oxygen": {"device": "FM", "flow_lpm": 5.99}}, 1),
        ("o2-flow6", {"oxygen": {"device": "FM", "flow_lpm": 6}}, 2),
        ("o2-flow7.99", {"oxygen": {"device": "FM", "flow_lpm": 7.99}}, 2),
        ("o2-flow8", {"oxygen": {"device": "NRB", "flow_lpm": 8}}, 3),
        ("o2-fio2-29", {"oxygen": {"device": "FM", "fio2_pct": 29}}, 0),
        ("o2-fio2-30", {"oxygen": {"device": "FM", "fio2_pct": 30}}, 1),
        ("o2-fio2-39", {"oxygen": {"device": "FM", "fio2_pct": 39}}, 1),
        ("o2-fio2-40", {"oxygen": {"device": "HB", "fio2_pct": 40}}, 2),
        ("o2-fio2-49", {"oxygen": {"device": "HB", "fio2_pct": 49}}, 2),
        ("o2-fio2-50", {"oxygen": {"device": "NRB", "fio2_pct": 50}}, 3),
        ("o2-flow4-fio2-45-max", {"oxygen": {"device": "FM", "flow_lpm": 4,
                                             "fio2_pct": 45}}, 2),
        ("o2-flow8-fio2-30-max", {"oxygen": {"device": "FM", "flow_lpm": 8,
                                             "fio2_pct": 30}}, 3),
        ("excess-explicit-11", {"rr_bpm": None, "rr_above_upper_normal_bpm": 11}, 1),
        ("excess-explicit-21", {"rr_bpm": None, "rr_above_upper_normal_bpm": 21}, 2),
        ("excess-explicit-5", {"rr_bpm": None, "rr_above_upper_normal_bpm": 5}, 0),
    ]
    for name, extra, score in resp:
        add(f"br-resp-{name}", sysname, {**base, **extra},
            {"items": {"respiratory": score}, "total": score}, age_days=day)

    cardio = [
        ("pale", {"skin_colour": "pale"}, 1),
        ("grey", {"skin_colour": "grey"}, 2),
        ("grey_mottled", {"skin_colour": "grey_mottled"}, 3),
        ("crt2", {"crt_s": 2}, 0),
        ("crt3", {"crt_s": 3}, 1),
        ("crt4", {"crt_s": 4}, 2),
        ("crt5", {"crt_s": 5}, 3),
        ("crt7", {"crt_s": 7}, 3),
        ("pale-crt4", {"skin_colour": "pale", "crt_s": 4}, 2),
        ("grey-crt3", {"skin_colour": "grey", "crt_s": 3}, 2),
        ("brady-flag", {"hr_bpm": None, "bradycardia_for_age": True}, 3),
        ("brady-flag-false", {"hr_bpm": None, "bradycardia_for_age": False,
                              "hr_above_upper_normal_bpm": 0}, 0),
        ("excess-explicit-19", {"hr_bpm": None, "hr_above_upper_normal_bpm": 19}, 0),
        ("excess-explicit-20", {"hr_bpm": None, "hr_above_upper_normal_bpm": 20}, 2),
        ("excess-explicit-29", {"hr_bpm": None, "hr_above_upper_normal_bpm": 29}, 2),
        ("excess-explicit-30", {"hr_bpm": None, "hr_above_upper_normal_bpm": 30}, 3),
        ("pale-tachy20", {"skin_colour": "pale", "hr_bpm": 180}, 2),
    ]
    for name, extra, score in cardio:
        add(f"br-cv-{name}", sysname, {**base, **extra},
            {"items": {"cardiovascular": score}, "total": score}, age_days=day)

    for value, score in [("playing_appropriate", 0), ("sleeping", 1), ("irritable", 2),
                         ("lethargic_confused_reduced_pain", 3)]:
        add(f"br-behaviour-{value}", sysname, {**base, "behaviour": value},
            {"items": {"behaviour": score}, "total": score, "complete": True}, age_days=day)
    add("br-addon-nebs", sysname, {**base, "quarter_hourly_nebs": True},
        {"items": {"nebs": 2, "postop_vomiting": 0}, "total": 2, "complete": True},
        age_days=day)
    add("br-addon-vomiting", sysname, {**base, "persistent_postop_vomiting": True},
        {"items": {"nebs": 0, "postop_vomiting": 2}, "total": 2, "complete": True},
        age_days=day)

    # age boundaries of the example normal table (HR excess discriminates the row)
    for cid, d, hr, score in [
        ("br-age-day365", 365, 180, 2), ("br-age-day366", 366, 180, 3),
        ("br-age-day730", 730, 170, 2), ("br-age-day731", 731, 170, 3),
        ("br-age-day1826", 1826, 160, 2), ("br-age-day1827", 1827, 160, 3),
        ("br-age-day4748", 4748, 140, 2), ("br-age-day4749", 4749, 140, 3),
        ("br-age-day5843", 5843, 120, 2), ("br-age-day5844", 5844, 120, 2),
    ]:
        add(cid, sysname, {"skin_colour": "pink", "crt_s": 1, "hr_bpm": hr},
            {"band": None, "items": {"cardiovascular": score}}, age_days=d)
    add("br-age-months12", sysname, {"skin_colour": "pink", "crt_s": 1, "hr_bpm": 180},
        {"items": {"cardiovascular": 3}}, age_months=12)
    add("br-age-months11", sysname, {"skin_colour": "pink", "crt_s": 1, "hr_bpm": 180},
        {"items": {"cardiovascular": 2}}, age_months=11)

    # escalation flags
    esc = [
        ("total2", {"behaviour": "irritable"}, 2, False, False, False),
        ("total3-no-domain3", {"behaviour": "irritable", "skin_colour": "pale"}, 3,
         True, False, False),
        ("total3-domain3", {"behaviour": "lethargic_confused_reduced_pain"}, 3,
         True, False, True),
        ("total4-addons-only", {"quarter_hourly_nebs": True,
                                "persistent_postop_vomiting": True}, 4, True, False, False),
        ("total5-no-domain3", {"behaviour": "irritable", "skin_colour": "grey",
                               "resp_signs": ["accessory_muscles"]}, 5, True, True, False),
        ("total6-domain3", {"skin_colour": "grey_mottled", "behaviour": "irritable",
                            "resp_signs": ["accessory_muscles"]}, 6, True, True, True),
        ("total13", {"behaviour": "lethargic_confused_reduced_pain",
                     "skin_colour": "grey_mottled",
                     "oxygen": {"device": "NRB", "fio2_pct": 60},
                     "quarter_hourly_nebs": True, "persistent_postop_vomiting": True},
         13, True, True, True),
    ]
    for name, extra, total, g3, g5, d3 in esc:
        add(f"br-esc-{name}", sysname, {**base, **extra},
            {"total": total, "complete": True,
             "escalation": {"total_ge_3": g3, "total_ge_5": g5, "any_domain_3": d3}},
            age_days=day)

    add("br-missing-behaviour", sysname, {k: v for k, v in base.items() if k != "behaviour"},
        {"items": {"behaviour": None}, "total": 0, "complete": False,
         "missing": ["behaviour"]}, age_days=day)
    add("br-missing-empty", sysname, {},
        {"total": 0, "complete": False, "missing": sorted(BR_ITEMS),
         "items": dict.fromkeys(BR_ITEMS)}, age_days=day)
    add("br-foreign-keys-ignored", sysname, {**base, "avpu": "U", "resp_effort": "severe"},
        {"total": 0, "complete": True}, age_days=day)


# --------------------------------------------------------------------------------------
# NEWS2 (docs/clinical/news2.md#table) — half-up rounding to integer (temp: 1 dp) before scoring
# --------------------------------------------------------------------------------------
N2_ITEMS = ["rr", "spo2", "air_or_oxygen", "sbp", "hr", "consciousness", "temp"]
N2_AGE = 6000


def n2_base() -> dict[str, Any]:
    return {
        "rr_bpm": 16,
        "spo2_pct": 97,
        "on_oxygen": False,
        "sbp_mmhg": 120,
        "hr_bpm": 70,
        "consciousness": "A",
        "temp_c": 37.0,
    }


def news2() -> None:
    sysname = "news2"
    base = n2_base()
    add("n2-baseline", sysname, base,
        {"band": "NEWS2", "total": 0, "complete": True, "missing": [],
         "items": dict.fromkeys(N2_ITEMS, 0),
         "escalation": {"level": "low", "any_single_3": False}}, age_days=N2_AGE)
    tables = {
        ("rr_bpm", "rr"): [(5, 3), (8, 3), (8.4, 3), (8.5, 1), (9, 1), (11, 1), (11.4, 1),
                           (11.5, 0), (12, 0), (20, 0), (20.4, 0), (20.5, 2), (21, 2),
                           (24, 2), (24.4, 2), (24.5, 3), (25, 3)],
        ("spo2_pct", "spo2"): [(85, 3), (91, 3), (91.4, 3), (91.5, 2), (92, 2), (93, 2),
                               (93.5, 1), (94, 1), (95, 1), (95.4, 1), (95.5, 0), (96, 0),
                               (100, 0)],
        ("sbp_mmhg", "sbp"): [(80, 3), (90, 3), (90.4, 3), (90.5, 2), (91, 2), (100, 2),
                              (100.5, 1), (101, 1), (110, 1), (110.5, 0), (111, 0), (219, 0),
                              (219.4, 0), (219.5, 3), (220, 3)],
        ("hr_bpm", "hr"): [(35, 3), (40, 3), (40.4, 3), (40.5, 1), (41, 1), (50, 1),
                           (50.5, 0), (51, 0), (90, 0), (90.4, 0), (90.5, 1), (91, 1),
                           (110, 1), (110.5, 2), (111, 2), (130, 2), (130.5, 3), (131, 3)],
        ("temp_c", "temp"): [(34.0, 3), (35.0, 3), (35.04, 3), (35.05, 1), (35.1, 1),
                             (36.0, 1), (36.04, 1), (36.05, 0), (36.1, 0), (38.0, 0),
                             (38.04, 0), (38.05, 1), (38.1, 1), (39.0, 1), (39.05, 2),
                             (39.1, 2), (40.5, 2)],
    }
    for (key, item), rows in tables.items():
        for value, score in rows:
            add(f"n2-{item}-{fmt(value)}", sysname, {**base, key: value},
                {"items": {item: score}, "total": score, "complete": True,
                 "escalation": {"any_single_3": score == 3}}, age_days=N2_AGE)
    for value, score in [("A", 0), ("new_confusion", 3), ("V", 3), ("P", 3), ("U", 3)]:
        add(f"n2-consciousness-{value}", sysname, {**base, "consciousness": value},
            {"items": {"consciousness": score}, "total": score, "complete": True},
            age_days=N2_AGE)
    for value, score in [(True, 2), (False, 0)]:
        add(f"n2-oxygen-{str(value).lower()}", sysname, {**base, "on_oxygen": value},
            {"items": {"air_or_oxygen": score}, "total": score, "complete": True},
            age_days=N2_AGE)

    levels = [
        ("total0", {}, 0, "low", False),
        ("total1", {"hr_bpm": 95}, 1, "low", False),
        ("total4-no3", {"hr_bpm": 95, "sbp_mmhg": 105, "rr_bpm": 10, "spo2_pct": 95},
         4, "low", False),
        ("total3-single3", {"rr_bpm": 25}, 3, "low_medium", True),
        ("total4-single3", {"rr_bpm": 25, "hr_bpm": 95}, 4, "low_medium", True),
        ("total3-consc-V", {"consciousness": "V"}, 3, "low_medium", True),
        ("total5-with3", {"rr_bpm": 25, "hr_bpm": 115}, 5, "medium", True),
        ("total5-no3", {"on_oxygen": True, "spo2_pct": 93, "hr_bpm": 95}, 5, "medium", False),
        ("total6-no3", {"on_oxygen": True, "spo2_pct": 93, "hr_bpm": 115}, 6, "medium", False),
        ("total6-two3", {"rr_bpm": 25, "consciousness": "V"}, 6, "medium", True),
        ("total7-no3", {"on_oxygen": True, "spo2_pct": 93, "hr_bpm": 115, "sbp_mmhg": 105},
         7, "high", False),
        ("total7-with3", {"rr_bpm": 25, "consciousness": "V", "temp_c": 35.5}, 7, "high",
         True),
        ("total20-max", {"rr_bpm": 30, "spo2_pct": 88, "on_oxygen": True, "sbp_mmhg": 85,
                         "hr_bpm": 140, "consciousness": "U", "temp_c": 34.5}, 20, "high",
         True),
    ]
    for name, extra, total, level, any3 in levels:
        add(f"n2-esc-{name}", sysname, {**base, **extra},
            {"total": total, "complete": True,
             "escalation": {"level": level, "any_single_3": any3}}, age_days=N2_AGE)

    add("n2-age-day5844", sysname, base, {"band": "NEWS2", "total": 0}, age_days=5844)
    add("n2-age-months192", sysname, base, {"band": "NEWS2", "total": 0}, age_months=192)
    add("n2-missing-all-but-hr", sysname, {"hr_bpm": 135},
        {"total": 3, "complete": False,
         "items": {"hr": 3, "rr": None, "spo2": None, "air_or_oxygen": None, "sbp": None,
                   "consciousness": None, "temp": None},
         "missing": ["rr", "spo2", "air_or_oxygen", "sbp", "consciousness", "temp"]},
        age_days=N2_AGE)
    add("n2-missing-null-temp", sysname, {**base, "temp_c": None},
        {"total": 0, "complete": False, "missing": ["temp"], "items": {"temp": None}},
        age_days=N2_AGE)
    add("n2-foreign-keys-ignored", sysname,
        {**base, "avpu": "U", "resp_distress": "severe", "crt_s": 6},
        {"total": 0, "complete": True, "missing": []}, age_days=N2_AGE)


# --------------------------------------------------------------------------------------
# Input errors (docs/clinical/vocabulary.md#input-errors) -> {"error": ...} line / exit code 2
# --------------------------------------------------------------------------------------
def errors() -> None:
    err = {"error": True}
    bad = [
        ("err-unknown-key", "bedside_pews", {"heart_rate": 100}),
        ("err-unknown-key-typo", "uk_npews", {"hr_bpm": 100, "spo2": 98}),
        ("err-unknown-oxygen-subkey", "uk_npews", {"oxygen": {"device": "NP", "litres": 2}}),
        ("err-enum-resp-effort", "bedside_pews", {"resp_effort": "very_bad"}),
        ("err-enum-resp-distress", "uk_npews", {"resp_distress": "extreme"}),
        ("err-enum-avpu", "uk_npews", {"avpu": "X"}),
        ("err-enum-device", "uk_npews", {"oxygen": {"device": "nasal_cannula",
                                                    "flow_lpm": 1}}),
        ("err-enum-skip-code", "uk_npews", {"bp_skip_code": "OTHER"}),
        ("err-enum-specific-concern", "uk_npews", {"specific_concern": ["sepsis"]}),
        ("err-enum-carer-response", "uk_npews",
         {"carer_question": {"response": "Z", "escalation_level": "low"}}),
        ("err-enum-carer-level", "uk_npews",
         {"carer_question": {"response": "W", "escalation_level": "urgent"}}),
        ("err-enum-behaviour", "brighton_pews", {"behaviour": "happy"}),
        ("err-enum-skin", "brighton_pews", {"skin_colour": "blue"}),
        ("err-enum-resp-signs", "brighton_pews", {"resp_signs": ["wheeze"]}),
        ("err-enum-consciousness", "news2", {"consciousness": "confused"}),
        ("err-negative-hr", "bedside_pews", {"hr_bpm": -5}),
        ("err-negative-rr", "uk_npews", {"rr_bpm": -1}),
        ("err-negative-crt", "uk_npews", {"crt_s": -0.5}),
        ("err-negative-flow", "uk_npews", {"oxygen": {"device": "NP", "flow_lpm": -1}}),
        ("err-spo2-101", "uk_npews", {"spo2_pct": 101}),
        ("err-spo2-101-news2", "news2", {"spo2_pct": 101}),
        ("err-spo2-101-bedside", "bedside_pews", {"spo2_pct": 101}),
        ("err-type-hr-string", "bedside_pews", {"hr_bpm": "fast"}),
        ("err-type-on-oxygen", "news2", {"on_oxygen": "yes"}),
    ]
    for cid, system, inputs in bad:
        add(cid, system, inputs, err, age_days=3000 if system != "news2" else N2_AGE)
    add("err-unknown-system", "pews_x", {"hr_bpm": 100}, err, age_days=3000)
    add("err-negative-age", "uk_npews", {"hr_bpm": 100}, err, age_days=-1)


# --------------------------------------------------------------------------------------
# Extra probes: fractional-day age boundaries, extreme precision, partial items, scope
# --------------------------------------------------------------------------------------
def extras() -> None:
    # docs/clinical/conventions.md#age: months = days / 30.4375 and years = days / 365.25,
    # lower bound included
    for cid, day, system, band, hr, score in [
        ("age-frac-91.31", 91.31, "bedside_pews", "BP-A", 105, 1),
        ("age-frac-91.3125", 91.3125, "bedside_pews", "BP-B", 105, 0),
        ("age-frac-365.24", 365.24, "bedside_pews", "BP-B", 95, 1),
        ("age-frac-365.25", 365.25, "bedside_pews", "BP-C", 95, 0),
        ("age-frac-1826.25", 1826.25, "bedside_pews", "BP-D", 65, 1),
        ("age-frac-4748.25", 4748.25, "bedside_pews", "BP-E", 105, 1),
        ("age-frac-uk-4748.24", 4748.24, "uk_npews", "UK-C", 110, 0),
        ("age-frac-uk-4748.25", 4748.25, "uk_npews", "UK-D", 110, 1),
    ]:
        add(cid, system, {"hr_bpm": hr}, {"band": band, "items": {"hr": score}}, age_days=day)
    # docs/clinical/conventions.md#which-system-for-which-patient: NEWS2 is not an option
    # below 16; >= 18 is out of scope for the paediatric tables
    add("scope-news2-day5843", "news2", n2_base(), {"error": True}, age_days=5843)
    add("scope-news2-months191", "news2", n2_base(), {"error": True}, age_months=191)
    add("scope-bedside-18y", "bedside_pews", {"hr_bpm": 80}, {"error": True}, age_days=6575)
    add("scope-uk-18y", "uk_npews", {"hr_bpm": 80}, {"error": True}, age_days=6575)
    add("scope-brighton-18y", "brighton_pews", {"hr_bpm": 80}, {"error": True}, age_days=6575)

    # docs/clinical/uk_npews.md#gap-rule at extreme precision (UK-C) and
    # docs/clinical/bedside_pews.md#continuous-items "no gaps" (Bedside)
    uk = uk_base("UK-C")
    for cid, key, item, value, score in [
        ("uk-gap-hr-119.99000000001", "hr_bpm", "hr", 119.99000000001, 1),
        ("uk-gap-hr-119.98999999999", "hr_bpm", "hr", 119.98999999999, 0),
        ("uk-gap-hr-79.999999", "hr_bpm", "hr", 79.999999, 1),
        ("uk-gap-spo2-94.99000001", "spo2_pct", "spo2", 94.99000001, 1),
        ("uk-gap-spo2-91.00000001", "spo2_pct", "spo2", 91.00000001, 4),
        ("uk-gap-crt-2.0000001", "crt_s", "crt", 2.0000001, 2),
        ("uk-gap-rr-9.9999999", "rr_bpm", "rr", 9.9999999, 4),
    ]:
        add(cid, "uk_npews", {**uk, key: value}, {"items": {item: score}, "total": score},
            age_days=3000)
    add("bp-BP-D-hr-150.0000001", "bedside_pews", {**bp_base("BP-D"), "hr_bpm": 150.0000001},
        {"items": {"hr": 4}}, age_days=3000)
    add("bp-BP-E-hr-49.9999999", "bedside_pews", {**bp_base("BP-E"), "hr_bpm": 49.9999999},
        {"items": {"hr": 2}}, age_days=5500)
    # docs/clinical/news2.md#rounding: NEWS2 half-up rounding near the half
    n2 = n2_base()
    for cid, key, item, value, score in [
        ("n2-round-rr-20.4999999", "rr_bpm", "rr", 20.4999999, 0),
        ("n2-round-temp-38.0499999", "temp_c", "temp", 38.0499999, 0),
        ("n2-round-temp-35.95", "temp_c", "temp", 35.95, 1),
        ("n2-round-temp-36.049999", "temp_c", "temp", 36.049999, 1),
    ]:
        add(cid, "news2", {**n2, key: value}, {"items": {item: score}}, age_days=N2_AGE)

    # docs/clinical/conventions.md#missing-items: partially obtained items must not look complete
    add("bp-partial-oxygen-np-nolevel", "bedside_pews",
        {**bp_base("BP-C"), "oxygen": {"device": "NP"}},
        {"complete": False, "missing": ["oxygen_therapy"]}, age_days=1000)
    add("uk-partial-oxygen-np-nolevel", "uk_npews", {**uk, "oxygen": {"device": "NP"}},
        {"complete": False, "missing": ["oxygen"]}, age_days=3000)
    br = br_base("<1y")
    add("br-partial-cv-no-crt", "brighton_pews",
        {k: v for k, v in br.items() if k != "crt_s"},
        {"complete": False, "missing": ["cardiovascular"]}, age_days=200)
    add("br-partial-resp-no-signs", "brighton_pews",
        {k: v for k, v in br.items() if k != "resp_signs"},
        {"complete": False, "missing": ["respiratory"]}, age_days=200)
    add("br-partial-oxygen-np-nolevel", "brighton_pews", {**br, "oxygen": {"device": "NP"}},
        {"complete": False, "missing": ["respiratory"]}, age_days=200)

    # wrong types that JSON/Python would otherwise coerce
    add("err-type-bool-hr", "bedside_pews", {"hr_bpm": True}, {"error": True}, age_days=1000)
    add("err-nan-hr", "uk_npews", {"hr_bpm": float("nan")}, {"error": True}, age_days=3000)
    add("err-inf-rr", "uk_npews", {"rr_bpm": float("inf")}, {"error": True}, age_days=3000)
    add("err-age-months-fraction", "bedside_pews", {"hr_bpm": 80}, {"error": True},
        age_months=12.5)


# --------------------------------------------------------------------------------------
# Reviewer discrepancy cases: spec silent/ambiguous; expectation = the reviewer's reading
# (see KNOWN_DISCREPANCIES in test_validation_cases.py)
# --------------------------------------------------------------------------------------
def discrepancies() -> None:
    br = br_base("<1y")
    # Brighton CRT cells are "1-2 s" / "3 s" / "4 s" / ">= 5 s": a value above 2 s is
    # outside the 0 cell; reviewer reading: score the higher neighbour (as the only gap rule
    # in the spec, docs/clinical/uk_npews.md#gap-rule, does)
    for value, score in [(2.5, 1), (3.5, 2), (4.5, 3)]:
        add(f"br-cv-crt-{value}", "brighton_pews", {**br, "crt_s": value},
            {"items": {"cardiovascular": score}}, age_days=200)
    # grunting is in the same list as sternal recession and tracheal tug (both 2 alone)
    add("br-resp-grunting-alone", "brighton_pews", {**br, "resp_signs": ["grunting"]},
        {"items": {"respiratory": 2}}, age_days=200)
    # non-invasive ventilation / high flow at low FiO2 or low flow
    add("br-resp-cpap-fio2-21", "brighton_pews",
        {**br, "oxygen": {"device": "CP", "fio2_pct": 21}},
        {"items_min": {"respiratory": 2}}, age_days=200)
    add("br-resp-hf-flow2", "brighton_pews",
        {**br, "oxygen": {"device": "HF", "flow_lpm": 2}},
        {"items_min": {"respiratory": 2}}, age_days=200)
    # NEWS2: on_oxygen false contradicted by an oxygen device with flow.  The reviewer first
    # accepted "error or air_or_oxygen 2"; the clinical lead decided the contradiction is an
    # input error (news2 table 2017.1-wardwatch.2), so only an error line matches now.
    add("n2-oxygen-contradiction", "news2",
        {**n2_base(), "on_oxygen": False, "oxygen": {"device": "NP", "flow_lpm": 2}},
        {"error": True}, age_days=N2_AGE)


def main() -> None:
    bedside()
    npews()
    brighton()
    news2()
    errors()
    extras()
    discrepancies()
    ids = [c["id"] for c in CASES]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise SystemExit(f"duplicate ids: {sorted(dupes)}")
    with OUT.open("w", encoding="utf-8") as fh:
        for case in CASES:
            fh.write(json.dumps(case, ensure_ascii=False) + "\n")
    print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
