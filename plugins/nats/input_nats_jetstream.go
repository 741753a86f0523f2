// Package nats registers the nats_jetstream input and output, so any
// pipeline can publish to and consume from the platform's event bus (or any
// JetStream stream). Connection and stream set-up live in internal/bus.
package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/internal/bus"
	"github.com/agentetl/agentetl/internal/redact"
)

const (
	njFieldURLs          = "urls"
	njFieldStream        = "stream"
	njFieldDurable       = "durable"
	njFieldFilter        = "filter_subject"
	njFieldDeliver       = "deliver"
	njFieldAckWait       = "ack_wait"
	njFieldMaxAckPending = "max_ack_pending"

	// Metadata keys.
	MetaSubject   = "nats_subject"
	MetaSequence  = "nats_sequence"
	MetaMsgID     = "nats_msg_id"
	MetaDelivered = "nats_num_delivered"
)

func urlsField() *service.ConfigField {
	return service.NewStringListField(njFieldURLs).
		Description("NATS server URLs. Credentials in a URL are redacted in logs and errors.").
		Default([]string{"nats://127.0.0.1:4222"}).
		Example([]string{"nats://127.0.0.1:4223"})
}

func natsJetStreamInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Consumes a NATS JetStream stream through a durable pull consumer, acknowledging each message only after the pipeline has processed it.").
		Description(`
The consumer is durable: a restarted pipeline continues where the last acknowledged message left off. Delivery is
at least once: a message the pipeline rejects is negatively acknowledged and redelivered, and one that is not
acknowledged within `+"`ack_wait`"+` is redelivered too. `+"`max_ack_pending`"+` bounds the messages in flight, which is
how backpressure reaches the server.

With the default stream, `+"`AGENTETL`"+`, the stream of the platform's event bus is created if it is missing. Other
streams must exist.

Each message carries the metadata `+"`nats_subject`, `nats_sequence`, `nats_msg_id` and `nats_num_delivered`"+`.`).
		Fields(
			urlsField(),
			service.NewStringField(njFieldStream).Description("The stream to consume.").Default(bus.StreamName),
			service.NewStringField(njFieldDurable).Description("Durable consumer name; consumers with the same name share the work.").
				Example("orchestrator-schema-changes").
				LintRule(`root = if this.re_match("[\\s.*>]") { ["durable names cannot contain whitespace, '.', '*' or '>'"] }`),
			service.NewStringField(njFieldFilter).Description("Only messages whose subject matches this filter.").
				Default(bus.SubjectAll).Example("agentetl.schema.>"),
			service.NewStringEnumField(njFieldDeliver, "all", "new").
				Description("Where a new durable consumer starts: `all` messages in the stream, or only `new` ones.").Default("all"),
			service.NewDurationField(njFieldAckWait).Description("How long the server waits for an acknowledgement before redelivering.").
				Default("30s").Advanced(),
			service.NewIntField(njFieldMaxAckPending).Description("Maximum unacknowledged messages in flight.").
				Default(1024).Advanced().LintRule(`root = if this < 1 { ["max_ack_pending must be at least 1"] }`),
		).
		Example("Consume schema changes", "Route the platform's schema-change events into a pipeline.", `
input:
  nats_jetstream:
    urls: [ nats://127.0.0.1:4223 ]
    durable: schema-change-router
    filter_subject: agentetl.schema.>
`)
}

func init() {
	service.MustRegisterInput("nats_jetstream", natsJetStreamInputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.Input, error) {
			return newJetStreamInput(conf, mgr)
		})
}

type jetStreamInput struct {
	urls        []string
	stream      string
	durable     string
	filter      string
	deliver     string
	ackWait     time.Duration
	maxPending  int
	log         *service.Logger
	mu          sync.Mutex
	nc          *nats.Conn
	iter        jetstream.MessagesContext
	connectedTo string
}

func newJetStreamInput(conf *service.ParsedConfig, mgr *service.Resources) (*jetStreamInput, error) {
	in := &jetStreamInput{log: mgr.Logger()}
	var err error
	if in.urls, err = conf.FieldStringList(njFieldURLs); err != nil {
		return nil, err
	}
	if in.stream, err = conf.FieldString(njFieldStream); err != nil {
		return nil, err
	}
	if in.durable, err = conf.FieldString(njFieldDurable); err != nil {
		return nil, err
	}
	if in.filter, err = conf.FieldString(njFieldFilter); err != nil {
		return nil, err
	}
	if in.deliver, err = conf.FieldString(njFieldDeliver); err != nil {
		return nil, err
	}
	if in.ackWait, err = conf.FieldDuration(njFieldAckWait); err != nil {
		return nil, err
	}
	if in.maxPending, err = conf.FieldInt(njFieldMaxAckPending); err != nil {
		return nil, err
	}
	if strings.ContainsAny(in.durable, " \t.*>") || in.durable == "" {
		return nil, fmt.Errorf("durable %q: must be non-empty without whitespace, '.', '*' or '>'", in.durable)
	}
	return in, nil
}

