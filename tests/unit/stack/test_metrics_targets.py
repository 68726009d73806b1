"""The Prometheus file_sd targets of a stack. Oracle: the file_sd format as Prometheus documents it
(a JSON list of {"targets": ["host:port"], "labels": {...}}), written out by hand below."""

from __future__ import annotations

import json
from pathlib import Path

from aiots.services.stack.metrics_targets import target_groups, targets_path, write_targets


def test_one_group_per_serving_process_wildcards_scraped_on_loopback() -> None:
    groups = target_groups(
        {"cache": "0.0.0.0", "signals": "10.0.0.5", "analytics": "::1"},
        {"cache": [9101, 40001, None, 40003], "signals": [9104], "analytics": [9103, 40100]},
    )
    assert groups == [
        {"targets": ["127.0.0.1:9101"], "labels": {"aiots_service": "cache", "aiots_process": "0"}},
        {"targets": ["127.0.0.1:40001"], "labels": {"aiots_service": "cache", "aiots_process": "1"}},
        # process 2 is not serving now (None): left out, and process 3 keeps its number
        {"targets": ["127.0.0.1:40003"], "labels": {"aiots_service": "cache", "aiots_process": "3"}},
        {"targets": ["10.0.0.5:9104"], "labels": {"aiots_service": "signals", "aiots_process": "0"}},
        {"targets": ["[::1]:9103"], "labels": {"aiots_service": "analytics", "aiots_process": "0"}},
        {"targets": ["[::1]:40100"], "labels": {"aiots_service": "analytics", "aiots_process": "1"}},
    ]


def test_written_atomically_over_the_old_file(tmp_path: Path) -> None:
    path = targets_path(tmp_path)
    assert path == tmp_path / "prometheus" / "targets.json"
    write_targets(path, target_groups({"cache": "127.0.0.1"}, {"cache": [1, 2]}))
    first = json.loads(path.read_text())
    assert [g["targets"] for g in first] == [["127.0.0.1:1"], ["127.0.0.1:2"]]
    write_targets(path, target_groups({"cache": "127.0.0.1"}, {"cache": [1, 3]}))
    assert [g["targets"] for g in json.loads(path.read_text())] == [["127.0.0.1:1"], ["127.0.0.1:3"]]
    assert sorted(p.name for p in path.parent.iterdir()) == ["targets.json"]  # no temporary left behind
