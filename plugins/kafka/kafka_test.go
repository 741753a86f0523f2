package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentetl/agentetl/internal/kafkautil/kafkatest"
	"github.com/agentetl/agentetl/internal/testutil"
	_ "github.com/agentetl/agentetl/plugins/kafka"
)

const topic = "events"

func newCluster(t *testing.T, partitions int32) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// produceKeyed writes n records over keys k0..k(keys-1); each value is
// "key:seq" with seq counting that key's records in produce order.
func produceKeyed(t *testing.T, addrs []string, n, keys int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerLinger(0))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seq := make([]int, keys)
	recs := make([]*kgo.Record, 0, 2000)
	for i := 0; i < n; i++ {
		k := i % keys
		if i%7 == 0 { // uneven key spread
			k = (i / 7) % keys
		}
		key := "k" + strconv.Itoa(k)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(fmt.Sprintf("%s:%d", key, seq[k])),
			Headers: []kgo.RecordHeader{{Key: "origin", Value: []byte("test")}}})
		seq[k]++
		if len(recs) == cap(recs) || i == n-1 {
			require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
			recs = recs[:0]
		}
	}
}

func parse(t *testing.T, v []byte) (string, int) {
	key, s, ok := strings.Cut(string(v), ":")
	require.True(t, ok, "value %q", v)
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return key, n
}

func inputYAML(addrs []string, group string, extra string) string {
	return fmt.Sprintf(`
kafka:
  seed_brokers: [ %q ]
  topics: [ %s ]
  consumer_group: %s
  max_batch_records: 200
  commit_period: 100ms
  rebalance_drain_timeout: 2s
%s`, strings.Join(addrs, ","), topic, group, extra)
}

func buildStream(t *testing.T, input string, threads int, fn service.MessageHandlerFunc) *service.Stream {
	t.Helper()
	b := service.NewStreamBuilder()
	require.NoError(t, b.SetLoggerYAML(`level: warn`))
	require.NoError(t, b.AddInputYAML(input))
	b.SetThreads(threads)
	require.NoError(t, b.AddConsumerFunc(fn))
	s, err := b.Build()
	require.NoError(t, err)
	return s
}

func runUntil(t *testing.T, s *service.Stream, done func() bool, limit time.Duration) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()
	require.Eventually(t, done, limit, 20*time.Millisecond)
	require.NoError(t, s.StopWithin(10*time.Second))
	require.NoError(t, <-errc)
}

// TestOrderingPerKey: 8 partitions, 20,000 keyed records, four pipeline
// threads; at the consumer every key's records arrive in produce order, none
// missing, and the metadata describes each record.
func TestOrderingPerKey(t *testing.T) {
	const n, keys = 20000, 500
	addrs := newCluster(t, 8)
	produceKeyed(t, addrs, n, keys)

	var mu sync.Mutex
	next := map[string]int{}
	var outOfOrder []string
	parts := map[string]bool{}
	var count atomic.Int64
	s := buildStream(t, inputYAML(addrs, "ordering", ""), 4, func(_ context.Context, m *service.Message) error {
		v, err := m.AsBytes()
		require.NoError(t, err)
		key, seq := parse(t, v)
		mk, _ := m.MetaGet("kafka_key")
		mt, _ := m.MetaGet("kafka_topic")
		mp, _ := m.MetaGet("kafka_partition")
		mo, _ := m.MetaGet("kafka_offset")
		ts, _ := m.MetaGet("kafka_timestamp")
		h, _ := m.MetaGet("origin")
		mu.Lock()
		defer mu.Unlock()
		if mk != key || mt != topic || mo == "" || ts == "" || h != "test" {
			outOfOrder = append(outOfOrder, fmt.Sprintf("bad metadata key=%q topic=%q offset=%q ts=%q origin=%q", mk, mt, mo, ts, h))
		}
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			outOfOrder = append(outOfOrder, "bad timestamp "+ts)
		}
		parts[mp] = true
		if seq != next[key] {
			outOfOrder = append(outOfOrder, fmt.Sprintf("%s: got %d want %d", key, seq, next[key]))
		}
		next[key] = seq + 1
		count.Add(1)
		return nil
	})
	start := time.Now()
	runUntil(t, s, func() bool { return count.Load() >= n }, 25*time.Second)
	t.Logf("consumed %d records in %s", n, time.Since(start))

	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, outOfOrder)
	require.Equal(t, int64(n), count.Load(), "each record exactly once in an undisturbed run")
	require.Len(t, parts, 8, "all partitions were consumed")
	total := 0
	for _, v := range next {
		total += v
	}
	require.Equal(t, n, total)
}

