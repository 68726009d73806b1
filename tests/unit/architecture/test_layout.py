"""Tests mirror the source tree: ``tests/{unit,integration}/<part>/test_<module>[_<aspect>].py``.

Every source module (``services/<part>/...``, ``gateway/``, ``core/``) has a test file named after it in
its part's test folders, or a test file there that imports it; the modules in :data:`ALLOWED` are
tested elsewhere, each with where. Oracle: the two trees on disk, and each test file's imports
(``ast``)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TESTS = ROOT / "tests"
#: module path -> where it is tested instead (shrink this list; a new module needs a test file)
ALLOWED: dict[str, str] = {
    # analytics
    # backtest
    "services/backtest/app.py": "started by aiots serve/up: tests/integration/stack/test_workers.py",
    "services/backtest/html.py": "the report page: tests/unit/backtest/test_cli.py (--report)",
    # bus
    # cache
    "services/cache/backends/redis.py": "tests/integration/cache/test_backends.py (one contract over both backends)",
    # cli: click commands, run by the tests of what they drive
    "services/cli/backfill.py": "aiots backfill: tests/integration/ingestion/test_cli.py",
    "services/cli/backtest.py": "aiots backtest: tests/unit/backtest/test_cli.py",
    "services/cli/collect.py": "aiots collect: tests/integration/ingestion/test_cli.py",
    "services/cli/db.py": "aiots db migrate/status: tests/integration/ingestion/test_cli.py",
    "services/cli/gateway.py": "aiots gateway: tests/integration/gateway/test_gateway_cli.py",
    "services/cli/portfolio.py": "aiots portfolio: tests/integration/portfolio/test_cli.py",
    "services/cli/quote.py": "aiots quote: tests/integration/cache/test_cli_quote.py",
    "services/cli/serve.py": "aiots serve: tests/integration/ingestion/test_serve.py",
    # common
    "services/common/instrumentation.py": "asyncpg/redis spans: tests/integration/common/test_telemetry.py",
    "services/common/rpc_telemetry.py": "gRPC spans and metrics: tests/integration/common/test_telemetry.py",
    # ingestion
    # portfolio
    "services/portfolio/market.py": "live quotes for marks: tests/integration/portfolio/test_orders.py",
    "services/portfolio/risk.py": "risk limits: tests/integration/portfolio/test_bad_input.py",
    # signals
    "services/signals/strategies/base.py": "the strategy base class: tests/unit/signals/test_strategies.py",
    # storage
    "services/storage/pool.py": "the asyncpg pool: tests/integration/storage/test_migrations_queries.py",
    # gateway
    # core
}


def source_modules() -> dict[str, tuple[str, str]]:
    """path -> (part, module name) of every source module."""
    out: dict[str, tuple[str, str]] = {}
    for p in sorted((ROOT / "services").rglob("*.py")):
        if p.name != "__init__.py":
            rel = p.relative_to(ROOT)
            out[rel.as_posix()] = (rel.parts[1], "aiots.services." + ".".join(rel.with_suffix("").parts[1:]))
    for p in sorted((ROOT / "gateway").glob("*.py")):
        if p.name != "__init__.py":
            out[p.relative_to(ROOT).as_posix()] = ("gateway", f"aiots.gateway.{p.stem}")
    for p in sorted([*(ROOT / "core").glob("*.py"), *(ROOT / "core").glob("*.pyx")]):
        if p.name != "__init__.py":
            out[p.relative_to(ROOT).as_posix()] = ("core", f"aiots.core.{p.stem}")
    return out


@cache
def _imports(path: Path) -> frozenset[str]:
    names: set[str] = set()
    for n in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(n, ast.Import):
            names.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module:
            names.add(n.module)
            names.update(f"{n.module}.{a.name}" for a in n.names)
    return frozenset(names)


def has_test(part: str, module: str) -> bool:
    stem = module.rsplit(".", 1)[1]
    for kind in ("unit", "integration"):
        folder = TESTS / kind / part
        if not folder.is_dir():
            continue
        for t in folder.rglob("*.py"):
            if t.name.startswith("test_") and (t.stem[5:] == stem or t.stem[5:].startswith(stem + "_")):
                return True
            if module in _imports(t):
                return True
    return False


def test_every_module_has_a_test_file() -> None:
    missing = [p for p, (part, mod) in source_modules().items() if p not in ALLOWED and not has_test(part, mod)]
    assert not missing, f"source modules without a test file in tests/*/<part>/ (add one): {missing}"


def test_the_allow_list_only_holds_untested_modules() -> None:
    modules = source_modules()
    stale = [p for p in ALLOWED if p not in modules or has_test(*modules[p])]
    assert not stale, f"drop from ALLOWED (gone, or now has its own test file): {stale}"


def test_test_folders_are_parts() -> None:
    """Each test folder is a source part (or a cross-part suite: e2e, hardening, deploy, packaging)."""
    parts = {"core", "v1", "gateway", *(p.name for p in (ROOT / "services").iterdir() if p.is_dir())}
    extra = {"architecture", "deploy", "packaging", "hardening"}
    for kind in ("unit", "integration"):
        for d in (TESTS / kind).iterdir():
            if d.is_dir() and d.name != "__pycache__":
                assert d.name in parts | extra, f"tests/{kind}/{d.name} mirrors no source folder"
