package mapping

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/agentetl/agentetl/internal/model"
)

// op is one kind of value conversion. A plan is the dialect-neutral
// description of how a target value is computed; Bloblang and SQL are two
// renderings of the same plan, so they cannot drift apart.
type op int

const (
	opCopy       op = iota
	opEpoch         // unix time number -> timestamp/date
	opParseDate     // string in layout -> timestamp/date
	opFormatDate    // RFC 3339 timestamp -> date
	opFlag          // flag strings / 0-1 -> boolean
	opNumber        // numeric string -> number
	opInteger       // numeric value or string -> integer
	opString        // any scalar -> string
	opConcat        // several sources -> one string
	opSplit         // one string -> one of its words
	opDatePart      // date -> year / month / day number
	opDateTime      // date + time -> timestamp
)

type plan struct {
	op        op
	src       []string
	layout    string // source layout (opParseDate, opDatePart, opDateTime)
	layout2   string // time layout for opDateTime
	unit      string // epoch unit
	trueVals  []string
	falseVals []string
	decorated bool
	truncate  int // max characters after the op (varchar(n)); 0 = none
	sep       string
	index     int    // opSplit word index; -1 is the last word
	part      string // opDatePart: year, month, day
	tKind     Kind
}

// RFC 3339 with optional fractional seconds: the JSON timestamp form.
const rfc3339 = "2006-01-02T15:04:05.999999999Z07:00"

// planFor decides how the target value is computed from its sources.
// derived is the derived-mapping kind ("" for direct/transformed).
func planFor(srcs []*fieldFeat, tgt *fieldFeat, derived string) plan {
	p := plan{tKind: effectiveTargetKind(tgt)}
	for _, s := range srcs {
		p.src = append(p.src, s.name)
	}
	switch derived {
	case derivedConcat:
		p.op, p.sep = opConcat, " "
		if hasWord(tgt, "address") || hasWord(tgt, "street") {
			p.sep = ", "
		}
		p.truncate = truncLen(nil, tgt)
		return p
	case derivedSplitFirst, derivedSplitLast:
		p.op, p.sep, p.index = opSplit, " ", 0
		if derived == derivedSplitLast {
			p.index = -1
		}
		p.truncate = truncLen(nil, tgt)
		return p
	case derivedYear, derivedMonth, derivedDay:
		p.op, p.part = opDatePart, derived
		p.layout = sourceLayout(srcs[0])
		return p
	case derivedDateTime:
		p.op = opDateTime
		p.layout, p.layout2 = "2006-01-02", "15:04:05"
		if pr := srcs[0].prof; pr != nil && pr.DateLayout != "" {
			p.layout = pr.DateLayout
		}
		if pr := srcs[1].prof; pr != nil && pr.DateLayout != "" {
			p.layout2 = pr.DateLayout
		}
		return p
	}
	s := srcs[0]
	sk := effectiveKind(s)
	pr := s.prof
	switch p.tKind {
	case KindTimestamp, KindDate:
		switch {
		case pr != nil && pr.Kind == ValEpoch:
			p.op, p.unit = opEpoch, pr.EpochUnit
		case (sk == KindInteger || sk == KindNumber) && pr == nil:
			p.op, p.unit = opEpoch, epochUnitFromName(s)
		case pr != nil && pr.DateLayout != "":
			p.op, p.layout = opParseDate, pr.DateLayout
			if p.tKind == KindTimestamp && isRFC3339(pr.DateLayout) {
				p.op = opCopy
			}
			if p.tKind == KindDate && pr.DateLayout == "2006-01-02" {
				p.op = opCopy
			}
		case sk == KindTimestamp && p.tKind == KindDate:
			p.op = opFormatDate
		}
	case KindBoolean:
		switch {
		case pr != nil && pr.Kind == ValFlag:
			p.op, p.trueVals, p.falseVals = opFlag, pr.FlagTrue, pr.FlagFalse
		case sk == KindInteger || sk == KindNumber:
			p.op, p.trueVals, p.falseVals = opFlag, []string{"1"}, []string{"0"}
		case sk == KindString:
			p.op, p.trueVals, p.falseVals = opFlag, []string{"true", "t", "yes", "y", "1"}, []string{"false", "f", "no", "n", "0"}
		}
		if p.op == opFlag && negated(tgt) != negated(s) {
			p.trueVals, p.falseVals = p.falseVals, p.trueVals
		}
	case KindInteger, KindNumber:
		switch {
		case sk == KindString || sk == KindUnknown && pr != nil && pr.Strings:
			p.op = opNumber
			if pr != nil {
				p.decorated = pr.Decorated
			}
			if p.tKind == KindInteger {
				p.op = opInteger
			}
		case sk == KindNumber && p.tKind == KindInteger:
			p.op = opInteger
		case sk == KindBoolean:
			p.op = opInteger
		}
	case KindString, KindUUID:
		switch sk {
		case KindInteger, KindNumber, KindBoolean, KindUUID:
			p.op = opString
		}
		p.truncate = truncLen(s, tgt)
	}
	return p
}

