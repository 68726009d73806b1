"""The binary COPY payloads, read by PostgreSQL itself (the oracle): every staging table's columns
come back equal to the NumPy columns they were built from, NaN prices included."""

from __future__ import annotations

import io

import asyncpg
import numpy as np

from aiots.services.storage.copy_codec import _staging_ddl, encode_binary_copy
from aiots.services.storage.records import TABLES


def _columns(table: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for name, kind in TABLES[table]:
        if kind == "f8":
            v = rng.normal(100, 30, n)
            v[::7] = np.nan
            cols[name] = v
        else:
            info = np.iinfo(np.dtype(kind))
            cols[name] = rng.integers(info.min, info.max, n, dtype=np.dtype(kind), endpoint=True)
    return cols


async def test_every_table_round_trips_through_postgres(pg_pool: asyncpg.Pool) -> None:
    rng = np.random.default_rng(11)
    async with pg_pool.acquire() as conn, conn.transaction():
        for table, spec in TABLES.items():
            cols = _columns(table, 50, rng)
            await conn.execute(_staging_ddl(table))
            await conn.copy_to_table(
                f"stg_{table}", source=io.BytesIO(encode_binary_copy(table, cols)), format="binary",
                columns=[n for n, _ in spec],
            )  # fmt: skip
            rows = await conn.fetch(f"SELECT * FROM stg_{table}")
            names = [n for n, _ in spec]

            def key(vals: tuple[object, ...]) -> tuple[str, ...]:  # NaN-safe, order-free comparison
                return tuple("nan" if isinstance(v, float) and v != v else repr(v) for v in vals)

            want = sorted(key(tuple(cols[n][i].item() for n in names)) for i in range(50))
            got = sorted(key(tuple(r[n] for n in names)) for r in rows)
            assert got == want, table
