"""The alert engine's pure core: unit rules, per-bed rules, alert episodes, the unit engine.

No clock, no socket, no file: ``now`` is an argument and decisions come back as effects. The
live service (``alerting.service``) and ``wardwatch replay`` (``alerting.replay``) drive it.
"""

from alerting.core.bed import Bed, BedInfo, ScoreEffect
from alerting.core.config import RulesError, UnitRules, default_rules, load_rules, rules_from
from alerting.core.episode import AlertEffect, Episode, IllegalTransition
from alerting.core.items import Reading, from_observation
from alerting.core.unit import UnitEngine, artefact_limits

__all__ = [
    "AlertEffect",
    "Bed",
    "BedInfo",
    "Episode",
    "IllegalTransition",
    "Reading",
    "RulesError",
    "ScoreEffect",
    "UnitEngine",
    "UnitRules",
    "artefact_limits",
    "default_rules",
    "from_observation",
    "load_rules",
    "rules_from",
]
