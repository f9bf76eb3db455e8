"""kill -9 in the middle of writing: a process adding beds (each with its audit records) as
fast as it can is killed without warning; the chain left behind verifies, its head names its
last record, and every bed that was committed has its record (and no record lacks its bed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from registry import audit
from registry.db import open_database, transaction
from tests.helpers.wait import wait_until

REPO = Path(__file__).resolve().parents[3]
WRITER = """
import sys
from datetime import UTC, datetime
from registry import assets, audit
from registry.db import open_database, transaction
from registry.schemas import BedRequest, SiteRequest, UnitRequest
engine = open_database(sys.argv[1])
now = datetime.now(UTC)
with transaction(engine) as s:
    assets.add_site(s, SiteRequest(id="demo"), now=now)
    assets.add_unit(s, UnitRequest.model_validate(
        {"site": "demo", "id": "picu", "time_zone": "UTC"}), now=now)
i = 0
while True:
    with transaction(engine) as s:
        audit.act_as(s, "writer")
        assets.add_bed(s, "demo", "picu", BedRequest(id=f"b{i}"), now=now)
        audit.record(s, None, "note", f"beds/b{i}", {"i": i}, now=now)
    i += 1
"""


def test_kill_9_while_writing_leaves_an_intact_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    open_database(url).dispose()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url], cwd=REPO,
                            stderr=subprocess.PIPE, text=True)
    engine = open_database(url)
    try:
        def written() -> bool:
            with engine.connect() as conn:
                return bool(conn.exec_driver_sql(
                    "SELECT count(*) FROM audit_log").scalar_one() >= 60)

        wait_until(written, timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        with transaction(engine) as s:
            v = audit.verify(s)
            notes = [e.subject for e in audit.entries(s) if e.action == "note"]
            beds = s.connection().exec_driver_sql(
                "SELECT id FROM beds ORDER BY pk").scalars().all()
        assert v.ok, v
        assert [f"beds/{b}" for b in beds] == notes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        engine.dispose()
