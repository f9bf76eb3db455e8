"""The import-linter contracts of pyproject.toml (``[tool.importlinter]``) hold: ``make test``
enforces the layers as ``make check`` does."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import edge_agent

REPO = Path(__file__).resolve().parents[3]


def contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    found: list[dict[str, Any]] = config["contracts"]
    return found


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(contracts())} kept, 0 broken" in proc.stdout, proc.stdout


def test_simulators_contract_forbids_all_of_the_edge_agent_but_its_protocols() -> None:
    """The forbidden list names edge_agent's children one by one (import-linter has no
    "all but"): a new edge_agent module has to join it."""
    (contract,) = [c for c in contracts() if c.get("source_modules") == ["device_sims"]]
    children = {f"edge_agent.{m.name}" for m in pkgutil.iter_modules(edge_agent.__path__)}
    children -= {"edge_agent.protocols"}
    assert set(contract["forbidden_modules"]) == children
