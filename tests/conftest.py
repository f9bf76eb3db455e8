"""Shared fixtures: a real mosquitto and a real influxd per test session (wardwatch.devstack).

Tests isolate themselves with a unique topic root and a unique InfluxDB database each. Tests
that restart or kill a service start a private one (function scope) instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wardwatch.devstack import Influx, Mosquitto, Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("services")
    broker = Mosquitto(base / "mosquitto")
    influx = Influx(base / "influxdb")
    broker.start()
    try:
        influx.start()
        yield Stack(broker, influx)
    finally:
        broker.stop()
        influx.stop()


@pytest.fixture
def topic_root() -> str:
    """A unique topic root per test (the ACLs allow any first level before ``/v1``)."""
    return f"t{uuid.uuid4().hex[:10]}/v1"


@pytest.fixture
def influx_db(stack: Stack) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    stack.influx.create_database(name)
    yield name
    stack.influx.drop_database(name)


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of this test's own, for tests that stop, kill or restart it."""
    b = Mosquitto(tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def private_influx(tmp_path: Path) -> Iterator[Influx]:
    i = Influx(tmp_path / "influxdb")
    i.start()
    yield i
    i.stop()
