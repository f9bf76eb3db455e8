"""The durable outbox against a real SQLite file (tmp_path): seal, replay, ack, overflow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge_agent.outbox import Outbox
from wardwire.models import Generation, Observation, ObservationBatch, WaveformBlock

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
GW = "gw-picu-01"


def obs(i: int, *, device: str = "mon-1") -> Observation:
    """Observation number ``i`` (its value and time encode ``i`` so order is checkable)."""
    return Observation(
        device_id=device,
        code="HR",
        value=float(i % 300),
        unit="/min",
        measured_at=T0 + timedelta(milliseconds=i),
        received_at=T0 + timedelta(milliseconds=i, microseconds=500),
    )


def wave(i: int) -> WaveformBlock:
    return WaveformBlock(
        device_id="mon-1",
        code="PLETH",
        unit="{unitless}",
        start=T0 + timedelta(seconds=i),
        received_at=T0 + timedelta(seconds=i),
        sample_rate_hz=100.0,
        samples=[float(i), 1.0, 2.0],
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.db"  # parent created by Outbox


@pytest.fixture
def box(db: Path) -> Iterator[Outbox]:
    b = Outbox(db)
    yield b
    b.close()


def seal(b: Outbox, n: int, now: datetime = T0) -> ObservationBatch:
    sb = b.seal(n, gateway_id=GW, generation=Generation.TEST, now=now)
    assert sb is not None
    batch = ObservationBatch.model_validate_json(sb.payload)
    assert batch.seq == sb.seq
    assert sb.n_obs == len(batch.observations)
    return batch


def test_add_seal_sealed_ack(box: Outbox) -> None:
    items = [obs(i) for i in range(5)]
    assert box.add(items, now=T0) == 5
    assert box.oldest_pending_ms() == (5, int(T0.timestamp() * 1000))
    s = box.stats()
    assert (s.pending, s.sealed_batches, s.sealed_obs, s.depth) == (5, 0, 0, 5)

    sb = box.seal(3, gateway_id=GW, generation=Generation.TEST, now=T0 + timedelta(seconds=1))
    assert sb is not None
    assert (sb.seq, sb.n_obs) == (0, 3)
    batch = ObservationBatch.model_validate_json(sb.payload)
    assert batch.gateway_id == GW
    assert batch.generation is Generation.TEST
    assert batch.sent_at == T0 + timedelta(seconds=1)
    assert batch.observations == items[:3]  # insertion order, nothing lost or altered
    assert batch.waveforms == []

    s = box.stats()
    assert (s.pending, s.sealed_batches, s.sealed_obs, s.depth) == (2, 1, 3, 5)
    assert box.sealed() == [sb]  # replay is byte-identical

    box.ack(0)
    assert box.sealed() == []
    s = box.stats()
    assert (s.pending, s.sealed_batches, s.sealed_obs, s.depth) == (2, 0, 0, 2)
    box.ack(0)  # a duplicate PUBACK is harmless
    box.ack(99)


def test_seq_increments_by_one_and_ack_order_does_not_matter(box: Outbox) -> None:
    box.add([obs(i) for i in range(10)], now=T0)
    seqs = [seal(box, 2).seq for _ in range(5)]
    assert seqs == [0, 1, 2, 3, 4]
    box.ack(3)
    box.ack(0)
    assert [b.seq for b in box.sealed()] == [1, 2, 4]
    box.add([obs(10)], now=T0)
    assert seal(box, 1).seq == 5


def test_sealed_after_and_limit(box: Outbox) -> None:
    box.add([obs(i) for i in range(6)], now=T0)
    for _ in range(6):
        seal(box, 1)
    assert [b.seq for b in box.sealed(after_seq=2)] == [3, 4, 5]
    assert [b.seq for b in box.sealed(limit=2)] == [0, 1]
    assert [b.seq for b in box.sealed(after_seq=1, limit=2)] == [2, 3]


def test_seq_and_contents_survive_a_restart(db: Path) -> None:
    b = Outbox(db)
    b.add([obs(i) for i in range(7)], now=T0)
    first = [seal(b, 2) for _ in range(2)]
    b.ack(0)
    b.close()

    b = Outbox(db)  # the gateway restarts: same file
    try:
        assert [s.seq for s in b.sealed()] == [1]
        assert ObservationBatch.model_validate_json(b.sealed()[0].payload) == first[1]
        assert b.stats().pending == 3
        nxt = seal(b, 10)
        assert nxt.seq == 2  # never reused, even though seq 0 was acked and deleted
        assert nxt.observations == [obs(4), obs(5), obs(6)]
    finally:
        b.close()

    b = Outbox(db)
    try:
        b.add([obs(7)], now=T0)
        assert seal(b, 1).seq == 3
    finally:
        b.close()


def test_seq_survives_restart_when_everything_was_acked(db: Path) -> None:
    b = Outbox(db)
    b.add([obs(0)], now=T0)
    b.ack(seal(b, 1).seq)
    b.close()
    b = Outbox(db)
    try:
        b.add([obs(1)], now=T0)
        assert seal(b, 1).seq == 1
    finally:
        b.close()


def test_seal_nothing(box: Outbox) -> None:
    assert box.seal(0, gateway_id=GW, generation=Generation.TEST, now=T0) is None
    assert box.seal(5, gateway_id=GW, generation=Generation.TEST, now=T0) is None
    box.add([obs(0)], now=T0)
    assert box.seal(-1, gateway_id=GW, generation=Generation.TEST, now=T0) is None
    assert seal(box, 5).seq == 0  # empty seals consumed no seq


def test_add_nothing(box: Outbox) -> None:
    assert box.add([], now=T0) == 0
    assert box.stats().depth == 0


def test_failed_seal_rolls_back(box: Outbox) -> None:
    box.add([obs(0), obs(1)], now=T0)
    with pytest.raises(ValidationError):
        box.seal(2, gateway_id="bad id/with slash", generation=Generation.TEST, now=T0)
    assert box.stats().pending == 2
    assert box.sealed() == []
    assert seal(box, 2).seq == 0  # the failed attempt consumed no seq


def test_waveforms_travel_in_the_batch(box: Outbox) -> None:
    box.add([obs(0)], [wave(0), wave(1)], now=T0)
    box.add([obs(1)], now=T0)
    batch = seal(box, 10)
    assert batch.observations == [obs(0), obs(1)]
    assert batch.waveforms == [wave(0), wave(1)]


def test_waveform_only_batch(box: Outbox) -> None:
    box.add([], [wave(0)], now=T0)
    batch = seal(box, 1)
    assert batch.observations == []
    assert batch.waveforms == [wave(0)]


@given(st.lists(st.integers(1, 7), min_size=1, max_size=8), st.integers(1, 9))
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_batches_partition_the_readings_in_order(
    tmp_path: Path, adds: list[int], per_batch: int
) -> None:
    b = Outbox(tmp_path / f"p{len(list(tmp_path.iterdir()))}.db")
    try:
        n = 0
        for k in adds:
            assert b.add([obs(n + j) for j in range(k)], now=T0) == k
            n += k
        got: list[Observation] = []
        seqs = []
        while b.stats().pending:
            before = b.stats().depth
            batch = seal(b, per_batch)
            assert b.stats().depth == before  # sealing moves readings, it does not drop them
            got += batch.observations
            seqs.append(batch.seq)
        assert got == [obs(i) for i in range(n)]
        assert seqs == list(range(len(seqs)))
    finally:
        b.close()


# ---------------------------------------------------------------------------------------------
# overflow


def test_drop_oldest_drops_oldest_pending(db: Path) -> None:
    b = Outbox(db, max_rows=5, overflow="drop_oldest")
    try:
        assert b.add([obs(i) for i in range(5)], now=T0) == 5
        assert b.add([obs(5), obs(6)], now=T0) == 2
        s = b.stats()
        assert (s.pending, s.dropped, s.rejected, s.depth) == (5, 2, 0, 5)
        assert seal(b, 10).observations == [obs(i) for i in range(2, 7)]
    finally:
        b.close()


def test_drop_oldest_never_drops_sealed_batches(db: Path) -> None:
    b = Outbox(db, max_rows=5, overflow="drop_oldest")
    try:
        b.add([obs(i) for i in range(5)], now=T0)
        sealed = seal(b, 4)
        assert b.add([obs(5), obs(6), obs(7)], now=T0) == 1  # only 1 pending row can go
        s = b.stats()
        assert (s.pending, s.sealed_obs, s.dropped, s.rejected, s.depth) == (1, 4, 1, 2, 5)
        assert ObservationBatch.model_validate_json(b.sealed()[0].payload) == sealed
        assert seal(b, 5).observations == [obs(5)]
    finally:
        b.close()


def test_reject_new_keeps_old_readings(db: Path) -> None:
    b = Outbox(db, max_rows=5, overflow="reject_new")
    try:
        assert b.add([obs(i) for i in range(4)], now=T0) == 4
        assert b.add([obs(4), obs(5), obs(6)], now=T0) == 1
        assert b.add([obs(7)], now=T0) == 0
        s = b.stats()
        assert (s.pending, s.dropped, s.rejected, s.depth) == (5, 0, 3, 5)
        assert seal(b, 10).observations == [obs(i) for i in range(5)]
        b.ack(0)
        assert b.add([obs(8)], now=T0) == 1  # room again once the broker acknowledged
    finally:
        b.close()


def test_overflow_counters_survive_restart(db: Path) -> None:
    b = Outbox(db, max_rows=2, overflow="reject_new")
    b.add([obs(0), obs(1), obs(2)], now=T0)
    b.close()
    b = Outbox(db, max_rows=2, overflow="drop_oldest")
    try:
        b.add([obs(3)], now=T0)
        s = b.stats()
        assert (s.rejected, s.dropped, s.pending) == (1, 1, 2)
    finally:
        b.close()


@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=10),
    st.sampled_from(["drop_oldest", "reject_new"]),
    st.integers(1, 8),
)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_overflow_accounting(tmp_path: Path, adds: list[int], policy: str, max_rows: int) -> None:
    """accepted + rejected == offered; depth <= max_rows; depth == accepted - dropped - acked."""
    b = Outbox(
        tmp_path / f"o{len(list(tmp_path.iterdir()))}.db",
        max_rows=max_rows,
        overflow=policy,  # type: ignore[arg-type]
    )
    try:
        offered = accepted = acked = 0
        n = 0
        for i, k in enumerate(adds):
            acc = b.add([obs(n + j) for j in range(k)], now=T0)
            n += k
            offered += k
            accepted += acc
            if i % 3 == 2:
                s = seal(b, 2) if b.stats().pending else None
                if s is not None and i % 2:
                    b.ack(s.seq)
                    acked += len(s.observations)
            st_ = b.stats()
            assert st_.depth <= max_rows
            assert accepted + st_.rejected == offered
            assert st_.depth == accepted - st_.dropped - acked
            if policy == "reject_new":
                assert st_.dropped == 0
    finally:
        b.close()


def test_depth_counts_sealed_waveforms(db: Path) -> None:
    b = Outbox(db, max_rows=3, overflow="reject_new")
    try:
        assert b.add([], [wave(0), wave(1), wave(2)], now=T0) == 3
        assert b.stats().depth == 3
        seal(b, 3)
        assert b.stats().depth == 3  # still held, not yet acknowledged
        assert b.add([obs(0)], now=T0) == 0  # so the outbox is still full
    finally:
        b.close()


def test_many_pending_waveform_blocks_are_split_over_batches(db: Path) -> None:
    """More waveform blocks than one batch may carry: sealed over several batches, in order
    (was: ValidationError on every seal, a crash loop for the gateway)."""
    b = Outbox(db)
    try:
        b.add([obs(0)], [wave(i % 3) for i in range(150)], now=T0)
        first = seal(b, 500)
        second = seal(b, 500)
        assert len(first.waveforms) == 100 and first.observations == [obs(0)]
        assert len(second.waveforms) == 50
        assert b.stats().pending == 0
    finally:
        b.close()
