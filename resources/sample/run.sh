#!/usr/bin/env bash
# The main job on the bundled sample: load resources/sample/orders.csv into
# agentetl_sample.orders with agentetl itself, then copy it to
# agentetl_sample.orders_copy with configs/examples/postgres-to-postgres.yaml
# and compare both tables. Safe to run again: both loads are upserts and the
# copy's checkpoint makes a rerun pick up only new rows.
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_DSN=${PG_DSN:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
export PG_DSN
command -v psql >/dev/null || { echo "run.sh needs the psql client (apt-get install postgresql-client)" >&2; exit 1; }
BIN=./bin/agentetl
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }

echo "==> preparing schema agentetl_sample at ${PG_DSN%%\?*}"
psql "$PG_DSN" -qv ON_ERROR_STOP=1 -c "CREATE SCHEMA IF NOT EXISTS agentetl_sample" 2>&1 | grep -v NOTICE || true

echo "==> loading the bundled sample (5,000 orders) with resources/sample/load-orders.yaml"
"$BIN" run resources/sample/load-orders.yaml

psql "$PG_DSN" -qv ON_ERROR_STOP=1 \
  -c "CREATE TABLE IF NOT EXISTS agentetl_sample.orders_copy (LIKE agentetl_sample.orders INCLUDING ALL)" 2>&1 | grep -v NOTICE || true

echo "==> copying agentetl_sample.orders -> agentetl_sample.orders_copy with configs/examples/postgres-to-postgres.yaml"
SOURCE_DSN=$PG_DSN SOURCE_TABLE=agentetl_sample.orders KEY_COLUMN=order_id \
TARGET_DSN=$PG_DSN TARGET_TABLE=agentetl_sample.orders_copy \
LOG_LEVEL=${LOG_LEVEL:-INFO} \
  "$BIN" run configs/examples/postgres-to-postgres.yaml

echo "==> checking"
psql "$PG_DSN" -qAt -v ON_ERROR_STOP=1 <<'SQL'
SELECT format('source rows: %s, target rows: %s, content identical: %s',
  (SELECT count(*) FROM agentetl_sample.orders),
  (SELECT count(*) FROM agentetl_sample.orders_copy),
  (SELECT md5(string_agg(md5(x::text), '' ORDER BY x.order_id)) FROM agentetl_sample.orders x) =
  (SELECT md5(string_agg(md5(x::text), '' ORDER BY x.order_id)) FROM agentetl_sample.orders_copy x));
SQL
