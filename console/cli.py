"""``wardwatch console`` / ``python -m console``: the nurses' central station."""

from __future__ import annotations

from console.chart import chart
from servicekit.cli import ContextOption, WardOption, service_app, unit_context_or_exit

app = service_app("Nurses' central station.")


@app.command("board")
def board(
    ward: WardOption = None,
    context: ContextOption = None,
) -> None:
    """Live terminal board of a unit (beds, vitals, scores, alerts) until Ctrl-C."""
    from console.board import run_board
    from servicekit.settings import ServiceSettings

    s = ServiceSettings()
    run_board(s.mqtt_params(), unit_context_or_exit(s, ward, context), root=s.topic_root)


# ``wardwatch chart`` is the same command, mounted at the top (the umbrella's SUBCOMMANDS).
app.command("chart")(chart)


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch console")
