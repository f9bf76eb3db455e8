"""A simulated bedside monitor on a pseudo-terminal, speaking WWMON at 1 Hz.

The simulator holds the pty master; the gateway opens the slave side by path (a real tty,
opened by pyserial exactly as it would open /dev/ttyUSB0). A symlink at ``link`` gives the
gateway config a stable path.
"""

from __future__ import annotations

import os
import threading
import time
import tty
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from device_sims.scenarios import Scenario
from edge_agent.protocols.wwmon import WwmonEncoder


@dataclass
class SimulatedMonitor:
    device_id: str
    scenario: Scenario
    link: Path
    period_s: float = 1.0
    max_frames: int | None = None
    done: threading.Event = field(default_factory=threading.Event)
    emitted: int = 0
    frames: int = 0
    write_errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _master: int = -1
    _slave: int = -1

    def open(self) -> Path:
        """Create the pty pair and the symlink; returns the path the gateway should open."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        os.set_blocking(self._master, False)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        if self.link.is_symlink() or self.link.exists():
            self.link.unlink()
        self.link.symlink_to(os.ttyname(self._slave))
        return self.link

    def start(self) -> None:
        if self._master < 0:
            self.open()
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.device_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        enc = WwmonEncoder()
        t0 = time.monotonic()
        next_at = t0
        while not self._stop.is_set():
            t = time.monotonic() - t0
            values = self.scenario.values(t)
            frame = enc.encode_frame(datetime.now(UTC), dict(values))
            try:
                os.write(self._master, frame)
                self.frames += 1
                self.emitted += len(values)
            except BlockingIOError:
                self.write_errors += 1  # nobody reading and the pty buffer is full
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
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if self.link.is_symlink():
            self.link.unlink()
