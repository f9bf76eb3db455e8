"""``wardwatch certs init|issue``: a CA with server and client certificates for development and
the demo (``servicekit.pki``), kept in one directory an operator can reason about::

    DIR/ca.pem  ca.key                  the CA (made once; reused, never overwritten)
    DIR/server.pem  server.key          the broker's / registry's certificate (SANs: hosts)
    DIR/clients/NAME.pem  NAME.key      a client certificate per identity (CN = NAME)

Idempotent: running ``init`` again reuses the CA and keeps every certificate that is still
this CA's, valid, with the hosts asked for; anything else (a file the CA did not issue, half a
pair, an expired or differently named certificate) is refused with the reason, and ``--renew``
reissues a leaf (never the CA). The directory must not be readable or writable by others (a
new one is made 0700); keys are written 0600, atomically. Output lists paths and what was done,
never key material (``--json``: the same as an object).

Not a production PKI: the CA key sits beside what it signs. In production the hospital's own
CA issues the broker's, the registry's and each gateway's certificate in the same shapes.
"""

from __future__ import annotations

import json as jsonlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from servicekit.pki import (
    CertificateAuthority,
    PkiError,
    cert_info,
    check_identity,
    key_matches,
    load_ca,
    load_cert,
    parse_hosts,
)

__all__ = ["DEFAULT_HOSTS", "CertsError", "Issued", "app", "init_pki", "issue_client"]

DEFAULT_HOSTS = ("127.0.0.1", "localhost")
CA_DAYS = 3650


class CertsError(Exception):
    """A refusal: the message says which file or directory and why (exit 2)."""


@dataclass(frozen=True)
class Issued:
    """One certificate and its key, and what this run did with them."""

    role: str  # "ca" | "server" | "client"
    name: str
    cert: Path
    key: Path
    status: str  # "created" | "reused" | "kept" | "renewed"
    subject: str
    not_after: datetime
    sha256: str
    hosts: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "cert": str(self.cert),
            "key": str(self.key),
            "status": self.status,
            "subject": self.subject,
            "not_after": self.not_after.isoformat(),
            "sha256": self.sha256,
            **({"hosts": list(self.hosts)} if self.role == "server" else {}),
        }

    def line(self) -> str:
        extra = f" hosts={','.join(self.hosts)}" if self.hosts else ""
        return (f"{self.role:<6} {self.name:<16} {self.status:<8} {self.cert}  {self.key}"
                f"  (until {self.not_after:%Y-%m-%d}{extra})")


@dataclass
class Report:
    directory: Path
    items: list[Issued] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        by_role = {i.role: i for i in self.items if i.role in ("ca", "server")}
        return {
            "dir": str(self.directory),
            **{role: item.as_json() for role, item in by_role.items()},
            "clients": {i.name: i.as_json() for i in self.items if i.role == "client"},
        }


def _private_dir(path: Path, *, create: bool) -> Path:
    """``path`` as a directory only its owner may read: made 0700 if missing (``create``),
    refused if it is readable or writable by others or writable by its group, a symlink, or
    not a directory."""
    if path.is_symlink():
        raise CertsError(f"{path}: a symbolic link; give the real directory")
    if not path.exists():
        if not create:
            raise CertsError(f"{path}: no such directory")
        path.mkdir(mode=0o700, parents=True)
        path.chmod(0o700)  # mkdir's mode is masked by the umask
        return path
    if not path.is_dir():
        raise CertsError(f"{path}: not a directory")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o007:
        raise CertsError(
            f"{path}: others may read or enter it (mode {mode:o}); keys are not written there "
            f"(chmod o-rwx {path}, or choose a private directory)"
        )
    if mode & 0o020:  # a group member could plant a CA pair of their own, or swap a key
        raise CertsError(
            f"{path}: its group may write it (mode {mode:o}); keys are not written there "
            f"(chmod g-w {path}, or choose a private directory)"
        )
    if path.stat().st_uid != os.geteuid():
        raise CertsError(f"{path}: owned by another user; keys are not written there")
    return path


