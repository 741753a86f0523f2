package discovery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/agentetl/agentetl/agents/discovery"
)

func kafkaCluster(t *testing.T, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// produce writes values to topic, keyed over 16 keys and spread evenly
// over the partitions; a nil value is a tombstone.
func produce(t *testing.T, addrs []string, topic string, values ...[]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%16)), Value: v}
	}
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
}

func jsonValues(n int, f func(i int) map[string]any) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		b, err := json.Marshal(f(i))
		if err != nil {
			panic(err)
		}
		out[i] = b
	}
	return out
}

func fieldTypes(md *discovery.SourceMetadata) map[string]string {
	out := map[string]string{}
	for _, f := range md.Schema.Fields {
		out[f.Name] = f.DataType
	}
	return out
}

// TestKafkaDiscoveryProfilesLatestMessages samples the newest messages of
// every topic without a consumer group, infers the JSON schema and profiles
// it, and reports non-JSON messages and tombstones in the sample method
// instead of failing.
func TestKafkaDiscoveryProfilesLatestMessages(t *testing.T) {
	addrs := kafkaCluster(t, kfake.SeedTopics(3, "orders"), kfake.SeedTopics(1, "quiet"))
	statuses := []string{"new", "paid", "shipped"}
	// Old messages have a different shape: with sample=300 they must not
	// be seen at all.
	produce(t, addrs, "orders", jsonValues(400, func(i int) map[string]any {
		return map[string]any{"legacy_id": i}
	})...)
	produce(t, addrs, "orders", jsonValues(1000, func(i int) map[string]any {
		m := map[string]any{"id": 1000 + i, "email": fmt.Sprintf("user%d@example.com", i), "amount": float64(i%500) + 0.25,
			"status": statuses[i%3], "created_at": time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC).Format(time.RFC3339)}
		if i%4 == 0 {
			m["note"] = nil
		} else {
			m["note"] = "n" + fmt.Sprint(i%7)
		}
		return m
	})...)
	produce(t, addrs, "orders", []byte("not json at all"), []byte(`{"id": 1, "trunc`), []byte(`[1,2,3]`), nil, nil)

	a := newAgent(t, discovery.Config{DSN: "kafka://" + strings.Join(addrs, ",") + "/?sample=300"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := a.Discover(ctx)
	require.NoError(t, err)
	require.Equal(t, "kafka", res.Connector)
	require.Empty(t, res.Skipped)
	require.Len(t, res.Tables, 2, "orders and quiet; no internal topics")

	orders := table(t, res, "orders")
	require.Equal(t, "topic", orders.Kind)
	require.Equal(t, "Kafka topic with 3 partitions", orders.Description)
	require.Equal(t, map[string]string{"id": "bigint", "email": "string", "amount": "double", "status": "string",
		"created_at": "timestamp", "note": "string"}, fieldTypes(orders), "legacy_id lies outside the newest 300 messages")
	for _, f := range orders.Schema.Fields {
		require.Equal(t, f.Name == "note", f.Nullable, "field %s", f.Name)
	}
	st := orders.Stats
	require.EqualValues(t, 1405, st.RowCount, "every retained message")
	require.True(t, st.Profiled)
	require.True(t, st.Sampled)
	require.EqualValues(t, 295, st.SampleSize, "300 sampled, 3 not JSON objects and 2 tombstones left out")
	require.Contains(t, st.SampleMethod, "latest 300 of 1405 messages across 3 partitions")
	require.Contains(t, st.SampleMethod, "3 not JSON objects (first at partition")
	require.Contains(t, st.SampleMethod, "2 tombstones")
	require.Equal(t, "email", st.Fields["email"].SemanticType)
	require.True(t, st.Fields["id"].DistinctEstimated)
	require.EqualValues(t, 1405, st.Fields["id"].DistinctCount, "unique in the sample, so estimated unique in the topic")
	require.Zero(t, st.Fields["id"].NullCount)
	require.InDelta(t, 0.25, st.Fields["note"].NullFraction, 0.05)
	require.Len(t, st.Fields["status"].TopValues, 3)
	var tops []string
	for _, v := range st.Fields["status"].TopValues {
		tops = append(tops, fmt.Sprint(v.Value))
	}
	require.ElementsMatch(t, statuses, tops)
	lo, err := st.Fields["id"].Min.(json.Number).Int64()
	require.NoError(t, err)
	require.GreaterOrEqual(t, lo, int64(1000+1000-300), "only the newest messages of each partition are sampled")

	quiet := table(t, res, "quiet")
	require.Empty(t, quiet.Schema.Fields)
	require.Zero(t, quiet.Stats.SampleSize)

	// Sampling never joined a group, so nothing was committed anywhere.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	require.NoError(t, err)
	defer cl.Close()
	groups, err := kmsg.NewPtrListGroupsRequest().RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Empty(t, groups.Groups, "discovery must not create consumer groups")
}

// TestKafkaDiscoveryDetectsDrift runs discovery with a store three times:
// a stable topic gives no change; once producers add a field and change a
// field's type, the newest sample shows both as schema changes against the
// catalog's previous version.
func TestKafkaDiscoveryDetectsDrift(t *testing.T) {
	addrs := kafkaCluster(t, kfake.SeedTopics(2, "events"))
	produce(t, addrs, "events", jsonValues(200, func(i int) map[string]any {
		return map[string]any{"id": i, "amount": i * 10, "kind": "click"}
	})...)
	store := newStore(t)
	a := newAgent(t, discovery.Config{DSN: "kafka://" + addrs[0] + "/?topics=events&sample=100"}, store)
	res := run(t, a)
	require.Len(t, res.Changes, 1, describeChanges(res.Changes))
	require.Equal(t, discovery.ChangeTableAdded, res.Changes[0].ChangeType)

	res = run(t, a)
	require.Empty(t, res.Changes, "same messages, same schema: %s", describeChanges(res.Changes))

	produce(t, addrs, "events", jsonValues(300, func(i int) map[string]any {
		m := map[string]any{"id": 200 + i, "amount": fmt.Sprintf("%d.50", i), "kind": "view"}
		if i%2 == 0 {
			m["coupon"] = fmt.Sprintf("C%03d", i)
		}
		return m
	})...)
	res = run(t, a)
	got := map[string]discovery.SchemaChange{}
	for _, c := range res.Changes {
		got[c.ChangeType+":"+c.Column] = c
	}
	require.Len(t, got, 2, describeChanges(res.Changes))
	added, ok := got[discovery.ChangeColumnAdded+":coupon"]
	require.True(t, ok, describeChanges(res.Changes))
	require.Equal(t, discovery.SeverityNonBreaking, added.Severity, "coupon is missing from some messages, so nullable")
	require.Equal(t, "string", added.After.DataType)
	typ, ok := got[discovery.ChangeTypeChanged+":amount"]
	require.True(t, ok, describeChanges(res.Changes))
	require.Equal(t, "bigint", typ.Before.DataType)
	require.Equal(t, "string", typ.After.DataType)
	require.Equal(t, discovery.TypeWidening, typ.TypeChange)
	require.Equal(t, 1, typ.FromVersion)
	require.Equal(t, 2, typ.ToVersion)
	require.NotEmpty(t, typ.ID)

	hist, err := store.GetSchemaHistory(context.Background(), discovery.EntityID(a.SourceID(), "events"))
	require.NoError(t, err)
	require.Len(t, hist, 2, "one version per distinct schema")

	res = run(t, a)
	require.Empty(t, res.Changes, describeChanges(res.Changes))
}

// TestKafkaDiscoveryBadSources: malformed DSNs are permanent errors naming
// the problem, an unreachable broker is a retryable connection error without
// the password, rejected credentials are permanent, and a named topic that
// does not exist is skipped with the reason.
func TestKafkaDiscoveryBadSources(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for dsn, want := range map[string]string{
		"kafka:///?topics=a":                 "no broker",
		"kafka://h:9092/?sample=0":           "sample=",
		"kafka://h:9092/?colour=blue":        `unknown option "colour"`,
		"kafka://h:9092/?sasl=GSSAPI":        "unknown SASL mechanism",
		"kafka://h:9092/orders":              "select topics with ?topics=a,b",
		"kafka://h:9092/?tls=maybe":          "tls=",
		"kafka://h:9092/?sasl=SCRAM-SHA-256": "sasl needs a user",
	} {
		_, err := discovery.OpenConnector(ctx, dsn, discovery.ConnectorOptions{})
		require.Error(t, err, dsn)
		require.ErrorContains(t, err, want, dsn)
		require.True(t, discovery.IsPermanent(err), "%s: %v", dsn, err)
	}

	_, err := discovery.OpenConnector(ctx, "kafka://user:hunter2pw@127.0.0.1:1/?timeout=2s", discovery.ConnectorOptions{})
	require.Error(t, err)
	require.ErrorContains(t, err, "no kafka broker reachable")
	require.ErrorContains(t, err, "127.0.0.1:1")
	require.NotContains(t, err.Error(), "hunter2pw")
	require.False(t, discovery.IsPermanent(err), "an unreachable broker may come back: %v", err)

	addrs := kafkaCluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "s3cret-pw"), kfake.SeedTopics(1, "t"))
	_, err = discovery.OpenConnector(ctx, "kafka://admin:wrong-pw@"+addrs[0]+"/", discovery.ConnectorOptions{})
	require.Error(t, err)
	require.ErrorContains(t, err, "authentication")
	require.NotContains(t, err.Error(), "wrong-pw")
	require.True(t, discovery.IsPermanent(err), "%v", err)

	a := newAgent(t, discovery.Config{DSN: "kafka://admin:s3cret-pw@" + addrs[0] + "/?topics=t,missing"}, nil)
	res, err := a.Discover(ctx)
	require.NoError(t, err)
	require.Len(t, res.Tables, 1)
	require.Equal(t, "t", res.Tables[0].Table)
	require.Equal(t, []discovery.SkippedTable{{Table: "missing", Reason: "topic does not exist"}}, res.Skipped)
}
