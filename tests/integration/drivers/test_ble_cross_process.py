"""BLE across processes: bumble's virtual controllers, a peripheral process, the driver thread.

``python -m bumble.apps.controllers tcp-server:P1 tcp-server:P2`` puts two virtual controllers
on one link; the simulated heart-rate strap attaches to P1 as its own process, and the driver
(run the way the agent runs it: ``run()`` in a thread) attaches to P2 through the device's
``port = "bumble:tcp-client:127.0.0.1:P2"``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from edge_agent.config import DeviceSection
from edge_agent.drivers import make_driver
from edge_agent.tools import scan
from servicekit.backoff import Backoff
from servicekit.runner import StopFlag
from tests.helpers.wait import wait_until
from tests.integration.drivers.conftest import Capture, free_port, running, utcnow
from wardwire.models import DeviceState

PERIPHERAL = "F0:F0:F0:F0:F0:0A"


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    def accepting() -> bool:
        assert proc.poll() is None, "controllers exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            return False
        return True

    wait_until(accepting, timeout=timeout, interval=0.02)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def controllers() -> Iterator[tuple[int, int]]:
    p1, p2 = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bumble.apps.controllers",
         f"tcp-server:127.0.0.1:{p1}", f"tcp-server:127.0.0.1:{p2}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_port(p1, proc)
        _wait_port(p2, proc)
        yield p1, p2
    finally:
        _stop(proc)


@pytest.fixture
def strap(controllers: tuple[int, int]) -> Iterator[int]:
    """The heart-rate peripheral process on P1; yields P2 for the central."""
    p1, p2 = controllers
    proc = subprocess.Popen(
        [sys.executable, "-m", "device_sims.ble_peripherals", "heart_rate",
         "--transport", f"tcp-client:127.0.0.1:{p1}", "--address", PERIPHERAL,
         "--period", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # the sim prints "ready ..." once advertising
        assert line.startswith("ready heart_rate"), line
        yield p2
    finally:
        _stop(proc)


def test_scan_then_driver_across_processes(strap: int) -> None:
    transport = f"bumble:tcp-client:127.0.0.1:{strap}"
    found = scan(timeout_s=0.5, ble_transport=transport)
    assert found["ble_error"] is None
    [row] = [r for r in found["ble"] if r["address"] == PERIPHERAL]
    assert row["services"] == ["180D", "180F"]
    assert row["drivers"] == ["ble_heart_rate"]
    assert isinstance(found["serial"], list)

    capture = Capture()
    dev = DeviceSection(id="hrm", driver="ble_heart_rate", port=transport, ble_address=PERIPHERAL)
    drv = make_driver(dev, capture, utcnow, StopFlag(), backoff=Backoff(0.05, 0.5))
    with running(drv):
        capture.wait(lambda: len(capture.readings("HR")) >= 3, timeout=20)
        assert drv.health.state is DeviceState.CONNECTED
        assert drv.health.battery_pct == 87
