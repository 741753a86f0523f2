package kafkautil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sentinel errors. Every error this package returns wraps one of them (through
// *Error), so callers test with errors.Is instead of parsing messages.
var (
	// ErrNoBrokers means no seed broker answered: wrong address, broker down,
	// or a TLS/plain-text mismatch. Retrying can succeed once the broker is up.
	ErrNoBrokers = errors.New("no kafka broker reachable")
	// ErrAuthentication means a broker rejected the SASL credentials or the
	// mechanism. Retrying with the same configuration cannot succeed.
	ErrAuthentication = errors.New("kafka authentication failed")
	// ErrAuthorization means the credentials were accepted but lack an ACL
	// for the topic or group.
	ErrAuthorization = errors.New("kafka authorization failed")
	// ErrConfig means the configuration itself is invalid (bad topic regex,
	// unknown SASL mechanism, no topics...).
	ErrConfig = errors.New("invalid kafka configuration")
	// ErrProduce means a broker refused or timed out a produce request for a
	// reason other than the ones above; Category tells whether it is transient.
	ErrProduce = errors.New("kafka produce failed")
	// ErrCommit means an offset commit failed; the records stay uncommitted
	// and are redelivered after a restart or rebalance, never lost.
	ErrCommit = errors.New("kafka offset commit failed")
)

// Categories, spelled as the platform's error taxonomy spells them so that
// error resolution can route Kafka failures without parsing text.
const (
	CategoryConnection     = "connection"
	CategoryTimeout        = "timeout"
	CategoryAuthentication = "authentication"
	CategoryPermission     = "permission"
	CategoryConfiguration  = "configuration"
	CategoryResource       = "resource"
	CategoryPoison         = "poison"
	CategoryUnknown        = "unknown"
)

// Error is a classified Kafka failure: what we were doing, the taxonomy
// category, whether retrying can help, and the client's original error.
type Error struct {
	Op        string // connect, consume, produce, commit, config
	Category  string
	Retryable bool
	Kind      error // one of the sentinels above
	Err       error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("kafka %s: %v [%s]", e.Op, e.Kind, e.Category)
	}
	return fmt.Sprintf("kafka %s: %v: %v [%s]", e.Op, e.Kind, e.Err, e.Category)
}

// Unwrap exposes both the sentinel and the client's error to errors.Is/As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// ConfigError returns a non-retryable configuration error.
func ConfigError(format string, args ...any) error {
	return &Error{Op: "config", Category: CategoryConfiguration, Kind: ErrConfig, Err: fmt.Errorf(format, args...)}
}

// Classify wraps err from franz-go as an *Error for op. nil stays nil and an
// already classified error is returned unchanged. fallback is the sentinel
// used when nothing more specific is recognised.
func Classify(op string, fallback error, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	e := &Error{Op: op, Kind: fallback, Err: err, Category: CategoryUnknown}
	var ke *kerr.Error
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.UnsupportedSaslMechanism),
		errors.Is(err, kerr.IllegalSaslState), strings.Contains(err.Error(), "SASL"):
		e.Kind, e.Category = ErrAuthentication, CategoryAuthentication
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.GroupAuthorizationFailed),
		errors.Is(err, kerr.ClusterAuthorizationFailed), errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		e.Kind, e.Category = ErrAuthorization, CategoryPermission
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		e.Category = CategoryPoison
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrRecordTimeout),
		errors.Is(err, kerr.RequestTimedOut):
		e.Category, e.Retryable = CategoryTimeout, true
	case errors.As(err, &opErr), errors.As(err, &netErr), errors.Is(err, kgo.ErrClientClosed),
		strings.Contains(err.Error(), "unable to dial"):
		e.Kind, e.Category, e.Retryable = ErrNoBrokers, CategoryConnection, true
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.InvalidTopicException):
		e.Category = CategoryConfiguration
		e.Retryable = true // the topic may be created later
	case errors.As(err, &ke):
		e.Retryable = ke.Retriable
		if ke.Retriable {
			e.Category = CategoryConnection
		}
	}
	if errors.Is(fallback, ErrNoBrokers) && e.Kind == fallback {
		e.Category, e.Retryable = CategoryConnection, true
	}
	return e
}
