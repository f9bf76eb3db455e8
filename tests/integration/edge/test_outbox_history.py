"""A gateway never forgets its outbox silently (issue 9, finding 4), as it runs on a gateway:
``python -m edge_agent run --config FILE``. A deleted outbox used to be recreated without a
word (seq back to 0, 208 queued observations gone); a corrupt one exited with a traceback that
did not name the file."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.config import dump_edge_config
from tests.helpers.wait import wait_until
from tests.integration.edge.harness import (
    SITE,
    UNIT,
    edge_config,
    last_status,
    start_recorder,
    status_topic,
)
from wardwatch.devstack import Mosquitto

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def run(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(config), *extra],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def test_missing_and_corrupt_outboxes_are_refused_by_name(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    root = "h/v1"
    gw = "gw-h"
    pw = private_broker.add_user(gw, site=SITE, unit=UNIT, root=root)
    outbox = tmp_path / "state" / "outbox.db"
    cfg = edge_config(private_broker, gw, root, outbox, {}, password=pw, heartbeat_s=1.0)
    path = tmp_path / "edge.toml"
    path.write_text(dump_edge_config(cfg), encoding="utf-8")
    rec = start_recorder(private_broker, [status_topic(root, gw)])
    try:
        first = run(path)
        wait_until(lambda: last_status(rec.snapshot(), status_topic(root, gw)) is not None)
        st = last_status(rec.snapshot(), status_topic(root, gw))
        assert st is not None and st.outbox_epoch and st.outbox_epoch_reason == "first start"
        epoch = st.outbox_epoch
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0

        for suffix in ("", "-wal", "-shm"):
            Path(f"{outbox}{suffix}").unlink(missing_ok=True)
        refused = run(path)
        _, err = refused.communicate(timeout=60)
        assert refused.returncode == 2
        assert str(outbox) in err.decode() and "--new-outbox" in err.decode()
        assert "Traceback" not in err.decode()
        assert not outbox.exists()

        again = run(path, "--new-outbox")

        def new_epoch() -> bool:
            s = last_status(rec.snapshot(), status_topic(root, gw))
            return s is not None and s.outbox_epoch not in (None, epoch)

        wait_until(new_epoch)
        st = last_status(rec.snapshot(), status_topic(root, gw))
        assert st is not None and (st.outbox_epoch_reason or "").startswith("--new-outbox")
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0

        for suffix in ("-wal", "-shm"):
            Path(f"{outbox}{suffix}").unlink(missing_ok=True)
        outbox.write_bytes(b"garbage" * 1000)
        corrupt = run(path)
        _, err = corrupt.communicate(timeout=60)
        assert corrupt.returncode == 2
        assert f"outbox {outbox} is corrupt" in err.decode() and "Traceback" not in err.decode()
    finally:
        rec.close()
