package metastore

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Open connects to the metadata store named by dsn and brings its schema up
// to date. The scheme picks the backend:
//
//	postgres://user:pass@host:5432/db?sslmode=disable&search_path=agentetl
//	postgresql://...                      (same)
//	sqlite://./data/agentetl.db            (relative path)
//	sqlite:///var/lib/agentetl/meta.db     (absolute path)
//	sqlite::memory:  or  sqlite://:memory: (private in-memory database)
//
// Migrations run inside Open, so every process that opens the store (the
// API server, an engine, the orchestrator) agrees on the schema; concurrent
// Opens are safe on both backends.
func Open(ctx context.Context, dsn string) (Store, error) {
	scheme, _, ok := strings.Cut(dsn, ":")
	if !ok {
		// Not echoed at all: without a scheme there is no telling which part
		// of the string might be a secret.
		return nil, fmt.Errorf("%w: metastore DSN has no scheme (want postgres://, postgresql:// or sqlite://)", ErrInvalid)
	}
	var (
		s   Store
		err error
	)
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		s, err = openPostgres(ctx, dsn)
	case "sqlite", "sqlite3":
		s, err = openSQLite(ctx, dsn)
	default:
		if !strings.Contains(dsn, "://") {
			// "user:secret@host" has no scheme at all; echo nothing.
			return nil, fmt.Errorf("%w: metastore DSN has no supported scheme (want postgres://, postgresql:// or sqlite://)", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: metastore DSN %q has unsupported scheme %q (want postgres://, postgresql:// or sqlite://)", ErrInvalid, Redact(dsn), scheme)
	}
	if err != nil {
		return nil, scrub(dsn, fmt.Errorf("metastore: open %s: %w", Redact(dsn), err))
	}
	return s, nil
}

const redacted = "xxxxx"

var (
	// passwordParam matches password-like key=value settings in URL query
	// strings (?password=..&sslpassword=..) and in libpq keyword/value
	// strings (password=secret or password='se cret').
	passwordParam = regexp.MustCompile(`(?i)((?:^|[?&;\s])[a-z_]*password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^&\s#;]*)`)
)

// Redact returns dsn with every password replaced by "xxxxx": the password of
// URL userinfo (scheme://user:secret@host) and any password=... parameter,
// in URL query or libpq keyword/value form. It works on the raw string
// rather than a parsed URL on purpose: a password containing an unescaped
// '/', '?', '#' or '@' makes URL parsing split it into host or path, and
// those pieces would leak. When in doubt it redacts too much, never too
// little.
func Redact(dsn string) string {
	out := dsn
	if i := strings.Index(out, "://"); i >= 0 {
		rest := out[i+3:]
		// The userinfo ends at the last '@'; a password may itself contain
		// '@', and an '@' later in the string can only over-redact.
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
				out = out[:i+3] + rest[:colon+1] + redacted + rest[at:]
			}
		}
	}
	return passwordParam.ReplaceAllString(out, "${1}"+redacted)
}

// dsnSecrets lists the literal secrets in dsn (raw and URL-decoded), so that
// scrub can remove them from error text produced by drivers that echo parts
// of the connection string.
func dsnSecrets(dsn string) []string {
	var secrets []string
	add := func(s string) {
		s = strings.Trim(s, "'")
		if len(s) < 3 { // too short to scrub without mangling unrelated text
			return
		}
		secrets = append(secrets, s)
		if d, err := url.QueryUnescape(s); err == nil && d != s {
			secrets = append(secrets, d)
		}
	}
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
				add(rest[colon+1 : at])
			}
		}
	}
	for _, m := range passwordParam.FindAllStringSubmatch(dsn, -1) {
		add(m[2])
	}
	return secrets
}

// scrub makes sure err's text contains no secret from dsn while keeping the
// chain intact for errors.Is and errors.As (e.g. *pgconn.PgError).
func scrub(dsn string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range dsnSecrets(dsn) {
		clean = strings.ReplaceAll(clean, s, redacted)
	}
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
