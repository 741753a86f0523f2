package pgutil_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/testpg"
)

func numericCases() []string {
	cases := []string{"0", "0.00", "-0", "1", "-1", "12.50", "-12.50", "0.0001", "0.00001", "123456789012.34",
		"10000", "9999.9999", "100000000", "0.1", "-0.000000001", "1e3", "1.5e3", "1.5E-3", "-2e-10", "+7.25",
		"NaN", "Infinity", "-Infinity", "00012.3400", ".5", "5.", "99999999999999999999999999999999.999999999999"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		var b strings.Builder
		if r.IntN(2) == 0 {
			b.WriteByte('-')
		}
		for j, n := 0, r.IntN(25); j <= n; j++ {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		if r.IntN(3) > 0 {
			b.WriteByte('.')
			for j, n := 0, r.IntN(20); j <= n; j++ {
				b.WriteByte(byte('0' + r.IntN(10)))
			}
		}
		cases = append(cases, b.String())
	}
	return cases
}

// The server is the oracle: our binary encoder must produce what numeric_in
// makes of the same text, and our decoder what numeric_out prints.
func TestNumericBinaryMatchesServer(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testpg.DSN())
	require.NoError(t, err)
	defer conn.Close(ctx)
	for _, s := range numericCases() {
		var want string
		require.NoError(t, conn.QueryRow(ctx, "SELECT $1::text::numeric::text", s).Scan(&want), s)

		enc, err := pgutil.AppendNumericBinary(nil, s)
		require.NoError(t, err, s)
		res := conn.PgConn().ExecParams(ctx, "SELECT $1::numeric::text", [][]byte{enc}, []uint32{1700}, []int16{1}, []int16{0}).Read()
		require.NoError(t, res.Err, s)
		require.Equal(t, want, string(res.Rows[0][0]), "encode %q", s)

		res = conn.PgConn().ExecParams(ctx, "SELECT $1::text::numeric", [][]byte{[]byte(s)}, []uint32{25}, []int16{0}, []int16{1}).Read()
		require.NoError(t, res.Err, s)
		got, err := pgutil.NumericBinaryToText(res.Rows[0][0])
		require.NoError(t, err)
		require.Equal(t, want, got, "decode %q", s)
	}
}

func TestNumericRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "-", ".", "abc", "1.2.3", "1e", "1e99999", "12a", " 1", "0x10", "1,5"} {
		_, err := pgutil.AppendNumericBinary(nil, s)
		require.Error(t, err, fmt.Sprintf("%q", s))
	}
}
