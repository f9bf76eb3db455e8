"""The broker reconnect schedule: capped exponential backoff with jitter (a pure function),
and the paho hook that applies it."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicekit.backoff import Backoff
from servicekit.mqtt import JitteredClient, MqttParams, make_client
from tests.helpers.wait import wait_until
from wardwatch.devstack import free_port


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    seed=st.integers(min_value=0, max_value=2**32),
    initial=st.floats(min_value=0.01, max_value=5.0),
    cap=st.floats(min_value=5.0, max_value=300.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
)
def test_delay_stays_within_the_jittered_window(
    attempt: int, seed: int, initial: float, cap: float, jitter: float
) -> None:
    b = Backoff(initial_s=initial, cap_s=cap, jitter=jitter)
    window = b.window(attempt)
    assert window == min(cap, initial * 2.0 ** min(attempt, 62))
    d = b.delay(attempt, random.Random(seed))
    assert (1.0 - jitter) * window - 1e-9 <= d <= window + 1e-9
    assert d <= cap + 1e-9


def test_window_doubles_then_caps() -> None:
    b = Backoff()  # the production default
    assert [b.window(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_same_seed_same_schedule_different_seed_different_schedule() -> None:
    b = Backoff()
    assert b.schedule(10, random.Random(7)) == b.schedule(10, random.Random(7))
    assert b.schedule(10, random.Random(7)) != b.schedule(10, random.Random(8))


def test_a_ward_of_gateways_does_not_reconnect_in_lockstep() -> None:
    """40 gateways lose the broker at the same instant: their attempt times spread out."""
    b = Backoff(initial_s=0.5, cap_s=30.0, jitter=0.5)
    schedules = [b.schedule(8, random.Random(seed)) for seed in range(40)]
    for attempt in range(8):
        # Cumulative time of this attempt since the common disconnect, per gateway.
        at = sorted(sum(s[: attempt + 1]) for s in schedules)
        window = b.window(attempt)
        assert at[-1] - at[0] > 0.25 * window  # spread over a good part of the window
        gaps = [y - x for x, y in itertools.pairwise(at)]
        assert statistics.median(gaps) > 0  # no pile-up on one instant
        # Never more than a quarter of the ward within any 5 % slice of the window.
        width = 0.05 * window
        assert max(sum(1 for t in at if x <= t < x + width) for x in at) <= 10


def test_expected_delay_grows_until_the_cap() -> None:
    b = Backoff(initial_s=0.5, cap_s=30.0, jitter=0.5)
    rng = random.Random(1)
    means = [statistics.fmean(b.delay(n, rng) for _ in range(2000)) for n in range(9)]
    assert all(later > earlier for earlier, later in itertools.pairwise(means[:7]))
    assert means[-1] == pytest.approx(0.75 * 30.0, rel=0.05)


@pytest.mark.parametrize(
    ("initial", "cap", "jitter"), [(0.0, 1.0, 0.5), (2.0, 1.0, 0.5), (0.5, 1.0, 1.5)]
)
def test_invalid_schedules_are_refused(initial: float, cap: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial_s=initial, cap_s=cap, jitter=jitter)


def test_paho_network_thread_waits_on_our_schedule() -> None:
    """The hook is live: a client retrying a port nobody listens on records our delays."""
    backoff = Backoff(initial_s=0.01, cap_s=0.04, jitter=0.5)
    params = MqttParams(port=free_port(), reconnect=backoff, connect_timeout_s=1.0)
    client = make_client(params, "backoff-probe", rng=random.Random(3))
    assert isinstance(client, JitteredClient)
    client.connect_async(params.host, params.port)
    client.loop_start()
    try:
        wait_until(lambda: len(client.reconnect_waits) >= 5, timeout=10, interval=0.01)
    finally:
        client.loop_stop()
    expected = backoff.schedule(5, random.Random(3))
    assert client.reconnect_waits[:5] == expected
