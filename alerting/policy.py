"""The alerting service's policy file: how long a condition must hold, how soon to escalate.

Policy belongs to the alerting service, not to the unit context the registry serves (which beds
and devices exist). Read with ``wardwatch alerting run --policy FILE``; every key is optional::

    onset_s = 30            # a condition must hold this long before an alert is raised
    clear_s = 30            # and be gone this long before the alert resolves
    stale_s = 60            # a device value older than this is missing, never normal
    escalate_after_s = 120  # an unacknowledged alert escalates after this long
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from alerting import lifecycle as lc
from alerting.rules import RuleConfig, load_artefact_limits, load_priorities
from servicekit.tomlio import load_toml_model

__all__ = ["AlertPolicy", "PolicyError", "load_policy"]


class AlertPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    onset_s: Annotated[float, Field(ge=0, le=600)] = 30.0
    clear_s: Annotated[float, Field(ge=0, le=3600)] = 30.0
    stale_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    escalate_after_s: Annotated[float, Field(gt=0)] = 120.0

    def rule_config(self, system: str, **overrides: Any) -> RuleConfig:
        """The rule configuration for a unit scoring with ``system``."""
        return RuleConfig(
            system=system,
            onset_s=self.onset_s,
            clear_s=self.clear_s,
            stale_s=self.stale_s,
            artefact=load_artefact_limits(),
            priorities=load_priorities(),
            **overrides,
        )

    def lifecycle(self) -> lc.Policy:
        return lc.Policy(escalate_after_s=self.escalate_after_s)


class PolicyError(Exception):
    """The policy file is missing or invalid; the message names each key path."""


def load_policy(path: Path | None) -> AlertPolicy:
    """The policy in ``path``, or the defaults when no file is given."""
    if path is None:
        return AlertPolicy()
    return load_toml_model(path, AlertPolicy, "alerting policy", PolicyError)
