"""A simulated bedside monitor on a pseudo-terminal, speaking WWMON at 1 Hz.

The walking skeleton's device. It is the WWMON member of the serial simulators in
``device_sims.serial_devices`` (pty master held by the simulator, slave opened by the gateway
by path through a symlink; see that module), kept under this name for the demo and tests.
"""

from __future__ import annotations

from device_sims.serial_devices import WwmonSim

SimulatedMonitor = WwmonSim

__all__ = ["SimulatedMonitor"]
