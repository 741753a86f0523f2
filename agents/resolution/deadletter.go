package resolution

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/redact"
)

// DeadLetter is one record set aside with everything needed to understand
// and replay it.
type DeadLetter struct {
	// ID is deterministic (see DeadLetterID), so a record that is dead-lettered
	// again after a redelivery is stored once.
	ID         string `json:"id"`
	PipelineID string `json:"pipelineId,omitempty"`
	// Component is the path of the component that failed, e.g.
	// root.output.error_resolution or a label.
	Component string `json:"component,omitempty"`
	// Payload is the original message, byte for byte.
	Payload  []byte            `json:"-"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Category Category          `json:"category"`
	// Fingerprint and Template identify the error class.
	Fingerprint string `json:"fingerprint"`
	Template    string `json:"template,omitempty"`
	Error       string `json:"error"`
	// Code is the SQLSTATE, MySQL number or Kafka error name, if any.
	Code     string `json:"code,omitempty"`
	Attempts int    `json:"attempts"`
	// SchemaVersion is the schema or mapping version the pipeline ran with.
	SchemaVersion string `json:"schemaVersion,omitempty"`
	// ErrorID links to the PipelineError recorded in the metadata store.
	ErrorID    string     `json:"errorId,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	ReplayedAt *time.Time `json:"replayedAt,omitempty"`
}

// dlFields is DeadLetter without its JSON methods.
type dlFields DeadLetter

type deadLetterJSON struct {
	dlFields
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 string          `json:"payloadBase64,omitempty"`
}

// MarshalJSON writes the payload inline when it is JSON and as base64
// otherwise, so a dead-letter file stays readable and lossless.
func (d DeadLetter) MarshalJSON() ([]byte, error) {
	out := deadLetterJSON{dlFields: dlFields(d)}
	if payloadIsJSON(d.Payload) {
		out.Payload = d.Payload
	} else {
		out.PayloadBase64 = base64.StdEncoding.EncodeToString(d.Payload)
	}
	return json.Marshal(out)
}

