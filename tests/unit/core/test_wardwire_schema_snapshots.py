"""JSON-schema snapshots of the wire contract: a wire change must show up as a reviewed diff.

To accept an intended change, review it and regenerate the snapshots::

    WARDWATCH_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/core/test_wardwire_schema_snapshots.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from wardwatch.schema import export_schemas
from wardwire.models import WIRE_MODELS
from wardwire.schema import schemas

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("WARDWATCH_UPDATE_SNAPSHOTS") == "1"


def _render(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("name", [m.__name__ for m in WIRE_MODELS])
def test_schema_matches_snapshot(name: str) -> None:
    current = _render(schemas()[name])
    path = SNAPSHOTS / f"{name}.schema.json"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(current, encoding="utf-8")
        return
    assert path.exists(), (
        f"No JSON-schema snapshot for wire model {name} ({path}). If this is a new wire model, "
        "generate it with WARDWATCH_UPDATE_SNAPSHOTS=1 and commit it."
    )
    recorded = path.read_text(encoding="utf-8")
    assert json.loads(current) == json.loads(recorded), (
        f"The JSON schema of wire model {name} changed. This is a change to the wire contract "
        "that every gateway, service and non-Python client speaks: review it (is it backwards "
        "compatible? does it need a schema_version bump?) and, if intended, regenerate the "
        "snapshots with WARDWATCH_UPDATE_SNAPSHOTS=1 .venv/bin/pytest "
        "tests/unit/core/test_wardwire_schema_snapshots.py and commit the diff."
    )


def test_no_stale_snapshots() -> None:
    names = {m.__name__ for m in WIRE_MODELS}
    stale = sorted(p.name for p in SNAPSHOTS.glob("*.schema.json") if p.name[:-12] not in names)
    assert not stale, f"snapshots without a wire model (delete them after review): {stale}"


def test_export_schemas_writes_one_file_per_model(tmp_path: Path) -> None:
    paths = export_schemas(tmp_path / "out")
    assert sorted(p.name for p in paths) == sorted(f"{m.__name__}.schema.json" for m in WIRE_MODELS)
    for p in paths:
        assert json.loads(p.read_text(encoding="utf-8")) == schemas()[p.name[:-12]]


def test_schemas_forbid_extra_keys_and_pin_schema_version() -> None:
    for name, schema in schemas().items():
        assert schema.get("additionalProperties") is False, name
        props = schema["properties"]
        assert isinstance(props, dict)
        assert props["schema_version"].get("const") == 1, name
