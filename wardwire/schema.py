"""JSON Schema export of every wire model, for clients not written in Python."""

from __future__ import annotations

import json
from pathlib import Path

from wardwire.models import WIRE_MODELS


def schemas() -> dict[str, dict[str, object]]:
    """``{ModelName: json_schema}`` for every top-level wire model."""
    return {m.__name__: m.model_json_schema(mode="serialization") for m in WIRE_MODELS}


def export_schemas(out: Path) -> list[Path]:
    """Write ``<ModelName>.schema.json`` files into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in schemas().items():
        p = out / f"{name}.schema.json"
        p.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        paths.append(p)
    return paths
