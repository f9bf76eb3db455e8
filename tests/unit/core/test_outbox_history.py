"""The outbox knows its own history (issue 9, finding 4): a deleted outbox was silently
recreated (208 queued observations gone, seq back to 0, ingest counting duplicates), and a
corrupt one exited with a traceback that did not name the file."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox, OutboxCorrupt, OutboxHistoryError
from wardwire.models import Generation, Observation, ObservationBatch

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def obs(i: int) -> Observation:
    t = T0 + timedelta(seconds=i)
    return Observation(device_id="d1", code="HR", value=100.0, unit="/min", measured_at=t,
                       received_at=t)


def fill(b: Outbox, n: int = 3) -> ObservationBatch:
    b.add([obs(i) for i in range(n)], now=T0)
    sb = b.seal(n, gateway_id="gw1", generation=Generation.TEST, now=T0)
    assert sb is not None
    return ObservationBatch.model_validate_json(sb.payload)


def remove(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)


def test_every_batch_carries_the_epoch_and_it_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    b = Outbox(db)
    assert b.epoch_reason == "first start"
    first = fill(b)
    b.close()
    b2 = Outbox(db)
    assert b2.epoch == b.epoch == first.epoch and b2.epoch_reason is None
    assert fill(b2).seq == first.seq + 1
    b2.close()


def test_a_deleted_outbox_is_refused_without_new_outbox(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    b = Outbox(db)
    old = fill(b)
    b.close()
    remove(db)
    with pytest.raises(OutboxHistoryError, match=r"outbox .*outbox.db is missing.*--new-outbox"):
        Outbox(db)
    assert not db.exists()  # refusing did not create it
    b2 = Outbox(db, new_epoch=True)
    assert b2.epoch != old.epoch
    assert b2.epoch_reason is not None and b2.epoch_reason.startswith("--new-outbox")
    assert fill(b2).epoch == b2.epoch
    b2.close()
    assert Outbox(db).epoch == b2.epoch  # the new epoch is the history from now on


def test_an_old_copy_restored_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    b = Outbox(db)
    fill(b)
    b.close()
    copy = tmp_path / "copy.db"
    copy.write_bytes(db.read_bytes())
    b = Outbox(db)
    fill(b)
    fill(b)
    b.close()
    remove(db)
    db.write_bytes(copy.read_bytes())
    with pytest.raises(OutboxHistoryError, match="behind"):
        Outbox(db)


def test_another_gateways_outbox_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "outbox.db", tmp_path / "b" / "outbox.db"
    Outbox(a).close()
    Outbox(b).close()
    remove(a)
    a.write_bytes(b.read_bytes())
    with pytest.raises(OutboxHistoryError, match="has epoch"):
        Outbox(a)


@pytest.mark.parametrize(
    "content", [b"this is not sqlite" * 100, b"SQLite format 3\x00" + b"\x00" * 50]
)
def test_a_corrupt_outbox_names_the_file_and_what_to_do(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "outbox.db"
    db.write_bytes(content)
    with pytest.raises(OutboxCorrupt, match=r"outbox .*outbox.db is corrupt.*Move it aside"):
        Outbox(db)


def test_an_unreadable_marker_is_named(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    Outbox(db).close()
    (tmp_path / "outbox.db.epoch").write_text("{", encoding="utf-8")
    with pytest.raises(OutboxHistoryError, match=r"outbox\.db\.epoch is unreadable"):
        Outbox(db)


def test_a_stored_reading_that_no_longer_validates_is_quarantined(tmp_path: Path) -> None:
    """Rows written under a laxer contract (e.g. a 1970 device time) must not crash-loop the
    seal: they are kept aside, counted, and the rest is sealed."""
    db = tmp_path / "outbox.db"
    b = Outbox(db)
    b.add([obs(0), obs(1)], now=T0)
    b.close()
    raw = sqlite3.connect(db)
    bad = json.loads(obs(2).model_dump_json())
    bad["measured_at"] = "1970-01-01T00:00:00Z"
    raw.execute("INSERT INTO pending (kind, received_ms, body) VALUES ('obs', 0, ?)",
                (json.dumps(bad),))
    raw.commit()
    raw.close()
    b = Outbox(db)
    sb = b.seal(10, gateway_id="gw1", generation=Generation.TEST, now=T0)
    assert sb is not None and sb.n_obs == 2
    st = b.stats()
    assert st.quarantined == 1 and st.pending == 0
    (reason,) = sqlite3.connect(db).execute("SELECT reason FROM quarantine").fetchone()
    assert "measured_at" in reason
    b.close()


def test_legacy_outbox_without_epoch_gets_one(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    b = Outbox(db)
    fill(b)
    b.close()
    raw = sqlite3.connect(db)
    raw.execute("DELETE FROM identity")
    raw.commit()
    raw.close()
    (tmp_path / "outbox.db.epoch").unlink()
    b = Outbox(db)
    assert b.epoch_reason == "outbox from an earlier version: epoch created"
    b.close()


def test_the_largest_waveform_backlog_seals_into_batches_the_broker_carries(
    tmp_path: Path,
) -> None:
    """The model allowed 100 blocks of 10,000 samples (25 MB of JSON), which the broker's
    8 MiB message_size_limit refuses: every sealed batch now fits both."""
    from edge_agent.outbox import MAX_SEAL_BYTES
    from wardwire.models import MAX_BATCH_SAMPLES, WaveformBlock

    b = Outbox(tmp_path / "outbox.db")
    waves = [
        WaveformBlock(device_id="d1", code="PLETH", unit="{unitless}",
                      start=T0 + timedelta(seconds=20 * i), received_at=T0, sample_rate_hz=500.0,
                      samples=[1234.5678901234567 + j for j in range(10_000)])
        for i in range(100)
    ]
    b.add([], waves, now=T0)
    sizes, total = [], 0
    while (sb := b.seal(10_000, gateway_id="gw1", generation=Generation.TEST, now=T0)):
        batch = ObservationBatch.model_validate_json(sb.payload)
        n = sum(len(w.samples) for w in batch.waveforms)
        assert n <= MAX_BATCH_SAMPLES
        sizes.append(len(sb.payload))
        total += len(batch.waveforms)
    assert total == 100 and max(sizes) < MAX_SEAL_BYTES + 64 * 1024 < 8 * 1024 * 1024
    b.close()
