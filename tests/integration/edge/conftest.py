"""Fixtures of the edge durability tests (helpers live in ``harness.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from device_sims.burst import WwmonBurstSim


@pytest.fixture
def bursts(tmp_path: Path) -> Iterator[dict[str, WwmonBurstSim]]:
    """Three WWMON devices on ptys (open, not yet sending)."""
    sims = {
        f"mon{i}": WwmonBurstSim(f"mon{i}", tmp_path / "tty" / f"mon{i}", seed=i) for i in range(3)
    }
    for s in sims.values():
        s.open()
    yield sims
    for s in sims.values():
        s.close()
