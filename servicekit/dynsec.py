"""Mosquitto's dynamic-security plugin: who may do what on the broker, and the commands that
say so (pure: no I/O; the devstack, the registry and ``deploy/mosquitto/wardwatch-dynsec.sh``
share this one model).

* :data:`SERVICE_ROLES`: each service identity and the topics it needs, nothing more.
* :class:`GatewayScope`: one role per gateway with *literal* ACLs (mosquitto 2.0.11 expands
  neither ``%u`` nor ``%c`` in dynsec ACLs): publish only below its own
  ``{root}/gw/{site}/{unit}/{gateway}/``; a gateway subscribes to nothing.
* Command builders for the ``$CONTROL/dynamic-security/v1`` topic and :func:`check`, which turns
  the plugin's answers into :class:`DynsecError` with the plugin's own words ("Client not
  found", "Role already exists") and the command that failed.

The plugin answers every command on ``$CONTROL/dynamic-security/v1/response`` as
``{"responses": [{"command": ..., "error"?: ..., "data"?: ..., "correlationData"?: ...}]}``;
a client reads it only with a ``publishClientReceive`` grant on ``$CONTROL/dynamic-security/#``
(2.0.11, measured), which the provisioning roles carry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wardwire import topics

__all__ = [
    "CONTROL_TOPIC",
    "DEFAULT_ACL_ACCESS",
    "GATEWAY_ROLE_PREFIX",
    "NOT_FOUND",
    "PROVISIONER",
    "REGISTRY",
    "RESPONSE_TOPIC",
    "SERVICE_ROLES",
    "SERVICE_USERS",
    "Acl",
    "DynsecError",
    "GatewayScope",
    "check",
    "create_client",
    "create_role",
    "delete_client",
    "delete_role",
    "disable_client",
    "fingerprint",
    "foreign_client",
    "gateway_clients",
    "gateway_revoke",
    "gateway_upsert",
    "get_client",
    "list_clients",
    "matches_stored",
    "new_password",
    "parse_responses",
    "set_client_password",
    "stored_password",
    "upsert_tolerates",
]

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
#: the devstack's and the deploy script's plugin admin
PROVISIONER = "provisioner"
#: the registry service: enrols gateways over the control topic, publishes change events
REGISTRY = "registry"
GATEWAY_ROLE_PREFIX = "gateway-"
#: the plugin's answers for something that is not there (idempotent deletes tolerate them)
NOT_FOUND = frozenset({"Client not found", "Role not found"})
_LEVEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


@dataclass(frozen=True, slots=True)
class Acl:
    """One dynamic-security ACL entry (``publishClientSend``, ``subscribePattern``, …)."""

    acltype: str
    topic: str
    allow: bool = True

    def as_json(self) -> dict[str, object]:
        return {"acltype": self.acltype, "topic": self.topic, "allow": self.allow}


def _send(topic: str) -> Acl:
    return Acl("publishClientSend", topic)


def _sub(topic: str) -> Acl:
    return Acl("subscribePattern", topic)


_CONTROL_ADMIN = (
    _send("$CONTROL/dynamic-security/#"),
    _sub("$CONTROL/dynamic-security/#"),
    # the plugin's replies are delivered only with an explicit receive grant (2.0.11)
    Acl("publishClientReceive", "$CONTROL/dynamic-security/#"),
)

#: Service identities and their roles. Services are trusted and may connect with any client id
#: (ingest workers ``ingest-1``, ``<worker>-seq-audit``, ``alerting-<site>-<unit>`` all share
#: one identity). Topic roots are wildcards here because every test runs under its own root;
#: the production roles (``deploy/mosquitto/wardwatch-dynsec.sh``) name ``wm/v1``. Every
#: service reads the registry's change events (``{root}/registry/#``: ids only).
SERVICE_ROLES: dict[str, tuple[Acl, ...]] = {
    "probe": (_sub("$SYS/#"),),
    "admin": (_send("#"), _sub("#")),
    "ingest": (
        _sub("+/v1/gw/#"),
        _sub("$share/+/+/v1/gw/#"),  # dynsec checks the whole $share/… filter
        _sub("+/v1/chart/#"),  # nurses' charted sets, stored in the no-expiry record
        _sub("$share/+/+/v1/chart/#"),
        _sub("+/v1/registry/#"),
        _send("+/v1/dlq/#"),
        _send("+/v1/tech/#"),
    ),
    "alerting": (
        _sub("+/v1/gw/#"),
        _sub("+/v1/cmd/#"),
        _sub("+/v1/chart/#"),  # charted sets, scored with the device values
        _sub("+/v1/alerting/#"),
        _sub("+/v1/tech/+/+/ingest"),  # ingest's seq_gap / outbox_reset findings
        _sub("+/v1/registry/#"),
        _send("+/v1/alerting/#"),
        _send("+/v1/dlq/#"),
        _send("+/v1/tech/#"),
    ),
    # the nurses' board reads the gateways' data and status, the alert engine's scores,
    # alerts and status, and the registry's change events. It publishes nothing: a nurse's
    # command or charted set goes through the registry's API as that nurse (the registry
    # publishes it), so holding this identity's password acts for nobody
    "console": (
        _sub("+/v1/gw/#"),
        _sub("+/v1/alerting/#"),
        _sub("+/v1/registry/#"),
    ),
    "demo": (_sub("+/v1/#"),),
    # the registry: the plugin's admin (it enrols, rotates and revokes gateways) and the
    # publisher of change events; it reads no data topic
    # (and the nurses' alert actions it authenticates: POST /units/…/alerts/…, sent as commands)
    # (and the nurses' charted sets: POST /units/…/charted-sets, on the unit's charting topic)
    REGISTRY: (*_CONTROL_ADMIN, _send("+/v1/registry/#"), _send("+/v1/cmd/+/+/alert"),
               _send("+/v1/chart/+/+")),
    # test-only: many simulated gateways over a few connections (never in a shipped config)
    "loadgen": (_send("+/v1/gw/#"),),
    PROVISIONER: _CONTROL_ADMIN,
}
SERVICE_USERS = tuple(SERVICE_ROLES)

#: Denied unless a role allows it; delivery is allowed (what a client may subscribe to is the
#: read check).
DEFAULT_ACL_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": True,
    "subscribe": False,
    "unsubscribe": True,
}


@dataclass(frozen=True, slots=True)
class GatewayScope:
    """Where a gateway may publish: its own subtree ``{root}/gw/{site}/{unit}/{gateway}/#``
    and nothing else (no wildcard anywhere: each gateway gets literal ACLs)."""

    gateway: str
    site: str
    unit: str
    root: str = topics.ROOT

    def __post_init__(self) -> None:
        for what, value in (("gateway", self.gateway), ("site", self.site), ("unit", self.unit)):
            if not _LEVEL.fullmatch(value):
                raise ValueError(f"{what} {value!r} is not a literal topic level id")
        levels = self.root.split("/")
        if not all(_LEVEL.fullmatch(lv) for lv in levels):
            raise ValueError(f"topic root {self.root!r} is not literal (levels of ids)")
        if self.gateway in SERVICE_ROLES:
            raise ValueError(f"{self.gateway!r} is a service identity, not a gateway")

    @property
    def subtree(self) -> str:
        return topics.gateway_publish_topic(self.site, self.unit, self.gateway, root=self.root)

    def acls(self) -> tuple[Acl, ...]:
        # Gateways subscribe to nothing (the edge agent only publishes: observations, device
        # and gateway status, its last will); publishing is confined to the own subtree.
        return (_send(self.subtree),)

    @property
    def role(self) -> str:
        return GATEWAY_ROLE_PREFIX + self.gateway


# -- secrets ----------------------------------------------------------------------------------
def new_password() -> str:
    """A fresh broker password: 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def fingerprint(secret: str) -> str:
    """What may be kept and shown about a secret: ``sha256:`` and the first 16 hex digits of
    its SHA-256 (identifies which credential a gateway holds; a 256-bit random password cannot
    be recovered from it)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def stored_password(password: str, *, salt: bytes | None = None) -> dict[str, object]:
    """The plugin's stored form of a password: PBKDF2-HMAC-SHA512, 12-byte salt, 101
    iterations (what ``mosquitto_ctrl dynsec init`` writes on 2.0.11; checked against it)."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": 101,
    }


