package nats

import (
	"context"
	"fmt"
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
	njoFieldSubject = "subject"
	njoFieldMsgID   = "msg_id"
	njoFieldHeaders = "headers"
	njoFieldTimeout = "timeout"
)

func natsJetStreamOutputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Publishes messages to a NATS JetStream stream and waits for the server's acknowledgement of each one.").
		Description(`
A message is acknowledged to the input only once the stream has stored it. `+"`msg_id`"+` becomes the JetStream message
id, so the server drops a message re-published inside its duplicate window (after a retry or a restart): with an
event id as `+"`msg_id`"+`, each event is stored once. With the default stream, `+"`AGENTETL`"+`, the stream of the platform's
event bus is created if it is missing.`).
		Fields(
			urlsField(),
			service.NewStringField(njFieldStream).Description("The stream that must store the messages; `AGENTETL` is created if missing.").Default(bus.StreamName),
			service.NewInterpolatedStringField(njoFieldSubject).Description("The subject to publish to.").
				Example("agentetl.discovery.${! meta(\"source\") }"),
			service.NewInterpolatedStringField(njoFieldMsgID).Description("JetStream message id for duplicate detection. Empty publishes without one.").
				Default("").Example(`${! json("id") }`),
			service.NewInterpolatedStringMapField(njoFieldHeaders).Description("Headers to add to each message.").
				Default(map[string]any{}).Advanced(),
			service.NewDurationField(njoFieldTimeout).Description("How long to wait for each acknowledgement before retrying.").
				Default("5s").Advanced(),
			service.NewOutputMaxInFlightField().Default(64),
		).
		Example("Publish discovery events", "Send every discovered table to the bus, deduplicated by event id.", `
output:
  nats_jetstream:
    urls: [ nats://127.0.0.1:4223 ]
    subject: agentetl.discovery.${! meta("discovery_source").or("unknown") }
    msg_id: ${! json("id").or(uuid_v4()) }
`)
}

func init() {
	service.MustRegisterOutput("nats_jetstream", natsJetStreamOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.Output, int, error) {
			mif, err := conf.FieldMaxInFlight()
			if err != nil {
				return nil, 0, err
			}
			o, err := newJetStreamOutput(conf, mgr)
			return o, mif, err
		})
}

type jetStreamOutput struct {
	urls    []string
	stream  string
	subject *service.InterpolatedString
	msgID   *service.InterpolatedString
	headers map[string]*service.InterpolatedString
	timeout time.Duration
	log     *service.Logger

	mu sync.Mutex
	nc *nats.Conn
	js jetstream.JetStream
}

func newJetStreamOutput(conf *service.ParsedConfig, mgr *service.Resources) (*jetStreamOutput, error) {
	o := &jetStreamOutput{log: mgr.Logger()}
	var err error
	if o.urls, err = conf.FieldStringList(njFieldURLs); err != nil {
		return nil, err
	}
	if o.stream, err = conf.FieldString(njFieldStream); err != nil {
		return nil, err
	}
	if o.subject, err = conf.FieldInterpolatedString(njoFieldSubject); err != nil {
		return nil, err
	}
	if o.msgID, err = conf.FieldInterpolatedString(njoFieldMsgID); err != nil {
		return nil, err
	}
	if o.headers, err = conf.FieldInterpolatedStringMap(njoFieldHeaders); err != nil {
		return nil, err
	}
	if o.timeout, err = conf.FieldDuration(njoFieldTimeout); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *jetStreamOutput) Connect(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.js != nil {
		return nil
	}
	url := strings.Join(o.urls, ",")
	if o.stream == bus.StreamName {
		b, err := bus.Connect(ctx, url, bus.WithName("agentetl-output"))
		if err != nil {
			return err
		}
		o.nc, o.js = b.Conn(), b.JetStream()
		return nil
	}
	nc, err := nats.Connect(url, nats.Name("agentetl-output"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect %s: %w", redact.DSN(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return err
	}
	if _, err := js.Stream(ctx, o.stream); err != nil {
		nc.Close()
		return fmt.Errorf("stream %q on %s: %w", o.stream, redact.DSN(url), err)
	}
	o.nc, o.js = nc, js
	return nil
}

func (o *jetStreamOutput) Write(ctx context.Context, msg *service.Message) error {
	o.mu.Lock()
	js := o.js
	o.mu.Unlock()
	if js == nil {
		return service.ErrNotConnected
	}
	subject, err := o.subject.TryString(msg)
	if err != nil {
		return fmt.Errorf("subject interpolation: %w", err)
	}
	if subject == "" {
		return fmt.Errorf("subject interpolation gave an empty subject")
	}
	body, err := msg.AsBytes()
	if err != nil {
		return err
	}
	nm := nats.NewMsg(subject)
	nm.Data = body
	for k, v := range o.headers {
		hv, err := v.TryString(msg)
		if err != nil {
			return fmt.Errorf("header %s interpolation: %w", k, err)
		}
		nm.Header.Set(k, hv)
	}
	var opts []jetstream.PublishOpt
	id, err := o.msgID.TryString(msg)
	if err != nil {
		return fmt.Errorf("msg_id interpolation: %w", err)
	}
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	pctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if _, err := js.PublishMsg(pctx, nm, opts...); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

func (o *jetStreamOutput) Close(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.nc != nil {
		_ = o.nc.Drain()
		o.nc, o.js = nil, nil
	}
	return nil
}
