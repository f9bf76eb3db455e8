"""``wardwatch wire schema``: write the contract's JSON Schemas to files."""

from __future__ import annotations

import json
from pathlib import Path

from wardwire.schema import schemas


def export_schemas(out: Path) -> list[Path]:
    """Write ``<ModelName>.schema.json`` files into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in schemas().items():
        p = out / f"{name}.schema.json"
        p.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        paths.append(p)
    return paths
