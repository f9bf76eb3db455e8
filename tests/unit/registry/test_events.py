"""Change events: what differs between two contexts of a unit (pure, with properties), and the
watcher over a real database (SQLite and PostgreSQL) seeing every kind of change, including one
made by another writer (the CLI working on the database directly)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from registry import assets, care
from registry.events import ContextWatcher, context_change
from registry.schemas import BedRequest, DeviceUpdate, GatewayRequest, TimeRequest
from tests.unit.registry.test_service import admit, assign, do, to, ward
from wardwire.context import BedContext, GatewayContext, UnitContext

T0 = datetime(2025, 6, 1, 6, 0).astimezone()
Clock = Callable[[float], datetime]

ids = st.sampled_from([f"b{i}" for i in range(6)])
devs = st.lists(st.sampled_from([f"d{i}" for i in range(6)]), max_size=3, unique=True)


@st.composite
def contexts(draw: st.DrawFn) -> UnitContext:
    gws = draw(st.lists(st.sampled_from(["gw-a", "gw-b", "gw-c"]), min_size=1, max_size=3,
                        unique=True))
    beds: list[BedContext] = []
    used: set[str] = set()
    for bid in draw(st.lists(ids, max_size=5, unique=True)):
        d = [x for x in draw(devs) if x not in used]
        used.update(d)
        occupied = draw(st.booleans())
        beds.append(BedContext(
            id=bid, gateway=draw(st.sampled_from(gws)), devices=d,
            patient="P-1a2b3c" if occupied else None,
            dob=draw(st.dates(date(2010, 1, 1), date(2025, 1, 1))) if occupied else None,
            admission=draw(st.sampled_from(["A-1", "A-2"])) if occupied else None,
        ))
    return UnitContext(site="demo", unit="picu", gateways=[GatewayContext(id=g) for g in gws],
                       beds=beds, time_zone=draw(st.sampled_from(["UTC", "Asia/Shanghai"])))


@given(contexts())
def test_the_same_context_is_no_change(ctx: UnitContext) -> None:
    assert context_change(ctx, ctx.model_copy(deep=True), T0) is None


@given(contexts(), contexts())
def test_a_change_names_ids_only_and_exactly_the_beds_that_differ(
    old: UnitContext, new: UnitContext
) -> None:
    ev = context_change(old, new, T0)
    o, n = {b.id: b for b in old.beds}, {b.id: b for b in new.beds}
    differing = {b for b in o.keys() | n.keys()
                 if o.get(b) is None or n.get(b) is None or o[b] != n[b]}
    if ev is None:
        assert not differing and {g.id for g in old.gateways} == {g.id for g in new.gateways}
        return
    assert set(ev.beds) == differing
    assert set(ev.gateways) == {g.id for g in old.gateways} ^ {g.id for g in new.gateways}
    wire = ev.model_dump_json()
    assert "P-1a2b3c" not in wire and "dob" not in wire and "admission" not in wire
    # symmetric: undoing a change names the same ids
    back = context_change(new, old, T0)
    assert back is not None
    assert (back.beds, back.gateways, back.devices) == (ev.beds, ev.gateways, ev.devices)


def test_a_unit_that_appears_or_goes_names_everything_it_holds() -> None:
    ctx = UnitContext(site="demo", unit="picu", gateways=[GatewayContext(id="gw-a")],
                      beds=[BedContext(id="bed01", gateway="gw-a", devices=["mon-01"])])
    for ev in (context_change(None, ctx, T0), context_change(ctx, None, T0)):
        assert ev is not None
        assert (ev.beds, ev.gateways, ev.devices) == (["bed01"], ["gw-a"], ["mon-01"])
    assert context_change(None, None, T0) is None
    moved = ctx.model_copy(update={"time_zone": "Asia/Shanghai"})
    ev = context_change(ctx, moved, T0)
    assert ev is not None and (ev.beds, ev.gateways, ev.devices) == ([], [], [])


def _changes(w: ContextWatcher, t: datetime) -> list[tuple[str, list[str], list[str],
                                                           list[str]]]:
    return [(f"{e.site}/{e.unit}", e.beds, e.gateways, e.devices) for e in w.poll(t)]


def test_the_watcher_sees_every_change_once(engine: Engine, clock: Clock) -> None:
    ward(engine, clock(0))
    watcher = ContextWatcher(engine)
    started = watcher.poll(clock(1))
    assert [(e.site, e.unit, e.reason) for e in started] == [
        ("demo", "picu", "started"), ("other", "nicu", "started")]
    assert _changes(watcher, clock(2)) == []

    do(engine, lambda s: care.assign(s, assign("mon-01", "bed01", clock(3)), now=clock(3)))
    assert _changes(watcher, clock(4)) == [("demo/picu", ["bed01"], [], ["mon-01"])]
    assert _changes(watcher, clock(5)) == []  # announced once

    do(engine, lambda s: care.admit(s, admit("P-1a2b3c", "bed02", clock(6)), now=clock(6)))
    do(engine, lambda s: care.transfer(s, "P-1a2b3c", to("bed03", clock(7)), now=clock(7)))
    # two writes between two looks: what differs between the looks (bed02 was empty then
    # and is empty again)
    assert _changes(watcher, clock(8)) == [("demo/picu", ["bed03"], [], [])]
    do(engine, lambda s: care.transfer(s, "P-1a2b3c", to("bed02", clock(9)), now=clock(9)))
    assert _changes(watcher, clock(9.5)) == [("demo/picu", ["bed02", "bed03"], [], [])]

    do(engine, lambda s: assets.add_gateway(s, "demo", "picu", GatewayRequest(id="gw-c"),
                                            now=clock(9)))
    assert _changes(watcher, clock(10)) == [("demo/picu", [], ["gw-c"], [])]

    do(engine, lambda s: assets.add_bed(s, "demo", "picu", BedRequest(id="bed09", gateway="gw-c"),
                                        now=clock(11)))
    assert _changes(watcher, clock(12)) == [("demo/picu", ["bed09"], [], [])]

    # a device's firmware is not in the context: no event
    do(engine, lambda s: assets.update_device(s, "mon-02", DeviceUpdate(firmware="2.1")))
    assert _changes(watcher, clock(14)) == []

    do(engine, lambda s: care.discharge(s, "P-1a2b3c", TimeRequest(time=clock(15)),
                                        now=clock(15)))
    assert _changes(watcher, clock(16)) == [("demo/picu", ["bed02"], [], [])]

    def retire_other(s: Session) -> None:
        assets.retire_gateway(s, "gw-x", now=clock(17))
        assets.retire_unit(s, "other", "nicu", now=clock(17))

    do(engine, retire_other)
    assert _changes(watcher, clock(18)) == [("other/nicu", [], ["gw-x"], [])]


def test_another_writer_is_seen_too(registry_url: str, clock: Clock) -> None:
    from registry.db import open_database

    a, b = open_database(registry_url), open_database(registry_url)
    try:
        ward(a, clock(0))
        watcher = ContextWatcher(a)
        watcher.poll(clock(1))
        do(b, lambda s: care.assign(s, assign("mon-02", "bed02", clock(2)), now=clock(2)))
        assert _changes(watcher, clock(3)) == [("demo/picu", ["bed02"], [], ["mon-02"])]
    finally:
        a.dispose()
        b.dispose()
