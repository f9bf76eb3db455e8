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


# -- every service has its own entry point; the umbrella mounts the same commands ------------
SERVICE_COMMANDS = {
    "edge_agent": ("edge", ["run", "drivers", "scan", "check-config"]),
    "ingest": ("ingest", ["run", "setup-db"]),
    "alerting": ("alerting", ["run"]),
    "registry": ("registry", ["check-ward", "show"]),
    "console": ("console", ["board"]),
    "device_sims": ("sim", ["monitor", "serial", "ble", "loadgen"]),
}


@pytest.mark.parametrize("package", sorted(SERVICE_COMMANDS))
def test_python_m_service_and_the_umbrella_offer_the_same_commands(package: str) -> None:
    import subprocess
    import sys

    name, commands = SERVICE_COMMANDS[package]
    own = subprocess.run([sys.executable, "-m", package, "--help"], capture_output=True,
                         text=True, timeout=60, env={"COLUMNS": "200", "PATH": ""})
    assert own.returncode == 0, own.stderr
    res = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for cmd in commands:
        assert f" {cmd} " in own.stdout and f" {cmd} " in res.output, cmd


def test_the_umbrella_lists_every_subcommand_without_loading_them() -> None:
    from wardwatch.cli import SUBCOMMANDS

    res = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for name, sub in SUBCOMMANDS.items():
        assert name in res.output and sub.help in res.output


def test_a_single_command_service_keeps_its_subcommand_name(tmp_path: Path) -> None:
    # `wardwatch alerting run` (the demo and the deploy units call it so)
    res = runner.invoke(app, ["alerting", "run", "--ward", str(tmp_path / "none.toml")])
    assert res.exit_code == 2 and "no such file" in res.output


def test_registry_show_prints_the_context_services_see(tmp_path: Path) -> None:
    import json

    ward = tmp_path / "ward.toml"
    ward.write_text('site = "s"\nunit = "u"\n[[gateways]]\nid = "g"\n[[beds]]\nid = "b"\n'
                    'gateway = "g"\ndevices = ["d"]\n', encoding="utf-8")
    res = runner.invoke(app, ["registry", "show", str(ward)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["beds"][0]["devices"] == ["d"]
    ward.write_text(ward.read_text() + "[alerting]\nonset_s = 5\n", encoding="utf-8")
    res = runner.invoke(app, ["registry", "check-ward", str(ward)])
    assert res.exit_code == 2 and "--policy" in res.output


def test_alerting_check_rules_names_every_bad_key(tmp_path: Path) -> None:
    good = tmp_path / "rules.toml"
    good.write_text('min_priority = "medium"\n[onset]\nhigh_s = 60\n', encoding="utf-8")
    res = runner.invoke(app, ["alerting", "check-rules", str(good)])
    assert res.exit_code == 0, res.output
    assert '"min_priority": "medium"' in res.output and '"high_s": 60.0' in res.output
    bad = tmp_path / "bad.toml"
    bad.write_text("threshold = 7\n[onset]\nhigh_s = -5\n", encoding="utf-8")
    res = runner.invoke(app, ["alerting", "check-rules", str(bad)])
    assert res.exit_code == 2
    assert "threshold" in res.output and "onset.high_s" in res.output


def test_alerting_run_refuses_an_unknown_time_zone(tmp_path: Path) -> None:
    ward = tmp_path / "ward.toml"
    ward.write_text(
        'site = "s1"\nunit = "u1"\ntime_zone = "Mars/Olympus_Mons"\n'
        '[[gateways]]\nid = "gw1"\n'
        '[[beds]]\nid = "b1"\ngateway = "gw1"\ndevices = ["d1"]\n',
        encoding="utf-8",
    )
    res = runner.invoke(app, ["alerting", "run", "--ward", str(ward)])
    assert res.exit_code == 2
    assert "Mars/Olympus_Mons" in res.output
