"""``wardwatch replay --input FILE --json [--config UNIT_RULES]``: the alert engine on a recording.

The shell around ``alerting.replay``: reads the file (``-``: stdin) line by line, prints one
JSON line per alert event and then the summary line on stdout, and nothing else there (the
same file gives byte-identical stdout). Warnings (refused commands) and timings go to stderr.
Exit 2 for a malformed line (stderr names it; the lines printed before it stay) or a bad rules
file; the replay stops at the first malformed line. Without ``--json`` a short table.

Also ``python -m alerting.replay_cli``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer

app = typer.Typer(add_completion=False, help="Replay a recorded stream through the alert engine.")

EXIT_INPUT = 2
_TABLE = "{t:<27} {bed:<10} {event:<12} {kind:<9} {rule:<16} {priority:<6} {level:<14} {state}"


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    yield from stream


def _table_row(d: dict[str, Any]) -> str:
    return _TABLE.format(**{k: "-" if v is None else v for k, v in d.items()})


def _table_summary(s: dict[str, Any]) -> list[str]:
    out = [
        f"{s['lines']} lines, {s['beds']} beds, {s['bed_days']:.3f} bed-days",
        "events: " + ", ".join(f"{k} {v}" for k, v in s["alerts"].items() if v),
    ]
    for kind, row in s["alerts_per_bed_day"].items():
        out.append(
            f"raised per bed-day, {kind}: " + ", ".join(f"{p} {v:g}" for p, v in row.items())
        )
    return out


@app.command()
def replay(
    input_: Annotated[
        str,
        typer.Option(
            "--input", "-i", help="Recorded stream: JSON lines (see alerting/replay.py); - = stdin."
        ),
    ],
    as_json: Annotated[
        bool,
        typer.Option("--json", help="One JSON line per alert event, then a summary line."),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Unit rules file (TOML); the shipped defaults if not given."),
    ] = None,
    unit: Annotated[
        str, typer.Option(help="Unit name (alert ids derive from it).")
    ] = "replay",
) -> None:
    """Run the alert engine on event time over a recorded stream; print every alert event."""
    started = time.perf_counter()
    from alerting.core.config import RulesError, load_rules
    from alerting.replay import BED_ID, MalformedLine
    from alerting.replay import replay as run_replay

    def warn(msg: str) -> None:
        sys.stderr.write(f"replay: {msg}\n")

    try:
        rules = load_rules(config)
    except RulesError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_INPUT) from None
    if not BED_ID.match(unit):
        typer.echo(f"--unit: {unit!r} is not an id (letters, digits, _ . -)", err=True)
        raise typer.Exit(EXIT_INPUT)
    from_stdin = input_ == "-"
    try:
        stream: IO[bytes] = sys.stdin.buffer if from_stdin else open(input_, "rb")  # noqa: SIM115
    except OSError as exc:
        typer.echo(f"--input: cannot read {input_}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_INPUT) from None
    out = sys.stdout
    dumps = json.dumps
    events = 0
    summary: dict[str, Any] | None = None
    try:
        if not as_json:
            out.write(_TABLE.format(
                t="t", bed="bed", event="event", kind="kind", rule="rule", priority="prio",
                level="level", state="state",
            ) + "\n")
        for d in run_replay(_lines(stream), rules, unit=unit, warn=warn):
            if "bed" not in d:
                summary = d
            else:
                events += 1
            if as_json:
                out.write(dumps(d) + "\n")
            elif summary is None:
                out.write(_table_row(d) + "\n")
            else:
                out.write("\n".join(_table_summary(d)) + "\n")
    except MalformedLine as exc:
        out.flush()
        typer.echo(f"replay: error: {exc}", err=True)
        raise typer.Exit(EXIT_INPUT) from None
    except BrokenPipeError:  # | head: the reader has gone; nothing more to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the exit's flush must not fail again
        raise typer.Exit(1) from None
    finally:
        if not from_stdin:
            stream.close()
    out.flush()
    elapsed = time.perf_counter() - started
    lines = summary["lines"] if summary else 0
    rate = lines / elapsed if elapsed > 0 else 0.0
    sys.stderr.write(
        f"replay: {lines} lines, {events} alert events in {elapsed:.3f} s ({rate:.0f} lines/s)\n"
    )


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch replay")


if __name__ == "__main__":
    main()
