"""Certificates for wardwatch: a CA, server certificates and client certificates (X.509, EC P-256).

Theory of operation. Building a certificate is pure: :func:`build_ca`, :func:`build_server_cert`
and :func:`build_client_cert` take the keys, the names and ``now`` and return a
``cryptography`` certificate, so a test makes an expired or a not-yet-valid certificate by passing
another ``now`` (no clock is read here). Writing is separate and careful: :func:`write_key`
writes a private key mode 0600 and :func:`write_cert` a certificate 0644, both atomically (a
temporary file in the same directory, fsynced, then renamed or linked into place), and neither
replaces an existing file unless told to (``replace=True``): a key is never overwritten by
accident. :class:`CertificateAuthority` ties a CA's certificate and key together and issues
leaves from them; :func:`load_ca` reads one back and checks that the key matches the certificate.

Used by ``wardwatch certs`` (the development and demo PKI), the devstack (a throwaway CA per
broker) and the registry (gateway client certificates). A client certificate's common name is the
identity it authenticates (a gateway id or a service user), and it carries the EKU clientAuth;
a server certificate carries its host names and addresses as SANs and the EKU serverAuth.

Never in production as is: the CA key lives in a file beside the certificates it signs. A
hospital's own PKI (or an offline CA) issues the production certificates; these functions only
produce the same shapes for development, tests and the demo.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CLOCK_SKEW",
    "CertInfo",
    "CertificateAuthority",
    "PkiError",
    "build_ca",
    "build_client_cert",
    "build_server_cert",
    "cert_info",
    "check_identity",
    "key_matches",
    "load_ca",
    "load_cert",
    "load_key",
    "new_key",
    "parse_hosts",
    "write_cert",
    "write_key",
]

#: Certificates are valid from this long before ``now``: a peer whose clock is a little behind
#: ours must not see a fresh certificate as not yet valid.
CLOCK_SKEW = timedelta(minutes=5)

#: An identity (a certificate's CN: a gateway id or a service user) is one literal topic level,
#: the same shape as the broker's usernames and client ids.
_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


class PkiError(Exception):
    """A certificate or key could not be made, read or written; the message says which and why."""


# -- pure: names, keys, certificates -----------------------------------------------------------
def check_identity(identity: str) -> str:
    """``identity`` if it can be a certificate's CN (a literal topic level id), else PkiError."""
    if not _IDENTITY.fullmatch(identity):
        raise PkiError(
            f"identity {identity!r} is not an id (letters, digits, '_', '.', '-'; at most 64, "
            "starting with a letter or digit)"
        )
    return identity


