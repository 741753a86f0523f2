// Package bus is the platform's event bus on NATS JetStream. One stream,
// AGENTETL, holds every subject under "agentetl.>"; publishers set the
// event id as the JetStream message id so the server drops duplicates inside
// its window, and consumers are durable, explicitly acknowledged and
// idempotent by event id, which together give effectively-once handling on
// top of at-least-once delivery.
//
// # Subjects
//
//	agentetl.discovery.<source>      a table was discovered or re-profiled
//	agentetl.schema.changed          a SchemaChange was detected
//	agentetl.mapping.proposed        a mapping agent produced proposals
//	agentetl.pipeline.error          a pipeline error was captured
//	agentetl.escalation              an error was escalated to a human
//	agentetl.execution.<pipeline>    an execution started, progressed or ended
//	agentetl.decision                an agent or orchestrator decision
package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/agentetl/agentetl/internal/redact"
)

// Stream and subject names. They are part of the platform's public contract.
const (
	StreamName          = "AGENTETL"
	SubjectAll          = "agentetl.>"
	SubjectDiscovery    = "agentetl.discovery"
	SubjectSchemaChange = "agentetl.schema.changed"
	SubjectMapping      = "agentetl.mapping.proposed"
	SubjectError        = "agentetl.pipeline.error"
	SubjectEscalation   = "agentetl.escalation"
	SubjectExecution    = "agentetl.execution"
	SubjectDecision     = "agentetl.decision"
)