// TestRedeliveryAfterStop: the first run acknowledges 3,000 records and then
// fails everything, and is stopped mid-stream. The committed offsets cover
// only acknowledged records; a restart in the same group processes the rest,
// so every record is processed at least once, and redelivery starts exactly
// at the committed offset.
func TestRedeliveryAfterStop(t *testing.T) {
	const n, keys = 8000, 200
	addrs := newCluster(t, 8)
	produceKeyed(t, addrs, n, keys)

	var mu sync.Mutex
	processed := map[string]bool{}              // "key:seq" processed successfully
	ackedOffsets := map[string]map[int64]bool{} // partition -> offsets acknowledged in run 1
	var okCount atomic.Int64
	s := buildStream(t, inputYAML(addrs, "redeliver", ""), 4, func(_ context.Context, m *service.Message) error {
		if okCount.Load() >= 3000 {
			return errors.New("downstream down") // nacked: retried, never acknowledged
		}
		v, _ := m.AsBytes()
		p, _ := m.MetaGet("kafka_partition")
		o, _ := m.MetaGet("kafka_offset")
		off, _ := strconv.ParseInt(o, 10, 64)
		mu.Lock()
		processed[string(v)] = true
		if ackedOffsets[p] == nil {
			ackedOffsets[p] = map[int64]bool{}
		}
		ackedOffsets[p][off] = true
		mu.Unlock()
		okCount.Add(1)
		return nil
	})
	runUntil(t, s, func() bool { return okCount.Load() >= 3000 }, 20*time.Second)
	time.Sleep(200 * time.Millisecond)

	// Committed offsets never pass an unacknowledged record: every offset
	// below the commit was processed in run 1. The stop commits what was
	// acknowledged, so the commits are not all zero.
	committed := kafkatest.CommittedOffsets(t, addrs, "redeliver", topic, 8)
	mu.Lock()
	var sum int64
	for p, c := range committed {
		for o := int64(0); o < c; o++ {
			require.True(t, ackedOffsets[strconv.Itoa(int(p))][o], "partition %d committed %d past unacknowledged offset %d", p, c, o)
		}
		sum += c
	}
	require.Greater(t, sum, int64(0))
	firstRun := len(processed)
	mu.Unlock()
	require.Less(t, firstRun, n, "the first run must stop mid-stream")

	firstOffset := map[string]int64{}
	s2 := buildStream(t, inputYAML(addrs, "redeliver", ""), 4, func(_ context.Context, m *service.Message) error {
		v, _ := m.AsBytes()
		p, _ := m.MetaGet("kafka_partition")
		o, _ := m.MetaGet("kafka_offset")
		off, _ := strconv.ParseInt(o, 10, 64)
		mu.Lock()
		defer mu.Unlock()
		if _, ok := firstOffset[p]; !ok {
			firstOffset[p] = off
		}
		processed[string(v)] = true
		return nil
	})
	runUntil(t, s2, func() bool { mu.Lock(); defer mu.Unlock(); return len(processed) == n }, 20*time.Second)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, processed, n, "no record lost across the restart")
	for p, off := range firstOffset {
		pi, _ := strconv.Atoi(p)
		require.Equal(t, committed[int32(pi)], off, "partition %s resumed away from its committed offset", p)
	}
}

