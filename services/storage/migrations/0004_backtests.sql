-- Backtest runs (issue 14): one row per run, the request and the whole JSON report.
CREATE TABLE IF NOT EXISTS backtest_runs (
    id          text PRIMARY KEY,                 -- ULID
    created_ns  bigint NOT NULL,                  -- ns UTC
    owner       text NOT NULL DEFAULT '',         -- token subject that ran it ('' = local)
    request     jsonb NOT NULL,                   -- the RunBacktestRequest as JSON
    trades      bigint NOT NULL,                  -- filled and closed trades
    elapsed_s   double precision NOT NULL,
    report      jsonb NOT NULL                    -- see docs/backtest.md
);
CREATE INDEX IF NOT EXISTS backtest_runs_created_idx ON backtest_runs (created_ns DESC, id DESC);
