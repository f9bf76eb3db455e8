"""The pure part of a hash chain, shared by the alert engine's journal (``alerting.journal``)
and the registry's audit log (``registry.audit``): one canonical JSON form and its SHA-256.

Canonical JSON: sorted keys, no whitespace, UTF-8 with non-ASCII characters as themselves. Each
record's hash covers its fields and the previous record's hash; the first record's previous hash
is ``GENESIS``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["GENESIS", "canonical", "digest"]

GENESIS = "0" * 64


def canonical(value: Any) -> bytes:
    # surrogatepass: a tampered value may hold a lone surrogate; it must hash (and fail), not
    # raise
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def digest(value: Any) -> str:
    """The SHA-256 (hex) of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical(value)).hexdigest()
