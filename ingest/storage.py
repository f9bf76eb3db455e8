"""Ingest's storage layout in InfluxDB: database setup, retention, downsampling, backfill, trends,
and the charted record.

Retention policies and continuous queries are 1.x features; on 2.x/3.x the same intent is
bucket retention plus a task. That part is kept behind ``DownsamplingPlan`` (statements) so
another backend can render it differently. The HTTP client itself is ``servicekit.influx``.

Layout (database ``db``)::

    RP "raw"  (default)   obs   raw observations          retention: raw_retention (30d)
    RP "agg"              obs_1m  min/mean/max/count per 1 minute, per series
                                                          retention: agg_retention (104w)
    RP "charted"          charted  nurses' charted sets   retention: none (DURATION INF)

The continuous query covers windows relative to now() only (``RESAMPLE FOR``); data that
arrives later than that -- a gateway's backlog after an outage -- is back-filled by
``backfill(start, end)``, which ingest calls for the minutes a late batch touched.

**The charted record** (docs/charting.md). One point per ``ChartedSet``, at its
``observed_at`` (a back-entered set lands at the time it was observed), in the retention
policy ``charted``, which never expires (the medico-legal record)::

    charted,bed=B,by=USER,generation=G,set_id=S[,supersedes=X],unit=U
        <item>=<float> | <item>__str="…" | <item>__bool=true | <item>__json="…",
        charted_at="<ISO>",already_escalated=<bool>   <observed_at ns>

``set_id`` is a tag, so every set is its own series: a correction observed at the same time
as the set it corrects is a second point beside it, never an overwrite, and the same set
delivered twice writes the same point again (idempotent). An item's field name carries its
kind when it is not a number, because InfluxDB refuses a point whose field has another type
than earlier points of the shard (``crt_s`` charted once as ``3`` and once as ``"<2"``
would otherwise lose the second set). Nothing is ever rewritten or deleted: that a set was
superseded is a fact of its correction, and :func:`charted_sets` marks it when reading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from servicekit.influx import InfluxError, InfluxTarget, query

__all__ = [
    "CHARTED_MEASUREMENT",
    "CHARTED_RP",
    "ChartedRecord",
    "DownsamplingPlan",
    "TrendPoint",
    "charted_fields",
    "charted_items",
    "charted_sets",
    "setup_database",
    "trend",
    "write_charted",
]

#: the retention policy of the charted record: never expires
CHARTED_RP = "charted"
CHARTED_MEASUREMENT = "charted"
#: one shard group per year: the record grows slowly and is kept for ever, so few large shards
CHARTED_SHARD_DURATION = "52w"
#: field-name suffixes of the items that are not numbers (see the module docstring)
STR_SUFFIX, BOOL_SUFFIX, JSON_SUFFIX = "__str", "__bool", "__json"
#: fields of a charted point that are not items
_SET_FIELDS = frozenset({"charted_at", "already_escalated"})
_SET_TAGS = frozenset({"unit", "bed", "by", "generation", "set_id", "supersedes"})


@dataclass(frozen=True, slots=True)
class DownsamplingPlan:
    """The InfluxQL that sets up retention, 1-minute downsampling and the charted record's
    retention policy (no expiry) for a database."""

    db: str
    raw_retention: str = "30d"
    agg_retention: str = "104w"
    resample_every: str = "1m"
    resample_for: str = "10m"

    def setup_statements(self) -> list[str]:
        db = self.db
        return [
            f'CREATE DATABASE "{db}"',
            f'CREATE RETENTION POLICY "raw" ON "{db}" DURATION {self.raw_retention} '
            "REPLICATION 1 DEFAULT",
            f'ALTER RETENTION POLICY "raw" ON "{db}" DURATION {self.raw_retention} DEFAULT',
            f'CREATE RETENTION POLICY "agg" ON "{db}" DURATION {self.agg_retention} REPLICATION 1',
            f'CREATE RETENTION POLICY "{CHARTED_RP}" ON "{db}" DURATION INF REPLICATION 1 '
            f"SHARD DURATION {CHARTED_SHARD_DURATION}",
            # whatever it was created or altered to: the charted record never expires
            f'ALTER RETENTION POLICY "{CHARTED_RP}" ON "{db}" DURATION INF',
            f'DROP CONTINUOUS QUERY "cq_obs_1m" ON "{db}"',
            f'CREATE CONTINUOUS QUERY "cq_obs_1m" ON "{db}" '
            f"RESAMPLE EVERY {self.resample_every} FOR {self.resample_for} BEGIN "
            f"{self._select()} GROUP BY time(1m), * END",
        ]

    def _select(self) -> str:
        return (
            'SELECT min("value") AS "min", mean("value") AS "mean", max("value") AS "max", '
            f'count("value") AS "n" INTO "{self.db}"."agg"."obs_1m" FROM "{self.db}"."raw"."obs"'
        )

    def backfill_statement(self, start: datetime, end: datetime) -> str:
        """Recompute the 1-minute aggregates of ``[start, end)`` (minute-aligned outward)."""
        s = _floor_minute(start)
        e = _floor_minute(end) + timedelta(minutes=1)
        return (
            f"{self._select()} WHERE time >= '{_iso(s)}' AND time < '{_iso(e)}' "
            "GROUP BY time(1m), *"
        )


def _floor_minute(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(second=0, microsecond=0)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def setup_database(http: httpx.Client, admin: InfluxTarget, plan: DownsamplingPlan) -> None:
    """Create the database, retention policies and continuous query (idempotent)."""
    charted = f'CREATE RETENTION POLICY "{CHARTED_RP}"'
    for stmt in plan.setup_statements():
        try:
            query(http, admin, stmt, write=True)
        except InfluxError as exc:
            if "continuous query not found" in str(exc):
                continue
            # made earlier with another shard duration: kept as it is (the ALTER after it
            # makes sure it never expires)
            if stmt.startswith(charted) and "retention policy already exists" in str(exc):
                continue
            raise


@dataclass(frozen=True, slots=True)
class TrendPoint:
    at: datetime
    min: float | None
    mean: float | None
    max: float | None
    n: int


def trend(
    http: httpx.Client,
    target: InfluxTarget,
    *,
    bed: str,
    param: str,
    start: datetime,
    end: datetime,
    resolution_s: int,
) -> list[TrendPoint]:
    """Min/mean/max of one bed's parameter over ``[start, end)`` at ``resolution_s``.

    Resolutions of a minute or more read the downsampled series (cheap over long ranges);
    finer ones read raw observations.
    """
    if resolution_s <= 0:
        raise ValueError("resolution_s must be positive")
    if not (_safe(bed) and _safe(param)):
        raise ValueError("bed and param must be plain ids")
    where = (
        f"\"bed\" = '{bed}' AND \"param\" = '{param}' AND time >= '{_iso(start)}' "
        f"AND time < '{_iso(end)}'"
    )
    if resolution_s >= 60 and resolution_s % 60 == 0:
        # Mean of per-minute means: exact when minutes hold equal counts (1 Hz devices).
        q = (
            'SELECT min("min"), mean("mean"), max("max"), sum("n") '
            f'FROM "{target.db}"."agg"."obs_1m" WHERE {where} GROUP BY time({resolution_s}s)'
        )
    else:
        q = (
            'SELECT min("value"), mean("value"), max("value"), count("value") '
            f'FROM "{target.db}"."raw"."obs" WHERE {where} GROUP BY time({resolution_s}s)'
        )
    results = query(http, target, q)
    series = results[0].get("series") if results else None
    if not series:
        return []
    out = []
    for t, mn, mean, mx, n in series[0]["values"]:
        if not n:
            continue
        out.append(TrendPoint(datetime.fromtimestamp(t / 1000, tz=UTC), mn, mean, mx, int(n)))
    return out


def _safe(value: str) -> bool:
    return value.replace("-", "").replace("_", "").replace(".", "").isalnum()


# -- the charted record ----------------------------------------------------------------------
ChartItem = str | float | bool | list[Any] | dict[str, Any] | None


def charted_fields(items: Mapping[str, ChartItem]) -> dict[str, float | str | bool]:
    """The fields of a charted set's items: a number as a float field named as the item, a
    string as ``<item>__str``, a bool as ``<item>__bool``, and a list, an object or null as
    JSON text in ``<item>__json``. Every item gives exactly one field."""
    out: dict[str, float | str | bool] = {}
    for key, value in items.items():
        if isinstance(value, bool):
            out[key + BOOL_SUFFIX] = value
        elif isinstance(value, int | float):
            out[key] = float(value)
        elif isinstance(value, str):
            out[key + STR_SUFFIX] = value
        else:
            out[key + JSON_SUFFIX] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return out


def charted_items(fields: Mapping[str, Any]) -> dict[str, ChartItem]:
    """The items back from a charted point's fields (the inverse of :func:`charted_fields`;
    fields that are not items, and absent ones, are skipped)."""
    out: dict[str, ChartItem] = {}
    for name, value in fields.items():
        if value is None or name in _SET_FIELDS or name in _SET_TAGS or name == "time":
            continue
        if name.endswith(STR_SUFFIX):
            out[name[: -len(STR_SUFFIX)]] = str(value)
        elif name.endswith(BOOL_SUFFIX):
            out[name[: -len(BOOL_SUFFIX)]] = bool(value)
        elif name.endswith(JSON_SUFFIX):
            out[name[: -len(JSON_SUFFIX)]] = json.loads(value)
        else:
            out[name] = float(value)
    return out


def write_charted(http: httpx.Client, target: InfluxTarget, lines: list[str]) -> httpx.Response:
    """POST charted points to ``/write`` into the ``charted`` retention policy (the caller
    judges the response, as for observations: ``ingest.writer.classify``)."""
    auth = target.auth()
    return http.post(
        f"{target.url}/write",
        params={"db": target.db, "rp": CHARTED_RP, "precision": "ns"},
        content="\n".join(lines).encode(),
        auth=auth or httpx.USE_CLIENT_DEFAULT,
    )


def charted_rp_exists(http: httpx.Client, target: InfluxTarget) -> bool:
    """Whether the database has the charted record's retention policy (READ suffices)."""
    results = query(http, target, f'SHOW RETENTION POLICIES ON "{target.db}"')
    series = results[0].get("series") if results else None
    return any(row[0] == CHARTED_RP for s in series or [] for row in s["values"])


