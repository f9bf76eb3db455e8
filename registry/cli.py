"""``wardwatch registry`` / ``python -m registry``: sites, units, beds, gateways, devices,
patients and their history (``docs/registry.md``), and the ward file (``docs/ward-file.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from registry.cli_assets import bed_app, device_app, gateway_app, site_app, unit_app
from registry.cli_base import set_actor
from registry.cli_care import register
from registry.cli_gateway import register_gateway_commands
from registry.cli_users import audit_app, user_app
from servicekit.cli import service_app

app = service_app("Beds, devices, gateways, patients and their history (registry, ward file).")
app.add_typer(site_app, name="site")
app.add_typer(unit_app, name="unit")
app.add_typer(bed_app, name="bed")
app.add_typer(gateway_app, name="gateway")
register_gateway_commands(gateway_app)
app.add_typer(device_app, name="device")
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")
register(app)


@app.callback()
def _registry(
    as_user: Annotated[str | None, typer.Option(
        "--as", envvar="WM_USER", help="Who the audit log names for this command (default: "
        "the OS user).")] = None,
) -> None:
    set_actor(as_user)


@app.command("check-ward")
def check_ward(path: Path) -> None:
    """Validate a ward file; exit 2 with the errors if it is invalid."""
    from servicekit.context import UnitContextError, load_ward_file

    try:
        w = load_ward_file(path)
    except UnitContextError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"ok: {w.site}/{w.unit}, {len(w.beds)} beds, {len(w.gateways)} gateways")


@app.command("show")
def show(
    context: str = typer.Argument(help="A ward file path or a registry URL."),
) -> None:
    """Print a unit's context as JSON (what the services see), from a ward file or a URL (with
    the token in WM_REGISTRY_TOKEN_FILE or WM_REGISTRY_TOKEN, the CA in WM_REGISTRY_CA_FILE)."""
    from servicekit.cli import unit_context_or_exit
    from servicekit.settings import ServiceSettings

    ctx = unit_context_or_exit(ServiceSettings(), context=context)
    typer.echo(ctx.model_dump_json(indent=2))


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch registry")
