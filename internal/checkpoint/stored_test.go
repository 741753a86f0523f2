package checkpoint_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/checkpoint"
	"github.com/agentetl/agentetl/internal/pgutil"
)

// OpenStored resumes from the saved position, starts over when asked or
// when nothing is saved, saves through its tracker, and reports a store it
// cannot open as a permanent error.
func TestOpenStored(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	var got []string
	resume := func(pos string) error { got = append(got, pos); return nil }

	cp, err := checkpoint.OpenStored(ctx, dsn, "job", false, resume)
	require.NoError(t, err)
	require.Empty(t, cp.Resumed, "nothing saved yet")
	require.NoError(t, cp.Tracker.Ack(ctx, cp.Tracker.Track("42")))
	require.NoError(t, cp.Store.Close())

	cp, err = checkpoint.OpenStored(ctx, dsn, "job", false, resume)
	require.NoError(t, err)
	require.Equal(t, "42", cp.Resumed)
	require.Equal(t, []string{"42"}, got)
	require.NoError(t, cp.Store.Close())

	cp, err = checkpoint.OpenStored(ctx, dsn, "job", true, resume)
	require.NoError(t, err)
	require.Empty(t, cp.Resumed, "reset starts from the beginning")
	require.Len(t, got, 1)
	require.NoError(t, cp.Store.Close())

	_, err = checkpoint.OpenStored(ctx, dsn, "job", false, func(string) error { return errors.New("bad position") })
	require.ErrorContains(t, err, "bad position")

	_, err = checkpoint.OpenStored(ctx, "nosuch://x", "job", false, resume)
	require.Error(t, err)
	require.True(t, pgutil.IsPermanent(err))
}