// effectiveTargetKind reads the target's declared type; an undeclared
// target follows its samples like a source would.
func effectiveTargetKind(t *fieldFeat) Kind {
	return effectiveKind(t)
}

func truncLen(s, t *fieldFeat) int {
	n := t.typ.Length
	if n <= 0 || t.typ.Kind != KindString {
		return 0
	}
	if s != nil && s.typ.Kind == KindString && s.typ.Length > 0 && s.typ.Length <= n {
		return 0
	}
	if s != nil && s.typ.Length == 0 && s.prof != nil && s.prof.MaxLen <= n && s.typ.Kind != KindString {
		return 0
	}
	return n
}

func sourceLayout(s *fieldFeat) string {
	if s.prof != nil && s.prof.DateLayout != "" {
		return s.prof.DateLayout
	}
	if effectiveKind(s) == KindDate {
		return "2006-01-02"
	}
	return rfc3339
}

func isRFC3339(layout string) bool {
	return strings.HasPrefix(layout, "2006-01-02T15:04:05") && strings.HasSuffix(layout, "Z07:00")
}

// epochUnitFromName guesses the unit of an integer timestamp without
// samples: names that say milliseconds get "ms", everything else seconds.
func epochUnitFromName(s *fieldFeat) string {
	n := strings.ToLower(s.name)
	if strings.Contains(n, "ms") || strings.Contains(n, "milli") {
		return "ms"
	}
	return "s"
}

func hasWord(f *fieldFeat, w string) bool {
	for _, x := range f.words {
		if x.w == w {
			return true
		}
	}
	return false
}

func negated(f *fieldFeat) bool {
	for _, w := range f.long {
		if negativeWords[w] {
			return true
		}
	}
	return false
}

var bareIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// BloblangPath renders a field reference under root or this. Any name that
// is not a plain identifier is written as a quoted segment, which Bloblang
// unquotes with Go string rules, so spaces, dots, quotes, newlines and
// non-ASCII names are all addressed exactly and can never inject code.
func BloblangPath(base, name string) string {
	if bareIdent.MatchString(name) {
		return base + "." + name
	}
	return base + "." + strconv.Quote(name)
}

func blStr(s string) string { return strconv.Quote(s) }

