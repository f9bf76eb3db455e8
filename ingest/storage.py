"""Ingest's storage layout in InfluxDB: database setup, retention, downsampling, backfill, trends.

Retention policies and continuous queries are 1.x features; on 2.x/3.x the same intent is
bucket retention plus a task. That part is kept behind ``DownsamplingPlan`` (statements) so
another backend can render it differently. The HTTP client itself is ``servicekit.influx``.

Layout (database ``db``)::

    RP "raw"  (default)   obs   raw observations          retention: raw_retention (30d)
    RP "agg"              obs_1m  min/mean/max/count per 1 minute, per series
                                                          retention: agg_retention (104w)

The continuous query covers windows relative to now() only (``RESAMPLE FOR``); data that
arrives later than that -- a gateway's backlog after an outage -- is back-filled by
``backfill(start, end)``, which ingest calls for the minutes a late batch touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from servicekit.influx import InfluxError, InfluxTarget, query

__all__ = ["DownsamplingPlan", "TrendPoint", "setup_database", "trend"]


@dataclass(frozen=True, slots=True)
class DownsamplingPlan:
    """The InfluxQL that sets up retention and 1-minute downsampling for a database."""

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
    for stmt in plan.setup_statements():
        try:
            query(http, admin, stmt, write=True)
        except InfluxError as exc:
            if "continuous query not found" in str(exc):
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
