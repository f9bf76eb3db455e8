"""The registry API over HTTPS (issue 16): a real ``registry serve --tls-cert --tls-key`` process
with a certificate from ``servicekit.pki``, read by the services' context client. The right CA
verifies it; another CA, or the system's trust store, fails with a reason that says TLS, never
falls back to plain HTTP; a bad key file stops serve before it listens."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from servicekit.context import ContextSource, UnitContextError, dump_ward_file, load_unit_context
from servicekit.pki import CertificateAuthority
from tests.integration.test_registry_context import REPO, WARD, registry

NOW = datetime.now(UTC)


@dataclass
class Server:
    url: str
    db: str
    proc: subprocess.Popen[str]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()


@pytest.fixture
def pki(tmp_path: Path) -> CertificateAuthority:
    d = tmp_path / "pki"
    d.mkdir(mode=0o700)
    ca = CertificateAuthority.create(d, now=NOW, days=2)
    ca.write_pair(d / "server.pem", d / "server.key",
                  ca.server(["127.0.0.1", "localhost"], now=NOW, days=2))
    return ca


def serve(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    ward = tmp_path / "ward.toml"
    if not ward.exists():
        ward.write_text(dump_ward_file(WARD), encoding="utf-8")
        registry("import-ward", str(ward), "--time-zone", "Asia/Shanghai", "--db", db)
    return subprocess.Popen(
        [sys.executable, "-m", "registry", "serve", "--db", db, "--port", "0", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture
def https_server(tmp_path: Path, pki: CertificateAuthority) -> Iterator[Server]:
    d = pki.cert_file.parent
    serve_db = f"sqlite:///{tmp_path / 'registry.db'}"
    proc = serve(tmp_path, "--tls-cert", str(d / "server.pem"), "--tls-key", str(d / "server.key"))
    assert proc.stdout is not None
    first = proc.stdout.readline()  # printed once the socket listens
    srv = Server(first.split()[1] if first.startswith("serving https://") else "", serve_db, proc)
    try:
        assert srv.url, (first, proc.stderr.read() if proc.poll() is not None else "")
        yield srv
    finally:
        srv.stop()


def service_token(db: str, tmp_path: Path) -> str:
    """A service user's token (the API wants one on every route but POST /login)."""
    registry("user", "add", "svc-tls", "--role", "service", "--no-password", "--db", db)
    out = tmp_path / "svc-tls.token"
    registry("user", "token", "svc-tls", "--out", str(out), "--db", db)
    return out.read_text(encoding="utf-8").strip()


def test_https_context_with_the_right_ca_and_a_clear_error_with_a_wrong_one(
    https_server: Server, pki: CertificateAuthority, tmp_path: Path
) -> None:
    url = f"{https_server.url}/units/demo/picu/context"
    assert url.startswith("https://127.0.0.1:")
    token = service_token(https_server.db, tmp_path)
    ctx = load_unit_context(url, timeout_s=5, ca_file=pki.cert_file, token=token)
    assert ctx.device_index().keys() == WARD.device_index().keys()

    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    stranger = CertificateAuthority.create(other, now=NOW, days=2)
    with pytest.raises(UnitContextError, match="TLS with the context source failed") as info:
        load_unit_context(url, timeout_s=5, ca_file=stranger.cert_file, token=token)
    assert "issuer certificate" in str(info.value) and str(other) in str(info.value)
    with pytest.raises(UnitContextError, match="system's trust store"):
        load_unit_context(url, timeout_s=5, token=token)  # a private CA is in no system store
    with pytest.raises(UnitContextError, match="cannot use the CA file"):
        load_unit_context(url, timeout_s=5, ca_file=tmp_path / "missing.pem", token=token)
    # plain HTTP to the HTTPS port is no way around it
    with pytest.raises(UnitContextError):
        load_unit_context(url.replace("https://", "http://"), timeout_s=5, token=token)

    # a service with a cache: good with the right CA; with a wrong CA the cached context and
    # stale, the reason kept
    cache = tmp_path / "ctx.json"
    good = ContextSource(url, cache, timeout_s=5, ca_file=pki.cert_file, token=token)
    assert good.load() == ctx
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    wrong = ContextSource(url, cache, timeout_s=5, ca_file=stranger.cert_file, token=token)
    assert wrong.load() == ctx and wrong.stale
    assert wrong.last_error and "TLS" in wrong.last_error


def test_serve_refuses_a_key_others_may_read_or_half_the_pair(
    tmp_path: Path, pki: CertificateAuthority
) -> None:
    # the checks run before the database is opened or anything listens: in-process is enough
    from typer.testing import CliRunner

    from registry.cli import app

    d = pki.cert_file.parent
    key = d / "server.key"
    db = f"sqlite:///{tmp_path / 'never.db'}"

    def serve_here(*extra: str) -> tuple[int, str]:
        r = CliRunner().invoke(app, ["serve", "--db", db, "--port", "0", *extra])
        return r.exit_code, r.stdout + r.stderr

    key.chmod(0o644)
    code, out = serve_here("--tls-cert", str(d / "server.pem"), "--tls-key", str(key))
    assert code == 2 and "chmod 600" in out and "BEGIN" not in out and "serving" not in out
    key.chmod(0o600)
    code, out = serve_here("--tls-cert", str(d / "server.pem"))
    assert code == 2 and "go together" in out
    code, out = serve_here("--tls-cert", str(pki.cert_file), "--tls-key", str(key))
    assert code == 2 and "cannot use" in out  # the CA's certificate with the server's key
    assert not (tmp_path / "never.db").exists()
