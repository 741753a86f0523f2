package resolution_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/resolution"
)

// memBatch is a batch of records {"id": i}.
type memBatch struct{ recs []map[string]any }

func newMemBatch(n int) *memBatch {
	b := &memBatch{recs: make([]map[string]any, n)}
	for i := range b.recs {
		b.recs[i] = map[string]any{"id": int64(i)}
	}
	return b
}

func (b *memBatch) Len() int                            { return len(b.recs) }
func (b *memBatch) Record(i int) map[string]any         { return b.recs[i] }
func (b *memBatch) SetRecord(i int, rec map[string]any) { b.recs[i] = rec }
func (b *memBatch) Payload(i int) []byte                { return []byte(fmt.Sprintf(`{"id":%d}`, b.recs[i]["id"])) }
func (b *memBatch) Metadata(i int) map[string]string {
	return map[string]string{"key": strconv.Itoa(i)}
}

// fakeDest is an all-or-nothing destination that rejects chunks holding a
// bad record.
type fakeDest struct {
	mu      sync.Mutex
	bad     map[int]bool
	written map[int]int
	writes  int
	// fail builds the error for a chunk whose first bad record is at pos.
	fail func(pos int) error
	// transient, when set, is returned for every chunk containing one of
	// these records (nil: never).
	down bool
}

func (f *fakeDest) write(b *memBatch) resolution.WriteFunc {
	return func(_ context.Context, idx []int) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.writes++
		if f.down {
			return errors.New("dial tcp 10.0.0.5:5432: connect: connection refused")
		}
		for pos, i := range idx {
			if f.bad[int(b.recs[i]["id"].(int64))] {
				return f.fail(pos)
			}
		}
		for _, i := range idx {
			f.written[int(b.recs[i]["id"].(int64))]++
		}
		return nil
	}
}

type collectDL struct {
	mu  sync.Mutex
	dls []resolution.DeadLetter
}

func (c *collectDL) WriteDeadLetters(_ context.Context, dls []resolution.DeadLetter) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dls = append(c.dls, dls...)
	return nil
}
func (c *collectDL) Close() error { return nil }

func fastRetry() resolution.RetryPolicy {
	return resolution.RetryPolicy{MaxAttempts: 4, InitialInterval: 5 * time.Millisecond, MaxInterval: 20 * time.Millisecond, MaxElapsed: 200 * time.Millisecond}
}

func badSet(n, k int, seed uint64) map[int]bool {
	r := rand.New(rand.NewPCG(seed, 1))
	bad := map[int]bool{}
	for len(bad) < k {
		bad[r.IntN(n)] = true
	}
	return bad
}

// Without a hint naming the record, bisection finds k bad records among n
// in O(k log n) writes; every good record is written exactly once.
func TestEngineBisectsWithoutHints(t *testing.T) {
	const n, k = 4096, 6
	b := newMemBatch(n)
	dest := &fakeDest{bad: badSet(n, k, 7), written: map[int]int{},
		fail: func(int) error {
			return errors.New(`ERROR: new row for relation "t" violates check constraint "t_x_check" (SQLSTATE 23514)`)
		}}
	dl := &collectDL{}
	e := resolution.NewEngine(resolution.EngineConfig{Agent: resolution.New(resolution.Config{Retry: fastRetry()}), Component: "test", DeadLetters: dl})
	defer e.Close()
	out, err := e.Deliver(context.Background(), b, dest.write(b))
	require.NoError(t, err)
	require.Equal(t, n-k, out.Written)
	require.Equal(t, k, out.DeadLettered)
	require.Len(t, dest.written, n-k)
	for id, c := range dest.written {
		require.Equal(t, 1, c, "record %d written once", id)
		require.False(t, dest.bad[id])
	}
	require.Len(t, dl.dls, k)
	for _, d := range dl.dls {
		require.Equal(t, resolution.CategoryConstraint, d.Category)
	}
	bound := 4 * k * int(math.Log2(n))
	require.LessOrEqual(t, dest.writes, bound, "O(k log n): %d writes for k=%d n=%d", dest.writes, k, n)
	t.Logf("%d writes for %d bad of %d", dest.writes, k, n)
}

