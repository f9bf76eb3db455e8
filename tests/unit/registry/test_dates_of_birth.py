"""Dates of birth go where they are needed: the alert engine's token (and staff) read them in a
unit context; ingest's and the console's ``service`` token get the same context with every date
of birth null. The rest of the context is the same for both."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from registry import care
from registry.api import create_app
from tests.unit.registry.authn import bearer, token_for
from tests.unit.registry.test_service import admit, assign, do, ward

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
