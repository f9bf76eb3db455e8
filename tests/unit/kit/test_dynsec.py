"""servicekit.dynsec (pure): the broker identity model, the dynamic-security commands and the
reading of the plugin's answers; registry.enroll's pure parts (the reconciliation plan, the
edge config it prints)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.config import load_edge_config
from registry.enroll import BrokerTarget, _Target, edge_config, reconcile_plan
from servicekit import dynsec
from servicekit.dynsec import DynsecError, GatewayScope

IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,12}", fullmatch=True)


def test_a_gateway_scope_is_one_literal_publish_acl_under_its_own_subtree() -> None:
    s = GatewayScope("gw-1", "s1", "picu", "wm/v1")
    assert s.role == "gateway-gw-1"
    assert [a.as_json() for a in s.acls()] == [
        {"acltype": "publishClientSend", "topic": "wm/v1/gw/s1/picu/gw-1/#", "allow": True}]
    for bad in ({"gateway": "+"}, {"site": "#"}, {"unit": "a/b"}, {"gateway": "ingest"},
                {"gateway": "registry"}, {"root": "wm/+"}, {"gateway": ""}):
        kw = {"gateway": "gw", "site": "s", "unit": "u", "root": "wm/v1", **bad}
        with pytest.raises(ValueError):
            GatewayScope(**kw)


def test_the_upsert_replaces_whatever_the_broker_held_and_binds_the_client_id() -> None:
    cmds = dynsec.gateway_upsert(GatewayScope("gw-1", "s1", "u1"), "pw")
    assert [c["command"] for c in cmds] == ["deleteClient", "deleteRole", "createRole",
                                            "createClient"]
    create = cmds[-1]
    assert (create["username"], create["clientid"], create["roles"]) == (
        "gw-1", "gw-1", [{"rolename": "gateway-gw-1"}])


def test_answers_are_checked_command_by_command_with_the_plugins_reason() -> None:
    cmds = dynsec.gateway_upsert(GatewayScope("gw-1", "s1", "u1"), "pw")
    ok = [{"command": c["command"]} for c in cmds]
    gone = [{"command": "deleteClient", "error": "Client not found"},
            {"command": "deleteRole", "error": "Role not found"}, *ok[2:]]
    assert dynsec.check(cmds, gone, tolerate=dynsec.upsert_tolerates()) == gone
    with pytest.raises(DynsecError, match="deleteClient: Client not found"):
        dynsec.check(cmds, gone)
    exists = [*ok[:3], {"command": "createClient", "error": "Client already exists"}]
    with pytest.raises(DynsecError, match="broker refused createClient: Client already exists"):
        dynsec.check(cmds, exists, tolerate=dynsec.upsert_tolerates())
    with pytest.raises(DynsecError, match="3 responses to 4 commands"):
        dynsec.check(cmds, ok[:3])
    with pytest.raises(DynsecError, match="answered as 'createRole'"):
        dynsec.check(cmds, [ok[0], ok[2], ok[1], ok[3]])


@pytest.mark.parametrize("payload", [b"", b"not json", b"[]", b'{"responses": 3}',
                                     b'{"responses": [1]}', b"\xff\xfe"])
def test_an_unreadable_answer_is_a_clear_error(payload: bytes) -> None:
    with pytest.raises(DynsecError):
        dynsec.parse_responses(payload)


def test_gateway_clients_are_read_from_a_verbose_list_and_services_left_out() -> None:
    answer = {"command": "listClients", "data": {"clients": [
        {"username": "ingest", "roles": [{"rolename": "service-ingest"}]},
        {"username": "gw-1", "roles": [{"rolename": "gateway-gw-1"}]},
        {"username": "gw-2", "roles": [{"rolename": "gateway-gw-1"}]},
        {"username": "gw-3", "roles": [{"rolename": "gateway-gw-3"},
                                       {"rolename": "gateway-gw-4"}]},
    ]}}
    assert dynsec.gateway_clients(answer) == {"gw-1": "gw-1", "gw-2": None, "gw-3": None}
    for bad in ({}, {"data": {"clients": [{"roles": []}]}}, {"data": []}):
        with pytest.raises(DynsecError):
            dynsec.gateway_clients(bad)


def test_the_stored_password_is_the_plugins_form() -> None:
    stored = dynsec.stored_password("secret", salt=b"0123456789ab")
    assert stored["iterations"] == 101
    assert dynsec.matches_stored("secret", stored)
    assert not dynsec.matches_stored("Secret", stored)


def test_a_password_is_fresh_and_only_its_fingerprint_shown() -> None:
    a, b = dynsec.new_password(), dynsec.new_password()
    assert a != b and len(a) >= 43
    fp = dynsec.fingerprint(a)
    assert fp.startswith("sha256:") and len(fp) == 23 and a not in fp


@given(
    registry=st.dictionaries(IDS, st.sampled_from(["active", "retired"]), max_size=8),
    broker=st.dictionaries(IDS, st.one_of(st.none(), IDS), max_size=8),
)
def test_reconcile_removes_only_what_the_registry_does_not_back(
    registry: dict[str, str], broker: dict[str, str | None]
) -> None:
    broker = {k: (k if v is not None else None) for k, v in broker.items()}
    plan = reconcile_plan(registry, broker)
    assert [g for g, _, _ in plan] == sorted(g for g, _, _ in plan)
    for gw, _finding, removable in plan:
        if removable:  # never an identity an active registry gateway holds properly
            assert gw in broker
            assert registry.get(gw) != "active" or broker[gw] is None
        else:
            assert registry.get(gw) == "active" and gw not in broker
    # applying the plan leaves a registry and a broker in step (but for the enrolments owed)
    left = {g: v for g, v in broker.items()
            if not any(g == p and r for p, _, r in plan)}
    assert all(registry.get(g) == "active" and v == g for g, v in left.items())
    owed = {g for g, s in registry.items() if s == "active" and g not in broker}
    assert {g for g, _, r in plan if not r} == owed


def test_the_printed_edge_config_is_loaded_by_the_edge_agent_as_is(tmp_path: Path) -> None:
    t = _Target("gw-1", "s1", "picu", "test",
                (("mon-1", "wwmon", "/dev/ttyUSB0", None),
                 ("hr-1", "ble_hr", None, "AA:BB:CC:DD:EE:FF")), ("nodriver",))
    pw = 'p"w\\\n#=x'  # quoting, escapes, comment and newline characters survive
    broker = BrokerTarget(host="mqtt.ward.example", port=8883, ca_file="/etc/ww/ca.pem",
                          topic_root="wm/v1")
    text = edge_config(t, broker, pw, outbox_path="/var/lib/ww/ob.db",
                       fingerprint=dynsec.fingerprint(pw), at=datetime(2026, 1, 1, tzinfo=UTC))
    path = tmp_path / "gw.toml"
    path.write_text(text)
    cfg = load_edge_config(path)
    assert cfg.broker.resolved_password() == pw
    assert (cfg.broker.host, cfg.broker.port, cfg.broker.username) == (
        "mqtt.ward.example", 8883, "gw-1")
    assert cfg.broker.tls is not None and str(cfg.broker.tls.ca_file) == "/etc/ww/ca.pem"
    assert [d.id for d in cfg.devices] == ["mon-1", "hr-1"]
    assert cfg.gateway.generation.value == "test"
    assert json.dumps(cfg.model_dump(mode="json"))  # a complete, valid config


# -- registry.enroll.DynsecChannel: requests matched to answers (a fake session: pure logic) ----
class _Msg:
    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic, self.payload = topic, payload


class _Rc:
    def __init__(self, failure: bool) -> None:
        self.is_failure = failure

    def __str__(self) -> str:
        return "Not authorized" if self.is_failure else "Success"


class FakeSession:
    """Answers each request like the plugin would (or not at all, or refuses the PUBACK), and
    delivers someone else's answers first."""

    def __init__(self, *, answer: bool = True, refuse: bool = False,
                 connected: bool = True) -> None:
        import threading

        self.connected, self.subscribed = threading.Event(), threading.Event()
        if connected:
            self.connected.set()
        self.subscribed.set()
        self.refused_filters: list[str] = []
        self.answer, self.refuse = answer, refuse
        self.channel: Any = None
        self.sent: list[dict[str, Any]] = []

    def publish(self, topic: str, payload: str, *, qos: int, on_done: Any) -> None:
        cmds = json.loads(payload)["commands"]
        self.sent.extend(cmds)
        on_done(_Rc(self.refuse))
        if self.refuse or not self.answer:
            return
        other = {"responses": [{"command": "listClients", "correlationData": "someone-else"}]}
        self.channel.on_message(None, None, _Msg(dynsec.RESPONSE_TOPIC,
                                                 json.dumps(other).encode()))
        self.channel.on_message(None, None, _Msg("elsewhere", b"garbage"))
        self.channel.on_message(None, None, _Msg(dynsec.RESPONSE_TOPIC, b"not json"))
        answers = [{"command": c["command"], "correlationData": c["correlationData"],
                    **({"error": "Client not found"} if c["command"] == "deleteClient" else {})}
                   for c in reversed(cmds)]  # in any order
        self.channel.on_message(None, None, _Msg(dynsec.RESPONSE_TOPIC,
                                                 json.dumps({"responses": answers}).encode()))


