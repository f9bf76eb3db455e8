"""A registry URL with a last-known-good cache: fresh when the registry answers, the cached
context (and saying so) when it does not, an error only with neither."""

from __future__ import annotations

import http.server
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from unittest import mock

import pytest

from ingest.core import WardIndex
from ingest.service import IngestOptions, IngestService
from servicekit.context import ContextSource, UnitContextError
from servicekit.metrics import parse_metric
from servicekit.mqtt import MqttParams
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation

UNIT = UnitContext(
    site="shch",
    unit="picu",
    generation=Generation.DEMO,
    gateways=[GatewayContext(id="gw-a")],
    beds=[BedContext(id="bed01", patient="P-1a2b3c", dob=date(2022, 3, 14), gateway="gw-a",
                     devices=["mon-1"])],
)
UNIT2 = UnitContext.model_validate(
    {**UNIT.model_dump(), "beds": [*UNIT.model_dump()["beds"],
                                   {"id": "bed02", "gateway": "gw-a", "devices": ["mon-2"]}]}
)


@dataclass
class Registry:
    """What the fake registry answers; tests flip it between requests."""

    body: bytes = b""
    status: int = 200
    url: str = ""
    server: http.server.ThreadingHTTPServer | None = field(default=None, repr=False)

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry() -> Iterator[Registry]:
    state = Registry(body=UNIT.model_dump_json().encode())

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.server = server
    state.url = f"http://127.0.0.1:{server.server_address[1]}/units/shch/picu/context"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_registry_up_is_fresh_and_written_to_the_cache(registry: Registry, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "context.json"
    src = ContextSource(registry.url, cache, timeout_s=2)
    assert src.load() == UNIT
    assert not src.stale and src.last_error is None and src.last_ok_at is not None
    assert UnitContext.model_validate_json(cache.read_bytes()) == UNIT
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert src.age_seconds() is not None
    registry.body = UNIT2.model_dump_json().encode()
    assert src.load() == UNIT2  # a change at the registry is seen on the next load
    assert UnitContext.model_validate_json(cache.read_bytes()) == UNIT2
    assert [p.name for p in cache.parent.iterdir()] == ["context.json"]  # no temp file left


def test_registry_down_serves_the_cache_and_says_so(registry: Registry, tmp_path: Path) -> None:
    cache = tmp_path / "context.json"
    src = ContextSource(registry.url, cache, timeout_s=2)
    src.load()
    ok_at = src.last_ok_at
    registry.stop()
    assert src.load() == UNIT
    assert src.stale
    assert src.last_error is not None and "cannot reach" in src.last_error
    assert src.last_ok_at == ok_at  # the last good answer, not the fallback


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b"<html>proxy error</html>"), (200, b'{"site": "shch"}'), (503, b"down")],
)
def test_registry_garbage_serves_the_cache(registry: Registry, tmp_path: Path, status: int,
                                           body: bytes) -> None:
    cache = tmp_path / "context.json"
    src = ContextSource(registry.url, cache, timeout_s=2)
    src.load()
    registry.status, registry.body = status, body
    assert src.load() == UNIT
    assert src.stale and src.last_error
    assert UnitContext.model_validate_json(cache.read_bytes()) == UNIT  # garbage never cached
    registry.status, registry.body = 200, UNIT.model_dump_json().encode()
    assert src.load() == UNIT and not src.stale and src.last_error is None  # recovers


def test_a_fresh_process_starts_on_the_cache(registry: Registry, tmp_path: Path) -> None:
    cache = tmp_path / "context.json"
    ContextSource(registry.url, cache, timeout_s=2).load()
    registry.stop()
    src = ContextSource(registry.url, cache, timeout_s=2)  # a restart while the registry is down
    assert src.load() == UNIT and src.stale
    assert src.last_ok_at is not None  # the cache file's time: when the registry last answered


def test_no_cache_and_down_is_an_error(registry: Registry, tmp_path: Path) -> None:
    registry.stop()
    with pytest.raises(UnitContextError, match="no usable context cache"):
        ContextSource(registry.url, tmp_path / "missing.json", timeout_s=2).load()
    with pytest.raises(UnitContextError, match="cannot reach"):
        ContextSource(registry.url, None, timeout_s=2).load()  # no cache: as before


def test_a_corrupt_cache_is_not_used(registry: Registry, tmp_path: Path) -> None:
    cache = tmp_path / "context.json"
    cache.write_text("{not json", encoding="utf-8")
    registry.stop()
    with pytest.raises(UnitContextError, match="invalid context cache"):
        ContextSource(registry.url, cache, timeout_s=2).load()


