"""Code comments that cite the clinical basis point at pages and headings that exist.

Comments, docstrings and table files cite ``docs/clinical/<page>.md`` or
``docs/clinical/<page>.md#<anchor>``. Every such reference in the scanned source trees must name
an existing page, and its anchor a heading of that page (GitHub-style anchors: lower case,
punctuation dropped, spaces to ``-``, ``-1``, ``-2`` … for repeated headings). No file may cite
the old specification that lived outside the repository any more.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCANNED = (
    "wardwire",
    "servicekit",
    "edge_agent",
    "ingest",
    "alerting",
    "registry",
    "console",
    "device_sims",
    "wardwatch",
    "tests",
)
SUFFIXES = (".py", ".toml")
PAGES = "docs/" + "clinical"  # split so this file does not reference itself
REF = re.compile(
    re.escape(PAGES) + r"/(?P<page>[A-Za-z0-9_-]+\.md)(?:#(?P<anchor>[A-Za-z0-9_-]+))?"
)

# The old specification, by file name and by folder (split for the same reason as PAGES).
OLD_SPEC = ("pews_spec" + ".md", "shared" + "/clinical")
# Nothing may name the old specification any more (the CLI's error message included).
OLD_SPEC_ALLOWED: set[tuple[str, str]] = set()

HEADING = re.compile(r"^(#{1,6})\s+(?P<text>.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
MD_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a Markdown page (fenced code blocks skipped)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        m = None if in_fence else HEADING.match(line)
        if m is None:
            continue
        base = slug(m.group("text"))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def source_files(root: Path) -> Iterator[Path]:
    for top in SCANNED:
        base = root / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            parts = path.relative_to(root).parts
            if any(p.startswith(".") or p == "__pycache__" for p in parts):
                continue
            if path.suffix in SUFFIXES and path.is_file():
                yield path


def references(root: Path) -> list[tuple[str, int, str, str | None]]:
    """``(file, line, page, anchor)`` for every clinical-page reference under `root`."""
    found = []
    for path in source_files(root):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            for m in REF.finditer(line):
                found.append((rel, lineno, m.group("page"), m.group("anchor")))
    return found


def broken_references(root: Path) -> list[str]:
    """A message for every reference whose page or heading does not exist."""
    cache: dict[str, set[str] | None] = {}
    problems = []
    for rel, lineno, page, anchor in references(root):
        if page not in cache:
            path = root / PAGES / page
            cache[page] = anchors(path) if path.is_file() else None
        heads = cache[page]
        where = f"{rel}:{lineno}: {PAGES}/{page}"
        if heads is None:
            problems.append(f"{where}: no such page")
        elif anchor is not None and anchor not in heads:
            problems.append(f"{where}#{anchor}: no such heading (have: {', '.join(sorted(heads))})")
    return problems


def old_spec_mentions(root: Path) -> set[tuple[str, str]]:
    """``(file, line text)`` of every line that names the old specification."""
    found = set()
    for path in source_files(root):
        rel = path.relative_to(root).as_posix()
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if any(s in line for s in OLD_SPEC):
                found.add((rel, line.strip()))
    return found


def test_every_clinical_reference_resolves() -> None:
    refs = references(REPO)
    assert len(refs) >= 40, f"only {len(refs)} references found: is the scan looking anywhere?"
    assert not broken_references(REPO), "\n".join(broken_references(REPO))


def test_nothing_cites_the_old_specification() -> None:
    found = old_spec_mentions(REPO)
    unexpected = sorted(
        f"{rel}: {line}"
        for rel, line in found
        if not any(rel == a_rel and a_text in line for a_rel, a_text in OLD_SPEC_ALLOWED)
    )
    assert not unexpected, "cite docs/clinical/ instead:\n" + "\n".join(unexpected)
    stale = sorted(
        f"{a_rel}: {a_text}"
        for a_rel, a_text in OLD_SPEC_ALLOWED
        if not any(rel == a_rel and a_text in line for rel, line in found)
    )
    assert not stale, "no longer present, delete from OLD_SPEC_ALLOWED:\n" + "\n".join(stale)


def test_clinical_pages_link_to_existing_pages_and_headings() -> None:
    folder = REPO / PAGES
    pages = sorted(folder.glob("*.md"))
    assert (folder / "README.md") in pages
    problems = []
    for page in pages:
        for lineno, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            for m in MD_LINK.finditer(line):
                target = m.group("target")
                if re.match(r"^[a-z]+:", target):
                    continue  # http(s), mailto
                file_part, _, anchor = target.partition("#")
                dest = page if not file_part else (page.parent / file_part).resolve()
                where = f"{page.name}:{lineno}: {target}"
                if not dest.is_file():
                    problems.append(f"{where}: no such file")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    problems.append(f"{where}: no such heading")
    assert not problems, "\n".join(problems)


def test_readme_indexes_every_clinical_page() -> None:
    folder = REPO / PAGES
    readme = (folder / "README.md").read_text(encoding="utf-8")
    linked = {m.group("target").partition("#")[0] for m in MD_LINK.finditer(readme)}
    missing = {p.name for p in folder.glob("*.md") if p.name != "README.md"} - linked
    assert not missing, f"README.md does not link to: {sorted(missing)}"


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Choices and deviations", "choices-and-deviations"),
        ("IEC 60601-1-8", "iec-60601-1-8"),
        ("Scored and non-scored parameters", "scored-and-non-scored-parameters"),
        ("Bedside PEWS (Parshuram, SickKids Toronto)", "bedside-pews-parshuram-sickkids-toronto"),
        ("`oxygen` item", "oxygen-item"),
    ],
)
def test_slug_is_github_style(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_checker_reports_missing_pages_and_headings(tmp_path: Path) -> None:
    (tmp_path / PAGES).mkdir(parents=True)
    page = "# Page\n\n## Good section\n\n```\n## not a heading\n```\n"
    (tmp_path / PAGES / "page.md").write_text(page)
    (tmp_path / "alerting").mkdir()
    docs = PAGES + "/"
    (tmp_path / "alerting" / "a.py").write_text(
        f"# {docs}page.md#good-section ok\n"
        f"# {docs}page.md ok\n"
        f"# {docs}page.md#bad-section\n"
        f"# {docs}page.md#not-a-heading\n"
        f"# {docs}gone.md#x\n"
    )
    (tmp_path / "alerting" / "t.toml").write_text(f'source = "{docs}page.md#nope"\n')
    problems = broken_references(tmp_path)
    assert len(problems) == 4, problems
    assert any("a.py:3" in p and "bad-section: no such heading" in p for p in problems)
    assert any("a.py:4" in p and "not-a-heading" in p for p in problems)
    assert any("a.py:5" in p and "gone.md: no such page" in p for p in problems)
    assert any("t.toml:1" in p and "nope" in p for p in problems)
