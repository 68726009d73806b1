"""Migration rendering: one script, two engines (hand-derived expectations)."""

from __future__ import annotations

from aiots.services.storage.migrate import load_migrations, render

SQL = """CREATE TABLE t (ts_event bigint) /*@partition_by*/;
--@if plain
SELECT 'plain';
--@end
--@if timescale
SELECT 'ts1';
--@go
SELECT 'ts2';
--@end
"""


def test_render_plain_and_timescale() -> None:
    (plain,) = render(SQL, "plain")
    assert "PARTITION BY RANGE (ts_event)" in plain and "'plain'" in plain and "ts1" not in plain
    ts = render(SQL, "timescale")
    assert len(ts) == 2 and "PARTITION BY" not in ts[0] and "'ts1'" in ts[0] and "'ts2'" in ts[1]
    assert "'plain'" not in "".join(ts)


def test_migration_files_are_numbered_and_render_for_both_engines() -> None:
    ms = load_migrations()
    assert [m.version for m in ms] == sorted(m.version for m in ms) and ms[0].version == 1
    for m in ms:
        for engine in ("plain", "timescale"):
            for batch in render(m.sql, engine):  # type: ignore[arg-type]
                assert not any(line.startswith("--@") for line in batch.splitlines())
                assert "/*@partition_by*/" not in batch
    (rollups,) = [m for m in ms if m.version == 3]  # 0003_rollups.sql
    assert render(rollups.sql, "plain") == []  # roll-ups are read-time on plain PostgreSQL
