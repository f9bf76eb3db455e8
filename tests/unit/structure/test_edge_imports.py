"""What the gateway commands import, measured: ``python -X importtime`` on the real entry points.

A bedside gateway installs the base distribution and runs ``python -m edge_agent``
(``wardwatch edge``): those commands may import the edge agent, the service kit and the contract,
the standard library and the base ``dependencies`` of pyproject.toml (with what those require),
and nothing else -- no other service, no simulator, not the umbrella CLI, no server-side library.
``wardwatch --help`` lists the services without importing any of them (the lazy table).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import signal
import socket
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[3]
PYPROJECT = REPO / "pyproject.toml"
#: The repository's packages (the distribution "wardwatch" ships all of them).
OWN_PACKAGES = frozenset(
    {
        "wardwire",
        "servicekit",
        "edge_agent",
        "ingest",
        "alerting",
        "registry",
        "console",
        "device_sims",
        "wardwatch",
    }
)
#: What a gateway may import of them.
EDGE_MAY_IMPORT = frozenset({"edge_agent", "servicekit", "wardwire"})
SERVICES = ("edge_agent", "ingest", "alerting", "registry", "console")
DEVICE = 'id = "d1"\ndriver = "wwmon"\nport = "/dev/ttyUSB0"\n'


@dataclass(frozen=True, slots=True)
class Imported:
    module: str
    chain: tuple[str, ...]  # outermost importer first, ending with module

    @property
    def top(self) -> str:
        return self.module.partition(".")[0]

    @property
    def entry(self) -> bool:
        """Imported from outside its own top-level package (where a violation comes in)."""
        return len(self.chain) == 1 or self.chain[-2].partition(".")[0] != self.top

    def __str__(self) -> str:
        return " <- ".join(reversed(self.chain))


def parse_importtime(stderr: str) -> list[Imported]:
    """Every module a ``-X importtime`` run logged, with the chain of modules importing it.

    The log is post-order (a module's line follows those of the modules it imported), nested by
    two spaces a level; a failed import is logged too (an optional import that is absent).
    """
    rows: list[tuple[int, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        field = line.split("|", 2)[2]
        name = field.strip()
        if name == "imported package":  # the header
            continue
        rows.append(((len(field) - len(field.lstrip(" ")) - 1) // 2, name))
    found: list[Imported] = []
    stack: list[tuple[int, str]] = []
    for depth, name in reversed(rows):  # reversed post-order: each importer before what it imports
        while stack and stack[-1][0] >= depth:
            stack.pop()
        found.append(Imported(name, (*(n for _, n in stack), name)))
        stack.append((depth, name))
    return found


def run_importtime(*args: str) -> list[Imported]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return parse_importtime(proc.stderr)


def run_edge_until_it_retries(config: Path) -> list[Imported]:
    """``edge run`` against a port that refuses: let it reach its retry loop, then SIGTERM it."""
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "edge_agent", "run", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        for line in proc.stderr:  # bounded by pytest-timeout should the agent never get there
            lines.append(line)
            if "cannot reach broker" in line:
                break
        proc.send_signal(signal.SIGTERM)
        lines.append(proc.stderr.read())
        assert proc.wait(timeout=60) == 0, "".join(lines)[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert any("cannot reach broker" in line for line in lines), "".join(lines)[-4000:]
    return parse_importtime("".join(lines))


def write_config(path: Path, extra: str = "") -> Path:
    path.write_text(
        f'[gateway]\nid = "gw1"\nsite = "s"\nunit = "u"\n{extra}\n[[devices]]\n{DEVICE}'
    )
    return path


@pytest.fixture(scope="module")
def startup_modules() -> frozenset[str]:
    """What the interpreter imports before any command (site, .pth hooks): not the command's."""
    return frozenset(i.module for i in run_importtime("-c", "pass"))


EDGE_COMMANDS = ["--help", "check-config", "drivers", "drivers --json", "run"]


@pytest.fixture(scope="module", params=EDGE_COMMANDS)
def edge_imports(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[Imported]]]:
    command: str = request.param
    tmp = tmp_path_factory.mktemp("edge")
    if command == "check-config":
        config = write_config(tmp / "gw.toml")
        imported = run_importtime("-m", "edge_agent", "check-config", str(config))
    elif command == "run":
        # Bound, never listening: connecting is refused at once, whatever else runs here.
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            port = held.getsockname()[1]
            broker = f'[broker]\nport = {port}\n[outbox]\npath = "{tmp / "outbox.db"}"\n'
            imported = run_edge_until_it_retries(write_config(tmp / "gw.toml", broker))
    else:
        imported = run_importtime("-m", "edge_agent", *command.split())
    assert any(i.module == "edge_agent.cli" for i in imported), "not the edge CLI?"
    yield command, imported


