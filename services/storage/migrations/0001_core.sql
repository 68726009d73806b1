-- Core reference tables (not time-partitioned).
-- Conventions: ts_event/ts_* columns ending in _ns are int64 ns UTC; timestamptz columns are UTC.

CREATE TABLE IF NOT EXISTS aiots_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- Stocks and options. symbol: ticker (stocks) or the 21-character OCC symbol (options).
CREATE TABLE IF NOT EXISTS instruments (
    symbol         text PRIMARY KEY,
    kind           smallint NOT NULL,              -- aiots.v1.InstrumentKind: 1 stock, 2 option
    underlying     text NOT NULL,
    strike         double precision,               -- dollars (options)
    expiry         date,                           -- expires 16:00 America/New_York
    option_right   char(1),                        -- 'C' or 'P'
    multiplier     integer NOT NULL DEFAULT 1,
    exercise_style smallint NOT NULL DEFAULT 1,    -- aiots.v1.ExerciseStyle: 1 American
    dataset        text NOT NULL DEFAULT '',
    first_seen     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS instruments_chain_idx ON instruments (underlying, kind, expiry, strike);

-- Databento instrument ids are only valid per session/day: keep them with validity dates.
CREATE TABLE IF NOT EXISTS instrument_ids (
    dataset       text NOT NULL,
    instrument_id bigint NOT NULL,
    symbol        text NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz NOT NULL,
    PRIMARY KEY (dataset, instrument_id, valid_from)
);
CREATE INDEX IF NOT EXISTS instrument_ids_symbol_idx ON instrument_ids (symbol, valid_to DESC);

-- Daily option statistics (OPRA publishes open interest once a day, before the open).
CREATE TABLE IF NOT EXISTS option_stats (
    symbol        text NOT NULL,                   -- OCC
    underlying    text NOT NULL,
    as_of         date NOT NULL,                   -- session date (America/New_York)
    open_interest double precision,
    close_price   double precision,
    volume        double precision,
    ts_event      bigint NOT NULL,                 -- ns of the latest statistic folded in
    PRIMARY KEY (symbol, as_of)
);
CREATE INDEX IF NOT EXISTS option_stats_underlying_idx ON option_stats (underlying, as_of);

-- Daily at-the-money implied volatility per underlying (for IV rank / percentile).
CREATE TABLE IF NOT EXISTS atm_iv_history (
    underlying       text NOT NULL,
    as_of            date NOT NULL,
    atm_iv           double precision NOT NULL,    -- annualised, 0.25 = 25%
    underlying_price double precision,
    PRIMARY KEY (underlying, as_of)
);

-- Signals (columns mirror aiots.v1.Signal; payload is the serialised Signal message).
CREATE TABLE IF NOT EXISTS signals (
    id                  text PRIMARY KEY,          -- ULID
    created_at          timestamptz NOT NULL,
    symbol              text NOT NULL,
    strategy            text NOT NULL,
    direction           smallint NOT NULL DEFAULT 0,
    status              smallint NOT NULL DEFAULT 1,   -- aiots.v1.SignalStatus
    confidence          double precision NOT NULL DEFAULT 0,
    underlying_price    double precision,
    occ_symbol          text,
    entry_price         double precision,
    target_price        double precision,
    stop_price          double precision,
    horizon             timestamptz,
    expected_return_pct double precision,
    reward_risk         double precision,
    iv                  double precision,
    iv_rank             double precision,
    payload             bytea NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS signals_symbol_idx ON signals (symbol, created_at DESC);
CREATE INDEX IF NOT EXISTS signals_status_idx ON signals (status, created_at DESC);
CREATE INDEX IF NOT EXISTS signals_strategy_idx ON signals (strategy, created_at DESC);

CREATE TABLE IF NOT EXISTS signal_status_history (
    id           bigserial PRIMARY KEY,
    signal_id    text NOT NULL REFERENCES signals (id) ON DELETE CASCADE,
    status       smallint NOT NULL,
    at           timestamptz NOT NULL,
    option_price double precision,
    note         text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS signal_status_history_signal_idx ON signal_status_history (signal_id, at);

-- Collection jobs (live, simulator, replay, backfill) and per-chunk backfill progress (resume).
CREATE TABLE IF NOT EXISTS collection_jobs (
    job_id     text PRIMARY KEY,
    kind       text NOT NULL,                      -- live | simulator | replay | backfill
    status     text NOT NULL,                      -- running | done | stopped | failed
    params     jsonb NOT NULL DEFAULT '{}'::jsonb,
    records    bigint NOT NULL DEFAULT 0,
    cost_usd   double precision NOT NULL DEFAULT 0,
    error      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS backfill_chunks (
    job_id    text NOT NULL REFERENCES collection_jobs (job_id) ON DELETE CASCADE,
    chunk_day date NOT NULL,
    schema    text NOT NULL,
    status    text NOT NULL,                       -- done
    records   bigint NOT NULL DEFAULT 0,
    done_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, chunk_day, schema)
);

-- Data-quality events: crossed/zero-size quotes, out-of-order timestamps, undecodable bytes...
CREATE TABLE IF NOT EXISTS data_quality_events (
    id         bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    source     text NOT NULL,
    kind       text NOT NULL,
    symbol     text,
    ts_event   bigint,
    detail     text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS data_quality_events_kind_idx ON data_quality_events (kind, created_at);

-- Bytes that could not be decoded (malformed/truncated DBN), kept for inspection.
CREATE TABLE IF NOT EXISTS quarantine (
    id         bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    source     text NOT NULL,
    reason     text NOT NULL,
    data       bytea NOT NULL
);
