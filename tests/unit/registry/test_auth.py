"""Logins, tokens and alert commands over the API (TestClient, SQLite and PostgreSQL), with an
injected clock: a token works until it expires; a password change or disabling revokes every
token at once; failed logins are limited per user and per address (429 with Retry-After) and
the limit lifts when the window passes; every attempt is in the audit log; nurses' alert actions
become AlertCommands by the authenticated user, refused without a broker."""

from __future__ import annotations

import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from pydantic import SecretStr
from sqlalchemy import Engine

from registry import assets, audit, users
from registry.api import create_app
from registry.db import transaction
from registry.errors import Invalid
from registry.ratelimit import Policy
from registry.schemas import SiteRequest, UnitRequest
from tests.unit.registry.authn import bearer, token_for
from wardwire.models import AlertCommand

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
PW = "correct horse battery"


@pytest.fixture
def new_database(tmp_path: Path, sqlite_template: Path) -> Callable[[], str]:
    """SQLite only: the flows here do not depend on the database (the audit and token tests in
    test_audit.py run on PostgreSQL too)."""
    def sqlite() -> str:
        path = tmp_path / "registry.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"

    return sqlite


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    # the same algorithm with cheap parameters: these tests are about the flow, not the cost
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                         parallelism=1))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:  # type: ignore[override]
    return Clock()


Sent = list[tuple[str, str, AlertCommand]]


@pytest.fixture
def sent() -> Sent:
    return []


@pytest.fixture
def client(engine: Engine, clock: Clock, sent: Sent) -> Iterator[TestClient]:
    with transaction(engine) as s:
        users.add_user(s, users.UserRequest(id="kim", role="nurse", password=SecretStr(PW)),
                       now=T0)
        users.add_user(s, users.UserRequest(id="bo", role="biomed", password=SecretStr(PW)),
                       now=T0)
        assets.add_site(s, SiteRequest(id="demo"), now=T0)
        assets.add_unit(s, UnitRequest.model_validate(
            {"site": "demo", "id": "picu", "time_zone": "UTC"}), now=T0)
    app = create_app(engine, clock=clock, publish_command=lambda *a: sent.append(a),
                     login_policy=Policy(window=timedelta(minutes=15), per_user=3,
                                         per_address=5))
    with TestClient(app) as c:
        yield c


def login(c: TestClient, user: str = "kim", password: str = PW) -> tuple[int, dict[str, str]]:
    r = c.post("/login", json={"user": user, "password": password})
    return r.status_code, r.json()


def test_a_login_token_works_until_it_expires(client: TestClient, clock: Clock) -> None:
    r = client.post("/login", json={"user": "kim", "password": PW})
    assert r.headers["cache-control"] == "no-store"  # it holds a secret
    code, body = r.status_code, r.json()
    assert code == 200 and body["user"] == "kim" and body["role"] == "nurse"
    h = bearer(body["token"])
    assert client.get("/me", headers=h).json()["user"] == "kim"
    clock.now = T0 + users.LOGIN_TTL - timedelta(seconds=1)
    assert client.get("/me", headers=h).status_code == 200
    clock.now = T0 + users.LOGIN_TTL
    r = client.get("/me", headers=h)
    assert r.status_code == 401 and "expired" in r.json()["reason"]


BAD_TOKENS = [
    "", "Bearer", "wwt_", "wwt_0123456789abcdef_" + "A" * 43, "x" * 10_000, "wwt_zz_zz",
    "wwt_0123456789abcdef_" + "A" * 42 + "\u00e9",
]


def test_bad_tokens_are_401(client: TestClient) -> None:
    for token in BAD_TOKENS:
        r = client.get("/me", headers={"Authorization": f"Bearer {token}".encode("latin-1")})
        assert r.status_code == 401 and r.json()["reason"], token


def test_a_wrong_secret_for_a_real_token_id_is_401(client: TestClient) -> None:
    _, body = login(client)
    forged = body["token"][:-4] + ("AAAA" if not body["token"].endswith("AAAA") else "BBBB")
    assert client.get("/me", headers=bearer(forged)).status_code == 401


