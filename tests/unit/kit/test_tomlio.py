"""One TOML writer (tomli-w): what is written reads back equal, whatever the strings hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.core.config import RulesError, UnitRules, default_rules, load_rules
from edge_agent.config import (
    BrokerSection,
    DeviceSection,
    EdgeConfig,
    GatewaySection,
    TlsSection,
    dump_edge_config,
    load_edge_config,
)
from servicekit.tomlio import dump_model, dumps


@settings(max_examples=60, deadline=None)
@given(
    host=st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s),
    password=st.text(max_size=40),
    port=st.text(min_size=1, max_size=40),
)
def test_edge_config_round_trips_with_any_strings(
    tmp_path_factory: pytest.TempPathFactory, host: str, password: str, port: str
) -> None:
    cfg = EdgeConfig(
        gateway=GatewaySection(id="gw-1", site="s", unit="u"),
        broker=BrokerSection(host=host, password=password,
                             tls=TlsSection(ca_file=Path('/etc/a "b"\\c.pem'))),
        heartbeat_s=2.5,
        devices=[DeviceSection(id="d1", driver="wwmon", port=port, baudrate=9600)],
    )
    path = tmp_path_factory.mktemp("cfg") / "edge.toml"
    path.write_text(dump_edge_config(cfg), encoding="utf-8")
    assert load_edge_config(path) == cfg


def test_none_is_left_out() -> None:
    assert dumps({"a": None, "b": {"c": None, "d": 1}}) == "[b]\nd = 1\n"


def test_unit_rules_file_defaults_round_trip_and_errors(tmp_path: Path) -> None:
    assert load_rules(None) == default_rules() == UnitRules()
    p = tmp_path / "rules.toml"
    p.write_text(dump_model(UnitRules.model_validate({"onset": {"high_s": 5}})), encoding="utf-8")
    rules = load_rules(p)
    assert (rules.onset.high_s, rules.onset.medium_s) == (5, 240)
    p.write_text("threshold = 7\n[onset]\nhigh_s = -1\n", encoding="utf-8")
    with pytest.raises(RulesError) as ei:
        load_rules(p)
    assert "onset.high_s" in str(ei.value) and "threshold" in str(ei.value)
