package redact_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/redact"
)

func TestDSN(t *testing.T) {
	cases := map[string]string{
		"postgres://bob:s3cret@db:5432/app?sslmode=disable":     "postgres://bob:xxxxx@db:5432/app?sslmode=disable",
		"postgres://bob@db/app?password=s3cret&sslmode=disable": "postgres://bob@db/app?password=xxxxx&sslmode=disable",
		"host=db user=bob password=s3cret dbname=app":           "host=db user=bob password=xxxxx dbname=app",
		"host=db password='s e c' dbname=app":                   "host=db password=xxxxx dbname=app",
		"postgres://bob@db/app":                                 "postgres://bob@db/app",
		"mysql://root:hunter2@tcp(127.0.0.1:3306)/x":            "mysql://root:xxxxx@tcp(127.0.0.1:3306)/x",
		"sqlite://./data/agentetl.db":                           "sqlite://./data/agentetl.db",
	}
	for in, want := range cases {
		got := redact.DSN(in)
		require.Equal(t, want, got, in)
		require.NotContains(t, got, "s3cret")
		require.NotContains(t, got, "hunter2")
	}
}

func TestString(t *testing.T) {
	in := `failed to connect to postgres://u:topsecret@10.0.0.1/db: Authorization: Bearer abc.def-ghi api_key=sk-abcdefghijklmnop`
	got := redact.String(in)
	require.NotContains(t, got, "topsecret")
	require.NotContains(t, got, "abc.def-ghi")
	require.NotContains(t, got, "abcdefghijklmnop")
	require.Contains(t, got, "postgres://u:xxxxx@10.0.0.1/db")
}

func TestDSNWithUnescapedPasswordCharacters(t *testing.T) {
	got := redact.DSN("postgres://user:pa/ss?w@rd@host/db")
	require.Equal(t, "postgres://user:xxxxx@host/db", got)
	for _, leak := range []string{"pa/ss", "w@rd", "rd@"} {
		require.NotContains(t, got, leak)
	}
}

func TestScrubKeepsErrorChain(t *testing.T) {
	base := errors.New("connect to postgres://u:hunter22@h/db failed: password hunter22 rejected")
	err := redact.Scrub("postgres://u:hunter22@h/db", base)
	require.NotContains(t, err.Error(), "hunter22")
	require.ErrorIs(t, err, base)
}
