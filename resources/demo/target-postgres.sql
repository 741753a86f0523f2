-- The modern target schema of the demo for a PostgreSQL destination (used
-- when PG_DSN is set and reachable). Every statement is idempotent: the demo
-- applies this file on every start.
CREATE SCHEMA IF NOT EXISTS agentetl_demo;

CREATE TABLE IF NOT EXISTS agentetl_demo.orders (
  order_id      bigint PRIMARY KEY,
  customer_id   bigint NOT NULL,
  customer_name text   NOT NULL CHECK (char_length(customer_name) <= 100),
  email_address text,
  order_date    date   NOT NULL,
  amount_usd    numeric(12,2) NOT NULL CHECK (amount_usd >= 0),
  quantity      integer NOT NULL CHECK (quantity > 0),
  ship_country  text   NOT NULL CHECK (char_length(ship_country) = 2),
  status        text
);

CREATE TABLE IF NOT EXISTS agentetl_demo.order_events (
  event_id    text PRIMARY KEY,
  order_id    bigint NOT NULL,
  event_type  text NOT NULL CHECK (event_type IN ('viewed', 'paid', 'shipped', 'delivered', 'returned')),
  occurred_at timestamptz NOT NULL
);
