"""The import graph keeps the layering of docs/architecture.md: no part imports a part on its own or a
higher layer, so there is no cycle between parts, and services/common imports nothing above it.

Oracle: the layer table in docs/architecture.md (read here) and Python's own ``ast`` of every module.
Top-level imports, lazy imports inside functions and dynamic ``importlib.import_module("aiots...")``
names (any string literal that names an ``aiots.`` module) all count.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "architecture.md"
FOLDERS = {"core": "aiots.core", "services": "aiots.services", "gateway": "aiots.gateway"}
_MODULE_NAME = re.compile(r"aiots(\.[a-z_0-9]+)+")
_ROW = re.compile(r"^\|\s*(\w+)\s*\|\s*`([^`]+)`\s*\|\s*(\d+)\s*\|")


def layers() -> dict[str, int]:
    """part -> layer, from the table in docs/architecture.md."""
    out = {}
    for line in DOC.read_text().splitlines():
        m = _ROW.match(line)
        if m:
            out[m.group(1)] = int(m.group(3))
    return out


def part_of(module: str) -> str | None:
    p = module.split(".")
    if p[0] != "aiots" or len(p) < 2:
        return None
    if p[1] in ("core", "gateway", "v1"):
        return p[1]
    if p[1] == "services" and len(p) > 2:
        return p[2]
    return None


def module_name(path: Path) -> str:
    top = path.relative_to(ROOT).parts[0]
    rel = path.relative_to(ROOT / top).with_suffix("")
    name = ".".join([FOLDERS[top], *rel.parts])
    return name.removesuffix(".__init__")


def imported_names(path: Path, mod: str | None = None) -> set[str]:
    """Every aiots module ``path`` (module ``mod``) imports: statements anywhere plus literal module names."""
    mod = mod or module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.fullmatch(node.value):
            out.add(node.value)
    return {n for n in out if n.startswith("aiots.")}


def part_edges() -> dict[tuple[str, str], list[str]]:
    """(from part, to part) -> the files that make the edge."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for top in FOLDERS:
        for f in sorted((ROOT / top).rglob("*.py")):
            src = part_of(module_name(f))
            if src is None:
                continue
            for name in imported_names(f):
                dst = part_of(name)
                if dst is not None and dst != src:
                    edges[(src, dst)].append(str(f.relative_to(ROOT)))
    return edges


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_every_part_in_the_tree_has_a_layer() -> None:
    table = layers()
    assert {"core", "common", "stack", "cli", "gateway"} <= set(table)
    parts = {p.name for p in (ROOT / "services").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    missing = sorted(parts - set(table))
    assert not missing, f"services parts missing from docs/architecture.md's layer table: {missing}"


def test_no_part_imports_its_own_or_a_higher_layer() -> None:
    table = layers()
    bad = [
        f"{src} (layer {table[src]}) imports {dst} (layer {table[dst]}) in {', '.join(sorted(set(files)))}"
        for (src, dst), files in sorted(part_edges().items())
        if src in table and dst in table and table[dst] >= table[src]
    ]
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_no_cycle_between_parts() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in part_edges():
        graph[src].add(dst)
    assert find_cycle(graph) is None


def test_core_and_common_import_nothing_above_them() -> None:
    edges = part_edges()
    assert not [e for e in edges if e[0] == "core" and e[1] != "v1"], "aiots.core must not import services/gateway"
    allowed = {"core", "v1"}
    assert not [e for e in edges if e[0] == "common" and e[1] not in allowed]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import aiots.services.signals.engine\n", "aiots.services.signals.engine"),
        ("def f():\n    from aiots.services.cache import prices\n", "aiots.services.cache.prices"),
        ("import importlib\nimportlib.import_module('aiots.services.analytics.app')\n", "aiots.services.analytics.app"),
    ],
)
def test_the_reader_sees_static_lazy_and_dynamic_imports(tmp_path: Path, source: str, expected: str) -> None:
    fake = tmp_path / "probe.py"
    fake.write_text(source)
    assert expected in imported_names(fake, "aiots.services.common.probe")


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