// TestRebalanceNoLoss: two members share a group; the second joins and then
// leaves mid-stream. The survivor takes over its partitions. No record is lost, and an
// upsert-by-key sink ends with every key at its last produced value, so
// redelivered duplicates leave the same final effect as a single delivery.
func TestRebalanceNoLoss(t *testing.T) {
	const n, keys = 6000, 300
	addrs := newCluster(t, 8)
	produceKeyed(t, addrs, n, keys)

	var mu sync.Mutex
	seen := map[string]int{} // "key:seq" -> deliveries
	sink := map[string]int{} // key -> last applied seq (upsert)
	regress := 0             // times a key went backwards in the sink
	members := map[string]map[string]bool{"a": {}, "b": {}}
	var total atomic.Int64
	handler := func(member string, slow bool) service.MessageHandlerFunc {
		return func(_ context.Context, m *service.Message) error {
			if slow {
				time.Sleep(500 * time.Microsecond)
			}
			v, _ := m.AsBytes()
			key, seq := parse(t, v)
			p, _ := m.MetaGet("kafka_partition")
			mu.Lock()
			defer mu.Unlock()
			seen[string(v)]++
			members[member][p] = true
			if cur, ok := sink[key]; ok && seq < cur {
				regress++ // a replay from the committed offset; it moves forward again
			}
			sink[key] = seq
			total.Add(1)
			return nil
		}
	}
	a := buildStream(t, inputYAML(addrs, "rebalance", "  max_buffered_records: 400\n"), 2, handler("a", true))
	b := buildStream(t, inputYAML(addrs, "rebalance", "  max_buffered_records: 400\n"), 2, handler("b", true))
	errA, errB := make(chan error, 1), make(chan error, 1)
	// a starts alone and takes every partition; b joins mid-stream, so a
	// has partitions revoked while batches are in flight; then b leaves
	// mid-stream and a takes its partitions back.
	go func() { errA <- a.Run(context.Background()) }()
	require.Eventually(t, func() bool { return total.Load() > 500 }, 20*time.Second, 5*time.Millisecond)
	go func() { errB <- b.Run(context.Background()) }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(members["b"]) > 0
	}, 20*time.Second, 5*time.Millisecond, "b should get partitions")
	require.NoError(t, b.StopWithin(10*time.Second))
	require.NoError(t, <-errB)
	mu.Lock()
	atStop := len(seen)
	mu.Unlock()
	require.Less(t, atStop, n, "b must leave mid-stream")

	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == n }, 25*time.Second, 20*time.Millisecond)
	require.NoError(t, a.StopWithin(10*time.Second))
	require.NoError(t, <-errA)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, n, "no record lost")
	require.Len(t, members["a"], 8, "the survivor took over every partition")
	last := map[string]int{}
	for i := 0; i < n; i++ { // recompute each key's last seq as produced
		k := i % keys
		if i%7 == 0 {
			k = (i / 7) % keys
		}
		last["k"+strconv.Itoa(k)]++
	}
	require.Len(t, sink, len(last), "one row per key")
	for k, c := range last {
		require.Equal(t, c-1, sink[k], "key %s final effect", k)
	}
	dups := int(total.Load()) - n
	t.Logf("deliveries %d for %d records (%d duplicates, %d sink regressions)", total.Load(), n, dups, regress)
}

// TestOutputRoundTrip writes through the kafka output (key, header, explicit
// partition, compression, batching) and reads back through the kafka input.
func TestOutputRoundTrip(t *testing.T) {
	const n = 500
	addrs := newCluster(t, 4)
	b := service.NewStreamBuilder()
	require.NoError(t, b.SetYAML(fmt.Sprintf(`
input:
  generate:
    count: %d
    interval: ""
    mapping: 'root = {"id": counter(), "p": counter() %% 4}'
output:
  kafka:
    seed_brokers: [ %q ]
    topic: %s
    key: 'id-${! json("id") }'
    partition: '${! json("p") }'
    headers:
      source: gen
    compression: zstd
    max_in_flight: 4
    batching:
      count: 50
      period: 50ms
`, n, addrs[0], topic)))
	require.NoError(t, b.SetLoggerYAML(`level: warn`))
	s, err := b.Build()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, s.Run(ctx))

	var mu sync.Mutex
	got := map[string]string{}
	bad := []string{}
	in := buildStream(t, inputYAML(addrs, "roundtrip", ""), 1, func(_ context.Context, m *service.Message) error {
		v, _ := m.AsStructured()
		doc := v.(map[string]any)
		key, _ := m.MetaGet("kafka_key")
		p, _ := m.MetaGet("kafka_partition")
		src, _ := m.MetaGet("source")
		mu.Lock()
		defer mu.Unlock()
		if key != fmt.Sprintf("id-%v", doc["id"]) || p != fmt.Sprint(doc["p"]) || src != "gen" {
			bad = append(bad, fmt.Sprintf("key=%s partition=%s source=%s doc=%v", key, p, src, doc))
		}
		got[key] = p
		return nil
	})
	runUntil(t, in, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == n }, 20*time.Second)
	require.Empty(t, bad)
	require.Len(t, got, n)
}

