"""The serve process's notifier: a successful write request pokes it (a read or a refused write
does not), a failed look is counted and the next one catches up, and every event is handed to
the publisher once."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from registry.events import ContextWatcher
from registry.notify import ChangeNotifier, PokeOnWrite
from wardwire.models import ContextChanged

T0 = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)


class FakeWatcher(ContextWatcher):
    """Pure-logic stand-in for the database look (the real one is tested on SQLite and
    PostgreSQL in test_events.py)."""

    def __init__(self) -> None:
        self.results: list[list[ContextChanged] | Exception] = []

    def poll(self, now: datetime) -> list[ContextChanged]:
        r = self.results.pop(0)
        if isinstance(r, Exception):
            raise r
        return r


def test_only_a_successful_write_pokes() -> None:
    published: list[ContextChanged] = []
    notifier = ChangeNotifier(FakeWatcher(), published.append)
    app = FastAPI()

    @app.get("/x")
    def read() -> dict[str, int]:
        return {"x": 1}

    @app.post("/x")
    def write() -> dict[str, int]:
        return {"x": 2}

    @app.post("/refused")
    def refused() -> None:
        raise HTTPException(409, "no")

    client = TestClient(PokeOnWrite(app, notifier))
    client.get("/x")
    client.post("/refused")
    assert not notifier._poke.is_set()
    client.post("/x")
    assert notifier._poke.is_set()


def test_a_failed_look_is_counted_and_the_next_catches_up() -> None:
    published: list[ContextChanged] = []
    watcher = FakeWatcher()
    ev = ContextChanged(site="s", unit="u", at=T0, beds=["b1"])
    watcher.results = [OperationalError("SELECT", {}, Exception("database is locked")), [ev]]
    notifier = ChangeNotifier(watcher, published.append, clock=lambda: T0)
    assert notifier.poll_once() == 0 and notifier.failures == 1
    assert notifier.poll_once() == 1 and published == [ev]
    assert (notifier.polls, notifier.events) == (1, 1)
