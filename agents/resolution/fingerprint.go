package resolution

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// Template normalises an error message into its template: quoted values and
// identifiers, numbers, UUIDs, hex strings, timestamps, e-mail addresses,
// URLs and network addresses are replaced by placeholders, so that "value
// too long for type character varying(20)" on row 7 and on row 9,123 share
// one template. Secrets never survive (URLs are replaced whole).
func Template(msg string) string {
	s := msg
	if len(s) > 2048 {
		s = s[:2048]
	}
	for _, r := range templateRules {
		s = r.re.ReplaceAllString(s, r.with)
	}
	s = strings.Join(strings.Fields(s), " ")
	return s
}

// Fingerprint identifies an error class: a short hash of the category and
// the message template. The same kind of failure on different rows, tables
// or hosts has the same fingerprint.
func Fingerprint(category Category, msg string) string {
	return FingerprintOfTemplate(category, Template(msg))
}

// FingerprintOfTemplate hashes an already normalised template.
func FingerprintOfTemplate(category Category, template string) string {
	h := sha256.Sum256([]byte(string(category) + "\x00" + template))
	return hex.EncodeToString(h[:8])
}

type templateRule struct {
	re   *regexp.Regexp
	with string
}

// templateRules run in order; earlier rules remove text that later, more
// general rules would otherwise cut into pieces.
var templateRules = []templateRule{
	{regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s"']+`), "<url>"},
	{regexp.MustCompile(`[\w.+\-]+@[\w\-]+(\.[\w\-]+)+`), "<email>"},
	{regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`), "<uuid>"},
	{regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+\-]\d{2}(:?\d{2})?)?)?\b`), "<time>"},
	{regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b`), "<addr>"},
	{regexp.MustCompile(`\[[0-9a-fA-F:]+\](:\d+)?`), "<addr>"},
	// Quoted text: SQL literals, identifiers, Go %q output.
	{regexp.MustCompile(`'(?:[^'\\]|\\.|'')*'`), "'?'"},
	{regexp.MustCompile(`"(?:[^"\\]|\\.)*"`), `"?"`},
	{regexp.MustCompile("`[^`]*`"), "`?`"},
	// Key (a, b)=(1, x) in unique violations: keep the key columns, drop values.
	{regexp.MustCompile(`\)=\([^)]*\)`), ")=(?)"},
	{regexp.MustCompile(`(?i)\b0x[0-9a-f]+\b`), "<hex>"},
	{regexp.MustCompile(`(?i)\b[0-9a-f]{16,}\b`), "<hex>"},
	{regexp.MustCompile(`[+\-]?\b\d+(\.\d+)?([eE][+\-]?\d+)?\b`), "<n>"},
}