// TestBadPartitionError: a non-numeric partition fails the write with a
// configuration error naming the value.
func TestBadPartitionError(t *testing.T) {
	addrs := newCluster(t, 1)
	b := service.NewStreamBuilder()
	require.NoError(t, b.SetLoggerYAML(`level: none`))
	pf, err := b.AddProducerFunc()
	require.NoError(t, err)
	require.NoError(t, b.AddOutputYAML(fmt.Sprintf(`
kafka:
  seed_brokers: [ %q ]
  topic: %s
  partition: '${! meta("p") }'
`, addrs[0], topic)))
	s, err := b.Build()
	require.NoError(t, err)
	go func() { _ = s.Run(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := service.NewMessage([]byte("x"))
	m.MetaSetMut("p", "zero")
	err = pf(ctx, m)
	require.ErrorContains(t, err, `partition "zero" is not a partition number`)
	require.ErrorContains(t, err, "invalid kafka configuration")
	require.NoError(t, s.StopWithin(5*time.Second))
}

// TestUnknownBrokerIsRetriedWithClearError: with no broker at the address,
// the input logs a classified connection error naming the address and keeps
// retrying instead of exiting.
func TestUnknownBrokerIsRetriedWithClearError(t *testing.T) {
	var logs testutil.Buffer
	b := service.NewStreamBuilder()
	require.NoError(t, b.AddInputYAML(inputYAML([]string{"127.0.0.1:1"}, "nobody", "")))
	require.NoError(t, b.AddConsumerFunc(func(context.Context, *service.Message) error { return nil }))
	b.SetLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	s, err := b.Build()
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()
	require.Eventually(t, func() bool {
		return strings.Count(logs.String(), "no kafka broker reachable") >= 2
	}, 15*time.Second, 50*time.Millisecond, "expected repeated connection attempts, logs: %s", logs.String())
	require.Contains(t, logs.String(), "127.0.0.1:1")
	require.Contains(t, logs.String(), "[connection]")
	require.NoError(t, s.StopWithin(5*time.Second))
	<-errc
}

func TestConfigLint(t *testing.T) {
	b := service.NewStreamBuilder()
	err := b.AddInputYAML(`
kafka:
  seed_brokers: []
  topics: []
  consumer_group: ""
  max_batch_records: 0
`)
	require.Error(t, err)
	for _, want := range []string{"at least one seed broker", "at least one topic", "consumer_group is required", "max_batch_records must be at least 1"} {
		require.ErrorContains(t, err, want)
	}

	badRegex := `
kafka:
  seed_brokers: [ localhost:9092 ]
  topics: [ "orders.([", "^fine\\..*" ]
  regexp_topics: true
  consumer_group: g
`
	b = service.NewStreamBuilder()
	err = b.AddInputYAML(badRegex)
	require.ErrorContains(t, err, `topic regex "orders.([" does not compile`, "a bad regex is a lint error")
	require.NotContains(t, err.Error(), "fine", "only the bad regex is reported")

	b = service.NewStreamBuilder()
	require.NoError(t, b.AddInputYAML(strings.Replace(badRegex, "regexp_topics: true", "regexp_topics: false", 1)),
		"plain topic names are not regexes")

	// Without linting, the input still refuses the regex when it is built.
	b = service.NewStreamBuilder()
	b.DisableLinting()
	require.NoError(t, b.AddInputYAML(badRegex))
	require.NoError(t, b.AddConsumerFunc(func(context.Context, *service.Message) error { return nil }))
	s, err := b.Build()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = s.Run(ctx)
	require.ErrorContains(t, err, `topic regex "orders.(["`)
	require.ErrorContains(t, err, "invalid kafka configuration")
}
