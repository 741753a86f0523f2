package nats_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/bus"
	_ "github.com/agentetl/agentetl/plugins/nats"
)

func publish(t *testing.T, url string, n int) {
	t.Helper()
	b := service.NewStreamBuilder()
	require.NoError(t, b.SetLoggerYAML(`level: warn`))
	require.NoError(t, b.SetYAML(fmt.Sprintf(`
input:
  generate:
    count: %d
    interval: ""
    mapping: 'root = {"id": "ev-" + counter().string()}'
output:
  nats_jetstream:
    urls: [ %q ]
    subject: agentetl.execution.test
    msg_id: ${! json("id") }
`, n, url)))
	s, err := b.Build()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.Run(ctx))
}

func TestPublishConsumeDedupeAndRedeliver(t *testing.T) {
	srv, err := bus.StartEmbedded(t.TempDir(), 0)
	require.NoError(t, err)
	defer srv.Shutdown()

	publish(t, srv.URL(), 50)
	publish(t, srv.URL(), 50) // same event ids: the server stores them once
	{
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		bb, err := bus.Connect(ctx, srv.URL())
		require.NoError(t, err)
		st, err := bb.JetStream().Stream(ctx, bus.StreamName)
		require.NoError(t, err)
		info, err := st.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(50), info.State.Msgs)
		bb.Close()
	}

	var mu sync.Mutex
	seen := map[string]int{}
	failedOnce := false
	b := service.NewStreamBuilder()
	require.NoError(t, b.SetLoggerYAML(`level: warn`))
	require.NoError(t, b.AddInputYAML(fmt.Sprintf(`
nats_jetstream:
  urls: [ %q ]
  durable: plugin-test
  filter_subject: agentetl.execution.>
  ack_wait: 2s
`, srv.URL())))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.AddConsumerFunc(func(_ context.Context, m *service.Message) error {
		id, _ := m.MetaGet("nats_msg_id")
		mu.Lock()
		defer mu.Unlock()
		if id == "ev-7" && !failedOnce {
			failedOnce = true
			return errors.New("simulated failure")
		}
		seen[id]++
		if len(seen) == 50 {
			go cancel()
		}
		return nil
	}))
	s, err := b.Build()
	require.NoError(t, err)
	_ = s.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	require.True(t, failedOnce)
	require.Len(t, seen, 50, "every event once, the rejected one redelivered")
	for id, n := range seen {
		require.Equal(t, 1, n, id)
	}
}
