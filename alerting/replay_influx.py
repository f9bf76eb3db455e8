"""Stored history as a replay input: InfluxDB rows (as ingest stored them) -> replay lines.

``wardwatch replay --from-influx`` reads a unit's device observations and charted sets for a
time range and replays them. The conversion is pure (:class:`Converter`: rows in, replay line
dicts out, in time order); the HTTP paging is a thin shell (:class:`InfluxReader`,
:func:`stream`) over ``servicekit.influx``.

*What is read* (the layout is ingest's: ``ingest.lineproto``, ``ingest.storage``; alerting may
not import ingest, so the few names it needs are repeated here and an integration test writes
through ingest's own code and reads back through this module):

* ``"raw"."obs"``: one point per device value, tags ``unit bed device param source
  generation``, fields ``value``, ``quality`` and, on some points, ``time_source``. Only the
  raw retention policy is read (30 days by default): the 1-minute aggregates are not what the
  engine saw.
* ``"charted"."charted"``: one point per nurse's set at its ``observed_at``, an item per
  field (a number as ``<item>``, text as ``<item>__str``, a boolean as ``<item>__bool``, a list,
  an object or null as ``<item>__json``).

*How rows become lines*, mirroring the live engine's intake (``alerting.core.items``
``from_observation`` and ``alerting.service``):

* device values map wire code -> engine key (``HR`` -> ``hr_bpm``, ``PR`` -> ``pr_bpm``,
  ``O2_DEVICE`` -> ``oxygen.device`` ...); parameters no score uses are skipped (counted
  ``not_scored``). A value ingest stored with quality ``invalid`` becomes ``null`` (missing,
  never normal); ``questionable`` values go on a line with ``"quality": "questionable"`` (the
  engine takes them once confirmed); a categorical value outside its table becomes ``null``.
  A quality tag other than these three is not replayed (counted ``unknown_quality``), never
  taken as valid; a point stored without one is valid.
  Values the gateway re-timed (``time_source = gateway``) are skipped (``retimed``): the live
  engine never scores them either.
* provenance: the ``source`` tag (``measured`` / ``entered``) is the line's ``source``. Values
  of one bed, time, device, source and quality share a line.
* charted sets: one ``entered`` line per set at its ``observed_at``. A set the scorer's
  vocabulary refuses is skipped (``chart_refused``), as the live service dead-letters it. A
  set that a later correction supersedes is replayed as it stood (the engine saw it then);
  the correction is a line of its own at its own ``observed_at``.
* generation: only points of the chosen generation (default ``real``) are read.
* ages and systems come from the unit context (a ward file, or the registry's context as it
  was at the range's start): InfluxDB holds no date of birth. The first line of each bed
  declares ``system`` and ``dob``. Rows of a bed the context does not know (``unknown_bed``)
  or of a bed without a child's date of birth (``no_admission``) are skipped and counted.

Lines are ordered by time, then bed, then device lines before charted ones, then device or
set id: the same stored data always gives the same lines.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from alerting.core.items import CATEGORICAL_KEYS, NUMERIC_KEYS
from alerting.pews import PewsInputError, parse_observation
from servicekit.influx import InfluxError, InfluxTarget
from wardwire.context import UnitContext
from wardwire.params import BY_CODE

__all__ = [
    "BedSpec",
    "Converter",
    "InfluxReader",
    "LabelsError",
    "bed_specs",
    "chart_items",
    "obs_input",
    "read_labels",
    "stream",
    "with_labels",
]

OBS_RP, OBS_MEASUREMENT = "raw", "obs"
#: the stored qualities (``wardwire.models.Quality``); a value of any other is not replayed
KNOWN_QUALITIES = frozenset({"valid", "questionable", "invalid"})
CHARTED_RP, CHARTED_MEASUREMENT = "charted", "charted"
STR_SUFFIX, BOOL_SUFFIX, JSON_SUFFIX = "__str", "__bool", "__json"
#: what a charted point carries besides its items (fields and tags)
CHART_NOT_ITEMS = frozenset(
    {"time", "charted_at", "already_escalated", "unit", "bed", "by", "generation", "set_id",
     "supersedes"}
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BedSpec:
    """What a bed's first line declares: the scoring system and the child's date of birth."""

    system: str
    dob: date


def bed_specs(ctx: UnitContext) -> tuple[dict[str, BedSpec], dict[str, str]]:
    """Per bed of the context, its spec; and the beds that have none, with why."""
    specs: dict[str, BedSpec] = {}
    without: dict[str, str] = {}
    for b in ctx.beds:
        if b.dob is None:
            without[b.id] = "no child with a date of birth in the context"
        else:
            specs[b.id] = BedSpec(ctx.scoring_system, b.dob)
    return specs, without


def obs_input(
    param: str, value: object, quality: str, time_source: str | None
) -> tuple[str, object] | str:
    """The engine key and value of one stored device value, or why it is not replayed.

    Mirrors ``alerting.core.items.from_observation`` (a unit test holds the two together)."""
    if time_source == "gateway":
        return "retimed"
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "bad_value"
    out: object
    if param in NUMERIC_KEYS:
        key, out = NUMERIC_KEYS[param], value
        if not math.isfinite(float(value)):
            return "bad_value"
    elif param in CATEGORICAL_KEYS:
        p = BY_CODE[param]
        key = CATEGORICAL_KEYS[param]
        out = p.category(value) if math.isfinite(value) and p.plausible(value) else None
    else:
        return "not_scored"
    if quality == "invalid":
        out = None
    return key, out


def chart_items(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A charted point's items (the inverse of ingest's ``charted_fields``); absent (null)
    fields and those that are not items are skipped."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None or name in CHART_NOT_ITEMS:
            continue
        if name.endswith(STR_SUFFIX):
            out[name[: -len(STR_SUFFIX)]] = str(value)
        elif name.endswith(BOOL_SUFFIX):
            out[name[: -len(BOOL_SUFFIX)]] = bool(value)
        elif name.endswith(JSON_SUFFIX):
            out[name[: -len(JSON_SUFFIX)]] = json.loads(value)
        else:
            out[name] = value
    return out


def _iso(ns: int) -> str:
    t = _EPOCH + timedelta(microseconds=ns // 1000)
    return t.isoformat().replace("+00:00", "Z")


class Converter:
    """Rows of one page (a time window) -> replay line dicts, in order. Keeps which beds it
    has declared (so each bed's first line carries its spec) and what it skipped, by reason.

    Args:
        specs: per bed, its system and date of birth (:func:`bed_specs`).
        without: beds known to the context that have no spec, with why (counted apart).
        generation: only rows of this generation are used.
        warn: called once per bed or set that is skipped for a reason worth telling.
    """

    def __init__(
        self,
        specs: Mapping[str, BedSpec],
        *,
        without: Mapping[str, str] | None = None,
        generation: str = "real",
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.specs = dict(specs)
        self.without = dict(without or {})
        self.generation = generation
        self.warn = warn or (lambda _m: None)
        self.declared: set[str] = set()
        self.skipped: Counter[str] = Counter()
        self.rows = 0
        self._warned: set[str] = set()

    def _bed_ok(self, bed: object) -> bool:
        if isinstance(bed, str) and bed in self.specs:
            return True
        why = "no_admission" if bed in self.without else "unknown_bed"
        self.skipped[why] += 1
        if bed not in self._warned:
            self._warned.add(str(bed))
            detail = self.without.get(str(bed), "not a bed of the unit context")
            self.warn(f"bed {bed}: {detail}: its stored data is not replayed")
        return False

    def page(
        self, obs_rows: Iterable[Mapping[str, Any]], chart_rows: Iterable[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """The replay lines of one page's rows (each row a dict of its columns, ``time`` in
        integer nanoseconds), sorted; a page must hold every row of its time window."""
        groups: dict[tuple[int, str, int, str, str, str], dict[str, Any]] = {}
        for r in obs_rows:
            self.rows += 1
            if r.get("generation", self.generation) != self.generation:
                self.skipped["other_generation"] += 1
                continue
            bed = r.get("bed")
            if not self._bed_ok(bed):
                continue
            q = r.get("quality")
            q = "valid" if q is None else q  # a point stored without one
            if q not in KNOWN_QUALITIES:
                # never taken as valid (found by red-team): skipped and counted
                self.skipped["unknown_quality"] += 1
                continue
            got = obs_input(str(r.get("param")), r.get("value"), q, r.get("time_source"))
            if isinstance(got, str):
                self.skipped[got] += 1
                continue
            source = "entered" if r.get("source") == "entered" else "measured"
            quality = "questionable" if r.get("quality") == "questionable" else "valid"
            gk = (int(r["time"]), str(bed), 0, str(r.get("device") or ""), source, quality)
            inputs = groups.setdefault(gk, {})
            inputs[got[0]] = got[1]
        lines: list[tuple[tuple[int, str, int, str, str, str], dict[str, Any]]] = []
        for gk, inputs in groups.items():
            rec: dict[str, Any] = {"t": _iso(gk[0]), "bed": gk[1]}
            rec["inputs"] = dict(sorted(inputs.items()))
            rec["source"] = gk[4]
            if gk[5] == "questionable":
                rec["quality"] = "questionable"
            lines.append((gk, rec))
        for r in chart_rows:
            self.rows += 1
            if r.get("generation", self.generation) != self.generation:
                self.skipped["other_generation"] += 1
                continue
            bed = r.get("bed")
            if not self._bed_ok(bed):
                continue
            set_id = str(r.get("set_id") or "")
            try:
                items = chart_items(r)
            except (ValueError, RecursionError) as exc:  # a damaged point (found by red-team)
                self.skipped["chart_refused"] += 1
                why = "nested too deeply" if isinstance(exc, RecursionError) else exc
                self.warn(f"charted set {set_id} of bed {bed}: a field is not JSON ({why}): "
                          "not replayed")
                continue
            try:
                parse_observation(items)
            except PewsInputError as exc:
                self.skipped["chart_refused"] += 1
                self.warn(f"charted set {set_id} of bed {bed}: {exc}: not replayed")
                continue
            if not items:
                self.skipped["chart_empty"] += 1
                continue
            gk = (int(r["time"]), str(bed), 1, set_id, "entered", "valid")
            lines.append((gk, {"t": _iso(gk[0]), "bed": gk[1], "inputs": items,
                               "source": "entered"}))
        lines.sort(key=lambda x: x[0])
        out = []
        for _, rec in lines:
            bed = rec["bed"]
            if bed not in self.declared:
                self.declared.add(bed)
                spec = self.specs[bed]
                rec = {"t": rec["t"], "bed": bed, "system": spec.system,
                       "dob": spec.dob.isoformat(), **{k: v for k, v in rec.items()
                                                       if k not in ("t", "bed")}}
            out.append(rec)
        return out


# -- the shell: InfluxQL over HTTP, page by page --------------------------------------------
def _q_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class InfluxReader:
    """Reads one page of a unit's stored rows (``/query``, ``epoch=ns``)."""

    def __init__(self, http: httpx.Client, target: InfluxTarget) -> None:
        self.http = http
        self.target = target
        self.charted_missing = False
        self.queries = 0

    def _select(self, q: str) -> list[dict[str, Any]]:
        t = self.target
        auth = t.auth()
        self.queries += 1
        r = self.http.get(
            f"{t.url}/query", params={"db": t.db, "q": q, "epoch": "ns"},
            auth=auth or httpx.USE_CLIENT_DEFAULT,
        )
        try:
            body = r.json()
        except ValueError:
            raise InfluxError(f"{r.status_code}: {r.text[:200]}") from None
        results = body.get("results") or [{}]
        errors = [e for e in [body.get("error")] + [x.get("error") for x in results] if e]
        if r.status_code >= 300 or errors:
            raise InfluxError(f"{r.status_code} {errors}")
        rows: list[dict[str, Any]] = []
        for s in results[0].get("series") or []:
            cols = s["columns"]
            rows += [dict(zip(cols, v, strict=True)) for v in s["values"]]
        return rows

    def obs(self, unit: str, generation: str, a: datetime, b: datetime) -> list[dict[str, Any]]:
        db = self.target.db
        return self._select(
            'SELECT "value", "quality", "time_source", "bed", "device", "param", "source", '
            f'"generation" FROM "{db}"."{OBS_RP}"."{OBS_MEASUREMENT}" '
            f"WHERE \"unit\" = '{unit}' AND \"generation\" = '{generation}' "
            f"AND time >= '{_q_time(a)}' AND time < '{_q_time(b)}'"
        )

    def next_time(self, unit: str, generation: str, a: datetime, b: datetime) -> datetime | None:
        """The time of the first stored row (device or charted) in ``[a, b)``, or None."""
        db = self.target.db
        where = (
            f"WHERE \"unit\" = '{unit}' AND \"generation\" = '{generation}' "
            f"AND time >= '{_q_time(a)}' AND time < '{_q_time(b)}'"
        )
        found = self._select(
            f'SELECT "value" FROM "{db}"."{OBS_RP}"."{OBS_MEASUREMENT}" {where} LIMIT 1'
        )
        if not self.charted_missing:
            try:
                found += self._select(
                    f'SELECT "charted_at" FROM "{db}"."{CHARTED_RP}"."{CHARTED_MEASUREMENT}" '
                    f"{where} LIMIT 1"
                )
            except InfluxError as exc:
                if "retention policy not found" not in str(exc):
                    raise
                self.charted_missing = True
        if not found:
            return None
        ns = min(int(r["time"]) for r in found)
        return _EPOCH + timedelta(microseconds=ns // 1000)

    def charted(
        self, unit: str, generation: str, a: datetime, b: datetime
    ) -> list[dict[str, Any]]:
        if self.charted_missing:
            return []
        db = self.target.db
        try:
            return self._select(
                f'SELECT * FROM "{db}"."{CHARTED_RP}"."{CHARTED_MEASUREMENT}" '
                f"WHERE \"unit\" = '{unit}' AND \"generation\" = '{generation}' "
                f"AND time >= '{_q_time(a)}' AND time < '{_q_time(b)}'"
            )
        except InfluxError as exc:
            if "retention policy not found" not in str(exc):
                raise
            self.charted_missing = True  # a database set up before the charted record
            return []


#: a page that returned more rows than this halves the next page (memory stays bounded when
#: the data is denser than ``page`` assumed); one with fewer than a quarter doubles it again
PAGE_ROWS = 100_000
MIN_PAGE = timedelta(seconds=1)
#: the first page: small, so a dense unit's first query is not its largest
FIRST_PAGE = timedelta(minutes=1)


def stream(
    reader: InfluxReader,
    conv: Converter,
    *,
    unit: str,
    start: datetime,
    end: datetime,
    page: timedelta,
    page_rows: int = PAGE_ROWS,
) -> Iterator[dict[str, Any]]:
    """The replay lines of ``[start, end)``, read one page of time at a time.

    Memory is bounded by one page of rows, whatever the range: pages start at a minute (or
    ``page`` if shorter); a page that returned more than ``page_rows`` rows halves the next
    one (down to a second), and one with fewer than a quarter of that doubles it (up to
    ``page``). After an empty page the reader is asked where the next stored row is, so
    a long range with little data (a month of one bed's spot checks, a unit closed for a
    week) costs a few queries per gap, not one per page."""
    if page <= timedelta(0):
        raise ValueError("page must be positive")
    size = min(page, FIRST_PAGE)
    a = start
    while a < end:
        b = min(a + size, end)
        obs = reader.obs(unit, conv.generation, a, b)
        chart = reader.charted(unit, conv.generation, a, b)
        rows = len(obs) + len(chart)
        yield from conv.page(obs, chart)
        a = b
        if rows > page_rows:
            size = max(size / 2, MIN_PAGE)
        elif rows < page_rows // 4:
            size = min(size * 2, page)
        if rows == 0 and a < end:
            nxt = reader.next_time(unit, conv.generation, a, end)
            if nxt is None:
                return
            a = max(a, nxt)


# -- labels from elsewhere -------------------------------------------------------------------
class LabelsError(ValueError):
    """A labels file that cannot be merged (1-based line number and why)."""


def read_labels(lines: Iterable[str]) -> list[tuple[datetime, dict[str, Any]]]:
    """Label lines (``{"t", "bed", "label"}``, JSON, in time order) with their parsed times.

    Only what merging needs is checked here (JSON objects with an aware ``t``, in order, and a
    ``label`` key); the replay checks the rest of each line as it does any label line.

    Raises:
        LabelsError: naming the line.
    """
    out: list[tuple[datetime, dict[str, Any]]] = []
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError as exc:
            raise LabelsError(f"line {n}: not JSON: {exc}") from None
        except RecursionError:
            raise LabelsError(f"line {n}: not JSON: nested too deeply") from None
        if not isinstance(rec, dict) or "label" not in rec:
            raise LabelsError(f"line {n}: not a label line (an object with t, bed and label)")
        try:
            t = datetime.fromisoformat(str(rec.get("t")))
        except ValueError:
            raise LabelsError(f"line {n}: t: not an ISO-8601 time") from None
        if t.tzinfo is None or t.utcoffset() is None:
            raise LabelsError(f"line {n}: t: no time zone")
        try:
            t = t.astimezone(UTC)
        except (OverflowError, ValueError):
            raise LabelsError(f"line {n}: t: cannot be represented in UTC") from None
        if out and t < out[-1][0]:
            raise LabelsError(f"line {n}: t: before the previous label's (keep them in order)")
        out.append((t, rec))
    return out


def with_labels(
    lines: Iterable[dict[str, Any]], labels: list[tuple[datetime, dict[str, Any]]]
) -> Iterator[dict[str, Any]]:
    """The replay lines with the labels merged in by time; a label goes after the lines of its
    own time (so an alert raised at that time counts before it). Labels before the first line
    come first; those after the last come last."""
    i = 0
    for rec in lines:
        t = datetime.fromisoformat(rec["t"])
        while i < len(labels) and labels[i][0] < t:
            yield labels[i][1]
            i += 1
        yield rec
    for _, lab in labels[i:]:
        yield lab
