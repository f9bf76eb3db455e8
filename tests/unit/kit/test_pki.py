"""servicekit.pki: certificates as pure functions of keys, names and ``now``; keys written 0600,
atomically, never over an existing file by accident."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st

from servicekit.pki import (
    CLOCK_SKEW,
    CertificateAuthority,
    PkiError,
    build_ca,
    build_client_cert,
    build_server_cert,
    cert_info,
    check_identity,
    key_matches,
    load_ca,
    load_cert,
    new_key,
    parse_hosts,
    write_key,
)

NOW = datetime(2026, 12, 8, 4, 0, tzinfo=UTC)
CA_KEY = new_key()
CA = build_ca(CA_KEY, common_name="test CA", now=NOW, days=10)
LEAF_KEY = new_key()


def eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_ca_server_and_client_certificates_chain_and_carry_their_purpose() -> None:
    assert cert_info(CA).is_ca
    srv = build_server_cert(
        CA, CA_KEY, LEAF_KEY.public_key(), hosts=["127.0.0.1", "Broker.Ward.local", "::1"],
        now=NOW, days=2,
    )
    srv.verify_directly_issued_by(CA)
    info = cert_info(srv)
    assert info.subject == "127.0.0.1" and info.issuer == "test CA" and not info.is_ca
    assert info.hosts == ("127.0.0.1", "broker.ward.local", "::1")
    assert eku(srv) == [ExtendedKeyUsageOID.SERVER_AUTH]
    cli = build_client_cert(CA, CA_KEY, LEAF_KEY.public_key(), identity="gw-a", now=NOW, days=2)
    cli.verify_directly_issued_by(CA)
    assert cert_info(cli).subject == "gw-a" and cert_info(cli).hosts == ()
    assert eku(cli) == [ExtendedKeyUsageOID.CLIENT_AUTH]


@settings(max_examples=25, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    days=st.integers(min_value=1, max_value=3650),
)
def test_the_validity_window_is_a_function_of_now(now: datetime, days: int) -> None:
    cert = build_client_cert(CA, CA_KEY, LEAF_KEY.public_key(), identity="x", now=now, days=days)
    info = cert_info(cert)
    # X.509 times have whole seconds
    assert info.not_before == (now - CLOCK_SKEW).replace(microsecond=0)
    assert info.not_after == (now + timedelta(days=days)).replace(microsecond=0)
    assert info.valid_at(now) and not info.valid_at(now + timedelta(days=days, seconds=1))


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", fullmatch=True))
def test_every_id_is_an_identity(identity: str) -> None:
    assert check_identity(identity) == identity


@pytest.mark.parametrize(
    "bad", ["", "-gw", "gw/a", "gw a", "gw#", "+", "a" * 65, "gw\n", "CN=x,O=y", "é"]
)
def test_what_is_not_an_id_is_refused_as_an_identity(bad: str) -> None:
    with pytest.raises(PkiError, match="identity"):
        build_client_cert(CA, CA_KEY, LEAF_KEY.public_key(), identity=bad, now=NOW, days=1)


@pytest.mark.parametrize("bad", ["", "exa mple", "-x.org", "a..b", "x" * 64 + ".org", "*.ward"])
def test_what_is_neither_an_address_nor_a_dns_name_is_refused_as_a_host(bad: str) -> None:
    with pytest.raises(PkiError, match="host"):
        parse_hosts([bad])


def test_hosts_are_deduplicated_and_ip_literals_become_ip_sans() -> None:
    names = parse_hosts(["localhost", "127.0.0.1", "LOCALHOST", "127.0.0.1"])
    assert names == [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    with pytest.raises(PkiError):
        parse_hosts([])


@pytest.mark.parametrize("days", [0, -1, 36501])
def test_a_validity_outside_reason_is_refused(days: int) -> None:
    with pytest.raises(PkiError, match="validity"):
        build_ca(CA_KEY, common_name="x", now=NOW, days=days)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(PkiError, match="aware"):
        build_ca(CA_KEY, common_name="x", now=datetime(2026, 1, 1), days=1)


def test_keys_are_written_0600_atomically_and_never_over_an_existing_file(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    write_key(key, LEAF_KEY)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    with pytest.raises(PkiError, match="exists"):
        write_key(key, new_key())
    assert key.read_bytes() == before
    write_key(key, new_key(), replace=True)
    assert key.read_bytes() != before and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key"]  # no temporary file left


def test_a_ca_is_created_once_loaded_back_and_issues(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path, now=NOW, days=10)
    with pytest.raises(PkiError, match="never overwritten"):
        CertificateAuthority.create(tmp_path, now=NOW, days=10)
    again = load_ca(tmp_path)
    assert again.cert == ca.cert
    pair = again.client("svc-ingest", now=NOW, days=1)
    again.write_pair(tmp_path / "c.pem", tmp_path / "c.key", pair)
    assert ca.issued(load_cert(tmp_path / "c.pem"))
    assert key_matches(load_cert(tmp_path / "c.pem"), tmp_path / "c.key")
    other = build_ca(new_key(), common_name=cert_info(ca.cert).subject, now=NOW, days=1)
    assert not ca.issued(other)  # same name, another key: not ours


def test_a_ca_whose_key_is_not_its_own_or_whose_files_are_garbage_is_refused(
    tmp_path: Path,
) -> None:
    CertificateAuthority.create(tmp_path, now=NOW, days=10)
    write_key(tmp_path / "ca.key", new_key(), replace=True)
    with pytest.raises(PkiError, match="is not the key of"):
        load_ca(tmp_path)
    secret = b"-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0\n-----END EC PRIVATE KEY-----\n"
    (tmp_path / "ca.key").write_bytes(secret)
    with pytest.raises(PkiError) as info:
        load_ca(tmp_path)
    assert "c2VjcmV0" not in str(info.value)  # never the file's content in an error
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(PkiError, match="not a PEM certificate"):
        load_ca(tmp_path)
