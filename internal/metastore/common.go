package metastore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/agentetl/agentetl/internal/model"
)

// ErrInvalid is returned when an argument cannot be stored at all (a missing
// key, malformed JSON). It is distinct from ErrNotFound so that callers can
// tell a caller bug from an absent row.
var ErrInvalid = errors.New("metastore: invalid argument")

// Backend names returned by Store.Backend.
const (
	BackendPostgres = "postgres"
	BackendSQLite   = "sqlite"
)

// utc normalises a timestamp the way both backends store it: UTC, truncated
// to microseconds (PostgreSQL's timestamptz resolution). Doing it before the
// write, not only after the read, means the value a Save method hands back is
// exactly what a later Get returns on either backend.
func utc(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// orNow is utc(t), or the current time when t is zero.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return utc(time.Now())
	}
	return utc(t)
}

// orNewID returns id, or a fresh random UUID when id is empty.
func orNewID(id string) string {
	if id == "" {
		return uuid.NewString()
	}
	return id
}

// canonicalJSON validates raw and rewrites it compactly with object keys in
// sorted order. PostgreSQL's jsonb does not preserve key order or whitespace,
// so without this the same document would read back differently from the two
// backends. Numbers keep their literal text (UseNumber), so large integers do
// not lose precision. Empty input and the literal null become nil, which is
// stored as SQL NULL.
func canonicalJSON(raw []byte) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: malformed JSON: %w", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: malformed JSON: trailing data", ErrInvalid)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("%w: re-encoding JSON: %w", ErrInvalid, err)
	}
	return json.RawMessage(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

// marshalJSON encodes a structured value for a json/jsonb column.
func marshalJSON(what string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding %s: %w", ErrInvalid, what, err)
	}
	return b, nil
}

// unmarshalJSON decodes a json/jsonb column; NULL (nil) leaves v untouched.
func unmarshalJSON(what string, b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("metastore: decoding stored %s: %w", what, err)
	}
	return nil
}

// readRaw canonicalises a json/jsonb column read back from the database.
func readRaw(what string, b []byte) (json.RawMessage, error) {
	raw, err := canonicalJSON(b)
	if err != nil {
		return nil, fmt.Errorf("metastore: decoding stored %s: %w", what, err)
	}
	return raw, nil
}

// maxSearchTerms bounds how many words of a catalog query are used; it keeps
// a pasted paragraph from turning into a pathological full-text query.
const maxSearchTerms = 16

// searchTerms splits free text into lower-case runs of letters and digits.
// Everything else (quotes, operators, '*', parentheses, punctuation) is a
// separator. The result can only contain characters that are inert in both
// FTS5 and tsquery syntax, which is what makes user input safe to turn into
// a full-text query; values still travel as bind parameters.
//
// Upper-case AND, OR, NOT and NEAR are dropped: they are operator words in
// FTS5 and the only way a user would type them is as (unsupported) boolean
// syntax. Terms are always ANDed, so "sales AND orders" means what it says;
// OR and NOT are not supported and degrade to a narrower AND query.
func searchTerms(s string) []string {
	var terms []string
	for _, w := range strings.FieldsFunc(s, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		switch w {
		case "AND", "OR", "NOT", "NEAR":
			continue
		}
		terms = append(terms, strings.ToLower(w))
		if len(terms) == maxSearchTerms {
			break
		}
	}
	return terms
}

// cleanText makes user text safe to send as a text parameter: PostgreSQL
// rejects NUL bytes and invalid UTF-8 in text values outright.
func cleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, ""), "\x00", "")
}

// searchText is the indexed form of s: its terms separated by spaces. Names
// like "public.orders" or "customer_id" are split so that each part is a
// word of its own in both full-text engines (PostgreSQL's parser would keep
// "public.orders" as one host-name token otherwise).
func searchText(parts ...string) string {
	var all []string
	for _, p := range parts {
		all = append(all, strings.FieldsFunc(strings.ToLower(p), func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsDigit(r)
		})...)
	}
	return strings.Join(all, " ")
}

