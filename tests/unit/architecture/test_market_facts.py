"""Market facts have one home, ``aiots.core.conventions``: no other module names the New York zone,
writes the nanoseconds-per-second constant or the default rate.

Oracle: Python's ``ast`` of every source module (string and number literals in code; docstrings and
SQL text are strings that are not the zone name alone, so they never match)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ("services", "gateway", "core", "bench")
HOME = "core/conventions.py"
ZONE = "America/New_York"
NS_PER_S = 1_000_000_000
DEFAULT_RATE = 0.045
#: (module, literal) -> why the same number there is not the market fact
ALLOWED: dict[tuple[str, object], str] = {
    ("services/ingestion/dbn_fields.py", NS_PER_S): "Databento prices are fixed point in units of 1e-9 dollars",
    ("services/ingestion/sources/simulator/records.py", NS_PER_S): "DBN fixed-point price scale (1e-9 dollars)",
    ("services/ingestion/sources/simulator/history.py", NS_PER_S): "DBN fixed-point price scale (1e-9 dollars)",
    ("gateway/envoy_common.py", NS_PER_S): "a token-bucket size meaning 'unlimited', a count, not a time",
}


def _facts(path: Path) -> list[tuple[int, object]]:
    """(line, literal) of the zone name, the default rate, and 1e9 used as a unit: an operand of
    ``*``, ``/``, ``//`` or ``%`` or a constant's whole value (a ``-1e9`` "no floor" sentinel is not)."""
    tree = ast.parse(path.read_text(), str(path))
    unit_use: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Div | ast.FloorDiv | ast.Mod):
            unit_use.update(id(x) for x in (node.left, node.right))
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            unit_use.add(id(node.value))
    out: list[tuple[int, object]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or isinstance(node.value, bool):
            continue
        v = node.value
        if (
            v == ZONE
            or (isinstance(v, int | float) and v == DEFAULT_RATE)
            or (isinstance(v, int | float) and v == NS_PER_S and id(node) in unit_use)
        ):
            out.append((node.lineno, v))
    return out


def _modules() -> list[Path]:
    return [p for top in SOURCES for p in sorted((ROOT / top).rglob("*.py")) if ".venv" not in p.parts]


def test_market_facts_only_in_conventions() -> None:
    offenders = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        if rel == HOME:
            continue
        for line, v in _facts(path):
            if (rel, v) not in ALLOWED:
                offenders.append(f"{rel}:{line}: {v!r}")
    assert not offenders, "use aiots.core.conventions (NY, NS_PER_S, DEFAULT_RATE, ...):\n" + "\n".join(offenders)


def test_the_scan_sees_the_facts_where_they_live() -> None:
    found = {v for _line, v in _facts(ROOT / HOME)}
    assert {ZONE, NS_PER_S, DEFAULT_RATE} <= found, found


def test_every_allowance_is_still_needed() -> None:
    for rel, v in ALLOWED:
        assert any(x == v for _line, x in _facts(ROOT / rel)), f"{rel} no longer has {v!r}: drop its allowance"
