"""PtyPort's unplug, as the gateway's link sees it: what the accounting of the unplug tests
rests on (tests/integration/edge/test_redteam_gateway.py, the unplug/replug test).

A frame the device wrote counts as delivered only once the gateway has read it: bytes still
queued in the pty when the cable is pulled are discarded by the kernel at the hang-up (the
reader gets EOF, not the bytes), as a pulled USB adapter's are. A test that counts such a frame
as "emitted" waits for a reading no gateway could ever store.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from device_sims.serial_devices import PtyPort
from edge_agent.links import LinkLost, SerialLink

FRAME = b"$WWMON,1700000000000,HR=120*00\r\n"  # the checksum is not the point here


async def _read_until_lost(link: SerialLink) -> bytes:
    got = b""
    with pytest.raises(LinkLost):
        while True:
            async with asyncio.timeout(5):
                got += await link.read(4096)
    return got


def test_bytes_read_before_the_unplug_arrive(tmp_path: Path) -> None:
    port = PtyPort(tmp_path / "mon")
    link = SerialLink.open(str(port.plug()), baudrate=115200)

    async def scenario() -> bytes:
        assert port.write(FRAME)
        first = b""
        async with asyncio.timeout(5):
            while len(first) < len(FRAME):
                first += await link.read(4096)
        port.unplug()
        return first + await _read_until_lost(link)

    try:
        assert asyncio.run(scenario()) == FRAME
    finally:
        asyncio.run(link.aclose())
        port.unplug()


def test_bytes_unread_at_the_unplug_are_discarded_by_the_hangup(tmp_path: Path) -> None:
    port = PtyPort(tmp_path / "mon")
    link = SerialLink.open(str(port.plug()), baudrate=115200)
    try:
        assert port.write(FRAME * 20)  # written whole: the simulator counts it as emitted...
        port.unplug()  # ...but the gateway had not read it yet
        assert asyncio.run(_read_until_lost(link)) == b""
        assert not port.write(FRAME)  # a frame written into the unplugged port is refused
    finally:
        asyncio.run(link.aclose())
        port.unplug()
