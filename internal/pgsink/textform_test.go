package pgsink_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/pgsink"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/testpg"
)

// TestTextFormTypes writes uuid, inet, cidr, interval and time values given
// as their SQL text, the form the postgres input emits them in, and checks
// an invalid one is a clear data error.
func TestTextFormTypes(t *testing.T) {
	db := testpg.NewSchema(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id bigint PRIMARY KEY, u uuid, ip inet, net cidr, span interval, at time)`)
	w, err := pgsink.Open(ctx, pgsink.Config{DSN: db.DSN, Table: "t", Mode: pgsink.ModeInsert})
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.Write(ctx, []map[string]any{
		row("id", int64(1), "u", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "ip", "192.168.1.5/24", "net", "10.0.0.0/8",
			"span", "1 day 02:03:04", "at", "13:45:00.5"),
		row("id", int64(2), "u", nil, "ip", "::1", "net", nil, "span", "00:00:01", "at", nil),
	}))
	require.Equal(t, "6ba7b810-9dad-11d1-80b4-00c04fd430c8|192.168.1.5/24|10.0.0.0/8|1 day 02:03:04|13:45:00.5",
		db.String(t, `SELECT u||'|'||ip||'|'||net||'|'||span||'|'||at FROM t WHERE id = 1`))
	require.Equal(t, "::1", db.String(t, `SELECT host(ip) FROM t WHERE id = 2`))

	err = w.Write(ctx, []map[string]any{row("id", int64(3), "u", "not-a-uuid")})
	require.Error(t, err)
	require.Contains(t, err.Error(), `"not-a-uuid" is not a valid uuid`)
	var pe *pgutil.Error
	require.ErrorAs(t, err, &pe)
	require.EqualValues(t, 2, db.Int(t, `SELECT count(*) FROM t`))
}
