// Package kafkatest holds what the Kafka tests share.
package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CommittedOffsets asks the group coordinator at addrs for the offsets
// group has committed on partitions 0..partitions-1 of topic; partitions
// without a commit are absent.
func CommittedOffsets(t testing.TB, addrs []string, group, topic string, partitions int32) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	require.NoError(t, err)
	defer cl.Close()
	// Old brokers read the request's top-level topics, new ones its groups.
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	rgt := kmsg.NewOffsetFetchRequestGroupTopic()
	rgt.Topic = topic
	for p := int32(0); p < partitions; p++ {
		rt.Partitions = append(rt.Partitions, p)
		rgt.Partitions = append(rgt.Partitions, p)
	}
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group, rg.Topics = group, []kmsg.OffsetFetchRequestGroupTopic{rgt}
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group, req.Topics, req.Groups = group, []kmsg.OffsetFetchRequestTopic{rt}, []kmsg.OffsetFetchRequestGroup{rg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	require.NoError(t, err)
	out := map[int32]int64{}
	add := func(tp string, p int32, off int64) {
		if tp == topic && off >= 0 {
			out[p] = off
		}
	}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			add(rt.Topic, p.Partition, p.Offset)
		}
	}
	for _, g := range resp.Groups {
		for _, rt := range g.Topics {
			for _, p := range rt.Partitions {
				add(rt.Topic, p.Partition, p.Offset)
			}
		}
	}
	return out
}