// With the record named by the error (a COPY line), each bad record costs
// about one failed write.
func TestEngineUsesRecordHints(t *testing.T) {
	const n, k = 5000, 20
	b := newMemBatch(n)
	dest := &fakeDest{bad: badSet(n, k, 9), written: map[int]int{},
		fail: func(pos int) error {
			return &pgconn.PgError{Code: "22001", Message: "value too long for type character varying(3)",
				Where: fmt.Sprintf("COPY t, line %d, column name", pos+1)}
		}}
	dl := &collectDL{}
	e := resolution.NewEngine(resolution.EngineConfig{Agent: resolution.New(resolution.Config{}), Component: "test", DeadLetters: dl})
	defer e.Close()
	out, err := e.Deliver(context.Background(), b, dest.write(b))
	require.NoError(t, err)
	require.Equal(t, n-k, out.Written)
	require.Equal(t, k, out.DeadLettered)
	require.LessOrEqual(t, dest.writes, 3*k+2)
	for _, d := range dl.dls {
		require.Equal(t, resolution.CategoryDataType, d.Category)
		require.Equal(t, "22001", d.Code)
	}
}

// An outage (every write fails transiently) is handed back after the retry
// budget with nothing dead-lettered; the redelivery after recovery writes
// everything once.
func TestEngineOutageIsHandedBack(t *testing.T) {
	b := newMemBatch(100)
	dest := &fakeDest{bad: map[int]bool{}, written: map[int]int{}, down: true}
	dl := &collectDL{}
	e := resolution.NewEngine(resolution.EngineConfig{Agent: resolution.New(resolution.Config{Retry: fastRetry()}), Component: "test", DeadLetters: dl})
	defer e.Close()
	start := time.Now()
	_, err := e.Deliver(context.Background(), b, dest.write(b))
	require.Error(t, err)
	require.Less(t, time.Since(start), time.Second)
	require.Empty(t, dl.dls, "an outage never dead-letters")
	dest.down = false
	out, err := e.Deliver(context.Background(), b, dest.write(b))
	require.NoError(t, err)
	require.Equal(t, 100, out.Written)
	require.Len(t, dest.written, 100)
}

// A poison record that makes every write containing it time out is set
// aside after the retry budget; the records behind it are written and are
// not held up for longer than the budget plus a few isolation writes.
func TestPoisonNeverBlocksLongerThanRetryBudget(t *testing.T) {
	const n = 1000
	b := newMemBatch(n)
	dest := &fakeDest{bad: map[int]bool{500: true}, written: map[int]int{},
		fail: func(int) error {
			return &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}
		}}
	dl := &collectDL{}
	policy := fastRetry()
	e := resolution.NewEngine(resolution.EngineConfig{Agent: resolution.New(resolution.Config{Retry: policy}), Component: "test", DeadLetters: dl})
	defer e.Close()
	start := time.Now()
	out, err := e.Deliver(context.Background(), b, dest.write(b))
	took := time.Since(start)
	require.NoError(t, err)
	require.Equal(t, n-1, out.Written)
	require.Len(t, dl.dls, 1)
	require.Equal(t, `{"id":500}`, string(dl.dls[0].Payload))
	require.Equal(t, resolution.CategoryTimeout, dl.dls[0].Category)
	require.Less(t, took, policy.MaxElapsed+300*time.Millisecond, "blocked for %s", took)
	require.LessOrEqual(t, dest.writes, policy.MaxAttempts+2*int(math.Log2(n))+4)
}

// When a delivery fails after part of it was written, the redelivery skips
// what was already written: no duplicates in insert mode.
func TestEngineRedeliverySkipsWrittenRecords(t *testing.T) {
	b := newMemBatch(64)
	calls := 0
	written := map[int]int{}
	write := func(_ context.Context, idx []int) error {
		calls++
		if len(idx) > 16 && calls < 3 {
			return &pgconn.PgError{Code: "23514", Message: "violates check constraint"}
		}
		if calls >= 3 && calls < 20 && idx[0] >= 32 {
			return errors.New("dial tcp: connect: connection refused")
		}
		for _, i := range idx {
			written[i]++
		}
		return nil
	}
	dl := &collectDL{}
	e := resolution.NewEngine(resolution.EngineConfig{Agent: resolution.New(resolution.Config{Retry: resolution.RetryPolicy{MaxAttempts: 1}}),
		Component: "test", DeadLetters: dl})
	defer e.Close()
	_, err := e.Deliver(context.Background(), b, write)
	require.Error(t, err, "the outage outlasts the budget")
	calls = 100
	out, err := e.Deliver(context.Background(), b, write)
	require.NoError(t, err)
	require.Positive(t, out.Skipped)
	require.Len(t, written, 64)
	for i, c := range written {
		require.Equal(t, 1, c, "record %d", i)
	}
}