// UnmarshalJSON reverses MarshalJSON.
func (d *DeadLetter) UnmarshalJSON(b []byte) error {
	type plainDL DeadLetter
	var aux struct {
		plainDL
		Payload       json.RawMessage `json:"payload"`
		PayloadBase64 string          `json:"payloadBase64"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*d = DeadLetter(aux.plainDL)
	switch {
	case aux.PayloadBase64 != "":
		p, err := base64.StdEncoding.DecodeString(aux.PayloadBase64)
		if err != nil {
			return fmt.Errorf("dead letter %s: payloadBase64: %w", d.ID, err)
		}
		d.Payload = p
	case len(aux.Payload) > 0:
		d.Payload = append([]byte(nil), aux.Payload...)
	}
	return nil
}

// payloadIsJSON is true for payloads that can be stored as jsonb: valid
// UTF-8 JSON without NUL characters (which jsonb rejects).
func payloadIsJSON(p []byte) bool {
	return len(p) > 0 && utf8.Valid(p) && json.Valid(p) && !strings.Contains(string(p), `\u0000`)
}

// VolatileMetaKeys are metadata keys that differ between deliveries of the
// same record and so are left out of DeadLetterID.
// nats_num_delivered counts JetStream deliveries: a message dead-lettered
// but not acknowledged comes back with it incremented.
var VolatileMetaKeys = map[string]bool{"postgres_page": true, "nats_num_delivered": true}

// DeadLetterID derives a stable id from where a record failed and what it
// is: pipeline, component, payload, stable metadata, and its occurrence
// number among identical records of the same batch. A redelivered batch
// yields the same ids, so dead-lettering is idempotent.
func DeadLetterID(pipelineID, component string, payload []byte, meta map[string]string, occurrence int) string {
	h := sha256.New()
	for _, s := range []string{pipelineID, component} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(payload)
	h.Write([]byte{0})
	keys := make([]string, 0, len(meta))
	for k := range meta {
		if !VolatileMetaKeys[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{'='})
		h.Write([]byte(meta[k]))
		h.Write([]byte{0})
	}
	h.Write([]byte(strconv.Itoa(occurrence)))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// DeadLetterSink receives dead letters. WriteDeadLetters is all or nothing
// from the caller's point of view: on error the caller keeps the records
// (nacks them) and may write them again, so a sink must be idempotent by ID.
type DeadLetterSink interface {
	WriteDeadLetters(ctx context.Context, dls []DeadLetter) error
	Close() error
}

// DeadLetterFilter selects dead letters for replay.
type DeadLetterFilter struct {
	Fingerprint string
	PipelineID  string
	// IncludeReplayed also returns records already replayed.
	IncludeReplayed bool
	Limit           int
}

// DeadLetterStore is a sink that can be read back for replay.
type DeadLetterStore interface {
	DeadLetterSink
	// Replay hands pending dead letters matching f to send in chunks of at
	// most chunk records, oldest first, and marks each chunk replayed once
	// send returns nil. It returns how many were replayed. Records marked
	// replayed are never handed out again, so replaying twice sends each
	// record once.
	Replay(ctx context.Context, f DeadLetterFilter, chunk int, send func(ctx context.Context, dls []DeadLetter) error) (int, error)
}

// SinkFunc adapts a function (such as a write to any Benthos output) to
// DeadLetterSink.
type SinkFunc func(ctx context.Context, dls []DeadLetter) error

// WriteDeadLetters calls f.
func (f SinkFunc) WriteDeadLetters(ctx context.Context, dls []DeadLetter) error { return f(ctx, dls) }

// Close does nothing.
func (f SinkFunc) Close() error { return nil }

// ---- PostgreSQL table ----

// PostgresDeadLetters stores dead letters in a PostgreSQL table, created on
// open when missing. Inserts are idempotent by id.
type PostgresDeadLetters struct {
	pool  *pgxpool.Pool
	table pgutil.Ident
}

// OpenPostgresDeadLetters connects and creates the table if needed.
func OpenPostgresDeadLetters(ctx context.Context, dsn, table string) (*PostgresDeadLetters, error) {
	id, err := pgutil.ParseIdent(table)
	if err != nil {
		return nil, pgutil.Permanentf("dead letter table", "%w", err)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, pgutil.Permanentf("dead letter dsn", "invalid DSN %s: %s", redact.DSN(dsn), redact.String(err.Error()))
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, pgutil.Wrap("connect to dead letter database "+redact.DSN(dsn), redact.Scrub(dsn, err))
	}
	s := &PostgresDeadLetters{pool: pool, table: id}
	if err := s.ensureTable(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Table is the dead-letter table name.
func (s *PostgresDeadLetters) Table() pgutil.Ident { return s.table }

func (s *PostgresDeadLetters) ensureTable(ctx context.Context) error {
	// Look before creating: CREATE ... IF NOT EXISTS still takes locks,
	// which would queue behind a replay holding the table's rows.
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s.table.Quoted()).Scan(&exists); err != nil {
		return pgutil.Wrap("look up dead letter table "+s.table.String(), err)
	}
	if exists {
		return nil
	}
	idx := s.table.Name
	if len(idx) > 40 {
		idx = idx[:40]
	}
	ddl := `CREATE TABLE IF NOT EXISTS ` + s.table.Quoted() + ` (
	id             text PRIMARY KEY,
	pipeline_id    text NOT NULL DEFAULT '',
	component      text NOT NULL DEFAULT '',
	payload        jsonb,
	payload_raw    bytea,
	metadata       jsonb,
	category       text NOT NULL,
	fingerprint    text NOT NULL,
	template       text NOT NULL DEFAULT '',
	error          text NOT NULL,
	code           text NOT NULL DEFAULT '',
	attempts       integer NOT NULL DEFAULT 0,
	schema_version text NOT NULL DEFAULT '',
	error_id       text NOT NULL DEFAULT '',
	created_at     timestamptz NOT NULL DEFAULT now(),
	replayed_at    timestamptz,
	replay_count   integer NOT NULL DEFAULT 0
)`
	if _, err := s.pool.Exec(ctx, ddl); err != nil {
		// Two processes creating the table at once: one wins, the other
		// sees a unique violation on the catalog; the table exists.
		if pgutil.SQLState(err) != "23505" && pgutil.SQLState(err) != "42P07" {
			return pgutil.Wrap("create dead letter table "+s.table.String(), err)
		}
	}
	index := `CREATE INDEX IF NOT EXISTS ` + pgutil.QuoteIdent(idx+"_pending_idx") + ` ON ` + s.table.Quoted() +
		` (fingerprint, created_at) WHERE replayed_at IS NULL`
	if _, err := s.pool.Exec(ctx, index); err != nil && pgutil.SQLState(err) != "23505" && pgutil.SQLState(err) != "42P07" {
		return pgutil.Wrap("index dead letter table "+s.table.String(), err)
	}
	return nil
}

// WriteDeadLetters inserts the records in one statement; ids already
// present are left alone.
func (s *PostgresDeadLetters) WriteDeadLetters(ctx context.Context, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	n := len(dls)
	var (
		ids, pipes, comps, cats, fps, tmpls, errs, codes, schemas, errIDs = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		payloads, metas = make([]*string, n), make([]*string, n)
		raws            = make([][]byte, n)
		attempts        = make([]int32, n)
		created         = make([]time.Time, n)
	)
	for i, d := range dls {
		ids[i], pipes[i], comps[i], cats[i], fps[i], tmpls[i] = d.ID, d.PipelineID, d.Component, string(d.Category), d.Fingerprint, d.Template
		errs[i], codes[i], schemas[i], errIDs[i] = sanitizeText(d.Error), d.Code, d.SchemaVersion, d.ErrorID
		attempts[i] = int32(d.Attempts)
		created[i] = d.CreatedAt
		if created[i].IsZero() {
			created[i] = time.Now()
		}
		if payloadIsJSON(d.Payload) {
			p := string(d.Payload)
			payloads[i] = &p
		} else {
			raws[i] = d.Payload
			if raws[i] == nil {
				raws[i] = []byte{}
			}
		}
		if len(d.Metadata) > 0 {
			b, err := json.Marshal(d.Metadata)
			if err != nil {
				return fmt.Errorf("dead letter %s: metadata: %w", d.ID, err)
			}
			m := string(b)
			metas[i] = &m
		}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table.Quoted()+` (id, pipeline_id, component, payload, payload_raw, metadata,
		category, fingerprint, template, error, code, attempts, schema_version, error_id, created_at)
		SELECT u.id, u.pipe, u.comp, u.payload::jsonb, CASE WHEN u.payload IS NULL THEN u.raw END, u.meta::jsonb,
			u.cat, u.fp, u.tmpl, u.err, u.code, u.attempts, u.schema, u.error_id, u.created
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::text[], $8::text[],
			$9::text[], $10::text[], $11::text[], $12::int4[], $13::text[], $14::text[], $15::timestamptz[])
			AS u(id, pipe, comp, payload, raw, meta, cat, fp, tmpl, err, code, attempts, schema, error_id, created)
		ON CONFLICT (id) DO NOTHING`,
		ids, pipes, comps, payloads, raws, metas, cats, fps, tmpls, errs, codes, attempts, schemas, errIDs, created)
	if err != nil {
		return pgutil.Wrap("write dead letters to "+s.table.String(), err)
	}
	return nil
}

// sanitizeText removes NUL bytes and invalid UTF-8, which text columns
// reject, from error messages.
func sanitizeText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

// Replay locks a chunk of pending rows (FOR UPDATE SKIP LOCKED, so two
// concurrent replays never send the same row), sends it, and marks it
// replayed in the same transaction.
func (s *PostgresDeadLetters) Replay(ctx context.Context, f DeadLetterFilter, chunk int, send func(ctx context.Context, dls []DeadLetter) error) (int, error) {
	if chunk <= 0 {
		chunk = 500
	}
	total := 0
	seen := map[string]bool{}
	// Only records that were dead letters when the replay began: a record
	// that fails again during the replay is stored anew and must wait for
	// the next replay, or this one would never end.
	var started time.Time
	if err := s.pool.QueryRow(ctx, `SELECT now()`).Scan(&started); err != nil {
		return 0, pgutil.Wrap("replay dead letters from "+s.table.String(), err)
	}
	for f.Limit <= 0 || total < f.Limit {
		n := chunk
		if f.Limit > 0 && f.Limit-total < n {
			n = f.Limit - total
		}
		var got int
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			conds := []string{"created_at <= $1"}
			args := []any{started}
			if !f.IncludeReplayed {
				conds = append(conds, "replayed_at IS NULL")
			}
			if f.Fingerprint != "" {
				args = append(args, f.Fingerprint)
				conds = append(conds, "fingerprint = $"+strconv.Itoa(len(args)))
			}
			if f.PipelineID != "" {
				args = append(args, f.PipelineID)
				conds = append(conds, "pipeline_id = $"+strconv.Itoa(len(args)))
			}
			if len(seen) > 0 {
				ids := make([]string, 0, len(seen))
				for id := range seen {
					ids = append(ids, id)
				}
				args = append(args, ids)
				n := strconv.Itoa(len(args))
				// Neither the records already sent nor those they became
				// when they failed again during this replay.
				conds = append(conds, "NOT (id = ANY($"+n+"))", "NOT (coalesce(metadata->>'dead_letter_id', '') = ANY($"+n+"))")
			}
			where := ""
			if len(conds) > 0 {
				where = " WHERE " + strings.Join(conds, " AND ")
			}
			args = append(args, n)
			rows, err := tx.Query(ctx, `SELECT id, pipeline_id, component, coalesce(payload::text, ''), payload_raw,
				coalesce(metadata::text, ''), category, fingerprint, template, error, code, attempts, schema_version, error_id,
				created_at, replayed_at FROM `+s.table.Quoted()+where+` ORDER BY created_at, id LIMIT $`+strconv.Itoa(len(args))+
				` FOR UPDATE SKIP LOCKED`, args...)
			if err != nil {
				return err
			}
			var dls []DeadLetter
			for rows.Next() {
				var (
					d             DeadLetter
					payload, meta string
					raw           []byte
					cat           string
				)
				if err := rows.Scan(&d.ID, &d.PipelineID, &d.Component, &payload, &raw, &meta, &cat, &d.Fingerprint, &d.Template,
					&d.Error, &d.Code, &d.Attempts, &d.SchemaVersion, &d.ErrorID, &d.CreatedAt, &d.ReplayedAt); err != nil {
					rows.Close()
					return err
				}
				d.Category = Category(cat)
				if payload != "" {
					d.Payload = []byte(payload)
				} else {
					d.Payload = raw
				}
				if meta != "" {
					if err := json.Unmarshal([]byte(meta), &d.Metadata); err != nil {
						rows.Close()
						return fmt.Errorf("dead letter %s: metadata: %w", d.ID, err)
					}
				}
				dls = append(dls, d)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if len(dls) == 0 {
				return nil
			}
			if err := send(ctx, dls); err != nil {
				return fmt.Errorf("replaying %d dead letters: %w", len(dls), err)
			}
			ids := make([]string, len(dls))
			for i, d := range dls {
				ids[i] = d.ID
				seen[d.ID] = true
			}
			if _, err := tx.Exec(ctx, `UPDATE `+s.table.Quoted()+` SET replayed_at = now(), replay_count = replay_count + 1
				WHERE id = ANY($1)`, ids); err != nil {
				return err
			}
			got = len(dls)
			return nil
		})
		if err != nil {
			return total, pgutil.Wrap("replay dead letters from "+s.table.String(), err)
		}
		total += got
		if got < n {
			break
		}
	}
	return total, nil
}

// Close closes the pool.
func (s *PostgresDeadLetters) Close() error {
	s.pool.Close()
	return nil
}

// ---- JSON Lines file ----

// FileDeadLetters appends dead letters to a JSON Lines file, one object per
// line, synced after each write. Replayed ids are kept in a sidecar file
// (path + ".replayed") so that the dead-letter file itself is append-only.
type FileDeadLetters struct {
	mu   sync.Mutex
	path string
	f    *os.File
	ids  map[string]bool
}

// OpenFileDeadLetters opens (creating) the file and reads the ids already in it.
func OpenFileDeadLetters(path string) (*FileDeadLetters, error) {
	s := &FileDeadLetters{path: path, ids: map[string]bool{}}
	existing, err := readDeadLetterFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, d := range existing {
		s.ids[d.ID] = true
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open dead letter file: %w", err)
	}
	s.f = f
	return s, nil
}

func readDeadLetterFile(path string) ([]DeadLetter, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []DeadLetter
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var d DeadLetter
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			return nil, fmt.Errorf("dead letter file %s line %d: %w", path, line, err)
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read dead letter file %s: %w", path, err)
	}
	return out, nil
}

// WriteDeadLetters appends records whose id is not in the file yet.
func (s *FileDeadLetters) WriteDeadLetters(_ context.Context, dls []DeadLetter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var buf []byte
	var added []string
	for _, d := range dls {
		if s.ids[d.ID] {
			continue
		}
		if d.CreatedAt.IsZero() {
			d.CreatedAt = time.Now().UTC()
		}
		d.Error = sanitizeText(d.Error)
		b, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("dead letter %s: %w", d.ID, err)
		}
		buf = append(append(buf, b...), '\n')
		added = append(added, d.ID)
	}
	if len(buf) == 0 {
		return nil
	}
	if _, err := s.f.Write(buf); err != nil {
		return fmt.Errorf("write dead letter file: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync dead letter file: %w", err)
	}
	for _, id := range added {
		s.ids[id] = true
	}
	return nil
}

// Replay sends pending records and appends their ids to the sidecar file.
func (s *FileDeadLetters) Replay(ctx context.Context, f DeadLetterFilter, chunk int, send func(ctx context.Context, dls []DeadLetter) error) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if chunk <= 0 {
		chunk = 500
	}
	all, err := readDeadLetterFile(s.path)
	if err != nil {
		return 0, err
	}
	replayed := map[string]bool{}
	side := s.path + ".replayed"
	if b, err := os.ReadFile(side); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if id, _, _ := strings.Cut(strings.TrimSpace(l), " "); id != "" {
				replayed[id] = true
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("read %s: %w", side, err)
	}
	var pending []DeadLetter
	for _, d := range all {
		if (replayed[d.ID] && !f.IncludeReplayed) || (f.Fingerprint != "" && d.Fingerprint != f.Fingerprint) ||
			(f.PipelineID != "" && d.PipelineID != f.PipelineID) {
			continue
		}
		pending = append(pending, d)
		if f.Limit > 0 && len(pending) >= f.Limit {
			break
		}
	}
	sf, err := os.OpenFile(side, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", side, err)
	}
	defer sf.Close()
	total := 0
	for start := 0; start < len(pending); start += chunk {
		end := min(start+chunk, len(pending))
		part := pending[start:end]
		if err := send(ctx, part); err != nil {
			return total, fmt.Errorf("replaying %d dead letters: %w", len(part), err)
		}
		var b strings.Builder
		now := time.Now().UTC().Format(time.RFC3339Nano)
		for _, d := range part {
			b.WriteString(d.ID + " " + now + "\n")
		}
		if _, err := sf.WriteString(b.String()); err != nil {
			return total, fmt.Errorf("write %s: %w", side, err)
		}
		if err := sf.Sync(); err != nil {
			return total, fmt.Errorf("sync %s: %w", side, err)
		}
		total += len(part)
	}
	return total, nil
}

// Close closes the file.
func (s *FileDeadLetters) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Close()
}

// OpenDeadLetterStore opens a dead-letter store by address: a postgres://
// or postgresql:// DSN (table names the table), or a file path (file:// or
// a plain path) of a JSON Lines file.
func OpenDeadLetterStore(ctx context.Context, addr, table string) (DeadLetterStore, error) {
	switch {
	case strings.HasPrefix(addr, "postgres://"), strings.HasPrefix(addr, "postgresql://"):
		if table == "" {
			return nil, errors.New("a postgres dead-letter store needs a table name")
		}
		return OpenPostgresDeadLetters(ctx, addr, table)
	case strings.HasPrefix(addr, "file://"):
		return OpenFileDeadLetters(strings.TrimPrefix(addr, "file://"))
	case strings.Contains(addr, "://"):
		return nil, fmt.Errorf("unsupported dead-letter store %q: use postgres:// or a file path", redact.DSN(addr))
	default:
		return OpenFileDeadLetters(addr)
	}
}