def test_a_password_change_and_disabling_revoke_every_token(
    client: TestClient, engine: Engine
) -> None:
    _, a = login(client)
    _, b = login(client)
    r = client.post("/me/password", headers=bearer(a["token"]),
                    json={"current": "not it at all!", "new": "another horse battery"})
    assert r.status_code == 403 and "current password" in r.json()["reason"]
    r = client.post("/me/password", headers=bearer(a["token"]),
                    json={"current": PW, "new": "short"})
    assert r.status_code == 422 and "12 characters" in r.json()["reason"]
    r = client.post("/me/password", headers=bearer(a["token"]),
                    json={"current": PW, "new": "another horse battery"})
    assert r.status_code == 200, r.text
    for t in (a, b):
        r = client.get("/me", headers=bearer(t["token"]))
        assert r.status_code == 401 and "revoked" in r.json()["reason"]
    assert login(client)[0] == 401
    code, c = login(client, password="another horse battery")
    assert code == 200
    admin = bearer(token_for(engine, "admin", now=T0))
    assert client.post("/users/kim/disable", headers=admin).json()["status"] == "disabled"
    assert client.get("/me", headers=bearer(c["token"])).status_code == 401
    assert login(client, password="another horse battery")[0] == 401  # disabled: no login
    assert client.post("/users/kim/enable", headers=admin).status_code == 200
    assert client.get("/me", headers=bearer(c["token"])).status_code == 401  # still revoked
    assert login(client, password="another horse battery")[0] == 200


def test_failed_logins_are_limited_per_user_and_per_address(
    client: TestClient, clock: Clock, engine: Engine
) -> None:
    for _ in range(3):
        assert login(client, password="wrong password!")[0] == 401
    r = client.post("/login", json={"user": "kim", "password": PW})
    assert r.status_code == 429 and int(r.headers["retry-after"]) == 15 * 60
    assert login(client, "bo")[0] == 200  # another user from the same address may
    for _ in range(2):  # the address's 5th failure (3 for kim, 2 for nobody)
        assert login(client, "nobody", "wrong password!")[0] == 401
    assert login(client, "bo")[0] == 429  # now the address is blocked for everyone
    clock.now = T0 + timedelta(minutes=15, seconds=1)
    assert login(client)[0] == 200
    with transaction(engine) as s:
        actions = [e.action for e in audit.entries(s) if e.action.startswith("login")]
        assert audit.verify(s).ok
    assert actions.count("login.failed") == 5 and actions.count("login.refused") == 2
    assert actions.count("login") == 2


def test_a_flood_of_refused_logins_is_audited_once_per_block(
    client: TestClient, clock: Clock, engine: Engine
) -> None:
    """(found by red-team) every refused attempt wrote an audit record: an unauthenticated
    client, once blocked, could write about 150 records a second (each taking the database's
    write lock) for as long as it liked. A block is recorded when it first refuses, naming
    the keys that block and until when; the attempts it refuses after that are not."""
    for i in range(5):  # the address's limit, with five different names
        assert login(client, f"guess{i}", "wrong password!")[0] == 401
    for i in range(40):  # rotating names does not make a new record
        assert login(client, f"other{i}", "wrong password!")[0] == 429
    assert login(client, "kim")[0] == 429
    with transaction(engine) as s:
        refused = [e for e in audit.entries(s) if e.action == "login.refused"]
        assert audit.verify(s).ok
    assert len(refused) == 1, [e.subject for e in refused]
    assert refused[0].detail["blocked"] == ["addr:testclient"]
    assert refused[0].detail["until"] == (T0 + timedelta(minutes=15)).isoformat()
    clock.now = T0 + timedelta(minutes=15, seconds=1)  # released; blocked again: recorded
    for i in range(5):
        assert login(client, f"again{i}", "wrong password!")[0] == 401
    assert login(client, "kim")[0] == 429
    with transaction(engine) as s:
        assert sum(e.action == "login.refused" for e in audit.entries(s)) == 2


def test_an_unknown_user_and_a_wrong_password_get_the_same_answer(client: TestClient) -> None:
    assert login(client, "nobody")[1] == login(client, "kim", "wrong password!")[1]


