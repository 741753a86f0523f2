package kafkautil

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Logger receives the consumer's operational messages; *service.Logger
// satisfies it.
type Logger interface {
	Debugf(format string, args ...any)
	Infof(format string, args ...any)
	Warnf(format string, args ...any)
}

type nopLogger struct{}

func (nopLogger) Debugf(string, ...any) {}
func (nopLogger) Infof(string, ...any)  {}
func (nopLogger) Warnf(string, ...any)  {}

// ConsumerOpt configures a Consumer.
type ConsumerOpt func(*consumerCfg)

type consumerCfg struct {
	regex          bool
	atEnd          bool
	maxBatch       int
	maxBuffered    int
	fetchMax       int32
	fetchPartMax   int32
	commitInterval time.Duration
	drainTimeout   time.Duration
	sessionTimeout time.Duration
	log            Logger
	extra          []kgo.Opt
}

// ConsumeRegex treats every topic as a regular expression matched against
// the cluster's topics; new matching topics are picked up on metadata refresh.
func ConsumeRegex() ConsumerOpt { return func(c *consumerCfg) { c.regex = true } }

// StartAtEnd makes a group with no committed offset start at the newest
// record instead of the oldest.
func StartAtEnd() ConsumerOpt { return func(c *consumerCfg) { c.atEnd = true } }

// MaxBatchRecords caps the records in one handed-out batch (default 500).
func MaxBatchRecords(n int) ConsumerOpt { return func(c *consumerCfg) { c.maxBatch = n } }

// MaxBufferedRecords bounds the records polled but not yet acknowledged,
// across all partitions (default 10000). When it is reached the consumer
// stops polling, which is how a slow pipeline pushes back on Kafka.
func MaxBufferedRecords(n int) ConsumerOpt { return func(c *consumerCfg) { c.maxBuffered = n } }

// FetchMaxBytes sets the maximum bytes a broker returns for one fetch.
func FetchMaxBytes(n int32) ConsumerOpt { return func(c *consumerCfg) { c.fetchMax = n } }

// FetchMaxPartitionBytes sets the maximum bytes per partition in one fetch.
func FetchMaxPartitionBytes(n int32) ConsumerOpt { return func(c *consumerCfg) { c.fetchPartMax = n } }

// CommitInterval sets how often acknowledged offsets are committed (default
// 1s). Offsets are also committed when partitions are revoked and on Close.
func CommitInterval(d time.Duration) ConsumerOpt {
	return func(c *consumerCfg) { c.commitInterval = d }
}

// RevokeDrainTimeout bounds how long a rebalance waits for in-flight batches
// of revoked partitions to be acknowledged before abandoning them (default
// 10s). Abandoned batches are not committed, so the new owner reprocesses
// them: a duplicate, never a loss.
func RevokeDrainTimeout(d time.Duration) ConsumerOpt {
	return func(c *consumerCfg) { c.drainTimeout = d }
}

// SessionTimeout sets how long the group waits without a heartbeat before it
// considers a member dead and gives its partitions to the others (franz-go's
// and Kafka's default is 45s). A crashed consumer's partitions, including
// those of a consumer that is restarted at once, are processed again only
// after this time, so shorter values speed up recovery at the cost of
// tolerating shorter pauses. Heartbeats are sent at a third of it, at most
// every 3s.
func SessionTimeout(d time.Duration) ConsumerOpt {
	return func(c *consumerCfg) { c.sessionTimeout = d }
}

// WithLogger sets the logger.
func WithLogger(l Logger) ConsumerOpt { return func(c *consumerCfg) { c.log = l } }

// WithClientOpts appends raw franz-go options, for tests and tuning.
func WithClientOpts(opts ...kgo.Opt) ConsumerOpt {
	return func(c *consumerCfg) { c.extra = append(c.extra, opts...) }
}

type tp struct {
	topic     string
	partition int32
}

// partition is the consumer's state for one assigned partition.
type partition struct {
	tp
	queue     []*kgo.Record // polled, not yet handed out
	retry     *Batch        // nacked batch to hand out again first
	inFlight  bool          // a batch is with the pipeline
	inFlightN int           // records in that batch
	readied   bool          // in the ready list
	revoking  bool          // no more hand-outs; draining the in-flight batch
	gone      bool          // revoked or lost: acks no longer commit
	tracker   *Tracker
	committed int64 // last offset committed for this partition, -1 for none
}