def _channel(session: FakeSession) -> Any:
    from registry.enroll import DynsecChannel

    ch = DynsecChannel(session)  # type: ignore[arg-type]
    session.channel = ch
    return ch


def test_the_channel_returns_each_commands_own_answer_in_order() -> None:
    s = FakeSession()
    cmds = dynsec.gateway_upsert(GatewayScope("gw-1", "s1", "u1"), "pw")
    answers = _channel(s).control(cmds, timeout=2)
    assert [a["command"] for a in answers] == [c["command"] for c in cmds]
    assert answers[0]["error"] == "Client not found"
    assert len({c["correlationData"] for c in s.sent}) == len(cmds)


def test_the_channel_fails_clearly_and_sends_nothing_when_disconnected() -> None:
    from registry.enroll import BrokerFailed

    s = FakeSession(connected=False)
    with pytest.raises(BrokerFailed, match="not connected"):
        _channel(s).control([dynsec.list_clients()], timeout=0.2)
    assert s.sent == []  # never queued for later
    with pytest.raises(BrokerFailed, match="refused the dynamic-security request"):
        _channel(FakeSession(refuse=True)).control([dynsec.list_clients()], timeout=2)
    with pytest.raises(BrokerFailed, match=r"no dynamic-security answer within 0\.2 s"):
        _channel(FakeSession(answer=False)).control([dynsec.list_clients()], timeout=0.2)


