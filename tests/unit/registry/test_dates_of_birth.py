"""Dates of birth go where they are needed: the alert engine's token (and staff) read them in a
unit context; ingest's and the console's ``service`` token get the same context with every date
of birth null. The rest of the context is the same for both."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from registry import assets, care
from registry.api import create_app
from registry.errors import Invalid
from registry.schemas import AdmitRequest, BedRequest, PatientRequest, TransferRequest
from tests.unit.registry.authn import bearer, token_for
from tests.unit.registry.test_service import admit, assign, do, refused, ward

URL = "/units/demo/picu/context"


@pytest.mark.parametrize(("role", "sees"), [
    ("alert_engine", True), ("nurse", True), ("service", False),
])
def test_only_who_scores_or_cares_reads_dates_of_birth(
    engine: Engine, clock: Callable[[float], datetime], role: str, sees: bool
) -> None:
    ward(engine, clock(0))
    do(engine, lambda s: care.assign(s, assign("mon-01", "bed01", clock(1)), now=clock(1)))
    do(engine, lambda s: care.admit(s, admit("P-1a2b3c", "bed01", clock(2)), now=clock(2)))
    client = TestClient(create_app(engine))
    got = client.get(URL, headers=bearer(token_for(engine, role)))
    assert got.status_code == 200, got.text
    beds = {b["id"]: b for b in got.json()["beds"]}
    assert beds["bed01"]["patient"] == "P-1a2b3c"
    assert (beds["bed01"]["dob"] == "2022-03-14") is sees
    if not sees:
        assert "2022-03-14" not in got.text
        full = client.get(URL, headers=bearer(token_for(engine, "alert_engine"))).json()
        for b in full["beds"]:
            b["dob"] = None
        assert got.json() == full



def test_a_child_is_never_in_a_bed_before_its_local_date_of_birth(
    engine: Engine, clock: Callable[[float], datetime]
) -> None:
    """(found by red-team) the registry took any date of birth up to "today in UTC+14" and
    admitted up to 14 h before it: in a London unit at 13:00 UTC, a child born "tomorrow" was
    admitted, and the alert engine, whose scorer refuses an age below zero in the unit's own
    date, raised a technical alert on MQTT reading "not scored: dob: <the date of birth> is
    after the observation date". An admission or a transfer into a unit whose local date is
    before the date of birth is refused, and the refusal does not echo the date."""
    ward(engine, clock(0))  # demo/picu: Asia/Shanghai; other/nicu: Europe/London
    do(engine, lambda s: assets.add_bed(s, "other", "nicu", BedRequest(id="n1", gateway="gw-x"),
                                        now=clock(0)))
    at_13 = clock(5 * 60)  # 2025-06-01 13:00 UTC: 14:00 in London, 21:00 in Shanghai
    do(engine, lambda s: care.add_patient(s, PatientRequest(id="P-newborn1",
                                                            dob=date(2025, 6, 2)), now=at_13))
    why = refused(engine, lambda s: care.admit(s, AdmitRequest(
        patient="P-newborn1", site="other", unit="nicu", bed="n1", time=at_13), now=at_13),
        Invalid, "before its date of birth")
    assert "2025-06-02" not in why, why
    # 19:30 UTC is 03:30 on 2 June in Shanghai: born today there, admitted
    at_1930 = clock(11 * 60 + 30)
    do(engine, lambda s: care.admit(s, AdmitRequest(
        patient="P-newborn1", site="demo", unit="picu", bed="bed01", time=at_1930), now=at_1930))
    # a minute later London is still on 1 June: no transfer there
    at_1931 = clock(11 * 60 + 31)
    refused(engine, lambda s: care.transfer(s, "P-newborn1", TransferRequest(
        site="other", unit="nicu", bed="n1", time=at_1931), now=at_1931), Invalid,
        "before its date of birth")
