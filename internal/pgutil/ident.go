// Package pgutil is the shared PostgreSQL plumbing of our connectors:
// identifier parsing and quoting, typed errors that keep SQLSTATE and the
// failing object, DSN handling and catalog look-ups. It has no Benthos import
// so agents and plugins can share it.
package pgutil

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Ident is a possibly schema-qualified relation name. Schema is empty when
// the name should resolve through the search_path.
type Ident struct {
	Schema string
	Name   string
}

// ErrBadIdent is returned for identifiers that cannot be used at all.
var ErrBadIdent = errors.New("invalid identifier")

// ParseIdent reads a relation name as written in a config. Unquoted parts are
// taken exactly as written, without case folding, because a config is not
// SQL and users copy names as their tools display them ("Order Items",
// "select", "Kunden"). Double-quoted parts follow SQL rules ("" is a quote)
// and may contain dots. A single dot outside quotes separates the schema.
func ParseIdent(s string) (Ident, error) {
	parts, err := splitQualified(s)
	if err != nil {
		return Ident{}, err
	}
	switch len(parts) {
	case 1:
		return Ident{Name: parts[0]}, nil
	case 2:
		return Ident{Schema: parts[0], Name: parts[1]}, nil
	default:
		return Ident{}, fmt.Errorf("%w %q: expected name or schema.name", ErrBadIdent, s)
	}
}

func splitQualified(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty name", ErrBadIdent)
	}
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return nil, fmt.Errorf("%w %q: not valid UTF-8 or contains NUL", ErrBadIdent, s)
	}
	// A name without any quote is split on dots only if that yields exactly
	// two non-empty parts; otherwise the whole string is one name.
	if !strings.Contains(s, `"`) {
		if i := strings.IndexByte(s, '.'); i > 0 && i < len(s)-1 && strings.Count(s, ".") == 1 {
			return []string{s[:i], s[i+1:]}, nil
		}
		return []string{s}, nil
	}
	var parts []string
	var cur strings.Builder
	inQuote, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '"' && i+1 < len(s) && s[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"':
			inQuote = !inQuote
			quoted = true
		case c == '.' && !inQuote:
			parts = append(parts, cur.String())
			cur.Reset()
			quoted = false
		default:
			cur.WriteByte(c)
		}
	}
	if inQuote {
		return nil, fmt.Errorf("%w %q: unterminated quote", ErrBadIdent, s)
	}
	_ = quoted
	parts = append(parts, cur.String())
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("%w %q: empty part", ErrBadIdent, s)
		}
	}
	return parts, nil
}

// QuoteIdent quotes one identifier for SQL: always, whatever it contains,
// so keywords, spaces, case and unicode are safe.
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// Quoted returns the SQL text of the (qualified) name, every part quoted.
func (i Ident) Quoted() string {
	if i.Schema == "" {
		return QuoteIdent(i.Name)
	}
	return QuoteIdent(i.Schema) + "." + QuoteIdent(i.Name)
}

// String is the display form, quoted only where needed for readability.
func (i Ident) String() string {
	if i.Schema == "" {
		return i.Name
	}
	return i.Schema + "." + i.Name
}

// QuoteList quotes and comma-joins identifiers.
func QuoteList(names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(QuoteIdent(n))
	}
	return b.String()
}