// bloblang renders the plan as a Bloblang expression over `this`.
func (p plan) bloblang() string {
	src := func(i int) string { return BloblangPath("this", p.src[i]) }
	guard := func(expr string) string {
		return "if " + src(0) + " == null { null } else { " + expr + " }"
	}
	var e string
	switch p.op {
	case opCopy:
		e = src(0)
		if p.truncate > 0 {
			e = guard(truncBL(src(0)+".string()", p.truncate))
		}
		return e
	case opEpoch:
		// Dividing makes a float whose last digits are noise; rounding to
		// the unit's resolution restores the exact instant.
		div := map[string]string{"ms": " / 1000", "us": " / 1000000", "ns": " / 1000000000"}[p.unit]
		round := map[string]string{"ms": ".ts_round(1000000)", "us": ".ts_round(1000)"}[p.unit]
		out := rfc3339
		if p.tKind == KindDate {
			out = "2006-01-02"
		}
		e = "(" + src(0) + ".number()" + div + ")" + round + ".ts_format(" + blStr(out) + ", \"UTC\")"
	case opParseDate:
		out := rfc3339
		if p.tKind == KindDate {
			out = "2006-01-02"
		}
		e = src(0) + ".string().ts_parse(" + blStr(p.layout) + ").ts_format(" + blStr(out) + ")"
	case opFormatDate:
		e = src(0) + ".ts_format(\"2006-01-02\")"
	case opFlag:
		var b strings.Builder
		b.WriteString("match " + src(0) + ".string().lowercase() { ")
		for _, v := range p.trueVals {
			b.WriteString(blStr(v) + " => true, ")
		}
		for _, v := range p.falseVals {
			b.WriteString(blStr(v) + " => false, ")
		}
		b.WriteString("_ => null }")
		return guard(b.String())
	case opNumber, opInteger:
		if p.decorated {
			e = src(0) + ".string().re_replace_all(\"[^0-9eE.+-]\", \"\").number()"
		} else {
			e = src(0) + ".number()"
		}
		if p.op == opInteger {
			e += ".round().int64()"
		}
	case opString:
		e = src(0) + ".string()"
		if p.truncate > 0 {
			e = truncBL(e, p.truncate)
		}
	case opConcat:
		parts := make([]string, len(p.src))
		for i := range p.src {
			parts[i] = src(i)
		}
		// All parts null gives null, as SQL's NULLIF(concat_ws(...), '').
		e = "[" + strings.Join(parts, ", ") + "].filter(v -> v != null).map_each(v -> v.string()).join(" + blStr(p.sep) + ").(s -> if s == \"\" { null } else { s })"
		if p.truncate > 0 {
			e = truncBL(e, p.truncate)
		}
		return e
	case opSplit:
		e = src(0) + ".string().split(" + blStr(p.sep) + ").index(" + strconv.Itoa(p.index) + ")"
		if p.truncate > 0 {
			e = truncBL(e, p.truncate)
		}
	case opDatePart:
		f := map[string]string{derivedYear: "2006", derivedMonth: "1", derivedDay: "2"}[p.part]
		if isRFC3339(p.layout) {
			e = src(0) + ".ts_format(" + blStr(f) + ").number()"
		} else {
			e = src(0) + ".string().ts_parse(" + blStr(p.layout) + ").ts_format(" + blStr(f) + ").number()"
		}
	case opDateTime:
		e = "(" + src(0) + ".string() + \" \" + " + src(1) + ".string()).ts_parse(" + blStr(p.layout+" "+p.layout2) + ").ts_format(" + blStr(rfc3339) + ")"
	}
	return guard(e)
}

// truncBL cuts a string to n characters (not bytes, which Bloblang's slice
// counts, so multi-byte text is never split inside a character).
func truncBL(expr string, n int) string {
	if n <= 1000 {
		return expr + ".re_replace_all(" + blStr(fmt.Sprintf("(?s)^(.{0,%d}).*$", n)) + ", \"$1\")"
	}
	return expr + ".split(\"\").slice(0, " + strconv.Itoa(n) + ").join(\"\")"
}

