"""``wardwatch sim`` / ``python -m device_sims``: simulated bedside devices and ward-scale load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from servicekit.cli import service_app

app = service_app("Simulated bedside devices.")


@app.command("monitor")
def monitor(
    link: Annotated[Path, typer.Option(help="Symlink to create for the pty slave.")],
    device_id: str = "sim-mon-1",
    scenario: str = "stable",
    seed: int = 0,
) -> None:
    """A simulated WWMON bedside monitor on a pty, until Ctrl-C."""
    from device_sims.monitor import SimulatedMonitor
    from device_sims.scenarios import Scenario
    from servicekit.runner import block_stop_signals, wait_for_stop_signal

    mon = SimulatedMonitor(device_id, Scenario(scenario, seed=seed), link)
    block_stop_signals()
    typer.echo(f"{device_id}: open {mon.open()} at 115200 baud (Ctrl-C to stop)")
    mon.start()
    try:
        wait_for_stop_signal()
    finally:
        mon.close()


@app.command("serial")
def serial(
    driver: Annotated[str, typer.Argument(help="wwmon, masimo_ascii1 or nonin_format2.")],
    link: Annotated[Path, typer.Option(help="Symlink to create for the pty slave.")],
    scenario: str = "stable",
    seed: int = 0,
    period: Annotated[float | None, typer.Option(help="Seconds between frames.")] = None,
    device_id: str = "sim-serial-1",
) -> None:
    """A simulated serial device speaking a real protocol on a pty, until Ctrl-C."""
    from device_sims.scenarios import Scenario
    from device_sims.serial_devices import SERIAL_SIMS
    from servicekit.runner import block_stop_signals, wait_for_stop_signal

    if driver not in SERIAL_SIMS:
        typer.echo(f"no simulator for {driver!r}; have {', '.join(sorted(SERIAL_SIMS))}", err=True)
        raise typer.Exit(2)
    sim = SERIAL_SIMS[driver](device_id, Scenario(scenario, seed=seed), link, period_s=period)
    block_stop_signals()
    typer.echo(f"{device_id}: {driver} on {sim.open()} (Ctrl-C to stop)")
    sim.start()
    try:
        wait_for_stop_signal()
    finally:
        sim.close()


@app.command("ble")
def ble(
    kind: Annotated[
        str, typer.Argument(help="heart_rate, pulse_oximeter, thermometer, blood_pressure.")
    ],
    transport: Annotated[str, typer.Option(help="bumble HCI transport, e.g. tcp-client:...")],
    address: str = "F0:F0:F0:F0:F0:01",
    scenario: str = "stable",
    seed: int = 0,
    period: float = 1.0,
) -> None:
    """A simulated BLE peripheral (bumble GATT server), until Ctrl-C."""
    from device_sims.ble_peripherals import main as ble_main

    ble_main(
        [kind, "--transport", transport, "--address", address, "--scenario", scenario,
         "--seed", str(seed), "--period", str(period)]
    )


@app.command("loadgen")
def loadgen(
    gateways: Annotated[int, typer.Option(min=1)] = 500,
    beds_per_gateway: Annotated[int, typer.Option(min=1, max=60)] = 10,
    seconds: Annotated[int, typer.Option(min=1, help="Simulated seconds to send.")] = 60,
    rate_hz: Annotated[
        float | None, typer.Option(help="Simulated seconds per wall second (default: max).")
    ] = None,
    connections: Annotated[int, typer.Option(min=1, max=64)] = 2,
    site: str = "loadsite",
    unit: str = "load",
    prebuild: Annotated[bool, typer.Option(help="Build all payloads before sending.")] = False,
    ward_out: Annotated[Path | None, typer.Option(help="Write the matching ward file.")] = None,
) -> None:
    """Ward-scale load: many simulated gateways over a few connections (user from WM_MQTT_*)."""
    from device_sims.loadgen import LoadSpec, publish_all
    from servicekit.context import dump_ward_file
    from servicekit.settings import ServiceSettings

    s = ServiceSettings()
    spec = LoadSpec(
        gateways=gateways,
        beds_per_gateway=beds_per_gateway,
        site=site,
        unit=unit,
        root=s.topic_root,
    )
    if ward_out is not None:
        ward_out.write_text(dump_ward_file(spec.ward()), encoding="utf-8")
    msgs = spec.payloads(seconds)
    payloads = list(msgs) if prebuild else msgs
    res = publish_all(
        s.mqtt_params(),
        payloads,
        connections=connections,
        rate_hz=rate_hz,
        messages_per_tick=gateways,
    )
    typer.echo(
        json.dumps(
            {
                "messages": res.messages,
                "acked": res.acked,
                "refused": res.refused,
                "observations": res.acked * spec.beds_per_gateway * len(spec.params),
                "elapsed_s": round(res.elapsed_s, 3),
            }
        )
    )
    raise typer.Exit(0 if res.refused == 0 else 1)


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch sim")
