"""The umbrella CLI: ``wardwatch edge|ingest|alerting|registry|console|sim|pews|replay|wire|demo``
(and ``eval``).

Each service owns its commands (``<package>/cli.py``); this module only mounts them, lazily, from
:data:`SUBCOMMANDS`: ``wardwatch edge run`` imports the edge agent and nothing of the others, and
``wardwatch --help`` imports none of them.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True, slots=True)
class Subcommand:
    module: str
    help: str
    attribute: str = "app"


#: name -> where its Typer app lives (imported only when that subcommand runs).
SUBCOMMANDS: dict[str, Subcommand] = {
    "edge": Subcommand("edge_agent.cli", "Bedside gateway agent."),
    "ingest": Subcommand("ingest.cli", "MQTT -> InfluxDB writer."),
    "alerting": Subcommand("alerting.cli", "Streaming PEWS engine and alerts."),
    "registry": Subcommand("registry.cli", "Devices, gateways, beds, admissions, history."),
    "console": Subcommand("console.cli", "Nurses' central station."),
    "chart": Subcommand("console.chart", "Chart a nurse's observations for a bed (one set)."),
    "sim": Subcommand("device_sims.cli", "Simulated bedside devices."),
    "pews": Subcommand("alerting.pews.cli", "Score PEWS observation sets; list tables."),
    "replay": Subcommand("alerting.replay_cli", "Run the alert engine over a recorded stream."),
    "certs": Subcommand("wardwatch.certs", "Development and demo certificates (CA, server, "
                        "clients)."),
}


# Typer vendors its own click (0.2x); the group methods below take and return its types, so
# they are spelled ``Any`` here rather than tied to one typer release's private module.
def load_subcommand(name: str) -> Any:
    """The click command behind ``wardwatch <name>`` (imports its module)."""
    sub = SUBCOMMANDS[name]
    typer_app = getattr(importlib.import_module(sub.module), sub.attribute)
    cmd = typer.main.get_command(typer_app)
    cmd.name = name
    cmd.help = cmd.help or sub.help
    return cmd


class LazyGroup(TyperGroup):
    """Lists the table's subcommands from their help text; imports one only to run it."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*SUBCOMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in SUBCOMMANDS:
            # For listings: a stand-in carrying the help text; resolve_command loads the real.
            return TyperCommand(cmd_name, help=SUBCOMMANDS[cmd_name].help)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in SUBCOMMANDS:
            return args[0], load_subcommand(args[0]), args[1:]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    help="wardwatch: pediatric ward monitoring, edge to cloud. Each service is a subcommand.",
)
wire_app = typer.Typer(no_args_is_help=True, help="The wardwire contract.")
app.add_typer(wire_app, name="wire")


@wire_app.command("schema")
def wire_schema(
    out: Annotated[Path, typer.Option(help="Directory for the JSON Schema files.")],
) -> None:
    """Export JSON Schema of every wire model (for non-Python clients)."""
    from wardwatch.schema import export_schemas

    for path in export_schemas(out):
        typer.echo(str(path))


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
    summary: dict[str, Any] = run_demo(
        DemoOptions(beds=beds, duration_s=duration, headless=headless, workdir=workdir)
    )
    if as_json:
        typer.echo(json.dumps(summary))
    ok = (
        summary["lost"] == 0
        and set(summary["deteriorating_beds"]) <= set(summary["alerted_beds"])
        and not summary["stable_alerted_beds"]
        and not summary["raised_twice"]
    )
    raise typer.Exit(0 if ok else 1)


@app.command("eval")
def eval_(
    as_json: Annotated[
        bool, typer.Option("--json", help="Last stdout line: the metrics as one JSON object.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Scenario set seed.")] = 17,
    beds: Annotated[int, typer.Option(min=1, max=999, help="Simulated beds.")] = 48,
    days: Annotated[
        float, typer.Option(min=1 / 24, max=30, help="Days each bed is observed.")
    ] = 1.5,
    rules: Annotated[
        Path | None, typer.Option(help="Unit rules file (TOML); the shipped defaults if not given.")
    ] = None,
    write_scenarios: Annotated[
        Path | None,
        typer.Option(
            "--write-scenarios",
            help="Write the set as replay files and ground truth into this directory; no eval.",
        ),
    ] = None,
) -> None:
    """Simulated children with ground truth through the alert core: sensitivity, lead time,
    false alerts per bed-day (docs/evaluation.md)."""
    from alerting.core.config import RulesError
    from wardwatch.evaluate import evaluate
    from wardwatch.evaluate import write_scenarios as write

    if write_scenarios is not None:
        try:
            written = write(write_scenarios, seed, beds, days)
        except OSError as exc:
            sys.stderr.write(f"eval: cannot write the scenarios to {write_scenarios}: {exc}\n")
            raise typer.Exit(1) from None
        typer.echo(json.dumps(written))
        return

    def warn(msg: str) -> None:
        sys.stderr.write(f"eval: {msg}\n")

    try:
        out = evaluate(seed, beds, days, rules_path=rules, warn=warn)
    except RulesError as exc:
        sys.stderr.write(f"{exc}\n")
        raise typer.Exit(2) from None
    sys.stderr.write(f"eval: timings {json.dumps(out.timings)}\n")
    r = out.result
    if not as_json:
        typer.echo(
            f"{r['beds']} beds, {r['bed_days']:.2f} bed-days, {r['deteriorating_beds']} "
            f"deteriorating (scenario set v{r['scenario_set_version']}, seed {r['seed']})"
        )
        for key, g in r["goals"].items():
            mark = "met" if g["met"] else "NOT met"
            value = "-" if g["value"] is None else f"{g['value']:.3f}"
            typer.echo(f"  {key}: {value} (goal {g['goal']}: {mark})")
        for kind, row in r["by_kind"].items():
            typer.echo(
                f"  {kind:<13} beds {row['beds']:>3}  sensitivity {row['sensitivity']}  "
                f"lead {row['median_lead_time_h']} h  false/bed-day "
                f"{row['false_alerts_per_bed_day']}  technical/bed-day "
                f"{row['technical_alerts_per_bed_day']}"
            )
    else:
        typer.echo(json.dumps(r, sort_keys=False))


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
