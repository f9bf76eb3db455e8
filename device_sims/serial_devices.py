"""Simulated serial oximeters on pseudo-terminals: Masimo ASCII 1 and Nonin Data Format #2.

Each simulator holds the pty master and speaks the device's real protocol through the
protocol module's encoder (the parser's inverse); the gateway opens the slave by path, exactly
as it opens ``/dev/ttyUSB0``. A symlink at ``link`` gives the config a stable path.

``unplug()`` closes the pty (the gateway's reads fail with EIO, as when a USB adapter is
pulled) and removes the symlink; ``replug()`` creates a *new* pty and re-points the symlink,
so a driver must reopen by path to recover. ``inject()`` writes raw bytes (line noise).

A pty does not emulate the baud rate, so pacing is done here: Masimo sends one record per
``period_s`` (1 s on the device), Nonin one 25-frame packet per ``period_s`` (1/3 s, i.e. 75
frames/s). Note that pyserial flushes a tty's input when it opens it, so bytes written before
the gateway opened the port are lost, as on a real cable.

Values come from a seeded ``Scenario``; the gateway labels such data ``demo``/``test``.
"""

from __future__ import annotations

import math
import os
import threading
import time
import tty
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device_sims.scenarios import Scenario
from edge_agent.protocols.masimo_ascii import MasimoAscii1Encoder
from edge_agent.protocols.nonin_oem import FRAME_RATE_HZ, FRAMES_PER_PACKET, NoninFormat2Encoder
from edge_agent.protocols.wwmon import WwmonEncoder

#: Perfusion index the simulated Masimo reports (the scenarios carry no PI), in %.
SIM_PI = 2.5


class PtyPort:
    """The device end of a serial cable: a pty master, its slave behind a symlink."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self._lock = threading.Lock()
        self._master = -1
        self._slave = -1

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def plug(self) -> Path:
        """Create a new pty pair and point the symlink at its slave; returns the link."""
        with self._lock:
            if self._master >= 0:
                return self.link
            master, slave = os.openpty()
            tty.setraw(slave)
            tty.setraw(master)
            os.set_blocking(master, False)
            self.link.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.link.with_name(self.link.name + ".new")
            if tmp.is_symlink():
                tmp.unlink()
            tmp.symlink_to(os.ttyname(slave))
            tmp.replace(self.link)  # atomic re-point: the path never names a dead pty
            self._master, self._slave = master, slave
        return self.link

    def unplug(self) -> None:
        """Close the pty (the reader gets EIO) and remove the symlink."""
        with self._lock:
            for fd in (self._master, self._slave):
                if fd >= 0:
                    os.close(fd)
            self._master = self._slave = -1
            if self.link.is_symlink():
                self.link.unlink()

    def write(self, data: bytes) -> bool:
        """Write all of ``data``; False if unplugged or nobody drains the pty (buffer full)."""
        with self._lock:
            if self._master < 0:
                return False
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._master, view)
                except BlockingIOError:
                    return False
                view = view[n:]
            return True


class SerialDeviceSim:
    """A paced frame source on a :class:`PtyPort` (subclasses encode the frames)."""

    default_period_s = 1.0

    def __init__(
        self,
        device_id: str,
        scenario: Scenario,
        link: Path,
        *,
        period_s: float | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.device_id = device_id
        self.scenario = scenario
        self.port = PtyPort(link)
        self.period_s = self.default_period_s if period_s is None else period_s
        self.max_frames = max_frames
        self.frames = 0
        self.emitted = 0
        self.write_errors = 0
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self.low_battery = False

    @property
    def link(self) -> Path:
        return self.port.link

    def open(self) -> Path:
        """Plug the cable (create the pty and the symlink); returns the path to open."""
        return self.port.plug()

    def unplug(self) -> None:
        self.port.unplug()

    def replug(self) -> Path:
        return self.port.plug()

    def inject(self, data: bytes) -> bool:
        """Write raw bytes (noise, a broken frame) between frames."""
        return self.port.write(data)

    def frame(self, t: float) -> tuple[bytes, int]:
        """The bytes to send at ``t`` s into the run, and how many values they carry."""
        raise NotImplementedError

    def start(self) -> None:
        if not self.port.plugged:
            self.open()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.device_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_at = self._t0
        while not self._stop.is_set():
            data, values = self.frame(time.monotonic() - self._t0)
            if self.port.write(data):
                self.frames += 1
                self.emitted += values
            else:
                self.write_errors += 1  # unplugged, or nobody reading and the buffer is full
            if self.max_frames is not None and self.frames >= self.max_frames:
                break
            next_at += self.period_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        self.done.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self) -> None:
        self.stop()
        self.port.unplug()


class MasimoSim(SerialDeviceSim):
    """A Radical-7 style oximeter sending ASCII 1 records (SpO2, pulse rate, PI)."""

    default_period_s = 1.0
    encoder = MasimoAscii1Encoder(layout="radical7")

    def frame(self, t: float) -> tuple[bytes, int]:
        v = self.scenario.values(t)
        line = self.encoder.encode_line(
            datetime.now(UTC),
            spo2=round(v["SPO2"]),
            pulse_rate=round(v["HR"]),
            pi=SIM_PI,
            alarm=0x0040 if self.low_battery else 0,
        )
        return line, 3


class NoninSim(SerialDeviceSim):
    """A Nonin OEM III module sending Data Format #2 (SpO2, pulse rate, 75 Hz pleth)."""

    default_period_s = FRAMES_PER_PACKET / FRAME_RATE_HZ

    encoder = NoninFormat2Encoder()
    _sample = 0

    def pleth(self, heart_rate: float) -> list[int]:
        """25 samples of a plainly synthetic pulse wave at the heart rate (0-255)."""
        out = []
        for _ in range(FRAMES_PER_PACKET):
            phase = (self._sample / FRAME_RATE_HZ * heart_rate / 60.0) % 1.0
            out.append(round(128 + 90 * math.sin(2 * math.pi * phase)))
            self._sample += 1
        return out

    def frame(self, t: float) -> tuple[bytes, int]:
        v = self.scenario.values(t)
        packet = self.encoder.encode_packet(
            spo2=round(v["SPO2"]),
            pulse_rate=round(v["HR"]),
            pleth=self.pleth(v["HR"]),
            low_battery=self.low_battery,
        )
        return packet, 3  # SPO2, PR and one pleth chunk


class WwmonSim(SerialDeviceSim):
    """The project's own WWMON monitor (``device_sims.monitor.SimulatedMonitor``)."""

    default_period_s = 1.0
    encoder = WwmonEncoder()

    _last_stamp: datetime | None = None

    def frame(self, t: float) -> tuple[bytes, int]:
        values = self.scenario.values(t)
        # A device clock ticks forward: two frames never carry the same millisecond (a sim
        # that catches up under load would otherwise stamp a burst with one time, and the
        # readings, same series and time, would overwrite each other downstream).
        stamp = datetime.now(UTC)
        if self._last_stamp is not None and stamp <= self._last_stamp + timedelta(milliseconds=1):
            stamp = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = stamp
        sent: dict[str, float | None] = dict(values)
        if self.scenario.probe_off(t):
            sent["SPO2"] = None  # "---": no signal, no value
        return self.encoder.encode_frame(stamp, sent), sum(v is not None for v in sent.values())


SERIAL_SIMS: dict[str, type[SerialDeviceSim]] = {
    "wwmon": WwmonSim,
    "masimo_ascii1": MasimoSim,
    "nonin_format2": NoninSim,
}
"""Driver name -> the simulator that speaks its protocol."""