def test_a_failed_write_leaves_the_old_cache_whole(registry: Registry, tmp_path: Path) -> None:
    cache = tmp_path / "context.json"
    src = ContextSource(registry.url, cache, timeout_s=2)
    src.load()
    before = cache.read_bytes()
    registry.body = UNIT2.model_dump_json().encode()
    with mock.patch("servicekit.files.os.fsync", side_effect=OSError("disk full")), \
            pytest.raises(OSError, match="disk full"):
        src.load()
    assert cache.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["context.json"]  # the temporary file is removed


def test_a_ward_file_is_read_as_before(tmp_path: Path) -> None:
    from servicekit.context import dump_ward_file

    path = tmp_path / "ward.toml"
    path.write_text(dump_ward_file(UNIT), encoding="utf-8")
    src = ContextSource(path, tmp_path / "cache.json")
    assert src.load() == UNIT and not src.stale
    assert not (tmp_path / "cache.json").exists()


def _ingest(source: ContextSource) -> IngestService:

    opts = IngestOptions(influx_url="http://influx", influx_db="w", influx_user=None,
                         influx_password=None, worker_id="ingest-c")
    return IngestService(MqttParams(), WardIndex(source.load()), opts, context_source=source)


def _sample(text: str, name: str) -> float:
    value = parse_metric(text, name)
    assert value is not None, name
    return value


def test_ingest_refreshes_falls_back_and_says_so(registry: Registry, tmp_path: Path) -> None:
    svc = _ingest(ContextSource(registry.url, tmp_path / "context.json", timeout_s=2))
    text = svc.metrics_text()
    assert _sample(text, "wardwatch_ingest_context_stale") == 0
    assert _sample(text, "wardwatch_ingest_context_age_seconds") >= 0
    registry.body = UNIT2.model_dump_json().encode()
    svc.refresh_context()
    assert svc.index.ward == UNIT2 and ("gw-a", "mon-2") in svc.index.devices  # picked up
    registry.status, registry.body = 200, b"garbage"
    svc.refresh_context()
    assert svc.index.ward == UNIT2  # the cached context, which is the last good one
    text = svc.metrics_text()
    assert _sample(text, "wardwatch_ingest_context_stale") == 1
    assert _sample(text, "wardwatch_ingest_context_fallbacks_total") == 1
    registry.body = UNIT.model_dump_json().encode()
    svc.refresh_context()
    assert svc.index.ward == UNIT
    assert _sample(svc.metrics_text(), "wardwatch_ingest_context_stale") == 0


def test_ingest_refuses_a_context_for_another_unit(registry: Registry, tmp_path: Path) -> None:
    svc = _ingest(ContextSource(registry.url, tmp_path / "context.json", timeout_s=2))
    other = UnitContext.model_validate({**UNIT.model_dump(), "unit": "nicu"})
    registry.body = other.model_dump_json().encode()
    svc.refresh_context()
    assert svc.index.ward == UNIT


def test_an_answer_for_another_unit_never_replaces_the_cache(
    registry: Registry, tmp_path: Path
) -> None:
    """The URL names the unit it asks for: a registry answering another unit's context (a
    misrouted proxy, a wrong URL) is a failure, so the cache keeps this unit's last good context
    and a restart on the cache gets this unit, never the other's."""
    cache = tmp_path / "cache.json"
    src = ContextSource(registry.url, cache)
    assert src.expected_unit == ("shch", "picu")
    assert src.load() == UNIT
    other = UNIT.model_copy(update={"unit": "nicu"})
    registry.body = other.model_dump_json().encode()
    assert src.load() == UNIT and src.stale
    assert src.last_error is not None and "shch/nicu, not of shch/picu" in src.last_error
    assert ContextSource(registry.url, cache).load() == UNIT  # the cache was not replaced
    # a cache of another unit (copied from elsewhere) is refused too
    cache.write_text(other.model_dump_json(), encoding="utf-8")
    registry.status = 503
    with pytest.raises(UnitContextError, match="the cache is the context of shch/nicu"):
        ContextSource(registry.url, cache).load()
    # a ward file, or a URL of another shape, names no unit: nothing to compare
    assert ContextSource(tmp_path / "ward.toml").expected_unit is None
    assert ContextSource("http://127.0.0.1:9/context.json").expected_unit is None