// Event is the envelope of everything on the bus.
type Event struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Subject    string          `json:"subject"`
	Source     string          `json:"source,omitempty"`
	PipelineID string          `json:"pipelineId,omitempty"`
	Time       time.Time       `json:"time"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// NewEvent builds an event with a fresh id and the current time.
func NewEvent(subject, typ string, data any) (Event, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("bus: encode %s event: %w", typ, err)
	}
	return Event{ID: uuid.NewString(), Type: typ, Subject: subject, Time: time.Now().UTC(), Data: b}, nil
}

// Errors returned by the bus.
var (
	ErrNoSubject = errors.New("bus: event has no subject")
	ErrNoID      = errors.New("bus: event has no id")
)

// Bus is a connection to the event stream. Safe for concurrent use.
type Bus struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// Option configures Connect.
type Option func(*options)

type options struct {
	name       string
	dupeWindow time.Duration
	maxAge     time.Duration
	replicas   int
}

// WithName sets the client connection name shown by the server.
func WithName(n string) Option { return func(o *options) { o.name = n } }

// WithDuplicateWindow sets how long the server remembers message ids to drop
// re-published events. Default 10 minutes.
func WithDuplicateWindow(d time.Duration) Option { return func(o *options) { o.dupeWindow = d } }

// WithRetention sets how long events are kept. Default 7 days.
func WithRetention(d time.Duration) Option { return func(o *options) { o.maxAge = d } }

// WithReplicas sets the stream's replica count for clustered servers.
func WithReplicas(n int) Option { return func(o *options) { o.replicas = n } }

// Connect dials url, and creates or updates the AGENTETL stream. It retries
// the initial connection for a short while, and reconnects forever after,
// buffering publishes in the client while the server is away.
func Connect(ctx context.Context, url string, opts ...Option) (*Bus, error) {
	o := options{name: "agentetl", dupeWindow: 10 * time.Minute, maxAge: 7 * 24 * time.Hour, replicas: 1}
	for _, f := range opts {
		f(&o)
	}
	nc, err := nats.Connect(url,
		nats.Name(o.name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(5*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s: %w", redact.DSN(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b := &Bus{nc: nc, js: js}
	cfg := jetstream.StreamConfig{
		Name:       StreamName,
		Subjects:   []string{SubjectAll},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     o.maxAge,
		Duplicates: o.dupeWindow,
		Replicas:   o.replicas,
	}
	for {
		_, err = js.CreateOrUpdateStream(ctx, cfg)
		if err == nil {
			return b, nil
		}
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("bus: create stream %s on %s: %w", StreamName, redact.DSN(url), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Conn exposes the NATS connection for components that need it directly.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream exposes the JetStream context.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Close drains and closes the connection.
func (b *Bus) Close() {
	_ = b.nc.Drain()
}

// Publish sends ev and waits for the server's acknowledgement. The event id
// is the JetStream message id, so a retried publish of the same event is
// stored once.
func (b *Bus) Publish(ctx context.Context, ev Event) error {
	if ev.Subject == "" {
		return ErrNoSubject
	}
	if ev.ID == "" {
		return ErrNoID
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("bus: encode event %s: %w", ev.ID, err)
	}
	for {
		// Each attempt gets its own short deadline: a request in flight when
		// the server went down never gets a reply, and waiting for it would
		// use up the caller's whole budget. Retrying is safe because the
		// message id makes the server store the event once.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = b.js.Publish(actx, ev.Subject, data, jetstream.WithMsgID(ev.ID))
		cancel()
		if err == nil {
			return nil
		}
		// While the server restarts, publishes fail fast with "no
		// responders"; retry until the caller's deadline.
		if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrNoStreamResponse) &&
			!errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("bus: publish %s: %w", ev.Subject, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bus: publish %s: %w", ev.Subject, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Deduper remembers which events a consumer has handled. Implementations
// must be durable for effectively-once handling across restarts.
type Deduper interface {
	// Seen reports whether consumer already handled id.
	Seen(ctx context.Context, consumer, id string) (bool, error)
	// Mark records that consumer handled id.
	Mark(ctx context.Context, consumer, id string) error
}

// Handler processes one event. Returning an error makes the bus redeliver it
// after a backoff.
type Handler func(ctx context.Context, ev Event) error

// Subscription is a running durable consumer.
type Subscription struct {
	cc jetstream.ConsumeContext
}

// Stop stops delivery; in-flight handlers finish.
func (s *Subscription) Stop() { s.cc.Stop() }

// Subscribe starts a durable consumer named durable on subjects matching
// filter (for example "agentetl.schema.>"). Each event goes to h at least
// once; with a Deduper, an event whose id was already handled is
// acknowledged without calling h again.
func (b *Bus) Subscribe(ctx context.Context, durable, filter string, dd Deduper, h Handler) (*Subscription, error) {
	cons, err := b.js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		// Effectively unbounded, but the server wants it larger than the
		// back-off list.
		MaxDeliver:    100000,
		BackOff:       []time.Duration{time.Second, 5 * time.Second, 30 * time.Second},
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: consumer %s: %w", durable, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var ev Event
		if err := json.Unmarshal(m.Data(), &ev); err != nil || ev.ID == "" {
			// Not ours or corrupt: acknowledging it keeps the consumer
			// moving; it can be inspected in the stream.
			_ = m.Term()
			return
		}
		hctx := context.Background()
		if dd != nil {
			seen, err := dd.Seen(hctx, durable, ev.ID)
			if err != nil {
				_ = m.Nak()
				return
			}
			if seen {
				_ = m.Ack()
				return
			}
		}
		if err := h(hctx, ev); err != nil {
			_ = m.NakWithDelay(time.Second)
			return
		}
		if dd != nil {
			if err := dd.Mark(hctx, durable, ev.ID); err != nil {
				_ = m.Nak()
				return
			}
		}
		_ = m.DoubleAck(hctx)
	})
	if err != nil {
		return nil, fmt.Errorf("bus: consume %s: %w", durable, err)
	}
	return &Subscription{cc: cc}, nil
}

// MemoryDeduper is an in-process Deduper. It does not survive a restart, so
// it suits tests and consumers whose handlers are idempotent anyway; the
// orchestrator uses the metadata store.
type MemoryDeduper struct {
	mu   sync.Mutex
	seen map[string]bool
}

// NewMemoryDeduper returns an empty MemoryDeduper.
func NewMemoryDeduper() *MemoryDeduper { return &MemoryDeduper{seen: map[string]bool{}} }

// Seen implements Deduper.
func (d *MemoryDeduper) Seen(_ context.Context, consumer, id string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[consumer+"\x00"+id], nil
}

// Mark implements Deduper.
func (d *MemoryDeduper) Mark(_ context.Context, consumer, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen[consumer+"\x00"+id] = true
	return nil
}
