"""``wardwatch ingest`` / ``python -m ingest``: the MQTT -> InfluxDB writer and its database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from servicekit.cli import (
    ContextCacheOption,
    ContextOption,
    MetricsPortOption,
    WardOption,
    context_source_or_exit,
    service_app,
)

app = service_app("MQTT -> InfluxDB writer.")


@app.command("run")
def run(
    ward: WardOption = None,
    context: ContextOption = None,
    worker_id: Annotated[
        str, typer.Option(help="Stable MQTT client id of this worker.")
    ] = "ingest-1",
    metrics_port: MetricsPortOption = None,
    seq_audit: Annotated[
        bool, typer.Option(help="Track per-gateway seq gaps (enable on exactly one worker).")
    ] = True,
    stats_file: Annotated[Path | None, typer.Option(help="Write counters here on exit.")] = None,
    subscription: Annotated[
        str, typer.Option(help="exclusive (one worker per unit) or shared (several per unit).")
    ] = "exclusive",
    context_cache: ContextCacheOption = None,
    drain_timeout: Annotated[
        float,
        typer.Option(help="On SIGTERM, write what was taken for at most this many seconds."),
    ] = 10.0,
) -> None:
    """Consume observation batches and write them to InfluxDB (ack after write)."""
    from ingest.core import WardIndex
    from ingest.service import IngestOptions, IngestService
    from servicekit.runner import run_until_signal, setup_logging
    from servicekit.settings import ServiceSettings

    s = ServiceSettings()
    setup_logging(s.log_level)
    if subscription not in ("shared", "exclusive"):
        typer.echo(f"--subscription must be exclusive or shared, not {subscription!r}", err=True)
        raise typer.Exit(2)
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
    source, unit = context_source_or_exit(s, ward, context, context_cache)
    service = IngestService(s.mqtt_params(), WardIndex(unit), opts, context_source=source)
    raise typer.Exit(run_until_signal(service))


@app.command("setup-db")
def setup_db(
    raw_retention: Annotated[str, typer.Option(help="Raw observations kept (>= 1h).")] = "30d",
    agg_retention: Annotated[str, typer.Option(help="1-minute aggregates kept.")] = "104w",
) -> None:
    """Create the database, retention policies (raw, agg, and charted: the nurses' charted
    record, never expiring) and 1-minute downsampling (admin credentials in
    WM_INFLUX_USERNAME / WM_INFLUX_PASSWORD). Idempotent."""
    import httpx

    from ingest.storage import DownsamplingPlan, setup_database
    from servicekit.influx import InfluxError, InfluxTarget
    from servicekit.settings import ServiceSettings

    s = ServiceSettings()
    target = InfluxTarget(s.influx_url, s.influx_db, s.influx_username, s.influx_password)
    plan = DownsamplingPlan(s.influx_db, raw_retention=raw_retention, agg_retention=agg_retention)
    try:
        with httpx.Client(timeout=30) as http:
            setup_database(http, target, plan)
    except (InfluxError, httpx.HTTPError) as exc:
        typer.echo(f"setup failed: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"ok: {s.influx_db}: raw {raw_retention}, agg {agg_retention}, charted INF, cq_obs_1m"
    )


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch ingest")