def _describe(role: str, name: str, cert_file: Path, key_file: Path, status: str) -> Issued:
    info = cert_info(load_cert(cert_file))
    return Issued(role, name, cert_file, key_file, status, info.subject, info.not_after,
                  info.sha256, info.hosts)


def _ca(directory: Path, now: datetime) -> tuple[CertificateAuthority, Issued]:
    cert_file, key_file = directory / "ca.pem", directory / "ca.key"
    present = [p.exists() or p.is_symlink() for p in (cert_file, key_file)]
    if all(present):
        try:
            ca = load_ca(directory)
        except PkiError as exc:
            raise CertsError(f"the CA in {directory} cannot be used: {exc}") from exc
        if not cert_info(ca.cert).valid_at(now):
            until = ca.cert.not_valid_after_utc
            raise CertsError(
                f"{cert_file}: the CA is not valid now (until {until:%Y-%m-%d}); it is never "
                "replaced here: move the directory away and init a new one, then redistribute "
                "ca.pem"
            )
        return ca, _describe("ca", "ca", cert_file, key_file, "reused")
    if any(present):
        have, missing = (cert_file, key_file) if present[0] else (key_file, cert_file)
        raise CertsError(f"{have} exists without {missing}: not a CA this tool made; refused")
    ca = CertificateAuthority.create(directory, now=now, days=CA_DAYS,
                                     common_name=f"wardwatch development CA {secrets.token_hex(4)}")
    return ca, _describe("ca", "ca", cert_file, key_file, "created")


def _leaf(
    ca: CertificateAuthority,
    role: str,
    name: str,
    cert_file: Path,
    key_file: Path,
    *,
    now: datetime,
    days: float,
    hosts: tuple[str, ...] = (),
    renew: bool = False,
) -> Issued:
    """Keep, refuse or (re)issue one leaf certificate (see the module's docstring)."""
    present = [p.exists() or p.is_symlink() for p in (cert_file, key_file)]
    status = "created"
    if any(present):
        if not all(present):
            have, missing = (cert_file, key_file) if present[0] else (key_file, cert_file)
            raise CertsError(f"{have} exists without {missing}: refused (move it away)")
        try:
            cert = load_cert(cert_file)
            ours = ca.issued(cert) and key_matches(cert, key_file)
        except PkiError as exc:
            raise CertsError(f"{cert_file}: not overwritten: {exc}") from exc
        if not ours:
            raise CertsError(
                f"{cert_file}: not a certificate of this CA with its key {key_file.name}; "
                "a foreign file is never overwritten (move it away)"
            )
        info = cert_info(cert)
        wanted = {str(n.value) for n in parse_hosts(hosts)} if hosts else set()
        problem = ""
        if not info.valid_at(now):
            problem = f"not valid now (until {info.not_after:%Y-%m-%d})"
        elif info.subject != (str(parse_hosts(hosts)[0].value) if hosts else name):
            problem = f"its name is {info.subject!r}"
        elif wanted and not wanted <= set(info.hosts):
            problem = f"hosts {','.join(info.hosts)}, asked {','.join(sorted(wanted))}"
        if not problem:
            return _describe(role, name, cert_file, key_file, "kept")
        if not renew:
            raise CertsError(f"{cert_file}: {problem}; --renew reissues it")
        status = "renewed"
    pair = ca.server(hosts, now=now, days=days) if role == "server" else ca.client(
        name, now=now, days=days)
    ca.write_pair(cert_file, key_file, pair, replace=status == "renewed")
    return _describe(role, name, cert_file, key_file, status)


