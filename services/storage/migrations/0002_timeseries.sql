-- Time-series tables, keyed by ts_event (int64 ns UTC) with a timestamptz copy (ts) for humans.
-- One script, two storage engines (see migrate.py): the marker /*@partition_by*/ becomes
-- "PARTITION BY RANGE (ts_event)" on plain PostgreSQL (daily partitions created ahead by
-- aiots_ensure_partitions) and nothing on TimescaleDB, where the tables become hypertables.
-- Natural keys make every insert idempotent (INSERT ... ON CONFLICT DO NOTHING): a replay or a
-- gap backfill never stores a record twice.

CREATE TABLE IF NOT EXISTS trades (
    symbol       text NOT NULL,
    ts_event     bigint NOT NULL,
    ts           timestamptz NOT NULL,
    price        double precision NOT NULL,
    size         double precision NOT NULL,
    side         char(1) NOT NULL DEFAULT 'N',
    publisher_id integer NOT NULL DEFAULT 0,
    sequence     bigint NOT NULL DEFAULT 0,
    ts_recv      bigint NOT NULL DEFAULT 0,
    source       smallint NOT NULL DEFAULT 0,      -- aiots.v1.EventSource
    PRIMARY KEY (symbol, ts_event, publisher_id, sequence)
) /*@partition_by*/;

CREATE TABLE IF NOT EXISTS quotes (
    symbol       text NOT NULL,
    ts_event     bigint NOT NULL,
    ts           timestamptz NOT NULL,
    bid          double precision,
    ask          double precision,
    bid_size     double precision NOT NULL DEFAULT 0,
    ask_size     double precision NOT NULL DEFAULT 0,
    publisher_id integer NOT NULL DEFAULT 0,
    sequence     bigint NOT NULL DEFAULT 0,
    source       smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (symbol, ts_event, publisher_id, sequence)
) /*@partition_by*/;

CREATE TABLE IF NOT EXISTS option_quotes (
    symbol           text NOT NULL,                -- OCC
    underlying       text NOT NULL,
    ts_event         bigint NOT NULL,
    ts               timestamptz NOT NULL,
    bid              double precision,
    ask              double precision,
    bid_size         double precision NOT NULL DEFAULT 0,
    ask_size         double precision NOT NULL DEFAULT 0,
    underlying_price double precision,
    publisher_id     integer NOT NULL DEFAULT 0,
    sequence         bigint NOT NULL DEFAULT 0,
    source           smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (symbol, ts_event, publisher_id, sequence)
) /*@partition_by*/;
CREATE INDEX IF NOT EXISTS option_quotes_underlying_idx ON option_quotes (underlying, ts_event);

CREATE TABLE IF NOT EXISTS bars_1s (
    symbol      text NOT NULL,
    ts_event    bigint NOT NULL,                   -- bar open time
    ts          timestamptz NOT NULL,
    open        double precision NOT NULL,
    high        double precision NOT NULL,
    low         double precision NOT NULL,
    close       double precision NOT NULL,
    volume      double precision NOT NULL,
    vwap        double precision NOT NULL DEFAULT 0,
    trade_count bigint NOT NULL DEFAULT 0,
    source      smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (symbol, ts_event)
) /*@partition_by*/;

CREATE TABLE IF NOT EXISTS bars_1m (LIKE bars_1s INCLUDING DEFAULTS, PRIMARY KEY (symbol, ts_event))
    /*@partition_by*/;

-- Daily bars: a year is ~252 rows per symbol, no partitioning needed.
CREATE TABLE IF NOT EXISTS bars_1d (LIKE bars_1s INCLUDING DEFAULTS, PRIMARY KEY (symbol, ts_event));

--@if plain
CREATE INDEX IF NOT EXISTS trades_brin ON trades USING brin (ts_event);
CREATE INDEX IF NOT EXISTS quotes_brin ON quotes USING brin (ts_event);
CREATE INDEX IF NOT EXISTS option_quotes_brin ON option_quotes USING brin (ts_event);
CREATE INDEX IF NOT EXISTS bars_1s_brin ON bars_1s USING brin (ts_event);
CREATE INDEX IF NOT EXISTS bars_1m_brin ON bars_1m USING brin (ts_event);

-- Create the daily partitions [from_day, to_day] (UTC days) of a partitioned table; returns how
-- many were created. Safe under concurrency (a partition created meanwhile is not an error).
CREATE OR REPLACE FUNCTION aiots_ensure_partitions(parent text, from_day date, to_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    d date := from_day;
    n integer := 0;
    part text;
    lo bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(parent)) THEN
        RETURN 0;
    END IF;
    WHILE d <= to_day LOOP
        part := parent || '_p' || to_char(d, 'YYYYMMDD');
        IF to_regclass(part) IS NULL THEN
            lo := (d - DATE '1970-01-01')::bigint * 86400000000000;
            BEGIN
                EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)',
                               part, parent, lo, lo + 86400000000000);
                n := n + 1;
            EXCEPTION WHEN duplicate_table OR unique_violation OR invalid_object_definition THEN
                NULL;
            END;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN n;
END $$;
--@end

--@if timescale
CREATE OR REPLACE FUNCTION aiots_ensure_partitions(parent text, from_day date, to_day date)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;   -- hypertables create chunks themselves

CREATE OR REPLACE FUNCTION aiots_now_ns() RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT (extract(epoch FROM now()) * 1e9)::bigint $$;

SELECT create_hypertable('trades', 'ts_event', chunk_time_interval => 86400000000000, if_not_exists => TRUE);
SELECT create_hypertable('quotes', 'ts_event', chunk_time_interval => 86400000000000, if_not_exists => TRUE);
SELECT create_hypertable('option_quotes', 'ts_event', chunk_time_interval => 86400000000000,
                         if_not_exists => TRUE);
SELECT create_hypertable('bars_1s', 'ts_event', chunk_time_interval => 86400000000000, if_not_exists => TRUE);
SELECT create_hypertable('bars_1m', 'ts_event', chunk_time_interval => 604800000000000, if_not_exists => TRUE);
SELECT set_integer_now_func(t, 'aiots_now_ns', replace_if_exists => TRUE)
  FROM unnest(ARRAY['trades', 'quotes', 'option_quotes', 'bars_1s', 'bars_1m']) AS t;

ALTER TABLE trades SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol',
                        timescaledb.compress_orderby = 'ts_event');
ALTER TABLE quotes SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol',
                        timescaledb.compress_orderby = 'ts_event');
ALTER TABLE option_quotes SET (timescaledb.compress, timescaledb.compress_segmentby = 'underlying',
                               timescaledb.compress_orderby = 'ts_event');
-- compress after 7 days; keep ticks 90 days, 1s bars 30 days (1m and 1d bars forever)
SELECT add_compression_policy(t, 604800000000000::bigint, if_not_exists => TRUE)
  FROM unnest(ARRAY['trades', 'quotes', 'option_quotes']) AS t;
SELECT add_retention_policy(t, 7776000000000000::bigint, if_not_exists => TRUE)
  FROM unnest(ARRAY['trades', 'quotes', 'option_quotes']) AS t;
SELECT add_retention_policy('bars_1s', 2592000000000000::bigint, if_not_exists => TRUE);
--@end
