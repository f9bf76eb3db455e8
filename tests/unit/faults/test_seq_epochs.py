"""Seq tracking per outbox epoch (issue 9, finding 4): a new outbox is a reset, not thousands
of duplicates; a forged jump is a jump, not thousands of missing batches."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.core import SeqTracker


def test_a_new_epoch_is_a_reset_not_duplicates() -> None:
    t = SeqTracker()
    for s in range(208):
        t.observe("gw", s, "e1")
    t.observe("gw", 210, "e1")  # 208 and 209 missing
    r = t.observe("gw", 0, "e2")
    assert r.reset == ("e1", 2) and not r.duplicate
    for s in range(1, 50):
        assert not t.observe("gw", s, "e2").duplicate
    assert t.duplicates_total == 0 and t.gaps_total == 0 and t.resets_total == 1


def test_a_late_message_of_the_old_epoch_is_not_another_reset() -> None:
    t = SeqTracker()
    t.observe("gw", 5, "e1")
    t.observe("gw", 0, "e2")
    r = t.observe("gw", 6, "e1")
    assert r.late_old_epoch and r.reset is None and t.resets_total == 1
    assert t.observe("gw", 1, "e2").new_gap == 0


def test_a_forged_jump_is_reported_once_not_counted_missing() -> None:
    t = SeqTracker(jump_window=1000)
    t.observe("gw", 0, "e")
    r = t.observe("gw", 3742_000, "e")
    assert r.jump == 3741_999 and r.new_gap == 0
    assert t.gaps_total == 0 and t.jumps_total == 1
    assert t.observe("gw", 3742_001, "e").new_gap == 0


def test_gaps_within_the_window_are_still_gaps() -> None:
    t = SeqTracker(jump_window=1000)
    t.observe("gw", 0)
    assert t.observe("gw", 1000).new_gap == 999
    assert t.gaps_total == 999


@given(st.lists(st.integers(0, 300), min_size=1, max_size=300), st.integers(1, 5))
@settings(max_examples=200, deadline=None)
def test_missing_is_never_negative_and_matches_the_sets(seqs: list[int], epochs: int) -> None:
    t = SeqTracker(jump_window=100)
    for i, s in enumerate(seqs):
        t.observe("gw", s, f"e{i * epochs // len(seqs)}")
        assert t.gaps_total >= 0
        assert t.gaps_total == sum(len(m) for m in t.missing.values())