@dataclass(frozen=True, slots=True)
class ChartedRecord:
    """One charted set as stored, with what superseded it."""

    set_id: str
    unit: str
    bed: str
    by: str
    generation: str
    observed_at: datetime
    charted_at: datetime
    items: dict[str, ChartItem]
    already_escalated: bool
    #: the set this one corrects ("entered in error"), if it is a correction
    supersedes: str | None
    #: the corrections that name this set (oldest charted first); empty if it stands
    superseded_by: tuple[str, ...] = ()

    @property
    def superseded(self) -> bool:
        return bool(self.superseded_by)


#: the wire's time range: bounds for "every correction, whenever observed"
_ALL_TIME = ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z")


def charted_sets(
    http: httpx.Client,
    target: InfluxTarget,
    *,
    unit: str,
    bed: str,
    start: datetime,
    end: datetime,
) -> list[ChartedRecord]:
    """A bed's charted sets observed in ``[start, end)``, in observed then charted order, each
    marked with the corrections that supersede it (whenever those were observed: a correction
    may carry another observation time than the set it corrects). Superseded sets are
    returned, never hidden: the record keeps both."""
    if not (_safe(unit) and _safe(bed)):
        raise ValueError("unit and bed must be plain ids")
    src = f'"{target.db}"."{CHARTED_RP}"."{CHARTED_MEASUREMENT}"'
    who = f"\"unit\" = '{unit}' AND \"bed\" = '{bed}'"
    rows = _select_ns(
        http, target,
        f"SELECT * FROM {src} WHERE {who} AND time >= '{_iso_ns(start)}' "
        f"AND time < '{_iso_ns(end)}'",
    )
    corrections = _select_ns(
        http, target,
        f'SELECT "charted_at", "set_id", "supersedes" FROM {src} WHERE {who} '
        f"AND \"supersedes\" != '' AND time >= '{_ALL_TIME[0]}' AND time < '{_ALL_TIME[1]}'",
    )
    by_target: dict[str, list[tuple[str, str]]] = {}
    for c in corrections:
        by_target.setdefault(c["supersedes"], []).append((c["charted_at"] or "", c["set_id"]))
    out = []
    for r in rows:
        out.append(
            ChartedRecord(
                set_id=r["set_id"],
                unit=r["unit"],
                bed=r["bed"],
                by=r["by"],
                generation=r["generation"],
                observed_at=_from_ns(r["time"]),
                charted_at=datetime.fromisoformat(r["charted_at"]),
                items=charted_items(r),
                already_escalated=bool(r["already_escalated"]),
                supersedes=r.get("supersedes") or None,
                superseded_by=tuple(s for _, s in sorted(by_target.get(r["set_id"], []))),
            )
        )
    out.sort(key=lambda rec: (rec.observed_at, rec.charted_at, rec.set_id))
    return out