def matches_stored(password: str, stored: Mapping[str, object]) -> bool:
    """True if ``password`` is the one ``stored`` (the plugin's form) was made from."""
    salt = base64.b64decode(str(stored["salt"]))
    iterations = int(str(stored["iterations"]))
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return hmac.compare_digest(base64.b64encode(digest).decode(), str(stored["password"]))


# -- commands ---------------------------------------------------------------------------------
Command = dict[str, Any]


def create_role(name: str, acls: Iterable[Acl]) -> Command:
    return {"command": "createRole", "rolename": name, "acls": [a.as_json() for a in acls]}


def delete_role(name: str) -> Command:
    return {"command": "deleteRole", "rolename": name}


def create_client(
    username: str, password: str, *, clientid: str | None = None, roles: Sequence[str] = ()
) -> Command:
    cmd: Command = {
        "command": "createClient",
        "username": username,
        "password": password,
        "roles": [{"rolename": r} for r in roles],
    }
    if clientid is not None:
        cmd["clientid"] = clientid
    return cmd


def delete_client(username: str) -> Command:
    """Delete a client: its live connection is disconnected at once."""
    return {"command": "deleteClient", "username": username}


def disable_client(username: str) -> Command:
    return {"command": "disableClient", "username": username}


def set_client_password(username: str, password: str) -> Command:
    return {"command": "setClientPassword", "username": username, "password": password}


def get_client(username: str) -> Command:
    return {"command": "getClient", "username": username}


def list_clients() -> Command:
    """Every client with its roles (``verbose``); unpaged."""
    return {"command": "listClients", "verbose": True, "count": -1, "offset": 0}


