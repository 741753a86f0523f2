package runctl_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/runctl"
)

// Only Max consecutive failures stop the run; a reset starts the count over.
func TestAttemptsStopTheRunAfterMaxConsecutiveFailures(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runctl.Enable(cancel)
	a := runctl.Attempts{Max: 2}
	errA := errors.New("connection refused")
	require.Equal(t, errA, a.Fail(errA, false))
	a.Reset()
	a.Fail(errA, false)
	require.NoError(t, ctx.Err(), "one failure after a reset is not two in a row")
	require.NoError(t, runctl.Err())
	a.Fail(errA, false)
	require.ErrorIs(t, ctx.Err(), context.Canceled)
	require.Equal(t, errA, runctl.Err())
}
