"""Who may do what: the registry API's permission table, written once, as data.

Every route of the API is named here by its method and path template, with the one permission
it needs (``RULES``); each permission lists the roles that hold it (``GRANTS``). The API's
authorisation dependency looks a request's route up here and nowhere else, and refuses a route
missing from the table (a test walks the OpenAPI document so a new route without a rule fails).

Pure: no database, no HTTP.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "GRANTS",
    "RULES",
    "SERVICES",
    "STAFF",
    "Permission",
    "Role",
    "allowed",
    "refusal",
    "rule_for",
]


class Role(StrEnum):
    NURSE = "nurse"
    NURSE_IN_CHARGE = "nurse_in_charge"
    BIOMED = "biomed"
    UNIT_MANAGER = "unit_manager"
    ADMIN = "admin"
    #: a process (ingest, console) reading unit contexts with a long-lived token
    SERVICE = "service"
    #: the alert engine's process: a service that also reads the children's dates of birth in
    #: a unit context (its scoring bands need ages; nobody else's process gets them)
    ALERT_ENGINE = "alert_engine"


class Permission(StrEnum):
    PUBLIC = "public"  # no token: POST /login
    SELF = "self"  # any valid token: who am I, change my own password
    READ = "read"  # the registry's records (assets, patients, admissions, history)
    CONTEXT = "context"  # a unit context (what the services read)
    DEVICE_SEEN = "device_seen"  # a service heard from a device
    STRUCTURE = "structure"  # sites and units
    ASSETS = "assets"  # gateways, beds, devices and their assignments
    CARE = "care"  # patients, admit, transfer, discharge
    ALERTS = "alerts"  # acknowledge, snooze, escalate, resolve an alert
    CHART = "chart"  # chart a set of observations for a bed (published as the registry)
    USERS = "users"  # user accounts and their tokens
    AUDIT = "audit"  # read the audit log
    CREDENTIALS = "credentials"  # enrol, rotate, revoke a gateway's broker identity
    #: not a route's: the children's dates of birth in a unit context (without it, null)
    DATES_OF_BIRTH = "dates_of_birth"


STAFF: Final = frozenset({Role.NURSE, Role.NURSE_IN_CHARGE, Role.BIOMED, Role.UNIT_MANAGER,
                          Role.ADMIN})
NURSES: Final = frozenset({Role.NURSE, Role.NURSE_IN_CHARGE})
#: identities of processes, with a token and no password
SERVICES: Final = frozenset({Role.SERVICE, Role.ALERT_ENGINE})

GRANTS: Final[dict[Permission, frozenset[Role]]] = {
    Permission.PUBLIC: frozenset(Role),
    Permission.SELF: frozenset(Role),
    Permission.READ: STAFF,
    Permission.CONTEXT: STAFF | SERVICES,
    Permission.DEVICE_SEEN: frozenset({Role.SERVICE, Role.BIOMED}),
    Permission.STRUCTURE: frozenset({Role.UNIT_MANAGER, Role.ADMIN}),
    Permission.ASSETS: frozenset({Role.BIOMED, Role.UNIT_MANAGER}),
    Permission.CARE: NURSES | {Role.UNIT_MANAGER},
    Permission.ALERTS: NURSES,
    Permission.CHART: NURSES,
    Permission.USERS: frozenset({Role.ADMIN}),
    Permission.AUDIT: frozenset({Role.ADMIN, Role.UNIT_MANAGER}),
    Permission.CREDENTIALS: frozenset({Role.BIOMED, Role.ADMIN}),
    Permission.DATES_OF_BIRTH: STAFF | {Role.ALERT_ENGINE},
}

#: why a role lacks a permission, said in the 403 answer
WHAT: Final[dict[Permission, str]] = {
    Permission.READ: "read the registry's records",
    Permission.CONTEXT: "read a unit context",
    Permission.DEVICE_SEEN: "report a device as seen",
    Permission.STRUCTURE: "manage sites and units",
    Permission.ASSETS: "manage gateways, beds and devices",
    Permission.CARE: "admit, transfer or discharge patients",
    Permission.ALERTS: "act on alerts",
    Permission.CHART: "chart observations",
    Permission.USERS: "manage users",
    Permission.AUDIT: "read the audit log",
    Permission.CREDENTIALS: "enrol, rotate or revoke a gateway's broker identity",
    Permission.DATES_OF_BIRTH: "read dates of birth in a unit context",
}

P = Permission
RULES: Final[dict[tuple[str, str], Permission]] = {
    ("POST", "/login"): P.PUBLIC,
    ("GET", "/me"): P.SELF,
    ("POST", "/me/password"): P.SELF,
    # sites and units
    ("GET", "/sites"): P.READ,
    ("POST", "/sites"): P.STRUCTURE,
    ("GET", "/sites/{site}"): P.READ,
    ("POST", "/sites/{site}/retire"): P.STRUCTURE,
    ("GET", "/units"): P.READ,
    ("POST", "/units"): P.STRUCTURE,
    ("GET", "/units/{site}/{unit}"): P.READ,
    ("POST", "/units/{site}/{unit}/retire"): P.STRUCTURE,
    ("GET", "/units/{site}/{unit}/context"): P.CONTEXT,
    # gateways, beds, devices
    ("GET", "/units/{site}/{unit}/gateways"): P.READ,
    ("POST", "/units/{site}/{unit}/gateways"): P.ASSETS,
    ("GET", "/gateways"): P.READ,
    ("GET", "/gateways/{gateway}"): P.READ,
    ("POST", "/gateways/{gateway}/retire"): P.ASSETS,
    ("POST", "/gateways/{gateway}/enroll"): P.CREDENTIALS,
    ("POST", "/gateways/{gateway}/rotate"): P.CREDENTIALS,
    ("POST", "/gateways/{gateway}/revoke"): P.CREDENTIALS,
    ("GET", "/units/{site}/{unit}/beds"): P.READ,
    ("POST", "/units/{site}/{unit}/beds"): P.ASSETS,
    ("GET", "/units/{site}/{unit}/beds/{bed}"): P.READ,
    ("POST", "/units/{site}/{unit}/beds/{bed}/retire"): P.ASSETS,
    ("GET", "/devices"): P.READ,
    ("POST", "/devices"): P.ASSETS,
    ("GET", "/devices/{device}"): P.READ,
    ("PATCH", "/devices/{device}"): P.ASSETS,
    ("POST", "/devices/{device}/retire"): P.ASSETS,
    ("POST", "/devices/{device}/seen"): P.DEVICE_SEEN,
    ("GET", "/devices/{device}/assignments"): P.READ,
    ("POST", "/devices/{device}/unassign"): P.ASSETS,
    ("GET", "/devices/{device}/at"): P.READ,
    ("POST", "/assignments"): P.ASSETS,
    # patients and admissions
    ("GET", "/patients"): P.READ,
    ("POST", "/patients"): P.CARE,
    ("GET", "/patients/{patient}"): P.READ,
    ("GET", "/admissions"): P.READ,
    ("POST", "/admissions"): P.CARE,
    ("GET", "/admissions/{admission}"): P.READ,
    ("POST", "/admissions/{admission}/transfer"): P.CARE,
    ("POST", "/admissions/{admission}/discharge"): P.CARE,
    # alerts: a nurse's command, handed to the broker
    ("POST", "/units/{site}/{unit}/alerts/{alert_id}/ack"): P.ALERTS,
    ("POST", "/units/{site}/{unit}/alerts/{alert_id}/snooze"): P.ALERTS,
    ("POST", "/units/{site}/{unit}/alerts/{alert_id}/escalate"): P.ALERTS,
    ("POST", "/units/{site}/{unit}/alerts/{alert_id}/resolve"): P.ALERTS,
    # charting: a nurse's set, handed to the broker
    ("POST", "/units/{site}/{unit}/charted-sets"): P.CHART,
    # users and the audit log
    ("GET", "/users"): P.USERS,
    ("POST", "/users"): P.USERS,
    ("GET", "/users/{user}"): P.USERS,
    ("POST", "/users/{user}/disable"): P.USERS,
    ("POST", "/users/{user}/enable"): P.USERS,
    ("POST", "/users/{user}/tokens"): P.USERS,
    ("GET", "/audit"): P.AUDIT,
    ("GET", "/audit/verify"): P.AUDIT,
}


def rule_for(method: str, path: str) -> Permission | None:
    """The permission a route needs; ``None`` for a route without a rule (refuse it)."""
    return RULES.get((method.upper(), path))


def allowed(role: str, permission: Permission) -> bool:
    return role in GRANTS[permission]


def refusal(role: str, permission: Permission) -> str | None:
    """``None`` if ``role`` holds ``permission``, else the one-sentence reason it does not."""
    if allowed(role, permission):
        return None
    who = sorted(GRANTS[permission])
    return (f"role {role} may not {WHAT.get(permission, permission.value)} "
            f"(needs one of: {', '.join(who)})")
