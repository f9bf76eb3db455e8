"""The charting path on real mosquitto + influxd (issue 14): who may publish a charted set, how
ingest stores it (the no-expiry retention policy, back-entry, corrections, idempotency), what it
dead-letters, and ``wardwatch chart`` end to end."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers.mqtt import collector
from tests.integration.test_broker_security import Client, arrived_before, not_authorized
from wardwatch.devstack import Stack
from wardwire import topics

pytestmark = pytest.mark.integration


# -- who may publish a charted set -----------------------------------------------------------
def test_only_the_console_identity_may_publish_charted_sets(stack: Stack, topic_root: str) -> None:
    b = stack.broker
    gw = f"gw-c{uuid.uuid4().hex[:6]}"
    b.add_user(gw, site="s1", unit="u1", root=topic_root)
    chart = topics.charting("s1", "u1", root=topic_root)
    watch = collector(b, "admin", [f"{topic_root}/#"])
    gateway = Client.connect(b, gw, gw)
    services = {u: Client.connect(b, u, f"{u}-{uuid.uuid4().hex[:6]}") for u in
                ("ingest", "alerting", "console")}
    try:
        # a gateway, ingest and alerting are refused (PUBACK 0x87), and nothing is delivered
        assert not_authorized(gateway.publish(chart, b"from a gateway"))
        assert not_authorized(services["ingest"].publish(chart, b"from ingest"))
        assert not_authorized(services["alerting"].publish(chart, b"from alerting"))
        # ingest and alerting may subscribe (ingest also shared, for several workers per unit)
        for user, filters in (
            ("ingest", [chart, topics.shared("ingest", chart)]),
            ("alerting", [chart]),
        ):
            for f in filters:
                rc = services[user].subscribe(f)
                assert not rc.is_failure, (user, f, rc)
        # the console may publish, and its set reaches the subscribers
        rc = services["console"].publish(chart, b"from the console")
        assert not rc.is_failure, rc
        for user in ("ingest", "alerting"):
            assert services[user].wait_for(
                lambda m: (chart, b"from the console") in m, timeout=10
            ), user
        marker = uuid.uuid4().hex.encode()
        assert not services["console"].publish(chart, marker).is_failure
        seen = [p for t, p in arrived_before(watch, marker) if t == chart]
        assert seen == [b"from the console"]
    finally:
        watch.close()
        gateway.close()
        for c in services.values():
            c.close()
