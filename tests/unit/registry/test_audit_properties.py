"""Property: whichever record of a chain is changed, in whichever field, to whatever other
value, verification fails naming that very record (each change is rolled back after)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from registry import assets, audit
from registry.db import open_database, transaction
from registry.schemas import BedRequest, SiteRequest, UnitRequest

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
N = 12


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = open_database(f"sqlite:///{tmp_path_factory.mktemp('chain') / 'r.db'}")
    with transaction(engine) as s:
        assets.add_site(s, SiteRequest(id="demo"), now=T0)
        assets.add_unit(s, UnitRequest.model_validate(
            {"site": "demo", "id": "picu", "time_zone": "UTC"}), now=T0)
    for i in range(N - 2):
        with transaction(engine) as s:
            audit.act_as(s, f"user{i % 3}")
            audit.at_time(s, T0 + timedelta(minutes=i))
            assets.add_bed(s, "demo", "picu", BedRequest(id=f"b{i}"), now=T0)
    yield engine
    engine.dispose()


FIELDS = {
    "actor": st.text(min_size=1, max_size=20),
    "action": st.text(min_size=1, max_size=20),
    "subject": st.text(max_size=40),
    "detail": st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5),
                              max_size=3).map(json.dumps),
    "at": st.integers(1, 10**6).map(lambda s: (T0 + timedelta(seconds=s)).replace(tzinfo=None)
                                    .isoformat(sep=" ")),
    "prev": st.text("0123456789abcdef", min_size=64, max_size=64),
    "hash": st.text("0123456789abcdef", min_size=64, max_size=64),
}


@settings(max_examples=80, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(seq=st.integers(1, N), field=st.sampled_from(sorted(FIELDS)), data=st.data())
def test_any_change_to_any_record_is_found_at_that_record(
    chain: Engine, seq: int, field: str, data: st.DataObject
) -> None:
    value = data.draw(FIELDS[field])
    with chain.connect() as conn:
        trans = conn.begin()
        try:
            old = conn.execute(text(f"SELECT {field} FROM audit_log WHERE seq = :s"),
                               {"s": seq}).scalar_one()
            if str(old) == value:
                return
            conn.execute(text(f"UPDATE audit_log SET {field} = :v WHERE seq = :s"),
                         {"v": value, "s": seq})
            v = audit.verify(Session(bind=conn))
        finally:
            trans.rollback()
    assert v.broken is not None, (field, seq, value)
    assert v.broken.seq == seq, (field, seq, v)
