"""Topic builders and subscription filters. Nobody writes a topic string by hand.

Layout under the versioned root ``wm/v1`` (every level is an opaque id, never a patient id)::

    wm/v1/gw/{site}/{unit}/{gateway}/obs                 observation batches (QoS 1)
    wm/v1/gw/{site}/{unit}/{gateway}/status              gateway birth/heartbeat/LWT (retained)
    wm/v1/gw/{site}/{unit}/{gateway}/dev/{device}/status device status (retained)
    wm/v1/alerting/{site}/{unit}/score/{bed}             current score per bed (retained)
    wm/v1/alerting/{site}/{unit}/alert/{bed}/{alert}     open alert (retained; cleared on resolve)
    wm/v1/alerting/{site}/{unit}/events                  alert lifecycle events
    wm/v1/cmd/{site}/{unit}/ack                          acknowledge commands to alerting
    wm/v1/tech/{site}/{unit}/{service}                   technical events (gaps, unknown devices)
    wm/v1/dlq/{service}                                  dead letters, with the reason
    wm/v1/registry/{site}/{unit}/changed                 the unit context changed (ids only)

A gateway may publish only below ``{root}/gw/{its site}/{its unit}/{its id}/`` (one literal
rule per gateway in the broker's dynamic-security plugin; see docs/architecture.md, "Who may
publish what"). The topic is therefore the publisher's identity, and every consumer checks a
payload's claims against it with :func:`verify_gateway_payload`. Consumers shard by unit with
filters such as ``wm/v1/gw/site/picu/+/obs``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "wm/v1"
_LEVEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
ANY = "+"


def _lvl(value: str, what: str) -> str:
    if value != ANY and not _LEVEL.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a valid topic level id")
    return value


def _root(root: str | None) -> str:
    return ROOT if root is None else root


def gateway_obs(site: str, unit: str, gateway: str, *, root: str | None = None) -> str:
    g = _lvl(gateway, "gateway")
    return f"{_root(root)}/gw/{_lvl(site, 'site')}/{_lvl(unit, 'unit')}/{g}/obs"


def gateway_status(site: str, unit: str, gateway: str, *, root: str | None = None) -> str:
    g = _lvl(gateway, "gateway")
    return f"{_root(root)}/gw/{_lvl(site, 'site')}/{_lvl(unit, 'unit')}/{g}/status"


def device_status(
    site: str, unit: str, gateway: str, device: str, *, root: str | None = None
) -> str:
    base = gateway_status(site, unit, gateway, root=root).rsplit("/", 1)[0]
    return f"{base}/dev/{_lvl(device, 'device')}/status"


def gateway_acl_pattern(*, root: str | None = None) -> str:
    """Mosquitto password-file ACL pattern letting a gateway (username = gateway id) publish
    its subtree in *any* site and unit. Too wide for production (the devstack and the shipped
    config use one literal rule per gateway, see :func:`gateway_publish_topic`); kept for
    brokers that only have pattern ACLs."""
    return f"{_root(root)}/gw/+/+/%u/#"


def gateway_publish_topic(site: str, unit: str, gateway: str, *, root: str | None = None) -> str:
    """The one subtree a gateway may publish under (a literal ACL rule per gateway)."""
    if ANY in (site, unit, gateway):
        raise ValueError("a gateway's publish subtree is literal: no wildcard")
    return gateway_status(site, unit, gateway, root=root).rsplit("/", 1)[0] + "/#"


def score(site: str, unit: str, bed: str, *, root: str | None = None) -> str:
    return (
        f"{_root(root)}/alerting/{_lvl(site, 'site')}/{_lvl(unit, 'unit')}/score/{_lvl(bed, 'bed')}"
    )


def alert_state(site: str, unit: str, bed: str, alert_id: str, *, root: str | None = None) -> str:
    return (
        f"{_root(root)}/alerting/{_lvl(site, 'site')}/{_lvl(unit, 'unit')}/alert/"
        f"{_lvl(bed, 'bed')}/{_lvl(alert_id, 'alert')}"
    )


def alert_events(site: str, unit: str, *, root: str | None = None) -> str:
    return f"{_root(root)}/alerting/{_lvl(site, 'site')}/{_lvl(unit, 'unit')}/events"


def engine_status(site: str, unit: str, instance: str, *, root: str | None = None) -> str:
    """Retained ``EngineStatus`` of one alert engine instance for one unit it owns."""
    i = _lvl(instance, "instance")
    return f"{_root(root)}/alerting/{_lvl(site, 'site')}/{_lvl(unit, 'unit')}/engine/{i}"


def alert_sync(site: str, unit: str, nonce: str, *, root: str | None = None) -> str:
    """Where a restarting engine marks the end of the retained alerts it was sent."""
    u = f"{_lvl(site, 'site')}/{_lvl(unit, 'unit')}"
    return f"{_root(root)}/alerting/{u}/sync/{_lvl(nonce, 'nonce')}"


def ack_commands(site: str, unit: str, *, root: str | None = None) -> str:
    return f"{_root(root)}/cmd/{_lvl(site, 'site')}/{_lvl(unit, 'unit')}/ack"


def alert_commands(site: str, unit: str, *, root: str | None = None) -> str:
    """``AlertCommand``s of a unit (ack, snooze, escalate, resolve, receipt)."""
    return f"{_root(root)}/cmd/{_lvl(site, 'site')}/{_lvl(unit, 'unit')}/alert"


def charting(site: str, unit: str, *, root: str | None = None) -> str:
    """``ChartedSet``s of a unit (nurse-charted observations)."""
    return f"{_root(root)}/chart/{_lvl(site, 'site')}/{_lvl(unit, 'unit')}"


def context_changed(site: str, unit: str, *, root: str | None = None) -> str:
    """``ContextChanged`` of a unit, published by the registry (ids only, QoS 1, not retained):
    services reading the unit's context re-read it when one arrives."""
    return f"{_root(root)}/registry/{_lvl(site, 'site')}/{_lvl(unit, 'unit')}/changed"


