"""Every serial driver against its simulator, through a real pty (and a real TCP socket)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from device_sims.scenarios import Scenario
from device_sims.serial_devices import SERIAL_SIMS, MasimoSim, NoninSim
from edge_agent.config import DeviceSection
from edge_agent.drivers import SerialDriver
from edge_agent.protocols.nonin_oem import FRAME_RATE_HZ, FRAMES_PER_PACKET, NoninFormat2Encoder
from servicekit.backoff import Backoff
from servicekit.runner import StopFlag
from tests.integration.drivers.conftest import Capture, running, utcnow, wait_health
from wardwire.models import DeviceState

FAST = Backoff(initial_s=0.02, cap_s=0.2)
EXPECTED = {
    "wwmon": {"HR", "RR", "SPO2", "TEMP"},
    "masimo_ascii1": {"SPO2", "PR", "PI"},
    "nonin_format2": {"SPO2", "PR"},
}


def driver_for(name: str, port: str, capture: Capture, **kw: object) -> SerialDriver:
    dev = DeviceSection(id=f"dev-{name}", driver=name, port=port)
    return SerialDriver(dev, capture, utcnow, StopFlag(), backoff=FAST, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(SERIAL_SIMS))
def test_driver_reads_its_simulator_over_a_pty(name: str, tmp_path: Path, capture: Capture) -> None:
    sim = SERIAL_SIMS[name](name, Scenario("stable", seed=1), tmp_path / "tty", period_s=0.01)
    link = sim.open()
    drv = driver_for(name, str(link), capture)
    with running(drv):
        assert drv.connected_event.wait(5)
        sim.start()
        capture.wait(lambda: {r.code for r in capture.readings()} >= EXPECTED[name])
        capture.wait(lambda: len(capture.readings("SPO2")) >= 3)
    sim.close()
    assert all(90 <= r.value <= 100 for r in capture.readings("SPO2"))
    assert drv.health.state is DeviceState.CONNECTED
    assert drv.health.frames_rejected == 0


def test_masimo_uses_its_documented_default_baudrate() -> None:
    drv = driver_for("masimo_ascii1", "/dev/null", Capture())
    assert drv.baudrate() == 9600
    dev = DeviceSection(id="d", driver="masimo_ascii1", port="x", baudrate=19200)
    assert SerialDriver(dev, Capture(), utcnow, StopFlag()).baudrate() == 19200


def test_nonin_pleth_reaches_the_sink_as_waveform_chunks(tmp_path: Path, capture: Capture) -> None:
    sim = NoninSim("nonin", Scenario("stable", seed=2), tmp_path / "tty", period_s=0.01)
    drv = driver_for("nonin_format2", str(sim.open()), capture)
    with running(drv):
        assert drv.connected_event.wait(5)
        sim.start()
        capture.wait(
            lambda: sum(len(c.samples) for c in capture.chunks()) >= 10 * FRAMES_PER_PACKET
        )
    sim.close()
    chunks = capture.chunks()
    assert all(c.code == "PLETH" and c.sample_rate_hz == FRAME_RATE_HZ for c in chunks)
    assert all(len(c.samples) % FRAMES_PER_PACKET == 0 for c in chunks)  # whole packets, never 1
    # One sink call carries a packet's chunk and its numbers together.
    assert len(chunks) <= capture.calls


def test_unplug_and_replug_recovers_without_restart(tmp_path: Path, capture: Capture) -> None:
    sim = MasimoSim("masimo", Scenario("stable", seed=3), tmp_path / "ttyUSB0", period_s=0.01)
    drv = driver_for("masimo_ascii1", str(sim.open()), capture)
    with running(drv):
        assert drv.connected_event.wait(5)
        sim.start()
        capture.wait(lambda: len(capture.readings("SPO2")) >= 2)

        sim.unplug()  # pty closed, symlink gone
        wait_health(drv, lambda: drv.health.state is DeviceState.DISCONNECTED)
        before = len(capture.readings("SPO2"))
        wait_health(drv, lambda: "cannot open" in drv.health.detail)  # retrying, path missing

        sim.replug()  # a new pty behind the same path
        capture.wait(lambda: len(capture.readings("SPO2")) >= before + 3)
        wait_health(drv, lambda: drv.health.state is DeviceState.CONNECTED)
    sim.close()
    assert drv.health.reconnects >= 1


def test_garbage_is_counted_and_reading_goes_on(tmp_path: Path, capture: Capture) -> None:
    sim = MasimoSim("masimo", Scenario("stable", seed=4), tmp_path / "tty", period_s=0.01)
    drv = driver_for("masimo_ascii1", str(sim.open()), capture)
    with running(drv):
        assert drv.connected_event.wait(5)
        sim.start()
        capture.wait(lambda: len(capture.readings("SPO2")) >= 1)
        for junk in (b"\x00\xff garbage \x13\r\n", bytes(range(256)) * 3, b"SPO2=0x99%\r\n"):
            assert sim.inject(junk)
        wait_health(drv, lambda: drv.health.frames_rejected >= 3)
        seen = len(capture.readings("SPO2"))
        capture.wait(lambda: len(capture.readings("SPO2")) >= seen + 3)
    sim.close()
    assert drv.health.state is DeviceState.CONNECTED


def test_silence_reports_no_signal_then_recovers(tmp_path: Path, capture: Capture) -> None:
    sim = MasimoSim("masimo", Scenario("stable", seed=5), tmp_path / "tty", period_s=0.01)
    drv = driver_for("masimo_ascii1", str(sim.open()), capture, silence_s=0.3)
    with running(drv):
        assert drv.connected_event.wait(5)
        wait_health(drv, lambda: drv.health.state is DeviceState.NO_SIGNAL)
        assert "no data" in drv.health.detail
        sim.start()
        capture.wait(lambda: len(capture.readings("SPO2")) >= 2)
        wait_health(drv, lambda: drv.health.state is DeviceState.CONNECTED)
    sim.close()


def test_socket_url(capture: Capture) -> None:
    """The same driver reads a serial device server (``socket://``)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    enc = NoninFormat2Encoder()
    packet = enc.encode_packet(spo2=97, pulse_rate=110, pleth=list(range(100, 125)))
    served = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while not served.is_set():
                conn.sendall(packet)
                served.wait(0.01)  # pacing of the fake device server

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    drv = driver_for("nonin_format2", f"socket://127.0.0.1:{port}", capture)
    with running(drv):
        capture.wait(lambda: len(capture.readings("PR")) >= 3)
        served.set()
        t.join(5)
        server.close()  # the device server goes away: the link is lost and reopen is refused
        wait_health(drv, lambda: drv.health.state is DeviceState.DISCONNECTED)
    assert {r.value for r in capture.readings("PR")} == {110.0}
    assert {r.value for r in capture.readings("SPO2")} == {97.0}
