"""``wardwatch replay``: the alert engine on a recording or on a unit's stored history.

    wardwatch replay --input FILE --json [--config UNIT_RULES] [--state PATH]
    wardwatch replay --from-influx --unit U --start T --end T (--ward FILE | --registry URL)
                     [--generation real|test|demo] [--page-minutes N] [--save-input FILE]
                     [--labels FILE] ...
    wardwatch replay ... --compare RULES_A RULES_B [--json]

The shell around ``alerting.replay``: reads the file (``-``: stdin) line by line, or the
stored rows of ``[start, end)`` page by page (``alerting.replay_influx``; InfluxDB URL,
database and credentials from ``WM_INFLUX_URL``, ``WM_INFLUX_DB``, ``WM_INFLUX_USERNAME``,
``WM_INFLUX_PASSWORD``), prints one JSON line per alert event and then the summary line on
stdout, and nothing else there (the same input gives byte-identical stdout). Warnings
(refused commands, skipped stored data) and timings go to stderr.

``--compare A B`` runs the same input through both rule packs in one pass and prints only
their summaries side by side: ``{"rules": {"a": A, "b": B}, "a": {...}, "b": {...}}`` with
``beds_alerted`` in each. ``--state PATH`` resumes from the saved replay state if the file
exists and writes the state at the end (atomically, mode 0600; not written when the replay
stops at a malformed line). Exit 2 for a malformed line, a bad rules file, a state that
cannot be resumed (another unit, rules version or rules, or one that ends after the input's first
line) or bad options; exit 1 when InfluxDB cannot be read. Without ``--json`` a short table.

Also ``python -m alerting.replay_cli``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Annotated, Any

import typer

app = typer.Typer(add_completion=False, help="Replay a recorded stream through the alert engine.")

EXIT_INPUT = 2
EXIT_SOURCE = 1
_TABLE = "{t:<27} {bed:<10} {event:<12} {kind:<9} {rule:<16} {priority:<6} {level:<14} {state}"
GENERATIONS = ("real", "test", "demo")


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
    if "labelled_events" in s:
        med = s["median_lead_time_h"]
        out.append(
            f"labelled events {s['labelled_events']}, detected {s['detected']}, median lead "
            f"time {'-' if med is None else f'{med:g} h'}"
        )
    return out


def _compare_table(a: dict[str, Any], b: dict[str, Any], paths: tuple[str, str]) -> list[str]:
    rows: list[tuple[str, str, str]] = [("", f"A: {paths[0]}", f"B: {paths[1]}")]
    rows.append(("lines", str(a["lines"]), str(b["lines"])))
    rows.append(("bed-days", f"{a['bed_days']:.3f}", f"{b['bed_days']:.3f}"))
    for kind, row in a["alerts_per_bed_day"].items():
        for p, v in row.items():
            rows.append((f"{kind} {p} /bed-day", f"{v:g}", f"{b['alerts_per_bed_day'][kind][p]:g}"))
    for kind, n in a["beds_alerted"].items():
        rows.append((f"beds alerted, {kind}", str(n), str(b["beds_alerted"][kind])))
    if "labelled_events" in a:
        rows.append(("labelled events", str(a["labelled_events"]), str(b["labelled_events"])))
        rows.append(("detected", str(a["detected"]), str(b["detected"])))

        def med(s: dict[str, Any]) -> str:
            m = s["median_lead_time_h"]
            return "-" if m is None else f"{m:g}"

        rows.append(("median lead time h", med(a), med(b)))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return [f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]}" for r in rows]


def _fail(msg: str, code: int = EXIT_INPUT) -> typer.Exit:
    typer.echo(msg, err=True)
    return typer.Exit(code)


def _aware(name: str, text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"{name}: not an ISO-8601 time: {text!r}") from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise _fail(f"{name}: {text!r} has no time zone (give UTC, e.g. {text}Z)")
    return t.astimezone(UTC)


def _write_state(path: Path, state: dict[str, Any]) -> None:
    """Write the state atomically (a 0600 temporary file in the same directory, fsynced, then
    renamed over ``path``): a later run sees the old state or the new one, never half."""
    from servicekit.files import write_private

    write_private(path, json.dumps(state, sort_keys=True, separators=(",", ":")))


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"--state: cannot read {path}: {exc}") from None
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise _fail(f"--state: {path} is not a replay state (not JSON: {exc})") from None
    except RecursionError:
        raise _fail(f"--state: {path} is not a replay state (JSON nested too deeply)") from None
    if not isinstance(state, dict):
        raise _fail(f"--state: {path} is not a replay state")
    return state


def _context_source(ward: Path | None, registry: str | None, start: datetime) -> str:
    if (ward is None) == (registry is None):
        raise _fail("--from-influx needs the unit context: --ward FILE or --registry URL")
    if ward is not None:
        return str(ward)
    assert registry is not None
    parts = urllib.parse.urlsplit(registry)
    query = urllib.parse.parse_qs(parts.query)
    if "at" in query:
        return registry
    at = start.isoformat().replace("+00:00", "Z")
    q = (parts.query + "&" if parts.query else "") + urllib.parse.urlencode({"at": at})
    return urllib.parse.urlunsplit(parts._replace(query=q))


@app.command()
def replay(
    input_: Annotated[
        str | None,
        typer.Option(
            "--input", "-i", help="Recorded stream: JSON lines (see alerting/replay.py); - = stdin."
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="One JSON line per alert event, then a summary line."),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Unit rules file (TOML); the shipped defaults if not given."),
    ] = None,
    unit: Annotated[
        str | None,
        typer.Option(help="Unit name (alert ids derive from it; --from-influx reads this unit)."),
    ] = None,
    state_path: Annotated[
        Path | None,
        typer.Option(
            "--state", help="Resume from this saved state if it exists; save it at the end."
        ),
    ] = None,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(help="Two unit rules files: both summaries side by side, no event lines."),
    ] = None,
    from_influx: Annotated[
        bool, typer.Option("--from-influx", help="Replay the unit's stored history (WM_INFLUX_*).")
    ] = False,
    start: Annotated[
        str | None, typer.Option(help="--from-influx: from this time (ISO, aware).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="--from-influx: until this time (excluded).")
    ] = None,
    ward: Annotated[
        Path | None, typer.Option(help="--from-influx: ward file for the beds' ages and system.")
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option(help="--from-influx: the registry's unit-context URL (read as at --start)."),
    ] = None,
    generation: Annotated[
        str, typer.Option(help="--from-influx: which stored data: real, test or demo.")
    ] = "real",
    page_minutes: Annotated[
        float,
        typer.Option(help="--from-influx: at most this many minutes of history per query."),
    ] = 60.0,
    save_input: Annotated[
        Path | None,
        typer.Option(help="--from-influx: also write the replay lines read to this file (0600)."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="--from-influx: label lines (JSON, in time order) merged in by time: lead times."
        ),
    ] = None,
) -> None:
    """Run the alert engine on event time over a recorded stream; print every alert event."""
    started = time.perf_counter()
    from alerting.core.config import RulesError, load_rules
    from alerting.replay import BED_ID, MalformedLine, Replay, StateError

    def warn(msg: str) -> None:
        sys.stderr.write(f"replay: {msg}\n")

    # -- options -------------------------------------------------------------------------
    if (input_ is None) == (not from_influx):
        raise _fail("give --input FILE or --from-influx (one of them)")
    if not from_influx:
        for name, v in (("--start", start), ("--end", end), ("--ward", ward),
                        ("--registry", registry), ("--save-input", save_input),
                        ("--labels", labels)):
            if v is not None:
                raise _fail(f"{name}: only with --from-influx")
    if compare is not None and (config is not None or state_path is not None):
        raise _fail("--compare runs its own two rules files: not with --config or --state")
    if from_influx and unit is None:
        raise _fail("--from-influx needs --unit")
    unit_id = unit or "replay"
    if not BED_ID.match(unit_id):
        raise _fail(f"--unit: {unit_id!r} is not an id (letters, digits, _ . -)")
    if generation not in GENERATIONS:
        raise _fail(f"--generation: {generation!r} is not one of {', '.join(GENERATIONS)}")
    rule_paths: list[Path | None] = list(compare) if compare is not None else [config]
    try:
        rule_sets = [load_rules(p) for p in rule_paths]
    except RulesError as exc:
        raise _fail(str(exc)) from None
    replays = [Replay(r, unit=unit_id, warn=warn) for r in rule_sets]
    if compare is not None:
        replays[1].warn = lambda _m: None  # the same input: say it once
    if state_path is not None:
        saved = _read_state(state_path)
        if saved is not None:
            try:
                replays[0].restore(saved)
            except StateError as exc:
                raise _fail(f"--state: {state_path}: {exc}") from None

    # -- the source ----------------------------------------------------------------------
    stream: IO[bytes] | None = None
    records: Iterator[Any]
    source_note: list[str] = []
    save: IO[str] | None = None
    if from_influx:
        records = _influx_records(
            unit_id, start, end, ward, registry, generation, page_minutes, warn, source_note
        )
        if labels is not None:
            from alerting.replay_influx import LabelsError, read_labels, with_labels

            try:
                with labels.open(encoding="utf-8") as fh:
                    marks = read_labels(fh)
            except (OSError, UnicodeDecodeError) as exc:
                raise _fail(f"--labels: cannot read {labels}: {exc}") from None
            except LabelsError as exc:
                raise _fail(f"--labels: {labels}: {exc}") from None
            records = with_labels(records, marks)
        if save_input is not None:
            try:
                fd = os.open(save_input, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            except OSError as exc:
                raise _fail(f"--save-input: cannot write {save_input}: {exc.strerror}") from None
            os.fchmod(fd, 0o600)
            save = os.fdopen(fd, "w", encoding="utf-8")
    else:
        assert input_ is not None
        from_stdin = input_ == "-"
        try:
            stream = sys.stdin.buffer if from_stdin else open(input_, "rb")  # noqa: SIM115
        except OSError as exc:
            raise _fail(f"--input: cannot read {input_}: {exc.strerror or exc}") from None
        records = _lines(stream)

    out = sys.stdout
    dumps = json.dumps
    events = 0
    single = compare is None
    try:
        if single and not as_json:
            out.write(_TABLE.format(
                t="t", bed="bed", event="event", kind="kind", rule="rule", priority="prio",
                level="level", state="state",
            ) + "\n")
        for lineno, item in enumerate(records, start=1):
            if save is not None:
                save.write(dumps(item) + "\n")
            for r in replays:
                got = r.feed(item, lineno) if isinstance(item, bytes) else r.feed_record(
                    item, lineno
                )
                if not single:
                    continue
                for d in got:
                    events += 1
                    out.write(dumps(d) + "\n" if as_json else _table_row(d) + "\n")
        if single:
            summary = replays[0].summary()
            if as_json:
                out.write(dumps(summary) + "\n")
            else:
                out.write("\n".join(_table_summary(summary)) + "\n")
        else:
            assert compare is not None
            a, b = (r.summary(beds_alerted=True) for r in replays)
            names = (str(compare[0]), str(compare[1]))
            if as_json:
                out.write(dumps({"rules": {"a": names[0], "b": names[1]}, "a": a, "b": b}) + "\n")
            else:
                out.write("\n".join(_compare_table(a, b, names)) + "\n")
    except MalformedLine as exc:
        out.flush()
        raise _fail(f"replay: error: {exc}") from None
    except _SourceError as exc:
        out.flush()
        raise _fail(f"replay: {exc}", exc.code) from None
    except BrokenPipeError:  # | head: the reader has gone; nothing more to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the exit's flush must not fail again
        raise typer.Exit(1) from None
    finally:
        if stream is not None and stream is not sys.stdin.buffer:
            stream.close()
        if save is not None:
            save.close()
    out.flush()
    if state_path is not None:
        try:
            _write_state(state_path, replays[0].snapshot())
        except OSError as exc:
            raise _fail(
                f"--state: cannot write {state_path}: {exc.strerror or exc} (the output above "
                "is complete; the saved state is the previous one)",
                EXIT_SOURCE,
            ) from None
    elapsed = time.perf_counter() - started
    lines = replays[0].lines_here
    rate = lines / elapsed if elapsed > 0 else 0.0
    for note in source_note:
        sys.stderr.write(f"replay: {note}\n")
    sys.stderr.write(
        f"replay: {lines} lines, {events} alert events in {elapsed:.3f} s ({rate:.0f} lines/s)\n"
    )


class _SourceError(Exception):
    """The stored history could not be read (``code``: the exit status)."""

    def __init__(self, msg: str, code: int) -> None:
        super().__init__(msg)
        self.code = code


def _influx_records(
    unit: str,
    start: str | None,
    end: str | None,
    ward: Path | None,
    registry: str | None,
    generation: str,
    page_minutes: float,
    warn: Any,
    notes: list[str],
) -> Iterator[dict[str, Any]]:
    """Check the --from-influx options (exit 2 now), then the stored lines, lazily."""
    import math

    import httpx

    from alerting.replay_influx import Converter, InfluxReader, bed_specs
    from alerting.replay_influx import stream as influx_stream
    from servicekit.context import UnitContextError, load_unit_context, registry_token
    from servicekit.influx import InfluxError, InfluxTarget
    from servicekit.settings import ServiceSettings
    from wardwire.models import WIRE_TIME_MAX, WIRE_TIME_MIN

    if start is None or end is None:
        raise _fail("--from-influx needs --start and --end")
    t0, t1 = _aware("--start", start), _aware("--end", end)
    if not t0 < t1:
        raise _fail(f"--end ({end}) must be after --start ({start})")
    if t0 < WIRE_TIME_MIN or t1 > WIRE_TIME_MAX:
        raise _fail("--start/--end: outside [2000, 2100) UTC")
    if not (math.isfinite(page_minutes) and 0.01 <= page_minutes <= 7 * 24 * 60):
        raise _fail("--page-minutes: between 0.01 and one week")
    settings = ServiceSettings()
    source = _context_source(ward, registry, t0)
    try:
        ctx = load_unit_context(source, ca_file=settings.registry_ca_file, token=registry_token(
            source, settings.registry_token_value(), settings.registry_token_file))
    except UnitContextError as exc:
        raise _fail(f"unit context: {exc}") from None
    if ctx.unit != unit:
        raise _fail(f"the unit context is unit {ctx.unit!r}, --unit says {unit!r}")
    if ctx.generation.value != generation:
        warn(
            f"the unit context is a {ctx.generation.value} unit and ingest stores only its "
            f"generation; reading {generation} data (--generation)"
        )
    specs, without = bed_specs(ctx)
    target = InfluxTarget(
        settings.influx_url, settings.influx_db, settings.influx_username,
        settings.influx_password,
    )
    conv = Converter(specs, without=without, generation=generation, warn=warn)

    def gen() -> Iterator[dict[str, Any]]:
        t_read = time.perf_counter()
        with httpx.Client(timeout=60) as http:
            reader = InfluxReader(http, target)
            try:
                yield from influx_stream(
                    reader, conv, unit=unit, start=t0, end=t1,
                    page=timedelta(minutes=page_minutes),
                )
            except InfluxError as exc:
                raise _SourceError(f"InfluxDB {target.url} ({target.db}): {exc}", 1) from None
            except httpx.HTTPError as exc:
                raise _SourceError(
                    f"cannot read InfluxDB {target.url}: {type(exc).__name__}: {exc}", 1
                ) from None
            if reader.charted_missing:
                warn("the database has no 'charted' retention policy: no charted sets read")
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(conv.skipped.items())) or "none"
        notes.append(
            f"read {conv.rows} stored rows in {reader.queries} queries "
            f"({time.perf_counter() - t_read:.3f} s incl. replay); skipped: {skipped}"
        )

    return gen()


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="wardwatch replay")


if __name__ == "__main__":
    main()
