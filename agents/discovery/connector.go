package discovery

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/redact"
)

// Connector reads one data source. Implementations must be safe for
// concurrent Rows calls (the agent profiles several tables at once).
type Connector interface {
	// Kind names the connector: postgres, mysql, sqlite, file, ...
	Kind() string
	// Entities lists every entity the filter selects, with columns, keys,
	// descriptions and row estimates, using a few bulk catalog queries (never
	// one per table). Entities the connected user may not read are returned
	// in the second list with the reason.
	Entities(ctx context.Context, f *Filter) ([]*Entity, []SkippedTable, error)
	// Rows hands about target rows of e to emit, every value in text form
	// and nil for NULL, in e.Columns order. It reads the whole entity when it
	// is small and a sample otherwise, and says which in ReadInfo. The slices
	// passed to emit are only valid during the call.
	Rows(ctx context.Context, e *Entity, target int64, emit func(row [][]byte) error) (ReadInfo, error)
	Close() error
}

// Opener connects to the source named by dsn. It should verify that the
// source is reachable (a ping) before returning.
type Opener func(ctx context.Context, dsn string, opts ConnectorOptions) (Connector, error)

// ConnectorOptions are the settings a connector may use.
type ConnectorOptions struct {
	// MaxConns bounds the connections a connector opens.
	MaxConns int
	// Seed makes sampling repeatable where the source supports it.
	Seed int64
	// InferRows bounds the rows read to infer a file's schema.
	InferRows int
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// Register makes a connector available for a DSN scheme (lower case, without
// "://"). Other packages add connectors the same way, e.g. Kafka topics.
func Register(scheme string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry[strings.ToLower(scheme)] = open
}

// Schemes lists the registered DSN schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for s := range registry {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func init() {
	Register("postgres", openPostgres)
	Register("postgresql", openPostgres)
	Register("mysql", openMySQL)
	Register("mariadb", openMySQL)
	Register("sqlite", openSQLite)
	Register("sqlite3", openSQLite)
	Register("file", openFiles)
}

// ErrUnsupported is returned for a DSN whose scheme has no connector.
var ErrUnsupported = errors.New("unsupported source")

// OpenConnector picks the connector by the DSN's scheme and connects.
// Errors carry the DSN with its password redacted, never the password.
func OpenConnector(ctx context.Context, dsn string, opts ConnectorOptions) (Connector, error) {
	scheme, _, ok := strings.Cut(dsn, ":")
	if !ok || !strings.Contains(dsn, "://") && !strings.HasPrefix(strings.ToLower(dsn), "sqlite:") {
		return nil, &SourceError{Op: "connect", Permanent: true,
			Err: fmt.Errorf("%w: the DSN has no scheme (want one of %s)", ErrUnsupported, strings.Join(Schemes(), "://, ")+"://")}
	}
	registryMu.RLock()
	open := registry[strings.ToLower(scheme)]
	registryMu.RUnlock()
	if open == nil {
		return nil, &SourceError{Op: "connect", DSN: redact.DSN(dsn), Permanent: true,
			Err: fmt.Errorf("%w: scheme %q (want one of %s)", ErrUnsupported, scheme, strings.Join(Schemes(), "://, ")+"://")}
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 4
	}
	if opts.InferRows <= 0 {
		opts.InferRows = 10000
	}
	c, err := open(ctx, dsn, opts)
	if err != nil {
		var se *SourceError
		if errors.As(err, &se) {
			if se.DSN == "" {
				se.DSN = redact.DSN(dsn)
			}
			se.secrets = append(se.secrets, dsnSecrets(dsn)...)
			return nil, se
		}
		return nil, &SourceError{Op: "connect", DSN: redact.DSN(dsn), Permanent: false, Err: err, secrets: dsnSecrets(dsn)}
	}
	return c, nil
}

// SourceIDFromDSN derives a stable source identifier from a DSN: scheme,
// host and database or path, without user, password or parameters, e.g.
// postgres://db.internal:5432/sales.
func SourceIDFromDSN(dsn string) string {
	scheme, _, _ := strings.Cut(dsn, ":")
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "postgresql":
		scheme = "postgres"
	case "mariadb":
		scheme = "mysql"
	case "sqlite3":
		scheme = "sqlite"
	}
	switch scheme {
	case "sqlite":
		return "sqlite://" + sqlitePath(dsn)
	case "file":
		return "file://" + filesRoot(dsn)
	case "kafka":
		// kafka://[user:pw@]h1:9092,h2:9092/?topics=…: the broker list
		// (sorted, so the order written does not make a new source),
		// without credentials or options.
		rest := strings.TrimPrefix(dsn[len("kafka:"):], "//")
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			rest = rest[at+1:]
		}
		hosts, _, _ := strings.Cut(rest, "/")
		hosts, _, _ = strings.Cut(hosts, "?")
		list := strings.Split(hosts, ",")
		sort.Strings(list)
		return "kafka://" + strings.Join(list, ",")
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		return scheme + "://" + redact.DSN(dsn)
	}
	host := u.Hostname()
	if p := u.Port(); p != "" {
		host = net.JoinHostPort(host, p)
	}
	return scheme + "://" + host + u.EscapedPath()
}

// SourceError is a failure of the source as a whole: it cannot be reached,
// the credentials are wrong, the catalog cannot be read. Its message names
// the source by its redacted DSN.
type SourceError struct {
	Op  string
	DSN string // redacted
	// Permanent is true when retrying cannot help (bad credentials, missing
	// database or path, unsupported scheme).
	Permanent bool
	Err       error
	secrets   []string
}

func (e *SourceError) Error() string {
	var b strings.Builder
	b.WriteString("discovery: ")
	b.WriteString(e.Op)
	if e.DSN != "" {
		b.WriteString(" ")
		b.WriteString(e.DSN)
	}
	b.WriteString(": ")
	msg := e.Err.Error()
	for _, s := range e.secrets {
		msg = strings.ReplaceAll(msg, s, redact.Mask)
	}
	b.WriteString(redact.String(msg))
	return b.String()
}

func (e *SourceError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a source failure that retrying cannot fix.
func IsPermanent(err error) bool {
	var se *SourceError
	if errors.As(err, &se) {
		return se.Permanent
	}
	return pgutil.IsPermanent(err)
}

// IsConnectionError reports whether err means the source connection failed,
// the kind of failure a reconnect with backoff can fix.
func IsConnectionError(err error) bool {
	if err == nil {
		return false
	}
	var se *SourceError
	if errors.As(err, &se) && se.Permanent {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	if pgutil.IsConnectionError(err) && !errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "invalid connection") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset")
}

// dsnSecrets lists the literal password of a URL DSN (raw and decoded) so it
// can be scrubbed from driver messages that echo it.
func dsnSecrets(dsn string) []string {
	i := strings.Index(dsn, "://")
	if i < 0 {
		return nil
	}
	rest := dsn[i+3:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return nil
	}
	colon := strings.IndexByte(rest[:at], ':')
	if colon < 0 {
		return nil
	}
	pw := rest[colon+1 : at]
	if len(pw) < 3 {
		return nil
	}
	out := []string{pw}
	if d, err := url.PathUnescape(pw); err == nil && d != pw {
		out = append(out, d)
	}
	return out
}
