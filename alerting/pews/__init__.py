"""Paediatric early-warning scores as versioned, validated data, and a pure scorer.

Systems: Bedside PEWS, UK National PEWS (2023), a Brighton-type PEWS with a site-supplied
age-normal table, and NEWS2 for patients aged 16 and over (docs/clinical/README.md). Tables
live in
``tables/*.toml`` with provenance and sign-off metadata and are validated at load; the code
holds no clinical thresholds.

Typical use::

    from alerting.pews import score
    result = score("uk_npews", {"hr_bpm": 182, "rr_bpm": 40}, age_months=8)
    result.total, result.complete, result.missing, result.escalation
"""

from __future__ import annotations

from .age import completed_months, resolve_age_months
from .common import SystemScorer
from .errors import PewsError, PewsInputError, PewsTableError
from .result import ScoreResult
from .scoring import score, score_many
from .tableset import (
    SYSTEMS,
    TableSet,
    installed_tables,
    installed_tables_dir,
    load_table,
    load_tables,
)
from .vocabulary import INPUT_KEYS, Observation, parse_observation

__all__ = [
    "INPUT_KEYS",
    "SYSTEMS",
    "Observation",
    "PewsError",
    "PewsInputError",
    "PewsTableError",
    "ScoreResult",
    "SystemScorer",
    "TableSet",
    "completed_months",
    "installed_tables",
    "installed_tables_dir",
    "load_table",
    "load_tables",
    "parse_observation",
    "resolve_age_months",
    "score",
    "score_many",
]
