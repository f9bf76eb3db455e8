"""UK National PEWS (NHS England SPOT programme, 2023 charts): scores and escalation.

docs/clinical/uk_npews.md. The `.99` band bounds and the C1.4 gap rule (a value between two
published bands scores the higher-scoring neighbour, docs/clinical/uk_npews.md#gap-rule) are
handled when the table is compiled (`intervals.compile_partition`), so scoring is plain lookups
here.

Escalation is max-of-criteria (docs/clinical/uk_npews.md#escalation,
docs/clinical/vocabulary.md#escalation-fields): the level from the total, AVPU, specific
concerns, the carer question (response ``W``) and clinical intuition (when concerned). AVPU is
scored as "newly" altered on every set because the scorer has no history
(docs/clinical/uk_npews.md#escalation); the streaming engine owns the previous set. Carer
question, clinical intuition, AVPU and specific concern are triggers, not items, so leaving them
out does not make the score incomplete.
"""

from __future__ import annotations

from .common import band_for, category, lookup
from .oxygen import read_oxygen
from .result import ScoreResult, missing_items, partial_total
from .tablefile import Section, TableFile, read_table_file
from .vocabulary import ENUMS, ESCALATION_LEVELS, LEVEL_RANK, Observation

SYSTEM = "uk_npews"
ITEMS = ("rr", "resp_distress", "spo2", "oxygen", "hr", "sbp", "crt")
NUMERIC = {
    "rr": "rr_bpm",
    "hr": "hr_bpm",
    "sbp": "sbp_mmhg",
    "spo2": "spo2_pct",
    "crt": "crt_s",
    "oxygen_flow": "oxygen.flow_lpm",
    "oxygen_fio2": "oxygen.fio2_pct",
}
CATEGORICAL = {"resp_distress": "resp_distress", "bp_skip_code": "bp_skip_code"}


def _level_map(sec: Section, key: str, kind: str) -> dict[str, str]:
    levels = sec.sub(key)
    levels.only(*ENUMS[kind])
    out: dict[str, str] = {}
    for value in ENUMS[kind]:
        level = levels.text(value)
        if level not in LEVEL_RANK:
            levels.fail(value, f"{level!r} is not one of {', '.join(ESCALATION_LEVELS)}")
        out[value] = level
    return out


class NpewsScorer:
    """Compiled UK National PEWS table."""

    system = SYSTEM

    def __init__(self, top: Section) -> None:
        self.file: TableFile = read_table_file(top, NUMERIC, CATEGORICAL, ("oxygen", "escalation"))
        self._oxygen = read_oxygen(top.sub("oxygen"), self.file.numeric)
        self._parts = self.file.partitions()
        self._distress = self.file.categorical["resp_distress"]
        self._skip = self.file.categorical["bp_skip_code"]
        esc = top.sub("escalation")
        esc.only("score_level_from", "avpu", "specific_concern", "carer_level_responses")
        starts = esc.sub("score_level_from")
        starts.only(*ESCALATION_LEVELS[1:])
        self._level_from = [(starts.integer(level), level) for level in ESCALATION_LEVELS[1:]]
        if [n for n, _ in self._level_from] != sorted(
            {n for n, _ in self._level_from}
        ) or self._level_from[0][0] < 1:
            starts.fail(
                None, "level thresholds must be >= 1 and strictly increasing from low to emergency"
            )
        self._avpu = _level_map(esc, "avpu", "avpu")
        self._concern = _level_map(esc, "specific_concern", "specific_concern")
        self._carer_responses = frozenset(esc.texts("carer_level_responses"))
        for response in self._carer_responses:
            if response not in ENUMS["carer_response"]:
                esc.fail("carer_level_responses", f"{response!r} is not a carer response")

    def score_level(self, total: int) -> str:
        """Escalation level from the total alone."""
        level = ESCALATION_LEVELS[0]
        for start, name in self._level_from:
            if total >= start:
                level = name
        return level

    def _final_level(self, score_level: str, obs: Observation) -> str:
        levels = [score_level]
        if obs.avpu is not None:
            levels.append(self._avpu[obs.avpu])
        if obs.specific_concern:
            levels.extend(self._concern[c] for c in obs.specific_concern)
        cq = obs.carer_question
        if (
            cq is not None
            and cq.response in self._carer_responses
            and cq.escalation_level is not None
        ):
            levels.append(cq.escalation_level)
        ci = obs.clinical_intuition
        if ci is not None and ci.concerned and ci.escalation_level is not None:
            levels.append(ci.escalation_level)
        return max(levels, key=LEVEL_RANK.__getitem__)

    def score(self, obs: Observation, age_months: float) -> ScoreResult:
        """Score one observation set (docs/clinical/uk_npews.md)."""
        band = band_for(self.file, age_months)
        part = self._parts[band.id]
        oxygen, oxygen_full = self._oxygen.score(obs.oxygen)
        # a skip code counts as obtained (docs/clinical/uk_npews.md#skip-codes)
        sbp = category(self._skip, obs.bp_skip_code)
        items = {
            "rr": lookup(part["rr"], obs.rr_bpm),
            "resp_distress": category(self._distress, obs.resp_distress),
            "spo2": lookup(part["spo2"], obs.spo2_pct),
            "oxygen": oxygen,
            "hr": lookup(part["hr"], obs.hr_bpm),
            "sbp": lookup(part["sbp"], obs.sbp_mmhg) if sbp is None else sbp,
            "crt": lookup(part["crt"], obs.crt_s),
        }
        missing = missing_items(items, frozenset() if oxygen_full else frozenset({"oxygen"}))
        total = partial_total(items)
        score_level = self.score_level(total)
        return ScoreResult(
            system=SYSTEM,
            band=band.id,
            total=total,
            items=items,
            complete=not missing,
            missing=missing,
            escalation={
                "score_level": score_level,
                "final_level": self._final_level(score_level, obs),
            },
            table_version=self.file.meta.version,
        )
