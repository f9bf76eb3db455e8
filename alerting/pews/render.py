"""Human-readable rendering of tables, for ``wardwatch pews tables`` and clinical sign-off.

The cells are printed exactly as written in the file (the spec's own notation), in the spec's
table layout (one row per age band, one column per sub-score), so a reviewer can tick them off
against the system's page (docs/clinical/README.md#index) and the published source side by
side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .common import SystemScorer
from .tablefile import TableMeta

_COMMON = {"schema", "meta", "age_bands", "scoring", "numeric", "categorical"}


def _md_table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _flatten(prefix: str, value: object) -> Iterable[str]:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else str(key), sub)
    else:
        yield f"  {prefix} = {value!r}"


def meta_lines(meta: TableMeta) -> list[str]:
    """Provenance block of a table file."""
    lines = [
        meta.title,
        f"system: {meta.system}   kind: {meta.kind}   version: {meta.version}   date: {meta.date}",
        f"source: {meta.source}",
    ]
    if meta.source_url:
        lines.append(f"source url: {meta.source_url}")
    if meta.spec_reference:
        lines.append(f"spec: {meta.spec_reference}")
    lines += [
        f"reviewer: {meta.reviewer}",
        f"review status: {meta.review_status}",
        f"file: {meta.path}",
    ]
    lines += ["notes:", *(f"  - {n}" for n in meta.notes)] if meta.notes else []
    return lines


def render_table(table: SystemScorer) -> str:
    """The whole table as Markdown-ish text."""
    f = table.file
    lines = meta_lines(f.meta)
    scoring = f.top.data.get("scoring", {})
    lines += ["", "Gap rule: " + ", ".join(f"{k} = {v}" for k, v in dict(scoring).items())]  # type: ignore[call-overload]
    if f.bands:
        lines += ["", "## Age bands (lower bound included, upper excluded)"]
        lines += _md_table(["Band", "Label", "Rule"], ([b.id, b.label, b.rule] for b in f.bands))
    for num in f.numeric.values():
        scores = sorted({s for p in num.by_band.values() for s, _ in p.cells})
        digits = next(iter(num.by_band.values())).round_digits
        rounding = "" if digits is None else f" (rounded half-up to {digits} decimals first)"
        raw = f.top.data["numeric"][num.name]  # type: ignore[index]
        if "max_gap" in raw:
            rounding += f" (max_gap = {raw['max_gap']})"
        lines += [
            "",
            f"## {num.label} ({num.unit}) [numeric.{num.name}, input {num.input}]{rounding}",
        ]
        rows = []
        for band_id, part in num.by_band.items():
            cells = {s: " ∪ ".join(t for c, t in part.cells if c == s) or "—" for s in scores}
            rows.append([band_id if band_id != "*" else "all ages", *(cells[s] for s in scores)])
        lines += _md_table(["Band", *(str(s) for s in scores)], rows)
    for name, mapping in f.categorical.items():
        lines += ["", f"## {name} [categorical.{name}]"]
        lines += _md_table(["Value", "Score"], ([k, str(v)] for k, v in mapping.items()))
    for key, value in f.top.data.items():
        if key not in _COMMON:
            lines += (
                ["", f"## [{key}]", *_flatten("", value)]
                if isinstance(value, Mapping)
                else ["", f"{key} = {value!r}"]
            )
    normals = getattr(table, "normals", None)
    if normals is not None:
        lines += ["", "## Age-normal rates (site table)", *meta_lines(normals.meta)]
        lines += _md_table(
            ["Row", "Rule", "HR low", "HR high", "RR low", "RR high"],
            (
                [
                    r.band.id,
                    r.band.rule,
                    *(f"{v:g}" for v in (r.hr_low, r.hr_high, r.rr_low, r.rr_high)),
                ]
                for r in normals.rows
            ),
        )
    return "\n".join(lines)


def render_list(tables: Iterable[SystemScorer]) -> str:
    """One line per installed table: system, version, status, source."""
    lines = []
    for t in tables:
        m = t.file.meta
        lines.append(f"{m.system:<14} version {m.version:<22} {m.review_status}")
        lines.append(f"{'':<14} source: {m.source}")
        lines.append(f"{'':<14} file: {m.path}")
        normals = getattr(t, "normals", None)
        if normals is not None:
            nm = normals.meta
            lines.append(f"{'':<14} age normals: {nm.version} ({nm.review_status}) {nm.path}")
    return "\n".join(lines)
