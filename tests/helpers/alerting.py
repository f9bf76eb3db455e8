"""Test-side alerting engines: the real service with rules that act at once (no onset or clear
delay), so integration tests see a raise as soon as the score crosses."""

from __future__ import annotations

import uuid
from typing import Any

from alerting.core import UnitRules
from alerting.pews import score
from alerting.service import AlertingService
from tests.helpers.mqtt import params
from wardwatch.devstack import Mosquitto
from wardwire.context import UnitContext


def instant_rules(**overrides: Any) -> UnitRules:
    """The shipped rules with no onset or clear delay (one reading raises, one clears)."""
    raw: dict[str, Any] = {
        "onset": {"high_s": 0, "medium_s": 0, "low_s": 0, "confirmations": 1},
        "clear": {"clear_s": 0},
        "freshness": {"continuous_s": 60, "no_data_s": 60},
    }
    for k, v in overrides.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    return UnitRules.model_validate(raw)


def alerting_service(
    broker: Mosquitto, ward: UnitContext, root: str, *, tick_s: float = 0.1,
    client_prefix: str = "alerting", rules: UnitRules | None = None, **kwargs: Any,
) -> AlertingService:
    """An engine for ``ward`` under ``root`` with a unique client id (not yet running)."""
    return AlertingService(
        params(broker, "alerting"),
        ward,
        rules or instant_rules(),
        score,
        root=root,
        client_id=f"{client_prefix}-{uuid.uuid4().hex[:6]}",
        tick_s=tick_s,
        **kwargs,
    )