def test_foreign_client_tells_a_gateways_identity_from_anyone_elses() -> None:
    """(found by red-team) a gateway id may name a service's broker client: only a client whose
    one role is the gateway's own, in no group, may be deleted or replaced by gateway commands."""
    from servicekit.dynsec import DynsecError, foreign_client

    def answer(roles: list[str], groups: list[str] | None = None) -> dict[str, object]:
        return {"command": "getClient", "data": {"client": {
            "username": "x", "roles": [{"rolename": r} for r in roles],
            "groups": [{"groupname": g} for g in groups or []]}}}

    assert foreign_client({"command": "getClient", "error": "Client not found"}, "gw-a") is None
    assert foreign_client(answer(["gateway-gw-a"]), "gw-a") is None
    for roles, groups in ((["service-ingest"], []), (["gateway-gw-b"], []), ([], []),
                          (["gateway-gw-a", "admin"], []), (["gateway-gw-a"], ["ops"])):
        reason = foreign_client(answer(roles, groups), "gw-a")
        assert reason is not None and "not a gateway identity" in reason, (roles, groups)
    with pytest.raises(DynsecError):
        foreign_client({"command": "getClient", "error": "Permission denied"}, "gw-a")
    with pytest.raises(DynsecError):
        foreign_client({"command": "getClient", "data": {}}, "gw-a")
