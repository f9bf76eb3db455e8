"""Byte links (the I/O half of a serial driver) and the driver error hierarchy.

A ``ByteLink`` moves bytes and nothing else; the sans-IO parser behind it decides what they
mean. :class:`SerialLink` opens a pyserial URL, so one driver reads ``/dev/ttyUSB0`` on the
ward, a serial device server (``socket://host:port``, ``rfc2217://host:port``) in the hospital
and a pty served by ``device_sims`` in CI.

Foreign exceptions (``serial.SerialException``, ``OSError``...) are translated here, at the
boundary, into one error per lifecycle phase, each with its cause chained:

* ``DriverUnavailable``: could not open (unplugged, wrong path, refused, not advertising).
* ``LinkLost``: was streaming and broke (pty hung up, USB adapter pulled, BLE disconnect).
* ``DeviceTimeout``: the link is up but the device said nothing for too long.
* ``UnknownDriver`` / ``DriverMisconfigured``: the configuration cannot work; retrying will
  not help, so the supervisor reports it and does not spin.

The supervisor (``edge_agent.drivers``) reads its reconnect policy off these types. They live
here, in the lowest layer, because both serial links and BLE centrals raise them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from typing import Protocol

import serial


class DriverError(Exception):
    """Root of driver errors."""


class DriverUnavailable(DriverError):
    """The link could not be opened (unplugged, wrong path, refused, not advertising)."""


class LinkLost(DriverError):
    """The link was streaming and broke."""


class DeviceTimeout(DriverError):
    """The link is open but the device sent nothing for longer than allowed."""


class UnknownDriver(DriverError):
    """No driver registered under that name."""


class DriverMisconfigured(DriverError):
    """The device section cannot work with its driver (no port, no BLE address...)."""


class ByteLink(Protocol):
    """A bidirectional byte stream to one device."""

    async def read(self, max_bytes: int = 4096) -> bytes:
        """Wait for at least one byte; ``b""`` means end of stream (treated as lost)."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def aclose(self) -> None: ...


_SERIAL_ERRORS = (serial.SerialException, OSError, ValueError)
_POSIX_SERIAL: type | None = getattr(serial, "Serial", None) if os.name == "posix" else None


class SerialLink:
    """A pyserial port driven from asyncio without a helper thread (where it has a fd).

    The port is opened non-blocking (``timeout=0``); :meth:`read` waits for the fd to become
    readable with ``loop.add_reader`` and then reads what is there (a local tty with one
    ``read(2)``, other URL handlers through pyserial). A hung-up pty or a
    removed USB adapter makes the fd readable and the read fail (EIO), which becomes
    :class:`LinkLost`. URL handlers without a fd (``rfc2217://``) fall back to short blocking
    reads in a worker thread.
    """

    #: Blocking read slice for ports without a fd (rfc2217): bounds shutdown latency.
    THREAD_READ_TIMEOUT_S = 0.25

    def __init__(self, port: serial.SerialBase, url: str) -> None:
        self._port = port
        self.url = url
        self._fd: int | None
        try:
            self._fd = port.fileno()
        except (AttributeError, io.UnsupportedOperation, *_SERIAL_ERRORS):
            self._fd = None
            port.timeout = self.THREAD_READ_TIMEOUT_S
        # Only pyserial's posix port opens its fd non-blocking; URL handlers (socket://) keep
        # their own protocol state and are read through pyserial.
        self._direct = self._fd is not None and type(port) is _POSIX_SERIAL

    @classmethod
    def open(
        cls,
        url: str,
        *,
        baudrate: int,
        bytesize: int = serial.EIGHTBITS,
        parity: str = serial.PARITY_NONE,
        stopbits: float = serial.STOPBITS_ONE,
    ) -> SerialLink:
        """Open ``url`` (a device path or any pyserial URL).

        Raises:
            DriverUnavailable: The port does not exist, is busy or refused the settings.
        """
        try:
            port = serial.serial_for_url(
                url,
                baudrate=baudrate,
                bytesize=bytesize,
                parity=parity,
                stopbits=stopbits,
                timeout=0,
            )
        except _SERIAL_ERRORS as exc:
            raise DriverUnavailable(f"cannot open {url}: {exc}") from exc
        return cls(port, url)

    async def read(self, max_bytes: int = 4096) -> bytes:
        if self._fd is None:
            return await self._read_in_thread(max_bytes)
        if self._direct:
            return await self._read_fd(self._fd, max_bytes)
        while True:
            data = self._read_now(max_bytes)
            if data:
                return data
            await self._readable(self._fd)

    async def _read_fd(self, fd: int, max_bytes: int) -> bytes:
        # A local tty (pyserial's posix port, non-blocking, VMIN=0): wait for the fd, then one
        # read(2). pyserial's own read() adds a select(2) and its Python bookkeeping to every
        # frame; at a waveform's frame rate that is most of the gateway's CPU.
        while True:
            await self._readable(fd)
            try:
                data = os.read(fd, max_bytes)
            except (BlockingIOError, InterruptedError):
                continue  # a spurious wake-up
            except OSError as exc:  # EIO: the pty hung up, the USB adapter was pulled
                raise LinkLost(f"read failed on {self.url}: {exc}") from exc
            if not data:
                # Readable yet empty: what pyserial reports as "device disconnected".
                raise LinkLost(f"read failed on {self.url}: readable but no data (disconnected)")
            return data

    def _read_now(self, max_bytes: int) -> bytes:
        try:
            return bytes(self._port.read(max_bytes))
        except _SERIAL_ERRORS as exc:
            raise LinkLost(f"read failed on {self.url}: {exc}") from exc

    async def _read_in_thread(self, max_bytes: int) -> bytes:
        while True:
            data = await asyncio.to_thread(self._read_now, max_bytes)
            if data:
                return data

    @staticmethod
    async def _readable(fd: int) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            loop.remove_reader(fd)

    async def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except _SERIAL_ERRORS as exc:
            raise LinkLost(f"write failed on {self.url}: {exc}") from exc

    async def aclose(self) -> None:
        # Closing a port whose device is already gone has nothing left to release.
        with contextlib.suppress(*_SERIAL_ERRORS):
            self._port.close()
