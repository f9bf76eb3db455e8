"""``wardwatch edge`` / ``python -m edge_agent``: run a gateway, check its config, list drivers.

Imports nothing of the cloud-side services, the simulators or the umbrella: a gateway installs
the base distribution and runs this.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from servicekit.cli import service_app

app = service_app("Bedside gateway agent.")


@app.command("run")
def run(
    config: Annotated[Path, typer.Option(help="Edge config file (TOML).")],
    new_outbox: Annotated[
        bool,
        typer.Option(
            "--new-outbox",
            help="Begin a new outbox epoch when the outbox is missing, replaced or restored "
            "(readings queued in the old one are accepted as lost; ingest reports outbox_reset).",
        ),
    ] = False,
) -> None:
    """Run the gateway agent until SIGTERM (then drain the outbox and say goodbye)."""
    from edge_agent.agent import EdgeAgent
    from edge_agent.config import ConfigError, load_edge_config
    from edge_agent.outbox import OutboxError
    from servicekit.runner import run_until_signal, setup_logging
    from servicekit.settings import ServiceSettings

    setup_logging(ServiceSettings().log_level)
    try:
        cfg = load_edge_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    try:
        agent = EdgeAgent(cfg, new_outbox=new_outbox)
    except OutboxError as exc:
        typer.echo(f"edge: {exc}", err=True)
        raise typer.Exit(2) from None
    if agent.outbox.epoch_reason is not None:
        logging.getLogger("edge_agent").warning(
            "outbox epoch %s begins: %s", agent.outbox.epoch, agent.outbox.epoch_reason
        )
    raise typer.Exit(run_until_signal(agent))


@app.command("drivers")
def drivers(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the registered device drivers (BLE ones with the GATT services they decode)."""
    from edge_agent.tools import drivers_info

    rows = drivers_info()
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        for r in rows:
            extra = ",".join(r.get("services", [])) or f"{r.get('baudrate') or ''} baud"
            typer.echo(f"{r['name']:<20} {r['transport']:<7} {extra:<14} {r['module']}")


@app.command("scan")
def scan(
    timeout: Annotated[float, typer.Option(help="Seconds to listen for BLE advertising.")] = 5.0,
    ble_transport: Annotated[
        str | None, typer.Option(help="bumble:<hci spec>, bleak or bleak:hciN (default bleak).")
    ] = None,
) -> None:
    """Serial ports and nearby BLE devices (JSON)."""
    from edge_agent.tools import scan as scan_links

    typer.echo(json.dumps(scan_links(timeout, ble_transport), indent=2))


@app.command("check-config")
def check_config(
    config: Path,
    broker: Annotated[bool, typer.Option(
        "--broker", help="Also connect to the broker once, as `edge run` would: exit 2 if it "
        "refuses this gateway (TLS: the CA, an expired or foreign certificate; credentials) or "
        "cannot be reached.")] = False,
) -> None:
    """Validate an edge config file; exit 2 naming the key path if it is invalid, or if a
    device or the broker could not work (an unknown driver, a BLE device without an address,
    an unreadable password file). `edge run` keeps such a device in error and runs the rest,
    and keeps collecting into the outbox while the broker refuses it."""
    from edge_agent.config import ConfigError, load_edge_config
    from edge_agent.preflight import preflight

    try:
        cfg = load_edge_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    problems = preflight(cfg)
    if problems:
        typer.echo(f"{config}: " + "; ".join(problems), err=True)
        raise typer.Exit(2)
    if broker:
        from edge_agent.agent import EdgeAgent
        from servicekit.mqtt import MqttError, connect_blocking, make_client

        params = EdgeAgent.mqtt_params_of(cfg)
        client = make_client(params, f"{cfg.gateway.id}")
        try:
            connect_blocking(client, params, timeout=10.0)
        except MqttError as exc:
            typer.echo(f"{config}: broker: {exc}", err=True)
            raise typer.Exit(2) from None
        client.disconnect()
        client.loop_stop()
        typer.echo(f"ok: broker {params.host}:{params.port} accepts gateway {cfg.gateway.id}")
    typer.echo(f"ok: gateway {cfg.gateway.id}, {len(cfg.devices)} devices")


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch edge")
