"""InfluxDB line protocol, encoded by hand for speed (property-tested against influxdb-client).

Schema (tags chosen for bounded cardinality; never a patient id)::

    obs,unit=U,bed=B,device=D,param=P,source=S,generation=G value=F,quality="q",gw_seq=Ni T
    wave,unit=U,bed=B,device=D,param=P,generation=G value=F T      (one point per sample)

``T`` is nanoseconds since the epoch of the device's measurement time, so a replayed batch
overwrites the same points (same series + timestamp): writes are idempotent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# InfluxDB 1.x unescapes only "\\," "\\=" "\\ " in tags (and "\\," "\\ " in measurements); any
# other backslash is literal, so backslashes are *not* doubled. A trailing backslash would
# escape the separator after it, and a line break would end the point: both are refused.
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEAS_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})


def _check_name(value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValueError(f"line protocol names cannot contain line breaks: {value!r}")
    if value.endswith("\\"):
        raise ValueError(f"line protocol names cannot end in a backslash: {value!r}")


def escape_tag(value: str) -> str:
    """Escape a tag key or value (commas, equals signs, spaces); refuse line breaks and a
    trailing backslash, which cannot be represented."""
    _check_name(value)
    return value.translate(_TAG_ESCAPES)


def escape_measurement(value: str) -> str:
    _check_name(value)
    return value.translate(_MEAS_ESCAPES)


def escape_field_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_float(value: float) -> str:
    """A float field that InfluxDB always types as float (``5.0``, never ``5``)."""
    if not math.isfinite(value):
        raise ValueError(f"line protocol cannot carry {value!r}")
    text = repr(float(value))
    return text if ("." in text or "e" in text or "inf" in text) else text + ".0"


def series_prefix(measurement: str, tags: Mapping[str, str]) -> str:
    """``measurement,tag=value,...`` with tags sorted; empty tag values are omitted."""
    parts = [escape_measurement(measurement)]
    parts += [f"{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v != ""]
    return ",".join(parts)


def encode_point(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, float | int | str | bool],
    timestamp_ns: int,
) -> str:
    """One line of line protocol. Tags are sorted (InfluxDB's preferred order); empty tag
    values are omitted (line protocol cannot carry them)."""
    if not fields:
        raise ValueError("a point needs at least one field")
    head = series_prefix(measurement, tags)
    fs: list[str] = []
    for k, v in fields.items():
        key = escape_tag(k)
        if isinstance(v, bool):
            fs.append(f"{key}={'true' if v else 'false'}")
        elif isinstance(v, int):
            fs.append(f"{key}={v}i")
        elif isinstance(v, float):
            fs.append(f"{key}={format_float(v)}")
        else:
            fs.append(f"{key}={escape_field_string(v)}")
    return f"{head} {','.join(fs)} {timestamp_ns}"