// Batch is a run of consecutive records from one partition. Exactly one
// batch per partition is outstanding at a time; Ack releases the next one.
type Batch struct {
	Topic     string
	Partition int32
	Records   []*kgo.Record

	c    *Consumer
	st   *partition
	seq  uint64
	once sync.Once
}

// Ack reports the outcome of the batch. nil marks its records done (they
// are committed at the next commit); an error hands the same batch out again
// before anything later from its partition, preserving order. Only the first
// call counts.
func (b *Batch) Ack(err error) {
	b.once.Do(func() { b.c.ack(b, err) })
}

// Consumer is a group consumer that hands out per-partition batches and
// commits only acknowledged offsets.
type Consumer struct {
	client ClientConfig
	group  string
	topics []string
	cfg    consumerCfg

	cl       *kgo.Client
	cancel   context.CancelFunc
	pollDone chan struct{}
	commDone chan struct{}

	mu       sync.Mutex
	parts    map[tp]*partition
	ready    []*partition
	buffered int // records polled and not yet acknowledged
	closing  bool
	pollErr  error

	wake   chan struct{} // something became ready
	space  chan struct{} // buffered dropped
	idle   chan struct{} // an in-flight batch finished
	commMu sync.Mutex    // serialises commits with revocation
}

// NewConsumer validates the configuration; Start connects.
func NewConsumer(client ClientConfig, group string, topics []string, opts ...ConsumerOpt) (*Consumer, error) {
	cfg := consumerCfg{maxBatch: 500, maxBuffered: 10000, commitInterval: time.Second, drainTimeout: 10 * time.Second, log: nopLogger{}}
	for _, o := range opts {
		o(&cfg)
	}
	if group == "" {
		return nil, ConfigError("consumer group is required")
	}
	if len(topics) == 0 {
		return nil, ConfigError("at least one topic is required")
	}
	if cfg.regex {
		for _, t := range topics {
			if _, err := regexp.Compile(t); err != nil {
				return nil, ConfigError("topic regex %q: %v", t, err)
			}
		}
	}
	if d := cfg.sessionTimeout; d != 0 && (d < 6*time.Second || d > 5*time.Minute) {
		return nil, ConfigError("session timeout %s: must be between 6s and 5m, the range brokers accept by default", d)
	}
	if cfg.maxBatch < 1 || cfg.maxBuffered < 1 {
		return nil, ConfigError("max batch records and max buffered records must be at least 1")
	}
	if _, err := client.opts(); err != nil {
		return nil, err
	}
	return &Consumer{client: client, group: group, topics: topics, cfg: cfg}, nil
}

// Start creates the client, checks that a broker answers and starts
// polling. It returns ErrNoBrokers or ErrAuthentication (inside *Error) when
// the cluster cannot be used; the caller may retry Start after Close.
func (c *Consumer) Start(ctx context.Context) error {
	opts, err := c.client.opts()
	if err != nil {
		return err
	}
	reset := kgo.NewOffset().AtStart()
	if c.cfg.atEnd {
		reset = kgo.NewOffset().AtEnd()
	}
	opts = append(opts,
		kgo.ConsumerGroup(c.group),
		kgo.ConsumeTopics(c.topics...),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		// Polled records are moved into partition state before a rebalance
		// may run, so a revoked partition never receives stale records.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
	)
	if c.cfg.regex {
		opts = append(opts, kgo.ConsumeRegex())
	}
	if d := c.cfg.sessionTimeout; d > 0 {
		opts = append(opts, kgo.SessionTimeout(d), kgo.HeartbeatInterval(min(d/3, 3*time.Second)))
	}
	if c.cfg.fetchMax > 0 {
		opts = append(opts, kgo.FetchMaxBytes(c.cfg.fetchMax))
	}
	if c.cfg.fetchPartMax > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(c.cfg.fetchPartMax))
	}
	opts = append(opts, c.cfg.extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return Classify("connect", ErrConfig, err)
	}
	if err := ping(ctx, cl, c.client); err != nil {
		cl.Close()
		return err
	}
	pctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	c.cl, c.cancel = cl, cancel
	c.parts = map[tp]*partition{}
	c.ready, c.buffered, c.closing, c.pollErr = nil, 0, false, nil
	c.wake, c.space, c.idle = make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{}, 1)
	c.pollDone, c.commDone = make(chan struct{}), make(chan struct{})
	c.mu.Unlock()
	go c.pollLoop(pctx, cl)
	go c.commitLoop(pctx)
	return nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("kafka consumer closed")

