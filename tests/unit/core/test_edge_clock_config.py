"""The ``[clock]`` table of the edge config: defaults, validation, round trip, and the policy
the agent builds from it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from edge_agent.admission import ClockPolicy
from edge_agent.config import (
    ClockSection,
    ConfigError,
    EdgeConfig,
    GatewaySection,
    dump_edge_config,
    load_edge_config,
)

BASE = '[gateway]\nid = "g"\nsite = "s"\nunit = "u"\n'


def _load(tmp_path: Path, text: str) -> EdgeConfig:
    p = tmp_path / "edge.toml"
    p.write_text(text, encoding="utf-8")
    return load_edge_config(p)


def test_defaults_are_5_minutes_ahead_and_7_days_old(tmp_path: Path) -> None:
    cfg = _load(tmp_path, BASE)
    assert (cfg.clock.max_ahead_s, cfg.clock.max_age_s) == (300, 604800)
    assert ClockPolicy.from_config(cfg.clock) == ClockPolicy()


def test_clock_table_is_read(tmp_path: Path) -> None:
    cfg = _load(tmp_path, BASE + "[clock]\nmax_ahead_s = 30\nmax_age_s = 3600\n")
    assert ClockPolicy.from_config(cfg.clock) == ClockPolicy(
        max_ahead=timedelta(seconds=30), max_age=timedelta(hours=1)
    )


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ("max_ahead_s = -1", "clock.max_ahead_s"),
        ("max_ahead_s = 86401", "clock.max_ahead_s"),
        ('max_ahead_s = "300"', "clock.max_ahead_s"),
        ("max_ahead_s = true", "clock.max_ahead_s"),
        ("max_ahead_s = 1.5", "clock.max_ahead_s"),
        ("max_age_s = 0", "clock.max_age_s"),
        ("max_age_s = 59", "clock.max_age_s"),
        ("max_age_s = 31622401", "clock.max_age_s"),
        ("max_skew_s = 5", "clock.max_skew_s"),
    ],
)
def test_invalid_clock_keys_are_named(tmp_path: Path, table: str, where: str) -> None:
    with pytest.raises(ConfigError) as ei:
        _load(tmp_path, BASE + f"[clock]\n{table}\n")
    assert where in str(ei.value)


def test_dump_round_trips_the_clock_table(tmp_path: Path) -> None:
    cfg = EdgeConfig(
        gateway=GatewaySection(id="g", site="s", unit="u"),
        clock=ClockSection(max_ahead_s=0, max_age_s=86400),
    )
    text = dump_edge_config(cfg)
    assert "[clock]" in text
    assert _load(tmp_path, text) == cfg
