"""A registry that answers but never finishes (found by red-team): every read arrives within
the socket timeout, so a per-read timeout alone never fires. A context read has a deadline for
the whole answer; past it the read fails as any unreachable registry does (and a cache, where
there is one, is used)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from servicekit.context import ContextSource, UnitContextError
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation

UNIT = UnitContext(
    site="shch", unit="picu", generation=Generation.DEMO, gateways=[GatewayContext(id="gw-a")],
    beds=[BedContext(id="bed01", patient="P-1a2b3c", dob=date(2022, 3, 14), gateway="gw-a",
                     devices=["mon-1"])],
)


class Dripping:
    """Answers the first ``good`` requests in full, then drips: in the headers or the body."""

    def __init__(self, where: str, good: int = 0) -> None:
        self.where, self.good, self.requests = where, good, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/context"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        body = UNIT.model_dump_json().encode()
        try:
            conn.recv(65536)
            self.requests += 1
            if self.requests <= self.good:
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            conn.sendall({"body": b"Content-Length: 100000\r\n\r\n", "headers": b"X-Drip: ",
                          "many_headers": b"X-Drip: 1\r\n" * 101}[self.where])
            drip = {"body": b" ", "headers": b"a", "many_headers": b"X-Drip: 1\r\n"}[self.where]
            while not self.stop.wait(0.05):
                conn.sendall(drip)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture(params=["headers", "body", "many_headers"])
def dripping(request: pytest.FixtureRequest) -> Iterator[Dripping]:
    d = Dripping(request.param, good=1)
    yield d
    d.close()


@pytest.mark.timeout(60)
def test_a_dripping_registry_fails_the_read_and_the_cache_is_used(
    dripping: Dripping, tmp_path: Path
) -> None:
    source = ContextSource(dripping.url, tmp_path / "cache.json", timeout_s=0.3)
    assert source.load() == UNIT and not source.stale  # the first answer is whole
    assert source.load() == UNIT  # from the cache, the registry still dripping
    assert source.stale
    assert source.last_error is not None
    if dripping.where == "many_headers":  # http.client refuses a 101st header itself
        assert "not an HTTP answer" in source.last_error
    else:
        assert "no complete answer" in source.last_error


@pytest.mark.timeout(60)
def test_without_a_cache_a_dripping_registry_is_an_error(dripping: Dripping) -> None:
    dripping.good = 0
    why = "not an HTTP answer" if dripping.where == "many_headers" else "no complete answer"
    with pytest.raises(UnitContextError, match=why):
        ContextSource(dripping.url, timeout_s=0.3).load()
