// Package kafkautil holds the Kafka logic behind the kafka input and output
// plugins, on github.com/twmb/franz-go. It has no Benthos dependency so the
// delicate parts (offset tracking, rebalance handling, error classification)
// can be tested directly.
//
// The consumer hands out one batch per partition at a time: a partition's
// next batch is released only after the previous one is acknowledged, which
// keeps per-partition (and so per-key) order while different partitions are
// processed in parallel. Offsets are committed from a per-partition Tracker,
// so a commit never passes an unacknowledged record.
package kafkautil

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanism names accepted by SASLMechanism.
const (
	SASLNone        = "none"
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// ClientConfig is what every Kafka client needs: where the brokers are and
// how to authenticate to them.
type ClientConfig struct {
	// SeedBrokers are host:port addresses; entries may hold comma-separated
	// lists, as Kafka tooling commonly writes them.
	SeedBrokers []string
	ClientID    string
	// TLS enables TLS when non-nil.
	TLS *tls.Config
	// SASL is nil for no authentication; see SASLMechanism.
	SASL sasl.Mechanism
}

// Seeds splits comma-separated entries and drops empty ones.
func (c ClientConfig) Seeds() []string {
	var out []string
	for _, s := range c.SeedBrokers {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func (c ClientConfig) opts() ([]kgo.Opt, error) {
	seeds := c.Seeds()
	if len(seeds) == 0 {
		return nil, ConfigError("no seed brokers")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS))
	}
	if c.SASL != nil {
		opts = append(opts, kgo.SASL(c.SASL))
	}
	return opts, nil
}

// SASLMechanism builds the named mechanism (none, PLAIN, SCRAM-SHA-256 or
// SCRAM-SHA-512, case-insensitive). "none" and "" return nil.
func SASLMechanism(name, user, pass string) (sasl.Mechanism, error) {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "", "NONE":
		return nil, nil
	case SASLPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case SASLScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case SASLScramSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, ConfigError("unknown SASL mechanism %q: use none, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", name)
}

// ping checks that a broker answers (and accepts our credentials), so a
// wrong address fails Connect with ErrNoBrokers instead of silently
// retrying inside the client forever.
func ping(ctx context.Context, cl *kgo.Client, c ClientConfig) error {
	err := cl.Ping(ctx)
	if err == nil {
		return nil
	}
	op := "connect to " + strings.Join(c.Seeds(), ",")
	var firstEOF *kgo.ErrFirstReadEOF
	if c.SASL != nil && (errors.Is(err, io.EOF) || errors.As(err, &firstEOF)) {
		// Some brokers (and kfake) reject bad credentials by closing the
		// connection mid-handshake rather than answering with an error code.
		return &Error{Op: op, Category: CategoryAuthentication, Kind: ErrAuthentication,
			Err: fmt.Errorf("broker closed the connection during %s authentication: check mechanism, user and password: %w", c.SASL.Name(), err)}
	}
	return Classify(op, ErrNoBrokers, err)
}

// Connect creates a plain client (no group, no consumption unless extra
// options ask for it) and checks that a broker answers and accepts the
// credentials. It is for tools that read the cluster directly, such as
// discovery, which samples topics without joining a group or committing.
// Errors are classified like the consumer's: ErrNoBrokers, ErrAuthentication
// or ErrConfig inside *Error.
func (c ClientConfig) Connect(ctx context.Context, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := c.opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, Classify("connect", ErrConfig, err)
	}
	if err := ping(ctx, cl, c); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}
