"""A service's unit context from a real ``registry serve`` process, through the cache: fresh
while the registry answers (a change is seen on the next load), the cached context (and saying
so) once it is gone, also for a service started while it is down. The service reads with its
own token from a 0600 file (``registry user token svc --out FILE``): a file others may read is
refused, and a revoked token (the user disabled) is a stale context saying why."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from servicekit.context import ContextSource, UnitContextError, dump_ward_file
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation

REPO = Path(__file__).resolve().parents[2]

WARD = UnitContext(
    site="demo",
    unit="picu",
    time_zone="Asia/Shanghai",
    generation=Generation.DEMO,
    gateways=[GatewayContext(id="gw-a")],
    beds=[BedContext(id="bed01", patient="P-1a2b3c", dob=date(2022, 3, 14), gateway="gw-a",
                     devices=["mon-01"])],
)


@dataclass
class Server:
    url: str
    db: str
    proc: subprocess.Popen[str]
    token_file: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()


def registry(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "registry", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    ward = tmp_path / "ward.toml"
    ward.write_text(dump_ward_file(WARD), encoding="utf-8")
    registry("import-ward", str(ward), "--time-zone", "Asia/Shanghai", "--db", db)
    registry("user", "add", "svc", "--role", "service", "--db", db)
    token_file = tmp_path / "registry.token"
    registry("user", "token", "svc", "--out", str(token_file), "--db", db)
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry", "serve", "--db", db, "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # printed once the socket listens
    srv = Server(first.split()[1] if first.startswith("serving http://") else "", db, proc,
                 token_file)
    try:
        assert srv.url, first
        yield srv
    finally:
        srv.stop()


def test_the_registry_fresh_then_the_cache_when_it_is_gone(server: Server,
                                                           tmp_path: Path) -> None:
    url = f"{server.url}/units/demo/picu/context"
    cache = tmp_path / "cache" / "ingest-context.json"
    assert stat.S_IMODE(server.token_file.stat().st_mode) == 0o600
    src = ContextSource(url, cache, timeout_s=5, token_file=server.token_file)
    ctx = src.load()
    assert not src.stale
    assert ctx.device_index().keys() == WARD.device_index().keys()
    assert ctx.beds[0].admission  # the registry's admission id, not in the ward file
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600

    registry("bed", "add", "demo/picu/bed02", "--gateway", "gw-a", "--db", server.db)
    ctx = src.load()
    assert [b.id for b in ctx.beds] == ["bed01", "bed02"] and not src.stale

    server.stop()
    assert src.load() == ctx
    assert src.stale and src.last_error and "cannot reach" in src.last_error

    # a service started while it is down
    restarted = ContextSource(url, cache, timeout_s=5, token_file=server.token_file)
    assert restarted.load() == ctx and restarted.stale
    with pytest.raises(UnitContextError):
        ContextSource(url, None, timeout_s=5).load()  # without a cache: an error, as before


def test_the_token_file_must_be_private_and_a_revoked_token_is_stale(server: Server,
                                                                      tmp_path: Path) -> None:
    url = f"{server.url}/units/demo/picu/context"
    cache = tmp_path / "ctx.json"
    src = ContextSource(url, cache, timeout_s=5, token_file=server.token_file)
    ctx = src.load()
    assert not src.stale
    server.token_file.chmod(0o644)
    with pytest.raises(UnitContextError, match="may be read by others"):
        ContextSource(url, None, timeout_s=5, token_file=server.token_file).load()
    server.token_file.chmod(0o600)
    registry("user", "disable", "svc", "--db", server.db)
    assert src.load() == ctx
    assert src.stale and src.last_error and "401" in src.last_error
