"""Gateway enrolment through the registry's REST API: a real ``registry serve --mqtt`` process
(the registry's broker identity, from ``WM_*`` in its environment) on a real mosquitto.

Only a biomedical engineer or an admin may enrol, rotate or revoke; the answer holding the
password is not cached; what the API enrols is a working, confined, bound identity; without a
broker connection the routes answer 503.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from registry import audit, users
from registry.db import open_database, transaction
from registry.users import UserRequest
from tests.helpers.wait import wait_until
from tests.integration.test_broker_security import Client
from wardwatch.devstack import Stack

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _serve(db: str, env: dict[str, str], *mqtt: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry", "serve", "--db", db, "--port", "0", *mqtt],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env}, start_new_session=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # printed once the socket listens
    assert first.startswith("serving http://"), first
    return proc, first.split()[1]


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def api(stack: Stack, tmp_path: Path, topic_root: str) -> Iterator[tuple[str, dict[str, str],
                                                                        str]]:
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = open_database(db)
    tokens: dict[str, str] = {}
    with transaction(engine) as s:
        now = datetime.now(UTC)
        audit.act_as(s, "test")
        for role in ("biomed", "admin", "nurse", "unit_manager"):
            users.add_user(s, UserRequest(id=f"u-{role}", role=role,  # type: ignore[arg-type]
                                          password=SecretStr(uuid.uuid4().hex + "Aa1!")),
                           now=now)
            tokens[role] = users.issue_token(s, f"u-{role}", now=now).token
    engine.dispose()
    env = {**stack.env("registry"), "WM_TOPIC_ROOT": topic_root}
    proc, url = _serve(db, env, "--mqtt")
    try:
        h = {"Authorization": f"Bearer {tokens['unit_manager']}"}
        with httpx.Client(base_url=url, headers=h, timeout=10) as http:
            assert http.post("/sites", json={"id": "s1"}).status_code == 201
            assert http.post("/units", json={"site": "s1", "id": "u1", "time_zone": "UTC",
                                             "generation": "test"}).status_code == 201
        yield url, tokens, db
    finally:
        _stop(proc)


def test_a_biomed_enrols_rotates_and_revokes_through_the_api(
    api: tuple[str, dict[str, str], str], stack: Stack, topic_root: str
) -> None:
    url, tokens, _db = api
    gw = f"gw-{uuid.uuid4().hex[:6]}"

    def post(role: str, path: str, body: dict[str, object] | None = None) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=30,
                          headers={"Authorization": f"Bearer {tokens[role]}"}) as http:
            return http.post(path, json=body)

    for role in ("nurse", "unit_manager"):  # may not (a unit manager manages assets only)
        r = post(role, f"/gateways/{gw}/enroll", {"unit": "u1"})
        assert r.status_code == 403 and "biomed" in r.json()["reason"], r.text
    # the registry's broker connection comes up in the background: 503 until then
    r = wait_until(lambda: (x := post("biomed", f"/gateways/{gw}/enroll",
                                      {"unit": "u1", "site": "s1"})).status_code != 503 and x,
                   timeout=15)
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["broker"]["port"] == stack.broker.port and body["topic_root"] == topic_root
    assert body["publish_topic"] == f"{topic_root}/gw/s1/u1/{gw}/#"
    assert "password = " in body["config"]
    stack.broker.passwords[gw] = body["broker"]["password"]
    c = Client.open(stack.broker.params(gw), gw)
    try:
        assert not c.publish(f"{topic_root}/gw/s1/u1/{gw}/obs", b"x").is_failure
        r = post("admin", f"/gateways/{gw}/rotate")
        assert r.status_code == 200 and r.json()["broker"]["password"] != body["broker"][
            "password"]
        with c.cond:  # the old credentials' session is closed
            assert c.cond.wait_for(lambda: c.disconnects, 10)
        assert stack.broker.try_connect(gw, r.json()["broker"]["password"], client_id=gw)
        r = post("biomed", f"/gateways/{gw}/revoke")
        assert r.status_code == 200 and r.json()["removed"] is True
        assert not stack.broker.try_connect(gw, body["broker"]["password"], client_id=gw)
        assert post("biomed", f"/gateways/{gw}/rotate").status_code == 409
        assert post("biomed", "/gateways/nope/revoke").status_code == 404
        bad = post("biomed", f"/gateways/{gw}/enroll", {"unit": "u1", "broker_port": 0})
        assert bad.status_code == 422
        # retiring a gateway through the API revokes its identity too
        gw2 = f"gw-{uuid.uuid4().hex[:6]}"
        r = post("biomed", f"/gateways/{gw2}/enroll", {"unit": "u1", "site": "s1"})
        assert r.status_code == 201, r.text
        pw2 = r.json()["broker"]["password"]
        assert stack.broker.try_connect(gw2, pw2, client_id=gw2)
        r = post("biomed", f"/gateways/{gw2}/retire")
        assert r.status_code == 200 and r.json()["status"] == "retired", r.text
        assert not stack.broker.try_connect(gw2, pw2, client_id=gw2)
    finally:
        c.close()
    # the audit log has each step with the credential's fingerprint, never the password
    with httpx.Client(base_url=url, timeout=10,
                      headers={"Authorization": f"Bearer {tokens['admin']}"}) as http:
        log = http.get("/audit").text
    assert "gateway.enroll" in log and "gateway.rotate" in log and "gateway.revoke" in log
    assert body["fingerprint"] in log and body["broker"]["password"] not in log


def test_without_a_broker_connection_enrolment_answers_503(
    api: tuple[str, dict[str, str], str], stack: Stack
) -> None:
    _url, tokens, db = api
    proc, url = _serve(db, {})
    try:
        with httpx.Client(base_url=url, timeout=10,
                          headers={"Authorization": f"Bearer {tokens['biomed']}"}) as http:
            r = http.post("/gateways/gw-x/enroll", json={"unit": "u1"})
        assert r.status_code == 503 and "serve --mqtt" in r.json()["reason"]
    finally:
        _stop(proc)