// catalogSearchDoc returns the three weighted parts of an entry's full-text
// document: its name (strongest), its column names, and all descriptions
// (entry and columns, weakest). Both backends index exactly these strings,
// so a query matches the same entries on either.
func catalogSearchDoc(e CatalogEntry) (name, columns, descriptions string) {
	cols := make([]string, 0, len(e.Schema.Fields))
	descs := []string{e.Description}
	for _, f := range e.Schema.Fields {
		cols = append(cols, f.Name)
		descs = append(descs, f.Description)
	}
	return searchText(e.Name), searchText(cols...), searchText(descs...)
}

// ftsMatchQuery builds an FTS5 MATCH expression from sanitised terms: every
// term is a quoted string with a prefix star, implicitly ANDed, so "cust"
// finds "customers".
func ftsMatchQuery(terms []string) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = `"` + strings.ReplaceAll(t, `"`, `""`) + `"*`
	}
	return strings.Join(parts, " ")
}

// tsPrefixQuery builds a to_tsquery expression from sanitised terms: quoted
// lexemes with prefix matching, ANDed.
func tsPrefixQuery(terms []string) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = "'" + strings.ReplaceAll(strings.ReplaceAll(t, `\`, `\\`), "'", "''") + "':*"
	}
	return strings.Join(parts, " & ")
}

// likeContains is a LIKE pattern matching s anywhere, with LIKE's own
// wildcards escaped ('\' is the escape character in the queries).
func likeContains(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// nonEmpty returns s, or an empty non-nil slice, so that "no rows" encodes
// as [] rather than null in JSON APIs.
func nonEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// filter accumulates WHERE conditions for the list methods. Column names and
// operators come only from this package's code; every value is a bind
// parameter, rendered as $n for PostgreSQL and ? for SQLite.
type filter struct {
	pg    bool
	conds []string
	args  []any
}

// param appends v as the next argument and returns its placeholder.
func (f *filter) param(v any) string {
	f.args = append(f.args, v)
	if f.pg {
		return "$" + strconv.Itoa(len(f.args))
	}
	return "?"
}

// add appends the condition "expr <placeholder for v>", e.g. add("ts >=", t).
func (f *filter) add(expr string, v any) {
	f.conds = append(f.conds, expr+" "+f.param(v))
}

// where renders the accumulated conditions ("" when there are none).
func (f *filter) where() string {
	if len(f.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.conds, " AND ")
}

// limit renders a LIMIT clause; n <= 0 means no limit.
func (f *filter) limit(n int) string {
	if n <= 0 {
		return ""
	}
	return " LIMIT " + f.param(n)
}

// jsonArg turns encoded JSON into a bind argument: SQL NULL for nil, text
// otherwise (text, not []byte, so SQLite stores TEXT rather than a BLOB and
// pgx sends it as a JSON document).
func jsonArg(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// defaultTaskStatus is what SaveTask stores when a task has no status yet.
const defaultTaskStatus = "queued"

// prepareTask fills a task's defaults: id, status and timestamps.
func prepareTask(t model.Task) (model.Task, error) {
	t.ID = orNewID(t.ID)
	if t.Status == "" {
		t.Status = defaultTaskStatus
	}
	t.CreatedAt = orNow(t.CreatedAt)
	if t.UpdatedAt.IsZero() {
		t.UpdatedAt = t.CreatedAt
	} else {
		t.UpdatedAt = utc(t.UpdatedAt)
	}
	payload, err := canonicalJSON(t.Payload)
	if err != nil {
		return t, fmt.Errorf("task payload: %w", err)
	}
	t.Payload = payload
	return t, nil
}

// prepareCatalogEntry validates an entry and fills its defaults.
func prepareCatalogEntry(e CatalogEntry) (CatalogEntry, error) {
	if e.ID == "" {
		return e, fmt.Errorf("%w: catalog entry without id", ErrInvalid)
	}
	e.UpdatedAt = orNow(e.UpdatedAt)
	profile, err := canonicalJSON(e.Profile)
	if err != nil {
		return e, fmt.Errorf("catalog entry profile: %w", err)
	}
	e.Profile = profile
	e.Rank = 0
	return e, nil
}

// prepareSchemaVersion validates sv and fills its defaults; the version
// itself is assigned by the backend.
func prepareSchemaVersion(sv SchemaVersion) (SchemaVersion, error) {
	if sv.SourceID == "" {
		return sv, fmt.Errorf("%w: schema version without source id", ErrInvalid)
	}
	sv.CreatedAt = orNow(sv.CreatedAt)
	changes, err := canonicalJSON(sv.Changes)
	if err != nil {
		return sv, fmt.Errorf("schema version changes: %w", err)
	}
	sv.Changes = changes
	return sv, nil
}

// preparePipelineConfig validates pc and fills its defaults. The pipeline id
// falls back to the config's own id, so callers may set either.
func preparePipelineConfig(pc PipelineConfigVersion) (PipelineConfigVersion, error) {
	if pc.PipelineID == "" {
		pc.PipelineID = pc.Config.ID
	}
	if pc.PipelineID == "" {
		return pc, fmt.Errorf("%w: pipeline config without pipeline id", ErrInvalid)
	}
	pc.CreatedAt = orNow(pc.CreatedAt)
	return pc, nil
}

// prepareExecution fills an execution's defaults.
func prepareExecution(e Execution) (Execution, error) {
	if e.PipelineID == "" {
		return e, fmt.Errorf("%w: execution without pipeline id", ErrInvalid)
	}
	e.ID = orNewID(e.ID)
	e.StartedAt = orNow(e.StartedAt)
	if e.FinishedAt != nil {
		f := utc(*e.FinishedAt)
		e.FinishedAt = &f
	}
	return e, nil
}

func prepareDecision(d model.AgentDecision) model.AgentDecision {
	d.ID = orNewID(d.ID)
	d.Timestamp = orNow(d.Timestamp)
	return d
}

func preparePipelineError(e model.PipelineError) model.PipelineError {
	e.ID = orNewID(e.ID)
	e.Timestamp = orNow(e.Timestamp)
	return e
}

func prepareResolution(r model.Resolution) (model.Resolution, error) {
	if r.ErrorID == "" {
		return r, fmt.Errorf("%w: resolution without error id", ErrInvalid)
	}
	r.AppliedAt = orNow(r.AppliedAt)
	return r, nil
}

func prepareFingerprintDelta(d FingerprintDelta) (FingerprintDelta, error) {
	if d.Fingerprint == "" {
		return d, fmt.Errorf("%w: fingerprint delta without fingerprint", ErrInvalid)
	}
	if d.Count < 0 || d.Attempts < 0 || d.Successes < 0 {
		return d, fmt.Errorf("%w: fingerprint delta with a negative count", ErrInvalid)
	}
	if d.Strategy == "" && (d.Attempts != 0 || d.Successes != 0) {
		return d, fmt.Errorf("%w: strategy outcome without strategy", ErrInvalid)
	}
	d.Seen = orNow(d.Seen)
	if len(d.Message) > 4096 {
		d.Message = d.Message[:4096]
	}
	return d, nil
}

// fingerprintRow accumulates one stats row and its strategy rows as read
// from a LEFT JOIN ordered by fingerprint.
func appendFingerprintRow(out []FingerprintStats, st FingerprintStats, strategy *string, attempts, successes *int64) []FingerprintStats {
	if n := len(out); n == 0 || out[n-1].Fingerprint != st.Fingerprint {
		st.Strategies = map[string]StrategyStats{}
		out = append(out, st)
	}
	if strategy != nil {
		var a, s int64
		if attempts != nil {
			a = *attempts
		}
		if successes != nil {
			s = *successes
		}
		out[len(out)-1].Strategies[*strategy] = StrategyStats{Attempts: a, Successes: s}
	}
	return out
}