def parse_hosts(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """SAN entries for server host names and addresses (IP literals become IP SANs)."""
    names: list[x509.GeneralName] = []
    for raw in hosts:
        host = raw.strip()
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        labels = host.rstrip(".").split(".")
        if not host or len(host) > 253 or not all(_DNS_LABEL.fullmatch(lb) for lb in labels):
            raise PkiError(f"host {raw!r} is neither an IP address nor a DNS name")
        names.append(x509.DNSName(host.rstrip(".").lower()))
    if not names:
        raise PkiError("a server certificate needs at least one host name or address")
    seen: list[x509.GeneralName] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 private key (fast, and understood by mosquitto, OpenSSL and Python)."""
    return ec.generate_private_key(ec.SECP256R1())


def _window(now: datetime, days: float) -> tuple[datetime, datetime]:
    if now.tzinfo is None:
        raise PkiError("now must be an aware datetime (UTC)")
    if not 0 < days <= 36500:
        raise PkiError(f"validity of {days} days is not in (0, 36500]")
    start = now.astimezone(UTC) - CLOCK_SKEW
    return start, now.astimezone(UTC) + timedelta(days=days)


def _cn(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def build_ca(
    key: ec.EllipticCurvePrivateKey, *, common_name: str, now: datetime, days: float
) -> x509.Certificate:
    """A self-signed CA certificate that may sign leaves only (path length 0)."""
    start, until = _window(now, days)
    name = _cn(common_name)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    *,
    common_name: str,
    now: datetime,
    days: float,
    usage: x509.ObjectIdentifier,
    sans: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:
    start, until = _window(now, days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_cn(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def build_server_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    *,
    hosts: Sequence[str],
    now: datetime,
    days: float,
) -> x509.Certificate:
    """A server certificate for ``hosts`` (DNS names and IP addresses as SANs; the first is the
    CN), EKU serverAuth."""
    sans = parse_hosts(hosts)
    first = sans[0].value
    return _leaf(
        ca_cert, ca_key, public_key, common_name=str(first), now=now, days=days,
        usage=ExtendedKeyUsageOID.SERVER_AUTH, sans=sans,
    )


def build_client_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    *,
    identity: str,
    now: datetime,
    days: float,
) -> x509.Certificate:
    """A client certificate whose CN is ``identity`` (a gateway id or a service user), EKU
    clientAuth. The broker takes the CN as the username (``use_identity_as_username``)."""
    return _leaf(
        ca_cert, ca_key, public_key, common_name=check_identity(identity), now=now, days=days,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What an operator needs to know about a certificate (never any key material)."""

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    sha256: str
    hosts: tuple[str, ...]
    is_ca: bool

    def valid_at(self, now: datetime) -> bool:
        return self.not_before <= now <= self.not_after

    def as_json(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "sha256": self.sha256,
            "hosts": list(self.hosts),
        }


def _common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else name.rfc4514_string()


def cert_info(cert: x509.Certificate) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        hosts = tuple(str(n.value) for n in san)
    except x509.ExtensionNotFound:
        hosts = ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertInfo(
        subject=_common_name(cert.subject),
        issuer=_common_name(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        hosts=hosts,
        is_ca=is_ca,
    )


# -- files ---------------------------------------------------------------------------------------
def _write_atomic(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """Write ``data`` to ``path`` with ``mode``: a temporary file in the same directory, fsynced,
    then renamed over ``path`` (``replace``) or hard-linked to it (fails if it exists)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            tmp.replace(path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError as exc:
                raise PkiError(f"{path} exists: not overwritten") from exc
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_key(path: Path, key: ec.EllipticCurvePrivateKey, *, replace: bool = False) -> None:
    """Write a private key (PEM, unencrypted) mode 0600, atomically; an existing file is kept
    (PkiError) unless ``replace``."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    _write_atomic(path, pem, 0o600, replace=replace)


def write_cert(path: Path, cert: x509.Certificate, *, replace: bool = False) -> None:
    """Write a certificate (PEM) mode 0644, atomically; an existing file is kept unless
    ``replace``."""
    _write_atomic(path, cert.public_bytes(serialization.Encoding.PEM), 0o644, replace=replace)


def load_cert(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PkiError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise PkiError(f"{path}: not a PEM certificate") from exc


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PkiError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: an encrypted key
        # never include the file's content: it may be (part of) a key
        raise PkiError(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: not an EC private key")
    return key


def _same_public_key(a: ec.EllipticCurvePublicKey, b: object) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return isinstance(b, ec.EllipticCurvePublicKey) and a.public_bytes(*fmt) == b.public_bytes(
        *fmt
    )


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA's certificate and key, and the files they came from."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path

    @classmethod
    def create(
        cls, directory: Path, *, now: datetime, days: float = 3650,
        common_name: str = "wardwatch development CA",
    ) -> CertificateAuthority:
        """Make a CA in ``directory`` (``ca.pem``, ``ca.key``); PkiError if either exists."""
        cert_file, key_file = directory / "ca.pem", directory / "ca.key"
        for p in (cert_file, key_file):
            if p.exists() or p.is_symlink():
                raise PkiError(f"{p} exists: a CA is never overwritten")
        key = new_key()
        cert = build_ca(key, common_name=common_name, now=now, days=days)
        write_key(key_file, key)
        write_cert(cert_file, cert)
        return cls(cert, key, cert_file, key_file)

    def issued(self, cert: x509.Certificate) -> bool:
        """Whether this CA signed ``cert``."""
        if cert.issuer != self.cert.subject:
            return False
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def server(
        self, hosts: Sequence[str], *, now: datetime, days: float
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = new_key()
        cert = build_server_cert(
            self.cert, self.key, key.public_key(), hosts=hosts, now=now, days=days
        )
        return cert, key

    def client(
        self, identity: str, *, now: datetime, days: float
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = new_key()
        cert = build_client_cert(
            self.cert, self.key, key.public_key(), identity=identity, now=now, days=days
        )
        return cert, key

    def write_pair(
        self,
        cert_file: Path,
        key_file: Path,
        pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
        *,
        replace: bool = False,
    ) -> None:
        """Write a leaf and its key (the key first: a certificate never names a missing key)."""
        cert, key = pair
        write_key(key_file, key, replace=replace)
        write_cert(cert_file, cert, replace=replace)


def load_ca(directory: Path) -> CertificateAuthority:
    """The CA in ``directory`` (``ca.pem``, ``ca.key``), checked: a CA certificate, and the key
    is its key. PkiError naming the file otherwise."""
    cert_file, key_file = directory / "ca.pem", directory / "ca.key"
    cert = load_cert(cert_file)
    key = load_key(key_file)
    if not _same_public_key(key.public_key(), cert.public_key()):
        raise PkiError(f"{key_file} is not the key of {cert_file}")
    if not cert_info(cert).is_ca:
        raise PkiError(f"{cert_file} is not a CA certificate")
    return CertificateAuthority(cert, key, cert_file, key_file)


def key_matches(cert: x509.Certificate, key_file: Path) -> bool:
    """Whether ``key_file`` holds the private key of ``cert``."""
    return _same_public_key(load_key(key_file).public_key(), cert.public_key())
