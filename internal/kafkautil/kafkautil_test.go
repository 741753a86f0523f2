package kafkautil_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentetl/agentetl/internal/kafkautil"
	"github.com/agentetl/agentetl/internal/kafkautil/kafkatest"
)

func TestTrackerNeverPassesUnacked(t *testing.T) {
	tr := kafkautil.NewTracker()
	_, _, ok := tr.Committable()
	require.False(t, ok, "nothing is committable before an ack")

	a := tr.Track(9, 0)  // offsets 0..9
	b := tr.Track(19, 0) // 10..19
	c := tr.Track(29, 1) // 20..29

	require.False(t, tr.Ack(c), "a later batch alone must not move the cursor")
	require.False(t, tr.Ack(b))
	_, _, ok = tr.Committable()
	require.False(t, ok, "offset 0..9 is still unacknowledged")
	require.Equal(t, 3, tr.Pending())

	require.True(t, tr.Ack(a), "closing the gap folds in every acknowledged batch")
	off, epoch, ok := tr.Committable()
	require.True(t, ok)
	require.Equal(t, int64(30), off)
	require.Equal(t, int32(1), epoch)
	require.Equal(t, 0, tr.Pending())
	require.False(t, tr.Ack(a), "a repeated ack is a no-op")
}

func TestClassifyAndSentinels(t *testing.T) {
	err := kafkautil.Classify("produce", kafkautil.ErrProduce, errors.New("unable to dial: dial tcp 127.0.0.1:1: connect: connection refused"))
	require.ErrorIs(t, err, kafkautil.ErrNoBrokers)
	var ke *kafkautil.Error
	require.ErrorAs(t, err, &ke)
	require.Equal(t, kafkautil.CategoryConnection, ke.Category)
	require.True(t, ke.Retryable)

	err = kafkautil.ConfigError("bad %s", "thing")
	require.ErrorIs(t, err, kafkautil.ErrConfig)
	require.ErrorAs(t, err, &ke)
	require.Equal(t, kafkautil.CategoryConfiguration, ke.Category)
	require.False(t, ke.Retryable)

	_, err = kafkautil.SASLMechanism("GSSAPI", "u", "p")
	require.ErrorIs(t, err, kafkautil.ErrConfig)
	require.ErrorContains(t, err, "GSSAPI")
	m, err := kafkautil.SASLMechanism("scram-sha-512", "u", "p")
	require.NoError(t, err)
	require.Equal(t, "SCRAM-SHA-512", m.Name())
}

func TestBadConfigurationIsRejectedUpFront(t *testing.T) {
	client := kafkautil.ClientConfig{SeedBrokers: []string{"127.0.0.1:1"}}
	_, err := kafkautil.NewConsumer(client, "g", []string{"orders.(["}, kafkautil.ConsumeRegex())
	require.ErrorIs(t, err, kafkautil.ErrConfig)
	require.ErrorContains(t, err, `topic regex "orders.(["`)

	_, err = kafkautil.NewConsumer(client, "", []string{"t"})
	require.ErrorIs(t, err, kafkautil.ErrConfig)
	_, err = kafkautil.NewConsumer(kafkautil.ClientConfig{SeedBrokers: []string{" , "}}, "g", []string{"t"})
	require.ErrorContains(t, err, "no seed brokers")
	_, err = kafkautil.NewConsumer(client, "g", []string{"t"}, kafkautil.SessionTimeout(time.Second))
	require.ErrorIs(t, err, kafkautil.ErrConfig)
	require.ErrorContains(t, err, "between 6s and 5m")
	_, err = kafkautil.NewConsumer(client, "g", []string{"t"}, kafkautil.SessionTimeout(10*time.Second))
	require.NoError(t, err)
}

// TestConnectReachesClusterWithoutGroup: the plain client used by
// discovery answers for a live cluster and fails clearly for a dead one.
func TestConnectReachesClusterWithoutGroup(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	require.NoError(t, err)
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kafkautil.ClientConfig{SeedBrokers: cluster.ListenAddrs()}.Connect(ctx)
	require.NoError(t, err)
	cl.Close()

	_, err = kafkautil.ClientConfig{SeedBrokers: []string{"127.0.0.1:1"}}.Connect(ctx)
	require.ErrorIs(t, err, kafkautil.ErrNoBrokers)
	require.ErrorContains(t, err, "127.0.0.1:1")
}

func TestUnknownBrokerGivesClearRetryableError(t *testing.T) {
	client := kafkautil.ClientConfig{SeedBrokers: []string{"127.0.0.1:1"}}
	c, err := kafkautil.NewConsumer(client, "g", []string{"t"})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = c.Start(ctx)
	require.ErrorIs(t, err, kafkautil.ErrNoBrokers)
	require.ErrorContains(t, err, "127.0.0.1:1")
	var ke *kafkautil.Error
	require.ErrorAs(t, err, &ke)
	require.True(t, ke.Retryable)
	require.Equal(t, kafkautil.CategoryConnection, ke.Category)
	_, err = c.Next(ctx)
	require.ErrorIs(t, err, kafkautil.ErrClosed, "a consumer that never started hands out nothing")

	p, err := kafkautil.NewProducer(client)
	require.NoError(t, err)
	require.ErrorIs(t, p.Start(ctx), kafkautil.ErrNoBrokers)
}

