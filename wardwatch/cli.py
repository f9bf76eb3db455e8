"""The umbrella CLI: ``wardwatch edge|ingest|alerting|registry|console|sim|wire|pews|demo``."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
edge_app = typer.Typer(no_args_is_help=True, help="Bedside gateway agent.")
ingest_app = typer.Typer(no_args_is_help=True, help="MQTT -> InfluxDB writer.")
alerting_app = typer.Typer(no_args_is_help=True, help="Streaming PEWS engine and alerts.")
registry_app = typer.Typer(no_args_is_help=True, help="Beds, devices, gateways (ward file).")
console_app = typer.Typer(no_args_is_help=True, help="Nurses' central station.")
sim_app = typer.Typer(no_args_is_help=True, help="Simulated bedside devices.")
wire_app = typer.Typer(no_args_is_help=True, help="The wardwire contract.")
for _name, _sub in [
    ("edge", edge_app),
    ("ingest", ingest_app),
    ("alerting", alerting_app),
    ("registry", registry_app),
    ("console", console_app),
    ("sim", sim_app),
    ("wire", wire_app),
]:
    app.add_typer(_sub, name=_name)

try:
    from alerting.pews.cli import app as pews_app

    app.add_typer(pews_app, name="pews", help="Score PEWS observation sets; list tables.")
except ImportError as _exc:  # pragma: no cover - only while the scorer is being built
    logging.getLogger(__name__).debug("pews CLI unavailable: %s", _exc)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _run_until_signal(service: Any, **run_kwargs: Any) -> None:
    """Run a service in this thread; SIGTERM/SIGINT ask it to stop (it drains first)."""

    def handler(signum: int, frame: object) -> None:
        service.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    from wardwatch.faults import ServiceFailed

    try:
        service.run(**run_kwargs)
    except ServiceFailed as exc:
        logging.getLogger("wardwatch").critical("%s", exc)
        raise typer.Exit(3) from None


# -- wire ------------------------------------------------------------------------------------
@wire_app.command("schema")
def wire_schema(
    out: Annotated[Path, typer.Option(help="Directory for the JSON Schema files.")],
) -> None:
    """Export JSON Schema of every wire model (for non-Python clients)."""
    from wardwire.schema import export_schemas

    for path in export_schemas(out):
        typer.echo(str(path))


# -- edge ------------------------------------------------------------------------------------
@edge_app.command("run")
def edge_run(
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
    from edge_agent.outbox import OutboxError
    from wardwatch.settings import ServiceSettings
    from wardwire.config import ConfigError, load_edge_config

    _logging(ServiceSettings().log_level)
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
    _run_until_signal(agent)


@edge_app.command("drivers")
def edge_drivers(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the registered device drivers (BLE ones with the GATT services they decode)."""
    from edge_agent.cli_commands import drivers_info

    rows = drivers_info()
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        for r in rows:
            extra = ",".join(r.get("services", [])) or f"{r.get('baudrate') or ''} baud"
            typer.echo(f"{r['name']:<20} {r['transport']:<7} {extra:<14} {r['module']}")


@edge_app.command("scan")
def edge_scan(
    timeout: Annotated[float, typer.Option(help="Seconds to listen for BLE advertising.")] = 5.0,
    ble_transport: Annotated[
        str | None, typer.Option(help="bumble:<hci spec>, bleak or bleak:hciN (default bleak).")
    ] = None,
) -> None:
    """Serial ports and nearby BLE devices (JSON)."""
    from edge_agent.cli_commands import scan

    typer.echo(json.dumps(scan(timeout, ble_transport), indent=2))


@edge_app.command("check-config")
def edge_check_config(config: Path) -> None:
    """Validate an edge config file; exit 2 naming the key path if it is invalid, or if a
    device or the broker could not work (an unknown driver, a BLE device without an address,
    an unreadable password file). `edge run` keeps such a device in error and runs the rest."""
    from edge_agent.preflight import preflight
    from wardwire.config import ConfigError, load_edge_config

    try:
        cfg = load_edge_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    problems = preflight(cfg)
    if problems:
        typer.echo(f"{config}: " + "; ".join(problems), err=True)
        raise typer.Exit(2)
    typer.echo(f"ok: gateway {cfg.gateway.id}, {len(cfg.devices)} devices")


