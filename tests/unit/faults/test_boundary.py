"""servicekit.faults: one message can never end a consumer's loop (issue 8)."""

from __future__ import annotations

import base64
import threading

import paho.mqtt.client as mqtt
import pytest

from servicekit.faults import (
    DEAD_LETTER_PAYLOAD_MAX,
    Liveness,
    MessageBoundary,
    ServiceFailed,
    dead_letter_for,
)


def message(topic: str, payload: bytes) -> mqtt.MQTTMessage:
    m = mqtt.MQTTMessage(mid=1, topic=topic.encode())
    m.payload = payload
    return m


@pytest.mark.parametrize(
    "exc",
    [OverflowError("date value out of range"), KeyError("bed"), ValueError("x"), RecursionError()],
)
def test_any_exception_is_dead_lettered_and_counted(exc: Exception) -> None:
    letters: list[tuple[bytes, str, str]] = []

    def handler(c: object, u: object, msg: mqtt.MQTTMessage) -> None:
        raise exc

    b = MessageBoundary("svc", handler, lambda m, k, r: letters.append((m.payload, k, r)))
    b(None, None, message("a/b", b"poison"))  # type: ignore[arg-type]
    b(None, None, message("a/b", b"poison"))  # type: ignore[arg-type]
    assert [(p, k) for p, k, _ in letters] == [(b"poison", "fault")] * 2
    assert letters[0][2].startswith(type(exc).__name__)
    assert b.faults == {type(exc).__name__: 2}


def test_a_good_message_is_not_touched() -> None:
    seen: list[bytes] = []
    b = MessageBoundary("svc", lambda c, u, m: seen.append(m.payload), lambda *a: None)
    b(None, None, message("t", b"ok"))  # type: ignore[arg-type]
    assert seen == [b"ok"] and b.faults_total == 0


def test_a_failing_dead_letter_sink_is_counted_not_raised() -> None:
    def boom(*a: object) -> None:
        raise RuntimeError("broker gone")

    b = MessageBoundary("svc", lambda c, u, m: 1 / 0, boom)  # type: ignore[arg-type,func-returns-value]
    b(None, None, message("t", b"x"))  # type: ignore[arg-type]
    assert b.sink_failures == 1 and b.faults == {"ZeroDivisionError": 1}


def test_keyboard_interrupt_is_not_swallowed() -> None:
    def stop(*a: object) -> None:
        raise KeyboardInterrupt

    b = MessageBoundary("svc", stop, lambda *a: None)
    with pytest.raises(KeyboardInterrupt):
        b(None, None, message("t", b"x"))  # type: ignore[arg-type]


def test_dead_letter_keeps_the_payload_up_to_the_cap() -> None:
    big = bytes(range(256)) * (DEAD_LETTER_PAYLOAD_MAX // 256 + 10)
    dl = dead_letter_for("ingest", "t/obs", big, "fault: x")
    assert dl.payload_bytes == len(big)
    assert base64.b64decode(dl.payload_b64) == big[:DEAD_LETTER_PAYLOAD_MAX]


def test_liveness_names_the_dead_thread() -> None:
    done = threading.Event()
    t = threading.Thread(target=done.wait)
    t.start()
    live = Liveness("ingest")
    live.add("writer", t.is_alive)
    live.add("mqtt", lambda: True)
    assert live.ok()
    live.raise_if_dead()
    done.set()
    t.join()
    assert not live.ok() and live.dead() == ["writer"]
    with pytest.raises(ServiceFailed, match="writer stopped"):
        live.raise_if_dead()
