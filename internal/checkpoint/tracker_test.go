package checkpoint_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/checkpoint"
)

func TestOutOfOrderAcksCommitOnlyContiguousPrefix(t *testing.T) {
	var saved []string
	tr := checkpoint.New(func(_ context.Context, p string) error { saved = append(saved, p); return nil })
	s0 := tr.Track("10")
	s1 := tr.Track("20")
	s2 := tr.Track("30")
	ctx := context.Background()

	require.NoError(t, tr.Ack(ctx, s2))
	require.Empty(t, saved, "batch 2 acked before 0 and 1 must not be persisted")
	require.NoError(t, tr.Ack(ctx, s1))
	require.Empty(t, saved)
	require.NoError(t, tr.Ack(ctx, s0))
	require.Equal(t, []string{"30"}, saved, "acking 0 completes the prefix up to 2 in one save")
	require.Equal(t, 0, tr.Pending())
}

func TestSaveErrorRetriedOnNextAck(t *testing.T) {
	fail := true
	var saved []string
	tr := checkpoint.New(func(_ context.Context, p string) error {
		if fail {
			return errors.New("disk full")
		}
		saved = append(saved, p)
		return nil
	})
	ctx := context.Background()
	s0, s1 := tr.Track("a"), tr.Track("b")
	require.Error(t, tr.Ack(ctx, s0))
	require.Empty(t, tr.Last())
	fail = false
	require.NoError(t, tr.Ack(ctx, s1))
	require.Equal(t, []string{"b"}, saved)
}

func TestConcurrentAcksSaveMonotonically(t *testing.T) {
	var mu sync.Mutex
	var saved []int
	tr := checkpoint.New(func(_ context.Context, p string) error {
		n, _ := strconv.Atoi(p)
		mu.Lock()
		saved = append(saved, n)
		mu.Unlock()
		return nil
	})
	const n = 500
	seqs := make([]uint64, n)
	for i := range seqs {
		seqs[i] = tr.Track(strconv.Itoa(i))
	}
	rand.Shuffle(n, func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
	var wg sync.WaitGroup
	for _, s := range seqs {
		wg.Add(1)
		go func(s uint64) { defer wg.Done(); require.NoError(t, tr.Ack(context.Background(), s)) }(s)
	}
	wg.Wait()
	require.NotEmpty(t, saved)
	for i := 1; i < len(saved); i++ {
		require.Greater(t, saved[i], saved[i-1], "positions must be saved in increasing order")
	}
	require.Equal(t, n-1, saved[len(saved)-1])
}
