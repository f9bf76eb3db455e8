"""Properties of nurses' commands on the pure core (hypothesis): any sequence of commands,
each possibly delivered twice, acts as if delivered once; a snooze is never longer than its
priority allows and never silences a HIGH alert; nothing but a person's command silences a
HIGH alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.core import AlertEffect, BedInfo, Reading, UnitEngine, default_rules
from alerting.pews import score
from wardwire.models import AlertEventType, AlertState, Generation, Priority, Source

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
SICK = {"hr_bpm": 185.0, "rr_bpm": 65.0, "spo2_pct": 86.0}  # Bedside PEWS 8: HIGH

Command = tuple[str, int, float | None, str | None]  # action, id, minutes, reason

commands = st.lists(
    st.tuples(
        st.sampled_from(["ack", "snooze", "escalate", "resolve", "receipt", "bogus"]),
        st.integers(0, 5),
        st.one_of(st.none(), st.floats(-10, 10_000) | st.just(float("nan"))),
        st.one_of(st.none(), st.just("plan documented")),
    ),
    max_size=12,
)


def run(cmds: list[Command], twice: set[int], values: dict[str, float]) -> list[tuple]:
    eng = UnitEngine(default_rules(), score, unit="u1", generation=Generation.TEST)
    eng.set_bed(BedInfo("b1", "bedside_pews", age_days=1100, age_at=T0), T0)
    out: list[tuple] = []
    t = T0
    for i, (action, cid, minutes, reason) in enumerate([("", -1, None, None), *cmds]):
        for _ in range(30 if cid < 0 else 12):  # 2.5 min first (a HIGH raises), then 1 min
            t += timedelta(seconds=5)
            effects = eng.on_deadline(t) + eng.on_readings(
                "b1", [Reading(k, v, t, Source.MEASURED, "m1") for k, v in values.items()], t)
            out += [(e.event.value, e.alert.state.value, e.alert.condition)
                    for e in effects if isinstance(e, AlertEffect)]
        if cid < 0:
            continue
        for _ in range(2 if i in twice else 1):
            effects, _refused = eng.on_command(
                action, t, "nurse-1", bed_id="b1", command_id=f"c{cid}", minutes=minutes,
                reason=reason, receipt="viewed" if action == "receipt" else None,
            )
            out += [(e.event.value, e.alert.state.value, e.alert.condition)
                    for e in effects if isinstance(e, AlertEffect)]
        bed = eng.bed("b1")
        assert bed is not None
        for ep in bed.episodes.values():
            if ep.state is AlertState.SNOOZED:
                assert ep.priority is not Priority.HIGH, "a HIGH alert was snoozed"
                assert ep.snoozed_until is not None
                longest = default_rules().snooze.longest_min(ep.priority)
                assert ep.snoozed_until - t <= timedelta(minutes=longest)
    return out


@settings(max_examples=60, deadline=None)
@given(commands, st.sets(st.integers(0, 12)))
def test_any_command_delivered_twice_acts_once(cmds: list[Command], twice: set[int]) -> None:
    assert run(cmds, twice, SICK) == run(cmds, set(), SICK)


@settings(max_examples=60, deadline=None)
@given(commands)
def test_a_high_alert_is_never_silenced_but_by_a_person(cmds: list[Command]) -> None:
    """Without an ack, a snooze (refused for HIGH anyway) or a resolve, a HIGH alert that is
    raised stays active; only commands ever take it out of active."""
    events = run([c for c in cmds if c[0] not in ("ack", "resolve", "receipt")], set(), SICK)
    states = [s for ev, s, cond in events if cond == "pews"]
    assert states and all(s == "active" for s in states)
    assert not [ev for ev, _, cond in events if cond == "pews" and ev == "snoozed"]


@settings(max_examples=40, deadline=None)
@given(st.floats(-100, 10_000) | st.just(float("nan")))
def test_a_snooze_out_of_its_bounds_is_refused_with_the_reason(minutes: float) -> None:
    eng = UnitEngine(default_rules(), score, unit="u1", generation=Generation.TEST)
    eng.set_bed(BedInfo("b1", "bedside_pews", age_days=1100, age_at=T0), T0)
    eng.on_event("seq_gap", "3 missing", ["b1"], T0)  # a LOW technical alert: 60 min at most
    effects, refused = eng.on_command("snooze", T0, "nurse-1", bed_id="b1", minutes=minutes)
    ok = 0 < minutes <= 60
    assert bool(refused) is not ok
    assert any(isinstance(e, AlertEffect) and e.event is AlertEventType.SNOOZED
               for e in effects) is ok