// Next blocks until a partition has a batch ready and returns it.
func (c *Consumer) Next(ctx context.Context) (*Batch, error) {
	for {
		c.mu.Lock()
		if c.closing || c.cl == nil {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if b := c.takeLocked(); b != nil {
			c.mu.Unlock()
			return b, nil
		}
		wake := c.wake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// takeLocked cuts a batch from the first ready partition.
func (c *Consumer) takeLocked() *Batch {
	for len(c.ready) > 0 {
		st := c.ready[0]
		c.ready = c.ready[1:]
		st.readied = false
		if st.gone || st.revoking || st.inFlight {
			continue
		}
		if b := st.retry; b != nil {
			st.retry = nil
			st.inFlight, st.inFlightN = true, len(b.Records)
			b.once = sync.Once{}
			return b
		}
		if len(st.queue) == 0 {
			continue
		}
		n := min(len(st.queue), c.cfg.maxBatch)
		recs := st.queue[:n:n]
		st.queue = st.queue[n:]
		last := recs[n-1]
		st.inFlight, st.inFlightN = true, n
		return &Batch{Topic: st.topic, Partition: st.partition, Records: recs, c: c, st: st,
			seq: st.tracker.Track(last.Offset, last.LeaderEpoch)}
	}
	return nil
}

func (c *Consumer) readyLocked(st *partition) {
	if st.readied || st.inFlight || st.gone || st.revoking || (st.retry == nil && len(st.queue) == 0) {
		return
	}
	st.readied = true
	c.ready = append(c.ready, st)
	signal(c.wake)
}

func (c *Consumer) ack(b *Batch, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := b.st
	if st.gone {
		// The partition left us and forget already released its records
		// from the buffer count. Nothing is committed for it any more.
		return
	}
	st.inFlight, st.inFlightN = false, 0
	signal(c.idle)
	if st.revoking {
		// Draining for a rebalance: a success is committed by onRevoked, a
		// failure is left for the partition's next owner.
		if err == nil {
			st.tracker.Ack(b.seq)
		}
		c.buffered -= len(b.Records)
		signal(c.space)
		return
	}
	if err != nil {
		st.retry = b
		c.readyLocked(st)
		return
	}
	st.tracker.Ack(b.seq)
	c.buffered -= len(b.Records)
	signal(c.space)
	c.readyLocked(st)
}

func (c *Consumer) pollLoop(ctx context.Context, cl *kgo.Client) {
	defer close(c.pollDone)
	for {
		c.mu.Lock()
		free := c.cfg.maxBuffered - c.buffered
		space := c.space
		c.mu.Unlock()
		if free <= 0 {
			select {
			case <-space:
				continue
			case <-ctx.Done():
				return
			}
		}
		fetches := cl.PollRecords(ctx, free)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			cl.AllowRebalance()
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			err = Classify("consume "+topic, ErrNoBrokers, err)
			c.cfg.log.Warnf("%v (partition %d)", err, p)
			c.mu.Lock()
			c.pollErr = err
			c.mu.Unlock()
		})
		c.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			st := c.parts[tp{p.Topic, p.Partition}]
			if st == nil || st.gone || st.revoking {
				return
			}
			st.queue = append(st.queue, p.Records...)
			c.buffered += len(p.Records)
			c.readyLocked(st)
		})
		c.mu.Unlock()
		cl.AllowRebalance()
	}
}

// LastError is the most recent fetch error, for health reporting; fetch
// errors are retried by the client.
func (c *Consumer) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pollErr
}

func (c *Consumer) commitLoop(ctx context.Context) {
	defer close(c.commDone)
	t := time.NewTicker(c.cfg.commitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.commit(nil); err != nil {
				c.cfg.log.Warnf("%v", err)
			}
		}
	}
}

// commit synchronously commits the acknowledged offsets of only (or of every
// live partition when only is nil). Holding commMu orders it with
// revocation, so a stale snapshot can never be committed after a partition
// has moved to another member.
func (c *Consumer) commit(only map[tp]*partition) error {
	c.commMu.Lock()
	defer c.commMu.Unlock()
	return c.commitLocked(only)
}

