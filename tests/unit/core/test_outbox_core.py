"""Outbox decisions: plan_seal, plan_overflow, publish_window."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.outbox_core import (
    OverflowDecision,
    plan_overflow,
    plan_seal,
    publish_window,
)

# ---------------------------------------------------------------------------------------------
# plan_seal


def test_plan_seal_cases() -> None:
    kw = {"batch_max": 10, "linger_ms": 1000}
    assert plan_seal(0, None, 0, **kw) == 0
    assert plan_seal(0, 0, 10_000, flush=True, **kw) == 0
    assert plan_seal(-3, 0, 10_000, flush=True, **kw) == 0
    assert plan_seal(3, 0, 999, **kw) == 0  # still lingering
    assert plan_seal(3, 0, 1000, **kw) == 3  # linger reached (inclusive)
    assert plan_seal(3, 0, 999, flush=True, **kw) == 3
    assert plan_seal(10, 0, 0, **kw) == 10  # full
    assert plan_seal(25, 0, 0, **kw) == 10  # full, one batch at a time
    assert plan_seal(25, 0, 5000, **kw) == 10  # linger never exceeds batch_max
    assert plan_seal(3, None, 10_000, **kw) == 0


@given(
    pending=st.integers(-5, 20_000),
    oldest=st.none() | st.integers(0, 10**6),
    now=st.integers(0, 2 * 10**6),
    batch_max=st.integers(1, 5000),
    linger=st.integers(0, 60_000),
    flush=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_plan_seal_properties(
    pending: int, oldest: int | None, now: int, batch_max: int, linger: int, flush: bool
) -> None:
    n = plan_seal(pending, oldest, now, batch_max=batch_max, linger_ms=linger, flush=flush)
    assert 0 <= n <= max(0, min(pending, batch_max))
    if pending <= 0:
        assert n == 0
        return
    if pending >= batch_max:
        assert n == batch_max
    if flush:
        assert n == min(pending, batch_max)
    if oldest is not None and now - oldest >= linger:
        assert n == min(pending, batch_max)
    if n == 0:
        assert not flush
        assert pending < batch_max
        assert oldest is None or now - oldest < linger


# ---------------------------------------------------------------------------------------------
# plan_overflow


def test_plan_overflow_cases() -> None:
    d = plan_overflow(0, 0, 5, max_rows=10, policy="drop_oldest")
    assert d == OverflowDecision(5, 0, 0)
    d = plan_overflow(8, 8, 5, max_rows=10, policy="reject_new")
    assert d == OverflowDecision(2, 0, 3)
    d = plan_overflow(8, 8, 5, max_rows=10, policy="drop_oldest")
    assert d == OverflowDecision(5, 3, 0)
    # only pending rows can be dropped: sealed batches own their seq
    d = plan_overflow(10, 1, 5, max_rows=10, policy="drop_oldest")
    assert d == OverflowDecision(1, 1, 4)
    d = plan_overflow(10, 0, 5, max_rows=10, policy="drop_oldest")
    assert d == OverflowDecision(0, 0, 5)


POLICIES = st.sampled_from(["drop_oldest", "reject_new"])


@st.composite
def fills(draw: st.DrawFn) -> tuple[int, int, int, int]:
    max_rows = draw(st.integers(1, 10_000))
    stored = draw(st.integers(0, max_rows))  # the outbox keeps stored <= max_rows
    pending = draw(st.integers(0, stored))
    incoming = draw(st.integers(0, 3 * max_rows))
    return max_rows, stored, pending, incoming


@given(fills(), POLICIES)
@settings(max_examples=300, deadline=None)
def test_plan_overflow_invariants(fill: tuple[int, int, int, int], policy: str) -> None:
    max_rows, stored, pending, incoming = fill
    d = plan_overflow(stored, pending, incoming, max_rows=max_rows, policy=policy)  # type: ignore[arg-type]
    assert d.accept >= 0
    assert d.drop_oldest >= 0
    assert d.rejected >= 0
    assert d.accept + d.rejected == incoming  # every reading is accounted for
    assert d.drop_oldest <= pending  # never drop a sealed batch
    after = stored - d.drop_oldest + d.accept
    assert after <= max_rows  # the outbox stays bounded
    if stored + incoming <= max_rows:
        assert d == OverflowDecision(incoming, 0, 0)  # no loss while there is room
    if policy == "reject_new":
        assert d.drop_oldest == 0
        assert d.accept == min(incoming, max_rows - stored)
    else:
        # drop only what is needed, and reject only what dropping cannot make room for
        assert d.drop_oldest <= max(0, stored + incoming - max_rows)
        if pending >= stored + incoming - max_rows:
            assert d.rejected == 0
            assert after == min(max_rows, stored + incoming)
        else:
            assert d.drop_oldest == pending


@given(
    max_rows=st.integers(1, 1000),
    over=st.integers(1, 1000),
    pending_frac=st.floats(0, 1),
    incoming=st.integers(0, 2000),
    policy=POLICIES,
)
@settings(max_examples=150, deadline=None)
def test_plan_overflow_when_already_over_the_limit_never_grows(
    max_rows: int, over: int, pending_frac: float, incoming: int, policy: str
) -> None:
    """E.g. max_rows was lowered in the config before a restart."""
    stored = max_rows + over
    pending = int(stored * pending_frac)
    d = plan_overflow(stored, pending, incoming, max_rows=max_rows, policy=policy)  # type: ignore[arg-type]
    assert d.accept + d.rejected == incoming
    assert d.drop_oldest <= pending
    assert stored - d.drop_oldest + d.accept <= stored


@given(st.integers(0, 2000), st.integers(1, 1000))
def test_publish_window(inflight: int, inflight_max: int) -> None:
    w = publish_window(inflight, inflight_max)
    assert w >= 0
    assert inflight + w == max(inflight, inflight_max)
