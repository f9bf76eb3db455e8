"""JSON Schema of every wire model, for clients not written in Python (``wardwatch wire schema``
writes them to files)."""

from __future__ import annotations

from wardwire.models import WIRE_MODELS


def schemas() -> dict[str, dict[str, object]]:
    """``{ModelName: json_schema}`` for every top-level wire model."""
    return {m.__name__: m.model_json_schema(mode="serialization") for m in WIRE_MODELS}