func (c *Consumer) commitLocked(only map[tp]*partition) error {
	c.mu.Lock()
	set := only
	if set == nil {
		set = c.parts
	}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	sts := map[tp]*partition{}
	for k, st := range set {
		if st.gone {
			continue
		}
		off, epoch, ok := st.tracker.Committable()
		if !ok || off <= st.committed {
			continue
		}
		if offsets[k.topic] == nil {
			offsets[k.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[k.topic][k.partition] = kgo.EpochOffset{Epoch: epoch, Offset: off}
		sts[k] = st
	}
	cl := c.cl
	c.mu.Unlock()
	if len(offsets) == 0 || cl == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rerr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					if rerr == nil {
						rerr = kerr.ErrorForCode(p.ErrorCode)
					}
					continue
				}
				if st := sts[tp{t.Topic, p.Partition}]; st != nil {
					st.committed = offsets[t.Topic][p.Partition].Offset
				}
			}
		}
	})
	return Classify("commit", ErrCommit, rerr)
}

func (c *Consumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, ps := range assigned {
		for _, p := range ps {
			k := tp{topic, p}
			c.parts[k] = &partition{tp: k, tracker: NewTracker(), committed: -1}
		}
	}
	c.cfg.log.Debugf("kafka group %s: assigned %v", c.group, assigned)
}

// onRevoked stops handing out the revoked partitions, waits (bounded) for
// their in-flight batches, commits what was acknowledged and forgets them.
// It runs before the group moves the partitions, so the commit lands before
// the new owner fetches its starting offset.
func (c *Consumer) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	c.commMu.Lock()
	defer c.commMu.Unlock()
	set := c.detach(revoked)
	if len(set) == 0 {
		return
	}
	deadline := time.NewTimer(c.cfg.drainTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		busy := 0
		for _, st := range set {
			if st.inFlight {
				busy++
			}
		}
		closing, idle := c.closing, c.idle
		c.mu.Unlock()
		if busy == 0 || closing {
			break
		}
		select {
		case <-idle:
			continue
		case <-deadline.C:
			c.cfg.log.Warnf("kafka group %s: %d revoked partitions still in flight after %s; abandoning them uncommitted", c.group, busy, c.cfg.drainTimeout)
		}
		break
	}
	if err := c.commitLocked(set); err != nil {
		c.cfg.log.Warnf("commit on revoke: %v", err)
	}
	c.forget(set)
	c.cfg.log.Debugf("kafka group %s: revoked %v", c.group, revoked)
}

// onLost forgets the partitions without committing: the group has already
// given them away, so any commit could rewind the new owner.
func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.commMu.Lock()
	defer c.commMu.Unlock()
	c.forget(c.detach(lost))
	c.cfg.log.Warnf("kafka group %s: lost %v", c.group, lost)
}

// detach marks partitions revoking and drops their queued records.
func (c *Consumer) detach(which map[string][]int32) map[tp]*partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	set := map[tp]*partition{}
	for topic, ps := range which {
		for _, p := range ps {
			k := tp{topic, p}
			st := c.parts[k]
			if st == nil {
				continue
			}
			st.revoking = true
			c.buffered -= len(st.queue)
			if st.retry != nil {
				c.buffered -= len(st.retry.Records)
				st.retry = nil
			}
			st.queue = nil
			set[k] = st
		}
	}
	signal(c.space)
	return set
}

func (c *Consumer) forget(set map[tp]*partition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, st := range set {
		if st.inFlight {
			// Abandoned: its records no longer count against the buffer,
			// and its late ack will be ignored.
			c.buffered -= st.inFlightN
			st.inFlight, st.inFlightN = false, 0
		}
		st.gone = true
		if c.parts[k] == st {
			delete(c.parts, k)
		}
	}
	signal(c.space)
}

// Close commits what was acknowledged, leaves the group and stops. Batches
// still in flight are not committed: after a restart they are redelivered.
func (c *Consumer) Close(ctx context.Context) error {
	c.mu.Lock()
	cl := c.cl
	if cl == nil {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	c.cancel()
	signal(c.wake)
	c.mu.Unlock()
	for _, ch := range []chan struct{}{c.pollDone, c.commDone} {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	err := c.commit(nil)
	cl.CloseAllowingRebalance()
	c.mu.Lock()
	c.cl = nil
	c.mu.Unlock()
	return err
}
