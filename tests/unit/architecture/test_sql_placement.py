"""SQL lives only in repository modules: a service's ``store.py``/``queries.py`` or ``services/storage``.

Oracle: every string literal in every module under ``services/`` (Python's ``ast``), matched
against the statement shapes asyncpg would run."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SQL = re.compile(
    r"^\s*(SELECT\s+\S|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|CREATE\s+(TEMP\s+)?TABLE\s|WITH\s+\w+\s+AS\s*\()",
)  # upper-case keywords: how every statement here is written (prose "Select a ..." is not SQL)
REPOSITORIES = ("store.py", "queries.py")
#: module -> why it may hold SQL outside a repository module
ALLOWED = {
    # the readiness probe of the database dependency; services/common may import no storage module
    "services/common/health.py": "the `SELECT 1` database probe",
}


def _sql_literals(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
            out.append(node.value.strip().splitlines()[0])
    return out


def test_sql_only_in_repository_modules() -> None:
    offenders = {}
    for path in sorted((ROOT / "services").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if path.name in REPOSITORIES or rel.startswith("services/storage/") or rel in ALLOWED:
            continue
        if found := _sql_literals(path):
            offenders[rel] = found
    assert not offenders, f"SQL outside store.py/queries.py/services/storage: {offenders}"


def test_the_scan_finds_sql() -> None:
    """The pattern matches the repository modules' statements (else the test above proves nothing)."""
    assert _sql_literals(ROOT / "services/signals/store.py")
    assert _sql_literals(ROOT / "services/common/health.py")
    assert not SQL.match("Select a contract")
