package kafka

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/internal/kafkautil"
)

const (
	kiFieldTopics         = "topics"
	kiFieldRegexp         = "regexp_topics"
	kiFieldGroup          = "consumer_group"
	kiFieldStartOffset    = "start_offset"
	kiFieldFetchMaxBytes  = "fetch_max_bytes"
	kiFieldFetchPartBytes = "fetch_max_partition_bytes"
	kiFieldMaxBatch       = "max_batch_records"
	kiFieldMaxBuffered    = "max_buffered_records"
	kiFieldCommitPeriod   = "commit_period"
	kiFieldDrainTimeout   = "rebalance_drain_timeout"
	kiFieldSessionTimeout = "session_timeout"

	// Metadata keys set on every message. Record headers are added too,
	// under their own names.
	MetaKey           = "kafka_key"
	MetaTopic         = "kafka_topic"
	MetaPartition     = "kafka_partition"
	MetaOffset        = "kafka_offset"
	MetaTimestamp     = "kafka_timestamp"
	MetaTimestampUnix = "kafka_timestamp_unix"
)

func kafkaInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Consumes Kafka topics as a consumer group, keeping order within each partition and committing offsets only after the pipeline acknowledges the records.").
		Description(`
Each batch holds consecutive records of one partition, and a partition's next batch is read only after the previous
one is acknowledged: records with the same key stay in order while different partitions are processed in parallel
(raise `+"`pipeline.threads`"+` to use them). A rejected batch is retried before anything later from its partition.

Offsets are committed every `+"`commit_period`"+`, when partitions are revoked and on shutdown, and never past a
record that has not been acknowledged. Delivery is therefore at least once: after a crash or a rebalance, records
processed but not yet committed are delivered again. `+"`max_buffered_records`"+` bounds the records read but not
yet acknowledged; when it is reached the input stops fetching, so a slow pipeline slows the consumer instead of
growing memory.

When partitions are revoked in a rebalance, no more of their records are handed out; batches already in flight get
`+"`rebalance_drain_timeout`"+` to be acknowledged and committed, after which they are abandoned uncommitted (the new
owner processes them again). Partitions lost on a fatal group error are abandoned without any commit.

An unreachable broker or rejected credentials fail the connection with a clear, classified error, and the
connection is retried.

Each message carries the metadata `+"`kafka_key`, `kafka_topic`, `kafka_partition`, `kafka_offset`, `kafka_timestamp` (RFC 3339), `kafka_timestamp_unix`"+`
and one entry per record header.`).
		Fields(seedBrokersField(),
			service.NewStringListField(kiFieldTopics).Description("Topics to consume, or regular expressions when `regexp_topics` is true.").
				Example([]string{"orders"}).Example([]string{`^events\..*`}).
				LintRule(`root = if this.length() == 0 { ["at least one topic is required"] }`),
			service.NewBoolField(kiFieldRegexp).Description("Treat `topics` as regular expressions; matching topics created later are picked up.").Default(false),
			service.NewStringField(kiFieldGroup).Description("Consumer group. Inputs with the same group share the partitions; the group's committed offsets are where a restart resumes.").
				Example("orders-to-postgres").
				LintRule(`root = if this == "" { ["consumer_group is required"] }`),
			service.NewStringAnnotatedEnumField(kiFieldStartOffset, map[string]string{
				"earliest": "Start from the oldest retained record.",
				"latest":   "Start from records produced after the group first joins.",
			}).Description("Where a group with no committed offset starts.").Default("earliest"),
			service.NewIntField(kiFieldFetchMaxBytes).Description("Maximum bytes one fetch may return (0 keeps the client default, 50 MiB).").
				Default(0).Advanced().LintRule(`root = if this < 0 { ["fetch_max_bytes cannot be negative"] }`),
			service.NewIntField(kiFieldFetchPartBytes).Description("Maximum bytes per partition in one fetch (0 keeps the client default, 1 MiB).").
				Default(0).Advanced().LintRule(`root = if this < 0 { ["fetch_max_partition_bytes cannot be negative"] }`),
			service.NewIntField(kiFieldMaxBatch).Description("Maximum records in one batch.").Default(500).
				LintRule(`root = if this < 1 { ["max_batch_records must be at least 1"] }`),
			service.NewIntField(kiFieldMaxBuffered).Description("Maximum records read and not yet acknowledged, across partitions; the backpressure bound.").
				Default(10000).Advanced().LintRule(`root = if this < 1 { ["max_buffered_records must be at least 1"] }`),
			service.NewDurationField(kiFieldCommitPeriod).Description("How often acknowledged offsets are committed.").Default("1s").Advanced(),
			service.NewDurationField(kiFieldDrainTimeout).Description("How long a rebalance waits for in-flight batches of revoked partitions.").
				Default("10s").Advanced(),
			service.NewDurationField(kiFieldSessionTimeout).Description("How long the group waits for a silent member (a crashed or killed engine) before giving its partitions to the others, or to the same engine restarted. Brokers accept 6s to 5m by default.").
				Default("45s").Example("10s").Advanced(),
		).
		Fields(clientFields()...).
		// Topic regexes are compiled here too (Bloblang and franz-go both use
		// Go's RE2 syntax), so `agentetl lint` rejects a bad one before start.
		LintRule(`root = if this.regexp_topics.or(false) && this.topics.type() == "array" {
  this.topics.filter(t -> "".re_match(t).catch(null) == null).map_each(t -> "topic regex %q does not compile (Go RE2 syntax expected)".format(t))
}`).
		Example("Orders in key order", "Consume a topic in a group, four partitions at a time.", `
input:
  kafka:
    seed_brokers: [ localhost:9092 ]
    topics: [ orders ]
    consumer_group: orders-to-postgres
pipeline:
  threads: 4
`)
}

