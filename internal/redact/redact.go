// Package redact removes secrets from strings before they reach logs, errors,
// API responses or stored configs. Redaction is applied at the point where a
// string leaves the process, so callers may keep the real value in memory.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every secret.
const Mask = "xxxxx"

var (
	kvPassword = regexp.MustCompile(`(?i)\b(password|passwd|pwd|api[_-]?key|secret|token)(\s*=\s*)('[^']*'|"[^"]*"|[^\s&;]+)`)
	// urlUserinfo catches user:password@ inside longer text, where the DSN is
	// embedded in an error message and cannot be parsed as one URL.
	urlUserinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)([^@\s]*)(@)`)
	bearer      = regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+`)
	openAIKey   = regexp.MustCompile(`\bsk-[A-Za-z0-9_\-]{8,}`)
	// passwordParam matches password-like key=value settings in URL query
	// strings (?password=..&sslpassword=..) and in libpq keyword/value
	// strings (password=secret or password='se cret').
	passwordParam = regexp.MustCompile(`(?i)((?:^|[?&;\s])[a-z_]*password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^&\s#;]*)`)
)

// DSN returns dsn with every password replaced by "xxxxx": the password of
// URL userinfo (scheme://user:secret@host) and any password=... parameter,
// in URL query or libpq keyword/value form. It works on the raw string
// rather than a parsed URL on purpose: a password containing an unescaped
// '/', '?', '#' or '@' makes URL parsing split it into host or path, and
// those pieces would leak. When in doubt it redacts too much, never too
// little.
func DSN(dsn string) string {
	out := dsn
	if i := strings.Index(out, "://"); i >= 0 {
		rest := out[i+3:]
		// The userinfo ends at the last '@'; a password may itself contain
		// '@', and an '@' later in the string can only over-redact.
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
				out = out[:i+3] + rest[:colon+1] + Mask + rest[at:]
			}
		}
	}
	return passwordParam.ReplaceAllString(out, "${1}"+Mask)
}

// dsnSecrets lists the literal secrets in dsn (raw and URL-decoded), so that
// Scrub can remove them from error text produced by drivers that echo parts
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

// Scrub makes sure err's text contains no secret from dsn while keeping the
// chain intact for errors.Is and errors.As (e.g. *pgconn.PgError).
func Scrub(dsn string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range dsnSecrets(dsn) {
		clean = strings.ReplaceAll(clean, s, Mask)
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

// String redacts secrets that appear anywhere inside free text: URL
// passwords, key=value passwords and API keys, bearer tokens.
func String(s string) string {
	if s == "" {
		return s
	}
	s = urlUserinfo.ReplaceAllString(s, "${1}"+Mask+"${3}")
	s = kvPassword.ReplaceAllString(s, "${1}${2}"+Mask)
	s = bearer.ReplaceAllString(s, "${1}"+Mask)
	s = openAIKey.ReplaceAllString(s, "sk-"+Mask)
	return s
}
