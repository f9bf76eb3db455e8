"""``wardwatch certs``: idempotent, refuses what it did not make, never prints key material."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from servicekit.pki import CertificateAuthority, load_ca, load_cert
from wardwatch.certs import CertsError, app, init_pki, issue_client

#: when the module was collected: in a full run that is minutes before a test runs, so a
#: certificate the CLI issues at the real now is compared at the real now, never at NOW
NOW = datetime.now(UTC)
runner = CliRunner()


def cli(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_init_makes_a_private_pki_and_again_changes_nothing(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    code, out, err = cli("init", str(d), "--hosts", "broker.ward.local,10.1.2.3",
                         "--clients", "gw-a", "--clients", "ingest,console", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ca"]["status"] == "created" and doc["server"]["status"] == "created"
    assert doc["server"]["hosts"] == ["127.0.0.1", "localhost", "broker.ward.local", "10.1.2.3"]
    assert sorted(doc["clients"]) == ["console", "gw-a", "ingest"]
    assert doc["clients"]["gw-a"]["subject"] == "gw-a"
    assert "PRIVATE KEY" not in out + err
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "clients").stat().st_mode) == 0o700
    for key in [d / "ca.key", d / "server.key", *(d / "clients").glob("*.key")]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    ca = load_ca(d)
    assert all(ca.issued(load_cert(p)) for p in [d / "server.pem", *(d / "clients").glob("*.pem")])

    before = files(d)
    code, out, err = cli("init", str(d), "--hosts", "broker.ward.local", "--clients", "gw-a")
    assert code == 0, err
    assert "reused" in out and "kept" in out and "created" not in out
    assert "PRIVATE KEY" not in out
    assert files(d) == before  # nothing rewritten


def test_a_directory_others_may_read_is_refused_and_nothing_written(tmp_path: Path) -> None:
    d = tmp_path / "shared"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    code, _, err = cli("init", str(d))
    assert code == 2 and "others may read" in err
    assert list(d.iterdir()) == []


def test_a_directory_its_group_may_write_is_refused(tmp_path: Path) -> None:
    """(found by red-team) mode 0770 passed the check (only others' bits were looked at): any
    member of the group could plant a CA pair of their own, which init then "reused", issuing
    every certificate from a CA whose key they hold, or swap the server's pair."""
    other = tmp_path / "theirs"
    init_pki(other, now=NOW)
    d = tmp_path / "group"
    d.mkdir(mode=0o770)
    d.chmod(0o770)
    for name in ("ca.pem", "ca.key"):  # planted by a group member
        (d / name).write_bytes((other / name).read_bytes())
    (d / "ca.key").chmod(0o600)
    before = files(d)
    code, _, err = cli("init", str(d))
    assert code == 2 and "group may write" in err, err
    assert files(d) == before
    d.chmod(0o750)  # a group that may read (certificates), not write: as before
    assert cli("init", str(d))[0] == 0


def test_foreign_and_half_files_are_never_overwritten(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    init_pki(d, now=NOW)
    other = tmp_path / "other"
    init_pki(other, now=NOW)
    # a server certificate of another CA in place of ours
    for name in ("server.pem", "server.key"):
        (d / name).write_bytes((other / name).read_bytes())
    before = files(d)
    code, _, err = cli("init", str(d))
    assert code == 2 and "foreign file is never overwritten" in err
    code, _, err = cli("init", str(d), "--renew")
    assert code == 2 and "never overwritten" in err  # --renew only renews this CA's own
    assert files(d) == before
    # half a CA
    lone = tmp_path / "lone"
    lone.mkdir(mode=0o700)
    (lone / "ca.key").write_bytes(b"whatever")
    code, _, err = cli("init", str(lone))
    assert code == 2 and "without" in err
    assert (lone / "ca.key").read_bytes() == b"whatever" and not (lone / "ca.pem").exists()
    # a damaged CA certificate: refused without showing its content
    broken = tmp_path / "broken"
    init_pki(broken, now=NOW)
    (broken / "ca.key").write_bytes(b"-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0\n")
    code, out, err = cli("init", str(broken))
    assert code == 2 and "cannot be used" in err and "c2VjcmV0" not in out + err


def test_expired_or_renamed_leaves_are_refused_unless_renewed(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    init_pki(d, clients=("gw-a",), now=NOW - timedelta(days=400), days=30)
    with pytest.raises(CertsError, match=r"not valid now.*--renew"):
        init_pki(d, clients=("gw-a",), now=NOW)
    report = init_pki(d, clients=("gw-a",), now=NOW, renew=True)
    assert [i.status for i in report.items] == ["reused", "renewed", "renewed"]
    assert all(i.not_after > NOW for i in report.items)
    with pytest.raises(CertsError, match=r"hosts .*asked"):
        init_pki(d, hosts=("broker.ward.local",), now=NOW)
    report = init_pki(d, hosts=("broker.ward.local",), now=NOW, renew=True)
    assert "broker.ward.local" in report.items[1].hosts
    # an expired CA is never replaced here
    old = tmp_path / "old"
    old.mkdir(mode=0o700)
    CertificateAuthority.create(old, now=NOW - timedelta(days=30), days=1)
    with pytest.raises(CertsError, match="CA is not valid now"):
        init_pki(old, now=NOW, renew=True)


def test_issue_adds_one_client_from_an_existing_ca(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    code, _, err = cli("issue", "gw-c", "--ca", str(d))
    assert code == 2 and "no such directory" in err
    init_pki(d, now=NOW)
    code, out, err = cli("issue", "gw-c", "--ca", str(d), "--json")
    assert code == 0, err
    doc = json.loads(out)["gw-c"]
    assert doc["status"] == "created" and doc["subject"] == "gw-c"
    assert load_ca(d).issued(load_cert(Path(doc["cert"])))
    # the CLI issued it at the real now: asked again at the real now, it is kept
    assert issue_client(d, "gw-c", now=datetime.now(UTC)).status == "kept"
    for bad in ("gw/c", "_x", "a b", "../../etc/x"):
        code, _, err = cli("issue", bad, "--ca", str(d))
        assert code == 2 and "identity" in err, bad
    code, _, err = cli("init", str(d), "--hosts", "not a host")
    assert code == 2 and "host" in err


def test_symlinks_are_refused_never_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    code, _, err = cli("init", str(link))
    assert code == 2 and "symbolic link" in err and list(real.iterdir()) == []
    d = tmp_path / "pki"
    init_pki(d, now=NOW)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (d / "clients").symlink_to(elsewhere)  # a planted clients/ pointing out of the PKI
    code, _, err = cli("issue", "gw-x", "--ca", str(d))
    assert code == 2 and "symbolic link" in err and list(elsewhere.iterdir()) == []
    # a planted key name pointing at a file of someone else's is never written through
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (d / "clients").unlink()
    (d / "clients").mkdir(mode=0o700)
    (d / "clients" / "gw-y.key").symlink_to(victim)
    code, _, err = cli("issue", "gw-y", "--ca", str(d))
    assert code == 2 and "without" in err
    assert victim.read_text() == "precious"
