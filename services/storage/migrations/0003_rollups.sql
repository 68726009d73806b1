-- Roll-ups of 1-minute bars. TimescaleDB: continuous aggregates bars_5m/15m/1h (real-time,
-- i.e. materialised buckets plus the newest rows). Plain PostgreSQL: nothing here; queries.get_bars
-- rolls up on read with the same epoch-aligned buckets, so both engines return identical bars.
-- Statements are separated by --@go and run outside a transaction (continuous aggregates need it).

--@if timescale
CREATE MATERIALIZED VIEW IF NOT EXISTS bars_5m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket(300000000000::bigint, ts_event) AS ts_event,
       first(open, ts_event) AS open, max(high) AS high, min(low) AS low, last(close, ts_event) AS close,
       sum(volume) AS volume,
       coalesce(sum(vwap * volume) / nullif(sum(volume), 0), 0) AS vwap,
       sum(trade_count)::bigint AS trade_count
  FROM bars_1m
 GROUP BY symbol, time_bucket(300000000000::bigint, ts_event)
WITH NO DATA;
--@go
SELECT add_continuous_aggregate_policy('bars_5m', start_offset => 86400000000000::bigint,
       end_offset => 300000000000::bigint, schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE);
--@go
CREATE MATERIALIZED VIEW IF NOT EXISTS bars_15m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket(900000000000::bigint, ts_event) AS ts_event,
       first(open, ts_event) AS open, max(high) AS high, min(low) AS low, last(close, ts_event) AS close,
       sum(volume) AS volume,
       coalesce(sum(vwap * volume) / nullif(sum(volume), 0), 0) AS vwap,
       sum(trade_count)::bigint AS trade_count
  FROM bars_1m
 GROUP BY symbol, time_bucket(900000000000::bigint, ts_event)
WITH NO DATA;
--@go
SELECT add_continuous_aggregate_policy('bars_15m', start_offset => 259200000000000::bigint,
       end_offset => 900000000000::bigint, schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE);
--@go
CREATE MATERIALIZED VIEW IF NOT EXISTS bars_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket(3600000000000::bigint, ts_event) AS ts_event,
       first(open, ts_event) AS open, max(high) AS high, min(low) AS low, last(close, ts_event) AS close,
       sum(volume) AS volume,
       coalesce(sum(vwap * volume) / nullif(sum(volume), 0), 0) AS vwap,
       sum(trade_count)::bigint AS trade_count
  FROM bars_1m
 GROUP BY symbol, time_bucket(3600000000000::bigint, ts_event)
WITH NO DATA;
--@go
SELECT add_continuous_aggregate_policy('bars_1h', start_offset => 518400000000000::bigint,
       end_offset => 3600000000000::bigint, schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE);
--@go
--@end
