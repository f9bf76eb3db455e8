"""A WWMON monitor on a pty that sends bursts of frames on demand (durability tests, benches).

Unlike the free-running simulators, a burst has a known size and ends with an event, so a test
can say exactly how many readings the gateway must deliver: ``emitted`` counts the values of
every frame written whole. A pty does not emulate the baud rate, so the burst paces itself
(``rate_hz`` frames per second). Values come from a seeded ``Scenario``; the gateway labels
such data ``test``/``demo``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device_sims.scenarios import Scenario
from device_sims.serial_devices import PtyPort
from edge_agent.protocols.wwmon import WwmonEncoder


class WwmonBurstSim:
    """One simulated monitor; ``burst()`` may be called again after the previous one is done."""

    def __init__(self, device_id: str, link: Path, *, seed: int = 0) -> None:
        self.device_id = device_id
        self.port = PtyPort(link)
        self.scenario = Scenario("stable", seed=seed)
        self.encoder = WwmonEncoder()
        self.frames = 0
        self.emitted = 0
        self.write_errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    @property
    def link(self) -> Path:
        return self.port.link

    def open(self) -> Path:
        return self.port.plug()

    def burst(self, frames: int, rate_hz: float) -> threading.Event:
        """Send ``frames`` frames at ``rate_hz`` on a thread; the event is set when done."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("a burst is still running")
        done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(frames, 1.0 / rate_hz, done), name=f"burst-{self.device_id}"
        )
        self._thread.daemon = True
        self._thread.start()
        return done

    def _run(self, frames: int, period_s: float, done: threading.Event) -> None:
        next_at = time.monotonic()
        last = datetime.now(UTC) - timedelta(seconds=1)
        try:
            for _ in range(frames):
                if self._stop.is_set():
                    break
                values = self.scenario.values(time.monotonic() - self._t0)
                # strictly increasing device time, as a device clock (see WwmonSim.frame)
                stamp = max(datetime.now(UTC), last + timedelta(milliseconds=1))
                last = stamp
                frame = self.encoder.encode_frame(stamp, dict(values))
                if self.port.write(frame):
                    self.frames += 1
                    self.emitted += len(values)
                else:
                    self.write_errors += 1  # nobody draining the pty: the frame is lost
                next_at += period_s
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            done.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.port.unplug()
