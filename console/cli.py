"""``wardwatch console`` / ``python -m console``: the nurses' central station."""

from __future__ import annotations

from console.chart import chart
from servicekit.cli import (
    ContextCacheOption,
    ContextOption,
    WardOption,
    context_source_or_exit,
    service_app,
)

app = service_app("Nurses' central station.")


@app.command("board")
def board(
    ward: WardOption = None,
    context: ContextOption = None,
    context_cache: ContextCacheOption = None,
) -> None:
    """Live terminal board of a unit (beds, vitals, scores, alerts) until Ctrl-C. With the
    registry's URL the beds follow it (re-read on its change events and every 10 s)."""
    from console.board import run_board
    from servicekit.settings import ServiceSettings

    s = ServiceSettings()
    source, unit = context_source_or_exit(s, ward, context, context_cache)
    run_board(s.mqtt_params(), unit, root=s.topic_root, source=source)


# ``wardwatch chart`` is the same command, mounted at the top (the umbrella's SUBCOMMANDS).
app.command("chart")(chart)


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch console")
