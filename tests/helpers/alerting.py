"""Test-side alerting engines: the real service with rules that act at once (no onset or clear
delay), so integration tests see a raise as soon as the score crosses."""

from __future__ import annotations

import uuid
from typing import Any

from alerting.pews import score
from alerting.rules import RuleConfig, load_artefact_limits, load_priorities
from alerting.service import AlertingService
from tests.helpers.mqtt import params
from wardwatch.devstack import Mosquitto
from wardwire.context import UnitContext


def instant_rules() -> RuleConfig:
    """Bedside PEWS with the shipped artefact limits and priorities, no onset/clear delay."""
    return RuleConfig(
        system="bedside_pews",
        onset_s=0,
        clear_s=0,
        stale_s=60,
        artefact=load_artefact_limits(),
        priorities=load_priorities(),
    )


def alerting_service(
    broker: Mosquitto, ward: UnitContext, root: str, *, tick_s: float = 0.1,
    client_prefix: str = "alerting", **kwargs: Any,
) -> AlertingService:
    """An engine for ``ward`` under ``root`` with a unique client id (not yet running)."""
    return AlertingService(
        params(broker, "alerting"),
        ward,
        instant_rules(),
        score,
        root=root,
        client_id=f"{client_prefix}-{uuid.uuid4().hex[:6]}",
        tick_s=tick_s,
        **kwargs,
    )
