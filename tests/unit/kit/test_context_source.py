"""The unit context comes from a ward file or a registry URL; the services see the same type."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import ClassVar

import pytest

from servicekit.context import (
    UnitContextError,
    dump_ward_file,
    load_unit_context,
    load_ward_file,
)
from servicekit.settings import ServiceSettings
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation

UNIT = UnitContext(
    site="shch",
    unit="picu",
    generation=Generation.DEMO,
    gateways=[GatewayContext(id="gw-a"), GatewayContext(id="gw-b")],
    beds=[
        BedContext(id="bed01", patient="P-1a2b3c", dob=date(2022, 3, 14), gateway="gw-a",
                   devices=["mon-1", "spo2-1"]),
        BedContext(id="bed02", gateway="gw-b", devices=["mon-2"]),
    ],
)


def test_ward_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "ward.toml"
    path.write_text(dump_ward_file(UNIT), encoding="utf-8")
    assert load_ward_file(path) == UNIT
    assert load_unit_context(path) == UNIT
    assert load_unit_context(f"file://{path}") == UNIT


def test_one_device_index_for_every_service() -> None:
    assert UNIT.bed_of("gw-a", "spo2-1") == UNIT.beds[0]
    assert UNIT.bed_of("gw-b", "spo2-1") is None  # registered on another gateway
    assert set(UNIT.device_index()) == {("gw-a", "mon-1"), ("gw-a", "spo2-1"), ("gw-b", "mon-2")}
    assert UNIT.gateway_ids() == {"gw-a", "gw-b"}


def test_alerting_policy_in_a_ward_file_is_refused_with_where_it_went(tmp_path: Path) -> None:
    path = tmp_path / "ward.toml"
    path.write_text(dump_ward_file(UNIT) + "\n[alerting]\nonset_s = 5\n", encoding="utf-8")
    with pytest.raises(UnitContextError, match=r"\[alerting\].*--rules"):
        load_ward_file(path)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('site = "s"\nunit = "u"\ngateways = []\n[[beds]]\nid = "b"\ngateway = "gw"\n'
         'devices = []\n', "gateway 'gw' is not declared"),
        ('site = "s"\nunit = "u"\ngateways = []\nbeds = []\nextra = 1\n', "extra"),
        ('site = "s"\nunit = "u"\n', "gateways"),
        ("site = ", "not valid TOML"),
    ],
)
def test_invalid_ward_files_name_the_problem(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "ward.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UnitContextError, match="ward") as ei:
        load_ward_file(path)
    assert where in str(ei.value)


def test_missing_file_and_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(UnitContextError, match="no such file"):
        load_unit_context(tmp_path / "nope.toml")
    with pytest.raises(UnitContextError, match="file path or an http"):
        load_unit_context("ftp://registry/units/picu")


class _Registry(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        status, body = self.bodies.get(self.path, (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def registry() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    _Registry.bodies = {
        "/units/picu/context": (200, UNIT.model_dump_json().encode()),
        "/units/bad/context": (200, b'{"site": "s"}'),
        "/units/notjson/context": (200, b"<html>"),
        "/units/down/context": (503, b"{}"),
    }
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_registry_url_is_a_url_change_not_a_code_change(registry: str) -> None:
    assert load_unit_context(f"{registry}/units/picu/context") == UNIT


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/units/bad/context", "invalid unit context"),
        ("/units/notjson/context", "invalid unit context"),
        ("/units/down/context", "answered 503"),
        ("/units/none/context", "answered 404"),
    ],
)
def test_a_registry_that_answers_badly_is_a_clear_error(registry: str, path: str, why: str) -> None:
    with pytest.raises(UnitContextError, match=why):
        load_unit_context(registry + path)


def test_an_unreachable_registry_is_a_clear_error() -> None:
    with pytest.raises(UnitContextError, match="cannot reach"):
        load_unit_context("http://127.0.0.1:9/units/picu/context", timeout_s=2)


def test_settings_choose_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WM_CONTEXT", raising=False)
    monkeypatch.setenv("WM_WARD_FILE", "/etc/wardwatch/ward.toml")
    assert ServiceSettings().context_source() == "/etc/wardwatch/ward.toml"
    monkeypatch.setenv("WM_CONTEXT", "https://registry/units/picu/context")
    assert ServiceSettings().context_source() == "https://registry/units/picu/context"
    assert ServiceSettings().context_source(Path("cli.toml")) == "cli.toml"


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """Answers /moved with a redirect to another host name of this server; records every
    request's Authorization header."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}"
                             "/units/picu/context")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = UNIT.model_dump_json().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def test_a_redirect_is_refused_and_the_token_goes_nowhere_else() -> None:
    """(found by red-team) urllib follows redirects with every header: a context source that
    redirected (a proxy, a typo'd host, http -> another host) got the service's bearer token
    sent on to wherever it pointed. A unit context answers itself: a redirect is an error."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Redirecting.seen = []
    try:
        with pytest.raises(UnitContextError, match="redirect"):
            load_unit_context(f"http://127.0.0.1:{server.server_address[1]}/moved",
                              token="wwt_0123456789abcdef_secret", timeout_s=5)
    finally:
        server.shutdown()
        server.server_close()
    assert _Redirecting.seen == [("/moved", "Bearer wwt_0123456789abcdef_secret")]
