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
)

// DSN returns dsn with any password replaced by Mask. It understands URL DSNs
// (postgres://user:pass@host/db?password=...) and key/value DSNs
// (host=... password=...). A string that is neither is returned with the
// generic rules of String applied.
func DSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.Host != "" {
		if u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), Mask)
			}
		}
		q := u.Query()
		changed := false
		for k := range q {
			if isSecretKey(k) {
				q.Set(k, Mask)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return String(dsn)
}

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

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	switch k {
	case "password", "passwd", "pwd", "secret", "token", "apikey", "api_key", "api-key", "sslpassword":
		return true
	}
	return false
}
