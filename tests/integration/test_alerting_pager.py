"""The alert engine pages a nurse-call gateway: a gateway that fails is a technical alert
(pager_failed) on the bed whose page did not get through, resolved when pages get through
again; receipts in the gateway's answers come back as receipts on the alert."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime

import pytest

from alerting.pager import PagePolicy
from servicekit.backoff import Backoff
from tests.helpers.alerting import alerting_service
from tests.helpers.mqtt import collector
from tests.integration.test_alerting_commands import WARD
from tests.integration.test_ingest import Publisher
from tests.integration.test_pager_http import Reply, close, serve
from wardwatch.devstack import Stack
from wardwire import topics
from wardwire.models import Generation, Observation, ObservationBatch

pytestmark = pytest.mark.integration


def test_a_failing_pager_is_a_technical_alert_until_pages_get_through(stack: Stack) -> None:
    gw = serve()
    gw.otherwise = Reply(status=503)  # the gateway is down
    root = f"p{uuid.uuid4().hex[:8]}/v1"
    svc = alerting_service(
        stack.broker, WARD, root, pager_url=gw.url,
        pager_options={"policy": PagePolicy(allow_generations=frozenset({Generation.TEST})),
                       "max_attempts": 3, "backoff": Backoff(initial_s=0.05, cap_s=0.1)},
    )
    events = collector(stack.broker, "admin", [topics.alert_events("s1", "u1", root=root)])
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    pub = Publisher(stack.broker)

    def all_events() -> list[dict]:
        with events.cond:
            return [json.loads(p) for _, p in events.messages]

    def seen(event: str, condition: str) -> bool:
        return any(e["event"] == event and e["alert"]["condition"] == condition
                   for e in all_events())

    try:
        assert svc.ready.wait(10)
        now = datetime.now(UTC)
        obs = [Observation(device_id="d1", code=c, value=v, unit=u, measured_at=now,
                           received_at=now)
               for c, v, u in (("HR", 185, "/min"), ("RR", 65, "/min"), ("SPO2", 86, "%"))]
        pub.publish(topics.gateway_obs("s1", "u1", "gw1", root=root), ObservationBatch(
            gateway_id="gw1", seq=0, sent_at=now, generation=Generation.TEST,
            observations=obs).model_dump_json().encode())
        assert events.wait_for(lambda _m: seen("raised", "pager_failed"), 20), all_events()
        failed = next(e for e in all_events() if e["alert"]["condition"] == "pager_failed")
        assert failed["alert"]["bed_id"] == "b1" and "503" in failed["alert"]["message"]
        # the gateway is back, and answers with a receipt
        gw.otherwise = Reply(status=200, body=b'{"receipt": "received"}')
        aid = next(e["alert"]["alert_id"] for e in all_events()
                   if e["event"] == "raised" and e["alert"]["condition"] == "pews")
        cmd = {"command_id": "e-1", "action": "escalate", "alert_id": aid, "by": "nurse-1",
               "at": datetime.now(UTC).isoformat()}
        pub.publish(topics.alert_commands("s1", "u1", root=root), json.dumps(cmd).encode())
        assert events.wait_for(lambda _m: seen("resolved", "pager_failed"), 20), all_events()
        assert events.wait_for(lambda _m: seen("receipt", "pews"), 20), all_events()
        keys = gw.seen_keys()
        assert len(set(keys)) < len(keys)  # retried with the same idempotency key
    finally:
        svc.stop()
        t.join(10)
        pub.close()
        events.close()
        close(gw)
