"""The board follows the registry: a change event for its unit wakes the re-read, a re-read
adds and removes bed rows (keeping what is known of the others), and a registry that does not
answer is said on the board in red, with the beds as last known."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from console.board import WardView, refresh_context, render
from servicekit.context import ContextSource
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import ContextChanged, Generation

T0 = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
WARD = UnitContext(site="s1", unit="u1", generation=Generation.TEST,
                   gateways=[GatewayContext(id="gw1")],
                   beds=[BedContext(id="b1", gateway="gw1", devices=["d1"]),
                         BedContext(id="b2", gateway="gw1", devices=["d2"])])


def shown(view: WardView) -> str:
    c = Console(record=True, width=160)
    c.print(render(view, now=T0))
    return c.export_text()


def test_a_change_event_of_its_unit_wakes_the_reader_and_a_bad_one_is_refused() -> None:
    v = WardView(WARD)
    assert (topics.context_changed("s1", "u1"), 1) in v.filters(topics.ROOT)
    v.on_message(topics.context_changed("s1", "u1"), b'{"kind": "context_changed"}')
    assert not v.context_changed.is_set() and v.rejections == {"malformed": 1}
    ev = ContextChanged(site="s1", unit="u1", at=T0, beds=["b3"])
    v.on_message(topics.context_changed("s1", "u1"), ev.model_dump_json().encode())
    assert v.context_changed.is_set()
    # another unit's event on another unit's topic is outside this view
    v.context_changed.clear()
    other = ContextChanged(site="s1", unit="u2", at=T0)
    v.on_message(topics.context_changed("s1", "u2"), other.model_dump_json().encode())
    assert not v.context_changed.is_set()


def test_a_re_read_adds_and_removes_rows_and_keeps_what_is_known() -> None:
    v = WardView(WARD)
    v.beds["b1"].vitals["HR"] = 120.0
    moved = WARD.model_copy(update={"beds": [
        WARD.beds[0], BedContext(id="b3", gateway="gw1", devices=["d2"])]})
    v.set_context(moved)
    assert list(v.beds) == ["b1", "b3"] and v.beds["b1"].vitals == {"HR": 120.0}
    assert v.ward is moved and v.context_stale is None


def test_a_registry_that_does_not_answer_is_shown_in_red(tmp_path: Path) -> None:
    v = WardView(WARD)
    assert "BEDS AS LAST KNOWN" not in shown(v)
    # nothing listens on port 9 of loopback; no cache: the view keeps its beds and says why
    refresh_context(v, ContextSource("http://127.0.0.1:9/units/s1/u1/context",
                                     tmp_path / "cache.json", timeout_s=2))
    assert v.context_stale is not None and "cannot reach" in v.context_stale
    assert list(v.beds) == ["b1", "b2"]
    assert "BEDS AS LAST KNOWN" in shown(v)
    # a context of another unit is refused, not shown
    other = tmp_path / "other.toml"
    other.write_text('site = "s1"\nunit = "u9"\nbeds = []\n[[gateways]]\nid = "gw1"\n',
                     encoding="utf-8")
    refresh_context(v, ContextSource(other))
    assert v.context_stale is not None and "u9" in v.context_stale
    assert v.ward is WARD
