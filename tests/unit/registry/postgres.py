"""A real PostgreSQL for the registry's tests: Debian's server binaries run as the ``postgres``
user (``initdb`` refuses root, and CI runs as root) on a free loopback port, with a temporary
data directory, no daemon left behind.

``Postgres.start()`` runs ``initdb`` and ``pg_ctl start`` through ``runuser -u postgres``
(``pg_ctl -w`` waits until the server accepts connections, with a deadline); a port taken
between choosing and binding is retried on another. ``fresh_database()`` clones a template
that is already at the newest schema revision, so each test gets its own database in
milliseconds. ``stop()`` is ``pg_ctl stop -m fast``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

__all__ = ["Postgres", "PostgresUnavailable", "find_bindir"]


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/NN/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    ) if Path("/usr/lib/postgresql").is_dir() else []
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise PostgresUnavailable(
            "PostgreSQL server binaries not found: run scripts/install-system-deps.sh "
            "(Debian package postgresql)"
        )
    return Path(initdb).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Postgres:
    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.user = "postgres"
        self.base = Path(tempfile.mkdtemp(prefix="wardwatch-pg-"))
        self.data = self.base / "data"
        self.port = 0
        self.running = False

    def _as_postgres(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.base, user=self.user)
        self.base.chmod(0o700)
        init = self._as_postgres("initdb", "-D", str(self.data), "-U", "postgres",
                                 "--auth=trust", "-E", "UTF8", "--no-sync", "--no-locale")
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed:\n{init.stdout}{init.stderr}")
        for _attempt in range(5):
            self.port = _free_port()
            opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            run = self._as_postgres("pg_ctl", "-D", str(self.data), "-l",
                                    str(self.base / "server.log"), "-o", opts, "-w", "-t", "60",
                                    "start")
            if run.returncode == 0:
                self.running = True
                return
            log = (self.base / "server.log").read_text(errors="replace")
            if "could not bind" not in log and "in use" not in log:
                raise PostgresUnavailable(f"pg_ctl start failed:\n{run.stdout}{run.stderr}{log}")
        raise PostgresUnavailable("no free port for PostgreSQL after 5 attempts")

    def stop(self) -> None:
        if self.running:
            self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, name: str, template: str | None = None) -> str:
        suffix = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        self._admin(f'CREATE DATABASE "{name}"{suffix}')
        return self.url(name)

    def fresh_database(self, template: str) -> str:
        return self.create_database(f"t_{uuid.uuid4().hex[:12]}", template)
