package resolution

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/agentetl/agentetl/internal/pgutil"
)

// AdjustmentKind names a configuration adjustment the agent may make.
type AdjustmentKind string

// The adjustments on the allow-list.
const (
	// AdjustCoerce converts a value to the destination column's type
	// (text "2024-05-01" into a date column, "42" into an integer).
	AdjustCoerce AdjustmentKind = "coerce"
	// AdjustTruncate cuts an over-long string to the column's length.
	AdjustTruncate AdjustmentKind = "truncate"
	// AdjustNullInvalidDate writes NULL for an unparseable date in a
	// nullable column.
	AdjustNullInvalidDate AdjustmentKind = "null_invalid_date"
	// AdjustShrinkBatch halves the write batch when the destination says
	// the batch or message is too large.
	AdjustShrinkBatch AdjustmentKind = "shrink_batch"
	// AdjustAddNullableColumn adds a missing column, nullable, to the
	// destination for additive schema drift.
	AdjustAddNullableColumn AdjustmentKind = "add_nullable_column"
)

// AllAdjustments lists every adjustment kind.
func AllAdjustments() []AdjustmentKind {
	return []AdjustmentKind{AdjustCoerce, AdjustTruncate, AdjustNullInvalidDate, AdjustShrinkBatch, AdjustAddNullableColumn}
}

// AdjustmentSet is an allow-list.
type AdjustmentSet map[AdjustmentKind]bool

// DefaultAdjustments are the lossless ones: coercion keeps the value's
// meaning and shrinking a batch changes nothing written. Truncation,
// nulling dates and altering the destination change data or schema and
// must be allowed explicitly.
func DefaultAdjustments() AdjustmentSet {
	return AdjustmentSet{AdjustCoerce: true, AdjustShrinkBatch: true}
}

// ParseAdjustments builds an allow-list from names.
func ParseAdjustments(names []string) (AdjustmentSet, error) {
	set := AdjustmentSet{}
	for _, n := range names {
		ok := false
		for _, k := range AllAdjustments() {
			if string(k) == n {
				set[k], ok = true, true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown adjustment %q (allowed: coerce, truncate, null_invalid_date, shrink_batch, add_nullable_column)", n)
		}
	}
	return set, nil
}

// Names lists the set's kinds, sorted.
func (s AdjustmentSet) Names() []string {
	var out []string
	for k, v := range s {
		if v {
			out = append(out, string(k))
		}
	}
	sort.Strings(out)
	return out
}

// Adjustment is one proposed or applied change.
type Adjustment struct {
	Kind     AdjustmentKind `json:"kind"`
	Column   string         `json:"column,omitempty"`
	DataType string         `json:"dataType,omitempty"`
	// Limit is the maximum length for truncate.
	Limit  int    `json:"limit,omitempty"`
	Detail string `json:"detail"`
}

var tooLarge = regexp.MustCompile(`(?i)too large|MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE|max_allowed_packet|\b413\b|exceeds the maximum`)

// ProposeAdjustment returns the allowed adjustment that fits a classified
// error, if any.
func ProposeAdjustment(c Classification, msg string, allowed AdjustmentSet) (Adjustment, bool) {
	ev := c.Evidence
	code := ev.Code
	switch {
	case (code == "42804" || code == "22P02") && ev.Column != "" && coercible(ev.DataType) && allowed[AdjustCoerce] &&
		strings.Contains(msg, "cannot encode"):
		return Adjustment{Kind: AdjustCoerce, Column: ev.Column, DataType: ev.DataType,
			Detail: fmt.Sprintf("convert values of %q to %s before writing", ev.Column, ev.DataType)}, true
	case code == "22001" && ev.Column != "" && allowed[AdjustTruncate]:
		if m := tooLongType.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			return Adjustment{Kind: AdjustTruncate, Column: ev.Column, Limit: n,
				Detail: fmt.Sprintf("truncate %q to %d characters", ev.Column, n)}, true
		}
	case (code == "22007" || code == "22008") && ev.Column != "" && allowed[AdjustNullInvalidDate]:
		return Adjustment{Kind: AdjustNullInvalidDate, Column: ev.Column, DataType: ev.DataType,
			Detail: fmt.Sprintf("write NULL for invalid dates in %q", ev.Column)}, true
	case c.Category == CategoryResource && tooLarge.MatchString(msg) && allowed[AdjustShrinkBatch]:
		return Adjustment{Kind: AdjustShrinkBatch, Detail: "halve the write batch"}, true
	case code == "42703" && ev.Column != "" && !strings.Contains(ev.Column, ",") && allowed[AdjustAddNullableColumn]:
		return Adjustment{Kind: AdjustAddNullableColumn, Column: ev.Column,
			Detail: fmt.Sprintf("add the nullable column %q to the destination", ev.Column)}, true
	}
	return Adjustment{}, false
}

// coercible reports whether Coerce knows the type.
func coercible(dataType string) bool {
	return typeClass(dataType) != ""
}

func typeClass(dataType string) string {
	t := strings.ToLower(strings.TrimSpace(dataType))
	if i := strings.IndexByte(t, '('); i >= 0 {
		t = strings.TrimSpace(t[:i]) + t[strings.IndexByte(t, ')')+1:]
	}
	switch t {
	case "date":
		return "date"
	case "timestamp with time zone", "timestamptz", "timestamp without time zone", "timestamp":
		return "timestamp"
	case "integer", "int", "int4", "bigint", "int8", "smallint", "int2":
		return "integer"
	case "numeric", "decimal":
		return "numeric"
	case "real", "float4", "double precision", "float8":
		return "float"
	case "boolean", "bool":
		return "boolean"
	case "text", "character varying", "varchar", "character", "char", "uuid", "citext":
		return "text"
	case "json", "jsonb":
		return "json"
	}
	return ""
}

