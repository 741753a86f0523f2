package pagequeue_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/pagequeue"
)

// source hands out pages 1..n, then io.EOF.
func source(n int) func(context.Context) (*pagequeue.Page[int], error) {
	next := 0
	return func(context.Context) (*pagequeue.Page[int], error) {
		if next == n {
			return nil, io.EOF
		}
		next++
		return &pagequeue.Page[int]{Page: next}, nil
	}
}

// A rejected page is sent again before any new page, end of input waits
// for the last outstanding page, and a page rejected after the source is
// exhausted is still replayed.
func TestRejectedPagesComeBackFirstAndEndWaitsForAcks(t *testing.T) {
	q := pagequeue.New[int]()
	q.MaxBackoff = time.Millisecond
	ctx := context.Background()
	read := source(3)

	p1, err := q.Next(ctx, read)
	require.NoError(t, err)
	p2, err := q.Next(ctx, read)
	require.NoError(t, err)
	q.Done(p1, errors.New("rejected"))
	again, err := q.Next(ctx, read)
	require.NoError(t, err)
	require.Equal(t, 1, again.Page, "the rejected page comes before page 3")
	require.Equal(t, 1, again.Nacks)
	q.Done(again, nil)
	p3, err := q.Next(ctx, read)
	require.NoError(t, err)
	require.Equal(t, 3, p3.Page)
	q.Done(p3, nil)

	// The source is exhausted but page 2 is out: Next waits, and when page 2
	// is rejected it is replayed rather than ending the input.
	done := make(chan *pagequeue.Page[int], 1)
	go func() {
		pp, err := q.Next(ctx, read)
		require.NoError(t, err)
		done <- pp
	}()
	select {
	case <-done:
		t.Fatal("Next returned while a page was still out")
	case <-time.After(50 * time.Millisecond):
	}
	q.Done(p2, errors.New("rejected after the last read"))
	replayed := <-done
	require.Equal(t, 2, replayed.Page)
	q.Done(replayed, nil)
	_, err = q.Next(ctx, read)
	require.ErrorIs(t, err, pagequeue.ErrEndOfInput)
}

// Cancelling during a replay's backoff keeps the page queued.
func TestCancelDuringBackoffKeepsThePage(t *testing.T) {
	q := pagequeue.New[int]()
	read := source(1)
	p1, err := q.Next(context.Background(), read)
	require.NoError(t, err)
	for range 5 {
		p1.Nacks++
	}
	q.Done(p1, errors.New("rejected")) // 6 rejections: a 600 ms backoff
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = q.Next(ctx, read)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	pp, err := q.Next(context.Background(), read)
	require.NoError(t, err)
	require.Equal(t, 1, pp.Page)
	require.Equal(t, 6, pp.Nacks)
}
