"""`wardwatch services` (what `make services` runs) leaves nothing behind when stopped."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_sigterm_stops_both_daemons(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wardwatch.cli", "services", "--workdir", str(tmp_path / "s")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())  # printed once both are ready
        env = (tmp_path / "s" / "services.env").read_text()
        assert f"WM_MQTT_PORT={info['mqtt_port']}" in env
        influx_port = int(info["influx_url"].rsplit(":", 1)[1])
        for port in (info["mqtt_port"], influx_port):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    for port in (info["mqtt_port"], influx_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