func (j *jetStreamInput) Connect(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.iter != nil {
		return nil
	}
	if j.nc != nil { // a previous iterator ended; start over cleanly
		j.nc.Close()
		j.nc = nil
	}
	url := strings.Join(j.urls, ",")
	var js jetstream.JetStream
	var nc *nats.Conn
	if j.stream == bus.StreamName {
		b, err := bus.Connect(ctx, url, bus.WithName("agentetl-input-"+j.durable))
		if err != nil {
			return err
		}
		nc, js = b.Conn(), b.JetStream()
	} else {
		var err error
		if nc, err = nats.Connect(url, nats.Name("agentetl-input-"+j.durable), nats.MaxReconnects(-1)); err != nil {
			return fmt.Errorf("connect %s: %w", redact.DSN(url), err)
		}
		if js, err = jetstream.New(nc); err != nil {
			nc.Close()
			return err
		}
	}
	policy := jetstream.DeliverAllPolicy
	if j.deliver == "new" {
		policy = jetstream.DeliverNewPolicy
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, j.stream, jetstream.ConsumerConfig{
		Durable:       j.durable,
		FilterSubject: j.filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       j.ackWait,
		MaxAckPending: j.maxPending,
		DeliverPolicy: policy,
	})
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream %q does not exist on %s: create it or use the default %s stream: %w", j.stream, redact.DSN(url), bus.StreamName, err)
		}
		return fmt.Errorf("consumer %s on stream %s: %w", j.durable, j.stream, err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(min(j.maxPending, 256)))
	if err != nil {
		nc.Close()
		return fmt.Errorf("consume %s: %w", j.stream, err)
	}
	j.nc, j.iter, j.connectedTo = nc, iter, redact.DSN(url)
	j.log.Infof("Consuming stream %s as %s (%s) from %s", j.stream, j.durable, j.filter, j.connectedTo)
	return nil
}

func (j *jetStreamInput) Read(ctx context.Context) (*service.Message, service.AckFunc, error) {
	j.mu.Lock()
	iter := j.iter
	j.mu.Unlock()
	if iter == nil {
		return nil, nil, service.ErrNotConnected
	}
	type res struct {
		m   jetstream.Msg
		err error
	}
	ch := make(chan res, 1)
	go func() { m, err := iter.Next(); ch <- res{m, err} }()
	var r res
	select {
	case r = <-ch:
	case <-ctx.Done():
		iter.Stop() // unblocks Next; the next Connect starts a new iterator
		j.mu.Lock()
		j.iter = nil
		j.mu.Unlock()
		return nil, nil, ctx.Err()
	}
	if r.err != nil {
		j.mu.Lock()
		j.iter = nil
		j.mu.Unlock()
		if errors.Is(r.err, jetstream.ErrMsgIteratorClosed) {
			return nil, nil, service.ErrNotConnected
		}
		return nil, nil, fmt.Errorf("read %s: %w", j.stream, r.err)
	}
	m := r.m
	msg := service.NewMessage(m.Data())
	msg.MetaSetMut(MetaSubject, m.Subject())
	if md, err := m.Metadata(); err == nil {
		msg.MetaSetMut(MetaSequence, strconv.FormatUint(md.Sequence.Stream, 10))
		msg.MetaSetMut(MetaDelivered, strconv.FormatUint(md.NumDelivered, 10))
	}
	if id := m.Headers().Get(jetstream.MsgIDHeader); id != "" {
		msg.MetaSetMut(MetaMsgID, id)
	}
	return msg, func(ctx context.Context, err error) error {
		if err != nil {
			return m.Nak()
		}
		return m.Ack()
	}, nil
}

func (j *jetStreamInput) Close(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.iter != nil {
		j.iter.Stop()
		j.iter = nil
	}
	if j.nc != nil {
		_ = j.nc.Drain()
		j.nc = nil
	}
	return nil
}
