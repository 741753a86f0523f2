-- The modern target schema of the demo, for the embedded SQLite destination
-- (./data/demo-target.db). Every statement is idempotent (IF NOT EXISTS):
-- the demo applies this file on every start.
CREATE TABLE IF NOT EXISTS orders (
  order_id      INTEGER PRIMARY KEY,
  customer_id   INTEGER NOT NULL,
  customer_name TEXT    NOT NULL CHECK (length(customer_name) <= 100),
  email_address TEXT,
  order_date    DATE    NOT NULL,
  amount_usd    NUMERIC(12,2) NOT NULL CHECK (amount_usd >= 0),
  quantity      INTEGER NOT NULL CHECK (quantity > 0),
  ship_country  TEXT    NOT NULL CHECK (length(ship_country) = 2),
  status        TEXT
);

-- Filled by the demo's stream pipeline (generated order events).
CREATE TABLE IF NOT EXISTS order_events (
  event_id    TEXT PRIMARY KEY,
  order_id    INTEGER NOT NULL,
  event_type  TEXT NOT NULL CHECK (event_type IN ('viewed', 'paid', 'shipped', 'delivered', 'returned')),
  occurred_at TIMESTAMP NOT NULL
);
