package bus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/bus"
	"github.com/agentetl/agentetl/internal/testutil"
)

type collector struct {
	mu  sync.Mutex
	ids map[string]int
}

func (c *collector) handle(_ context.Context, ev bus.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids[ev.ID]++
	return nil
}

func (c *collector) count() (distinct, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.ids {
		total += n
	}
	return len(c.ids), total
}

func TestEmbeddedPublishSubscribeAndDuplicateDrop(t *testing.T) {
	srv, err := bus.StartEmbedded(t.TempDir(), 0)
	require.NoError(t, err)
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, srv.URL())
	require.NoError(t, err)
	defer b.Close()

	ev, err := bus.NewEvent(bus.SubjectSchemaChange, "schema.changed", map[string]string{"table": "public.orders"})
	require.NoError(t, err)
	require.NoError(t, b.Publish(ctx, ev))
	require.NoError(t, b.Publish(ctx, ev), "a re-published event is accepted and stored once")

	info, err := b.JetStream().Stream(ctx, bus.StreamName)
	require.NoError(t, err)
	si, err := info.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), si.State.Msgs)

	c := &collector{ids: map[string]int{}}
	sub, err := b.Subscribe(ctx, "test", "agentetl.schema.>", bus.NewMemoryDeduper(), c.handle)
	require.NoError(t, err)
	defer sub.Stop()
	require.Eventually(t, func() bool { d, _ := c.count(); return d == 1 }, 10*time.Second, 20*time.Millisecond)

	require.ErrorIs(t, b.Publish(ctx, bus.Event{ID: "x"}), bus.ErrNoSubject)
	require.ErrorIs(t, b.Publish(ctx, bus.Event{Subject: bus.SubjectDecision}), bus.ErrNoID)
}

// Events published while the server restarts are neither lost nor handled
// twice: the stream is on disk, publishers retry, and the consumer is durable
// and idempotent by event id.
func TestServerRestartLosesAndDuplicatesNothing(t *testing.T) {
	dir, port := t.TempDir(), testutil.FreePort(t)
	srv, err := bus.StartEmbedded(dir, port)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, srv.URL())
	require.NoError(t, err)
	defer b.Close()

	c := &collector{ids: map[string]int{}}
	dd := bus.NewMemoryDeduper()
	sub, err := b.Subscribe(ctx, "restart", "agentetl.execution.>", dd, c.handle)
	require.NoError(t, err)
	defer sub.Stop()

	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			ev := bus.Event{ID: uuid.NewString(), Type: "execution.progress", Subject: fmt.Sprintf("%s.p%d", bus.SubjectExecution, i%3)}
			pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
			errs <- b.Publish(pctx, ev)
			pcancel()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(150 * time.Millisecond)
	srv.Shutdown()
	time.Sleep(300 * time.Millisecond)
	srv, err = bus.StartEmbedded(dir, port)
	require.NoError(t, err)
	defer srv.Shutdown()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { d, _ := c.count(); return d == n }, 30*time.Second, 50*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	distinct, total := c.count()
	require.Equal(t, n, distinct, "no event lost")
	require.Equal(t, n, total, "no event handled twice")
}

// The bus also works against an external server: the system NATS at
// NATS_URL (default nats://127.0.0.1:4222).
func TestExternalServer(t *testing.T) {
	url := "nats://127.0.0.1:4222"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, url)
	require.NoError(t, err, "NATS with JetStream must be reachable at %s", url)
	defer b.Close()
	subject := bus.SubjectExecution + ".ext" + uuid.NewString()[:8]
	c := &collector{ids: map[string]int{}}
	durable := "ext-" + uuid.NewString()[:8]
	sub, err := b.Subscribe(ctx, durable, subject, bus.NewMemoryDeduper(), c.handle)
	require.NoError(t, err)
	defer sub.Stop()
	defer func() { _ = b.JetStream().DeleteConsumer(context.Background(), bus.StreamName, durable) }()
	for i := 0; i < 5; i++ {
		require.NoError(t, b.Publish(ctx, bus.Event{ID: uuid.NewString(), Type: "t", Subject: subject}))
	}
	require.Eventually(t, func() bool { d, _ := c.count(); return d == 5 }, 10*time.Second, 20*time.Millisecond)
}
