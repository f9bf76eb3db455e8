"""The umbrella CLI's offline commands (no services needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wardwatch.cli import app
from wardwire.models import WIRE_MODELS

runner = CliRunner()


def test_wire_schema_exports_every_model(tmp_path: Path) -> None:
    res = runner.invoke(app, ["wire", "schema", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in tmp_path.glob("*.schema.json"))
    assert files == sorted(f"{m.__name__}.schema.json" for m in WIRE_MODELS)
    batch = json.loads((tmp_path / "ObservationBatch.schema.json").read_text())
    assert batch["properties"]["schema_version"]["const"] == 1


def test_edge_check_config(tmp_path: Path) -> None:
    good = tmp_path / "gw.toml"
    good.write_text(
        '[gateway]\nid = "gw1"\nsite = "s"\nunit = "u"\n\n[[devices]]\n'
        'id = "d1"\ndriver = "wwmon"\nport = "/dev/ttyUSB0"\n'
    )
    res = runner.invoke(app, ["edge", "check-config", str(good)])
    assert res.exit_code == 0 and "gw1" in res.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[gateway]\nid = "gw 1"\nsite = "s"\nunit = "u"\n')
    res = runner.invoke(app, ["edge", "check-config", str(bad)])
    assert res.exit_code == 2
    assert "gateway.id" in res.output


@pytest.mark.parametrize(
    ("device", "key"),
    [
        ('driver = "wwmonn"\nport = "/dev/ttyUSB0"\n', "devices[0].driver: unknown driver"),
        ('driver = "ble_heart_rate"\nport = "/dev/ttyUSB0"\n', "devices[0].ble_address"),
        ('driver = "wwmon"\nble_address = "AA:BB:CC:DD:EE:FF"\n', "devices[0].port"),
    ],
)
def test_edge_check_config_refuses_devices_that_cannot_work(
    tmp_path: Path, device: str, key: str
) -> None:
    """Issue 10: check-config printed "ok" for a device with an unknown driver."""
    cfg = tmp_path / "gw.toml"
    head = '[gateway]\nid = "gw1"\nsite = "s"\nunit = "u"\n\n[[devices]]\nid = "d1"\n'
    cfg.write_text(head + device)
    res = runner.invoke(app, ["edge", "check-config", str(cfg)])
    assert res.exit_code == 2 and key in res.output


def test_edge_check_config_refuses_an_unreadable_password_file(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f'[gateway]\nid = "gw1"\nsite = "s"\nunit = "u"\n[broker]\n'
        f'password_file = "{tmp_path / "missing"}"\n'
    )
    res = runner.invoke(app, ["edge", "check-config", str(cfg)])
    assert res.exit_code == 2 and "broker.password_file: cannot read" in res.output


def test_registry_check_ward(tmp_path: Path) -> None:
    ward = tmp_path / "ward.toml"
    ward.write_text(
        'site = "s"\nunit = "u"\n[[gateways]]\nid = "g"\n[[beds]]\nid = "b1"\n'
        'gateway = "g"\ndevices = ["d1"]\n[[beds]]\nid = "b2"\ngateway = "g"\n'
        'devices = ["d1"]\n'
    )
    res = runner.invoke(app, ["registry", "check-ward", str(ward)])
    assert res.exit_code == 2
    assert "assigned to both b1 and b2" in res.output


def test_edge_drivers_json_lists_ble_service_uuids() -> None:
    res = runner.invoke(app, ["edge", "drivers", "--json"])
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["ble_heart_rate"]["services"][0] == "180D"
    assert rows["wwmon"]["transport"] == "serial"
