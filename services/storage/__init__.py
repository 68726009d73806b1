"""PostgreSQL/TimescaleDB storage: migrations, pool, idempotent batched writer, typed queries."""
