"""One TOML writer (tomli-w): what is written reads back equal, whatever the strings hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.policy import AlertPolicy, PolicyError, load_policy
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


def test_policy_file_defaults_and_errors(tmp_path: Path) -> None:
    assert load_policy(None) == AlertPolicy()
    p = tmp_path / "policy.toml"
    p.write_text(dump_model(AlertPolicy(onset_s=5, escalate_after_s=60)), encoding="utf-8")
    pol = load_policy(p)
    assert (pol.onset_s, pol.escalate_after_s, pol.clear_s) == (5, 60, 30)
    assert pol.rule_config("bedside_pews").onset_s == 5
    assert pol.lifecycle().escalate_after_s == 60
    p.write_text("onset_s = -1\nthreshold = 7\n", encoding="utf-8")
    with pytest.raises(PolicyError) as ei:
        load_policy(p)
    assert "onset_s" in str(ei.value) and "threshold" in str(ei.value)