var dateLayouts = []string{"2006-01-02", time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05-07"}

// ParseDate reads the ISO date and timestamp forms; anything else, and
// impossible dates such as 2024-02-30, is an error.
func ParseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 date or timestamp")
}

// Coerce converts v for a column of dataType. It returns the converted
// value or an error that explains why the value cannot be converted.
func Coerce(v any, dataType string) (any, error) {
	if v == nil {
		return nil, nil
	}
	cls := typeClass(dataType)
	switch cls {
	case "date", "timestamp":
		switch x := v.(type) {
		case time.Time:
			return x, nil
		case string:
			t, err := ParseDate(x)
			if err != nil {
				return nil, err
			}
			if cls == "date" {
				return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), nil
			}
			return t, nil
		}
	case "integer":
		switch x := v.(type) {
		case string:
			i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("not an integer")
			}
			return i, nil
		case json.Number:
			i, err := x.Int64()
			if err != nil {
				return nil, fmt.Errorf("not an integer")
			}
			return i, nil
		case float64:
			if x != math.Trunc(x) || math.IsInf(x, 0) || math.IsNaN(x) {
				return nil, fmt.Errorf("not an integer")
			}
			return int64(x), nil
		case int64, int32, int:
			return x, nil
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case "numeric", "float":
		switch x := v.(type) {
		case string:
			s := strings.TrimSpace(x)
			if _, err := strconv.ParseFloat(s, 64); err != nil {
				return nil, fmt.Errorf("not a number")
			}
			return json.Number(s), nil
		case json.Number, float64, int64, int:
			return x, nil
		}
	case "boolean":
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "t", "true", "yes", "y", "1", "on":
				return true, nil
			case "f", "false", "no", "n", "0", "off":
				return false, nil
			}
			return nil, fmt.Errorf("not a boolean")
		case json.Number:
			return x.String() != "0", nil
		}
	case "text":
		switch x := v.(type) {
		case string:
			return x, nil
		case map[string]any, []any:
			b, err := json.Marshal(x)
			if err != nil {
				return nil, err
			}
			return string(b), nil
		case time.Time:
			return x.Format(time.RFC3339Nano), nil
		default:
			return fmt.Sprint(x), nil
		}
	case "json":
		return v, nil
	}
	return nil, fmt.Errorf("cannot convert a %s value", pgutil.GoTypeName(v))
}

// adjuster holds the adjustments learned so far and applies them to every
// record before it is written. It is safe for concurrent use.
type adjuster struct {
	mu        sync.RWMutex
	coerce    map[string]string // column -> data type
	truncate  map[string]int    // column -> max characters
	nullDates map[string]bool
	active    bool
}

func newAdjuster() *adjuster {
	return &adjuster{coerce: map[string]string{}, truncate: map[string]int{}, nullDates: map[string]bool{}}
}

// learn adds adj; it reports false when it was already active.
func (a *adjuster) learn(adj Adjustment) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch adj.Kind {
	case AdjustCoerce:
		if a.coerce[adj.Column] == adj.DataType {
			return false
		}
		a.coerce[adj.Column] = adj.DataType
	case AdjustTruncate:
		if l, ok := a.truncate[adj.Column]; ok && l <= adj.Limit {
			return false
		}
		a.truncate[adj.Column] = adj.Limit
	case AdjustNullInvalidDate:
		if a.nullDates[adj.Column] {
			return false
		}
		a.nullDates[adj.Column] = true
		if adj.DataType != "" && a.coerce[adj.Column] == "" {
			a.coerce[adj.Column] = adj.DataType
		}
	default:
		return false
	}
	a.active = true
	return true
}

func (a *adjuster) isActive() bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.active
}

// apply returns rec adjusted (a copy when anything changed), whether it
// changed, and an error for a value that cannot be made to fit: that
// record must be isolated, the others go on.
func (a *adjuster) apply(rec map[string]any) (map[string]any, bool, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.active || rec == nil {
		return rec, false, nil
	}
	var out map[string]any
	set := func(k string, v any) {
		if out == nil {
			out = make(map[string]any, len(rec))
			for kk, vv := range rec {
				out[kk] = vv
			}
		}
		out[k] = v
	}
	for col, typ := range a.coerce {
		v, ok := rec[col]
		if !ok || v == nil {
			continue
		}
		nv, err := Coerce(v, typ)
		if err != nil {
			cls := typeClass(typ)
			if (cls == "date" || cls == "timestamp") && a.nullDates[col] {
				set(col, nil)
				continue
			}
			code := "22P02"
			if cls == "date" || cls == "timestamp" {
				code = "22007"
			}
			return rec, false, &pgutil.Error{Op: "coerce", SQLState: code, Column: col, DataType: typ, Permanent: true,
				Err: fmt.Errorf("invalid input syntax for type %s: %s (column %q: %v)", typ, preview(v), col, err)}
		}
		if !sameValue(nv, v) {
			set(col, nv)
		}
	}
	for col, n := range a.truncate {
		if s, ok := rec[col].(string); ok && utf8.RuneCountInString(s) > n {
			r := []rune(s)
			set(col, string(r[:n]))
		}
	}
	if out == nil {
		return rec, false, nil
	}
	return out, true, nil
}

func sameValue(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case int64:
		y, ok := b.(int64)
		return ok && x == y
	case json.Number:
		y, ok := b.(json.Number)
		return ok && x == y
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y) && x.Location() == y.Location()
	}
	return false
}

func preview(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.Quote(s)
}