func init() {
	service.MustRegisterBatchInput("kafka", kafkaInputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
			in, err := newKafkaInput(conf, mgr)
			if err != nil {
				return nil, err
			}
			return service.AutoRetryNacksBatched(in), nil
		})
}

type kafkaInput struct {
	cons *kafkautil.Consumer
	mu   sync.Mutex
	live bool
}

func newKafkaInput(conf *service.ParsedConfig, mgr *service.Resources) (*kafkaInput, error) {
	client, err := parseClient(conf)
	if err != nil {
		return nil, err
	}
	topics, err := conf.FieldStringList(kiFieldTopics)
	if err != nil {
		return nil, err
	}
	group, err := conf.FieldString(kiFieldGroup)
	if err != nil {
		return nil, err
	}
	opts := []kafkautil.ConsumerOpt{kafkautil.WithLogger(mgr.Logger())}
	if re, _ := conf.FieldBool(kiFieldRegexp); re {
		opts = append(opts, kafkautil.ConsumeRegex())
	}
	if start, _ := conf.FieldString(kiFieldStartOffset); start == "latest" {
		opts = append(opts, kafkautil.StartAtEnd())
	}
	ints := map[string]func(int) kafkautil.ConsumerOpt{
		kiFieldFetchMaxBytes:  func(n int) kafkautil.ConsumerOpt { return kafkautil.FetchMaxBytes(int32(n)) },
		kiFieldFetchPartBytes: func(n int) kafkautil.ConsumerOpt { return kafkautil.FetchMaxPartitionBytes(int32(n)) },
		kiFieldMaxBatch:       kafkautil.MaxBatchRecords,
		kiFieldMaxBuffered:    kafkautil.MaxBufferedRecords,
	}
	for field, opt := range ints {
		n, err := conf.FieldInt(field)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			opts = append(opts, opt(n))
		}
	}
	durs := map[string]func(time.Duration) kafkautil.ConsumerOpt{
		kiFieldCommitPeriod:   kafkautil.CommitInterval,
		kiFieldDrainTimeout:   kafkautil.RevokeDrainTimeout,
		kiFieldSessionTimeout: kafkautil.SessionTimeout,
	}
	for field, opt := range durs {
		d, err := conf.FieldDuration(field)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt(d))
	}
	cons, err := kafkautil.NewConsumer(client, group, topics, opts...)
	if err != nil {
		return nil, err
	}
	return &kafkaInput{cons: cons}, nil
}

func (k *kafkaInput) Connect(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.live {
		return nil
	}
	if err := k.cons.Start(ctx); err != nil {
		return err
	}
	k.live = true
	return nil
}

func (k *kafkaInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	b, err := k.cons.Next(ctx)
	if err != nil {
		if errors.Is(err, kafkautil.ErrClosed) {
			k.mu.Lock()
			k.live = false
			k.mu.Unlock()
			return nil, nil, service.ErrNotConnected
		}
		return nil, nil, err
	}
	batch := make(service.MessageBatch, len(b.Records))
	for i, r := range b.Records {
		m := service.NewMessage(r.Value)
		m.MetaSetMut(MetaKey, string(r.Key))
		m.MetaSetMut(MetaTopic, r.Topic)
		m.MetaSetMut(MetaPartition, strconv.Itoa(int(r.Partition)))
		m.MetaSetMut(MetaOffset, strconv.FormatInt(r.Offset, 10))
		m.MetaSetMut(MetaTimestamp, r.Timestamp.UTC().Format(time.RFC3339Nano))
		m.MetaSetMut(MetaTimestampUnix, strconv.FormatInt(r.Timestamp.Unix(), 10))
		for _, h := range r.Headers {
			m.MetaSetMut(h.Key, string(h.Value))
		}
		batch[i] = m
	}
	return batch, func(_ context.Context, err error) error {
		b.Ack(err)
		return nil
	}, nil
}

func (k *kafkaInput) Close(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.live = false
	return k.cons.Close(ctx)
}