def gateway_upsert(scope: GatewayScope, password: str) -> list[Command]:
    """Make the broker hold exactly this gateway identity, whatever it held before: its role
    with the scope's literal ACLs, the client (username = bound client id = gateway id) with
    ``password``. The first two commands may answer "not found" (nothing to replace); a
    connected gateway with the old credentials is disconnected by the delete."""
    return [
        delete_client(scope.gateway),
        delete_role(scope.role),
        create_role(scope.role, scope.acls()),
        create_client(scope.gateway, password, clientid=scope.gateway, roles=[scope.role]),
    ]


def gateway_revoke(gateway: str) -> list[Command]:
    """Remove a gateway's identity (its live session is disconnected and it cannot connect
    again); "not found" answers mean it was already gone."""
    return [delete_client(gateway), delete_role(GATEWAY_ROLE_PREFIX + gateway)]


# -- answers ----------------------------------------------------------------------------------
class DynsecError(RuntimeError):
    """The plugin refused a command (or answered something unreadable); the message names the
    command and gives the plugin's own reason."""

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"broker refused {command}: {reason}")
        self.command = command
        self.reason = reason


def parse_responses(payload: bytes | str) -> list[dict[str, Any]]:
    """The ``responses`` of one message on the response topic; :class:`DynsecError` if it is
    not the plugin's JSON shape."""
    import json

    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DynsecError("(response)", f"not JSON: {exc}") from None
    responses = doc.get("responses") if isinstance(doc, dict) else None
    if not isinstance(responses, list) or not all(isinstance(r, dict) for r in responses):
        raise DynsecError("(response)", "no list of responses in the answer")
    return responses


def check(
    commands: Sequence[Mapping[str, Any]],
    responses: Sequence[Mapping[str, Any]],
    *,
    tolerate: Mapping[str, frozenset[str]] | None = None,
) -> list[Mapping[str, Any]]:
    """Pair each command with its response (same order, same command name) and raise
    :class:`DynsecError` for the first refusal not in ``tolerate[command]``.

    ``tolerate`` maps a command name to the errors that mean "already so" (the deletes of an
    upsert tolerate :data:`NOT_FOUND`)."""
    tolerate = tolerate or {}
    if len(responses) != len(commands):
        raise DynsecError("(batch)", f"{len(responses)} responses to {len(commands)} commands")
    for cmd, resp in zip(commands, responses, strict=True):
        name = str(cmd["command"])
        if resp.get("command") != name:
            raise DynsecError(name, f"answered as {resp.get('command')!r}")
        error = resp.get("error")
        if error and str(error) not in tolerate.get(name, frozenset()):
            raise DynsecError(name, str(error))
    return list(responses)


def upsert_tolerates() -> dict[str, frozenset[str]]:
    """What :func:`gateway_upsert` and :func:`gateway_revoke` answers may say without failing."""
    return {"deleteClient": NOT_FOUND, "deleteRole": NOT_FOUND}


def foreign_client(get_response: Mapping[str, Any], gateway: str) -> str | None:
    """Why the broker client named ``gateway`` (a ``getClient`` answer) is *not* that gateway's
    identity, or ``None`` when it is (its one role is ``gateway-{gateway}``, in no group) or
    when there is no such client. A gateway's id may be any literal id, so it can name a
    service's client (``ingest``, ``registry``, the plugin admin, a production ``ingest-2``):
    the gateway commands must never delete or replace such a client."""
    error = get_response.get("error")
    if error:
        if str(error) in NOT_FOUND:
            return None
        raise DynsecError("getClient", str(error))
    data = get_response.get("data")
    client = data.get("client") if isinstance(data, dict) else None
    if not isinstance(client, dict):
        raise DynsecError("getClient", "no client in the answer")
    roles = sorted(str(r.get("rolename")) for r in client.get("roles") or []
                   if isinstance(r, dict))
    groups = sorted(str(g.get("groupname")) for g in client.get("groups") or []
                    if isinstance(g, dict))
    if roles == [GATEWAY_ROLE_PREFIX + gateway] and not groups:
        return None
    held = ", ".join([*(f"role {r}" for r in roles), *(f"group {g}" for g in groups)])
    return (f"the broker client {gateway!r} is not a gateway identity ({held or 'no role'}): "
            "a service's or an administrator's, left as it is")


def gateway_clients(list_response: Mapping[str, Any]) -> dict[str, str | None]:
    """From a verbose ``listClients`` answer: each client holding a gateway role, mapped to the
    gateway its role names (``None`` when the client has gateway roles for another id than its
    own username, or several). Service identities are left out."""
    data = list_response.get("data")
    clients = data.get("clients") if isinstance(data, dict) else None
    if not isinstance(clients, list):
        raise DynsecError("listClients", "no client list in the answer")
    found: dict[str, str | None] = {}
    for c in clients:
        if not isinstance(c, dict) or not isinstance(c.get("username"), str):
            raise DynsecError("listClients", f"unreadable client entry {c!r}")
        roles = [
            str(r.get("rolename")) for r in c.get("roles") or [] if isinstance(r, dict)
        ]
        gw_roles = [r for r in roles if r.startswith(GATEWAY_ROLE_PREFIX)]
        if not gw_roles:
            continue
        username = str(c["username"])
        ok = gw_roles == [GATEWAY_ROLE_PREFIX + username]
        found[username] = username if ok else None
    return found