// QuoteIdent quotes a PostgreSQL identifier. Names with NUL bytes cannot be
// represented and are rejected before any SQL is produced.
func QuoteIdent(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("identifier %q contains a NUL byte", name)
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`, nil
}

// QuoteLiteral quotes a PostgreSQL string literal for
// standard_conforming_strings (the default since 9.1): backslashes are
// literal and a quote is doubled.
func QuoteLiteral(s string) (string, error) {
	if strings.ContainsRune(s, 0) {
		return "", fmt.Errorf("literal contains a NUL byte")
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'", nil
}

// sql renders the plan as a PostgreSQL expression.
func (p plan) sql() (string, error) {
	ids := make([]string, len(p.src))
	for i, s := range p.src {
		q, err := QuoteIdent(s)
		if err != nil {
			return "", err
		}
		ids[i] = q
	}
	lit := func(s string) string { q, _ := QuoteLiteral(s); return q }
	var e string
	switch p.op {
	case opCopy:
		e = ids[0]
	case opEpoch:
		div := map[string]string{"s": "", "ms": " / 1000.0", "us": " / 1000000.0", "ns": " / 1000000000.0"}[p.unit]
		e = "to_timestamp(" + ids[0] + "::double precision" + div + ")"
		if p.tKind == KindDate {
			e = "(" + e + " AT TIME ZONE 'UTC')::date"
		}
	case opParseDate:
		if pf, ok := pgFormat(p.layout); ok && !isISOLayout(p.layout) {
			if p.tKind == KindDate {
				e = "to_date(" + ids[0] + "::text, " + lit(pf) + ")"
			} else {
				e = "to_timestamp(" + ids[0] + "::text, " + lit(pf) + ")"
			}
		} else if p.tKind == KindDate {
			e = ids[0] + "::date"
		} else {
			e = ids[0] + "::timestamptz"
		}
	case opFormatDate:
		e = ids[0] + "::date"
	case opFlag:
		var b strings.Builder
		b.WriteString("CASE lower(" + ids[0] + "::text)")
		for _, v := range p.trueVals {
			b.WriteString(" WHEN " + lit(v) + " THEN true")
		}
		for _, v := range p.falseVals {
			b.WriteString(" WHEN " + lit(v) + " THEN false")
		}
		b.WriteString(" END")
		e = b.String()
	case opNumber, opInteger:
		if p.decorated {
			e = "NULLIF(regexp_replace(" + ids[0] + "::text, '[^0-9eE.+-]', '', 'g'), '')::numeric"
		} else {
			e = ids[0] + "::numeric"
		}
		if p.op == opInteger {
			e = "round(" + e + ")::bigint"
		}
	case opString:
		e = ids[0] + "::text"
	case opConcat:
		e = "NULLIF(concat_ws(" + lit(p.sep) + ", " + strings.Join(ids, ", ") + "), '')"
	case opSplit:
		if p.index == 0 {
			e = "split_part(" + ids[0] + "::text, " + lit(p.sep) + ", 1)"
		} else {
			e = "regexp_replace(" + ids[0] + "::text, '^.*' || " + lit(p.sep) + ", '')"
		}
	case opDatePart:
		src := ids[0] + "::timestamptz"
		if pf, ok := pgFormat(p.layout); ok && !isISOLayout(p.layout) {
			src = "to_timestamp(" + ids[0] + "::text, " + lit(pf) + ")"
		} else if p.layout == "2006-01-02" {
			src = ids[0] + "::date"
		}
		e = "EXTRACT(" + strings.ToUpper(p.part) + " FROM " + src + ")::integer"
	case opDateTime:
		e = "(" + ids[0] + "::date + " + ids[1] + "::time)"
	}
	if p.truncate > 0 {
		e = "left(" + e + "::text, " + strconv.Itoa(p.truncate) + ")"
	}
	return e, nil
}

func isISOLayout(l string) bool {
	return strings.HasPrefix(l, "2006-01-02")
}

// pgFormat converts a Go time layout into a to_timestamp format.
func pgFormat(layout string) (string, bool) {
	repl := []struct{ g, pg string }{
		{"2006", "YYYY"}, {"January", "FMMonth"}, {"Jan", "Mon"}, {"01", "MM"}, {"02", "DD"},
		{"15", "HH24"}, {"04", "MI"}, {"05", "SS"}, {"06", "YY"}, {".999999999", ".US"},
		{"Z07:00", "TZH:TZM"}, {"1", "MM"}, {"2", "DD"},
	}
	var b strings.Builder
	for i := 0; i < len(layout); {
		matched := false
		for _, r := range repl {
			if strings.HasPrefix(layout[i:], r.g) {
				b.WriteString(r.pg)
				i += len(r.g)
				matched = true
				break
			}
		}
		if !matched {
			c := layout[i]
			if c >= '0' && c <= '9' {
				return "", false
			}
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), true
}

// Program renders the complete mapping of a schema pair as one Bloblang
// program. Accepted and review mappings are included (review ones marked);
// unmapped targets are listed in comments so a reader sees the gaps.
func Program(res *Result) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# agentetl schema mapping: %s -> %s\n", commentSafe(res.Source.ID), commentSafe(res.Target.ID))
	// Gaps are listed first: the program must end with an assignment,
	// because Bloblang rejects a trailing comment without a newline and
	// programs get trimmed when embedded in YAML.
	var unmapped []string
	for _, m := range res.Mappings {
		if !m.Proposed() {
			unmapped = append(unmapped, m.TargetField)
		}
	}
	sort.Strings(unmapped)
	for _, u := range unmapped {
		fmt.Fprintf(&b, "# unmapped: %s\n", commentSafe(u))
	}
	b.WriteString("root = {}\n")
	for _, m := range res.Mappings {
		if !m.Proposed() {
			continue
		}
		p, err := res.planOf(m)
		if err != nil {
			return "", err
		}
		if m.Status == StatusReview {
			fmt.Fprintf(&b, "# review (confidence %.2f)\n", m.Confidence)
		}
		fmt.Fprintf(&b, "%s = %s\n", BloblangPath("root", m.TargetField), p.bloblang())
	}
	return b.String(), nil
}

// SQL renders the proposals as a PostgreSQL SELECT expression list, one
// `expression AS "target"` per line, for sources that live in Postgres.
func SQL(res *Result) (string, error) {
	var lines []string
	for _, m := range res.Mappings {
		if !m.Proposed() {
			continue
		}
		p, err := res.planOf(m)
		if err != nil {
			return "", err
		}
		e, err := p.sql()
		if err != nil {
			return "", err
		}
		alias, err := QuoteIdent(m.TargetField)
		if err != nil {
			return "", err
		}
		lines = append(lines, "  "+e+" AS "+alias)
	}
	if len(lines) == 0 {
		return "", nil
	}
	return strings.Join(lines, ",\n") + "\n", nil
}

// commentSafe makes a name printable on one comment line.
func commentSafe(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// planOf rebuilds the plan of a mapping from the result's schemas, so that
// mappings edited by a reviewer (or read back from JSON) render correctly.
func (r *Result) planOf(m FieldMapping) (plan, error) {
	r.ensureFeatures()
	ti, ok := r.tgtIndex[m.TargetField]
	if !ok {
		return plan{}, fmt.Errorf("target field %q is not in the target schema", m.TargetField)
	}
	var srcs []*fieldFeat
	for _, s := range m.SourceField {
		si, ok := r.srcIndex[s]
		if !ok {
			return plan{}, fmt.Errorf("source field %q is not in the source schema", s)
		}
		srcs = append(srcs, &r.src.fields[si])
	}
	if len(srcs) == 0 {
		return plan{}, fmt.Errorf("mapping for %q has no source field", m.TargetField)
	}
	t := &r.tgt.fields[ti]
	kind := ""
	if m.MappingType == TypeDerived {
		kind = derivedKindOf(srcs, t)
	}
	return planFor(srcs, t, kind), nil
}

func fieldsByName(fs []model.Field) map[string]int {
	m := make(map[string]int, len(fs))
	for i, f := range fs {
		m[f.Name] = i
	}
	return m
}
