"""The layers of the house, written down once and checked on every run.

Each top-level package may import only the packages listed for it in
:data:`LAYERS` (plus itself, the standard library and third-party libraries).
A few narrower rules sit on top (:data:`NARROW`): the billing domain imports
nothing outside itself and no infrastructure; actions reach the backend only
through its API client. Nothing imports the entry points (``app``), and the
package graph has no cycle.

``violations`` is run on the real tree, and on small planted trees to prove it
catches what it should.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Who may import whom, from the ground floor up. ``app`` (the roof) may import anything.
LAYERS: dict[str, set[str]] = {
    "billtalk": set(),  # the kernel: settings, database helpers, logging
    "verification": set(),  # the step-up verifier contract
    "speech": {"billtalk"},
    "nlu": {"billtalk"},
    "backend": {"billtalk"},
    "biometrics": {"billtalk", "speech", "verification"},
    "actions": {"billtalk", "backend"},  # backend: only backend.client (NARROW)
    "bot": {"billtalk", "actions", "nlu", "speech", "verification", "biometrics", "backend"},
    "console": {"billtalk", "bot", "backend", "nlu", "actions"},
    "app": {"*"},
}


@dataclass(frozen=True)
class Narrow:
    """Within ``package`` (a dotted prefix), imports of ``target`` must start with ``allowed``."""

    package: str
    target: str
    allowed: tuple[str, ...]
    why: str


NARROW: tuple[Narrow, ...] = (
    Narrow("backend.domain", "backend", ("backend.domain",), "the domain imports only itself"),
    Narrow(
        "backend.domain",
        "billtalk",
        ("billtalk.vocabulary",),
        "the domain uses only the shared vocabulary from the kernel",
    ),
    Narrow("backend.domain", "sqlalchemy", (), "the domain is free of infrastructure"),
    Narrow("backend.domain", "fastapi", (), "the domain is free of infrastructure"),
    Narrow("backend.domain", "httpx", (), "the domain is free of infrastructure"),
    Narrow("actions", "backend", ("backend.client",), "actions use the backend's API client"),
    Narrow("bot", "backend", ("backend.client",), "the dialogue uses the backend's API client"),
)


def _imports(path: Path) -> list[str]:
    """The absolute module names ``path`` imports (relative imports are package-internal)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _modules(root: Path, packages: set[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            if "migrations" in relative.parts and "versions" in relative.parts:
                continue
            found[".".join(relative.with_suffix("").parts)] = path
    return found


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle's first witness found by depth-first search."""
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def violations(root: Path, layers: dict[str, set[str]] = LAYERS) -> list[str]:
    """What breaks the rules in the tree at ``root``, as readable lines (empty: all is well)."""
    packages = {p for p in layers if (root / p).is_dir()}
    problems: list[str] = []
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in _modules(root, packages).items():
        package = module.split(".")[0]
        allowed = layers[package]
        for name in _imports(path):
            top = name.split(".")[0]
            for rule in NARROW:
                inside = module == rule.package or module.startswith(rule.package + ".")
                hits = name == rule.target or name.startswith(rule.target + ".")
                if inside and hits and not name.startswith(rule.allowed or ("\0",)):
                    problems.append(f"{module} imports {name}: {rule.why}")
            if top not in layers or top == package:
                continue
            graph[package].add(top)
            if top == "app":
                problems.append(f"{module} imports {name}: nothing imports the entry points")
            elif "*" not in allowed and top not in allowed:
                problems.append(f"{module} imports {name}: {package} may not depend on {top}")
    for cycle in _cycles(graph):
        problems.append("package cycle: " + " -> ".join(cycle))
    return problems


def module_cycles(root: Path, packages: set[str] | None = None) -> list[list[str]]:
    """Groups of modules that import each other in a circle (``TYPE_CHECKING`` imports too)."""
    packages = packages or {p for p in LAYERS if (root / p).is_dir()}
    modules = {
        name.removesuffix(".__init__"): path for name, path in _modules(root, packages).items()
    }
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for name in names:
                if name in modules and name != module and not module.startswith(name + "."):
                    edges[module].add(name)
    return [c for c in _cycles(edges) if len(c) > 2]


def test_the_house_keeps_its_layers() -> None:
    assert violations(REPO) == []


def test_no_two_modules_import_each_other_in_a_circle() -> None:
    assert module_cycles(REPO) == []


def test_a_planted_module_cycle_is_caught(tmp_path: Path) -> None:
    _plant(
        tmp_path,
        {
            "bot/engine.py": "from bot.notices import Courier\n",
            "bot/notices.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from bot.engine import Engine\n",
        },
    )
    assert module_cycles(tmp_path, {"bot"}) == [["bot.engine", "bot.notices", "bot.engine"]]


def _plant(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"backend/domain/bills.py": "from sqlalchemy import select\n"},
            "backend.domain.bills imports sqlalchemy: the domain is free of infrastructure",
        ),
        (
            {"backend/domain/bills.py": "from backend.adapters import orm\n"},
            "backend.domain.bills imports backend.adapters: the domain imports only itself",
        ),
        (
            {"actions/pay.py": "from backend.service_layer import services\n"},
            "actions.pay imports backend.service_layer: actions use the backend's API client",
        ),
        (
            {"backend/api.py": "import bot.engine\n"},
            "backend.api imports bot.engine: backend may not depend on bot",
        ),
        (
            {"console/web.py": "from app.cli import app\n"},
            "console.web imports app.cli: nothing imports the entry points",
        ),
    ],
)
def test_a_planted_violation_is_caught(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    _plant(tmp_path, files)
    assert expected in violations(tmp_path)


def test_a_planted_cycle_is_caught(tmp_path: Path) -> None:
    _plant(tmp_path, {"a/x.py": "import b.y\n", "b/y.py": "from a import x\n"})
    layers = {"a": {"b"}, "b": {"a"}}
    assert violations(tmp_path, layers) == ["package cycle: a -> b -> a"]
