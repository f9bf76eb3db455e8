"""An unreadable answer from a live InfluxDB is a refusal, not an outage (found by the 100k
live fuzz: InfluxDB echoes a refused line in an ``X-Influxdb-Error`` header; a line with a NUL
byte made httpx reject the response, and ingest retried the body for ever)."""

from __future__ import annotations

import httpx

from ingest.core import WardIndex
from ingest.service import IngestOptions, IngestService
from servicekit.mqtt import MqttParams
from wardwire.context import UnitContext
from wardwire.models import Generation


def service() -> IngestService:
    ward = UnitContext(site="s", unit="u", generation=Generation.TEST, gateways=[], beds=[])
    opts = IngestOptions(influx_url="http://influx", influx_db="w", influx_user=None,
                         influx_password=None)
    return IngestService(MqttParams(), WardIndex(ward), opts)


def transport(ping_status: int) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ping":
            return httpx.Response(ping_status)
        raise httpx.RemoteProtocolError("illegal header value", request=request)

    return httpx.MockTransport(handle)


def test_unreadable_answer_from_a_live_server_is_refused() -> None:
    with httpx.Client(transport=transport(204)) as http:
        r = service()._post(http, ["obs value=1.0 1"])
    assert r.outcome == "refused" and "unreadable" in r.message


def test_unreadable_answer_from_a_dead_server_is_transient() -> None:
    with httpx.Client(transport=transport(503)) as http:
        r = service()._post(http, ["obs value=1.0 1"])
    assert r.outcome == "transient"
