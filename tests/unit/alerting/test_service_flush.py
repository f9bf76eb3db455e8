"""The engine's state file at ward scale (``AlertingService._commit`` / ``_flush``).

A bed's alert decision is committed with that bed's state alone; the tick's flush writes every
other bed touched, in transactions of at most ``FLUSH_CHUNK`` beds, each bed's state taken when
its chunk is written, so a decision committed between two chunks is never overwritten by an
older state. No broker: the service is driven through its message boundary (paho keeps what it
publishes while unconnected)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from alerting.pews import score
from alerting.service import FLUSH_CHUNK, AlertingService
from alerting.store import Step
from servicekit.mqtt import MqttParams
from tests.helpers.alerting import instant_rules
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation, Observation, ObservationBatch
from wardwire.params import BY_CODE

NOW = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
NORMAL = {"HR": 110.0, "RR": 28.0, "SPO2": 97.0}
BAD = {"HR": 150.0, "RR": 60.0, "SPO2": 85.0}  # Bedside PEWS 5 at 3-4 years: LOW


def ward(n: int) -> UnitContext:
    return UnitContext(
        site="s1",
        unit="u1",
        generation=Generation.TEST,
        gateways=[GatewayContext(id="gw1")],
        beds=[
            BedContext(id=f"b{i:04d}", dob=date(2023, 3, 1), gateway="gw1",
                       devices=[f"d{i:04d}"])
            for i in range(n)
        ],
    )


class Rig:
    def __init__(self, tmp_path: Path, n: int) -> None:
        self.now = NOW
        self.svc = AlertingService(
            MqttParams(host="127.0.0.1", port=1), ward(n), instant_rules(), score,
            state=tmp_path / "state.sqlite", clock=lambda: self.now,
        )
        self.seq = 0
        self.steps: list[Step] = []
        self.after_commit: Callable[[], None] | None = None
        store = self.svc.store
        assert store is not None
        commit = store.commit

        def recording(step: Step, recorded_at: str) -> Any:
            self.steps.append(step)
            out = commit(step, recorded_at)
            hook, self.after_commit = self.after_commit, None
            if hook is not None:
                hook()
            return out

        store.commit = recording  # type: ignore[method-assign]

    def send(self, beds: dict[int, dict[str, float]]) -> None:
        """One gateway batch with these beds' vitals, stamped now, through the boundary."""
        obs = [
            Observation(device_id=f"d{i:04d}", code=c, value=v, unit=BY_CODE[c].ucum,
                        measured_at=self.now, received_at=self.now)
            for i, vitals in beds.items()
            for c, v in vitals.items()
        ]
        batch = ObservationBatch(gateway_id="gw1", seq=self.seq, sent_at=self.now,
                                 generation=Generation.TEST, observations=obs)
        self.seq += 1
        msg = mqtt.MQTTMessage(topic=topics.gateway_obs("s1", "u1", "gw1").encode())
        msg.payload = batch.model_dump_json().encode()
        self.svc.boundary(None, None, msg)

    def stored(self) -> dict[str, dict[str, Any]]:
        assert self.svc.store is not None
        return {b["info"]["bed_id"]: b for b in self.svc.store.beds()}


def test_the_flush_writes_every_touched_bed_in_bounded_transactions(tmp_path: Path) -> None:
    n = 2 * FLUSH_CHUNK + 50
    rig = Rig(tmp_path, n)
    rig.send(dict.fromkeys(range(n), NORMAL))
    rig.steps.clear()
    rig.svc.tick()
    sizes = [len(s.beds) for s in rig.steps if s.beds]
    assert sum(sizes) == n
    assert max(sizes) <= FLUSH_CHUNK
    stored = rig.stored()
    assert len(stored) == n
    assert all(len(b["readings"]) == 3 for b in stored.values())
    rig.steps.clear()
    rig.svc.tick()  # nothing touched since: nothing written
    assert not [s for s in rig.steps if s.beds]


def test_an_alert_commits_its_own_bed_and_the_others_wait_for_the_flush(tmp_path: Path) -> None:
    rig = Rig(tmp_path, 3)
    rig.send({0: NORMAL, 1: NORMAL, 2: NORMAL})
    rig.svc.tick()
    rig.now += timedelta(seconds=1)
    rig.steps.clear()
    rig.send({0: NORMAL, 1: BAD, 2: NORMAL})
    decisions = [s for s in rig.steps if s.journal]
    assert len(decisions) == 1
    assert set(decisions[0].beds) == {"b0001"}
    assert any(e.kind == "raised" for e in decisions[0].journal)
    assert rig.stored()["b0001"]["episodes"], "the raised alert is in the bed's stored state"
    rig.steps.clear()
    rig.svc.tick()
    assert {b for s in rig.steps for b in s.beds} == {"b0000", "b0002"}


def test_a_decision_between_two_chunks_is_not_overwritten(tmp_path: Path) -> None:
    n = FLUSH_CHUNK + 10
    late = f"b{n - 1:04d}"  # sorted last: in the second chunk
    rig = Rig(tmp_path, n)
    rig.send(dict.fromkeys(range(n), NORMAL))
    rig.svc.tick()
    rig.now += timedelta(seconds=1)
    rig.send(dict.fromkeys(range(n), NORMAL))
    rig.steps.clear()
    # right after the first chunk is written, the late bed deteriorates (as a message handled
    # between two chunks would)
    rig.after_commit = lambda: rig.send({n - 1: BAD})
    rig.svc.tick()
    written = [set(s.beds) for s in rig.steps if s.beds]
    assert written[1] == {late}, "the decision wrote the late bed with its alert"
    assert late not in set().union(*written[2:]), "the flush does not write it again"
    assert rig.stored()[late]["episodes"], "the alert survives in the stored state"
    assert sum(len(w) for w in written) == n
