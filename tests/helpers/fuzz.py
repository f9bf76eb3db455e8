"""Payload generators and the expected-fate oracle of the fuzz suite (issue 8).

Three layers, shared by ``tests/unit/core/test_wardwire_fuzz.py`` (the contract on its own),
``tests/integration/test_fuzz_live.py`` (the contract behind real mosquitto + influxd + ingest +
alerting) and ``bench/fuzz_live.py`` (the same at 100,000 payloads):

* JSON text that ``json.dumps`` cannot write: :class:`Raw` fragments (``NaN``, ``1e400``,
  10,000 nested brackets, lone surrogate escapes) and :class:`Pairs` (an object with duplicate
  keys). :func:`to_json` serialises documents made of dicts, lists, scalars and those two.
* Poison pools (:data:`POISON_NUMBERS`, :data:`POISON_TIMES`, :data:`POISON_STRINGS`,
  :data:`POISON_STRUCTURES`), valid seed documents for every model of
  ``wardwire.models.WIRE_MODELS`` (:func:`seed_documents`), structured mutations of them
  (:func:`mutate`) and byte-level mutations (:func:`mutate_bytes`). All randomness comes from a
  ``random.Random`` the caller passes (hypothesis passes its own, so failures shrink and replay).
* The live fuzz: :class:`LiveFuzzer` makes seeded :class:`LiveCase` s (a topic's gateway, the
  payload bytes, what the generator intends) and :func:`expected_fate` says what the intended
  behaviour does with each (points stored, dead letters from ingest and from alerting), decided
  by the wire contract and the ward file, never by the services under test.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ValidationError

from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import (
    DEVICE_TIME_MAX,
    DEVICE_TIME_MIN,
    MAX_BATCH_OBSERVATIONS,
    WIRE_TIME_MAX,
    WIRE_TIME_MIN,
    AckCommand,
    Alert,
    AlertCommand,
    AlertEvent,
    ChartedSet,
    ContextChanged,
    DeadLetter,
    DeviceStatus,
    EngineStatus,
    GatewayStatus,
    ObservationBatch,
    ScoreUpdate,
    TechnicalEvent,
    WireModel,
)
from wardwire.params import PARAMETERS, Parameter, ParamKind

INT64_MAX = 2**63 - 1

# -- JSON text ---------------------------------------------------------------------------------


class Raw(str):
    """JSON text inserted verbatim (what ``json.dumps`` will not write)."""

    __slots__ = ()


class Pairs(list[tuple[str, Any]]):
    """A JSON object as ``(key, value)`` pairs, so a key may occur more than once."""

    __slots__ = ()


def to_json(doc: Any, *, ascii_only: bool = True, sep: str = " ") -> str:
    """Serialise ``doc`` (dicts, :class:`Pairs`, lists, scalars, :class:`Raw`) as JSON text.

    Floats are written as Python writes them (``NaN``/``Infinity`` for the non-finite ones, as
    ``json.dumps`` does), strings escaped with ``\\uXXXX`` for non-ASCII when ``ascii_only``.
    """
    out: list[str] = []
    item_sep, key_sep = "," + sep, ":" + sep

    def emit(v: Any) -> None:
        if isinstance(v, Raw):
            out.append(str(v))
        elif v is None:
            out.append("null")
        elif v is True:
            out.append("true")
        elif v is False:
            out.append("false")
        elif isinstance(v, int):
            out.append(str(v))
        elif isinstance(v, float):
            out.append(json.dumps(v))
        elif isinstance(v, str):
            out.append(json.dumps(v, ensure_ascii=ascii_only))
        elif isinstance(v, dict | Pairs):
            items = v.items() if isinstance(v, dict) else v
            out.append("{")
            for i, (k, x) in enumerate(items):
                if i:
                    out.append(item_sep)
                out.append(json.dumps(k, ensure_ascii=ascii_only))
                out.append(key_sep)
                emit(x)
            out.append("}")
        elif isinstance(v, list | tuple):
            out.append("[")
            for i, x in enumerate(v):
                if i:
                    out.append(item_sep)
                emit(x)
            out.append("]")
        else:  # pragma: no cover - a generator bug
            raise TypeError(f"cannot serialise {type(v).__name__}")

    emit(doc)
    return "".join(out)


def encode(text: str) -> bytes:
    """UTF-8, keeping lone surrogates as their (invalid) 3-byte forms: a fuzz input too."""
    return text.encode("utf-8", "surrogatepass")


# -- poison pools ------------------------------------------------------------------------------

#: Numbers that are extreme, of the wrong type, or not JSON numbers at all.
POISON_NUMBERS: tuple[Any, ...] = (
    0,
    -1,
    1,
    7.0,
    -0.0,
    0.5,
    2**31,
    2**53 + 1,
    INT64_MAX,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    5e-324,
    1e-300,
    float("nan"),
    float("inf"),
    float("-inf"),
    Raw("1" + "0" * 400),
    Raw("-" + "9" * 4300),
    Raw("1e400"),
    Raw("-1e400"),
    Raw("1e-400"),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("-Infinity"),
    Raw("-0"),
    Raw("0e0"),
    Raw("1E+2"),
    Raw("01"),
    Raw("1."),
    Raw(".5"),
    Raw("+1"),
    Raw("0x10"),
    True,
    False,
    None,
    "7",
    "100",
    "1e3",
    "NaN",
    "Infinity",
    "",
)

#: Times: unrepresentable after a UTC offset, outside [2000, 2100), leap seconds, malformed,
#: epoch numbers; and the valid edges (which must validate *and* stay in range).
POISON_TIMES: tuple[Any, ...] = (
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T23:59:59.999999Z",
    "1500-01-01T00:00:00Z",
    "1700-06-01T00:00:00Z",
    "1899-12-31T23:59:59Z",
    "1900-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "1999-12-31T23:59:59.999999Z",
    "2000-01-01T00:00:00+00:01",
    "2000-01-01T00:00:00Z",
    "2000-01-01T14:00:00+14:00",
    "2099-12-31T23:59:59.999999Z",
    "2099-12-31T23:59:59+14:00",
    "2100-01-01T13:59:59+14:00",
    "2099-12-31T10:00:00-14:00",
    "2100-01-01T00:00:00Z",
    "2199-12-31T23:59:59.999999Z",
    "2200-01-01T00:00:00Z",
    "2024-06-30T23:59:60Z",
    "2016-12-31T23:59:60+00:00",
    "2024-02-30T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T00:00:00",
    "2024-01-01T00:00:00+24:00",
    "2024-01-01T00:00:00+14:01",
    "2024-01-01T00:00:00.123456789Z",
    "2024-01-01T00:00:00,5Z",
    "2024-01-01 00:00:00Z",
    "2024-01-01",
    "20240101T000000Z",
    "\uff12\uff10\uff12\uff14-01-01T00:00:00Z",  # full-width digits
    "now",
    "",
    1700000000,
    1.7e9,
    Raw("1700000000000000000000"),
)

#: Strings: empty, at and beyond id limits, control characters, unicode, lone surrogates,
#: topic wildcards; and enum-ish values, so mutations also combine valid words in odd places.
POISON_STRINGS: tuple[Any, ...] = (
    "",
    " ",
    "a" * 64,
    "a" * 65,
    "\u00e9",
    "\U0001f600",
    "\u0000",
    "a\nb",
    "\u202egw1",
    "gw1/../#",
    "+",
    "#",
    "$SYS",
    Raw('"\\ud800"'),
    Raw('"\\udfff\\ud800"'),
    Raw('"\\u0000\\u001f"'),
    Raw('"\\uZZZZ"'),
    Raw('"unterminated'),
    "test",
    "real",
    "demo",
    "valid",
    "invalid",
    "questionable",
    "gateway",
    "device",
    "measured",
    "entered",
    "lwt",
    "HR",
    "hr",
    "PLETH",
    "/min",
    "%",
    "obs_batch",
    "dead_letter",
)


def poison_structures(huge: int = 100_000) -> tuple[Any, ...]:
    """Containers, nesting far beyond any parser's limit, and huge strings/lists."""
    return (
        [],
        {},
        [[]],
        {"": None},
        [None, None, None],
        Raw("[" * 10_000 + "]" * 10_000),
        Raw('{"a":' * 3_000 + "1" + "}" * 3_000),
        Raw("[" * 100 + "1" + "]" * 100),
        "x" * huge,
        "\U0001f600" * (huge // 4),
        Raw("[" + "0," * MAX_BATCH_OBSERVATIONS + "0]"),  # one more than a batch may hold
    )


POISON_STRUCTURES = poison_structures()

#: Every poison value, for "each value at each path".
POISON_VALUES: tuple[Any, ...] = POISON_NUMBERS + POISON_TIMES + POISON_STRINGS + POISON_STRUCTURES


# -- seed documents ----------------------------------------------------------------------------

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def seed_documents(now: datetime = T0) -> dict[type[WireModel], list[dict[str, Any]]]:
    """Valid JSON documents (as dicts) of every wire model, using as many fields as possible."""
    t = now.isoformat()
    later = (now + timedelta(seconds=1)).isoformat()
    o_plain = {
        "device_id": "d1",
        "code": "HR",
        "value": 120,
        "unit": "/min",
        "measured_at": t,
        "received_at": later,
    }
    o_full = {
        "device_id": "d1",
        "code": "SPO2",
        "value": 101.5,
        "unit": "%",
        "measured_at": t,
        "received_at": later,
        "quality": "invalid",
        "quality_reason": "SPO2=101.5 outside [0, 100]",
        "source": "measured",
        "time_source": "gateway",
        "device_time": "1970-01-01T00:00:00Z",
    }
    o_charted = {
        "device_id": "d1",
        "code": "AVPU",
        "value": 2,
        "unit": "{score}",
        "measured_at": t,
        "received_at": t,
        "quality": "questionable",
        "source": "entered",
    }
    wave = {
        "device_id": "d1",
        "code": "PLETH",
        "unit": "{unitless}",
        "start": t,
        "received_at": later,
        "sample_rate_hz": 75.0,
        "samples": [0.0, 1.5, -2.25, 1000000],
        "quality": "valid",
        "time_source": "device",
    }
    batch = {
        "schema_version": 1,
        "kind": "obs_batch",
        "gateway_id": "gw1",
        "seq": 7,
        "sent_at": later,
        "generation": "test",
        "observations": [o_plain, o_full, o_charted],
        "waveforms": [wave],
    }
    dev = {
        "schema_version": 1,
        "kind": "device_status",
        "gateway_id": "gw1",
        "device_id": "d1",
        "state": "connected",
        "at": t,
        "detail": "ok",
        "battery_pct": 55.5,
        "last_reading_at": t,
        "readings": 10,
        "frames_rejected": 1,
        "values_invalid": 2,
        "values_retimed": 3,
        "values_refused": 0,
        "reconnects": 4,
    }
    gw = {
        "schema_version": 1,
        "kind": "gateway_status",
        "gateway_id": "gw1",
        "state": "online",
        "reason": "heartbeat",
        "at": t,
        "generation": "test",
        "agent_version": "1.0",
        "outbox_depth": 3,
        "outbox_dropped": 0,
        "clock_skew_ms": {"d1": -12.5, "d2": 0},
        "devices": [dev],
    }
    lwt = {
        "gateway_id": "gw1",
        "state": "offline",
        "reason": "lwt",
        "generation": "test",
    }
    score = {
        "schema_version": 1,
        "kind": "score_update",
        "unit": "u1",
        "bed_id": "b1",
        "at": t,
        "system": "bedside_pews",
        "table_version": "1",
        "band": "BP-C",
        "total": 8,
        "complete": False,
        "missing": ["sbp"],
        "items": {"hr": 4, "rr": 2, "sbp": None},
        "mode": "provisional",
        "generation": "test",
        "inputs": [
            {
                "code": "HR",
                "value": 185,
                "source": "measured",
                "device_id": "d1",
                "measured_at": t,
            }
        ],
        "escalation": {"urgent": True, "level": "high", "n": 2, "none": None},
    }
    alert = {
        "schema_version": 1,
        "kind": "alert",
        "alert_id": "a-0123456789ab",
        "unit": "u1",
        "bed_id": "b1",
        "alert_kind": "clinical",
        "condition": "pews",
        "priority": "high",
        "state": "active",
        "raised_at": t,
        "updated_at": later,
        "escalation_step": 1,
        "acknowledged_by": None,
        "message": "bedside_pews 8 (partial; missing sbp)",
        "generation": "test",
        "score_total": 8,
    }
    event = {
        "schema_version": 1,
        "kind": "alert_event",
        "event": "raised",
        "at": later,
        "by": None,
        "alert": alert,
    }
    ack = {
        "schema_version": 1,
        "kind": "ack",
        "command_id": "c1",
        "alert_id": "a-0123456789ab",
        "by": "nurse-7",
        "at": later,
    }
    dl = {
        "schema_version": 1,
        "kind": "dead_letter",
        "service": "ingest",
        "reason": "malformed: seq: Input should be a valid integer",
        "topic": "wm/v1/gw/s1/u1/gw1/obs",
        "received_at": t,
        "payload_b64": "bm90IGpzb24=",
        "payload_bytes": 8,
    }
    tech = {
        "schema_version": 1,
        "kind": "technical_event",
        "service": "ingest",
        "event": "seq_gap",
        "gateway_id": "gw1",
        "at": t,
        "detail": "3 batches missing around seq 9",
        "count": 3,
    }
    engine = {
        "schema_version": 1,
        "kind": "engine_status",
        "instance": "alerting-s1-u1",
        "unit": "u1",
        "state": "online",
        "reason": "heartbeat",
        "at": t,
        "heartbeat_s": 5.0,
        "started_at": t,
        "recovered_alerts": 2,
    }
    engine_lwt = {"instance": "alerting-s1-u1", "unit": "u1", "state": "offline",
                  "reason": "lwt", "heartbeat_s": 5}
    event_full = {**event, "event": "worsened", "event_id": "a-0123456789ab-2",
                  "alert": {**alert, "rule": "bedside_pews", "level": "high", "complete": False,
                            "missing": ["sbp"], "held": ["spo2"], "reassess_by": later,
                            "condition_present": True}}
    command = {
        "schema_version": 1,
        "kind": "alert_command",
        "command_id": "c2",
        "action": "snooze",
        "alert_id": "a-0123456789ab",
        "by": "nurse-7",
        "at": later,
        "minutes": 15,
        "reason": "family at bedside",
    }
    receipt = {"command_id": "c3", "action": "receipt", "alert_id": "a-0123456789ab",
               "by": "pager-12", "at": later, "receipt": "accepted", "role": "nurse_in_charge"}
    chart = {
        "schema_version": 1,
        "kind": "charted_set",
        "set_id": "set-1",
        "unit": "u1",
        "bed_id": "b1",
        "by": "nurse-7",
        "observed_at": t,
        "charted_at": later,
        "generation": "test",
        "items": {"avpu": "V", "crt_s": 3, "oxygen": {"device": "NP", "flow_lpm": 1.5},
                  "resp_signs": ["grunting"], "on_oxygen": True, "rr_bpm": None,
                  "carer_question": {"response": "W", "escalation_level": "high"}},
        "supersedes": "set-0",
        "already_escalated": False,
    }
    changed = {"schema_version": 1, "kind": "context_changed", "site": "s1", "unit": "u1",
               "at": t, "reason": "changed", "beds": ["b1"], "gateways": ["gw-1"],
               "devices": ["mon-1"]}
    return {
        AlertCommand: [command, receipt],
        ContextChanged: [changed, {**changed, "reason": "started", "beds": []}],
        ChartedSet: [chart],
        EngineStatus: [engine, engine_lwt],
        ObservationBatch: [batch, {k: batch[k] for k in batch if k != "waveforms"}],
        GatewayStatus: [gw, lwt],
        DeviceStatus: [dev],
        ScoreUpdate: [score],
        Alert: [alert],
        AlertEvent: [event, event_full],
        AckCommand: [ack],
        DeadLetter: [dl],
        TechnicalEvent: [tech],
    }


# -- validation and the invariants of what validates ------------------------------------------


def validate(model: type[WireModel], data: bytes) -> WireModel | None:
    """The model, or None on a ``ValidationError``; any other exception propagates (a bug)."""
    try:
        return model.model_validate_json(data)
    except ValidationError:
        return None


def _times(value: Any, name: str = "") -> Iterator[tuple[str, datetime]]:
    if isinstance(value, datetime):
        yield name, value
    elif isinstance(value, BaseModel):
        for k in type(value).model_fields:
            yield from _times(getattr(value, k), k)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _times(v, name)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _times(v, name)


def check_valid_instance(m: WireModel) -> None:
    """What validates round-trips, and its times lie in the wire range (``device_time``: in
    the device range). Raises ``AssertionError`` naming the breach."""
    text = m.model_dump_json()
    again = type(m).model_validate_json(text)
    assert again == m, f"round trip changed {type(m).__name__}: {text[:300]}"
    for name, t in _times(m):
        assert t.utcoffset() == timedelta(0), f"{name}={t.isoformat()} is not normalised to UTC"
        if name == "device_time":
            assert DEVICE_TIME_MIN <= t < DEVICE_TIME_MAX, f"{name}={t.isoformat()}"
        else:
            assert WIRE_TIME_MIN <= t < WIRE_TIME_MAX, f"{name}={t.isoformat()} outside the range"


def check_bytes(model: type[WireModel], data: bytes) -> WireModel | None:
    """The fuzz property for one input: a ValidationError, or a valid instance that keeps the
    invariants. Anything else raises (and fails the caller's test)."""
    m = validate(model, data)
    if m is not None:
        check_valid_instance(m)
    return m


# -- structured mutations ----------------------------------------------------------------------

Path = tuple[Any, ...]


def _children(node: Any) -> list[tuple[Any, Any]]:
    if isinstance(node, dict):
        return list(node.items())
    if isinstance(node, Pairs):
        seen: dict[str, Any] = {}
        for k, v in node:
            seen[k] = v  # the last occurrence is the one a parser keeps
        return list(seen.items())
    if isinstance(node, list) and not isinstance(node, Pairs):
        return list(enumerate(node))
    return []


def paths(doc: Any, *, limit: int = 400) -> list[Path]:
    """Every path in ``doc`` (the root ``()`` first), at most ``limit`` (big lists are not
    walked element by element)."""
    out: list[Path] = []
    stack: list[tuple[Path, Any]] = [((), doc)]
    while stack and len(out) < limit:
        p, node = stack.pop(0)
        out.append(p)
        kids = _children(node)
        if isinstance(node, list) and not isinstance(node, Pairs):
            kids = kids[:3]
        stack.extend(((*p, k), v) for k, v in kids)
    return out


def _get(node: Any, key: Any) -> Any:
    if isinstance(node, Pairs):
        return next(v for k, v in reversed(node) if k == key)
    return node[key]


def _set(node: Any, key: Any, value: Any) -> None:
    if isinstance(node, Pairs):
        for i in range(len(node) - 1, -1, -1):
            if node[i][0] == key:
                node[i] = (key, value)
                return
        node.append((key, value))
    else:
        node[key] = value


def _del(node: Any, key: Any) -> None:
    if isinstance(node, Pairs):
        node[:] = [(k, v) for k, v in node if k != key]
    else:
        del node[key]


def get_at(doc: Any, path: Path) -> Any:
    for k in path:
        doc = _get(doc, k)
    return doc


def replace_at(doc: Any, path: Path, value: Any) -> Any:
    """``doc`` with the value at ``path`` replaced (in place; returns the new root)."""
    if not path:
        return value
    _set(get_at(doc, path[:-1]), path[-1], value)
    return doc


def _retype(v: Any, rng: random.Random) -> Any:
    """The same value in another JSON type (``7`` -> ``"7"``, ``"x"`` -> ``["x"]``, ...)."""
    choices: list[Any] = [[v], {"value": v}, None]
    if isinstance(v, bool):
        choices += [int(v), str(v).lower()]
    elif isinstance(v, int | float) and not isinstance(v, Raw):
        choices += [str(v), float(v) if isinstance(v, int) else int(v) if math.isfinite(v) else 0]
        choices += [bool(v)]
    elif isinstance(v, str):
        choices += [v.upper(), v + " ", " " + v, v[:-1], v * 2]
        try:
            choices.append(float(v))
        except ValueError:
            choices.append(len(v))
    return rng.choice(choices)


def mutate(
    doc: Any, rng: random.Random, *, n: int | None = None, values: Sequence[Any] = ()
) -> Any:
    """Apply ``n`` (1-4) structured mutations to a deep copy of ``doc``: replace a value with
    a poison (or one of ``values``), delete a key, add an unknown key, duplicate a key, nest a
    value deeply, change a value's type, swap two values. Returns the mutated document."""
    doc = copy.deepcopy(doc)
    for _ in range(n if n is not None else rng.randint(1, 4)):
        ps = paths(doc)
        p = rng.choice(ps)
        op = rng.randrange(8)
        value = rng.choice(POISON_VALUES)
        if values and rng.random() < 0.5:
            value = rng.choice(list(values))
        if isinstance(value, list | dict):  # never share (and then mutate) a pool's object
            value = copy.deepcopy(value)
        target = get_at(doc, p)
        if op <= 2:  # replace (the most useful mutation: three times the weight)
            doc = replace_at(doc, p, value)
        elif op == 3 and p:  # delete
            _del(get_at(doc, p[:-1]), p[-1])
        elif op == 4 and isinstance(target, dict | Pairs):  # an unknown key
            key = rng.choice(["extra", "", "schema_version ", "Value", "\u0000", "kind"])
            _set(target, key, value)
        elif op == 5 and isinstance(target, dict | Pairs) and _children(target):
            # a duplicate key: the first occurrence a poison, or the last one
            key = rng.choice([k for k, _ in _children(target)])
            pairs = Pairs(target.items() if isinstance(target, dict) else target)
            if rng.random() < 0.5:
                pairs.insert(0, (key, value))
            else:
                pairs.append((key, value))
            doc = replace_at(doc, p, pairs)
        elif op == 6:  # deep nesting around a value
            # (as text beyond a few levels: the serialiser here is recursive too)
            depth = rng.choice([2, 20, 300, 5_000])
            wrapped: Any = target
            if depth <= 20:
                for _ in range(depth):
                    wrapped = [wrapped] if rng.random() < 0.5 else {"a": wrapped}
            else:
                wrapped = Raw("[" * depth + to_json(target) + "]" * depth)
            doc = replace_at(doc, p, wrapped)
        elif op == 7 and not isinstance(target, Raw):
            doc = replace_at(doc, p, _retype(target, rng))
        else:  # swap two values
            q = rng.choice(ps)
            if p and q and p[: len(q)] != q and q[: len(p)] != p:
                a, b = get_at(doc, p), get_at(doc, q)
                doc = replace_at(doc, p, b)
                doc = replace_at(doc, q, a)
    return doc


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """A byte-level mutation: flip, insert, delete, truncate, splice, invalid UTF-8, BOM."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2 and b:
            del b[i : i + rng.randint(1, 16)]
        elif op == 3:
            del b[i:]
        elif op == 4 and b:
            j = rng.randrange(len(b))
            b[i:i] = b[j : j + rng.randint(1, 64)]
        elif op == 5:
            b[i:i] = rng.choice(
                [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00"]
            )
        elif op == 6:
            b[i:i] = rng.choice([b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"\\u"])
        else:
            b[0:0] = rng.choice([b"\xef\xbb\xbf", b" ", b"\n", b"\x00"])
    return bytes(b)


# -- the live fuzz: cases and their expected fate ----------------------------------------------

SITE, UNIT = "s1", "u1"
FUZZ_WARD = UnitContext(
    site=SITE,
    unit=UNIT,
    scoring_system="bedside_pews",
    generation="test",  # type: ignore[arg-type]
    gateways=[GatewayContext(id="gw1"), GatewayContext(id="gw2")],
    beds=[
        BedContext(id="b1", patient="P-fuzz1", dob=date(2022, 1, 1), gateway="gw1", devices=["d1"]),
        BedContext(id="b2", patient="P-fuzz2", dob=date(2020, 6, 1), gateway="gw1", devices=["d2"]),
        BedContext(id="b3", patient="P-fuzz3", dob=date(2015, 1, 1), gateway="gw2", devices=["d3"]),
    ],
)
NUMERIC = [p for p in PARAMETERS if p.kind is not ParamKind.WAVEFORM]
REASONS = (
    "probe off",
    'a "quoted" reason, a back\\slash',
    "comma, and = equals",
    "unicode \u00e9 \u00fc \U0001f600 \u221e \u202e",
    "trailing backslash \\",
    "x" * 200,
)
DEVICE_TIMES = (
    "1970-01-01T00:00:00Z",
    "1900-01-01T00:00:00Z",
    "2199-12-31T23:59:59.999999Z",
    "1900-01-01T14:00:00+14:00",
    "2024-01-01T00:00:00-14:00",
)
OFFSETS = (0, 0, 0, 14 * 60, -14 * 60, 5 * 60 + 45, -30, 60)


@dataclass(frozen=True)
class LiveCase:
    """One payload of the live fuzz, published on ``gateway``'s obs topic."""

    index: int
    gateway: str
    payload: bytes
    #: what the generator means it to be: store | mixed | unknown_device | identity |
    #: unknown_gateway | generation | refused | contract | mutant (anything), or alternatives
    #: separated by ``|``
    intended: str

    def agrees(self, category: str) -> bool:
        """Whether the oracle's ``category`` is one the generator meant."""
        return self.intended == "mutant" or category in self.intended.split("|")

    label: str


#: A stored point's identity: (bed, device, param, source, time in ns).
PointKey = tuple[str, str, str, str, int]


@dataclass
class Fate:
    """What the intended behaviour does with one case."""

    #: points stored in ``obs``, with the fields compared after the run
    points: list[tuple[PointKey, dict[str, Any]]] = field(default_factory=list)
    #: kinds of the ingest dead letters this message yields (one per kind)
    ingest_dead_letters: list[str] = field(default_factory=list)
    #: alerting dead-letters it: it fails the contract, or names another gateway than its topic
    alerting_dead_letter: bool = False
    #: the category the oracle found, compared with the generator's ``intended``
    category: str = ""


def ns(t: datetime) -> int:
    """Nanoseconds since the epoch, exact to the microsecond (wire times carry µs)."""
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def expected_fate(case: LiveCase, ward: UnitContext = FUZZ_WARD) -> Fate:
    """The intended fate of ``case`` (docs/architecture.md, "Fault boundaries"), from the wire
    contract and the ward file only:

    * fails ``ObservationBatch`` validation: ingest and alerting dead-letter it; nothing stored;
    * ``gateway_id`` disagrees with the topic: both dead-letter it (identity); nothing stored;
    * an unregistered gateway or another generation: ingest dead-letters it; alerting ignores it;
    * otherwise every observation of a device registered on that gateway is stored (one point
      per series and time), and one ``unknown_device`` dead letter carries the others; a batch
      InfluxDB must refuse (a ``seq`` beyond int64) is written as far as InfluxDB takes it and
      its refused points are dead-lettered (``influx_refused``).
    """
    fate = Fate()
    batch = validate(ObservationBatch, case.payload)
    if batch is None:
        fate.ingest_dead_letters.append("malformed")
        fate.alerting_dead_letter = True
        fate.category = "contract"
        return fate
    assert isinstance(batch, ObservationBatch)
    if batch.gateway_id != case.gateway:
        fate.ingest_dead_letters.append("identity")
        fate.alerting_dead_letter = True
        fate.category = "identity"
        return fate
    if case.gateway not in {g.id for g in ward.gateways}:
        fate.ingest_dead_letters.append("unknown_gateway")
        fate.category = "unknown_gateway"
        return fate
    if batch.generation != ward.generation:
        fate.ingest_dead_letters.append("wrong_generation")
        fate.category = "generation"
        return fate
    beds = ward.device_index()
    unknown = 0
    for o in batch.observations:
        bed = beds.get((case.gateway, o.device_id))
        if bed is None:
            unknown += 1
            continue
        key = (bed.id, o.device_id, o.code, o.source.value, ns(o.measured_at))
        fields = {
            "value": o.value,
            "quality": o.quality.value,
            "quality_reason": o.quality_reason,
            "time_source": None if o.time_source.value == "device" else o.time_source.value,
            "device_time": (
                None
                if o.time_source.value == "device" or o.device_time is None
                else o.device_time.isoformat()
            ),
        }
        fate.points.append((key, fields))
    unknown += sum(1 for w in batch.waveforms if beds.get((case.gateway, w.device_id)) is None)
    known_waves = [w for w in batch.waveforms if beds.get((case.gateway, w.device_id))]
    assert not known_waves, "the live fuzz stores observations only (a generator bug)"
    if unknown:
        fate.ingest_dead_letters.append("unknown_device")
    if batch.seq > INT64_MAX and fate.points:
        fate.ingest_dead_letters.append("influx_refused")
        fate.points = []
        fate.category = "refused"
    elif unknown:
        fate.category = "mixed" if fate.points else "unknown_device"
    else:
        fate.category = "store"
    return fate


class LiveFuzzer:
    """Seeded live-fuzz cases for :data:`FUZZ_WARD` (gateways gw1, gw2; beds b1-b3).

    Every valid observation gets a measurement time of its own (unique per run), so each one
    is exactly one point in InfluxDB: most within the last hour, some at the edges of the wire
    range (2000-01-01, 2099-12-31) and some in the near future, written with UTC offsets up to
    ±14:00.
    """

    def __init__(self, seed: int, now: datetime, ward: UnitContext = FUZZ_WARD) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.ward = ward
        self.devices = {
            g.id: [d for b in ward.beds if b.gateway == g.id for d in b.devices]
            for g in ward.gateways
        }
        self.seq = {g.id: 0 for g in ward.gateways}
        self._k = 0  # unique time allocator
        self.seeds = seed_documents(now)

    # -- building blocks ---------------------------------------------------------------------
    def _tick(self) -> int:
        self._k += 1
        return self._k

    def _when(self) -> datetime:
        k, r = self._tick(), self.rng.random()
        if r < 0.80:
            return self.now - timedelta(hours=1) + timedelta(milliseconds=k)
        if r < 0.88:
            return WIRE_TIME_MIN + timedelta(microseconds=k)
        if r < 0.96:
            return WIRE_TIME_MAX - timedelta(microseconds=k)
        return self.now + timedelta(days=1, milliseconds=k)

    def iso(self, t: datetime) -> str:
        """``t`` written with a random UTC offset (the same instant)."""
        off = timedelta(minutes=self.rng.choice(OFFSETS))
        local = t.astimezone(timezone(off))
        text = local.isoformat()
        if off == timedelta(0) and self.rng.random() < 0.5:
            text = text.replace("+00:00", "Z")
        return text

    def _value(self, p: Parameter) -> tuple[float, bool]:
        """A value and whether it is plausible (boundary-heavy)."""
        rng = self.rng
        if p.kind is ParamKind.CATEGORICAL:
            if rng.random() < 0.8:
                return float(rng.randrange(len(p.categories))), True
            return rng.choice([0.5, float(len(p.categories)), -1.0, 1e308]), False
        if rng.random() < 0.8:
            v = rng.choice([p.low, p.high, (p.low + p.high) / 2, rng.uniform(p.low, p.high)])
            if p.low == 0 and rng.random() < 0.1:
                v = rng.choice([-0.0, 5e-324])
            return float(v), True
        v = rng.choice([p.low - 1, p.high + 0.001, 1.7976931348623157e308, -1e308, p.high * 10])
        return float(v), False

    def observation(self, device: str) -> dict[str, Any]:
        rng = self.rng
        p = rng.choice(NUMERIC)
        value, plausible = self._value(p)
        measured = self._when()
        o: dict[str, Any] = {
            "device_id": device,
            "code": p.code,
            "value": int(value) if value.is_integer() and rng.random() < 0.5 else value,
            "unit": p.ucum,
            "measured_at": self.iso(measured),
            "received_at": self.iso(
                min(max(measured, WIRE_TIME_MIN), WIRE_TIME_MAX - timedelta(microseconds=1))
            ),
        }
        if not plausible or rng.random() < 0.1:
            o["quality"] = "invalid"
            o["quality_reason"] = rng.choice(REASONS)
        elif rng.random() < 0.1:
            o["quality"] = rng.choice(["questionable", "valid"])
        if rng.random() < 0.15:
            o["source"] = rng.choice(["measured", "entered"])
        if rng.random() < 0.08:
            o["time_source"] = "gateway"
            if rng.random() < 0.8:
                o["device_time"] = rng.choice(DEVICE_TIMES)
        return o

    def batch(self, gateway: str, observations: list[dict[str, Any]]) -> dict[str, Any]:
        self.seq[gateway] = self.seq.get(gateway, 0) + 1
        doc: dict[str, Any] = {
            "gateway_id": gateway,
            "seq": self.seq[gateway],
            "sent_at": self.iso(self.now + timedelta(milliseconds=self._tick())),
            "generation": "test",
            "observations": observations,
        }
        if self.rng.random() < 0.2:
            doc = {"schema_version": 1, "kind": "obs_batch", **doc}
        if self.rng.random() < 0.3:  # any key order
            items = list(doc.items())
            self.rng.shuffle(items)
            doc = dict(items)
        return doc

    def valid_doc(self, gateway: str | None = None) -> tuple[str, dict[str, Any]]:
        gw = gateway or self.rng.choice(["gw1", "gw1", "gw2"])
        obs = [
            self.observation(self.rng.choice(self.devices[gw]))
            for _ in range(self.rng.randint(1, 6))
        ]
        return gw, self.batch(gw, obs)

    def text(self, doc: Any) -> bytes:
        return encode(
            to_json(doc, ascii_only=self.rng.random() < 0.5, sep=self.rng.choice([" ", "", "\n  "]))
        )

    # -- case kinds --------------------------------------------------------------------------
    def _valid(self) -> tuple[str, bytes, str, str]:
        gw, doc = self.valid_doc()
        return gw, self.text(doc), "store", "valid batch"

    def _mixed(self) -> tuple[str, bytes, str, str]:
        gw, doc = self.valid_doc("gw1")
        strangers = ["dX", "d3", "D1", "d1-old"]  # d3 is gw2's: unknown on gw1
        for _ in range(self.rng.randint(1, 3)):
            doc["observations"].insert(
                self.rng.randrange(len(doc["observations"]) + 1),
                self.observation(self.rng.choice(strangers)),
            )
        return gw, self.text(doc), "mixed", "known and unknown devices"

    def _all_unknown(self) -> tuple[str, bytes, str, str]:
        gw, doc = self.valid_doc("gw1")
        for o in doc["observations"]:
            o["device_id"] = self.rng.choice(["dX", "d3"])
        return gw, self.text(doc), "unknown_device", "unknown devices only"

    def _identity(self) -> tuple[str, bytes, str, str]:
        claimed, topic = self.rng.choice([("gw2", "gw1"), ("gw1", "gw2")])
        _, doc = self.valid_doc(claimed)
        return topic, self.text(doc), "identity", f"gateway_id {claimed} on {topic}'s topic"

    def _unknown_gateway(self) -> tuple[str, bytes, str, str]:
        _, doc = self.valid_doc("gw1")
        doc["gateway_id"] = "gw-x"
        return "gw-x", self.text(doc), "unknown_gateway", "unregistered gateway"

    def _generation(self) -> tuple[str, bytes, str, str]:
        gw, doc = self.valid_doc()
        doc["generation"] = self.rng.choice(["demo", "real"])
        return gw, self.text(doc), "generation", "wrong generation"

    def _refused(self) -> tuple[str, bytes, str, str]:
        gw, doc = self.valid_doc()
        doc["seq"] = self.rng.choice([2**63, 2**64, 10**30])
        # refused by the contract (seqs are int64) or by InfluxDB: dead-lettered either way
        return gw, self.text(doc), "contract|refused", "seq beyond int64"

    POISONS: tuple[tuple[str, str, Any], ...] = (
        ("value", "value true", True),
        ("value", "value false", False),
        ("value", 'value "100"', "100"),
        ("value", "value null", None),
        ("value", "value NaN", Raw("NaN")),
        ("value", "value Infinity", Raw("Infinity")),
        ("value", "value -Infinity", Raw("-Infinity")),
        ("value", "value 1e400", Raw("1e400")),
        ("value", "value [1]", [1]),
        ("seq", 'seq "7"', "7"),
        ("seq", "seq 7.0", 7.0),
        ("seq", "seq true", True),
        ("seq", "seq -1", -1),
        ("seq", "seq null", None),
        ("measured_at", "year 1500", "1500-01-01T00:00:00Z"),
        ("measured_at", "year 1700", "1700-06-01T00:00:00Z"),
        ("measured_at", "year 2200", "2200-01-01T00:00:00Z"),
        ("measured_at", "0001+14:00", "0001-01-01T00:00:00+14:00"),
        ("measured_at", "9999-14:00", "9999-12-31T23:59:59-14:00"),
        ("measured_at", "1970", "1970-01-01T00:00:00Z"),
        ("measured_at", "leap second", "2024-06-30T23:59:60Z"),
        ("measured_at", "naive time", "2024-01-01T00:00:00"),
        ("measured_at", "epoch number", 1_700_000_000),
        ("measured_at", "2100 UTC via +14:00", "2100-01-01T14:00:00+14:00"),
        ("received_at", "received 0001+14:00", "0001-01-01T00:00:00+14:00"),
        ("sent_at", "sent 0001+14:00", "0001-01-01T00:00:00+14:00"),
        ("sent_at", "sent 9999-14:00", "9999-12-31T23:59:59-14:00"),
        ("sent_at", "sent 1500", "1500-01-01T00:00:00Z"),
        ("device_time", "device_time 0001+14:00", "0001-01-01T00:00:00+14:00"),
        ("code", "unknown code", "XYZ"),
        ("code", "waveform code", "PLETH"),
        ("unit", "wrong unit", "bpm"),
        ("quality", "implausible as valid", "valid!"),
        ("device_id", "device id with slash", "d1/#"),
        ("device_id", "device id 65 chars", "d" * 65),
        ("extra", "unknown key", 1),
        ("schema_version", "schema_version 2", 2),
        ("kind", "wrong kind", "device_status"),
        ("generation", "unknown generation", "prod"),
        ("observations", "no observations", []),
        ("observations", "observations not a list", {"0": {}}),
    )

    def _poison(self) -> tuple[str, bytes, str, str]:
        gw, doc = self.valid_doc()
        where, label, value = self.rng.choice(self.POISONS)
        o = self.rng.choice(doc["observations"])
        if where in (
            "seq",
            "sent_at",
            "extra",
            "schema_version",
            "kind",
            "generation",
            "observations",
        ):
            doc[where] = value
        elif where == "quality":  # a value outside its physical range marked valid
            o.update(code="SPO2", unit="%", value=101, quality="valid")
            o.pop("quality_reason", None)
        elif where == "device_time":
            o.update(time_source="gateway", device_time=value)
        else:
            o[where] = value
        if where != "observations" and self.rng.random() < 0.3:
            doc["observations"].append(self.observation(self.rng.choice(self.devices[gw])))
        return gw, self.text(doc), "contract", label

    def _duplicate_key(self) -> tuple[str, bytes, str, str]:
        gw, doc = self.valid_doc()
        pairs = Pairs(doc.items())
        pairs.append(("seq", self.rng.choice(["7", True, -1, 1.5])))  # the last one counts
        return gw, self.text(pairs), "contract", "duplicate key, bad last value"

    def _mutant(self) -> tuple[str, bytes, str, str]:
        gw, doc = self.valid_doc()
        return gw, self.text(mutate(doc, self.rng)), "mutant", "structured mutation"

    def _garbage(self) -> tuple[str, bytes, str, str]:
        rng = self.rng
        gw, doc = self.valid_doc()
        valid = self.text(doc)
        r = rng.randrange(10)
        if r == 0:
            return gw, b"", "contract", "empty payload"
        if r == 1:
            return gw, rng.randbytes(rng.randint(1, 600)), "contract", "random bytes"
        if r == 2:
            return gw, valid[: rng.randrange(len(valid))], "contract", "truncated batch"
        if r == 3:
            other = rng.choice([m for m in self.seeds if m is not ObservationBatch])
            return gw, self.text(self.seeds[other][0]), "contract", f"a {other.__name__}"
        if r == 4:
            raw = rng.choice([b"null", b"[]", b"{}", b'"obs"', b"0", b"true", b"NaN", b"[" * 20000])
            return gw, raw, "contract", "JSON that is no batch"
        if r == 5:
            return gw, b"\xef\xbb\xbf" + valid, "contract", "BOM before a valid batch"
        if r == 6:
            return (
                gw,
                valid + rng.choice([b" x", b"}", b"\x00", b",{}"]),
                "contract",
                "trailing bytes",
            )
        if r == 7:
            return (
                gw,
                valid.replace(b'"gateway_id"', b'"gateway_id\xff"', 1),
                "contract",
                "invalid UTF-8 in a key",
            )
        return gw, mutate_bytes(valid, rng), "mutant", "byte mutation"

    def oversized(self, i: int) -> tuple[str, bytes, str, str]:
        """Payloads of 1-4 MB (mosquitto's limit here is its 256 MB default)."""
        gw, doc = self.valid_doc()
        r = i % 4
        if r == 0:
            return gw, self.rng.randbytes(2 << 20), "contract", "2 MiB of random bytes"
        if r == 1:
            o = self.observation(self.devices[gw][0])
            doc["observations"] = [dict(o) for _ in range(MAX_BATCH_OBSERVATIONS + 1)]
            return gw, self.text(doc), "contract", "5001 observations"
        if r == 2:
            doc["observations"][0].update(quality="invalid", quality_reason="r" * (3 << 20))
            return gw, self.text(doc), "contract", "3 MiB quality_reason"
        doc["observations"][0]["device_id"] = "d" * (1 << 20)
        return gw, self.text(doc), "contract", "1 MiB device id"

    KINDS: tuple[tuple[str, float], ...] = (
        ("_valid", 0.42),
        ("_mixed", 0.06),
        ("_all_unknown", 0.02),
        ("_identity", 0.04),
        ("_unknown_gateway", 0.01),
        ("_generation", 0.01),
        ("_refused", 0.01),
        ("_poison", 0.15),
        ("_duplicate_key", 0.02),
        ("_mutant", 0.18),
        ("_garbage", 0.08),
    )

    def cases(self, n: int, *, oversized: int | None = None) -> list[LiveCase]:
        """``n`` cases, of which ``oversized`` (default: 1 per 1,000, 2 to 8) are 1-4 MB."""
        big = oversized if oversized is not None else max(2, min(8, n // 1000))
        names = [k for k, _ in self.KINDS]
        weights = [w for _, w in self.KINDS]
        big_at = set(self.rng.sample(range(n), min(big, n)))
        out: list[LiveCase] = []
        for i in range(n):
            if i in big_at:
                gw, payload, intended, label = self.oversized(i)
            else:
                kind = self.rng.choices(names, weights)[0]
                gw, payload, intended, label = getattr(self, kind)()
            out.append(LiveCase(i, gw, payload, intended, label))
        return out
