"""The login limiter, pure, with hypothesis: in any window no key sees more failures than its
limit before it is blocked; a blocked key is free again once the window has passed; a success
clears its user, not its address; memory stays bounded."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.ratelimit import LoginLimiter, Policy

T0 = datetime(2025, 6, 1, tzinfo=UTC)
POLICY = Policy(window=timedelta(minutes=15), per_user=5, per_address=20, max_keys=50)

attempts = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 400), st.booleans()),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(attempts)
def test_no_key_passes_more_failures_than_its_limit_in_a_window(
    steps: list[tuple[int, int, int, bool]]
) -> None:
    lim = LoginLimiter(POLICY)
    t = T0
    let_through: dict[str, list[datetime]] = {}
    for user, addr, gap_s, ok in steps:
        t += timedelta(seconds=gap_s)
        keys = (f"user:u{user}", f"addr:a{addr}")
        wait = lim.retry_after(keys, t)
        if wait is not None:
            assert 0 < wait <= POLICY.window.total_seconds()
            later = copy.deepcopy(lim)  # (asking about a later time forgets aged failures)
            assert later.retry_after(keys, t + timedelta(seconds=wait)) is None
            continue
        if ok:
            lim.succeeded(keys[0])
            let_through.pop(keys[0], None)
            continue
        lim.failed(keys, t)
        for k in keys:
            recent = [x for x in let_through.get(k, []) if x > t - POLICY.window] + [t]
            let_through[k] = recent
            limit = POLICY.per_user if k.startswith("user:") else POLICY.per_address
            assert len(recent) <= limit, (k, recent)


def test_the_block_lifts_when_the_window_passes_and_success_clears_the_user() -> None:
    lim = LoginLimiter(POLICY)
    keys = ("user:kim", "addr:10.0.0.1")
    for i in range(5):
        assert lim.retry_after(keys, T0 + timedelta(minutes=i)) is None
        lim.failed(keys, T0 + timedelta(minutes=i))
    assert lim.retry_after(keys, T0 + timedelta(minutes=5)) == 10 * 60
    assert lim.retry_after(keys, T0 + timedelta(minutes=15, seconds=1)) is None  # oldest aged
    lim.succeeded("user:kim")
    assert lim.retry_after(("user:kim",), T0 + timedelta(minutes=5)) is None
    assert lim.retry_after(("addr:10.0.0.1",), T0 + timedelta(minutes=5)) is None  # 5 < 20


@given(st.lists(st.text(min_size=1, max_size=300), max_size=300))
def test_memory_is_bounded_by_max_keys(names: list[str]) -> None:
    lim = LoginLimiter(POLICY)
    for i, n in enumerate(names):
        lim.failed((f"user:{n}", f"addr:{i}"), T0)
        assert len(lim) <= POLICY.max_keys


def test_a_refund_takes_back_exactly_the_attempt_counted_in_advance() -> None:
    lim = LoginLimiter(POLICY)
    keys = ("user:kim", "addr:10.0.0.1")
    lim.failed(keys, T0)
    lim.failed(keys, T0 + timedelta(seconds=1))
    lim.refund(keys, T0 + timedelta(seconds=1))
    lim.refund(keys, T0 + timedelta(seconds=5))  # nothing counted then: nothing taken
    assert [len(lim._failures[k]) for k in keys] == [1, 1]
    lim.refund(keys, T0)
    assert len(lim) == 0


@settings(max_examples=100, deadline=None)
@given(attempts)
def test_blocking_names_the_keys_that_block_and_until_when(
    steps: list[tuple[int, int, int, bool]]
) -> None:
    """``blocking`` is ``retry_after`` key by key: the keys that block, each with its release
    time (the latest of them is when the attempt may be tried); the same release while the
    block lasts (a blocked attempt is not counted), so a refusal can be announced once."""
    lim = LoginLimiter(POLICY)
    t = T0
    for user, addr, gap_s, ok in steps:
        t += timedelta(seconds=gap_s)
        keys = (f"user:u{user}", f"addr:a{addr}")
        wait = lim.retry_after(keys, t)
        blocking = lim.blocking(keys, t)
        assert (wait is None) == (not blocking)
        if wait is not None:
            assert {k for k, _ in blocking} <= set(keys)
            assert max(r for _, r in blocking) == t + timedelta(seconds=wait)
            assert lim.blocking(keys, t + timedelta(seconds=1)) in (
                blocking, [b for b in blocking if b[1] > t + timedelta(seconds=1)])
            continue
        lim.failed(keys, t)
        if ok:
            lim.refund(keys, t)
            lim.succeeded(keys[0])