def technical(site: str, unit: str, service: str, *, root: str | None = None) -> str:
    return (
        f"{_root(root)}/tech/{_lvl(site, 'site')}/{_lvl(unit, 'unit')}/{_lvl(service, 'service')}"
    )


def dead_letter(service: str, *, root: str | None = None) -> str:
    return f"{_root(root)}/dlq/{_lvl(service, 'service')}"


def shared(group: str, topic_filter: str) -> str:
    """An MQTT v5 shared subscription: members of ``group`` split the messages."""
    return f"$share/{_lvl(group, 'group')}/{topic_filter}"


@dataclass(frozen=True, slots=True)
class GatewayTopic:
    """A parsed gateway topic."""

    site: str
    unit: str
    gateway: str
    leaf: str  # "obs", "status" or "dev/<device>/status"
    device: str | None = None


def parse_gateway_topic(topic: str, *, root: str | None = None) -> GatewayTopic:
    """Parse a topic under ``{root}/gw/``; raises ``ValueError`` on anything else."""
    prefix = f"{_root(root)}/gw/"
    if not topic.startswith(prefix):
        raise ValueError(f"not a gateway topic: {topic!r}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) < 4 or not all(_LEVEL.fullmatch(p) for p in parts):
        raise ValueError(f"malformed gateway topic: {topic!r}")
    site, unit, gw = parts[0], parts[1], parts[2]
    rest = parts[3:]
    if rest in (["obs"], ["status"]):
        return GatewayTopic(site, unit, gw, rest[0])
    if len(rest) == 3 and rest[0] == "dev" and rest[2] == "status":
        return GatewayTopic(site, unit, gw, "/".join(rest), device=rest[1])
    raise ValueError(f"unknown gateway topic leaf: {topic!r}")


@dataclass(frozen=True, slots=True)
class AlertingTopic:
    """A parsed topic under ``{root}/alerting/``."""

    site: str
    unit: str
    leaf: str  # "score", "alert", "events" or "engine"
    bed: str | None = None
    alert_id: str | None = None
    instance: str | None = None  # the alert engine instance of an "engine" topic


def parse_alerting_topic(topic: str, *, root: str | None = None) -> AlertingTopic:
    """Parse a topic under ``{root}/alerting/``; raises ``ValueError`` on anything else."""
    prefix = f"{_root(root)}/alerting/"
    if not topic.startswith(prefix):
        raise ValueError(f"not an alerting topic: {topic!r}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) < 3 or not all(_LEVEL.fullmatch(p) for p in parts):
        raise ValueError(f"malformed alerting topic: {topic!r}")
    site, unit, rest = parts[0], parts[1], parts[2:]
    if rest == ["events"]:
        return AlertingTopic(site, unit, "events")
    if len(rest) == 2 and rest[0] == "score":
        return AlertingTopic(site, unit, "score", bed=rest[1])
    if len(rest) == 3 and rest[0] == "alert":
        return AlertingTopic(site, unit, "alert", bed=rest[1], alert_id=rest[2])
    if len(rest) == 2 and rest[0] == "engine":
        return AlertingTopic(site, unit, "engine", instance=rest[1])
    raise ValueError(f"unknown alerting topic leaf: {topic!r}")


def parse_topic(topic: str, *, root: str | None = None) -> GatewayTopic | AlertingTopic:
    """Parse any topic a consumer of gateway and alerting traffic subscribes to."""
    if topic.startswith(f"{_root(root)}/alerting/"):
        return parse_alerting_topic(topic, root=root)
    return parse_gateway_topic(topic, root=root)


class IdentityMismatch(ValueError):
    """A payload names another gateway, device, site or unit than the topic it came on."""


def verify_gateway_payload(
    topic: str,
    gateway_id: str,
    *,
    device_id: str | None = None,
    site: str | None = None,
    unit: str | None = None,
    root: str | None = None,
) -> GatewayTopic:
    """The one identity check of every consumer: the topic is the identity, the payload agrees.

    The broker's ACL binds a gateway's credentials to its own topic subtree, so the topic
    says who published; a ``gateway_id`` (or ``device_id``) in the payload is only a claim.
    Returns the parsed topic; raises ``IdentityMismatch`` when the payload disagrees with it
    (or the topic is outside the consumer's ``site``/``unit``), and ``ValueError`` for a topic
    that is not a gateway topic at all.
    """
    t = parse_gateway_topic(topic, root=root)
    check_gateway_identity(t, gateway_id, device_id=device_id, site=site, unit=unit)
    return t


def check_gateway_identity(
    t: GatewayTopic,
    gateway_id: str,
    *,
    device_id: str | None = None,
    site: str | None = None,
    unit: str | None = None,
) -> None:
    """:func:`verify_gateway_payload` for a topic already parsed (the consumers' hot path)."""
    if gateway_id != t.gateway:
        raise IdentityMismatch(
            f"payload gateway_id {gateway_id!r} disagrees with the topic's gateway {t.gateway!r}"
        )
    if device_id is not None and t.device is not None and device_id != t.device:
        raise IdentityMismatch(
            f"payload device_id {device_id!r} disagrees with the topic's device {t.device!r}"
        )
    if (site is not None and t.site != site) or (unit is not None and t.unit != unit):
        raise IdentityMismatch(f"topic of {t.site}/{t.unit} is outside {site}/{unit}")
