-- Paper trading accounts (issue 16). Orders and fills are an append-only log: positions, cash and
-- P&L are derived from portfolio_orders on every read, so a restart or a second replica derives
-- the same state. An order is written with its fill in one transaction under the account row's
-- lock; (account_id, client_order_id) is unique, so a retry finds the first order.
-- Numbered 0016 (the issue number) so it cannot collide with other areas' next migrations.

CREATE TABLE IF NOT EXISTS portfolio_accounts (
    id            text PRIMARY KEY,               -- ULID
    owner         text NOT NULL,                  -- token subject that created it
    name          text NOT NULL,
    starting_cash double precision NOT NULL,      -- dollars
    created_ns    bigint NOT NULL,                -- ns UTC
    limits        jsonb NOT NULL DEFAULT '{}'::jsonb,
    follow        jsonb NOT NULL DEFAULT '{}'::jsonb,
    last_seq      bigint NOT NULL DEFAULT 0       -- last event seq handed out (under the row lock)
);
CREATE INDEX IF NOT EXISTS portfolio_accounts_owner_idx ON portfolio_accounts (owner, id);

CREATE TABLE IF NOT EXISTS portfolio_orders (
    account_id      text NOT NULL REFERENCES portfolio_accounts (id),
    seq             bigint NOT NULL,              -- event seq of the fill on the account's stream
    id              text NOT NULL UNIQUE,         -- ULID
    client_order_id text NOT NULL,
    contract        text NOT NULL,                -- OCC, 21 characters
    underlying      text NOT NULL,
    side            text NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity        integer NOT NULL CHECK (quantity > 0),
    limit_price     double precision,             -- NULL: market order
    status          text NOT NULL,
    fill_price      double precision NOT NULL,    -- dollars per share
    fees            double precision NOT NULL,    -- dollars
    cash_flow       double precision NOT NULL,    -- signed dollars
    bid             double precision NOT NULL,
    ask             double precision NOT NULL,
    filled_ns       bigint NOT NULL,              -- ns UTC
    signal_id       text NOT NULL DEFAULT '',
    source          text NOT NULL DEFAULT 'manual',
    PRIMARY KEY (account_id, seq),
    UNIQUE (account_id, client_order_id)
);

-- The watch stream's stored events (fills and limit events), replayable with `since`.
CREATE TABLE IF NOT EXISTS portfolio_events (
    account_id text NOT NULL REFERENCES portfolio_accounts (id),
    seq        bigint NOT NULL,
    kind       text NOT NULL,                     -- fill | limit
    at_ns      bigint NOT NULL,
    payload    jsonb NOT NULL,                    -- the fill (order) or the limit event
    PRIMARY KEY (account_id, seq)
);

-- Append-only: the log is never rewritten.
CREATE OR REPLACE FUNCTION portfolio_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
DROP TRIGGER IF EXISTS portfolio_orders_append_only ON portfolio_orders;
CREATE TRIGGER portfolio_orders_append_only BEFORE UPDATE OR DELETE ON portfolio_orders
    FOR EACH ROW EXECUTE FUNCTION portfolio_append_only();
DROP TRIGGER IF EXISTS portfolio_events_append_only ON portfolio_events;
CREATE TRIGGER portfolio_events_append_only BEFORE UPDATE OR DELETE ON portfolio_events
    FOR EACH ROW EXECUTE FUNCTION portfolio_append_only();