def test_an_issued_service_token_reads_contexts_only(client: TestClient, engine: Engine) -> None:
    admin = bearer(token_for(engine, "admin", now=T0))
    r = client.post("/users", headers=admin, json={"id": "ingest", "role": "service"})
    assert r.status_code == 201 and r.json()["has_password"] is False
    r = client.post("/users", headers=admin, json={"id": "n2", "role": "nurse"})
    assert r.status_code == 422 and "needs a password" in r.json()["reason"]
    issued = client.post("/users/ingest/tokens", headers=admin, json={"days": 365})
    assert issued.status_code == 201
    assert issued.json()["expires_at"].startswith("2026-06-01")
    h = bearer(issued.json()["token"])
    assert client.get("/units/demo/picu/context", headers=h).status_code == 200
    assert client.get("/patients", headers=h).status_code == 403
    assert client.post("/users/ingest/tokens", headers=admin,
                       json={"days": 401}).status_code == 422


def test_a_nurses_alert_action_is_a_command_by_that_nurse(
    client: TestClient, sent: Sent
) -> None:
    h = bearer(login(client)[1]["token"])
    r = client.post("/units/demo/picu/alerts/al-1/ack", headers=h)
    assert r.status_code == 202, r.text
    site, unit, cmd = sent[-1]
    assert (site, unit, cmd.action.value, cmd.alert_id, cmd.by, cmd.at) == (
        "demo", "picu", "ack", "al-1", "kim", T0)
    assert AlertCommand.model_validate_json(r.content) == cmd
    r = client.post("/units/demo/picu/alerts/al-1/snooze", headers=h, json={"minutes": 10})
    assert r.status_code == 202 and sent[-1][2].minutes == 10
    assert client.post("/units/demo/picu/alerts/al-1/snooze", headers=h,
                       json={}).status_code == 422
    r = client.post("/units/demo/picu/alerts/al-1/resolve", headers=h, json={})
    assert r.status_code == 422 and "reason" in r.json()["reason"]
    assert client.post("/units/demo/picu/alerts/al-1/resolve", headers=h,
                       json={"reason": "probe off"}).status_code == 202
    r = client.post("/units/demo/nope/alerts/al-1/ack", headers=h)
    assert r.status_code == 404
    n = len(sent)
    bo = bearer(login(client, "bo")[1]["token"])
    r = client.post("/units/demo/picu/alerts/al-1/ack", headers=bo)
    assert r.status_code == 403 and "act on alerts" in r.json()["reason"]
    assert len(sent) == n


def test_alert_actions_without_a_broker_are_503(engine: Engine) -> None:
    token = token_for(engine, "nurse", now=T0)
    with transaction(engine) as s:
        assets.add_site(s, SiteRequest(id="demo"), now=T0)
        assets.add_unit(s, UnitRequest.model_validate(
            {"site": "demo", "id": "picu", "time_zone": "UTC"}), now=T0)

    def broken(*_: object) -> None:
        raise ConnectionError("broker down")

    for publish, words in ((None, "no broker configured"), (broken, "broker down")):
        with TestClient(create_app(engine, clock=lambda: T0, publish_command=publish)) as c:
            r = c.post("/units/demo/picu/alerts/al-1/escalate", headers=bearer(token))
        assert r.status_code == 503 and words in r.json()["reason"]


@pytest.mark.parametrize(("password", "words"), [
    ("short", "at least 12"), ("x" * 257, "at most 256"), ("kimkimkimkimkim", "user's name"),
    ("aaaaaaaaaaaaaaaa", "4 different"), ("tab\there horse battery", "control"),
])
def test_the_password_policy(password: str, words: str) -> None:
    problem = users.password_problem("kim", password)
    assert problem is not None and words in problem
    with pytest.raises(Invalid, match=words):
        users._hash_password("kim", password)
    assert users.password_problem("kim", PW) is None


def test_a_restart_remembers_the_windows_failed_logins(
    client: TestClient, clock: Clock, engine: Engine
) -> None:
    for _ in range(3):
        assert login(client, password="wrong password!")[0] == 401
    policy = Policy(window=timedelta(minutes=15), per_user=3, per_address=5)
    with TestClient(create_app(engine, clock=clock, login_policy=policy)) as restarted:
        assert login(restarted)[0] == 429
        clock.now = T0 + timedelta(minutes=16)
    with TestClient(create_app(engine, clock=clock, login_policy=policy)) as later:
        assert login(later)[0] == 200


def test_a_burst_of_guesses_at_once_gets_no_more_than_the_limit(client: TestClient) -> None:
    codes: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def guess(i: int) -> None:
        start.wait(timeout=30)
        code = login(client, password=f"guess number {i}!")[0]
        with lock:
            codes.append(code)

    pool = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert sorted(codes) == [401] * 3 + [429] * 9, codes
