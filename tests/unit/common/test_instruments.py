"""The metric catalogue is the one list: every instrument attribute comes from it, and every
``metrics.<name>`` the code uses names a catalogue entry (checked with ``ast`` over the sources)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from aiots.services.common.instruments import CATALOG, attr_name, catalogue_table, metrics

ROOT = Path(__file__).resolve().parents[3]


def test_attribute_names_follow_the_prometheus_names() -> None:
    assert attr_name("aiots_bus_lag_seconds") == "bus_lag"
    assert attr_name("aiots_signals_total") == "signals"
    assert attr_name("aiots_signal_return_ratio") == "signal_return"
    assert attr_name("aiots_ingest_spill_bytes") == "ingest_spill_bytes"
    names = [attr_name(s.name) for s in CATALOG]
    assert len(names) == len(set(names)), "two catalogue entries map to one attribute"
    for spec in CATALOG:
        assert getattr(metrics, attr_name(spec.name)).spec is spec
    with pytest.raises(AttributeError, match="no metric 'bus_lagg'"):
        metrics.bus_lagg  # noqa: B018


def test_every_used_metric_is_catalogued() -> None:
    known = {attr_name(s.name) for s in CATALOG} | {"by_name", "prime"}
    used: dict[str, str] = {}
    for top in ("services", "gateway"):
        for path in (ROOT / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "metrics":
                    used.setdefault(node.attr, path.relative_to(ROOT).as_posix())
    assert {"bus_lag", "rpc_duration", "signals"} <= set(used), "the scan found none of the known uses"
    unknown = {a: where for a, where in used.items() if a not in known}
    assert not unknown, f"metrics.<name> not in the catalogue: {unknown}"


def test_the_table_lists_every_entry_once() -> None:
    lines = catalogue_table().splitlines()
    assert [ln.split()[0] for ln in lines] == [s.name for s in CATALOG]


def test_docs_list_the_catalogue() -> None:
    """docs/telemetry.md shows the table ``python -m aiots.services.common.instruments`` prints."""
    assert catalogue_table() in (ROOT / "docs" / "telemetry.md").read_text()