def init_pki(
    directory: Path,
    *,
    hosts: tuple[str, ...] = (),
    clients: tuple[str, ...] = (),
    days: float = 365,
    now: datetime,
    renew: bool = False,
) -> Report:
    """Make or complete the development PKI in ``directory`` (``wardwatch certs init``)."""
    try:
        all_hosts = tuple(dict.fromkeys((*DEFAULT_HOSTS, *hosts)))
        parse_hosts(all_hosts)  # refuse a bad host before anything is written
        for c in clients:
            check_identity(c)
        directory = _private_dir(directory, create=True)
        report = Report(directory)
        ca, item = _ca(directory, now)
        report.items.append(item)
        report.items.append(_leaf(ca, "server", "server", directory / "server.pem",
                                  directory / "server.key", now=now, days=days,
                                  hosts=all_hosts, renew=renew))
        if clients:
            out = _private_dir(directory / "clients", create=True)
            for c in dict.fromkeys(clients):
                report.items.append(_leaf(ca, "client", c, out / f"{c}.pem", out / f"{c}.key",
                                          now=now, days=days, renew=renew))
    except PkiError as exc:
        raise CertsError(str(exc)) from exc
    return report


def issue_client(
    directory: Path, name: str, *, days: float = 365, now: datetime, renew: bool = False
) -> Issued:
    """One client certificate from the CA in ``directory`` (``wardwatch certs issue``)."""
    try:
        check_identity(name)
        directory = _private_dir(directory, create=False)
        try:
            ca = load_ca(directory)
        except PkiError as exc:
            raise CertsError(f"no usable CA in {directory} (wardwatch certs init): {exc}") \
                from exc
        if not cert_info(ca.cert).valid_at(now):
            raise CertsError(f"{ca.cert_file}: the CA is not valid now")
        out = _private_dir(directory / "clients", create=True)
        return _leaf(ca, "client", name, out / f"{name}.pem", out / f"{name}.key", now=now,
                     days=days, renew=renew)
    except PkiError as exc:
        raise CertsError(str(exc)) from exc


# -- the CLI ---------------------------------------------------------------------------------
app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Development and demo certificates: a CA, server and client certificates.")

DaysOption = Annotated[int, typer.Option(min=1, max=3650, help="Validity of the server and "
                                         "client certificates, days (the CA: 10 years).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (paths, never keys).")]
RenewOption = Annotated[bool, typer.Option(help="Reissue a certificate of this CA that is "
                                           "expired or names other hosts (never the CA).")]


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(v.strip() for raw in values or () for v in raw.split(",") if v.strip())


def _fail(exc: CertsError) -> typer.Exit:
    typer.echo(f"wardwatch certs: {exc}", err=True)
    return typer.Exit(2)


@app.callback()
def _group() -> None:
    """Development and demo certificates (a CA, server and client certificates)."""


@app.command("init")
def init_cmd(
    directory: Annotated[Path, typer.Argument(help="Where the CA and certificates go (made "
                                              "0700; refused if others may read it).")],
    hosts: Annotated[list[str] | None, typer.Option(
        help="Server host names or addresses besides 127.0.0.1 and localhost (comma-separated "
        "or repeated).")] = None,
    clients: Annotated[list[str] | None, typer.Option(
        help="Client identities (gateway ids, service users), comma-separated or repeated: one "
        "certificate each, CN = the identity.")] = None,
    days: DaysOption = 365,
    renew: RenewOption = False,
    json: JsonOption = False,
) -> None:
    """Make (or complete) a CA, a server certificate and client certificates in DIRECTORY."""
    try:
        report = init_pki(directory.absolute(), hosts=_split(hosts), clients=_split(clients),
                          days=days, now=datetime.now(UTC), renew=renew)
    except CertsError as exc:
        raise _fail(exc) from None
    if json:
        typer.echo(jsonlib.dumps(report.as_json(), indent=2))
    else:
        for item in report.items:
            typer.echo(item.line())


@app.command("issue")
def issue_cmd(
    name: Annotated[str, typer.Argument(help="The identity (CN): a gateway id or a service "
                                        "user.")],
    ca: Annotated[Path, typer.Option("--ca", help="The directory `certs init` made.")],
    days: DaysOption = 365,
    renew: RenewOption = False,
    json: JsonOption = False,
) -> None:
    """One more client certificate from the CA in --ca (DIR/clients/NAME.pem and .key)."""
    try:
        item = issue_client(ca.absolute(), name, days=days, now=datetime.now(UTC), renew=renew)
    except CertsError as exc:
        raise _fail(exc) from None
    typer.echo(jsonlib.dumps({name: item.as_json()}, indent=2) if json else item.line())