# -- ingest / alerting -----------------------------------------------------------------------
def _ward(settings: Any, ward: Path | None) -> Any:
    from registry.ward_file import WardFileError, load_ward_file

    try:
        return load_ward_file(ward or settings.ward_file)
    except WardFileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@ingest_app.command("run")
def ingest_run(
    ward: Annotated[Path | None, typer.Option(help="Ward file (default $WM_WARD_FILE).")] = None,
    worker_id: Annotated[
        str, typer.Option(help="Stable MQTT client id of this worker.")
    ] = "ingest-1",
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics on this port (0 = any).")
    ] = None,
    seq_audit: Annotated[
        bool, typer.Option(help="Track per-gateway seq gaps (enable on exactly one worker).")
    ] = True,
    stats_file: Annotated[Path | None, typer.Option(help="Write counters here on exit.")] = None,
    subscription: Annotated[
        str, typer.Option(help="exclusive (one worker per unit) or shared (several per unit).")
    ] = "exclusive",
    drain_timeout: Annotated[
        float,
        typer.Option(help="On SIGTERM, write what was taken for at most this many seconds."),
    ] = 10.0,
) -> None:
    """Consume observation batches and write them to InfluxDB (ack after write)."""
    from ingest.core import WardIndex
    from ingest.service import IngestOptions, IngestService
    from wardwatch.settings import ServiceSettings

    s = ServiceSettings()
    _logging(s.log_level)
    opts = IngestOptions(
        influx_url=s.influx_url,
        influx_db=s.influx_db,
        influx_user=s.influx_username,
        influx_password=s.influx_password,
        topic_root=s.topic_root,
        worker_id=worker_id,
        metrics_port=metrics_port,
        seq_audit=seq_audit,
        stats_file=stats_file,
        subscription="shared" if subscription == "shared" else "exclusive",
        drain_timeout_s=drain_timeout,
    )
    if subscription not in ("shared", "exclusive"):
        typer.echo(f"--subscription must be exclusive or shared, not {subscription!r}", err=True)
        raise typer.Exit(2)
    _run_until_signal(IngestService(s.mqtt_params(), WardIndex(_ward(s, ward)), opts))


@ingest_app.command("setup-db")
def ingest_setup_db(
    raw_retention: Annotated[str, typer.Option(help="Raw observations kept (>= 1h).")] = "30d",
    agg_retention: Annotated[str, typer.Option(help="1-minute aggregates kept.")] = "104w",
) -> None:
    """Create the database, retention policies and 1-minute downsampling (admin credentials in
    WM_INFLUX_USERNAME / WM_INFLUX_PASSWORD). Idempotent."""
    import httpx

    from ingest.influx import DownsamplingPlan, InfluxError, InfluxTarget, setup_database
    from wardwatch.settings import ServiceSettings

    s = ServiceSettings()
    target = InfluxTarget(s.influx_url, s.influx_db, s.influx_username, s.influx_password)
    plan = DownsamplingPlan(s.influx_db, raw_retention=raw_retention, agg_retention=agg_retention)
    try:
        with httpx.Client(timeout=30) as http:
            setup_database(http, target, plan)
    except (InfluxError, httpx.HTTPError) as exc:
        typer.echo(f"setup failed: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"ok: {s.influx_db}: raw {raw_retention}, agg {agg_retention}, cq_obs_1m")


@alerting_app.command("run")
def alerting_run(
    ward: Annotated[Path | None, typer.Option(help="Ward file (default $WM_WARD_FILE).")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics on this port (0 = any).")
    ] = None,
) -> None:
    """Score every bed of the ward's unit and raise, escalate and resolve alerts."""
    from alerting.pews import score
    from alerting.rules import RuleConfig, load_artefact_limits, load_priorities
    from alerting.service import AlertingService
    from wardwatch.settings import ServiceSettings

    s = ServiceSettings()
    _logging(s.log_level)
    w = _ward(s, ward)
    cfg = RuleConfig(
        system=w.scoring_system,
        onset_s=w.alerting.onset_s,
        clear_s=w.alerting.clear_s,
        stale_s=w.alerting.stale_s,
        artefact=load_artefact_limits(),
        priorities=load_priorities(),
    )
    _run_until_signal(
        AlertingService(s.mqtt_params(), w, cfg, score, root=s.topic_root),
        metrics_port=metrics_port,
    )


# -- registry --------------------------------------------------------------------------------
@registry_app.command("check-ward")
def registry_check_ward(path: Path) -> None:
    """Validate a ward file; exit 2 with the errors if it is invalid."""
    from registry.ward_file import WardFileError, load_ward_file

    try:
        w = load_ward_file(path)
    except WardFileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"ok: {w.site}/{w.unit}, {len(w.beds)} beds, {len(w.gateways)} gateways")


