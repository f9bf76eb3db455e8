"""The score result: what was scored, with which table, and what is missing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """One scored observation set.

    Attributes:
        system: Scoring system name (one of `SYSTEMS`).
        band: Age band id used (``BP-A``..., ``UK-A``..., ``NEWS2``; None for Brighton), stored
            with every score because a child can cross a band boundary mid-admission.
        total: Sum of the item scores; missing items count 0, so check `complete`.
        items: Item -> sub-score; None = not obtained. A partially obtained item (e.g. oxygen
            device known but not its flow) carries the lowest score consistent with what is
            known and is also listed in `missing`.
        complete: False when any item is missing or partial; never show such a total as final.
        missing: Items not (fully) obtained, in item order.
        escalation: System-specific escalation fields, exactly as in
            docs/clinical/vocabulary.md#escalation-fields.
        table_version: Version of the table file used (audit trail).
    """

    system: str
    band: str | None
    total: int
    items: dict[str, int | None]
    complete: bool
    missing: tuple[str, ...]
    escalation: dict[str, object]
    table_version: str

    def as_dict(self) -> dict[str, object]:
        """The CLI output object (docs/clinical/vocabulary.md#item-keys, plus ``table_version``)."""
        return {
            "system": self.system,
            "band": self.band,
            "total": self.total,
            "items": dict(self.items),
            "complete": self.complete,
            "missing": list(self.missing),
            "escalation": dict(self.escalation),
            "table_version": self.table_version,
        }


def partial_total(items: Mapping[str, int | None]) -> int:
    """Sum of the obtained items (missing items contribute 0).

    See docs/clinical/conventions.md#missing-items.
    """
    return sum(v for v in items.values() if v is not None)


def missing_items(
    items: Mapping[str, int | None], partial: frozenset[str] = frozenset()
) -> tuple[str, ...]:
    """Items that are not obtained or only partially obtained, in item order."""
    return tuple(k for k, v in items.items() if v is None or k in partial)
