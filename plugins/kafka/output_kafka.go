package kafka

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentetl/agentetl/internal/kafkautil"
)

const (
	koFieldTopic       = "topic"
	koFieldKey         = "key"
	koFieldPartition   = "partition"
	koFieldHeaders     = "headers"
	koFieldCompression = "compression"
	koFieldMaxMsgBytes = "max_message_bytes"
	koFieldTimeout     = "timeout"
	koFieldBatching    = "batching"
)

func kafkaOutputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Writes messages to Kafka with an idempotent producer, acknowledging each batch only once every record is stored.").
		Description(`
The producer is idempotent: the broker discards duplicates caused by the client's own retries, and records of one
partition are stored in the order they were sent. Records are written with `+"`acks=all`"+`. Without `+"`partition`"+`,
the partition is chosen by hashing `+"`key`"+` (Kafka's murmur2, the same as the Java client), so records with the same
key land in the same partition and keep their order; records without a key are spread across partitions.

A failed batch is reported with a classified error (`+"`connection`, `timeout`, `authentication`, `permission`, `configuration`, `poison`"+`)
and retried by the pipeline; a batch that failed part way may be written again in full, so delivery is at least once.`).
		Fields(seedBrokersField(),
			service.NewInterpolatedStringField(koFieldTopic).Description("Topic to write to.").
				Example("orders").Example(`${! meta("kafka_topic") }`),
			service.NewInterpolatedStringField(koFieldKey).Description("Record key; empty writes no key.").
				Default("").Example(`${! json("id") }`),
			service.NewInterpolatedStringField(koFieldPartition).Description("Explicit partition number; empty partitions by key hash. When set, it must give an integer for every message.").
				Default("").Example(`${! meta("kafka_partition") }`).Advanced(),
			service.NewInterpolatedStringMapField(koFieldHeaders).Description("Record headers to add.").
				Default(map[string]any{}).Example(map[string]any{"source": `${! meta("source") }`}),
			service.NewStringEnumField(koFieldCompression, "none", "gzip", "snappy", "lz4", "zstd").
				Description("Compression of record batches.").Default("none"),
			service.NewIntField(koFieldMaxMsgBytes).Description("Maximum bytes of one record batch sent to a partition (0 keeps the client default, 1 MB).").
				Default(0).Advanced().LintRule(`root = if this < 0 { ["max_message_bytes cannot be negative"] }`),
			service.NewDurationField(koFieldTimeout).Description("How long a record may take to be acknowledged, retries included, before the batch fails.").
				Default("30s").Advanced(),
			service.NewOutputMaxInFlightField().Default(64),
			service.NewBatchPolicyField(koFieldBatching),
		).
		Fields(clientFields()...).
		Example("Keyed writes", "Write JSON documents keyed by id, compressed, in batches of 500.", `
output:
  kafka:
    seed_brokers: [ localhost:9092 ]
    topic: orders
    key: ${! json("id") }
    compression: zstd
    batching:
      count: 500
      period: 100ms
`)
}

func init() {
	service.MustRegisterBatchOutput("kafka", kafkaOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			var pol service.BatchPolicy
			mif, err := conf.FieldMaxInFlight()
			if err != nil {
				return nil, pol, 0, err
			}
			if pol, err = conf.FieldBatchPolicy(koFieldBatching); err != nil {
				return nil, pol, 0, err
			}
			out, err := newKafkaOutput(conf)
			return out, pol, mif, err
		})
}

type kafkaOutput struct {
	topic     *service.InterpolatedString
	key       *service.InterpolatedString
	partition *service.InterpolatedString
	headers   map[string]*service.InterpolatedString
	hasKey    bool
	prod      *kafkautil.Producer

	mu   sync.Mutex
	live bool
}

func newKafkaOutput(conf *service.ParsedConfig) (*kafkaOutput, error) {
	client, err := parseClient(conf)
	if err != nil {
		return nil, err
	}
	o := &kafkaOutput{}
	if o.topic, err = conf.FieldInterpolatedString(koFieldTopic); err != nil {
		return nil, err
	}
	if o.key, err = conf.FieldInterpolatedString(koFieldKey); err != nil {
		return nil, err
	}
	if o.partition, err = conf.FieldInterpolatedString(koFieldPartition); err != nil {
		return nil, err
	}
	if o.headers, err = conf.FieldInterpolatedStringMap(koFieldHeaders); err != nil {
		return nil, err
	}
	keyRaw, _ := conf.FieldString(koFieldKey)
	partRaw, _ := conf.FieldString(koFieldPartition)
	o.hasKey = keyRaw != ""
	var opts []kafkautil.ProducerOpt
	if partRaw != "" {
		opts = append(opts, kafkautil.ManualPartitions())
	}
	comp, err := conf.FieldString(koFieldCompression)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kafkautil.Compression(comp))
	n, err := conf.FieldInt(koFieldMaxMsgBytes)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		opts = append(opts, kafkautil.MaxMessageBytes(int32(n)))
	}
	timeout, err := conf.FieldDuration(koFieldTimeout)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kafkautil.ProduceTimeout(timeout))
	if o.prod, err = kafkautil.NewProducer(client, opts...); err != nil {
		return nil, err
	}
	if partRaw == "" {
		o.partition = nil
	}
	return o, nil
}

func (k *kafkaOutput) Connect(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.live {
		return nil
	}
	if err := k.prod.Start(ctx); err != nil {
		return err
	}
	k.live = true
	return nil
}

func (k *kafkaOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	recs := make([]*kgo.Record, len(batch))
	for i, m := range batch {
		value, err := m.AsBytes()
		if err != nil {
			return err
		}
		r := &kgo.Record{Value: value}
		if r.Topic, err = batch.TryInterpolatedString(i, k.topic); err != nil {
			return fmt.Errorf("topic interpolation: %w", err)
		}
		if r.Topic == "" {
			return kafkautil.ConfigError("message %d: topic interpolated to an empty string", i)
		}
		if k.hasKey {
			key, err := batch.TryInterpolatedBytes(i, k.key)
			if err != nil {
				return fmt.Errorf("key interpolation: %w", err)
			}
			r.Key = key
		}
		if k.partition != nil {
			s, err := batch.TryInterpolatedString(i, k.partition)
			if err != nil {
				return fmt.Errorf("partition interpolation: %w", err)
			}
			p, err := strconv.ParseInt(s, 10, 32)
			if err != nil || p < 0 {
				return kafkautil.ConfigError("message %d: partition %q is not a partition number", i, s)
			}
			r.Partition = int32(p)
		}
		for name, v := range k.headers {
			hv, err := batch.TryInterpolatedBytes(i, v)
			if err != nil {
				return fmt.Errorf("header %s interpolation: %w", name, err)
			}
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: name, Value: hv})
		}
		recs[i] = r
	}
	return k.prod.Produce(ctx, recs...)
}

func (k *kafkaOutput) Close(context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.live = false
	k.prod.Close()
	return nil
}
