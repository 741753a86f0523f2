package resolution

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentetl/agentetl/internal/pgutil"
)

// screens are validators learned from errors the destination raised: once a
// column has been rejected for being longer than varchar(n), for being null,
// or a key for already existing, later records that would certainly fail the
// same way are set aside before they are written, with the same category
// and fingerprint, instead of costing a failed write each. They are learned
// only from the destination's own structured evidence (SQLSTATE, column,
// the type's length, the key columns), so they never guess. Key screens
// remember only keys this engine wrote itself, so they hold for insert mode
// and are bounded in memory.
type screens struct {
	mu      sync.RWMutex
	maxLen  map[string]learned // column -> varchar length
	notNull map[string]learned
	checks  map[string]checkScreen // constraint name -> expression
	// tried remembers constraints whose definition was looked up.
	tried  map[string]bool
	keys   []string // unique key columns (one key at a time)
	keyErr learned
	seen   map[string]struct{}
	// keysGaveUp is set when too many keys were seen to remember them.
	keysGaveUp bool
	active     bool
}

// learned keeps the error a screen was learned from, to describe the
// records it sets aside with the same category and fingerprint.
type learned struct {
	limit int
	cls   Classification
	fp    string
	tmpl  string
	msg   string
}

type checkScreen struct {
	expr *CheckExpr
	l    learned
}

// wantCheck reports whether the definition of a violated CHECK constraint
// should be looked up (once per constraint).
func (s *screens) wantCheck(constraint string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if constraint == "" || s.tried[constraint] {
		return false
	}
	s.tried[constraint] = true
	return true
}

// addCheck adds a CHECK constraint screen.
func (s *screens) addCheck(constraint string, expr *CheckExpr, cls Classification, fp, tmpl, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[constraint] = checkScreen{expr: expr, l: learned{cls: cls, fp: fp, tmpl: tmpl, msg: msg}}
	s.active = true
}

// maxSeenKeys bounds the key screen's memory.
const maxSeenKeys = 2_000_000

func newScreens() *screens {
	return &screens{maxLen: map[string]learned{}, notNull: map[string]learned{}, checks: map[string]checkScreen{}, tried: map[string]bool{}}
}

// learnFrom adds a screen for err when its evidence allows one and
// reports whether a new screen was added.
func (s *screens) learnFrom(err error, cls Classification, fp, tmpl, msg string) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return false
	}
	l := learned{cls: cls, fp: fp, tmpl: tmpl, msg: msg}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch pg.Code {
	case "22001":
		m := tooLongType.FindStringSubmatch(pg.Message)
		col := cls.Evidence.Column
		if m == nil || col == "" {
			return false
		}
		fmt.Sscan(m[1], &l.limit)
		if old, ok := s.maxLen[col]; l.limit <= 0 || ok && old.limit == l.limit {
			return false
		}
		s.maxLen[col] = l
	case "23502":
		if _, ok := s.notNull[pg.ColumnName]; pg.ColumnName == "" || ok {
			return false
		}
		s.notNull[pg.ColumnName] = l
	case "23505":
		m := uniqueDetail.FindStringSubmatch(pg.Detail)
		if m == nil || s.keys != nil || s.keysGaveUp {
			return false
		}
		cols := strings.Split(m[1], ", ")
		for _, c := range cols {
			if c == "" || strings.ContainsAny(c, `"()`) {
				return false // an expression index: not a plain column list
			}
		}
		s.keys, s.keyErr, s.seen = cols, l, map[string]struct{}{}
	default:
		return false
	}
	s.active = true
	return true
}

func (s *screens) isActive() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.active
}

func keyOf(rec map[string]any, cols []string) (string, bool) {
	if len(cols) == 1 {
		return keyPart(rec[cols[0]])
	}
	var b strings.Builder
	for i, c := range cols {
		k, ok := keyPart(rec[c])
		if !ok {
			return "", false
		}
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(k)
	}
	return b.String(), true
}

// keyPart renders one key value as the text PostgreSQL compares equal:
// integers and decimal text in canonical form. Other kinds are not keyed.
func keyPart(v any) (string, bool) {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case string:
		return x, true
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return strconv.FormatInt(i, 10), true
		}
	}
	return "", false
}

// check returns the failure a record would certainly meet, or nil.
// batchKeys holds the keys of earlier records of the same delivery.
func (s *screens) check(rec map[string]any, batchKeys map[string]struct{}) *failure {
	if rec == nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for col, l := range s.maxLen {
		if v, ok := rec[col].(string); ok && len(v) > l.limit && utf8.RuneCountInString(v) > l.limit {
			return l.failure(fmt.Sprintf("%s (column %q, %d characters)", l.msg, col, utf8.RuneCountInString(v)))
		}
	}
	for _, c := range s.checks {
		if c.expr.Violated(rec) {
			return c.l.failure(c.l.msg)
		}
	}
	for col, l := range s.notNull {
		if v, ok := rec[col]; ok && v == nil {
			return l.failure(l.msg)
		}
	}
	if s.keys != nil {
		if k, ok := keyOf(rec, s.keys); ok {
			_, dup := s.seen[k]
			if _, inBatch := batchKeys[k]; dup || inBatch {
				return s.keyErr.failure(fmt.Sprintf("duplicate key value violates unique constraint %q: Key (%s)=(%s) already exists",
					s.keyErr.cls.Evidence.Constraint, strings.Join(s.keys, ", "), strings.ReplaceAll(k, "\x00", ", ")))
			}
			batchKeys[k] = struct{}{}
		}
	}
	return nil
}

func (l learned) failure(msg string) *failure {
	return &failure{err: &pgutil.Error{Op: "screen", SQLState: l.cls.Evidence.Code, Column: l.cls.Evidence.Column,
		Constraint: l.cls.Evidence.Constraint, Permanent: true, Err: errors.New(msg)},
		cls: l.cls, attempts: 0, fp: l.fp, tmpl: l.tmpl, msg: msg}
}

// wrote records the keys of written records for the key screen.
func (s *screens) wrote(b Batch, idx []int) {
	s.mu.RLock()
	keys := s.keys
	s.mu.RUnlock()
	if keys == nil {
		return
	}
	ks := make([]string, 0, len(idx))
	for _, i := range idx {
		if k, ok := keyOf(b.Record(i), keys); ok {
			ks = append(ks, k)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range ks {
		if len(s.seen) >= maxSeenKeys {
			s.keys, s.seen, s.keysGaveUp = nil, nil, true // too many to remember: rely on the destination
			return
		}
		s.seen[k] = struct{}{}
	}
}
