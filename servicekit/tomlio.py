"""TOML files in and out: one loader that names every offending key path, one writer (tomli-w).

Every file format wardwatch reads (edge config, ward file, alerting policy) is a pydantic model
read with :func:`load_toml_model`; every file it writes goes through :func:`dumps`, so strings
are always escaped correctly (a ward or config value can hold quotes, backslashes, non-ASCII).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import tomli_w
from pydantic import BaseModel, ValidationError

__all__ = ["dump_model", "dumps", "load_toml_model", "validation_lines"]

M = TypeVar("M", bound=BaseModel)


def validation_lines(exc: ValidationError) -> list[str]:
    """One ``key.path: message`` line per error (the form every loader reports)."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return lines


def load_toml_model(path: Path, model: type[M], what: str, error: type[Exception]) -> M:
    """Read a TOML file into ``model``.

    Every failure raises ``error`` with a message naming the file and, for validation errors,
    each offending key path.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error("\n".join([f"{path}: invalid {what}:", *validation_lines(exc)])) from exc


def _drop_none(value: Any) -> Any:
    # TOML has no null: an absent key is how "not set" is written.
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def dumps(data: Mapping[str, Any]) -> str:
    """Render a mapping as TOML (``None`` values are left out)."""
    return tomli_w.dumps(_drop_none(data))


def dump_model(model: BaseModel) -> str:
    """Render a model as TOML that :func:`load_toml_model` reads back to an equal model."""
    return dumps(model.model_dump(mode="json"))
