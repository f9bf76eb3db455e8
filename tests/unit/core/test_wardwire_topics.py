"""Topic builders and the gateway-topic parser."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardwire import topics
from wardwire.topics import GatewayTopic, parse_gateway_topic

idents = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z", fullmatch=True)
roots = st.none() | st.sampled_from(["wm/v1", "t0123456789/v1", "site-a/wm/v1"])

BAD_IDS = [
    "",
    "a/b",
    "a+b",
    "a#b",
    "#",
    "$SYS",
    "a$b",
    "a b",
    " a",
    "a\t",
    "-a",
    "_a",
    ".",
    "é",
    "x" * 65,
]


def test_layout_with_default_root() -> None:
    assert topics.gateway_obs("s", "picu", "gw-1") == "wm/v1/gw/s/picu/gw-1/obs"
    assert topics.gateway_status("s", "picu", "gw-1") == "wm/v1/gw/s/picu/gw-1/status"
    assert (
        topics.device_status("s", "picu", "gw-1", "mon-1")
        == "wm/v1/gw/s/picu/gw-1/dev/mon-1/status"
    )
    assert topics.score("s", "picu", "bed01") == "wm/v1/alerting/s/picu/score/bed01"
    assert topics.alert_state("s", "picu", "bed01", "a1") == "wm/v1/alerting/s/picu/alert/bed01/a1"
    assert topics.alert_events("s", "picu") == "wm/v1/alerting/s/picu/events"
    assert topics.ack_commands("s", "picu") == "wm/v1/cmd/s/picu/ack"
    assert topics.technical("s", "picu", "ingest") == "wm/v1/tech/s/picu/ingest"
    assert topics.dead_letter("ingest") == "wm/v1/dlq/ingest"
    assert topics.gateway_acl_pattern() == "wm/v1/gw/+/+/%u/#"
    assert topics.shared("ingest", "wm/v1/gw/s/picu/+/obs") == "$share/ingest/wm/v1/gw/s/picu/+/obs"


def test_custom_root() -> None:
    r = "t42/v1"
    assert topics.gateway_obs("s", "u", "g", root=r) == "t42/v1/gw/s/u/g/obs"
    assert topics.gateway_status("s", "u", "g", root=r) == "t42/v1/gw/s/u/g/status"
    assert topics.device_status("s", "u", "g", "d", root=r) == "t42/v1/gw/s/u/g/dev/d/status"
    assert topics.score("s", "u", "b", root=r) == "t42/v1/alerting/s/u/score/b"
    assert topics.alert_state("s", "u", "b", "a", root=r) == "t42/v1/alerting/s/u/alert/b/a"
    assert topics.alert_events("s", "u", root=r) == "t42/v1/alerting/s/u/events"
    assert topics.ack_commands("s", "u", root=r) == "t42/v1/cmd/s/u/ack"
    assert topics.technical("s", "u", "x", root=r) == "t42/v1/tech/s/u/x"
    assert topics.dead_letter("x", root=r) == "t42/v1/dlq/x"
    assert topics.gateway_acl_pattern(root=r) == "t42/v1/gw/+/+/%u/#"


def test_wildcard_level_is_allowed_for_subscriptions() -> None:
    assert topics.gateway_obs("s", "u", topics.ANY) == "wm/v1/gw/s/u/+/obs"
    assert topics.gateway_obs(topics.ANY, topics.ANY, topics.ANY) == "wm/v1/gw/+/+/+/obs"
    assert topics.device_status("s", "u", "+", "+") == "wm/v1/gw/s/u/+/dev/+/status"


BUILDERS: dict[str, Callable[[str], str]] = {
    "gateway_obs.site": lambda x: topics.gateway_obs(x, "u", "g"),
    "gateway_obs.unit": lambda x: topics.gateway_obs("s", x, "g"),
    "gateway_obs.gateway": lambda x: topics.gateway_obs("s", "u", x),
    "gateway_status.gateway": lambda x: topics.gateway_status("s", "u", x),
    "device_status.gateway": lambda x: topics.device_status("s", "u", x, "d"),
    "device_status.device": lambda x: topics.device_status("s", "u", "g", x),
    "score.bed": lambda x: topics.score("s", "u", x),
    "alert_state.bed": lambda x: topics.alert_state("s", "u", x, "a"),
    "alert_state.alert": lambda x: topics.alert_state("s", "u", "b", x),
    "alert_events.unit": lambda x: topics.alert_events("s", x),
    "ack_commands.site": lambda x: topics.ack_commands(x, "u"),
    "technical.service": lambda x: topics.technical("s", "u", x),
    "dead_letter.service": lambda x: topics.dead_letter(x),
    "shared.group": lambda x: topics.shared(x, "wm/v1/gw/+/+/+/obs"),
}


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_builders_reject_unsafe_ids(builder: str, bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid topic level id"):
        BUILDERS[builder](bad)


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_builders_reject_trailing_newline(builder: str) -> None:
    with pytest.raises(ValueError):
        BUILDERS[builder]("gw-1\n")


def test_parse_rejects_trailing_newline_in_a_level() -> None:
    with pytest.raises(ValueError):
        parse_gateway_topic("wm/v1/gw/s/u/gw-1\n/obs")


@given(site=idents, unit=idents, gw=idents, dev=idents, root=roots)
@settings(max_examples=60, deadline=None)
def test_parse_inverts_builders(site: str, unit: str, gw: str, dev: str, root: str | None) -> None:
    assert parse_gateway_topic(topics.gateway_obs(site, unit, gw, root=root), root=root) == (
        GatewayTopic(site, unit, gw, "obs")
    )
    assert parse_gateway_topic(topics.gateway_status(site, unit, gw, root=root), root=root) == (
        GatewayTopic(site, unit, gw, "status")
    )
    t = topics.device_status(site, unit, gw, dev, root=root)
    assert parse_gateway_topic(t, root=root) == GatewayTopic(
        site, unit, gw, f"dev/{dev}/status", device=dev
    )


@given(st.text(alphabet="wm/v1gwsudev+#$ obstat\n", max_size=60) | st.text(max_size=60))
@settings(max_examples=150, deadline=None)
def test_parse_raises_only_value_error_and_accepts_only_buildable_topics(text: str) -> None:
    try:
        p = parse_gateway_topic(text)
    except ValueError:
        return
    if p.device is None:
        build = topics.gateway_obs if p.leaf == "obs" else topics.gateway_status
        assert build(p.site, p.unit, p.gateway) == text
    else:
        assert topics.device_status(p.site, p.unit, p.gateway, p.device) == text


@pytest.mark.parametrize(
    "topic",
    [
        "wm/v2/gw/s/u/g/obs",
        "xwm/v1/gw/s/u/g/obs",
        "wm/v1/alerting/s/u/score/b",
        "wm/v1/gw/s/u/g",
        "wm/v1/gw/s/u/g/",
        "wm/v1/gw/s/u/g/obs/",
        "wm/v1/gw/s/u/g/obs/extra",
        "wm/v1/gw/s/u/g/state",
        "wm/v1/gw/s/u/g/dev/d",
        "wm/v1/gw/s/u/g/dev/d/obs",
        "wm/v1/gw/s/u/g/dev/d/status/x",
        "wm/v1/gw/s/u/+/obs",
        "wm/v1/gw/s/u/#",
        "wm/v1/gw/s//g/obs",
        "wm/v1/gw/s/u/g b/obs",
        "",
    ],
)
def test_parse_rejects_other_topics(topic: str) -> None:
    with pytest.raises(ValueError):
        parse_gateway_topic(topic)


def test_parse_with_custom_root() -> None:
    t = topics.gateway_obs("s", "u", "g", root="t1/v1")
    assert parse_gateway_topic(t, root="t1/v1") == GatewayTopic("s", "u", "g", "obs")
    with pytest.raises(ValueError, match="not a gateway topic"):
        parse_gateway_topic(t)  # default root
    with pytest.raises(ValueError):
        parse_gateway_topic(topics.gateway_obs("s", "u", "g"), root="t1/v1")


def test_gateway_publish_topic_is_literal() -> None:
    assert topics.gateway_publish_topic("s", "u", "gw1") == "wm/v1/gw/s/u/gw1/#"
    with pytest.raises(ValueError):
        topics.gateway_publish_topic("+", "u", "gw1")


def test_verify_gateway_payload() -> None:
    t = topics.gateway_obs("s", "u", "gw1")
    assert topics.verify_gateway_payload(t, "gw1", site="s", unit="u").gateway == "gw1"
    with pytest.raises(topics.IdentityMismatch, match="gw2"):
        topics.verify_gateway_payload(t, "gw2")
    with pytest.raises(topics.IdentityMismatch, match="outside"):
        topics.verify_gateway_payload(t, "gw1", site="s", unit="other")
    d = topics.device_status("s", "u", "gw1", "d1")
    with pytest.raises(topics.IdentityMismatch, match="device"):
        topics.verify_gateway_payload(d, "gw1", device_id="d2")
    with pytest.raises(ValueError):
        topics.verify_gateway_payload("elsewhere/x", "gw1")


# -- alerting topics are parsed, never matched by suffix ------------------------------------
def test_alerting_topics_parse_back_to_their_parts() -> None:
    from wardwire.topics import AlertingTopic, parse_alerting_topic, parse_topic

    r = "t1/v1"
    assert parse_alerting_topic(topics.score("s", "u", "b1", root=r), root=r) == AlertingTopic(
        "s", "u", "score", bed="b1"
    )
    assert parse_topic(topics.alert_state("s", "u", "b1", "a-9", root=r), root=r) == (
        AlertingTopic("s", "u", "alert", bed="b1", alert_id="a-9")
    )
    assert parse_topic(topics.alert_events("s", "u", root=r), root=r).leaf == "events"
    assert parse_topic(topics.gateway_obs("s", "u", "g", root=r), root=r).leaf == "obs"


@pytest.mark.parametrize(
    "topic",
    [
        "t1/v1/alerting/s/u/score",  # no bed
        "t1/v1/alerting/s/u/score/b1/extra",
        "t1/v1/alerting/s/u/alert/b1",  # no alert id
        "t1/v1/alerting/s/u/events/x",
        "t1/v1/alerting/s/u/obs",  # a gateway leaf under alerting
        "t1/v1/alerting/s/u/score/+",  # a wildcard is a filter, not a topic
        "t1/v1/alerting/s//score/b1",
        "t1/v1/gw/s/u/g/obs/extra",
        "t2/v1/alerting/s/u/events",  # another root
    ],
)
def test_malformed_or_foreign_topics_are_refused(topic: str) -> None:
    from wardwire.topics import parse_topic

    with pytest.raises(ValueError):
        parse_topic(topic, root="t1/v1")