# -- console ---------------------------------------------------------------------------------
@console_app.command("board")
def console_board(
    ward: Annotated[Path | None, typer.Option(help="Ward file (default $WM_WARD_FILE).")] = None,
) -> None:
    """Live terminal board of a unit (beds, vitals, scores, alerts) until Ctrl-C."""
    from console.board import run_board
    from wardwatch.settings import ServiceSettings

    s = ServiceSettings()
    run_board(s.mqtt_params(), _ward(s, ward), root=s.topic_root)


# -- sims ------------------------------------------------------------------------------------
@sim_app.command("monitor")
def sim_monitor(
    link: Annotated[Path, typer.Option(help="Symlink to create for the pty slave.")],
    device_id: str = "sim-mon-1",
    scenario: str = "stable",
    seed: int = 0,
) -> None:
    """A simulated WWMON bedside monitor on a pty, until Ctrl-C."""
    from device_sims.monitor import SimulatedMonitor
    from device_sims.scenarios import Scenario
    from wardwatch.devstack import wait_for_stop_signal

    mon = SimulatedMonitor(device_id, Scenario(scenario, seed=seed), link)
    typer.echo(f"{device_id}: open {mon.open()} at 115200 baud (Ctrl-C to stop)")
    mon.start()
    try:
        wait_for_stop_signal()
    finally:
        mon.close()


@sim_app.command("serial")
def sim_serial(
    driver: Annotated[str, typer.Argument(help="wwmon, masimo_ascii1 or nonin_format2.")],
    link: Annotated[Path, typer.Option(help="Symlink to create for the pty slave.")],
    scenario: str = "stable",
    seed: int = 0,
    period: Annotated[float | None, typer.Option(help="Seconds between frames.")] = None,
    device_id: str = "sim-serial-1",
) -> None:
    """A simulated serial device speaking a real protocol on a pty, until Ctrl-C."""
    from edge_agent.cli_commands import run_serial_sim

    run_serial_sim(driver, link, scenario=scenario, seed=seed, period_s=period, device_id=device_id)


@sim_app.command("ble")
def sim_ble(
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
    from edge_agent.cli_commands import run_ble_sim

    run_ble_sim(kind, transport, address=address, scenario=scenario, seed=seed, period_s=period)


@sim_app.command("loadgen")
def sim_loadgen(
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
    from registry.ward_file import dump_ward_file
    from wardwatch.settings import ServiceSettings

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


# -- demo ------------------------------------------------------------------------------------
@app.command("demo")
def demo(
    headless: Annotated[bool, typer.Option(help="No board; run unattended.")] = False,
    beds: Annotated[int, typer.Option(min=1, max=64, help="Simulated beds.")] = 8,
    duration: Annotated[float, typer.Option(help="Seconds to run (0 = until Ctrl-C).")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary.")] = False,
    workdir: Annotated[Path | None, typer.Option(help="Where state goes (default: temp).")] = None,
) -> None:
    """Start mosquitto, InfluxDB, every service and a simulated ward; show the board."""
    from wardwatch.demo import DemoOptions, run_demo

    if headless and duration <= 0:
        duration = 60.0
    summary = run_demo(
        DemoOptions(beds=beds, duration_s=duration, headless=headless, workdir=workdir)
    )
    if as_json:
        typer.echo(json.dumps(summary))
    ok = summary["lost"] == 0 and set(summary["deteriorating_beds"]) <= set(summary["alerted_beds"])
    raise typer.Exit(0 if ok else 1)


@app.command("services")
def services(workdir: Path = Path(".run/services")) -> None:
    """Run mosquitto + InfluxDB for manual work until Ctrl-C (what `make services` runs)."""
    from wardwatch import devstack

    sys.argv = ["devstack", str(workdir)]
    devstack.main()


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch")


if __name__ == "__main__":
    main()