def _select_ns(http: httpx.Client, target: InfluxTarget, q: str) -> list[dict[str, Any]]:
    """Rows of one InfluxQL SELECT as dicts, times in integer nanoseconds (the charted record
    keeps the microseconds of ``observed_at``; ``servicekit.influx.query`` answers in ms)."""
    auth = target.auth()
    r = http.get(
        f"{target.url}/query",
        params={"db": target.db, "q": q, "epoch": "ns"},
        auth=auth or httpx.USE_CLIENT_DEFAULT,
    )
    try:
        body = r.json()
    except ValueError:
        raise InfluxError(f"{r.status_code}: {r.text[:200]}") from None
    results = body.get("results") or [{}]
    errors = [e for e in [body.get("error")] + [x.get("error") for x in results] if e]
    if r.status_code >= 300 or errors:
        raise InfluxError(f"{q[:100]!r}: {r.status_code} {errors}")
    rows: list[dict[str, Any]] = []
    for s in results[0].get("series") or []:
        cols = s["columns"]
        rows += [dict(zip(cols, v, strict=True)) for v in s["values"]]
    return rows


def _iso_ns(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def time_ns(t: datetime) -> int:
    """Exact nanoseconds since the epoch of an aware datetime (microsecond resolution)."""
    return (t - _EPOCH) // timedelta(microseconds=1) * 1000


def _from_ns(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)