func TestWrongSASLPasswordIsAuthentication(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "secret"), kfake.SeedTopics(1, "t"))
	require.NoError(t, err)
	defer cluster.Close()
	mech, err := kafkautil.SASLMechanism("PLAIN", "admin", "wrong")
	require.NoError(t, err)
	p, err := kafkautil.NewProducer(kafkautil.ClientConfig{SeedBrokers: cluster.ListenAddrs(), SASL: mech})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = p.Start(ctx)
	require.ErrorIs(t, err, kafkautil.ErrAuthentication)
	var ke *kafkautil.Error
	require.ErrorAs(t, err, &ke)
	require.Equal(t, kafkautil.CategoryAuthentication, ke.Category)
	require.False(t, ke.Retryable)

	good, err := kafkautil.SASLMechanism("PLAIN", "admin", "secret")
	require.NoError(t, err)
	p, err = kafkautil.NewProducer(kafkautil.ClientConfig{SeedBrokers: cluster.ListenAddrs(), SASL: good})
	require.NoError(t, err)
	require.NoError(t, p.Start(ctx))
	require.NoError(t, p.Produce(ctx, &kgo.Record{Topic: "t", Value: []byte("x")}))
	p.Close()
}

// TestConsumerCommitsOnlyAcknowledgedPrefix hands out batches, acknowledges
// only some, closes, and checks both the committed offsets and what a
// restarted member of the same group receives.
func TestConsumerCommitsOnlyAcknowledgedPrefix(t *testing.T) {
	const parts, perPart = 4, 300
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, "orders"))
	require.NoError(t, err)
	defer cluster.Close()
	addrs := cluster.ListenAddrs()

	prod, err := kafkautil.NewProducer(kafkautil.ClientConfig{SeedBrokers: addrs}, kafkautil.ManualPartitions())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, prod.Start(ctx))
	var recs []*kgo.Record
	for p := int32(0); p < parts; p++ {
		for i := 0; i < perPart; i++ {
			recs = append(recs, &kgo.Record{Topic: "orders", Partition: p, Value: []byte(fmt.Sprintf("%d-%d", p, i))})
		}
	}
	require.NoError(t, prod.Produce(ctx, recs...))
	prod.Close()

	client := kafkautil.ClientConfig{SeedBrokers: addrs}
	c, err := kafkautil.NewConsumer(client, "g1", []string{"orders"}, kafkautil.MaxBatchRecords(50), kafkautil.CommitInterval(50*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))

	// Per partition: ack batches until the one starting at offset >= 100,
	// which is left unacknowledged; the partition then hands out nothing more.
	firstUnacked := map[int32]int64{}
	held := map[int32]*kafkautil.Batch{}
	expect := map[int32]int64{} // next offset each partition must hand out
	nacked := false
	for len(held) < parts {
		b, err := c.Next(ctx)
		require.NoError(t, err)
		_, dup := held[b.Partition]
		require.False(t, dup, "partition %d handed out a batch while one was in flight", b.Partition)
		first := b.Records[0].Offset
		require.Equal(t, expect[b.Partition], first, "partition %d out of order", b.Partition)
		if first >= 100 {
			held[b.Partition] = b
			firstUnacked[b.Partition] = first
			continue
		}
		if first == 50 && b.Partition == 0 && !nacked {
			nacked = true
			b.Ack(errors.New("transient")) // the same records must come again first
			continue
		}
		expect[b.Partition] = b.Records[len(b.Records)-1].Offset + 1
		b.Ack(nil)
	}
	require.True(t, nacked)
	require.Eventually(t, func() bool {
		got := kafkatest.CommittedOffsets(t, addrs, "g1", "orders", parts)
		return len(got) == parts && got[0] == firstUnacked[0]
	}, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, c.Close(ctx))
	held[1].Ack(nil) // a late ack after close must not commit anything

	got := kafkatest.CommittedOffsets(t, addrs, "g1", "orders", parts)
	for p := int32(0); p < parts; p++ {
		require.Equal(t, firstUnacked[p], got[p], "partition %d: commit must stop at the first unacknowledged record", p)
	}

	// A restarted member resumes exactly at the first unacknowledged record.
	c2, err := kafkautil.NewConsumer(client, "g1", []string{"orders"}, kafkautil.MaxBatchRecords(1000))
	require.NoError(t, err)
	require.NoError(t, c2.Start(ctx))
	defer c2.Close(context.Background())
	seen := map[int32]int{}
	total := 0
	for total < parts*perPart-int(firstUnacked[0]+firstUnacked[1]+firstUnacked[2]+firstUnacked[3]) {
		b, err := c2.Next(ctx)
		require.NoError(t, err)
		if _, ok := seen[b.Partition]; !ok {
			require.Equal(t, firstUnacked[b.Partition], b.Records[0].Offset, "partition %d resumed at the wrong offset", b.Partition)
		}
		for i, r := range b.Records {
			require.Equal(t, b.Records[0].Offset+int64(i), r.Offset, "records of a batch are consecutive")
		}
		seen[b.Partition] += len(b.Records)
		total += len(b.Records)
		b.Ack(nil)
	}
	for p := int32(0); p < parts; p++ {
		require.Equal(t, perPart-int(firstUnacked[p]), seen[p])
	}
}