def test_edge_commands_import_no_other_service_simulator_or_umbrella(
    edge_imports: tuple[str, list[Imported]],
) -> None:
    command, imported = edge_imports
    bad = [str(i) for i in imported if i.top in OWN_PACKAGES - EDGE_MAY_IMPORT and i.entry]
    if bad:
        pytest.fail(f"edge {command} imports:\n" + "\n".join(bad), pytrace=False)


def base_distributions() -> frozenset[str]:
    """The base ``dependencies`` of pyproject.toml and, recursively, what they require
    (environment markers evaluated, no extras) -- what ``pip install wardwatch`` brings."""
    pending = [
        Requirement(r) for r in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    ]
    seen: set[str] = set()
    while pending:
        req = pending.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(req.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here: nothing of it can be imported either
        pending.extend(
            r
            for r in map(Requirement, requires)
            if r.marker is None or r.marker.evaluate({"extra": ""})
        )
    return frozenset(seen)


STDLIB_DIRS = tuple(Path(sysconfig.get_path(k)).resolve() for k in ("stdlib", "platstdlib"))


def from_stdlib(top: str) -> bool:
    if top in sys.stdlib_module_names:
        return True
    spec = importlib.util.find_spec(top)  # e.g. _sysconfigdata_*: the stdlib's, unlisted
    origin = spec.origin if spec is not None else None
    return origin is not None and Path(origin).resolve().parent in STDLIB_DIRS


def test_edge_commands_import_only_base_dependencies(
    edge_imports: tuple[str, list[Imported]], startup_modules: frozenset[str]
) -> None:
    command, imported = edge_imports
    allowed = base_distributions()
    providers = importlib.metadata.packages_distributions()
    bad: list[str] = []
    for i in filter(lambda i: i.entry, imported):
        top = i.top
        if i.module in startup_modules or top in OWN_PACKAGES or from_stdlib(top):
            continue
        dists = {canonicalize_name(d) for d in providers.get(top, [])}
        if dists:
            if not dists & allowed:
                bad.append(f"{i}  (distribution {', '.join(sorted(dists))})")
        elif importlib.util.find_spec(top) is not None:
            bad.append(f"{i}  (from no installed distribution)")
        # else: not installed, so the import failed -- an optional one the importer survives
    if bad:
        pytest.fail(
            f"edge {command} imports outside the base dependencies {sorted(allowed)}:\n"
            + "\n".join(bad),
            pytrace=False,
        )


def test_umbrella_help_imports_no_service() -> None:
    imported = run_importtime("-m", "wardwatch", "--help")
    assert any(i.module == "wardwatch.cli" for i in imported), "not the umbrella CLI?"
    bad = [str(i) for i in imported if i.top in (*SERVICES, "device_sims") and i.entry]
    if bad:
        pytest.fail("wardwatch --help imports:\n" + "\n".join(bad), pytrace=False)


def test_parse_importtime_chains() -> None:
    log = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:        10 |         10 |     b.c\n"
        "import time:        10 |         20 |   b\n"
        "import time:        10 |         10 |   d\n"
        "import time:        10 |         40 | a\n"
        "import time:        10 |         10 | e\n"
    )
    imported = parse_importtime(log)
    chains = {i.module: i.chain for i in imported}
    assert chains == {
        "a": ("a",),
        "b": ("a", "b"),
        "b.c": ("a", "b", "b.c"),
        "d": ("a", "d"),
        "e": ("e",),
    }
    assert [i.module for i in imported if i.entry] == ["e", "a", "d", "b"]
