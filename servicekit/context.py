"""Where a service gets its unit context (``wardwire.context.UnitContext``) from.

Today the source is a ward file (TOML, written by a biomedical engineer or the demo); tomorrow it
is the registry's API. Services call :func:`load_unit_context` with whatever the operator gave
(``--context`` / ``WM_CONTEXT``): a path, or an ``http(s)://`` URL that answers ``GET`` with the
unit context as JSON. Moving a unit from the file to the registry is a URL change, not a code
change.

Ward file example::

    site = "demo"
    unit = "picu"
    scoring_system = "bedside_pews"
    generation = "demo"          # the only generation this unit's gateways may send

    [[gateways]]
    id = "gw-a"

    [[beds]]
    id = "bed01"
    patient = "P-1a2b3c"         # pseudonymous id, never a name or MRN
    dob = "2022-03-14"
    gateway = "gw-a"
    devices = ["mon-bed01"]

Alert rules (freshness, onset, clear, escalation delays) are not unit context: they live in the
alerting service's unit rules file (``wardwatch alerting run --rules``).
"""

from __future__ import annotations

import json
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

from pydantic import ValidationError

from servicekit.tomlio import dump_model, load_toml_model, validation_lines
from wardwire.context import UnitContext

__all__ = ["UnitContextError", "dump_ward_file", "load_unit_context", "load_ward_file"]

#: A context document larger than this is refused (a unit has tens of beds, not millions).
MAX_CONTEXT_BYTES = 16 * 1024 * 1024


class UnitContextError(Exception):
    """The unit context could not be read or is not valid; the message says where and why."""


def load_ward_file(path: Path) -> UnitContext:
    """Read and validate a ward file; raises :class:`UnitContextError` naming each key path."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raw = None  # let the shared loader word the error
    if isinstance(raw, dict) and "alerting" in raw:
        raise UnitContextError(
            f"{path}: [alerting] is not unit context any more: move onset_s, clear_s, stale_s "
            "and escalate_after_s to the alerting unit rules file (wardwatch alerting run "
            "--rules FILE, also accepted as --policy; docs/alerting.md)"
        )
    return load_toml_model(path, UnitContext, "ward file", UnitContextError)


def dump_ward_file(ctx: UnitContext) -> str:
    """Render a unit context as a ward file (the demo and the load generator write one)."""
    return dump_model(ctx)


def _fetch(url: str, timeout_s: float) -> UnitContext:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            body = resp.read(MAX_CONTEXT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise UnitContextError(f"{url}: the context source answered {exc.code} {exc.reason}") \
            from exc
    except (urllib.error.URLError, OSError) as exc:
        raise UnitContextError(f"{url}: cannot reach the context source: {exc}") from exc
    if len(body) > MAX_CONTEXT_BYTES:
        raise UnitContextError(f"{url}: context larger than {MAX_CONTEXT_BYTES} bytes")
    try:
        return UnitContext.model_validate_json(body)
    except ValidationError as exc:
        raise UnitContextError(
            "\n".join([f"{url}: invalid unit context:", *validation_lines(exc)])
        ) from exc
    except json.JSONDecodeError as exc:  # pragma: no cover - pydantic reports JSON errors itself
        raise UnitContextError(f"{url}: not JSON: {exc}") from exc


def load_unit_context(source: str | Path, *, timeout_s: float = 10.0) -> UnitContext:
    """The unit context from a ward file path or a registry URL (``http://``, ``https://``)."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        return _fetch(text, timeout_s)
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    elif "://" in text:
        raise UnitContextError(f"{text}: a context source is a file path or an http(s) URL")
    return load_ward_file(Path(text))