// TestRevokedInFlightBatchIsAbandonedNotCommitted: member 1 holds a batch
// unacknowledged when member 2 joins. After the drain timeout member 1
// abandons it; member 2 receives those records, and member 1's late
// acknowledgement never commits (it would rewind member 2's progress).
func TestRevokedInFlightBatchIsAbandonedNotCommitted(t *testing.T) {
	const parts, perPart = 2, 100
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, "orders"))
	require.NoError(t, err)
	defer cluster.Close()
	addrs := cluster.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	prod, err := kafkautil.NewProducer(kafkautil.ClientConfig{SeedBrokers: addrs}, kafkautil.ManualPartitions())
	require.NoError(t, err)
	require.NoError(t, prod.Start(ctx))
	for p := int32(0); p < parts; p++ {
		for i := 0; i < perPart; i++ {
			require.NoError(t, prod.Produce(ctx, &kgo.Record{Topic: "orders", Partition: p, Value: []byte("v")}))
		}
	}
	prod.Close()

	client := kafkautil.ClientConfig{SeedBrokers: addrs}
	fast := kafkautil.WithClientOpts(kgo.HeartbeatInterval(100*time.Millisecond), kgo.Balancers(kgo.RangeBalancer()))
	c1, err := kafkautil.NewConsumer(client, "g", []string{"orders"}, fast, kafkautil.MaxBatchRecords(30),
		kafkautil.CommitInterval(20*time.Millisecond), kafkautil.RevokeDrainTimeout(300*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, c1.Start(ctx))
	defer c1.Close(context.Background())

	// c1 acknowledges the first batch of each partition and holds the second.
	held := map[int32]*kafkautil.Batch{}
	for len(held) < parts {
		b, err := c1.Next(ctx)
		require.NoError(t, err)
		if b.Records[0].Offset == 0 {
			b.Ack(nil)
			continue
		}
		require.Equal(t, int64(30), b.Records[0].Offset)
		held[b.Partition] = b
	}
	require.Eventually(t, func() bool {
		got := kafkatest.CommittedOffsets(t, addrs, "g", "orders", parts)
		return got[0] == 30 && got[1] == 30
	}, 5*time.Second, 20*time.Millisecond)

	c2, err := kafkautil.NewConsumer(client, "g", []string{"orders"}, fast, kafkautil.MaxBatchRecords(1000), kafkautil.CommitInterval(20*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, c2.Start(ctx))
	defer c2.Close(context.Background())

	// With the range balancer one partition moves to c2, which must start at
	// the committed offset 30: the held records are redelivered, not lost.
	b, err := c2.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(30), b.Records[0].Offset)
	moved := b.Partition
	got := 0
	for {
		got += len(b.Records)
		b.Ack(nil)
		if got == perPart-30 {
			break
		}
		b, err = c2.Next(ctx)
		require.NoError(t, err)
		require.Equal(t, moved, b.Partition)
	}
	require.Eventually(t, func() bool {
		return kafkatest.CommittedOffsets(t, addrs, "g", "orders", parts)[moved] == perPart
	}, 5*time.Second, 20*time.Millisecond)

	// c1's late ack of the abandoned batch must not rewind c2's commit.
	held[moved].Ack(nil)
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, int64(perPart), kafkatest.CommittedOffsets(t, addrs, "g", "orders", parts)[moved])

	// The range balancer is eager: c1 lost the other partition too and got
	// it back in the new generation. Its held batch belongs to the old
	// assignment, so its ack commits nothing; the records come again.
	kept := 1 - moved
	held[kept].Ack(nil)
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, int64(30), kafkatest.CommittedOffsets(t, addrs, "g", "orders", parts)[kept])
	b, err = c1.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, kept, b.Partition)
	require.Equal(t, int64(30), b.Records[0].Offset)
	for b.Ack(nil); b.Records[len(b.Records)-1].Offset < perPart-1; b.Ack(nil) {
		b, err = c1.Next(ctx)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		return kafkatest.CommittedOffsets(t, addrs, "g", "orders", parts)[kept] == perPart
	}, 5*time.Second, 20*time.Millisecond)
}
