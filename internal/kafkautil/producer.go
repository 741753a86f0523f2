package kafkautil

import (
	"context"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ProducerOpt configures a Producer.
type ProducerOpt func(*producerCfg)

type producerCfg struct {
	manualPartition bool
	compression     []kgo.CompressionCodec
	maxMessageBytes int32
	linger          time.Duration
	timeout         time.Duration
	extra           []kgo.Opt
}

// ManualPartitions makes every record go to the partition set on it, for
// outputs with an explicit partition expression; otherwise records are
// partitioned by key hash (Kafka's murmur2, compatible with the Java client).
func ManualPartitions() ProducerOpt { return func(c *producerCfg) { c.manualPartition = true } }

// Compression sets the batch compression codec: none, gzip, snappy, lz4 or
// zstd.
func Compression(name string) ProducerOpt {
	return func(c *producerCfg) {
		switch strings.ToLower(name) {
		case "gzip":
			c.compression = []kgo.CompressionCodec{kgo.GzipCompression()}
		case "snappy":
			c.compression = []kgo.CompressionCodec{kgo.SnappyCompression()}
		case "lz4":
			c.compression = []kgo.CompressionCodec{kgo.Lz4Compression()}
		case "zstd":
			c.compression = []kgo.CompressionCodec{kgo.ZstdCompression()}
		default:
			c.compression = []kgo.CompressionCodec{kgo.NoCompression()}
		}
	}
}

// MaxMessageBytes caps the size of one produced record batch.
func MaxMessageBytes(n int32) ProducerOpt { return func(c *producerCfg) { c.maxMessageBytes = n } }

// Linger lets the client wait this long to fill record batches.
func Linger(d time.Duration) ProducerOpt { return func(c *producerCfg) { c.linger = d } }

// ProduceTimeout bounds how long one record may take to be acknowledged,
// retries included (default 30s), so a dead cluster surfaces as an error
// instead of a hang.
func ProduceTimeout(d time.Duration) ProducerOpt { return func(c *producerCfg) { c.timeout = d } }

// WithProducerClientOpts appends raw franz-go options.
func WithProducerClientOpts(opts ...kgo.Opt) ProducerOpt {
	return func(c *producerCfg) { c.extra = append(c.extra, opts...) }
}

// Producer is an idempotent producer: each partition's records carry a
// producer id and sequence numbers, so the broker drops duplicates created by
// the client's own retries and keeps per-partition order.
type Producer struct {
	client ClientConfig
	cfg    producerCfg
	cl     *kgo.Client
}

// NewProducer validates the configuration; Start connects.
func NewProducer(client ClientConfig, opts ...ProducerOpt) (*Producer, error) {
	cfg := producerCfg{timeout: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	if _, err := client.opts(); err != nil {
		return nil, err
	}
	return &Producer{client: client, cfg: cfg}, nil
}

// Start creates the client and checks that a broker answers.
func (p *Producer) Start(ctx context.Context) error {
	opts, err := p.client.opts()
	if err != nil {
		return err
	}
	// Idempotence is franz-go's default; it requires acks from all in-sync
	// replicas, which is also what makes an acknowledged write durable.
	opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(p.cfg.timeout))
	if p.cfg.manualPartition {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	} else {
		opts = append(opts, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	}
	if len(p.cfg.compression) > 0 {
		opts = append(opts, kgo.ProducerBatchCompression(p.cfg.compression...))
	}
	if p.cfg.maxMessageBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(p.cfg.maxMessageBytes))
	}
	if p.cfg.linger > 0 {
		opts = append(opts, kgo.ProducerLinger(p.cfg.linger))
	}
	opts = append(opts, p.cfg.extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return Classify("connect", ErrConfig, err)
	}
	if err := ping(ctx, cl, p.client); err != nil {
		cl.Close()
		return err
	}
	p.cl = cl
	return nil
}

// Produce writes records and waits until all are acknowledged. The first
// failure is returned classified (*Error wrapping ErrProduce, ErrNoBrokers,
// ErrAuthentication...). Records of a failed call may be partly written;
// the caller retries the whole batch, which may duplicate the written ones.
func (p *Producer) Produce(ctx context.Context, recs ...*kgo.Record) error {
	if p.cl == nil {
		return &Error{Op: "produce", Category: CategoryConnection, Retryable: true, Kind: ErrNoBrokers, Err: kgo.ErrClientClosed}
	}
	res := p.cl.ProduceSync(ctx, recs...)
	for _, r := range res {
		if r.Err != nil {
			return Classify("produce to "+r.Record.Topic, ErrProduce, r.Err)
		}
	}
	return nil
}

// Close flushes nothing (Produce is synchronous) and closes the client.
func (p *Producer) Close() {
	if p.cl != nil {
		p.cl.Close()
		p.cl = nil
	}
}
