"""Red-team findings against the registry's security (issues 15 and 16), each on the real
services the project's harness starts (mosquitto with dynamic security, a registry database, the
registry CLI and API): what an adversary or a careless operator could do, and that it is
refused now.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.helpers.wait import wait_until
from tests.integration.test_broker_security import Client, arrived_before, not_authorized
from tests.integration.test_enrolment import enrolled, make_registry
from tests.integration.test_enrolment_api import api  # noqa: F401 - the fixture
from wardwatch.devstack import Mosquitto, Stack
from wardwire import topics

pytestmark = pytest.mark.integration


def test_a_gateway_named_like_a_broker_identity_cannot_revoke_or_take_it_over(
    private_broker: Mosquitto, tmp_path: Path
) -> None:
    """A biomed registers a gateway whose id is a service's broker username (``ingest``, the
    registry's own ``registry``, the plugin admin ``provisioner``, or a production service
    client such as ``ingest-2`` made by deploy/mosquitto/wardwatch-dynsec.sh): revoking,
    rotating, enrolling or retiring that "gateway" must not delete or replace the service's
    broker identity (it did: ``deleteClient`` ran on whatever held the name)."""
    b = private_broker
    root = f"r{uuid.uuid4().hex[:6]}/v1"
    reg = make_registry(b, tmp_path, root)
    # a production-style service client: any username, a non-gateway role
    svc, pw = "ingest-2", uuid.uuid4().hex
    answers = b.control(
        {"command": "createRole", "rolename": "svc-ingest-2",
         "acls": [{"acltype": "subscribePattern", "topic": f"{root}/gw/#", "allow": True}]},
        {"command": "createClient", "username": svc, "password": pw,
         "roles": [{"rolename": "svc-ingest-2"}]},
    )
    assert not any(a.get("error") for a in answers), answers
    b.passwords[svc] = pw
    victims = ("ingest", "registry", "provisioner", svc)
    for name in victims:
        reg("gateway", "add", "s1/u1", name)
    for name in victims:
        out = reg("gateway", "revoke", name, code=2)
        assert "not a gateway" in out, out
        out = reg("gateway", "rotate", name, code=2)
        assert "not a gateway" in out or "service identity" in out, out
    out = reg("gateway", "enroll", svc, "--unit", "s1/u1", code=2)
    assert "not a gateway" in out, out
    # retiring the record must not take the identity with it either
    out = reg("gateway", "retire", svc, code=2)
    assert "not a gateway" in out and "NOT revoked" in out, out
    for name in victims:
        assert b.try_connect(name, b.passwords[name]), f"{name} lost its broker identity"
    # a real gateway is still revoked, rotated and enrolled as before
    gw = f"gw-{uuid.uuid4().hex[:6]}"
    enrolled(reg, gw)
    reg("gateway", "rotate", gw)
    assert "revoked gateway" in reg("gateway", "revoke", gw)
    assert "had no broker identity" in reg("gateway", "revoke", gw)


def test_only_the_registry_identity_may_publish_a_change_event(
    stack: Stack, topic_root: str
) -> None:
    """A forged ContextChanged makes every service re-read its context at once (a flood of
    them, a re-read storm against the registry): tried as every identity a deployment has
    (each service, an enrolled gateway), only the registry's reaches a subscriber."""
    r = topic_root
    topic = topics.context_changed("s1", "u1", root=r)
    gw = f"gw-{uuid.uuid4().hex[:6]}"
    stack.broker.add_user(gw, site="s1", unit="u1", root=r)
    watcher = Client.open(stack.broker.params("ingest"), f"watch-{uuid.uuid4().hex[:6]}")
    clients = {u: Client.open(stack.broker.params(u), u if u == gw else
                              f"{u}-{uuid.uuid4().hex[:6]}")
               for u in ("ingest", "alerting", "console", "demo", "loadgen", gw, "registry")}
    try:
        watcher.subscribe(topic)
        for user, c in clients.items():
            rc = c.publish(topic, user.encode())
            assert not_authorized(rc) is (user != "registry"), (user, rc)
        assert not clients["registry"].publish(topic, b"marker").is_failure
        got = [p for _, p in arrived_before(watcher, b"marker")]
        assert got == [b"registry"], got
    finally:
        watcher.close()
        for c in clients.values():
            c.close()


def test_through_the_api_a_biomed_cannot_revoke_a_service_identity(
    api: tuple[str, dict[str, str], str], stack: Stack, topic_root: str,  # noqa: F811
) -> None:
    """The same through ``registry serve --mqtt``: a gateway record named like a service's
    broker client (here a production-style one, on the shared broker) is neither revoked,
    rotated, enrolled nor, when retired, stripped of that client (409 saying why)."""
    url, tokens, _db = api
    svc, pw = f"svc-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    answers = stack.broker.control(
        {"command": "createRole", "rolename": f"role-{svc}",
         "acls": [{"acltype": "subscribePattern", "topic": f"{topic_root}/gw/#",
                   "allow": True}]},
        {"command": "createClient", "username": svc, "password": pw,
         "roles": [{"rolename": f"role-{svc}"}]},
    )
    assert not any(a.get("error") for a in answers), answers
    h = {"Authorization": f"Bearer {tokens['biomed']}"}
    with httpx.Client(base_url=url, headers=h, timeout=30) as http:
        assert http.post("/units/s1/u1/gateways", json={"id": svc}).status_code == 201
        r = wait_until(lambda: (x := http.post(f"/gateways/{svc}/revoke")).status_code != 503
                       and x, timeout=15)
        assert isinstance(r, httpx.Response)
        assert r.status_code == 409 and "not a gateway identity" in r.json()["reason"], r.text
        r = http.post(f"/gateways/{svc}/rotate")
        assert r.status_code == 409 and "not a gateway identity" in r.json()["reason"], r.text
        r = http.post(f"/gateways/{svc}/enroll", json={"unit": "u1", "site": "s1"})
        assert r.status_code == 409 and "not a gateway identity" in r.json()["reason"], r.text
        r = http.post(f"/gateways/{svc}/retire")
        assert r.status_code == 409 and "is retired" in r.json()["reason"], r.text
    assert stack.broker.try_connect(svc, pw)
