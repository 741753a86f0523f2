package discovery

import (
	"encoding/json"
	"hash/maphash"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ClassOf guesses how values of a declared type compare, from the type name
// as PostgreSQL, MySQL, SQLite or the file connector print it.
func ClassOf(dataType string) ValueClass {
	t := strings.ToLower(strings.TrimSpace(dataType))
	switch {
	case t == "":
		return ClassText
	case strings.HasSuffix(t, "[]") || strings.HasPrefix(t, "array") || strings.Contains(t, "json") ||
		strings.Contains(t, "blob") || strings.Contains(t, "binary") || t == "bytea" || t == "xml" ||
		strings.Contains(t, "geometry") || strings.Contains(t, "point") || strings.Contains(t, "polygon") ||
		t == "object" || t == "interval" || strings.HasPrefix(t, "bit") || strings.Contains(t, "vector"):
		return ClassOther
	case t == "boolean" || t == "bool":
		return ClassBoolean
	case strings.Contains(t, "int") || strings.Contains(t, "serial") || strings.HasPrefix(t, "numeric") ||
		strings.HasPrefix(t, "decimal") || strings.HasPrefix(t, "dec(") || t == "real" || strings.HasPrefix(t, "double") ||
		strings.HasPrefix(t, "float") || t == "number" || t == "year":
		if strings.Contains(t, "interval") || strings.Contains(t, "point") {
			return ClassOther
		}
		return ClassNumeric
	case strings.HasPrefix(t, "date") || strings.HasPrefix(t, "time"):
		return ClassTemporal
	}
	return ClassText
}

// ProfileOptions tune profiling.
type ProfileOptions struct {
	// TopK is the number of top values kept per column.
	TopK int
	// SampleValues is the number of example values kept per column.
	SampleValues int
	// SemanticThreshold is the share of values a detector must match.
	SemanticThreshold float64
}

const (
	maxSemanticCandidates = 1000
	maxDisplayRunes       = 100
)

// Profiler computes column profiles from rows in text form. It keeps memory
// bounded by the number of distinct values seen, which the connectors bound
// by sampling.
type Profiler struct {
	opts ProfileOptions
	cols []*colAcc
	rows int64
	seed maphash.Seed
}

type valEntry struct {
	count int64
	value string // shortened for display
}

type colAcc struct {
	name  string
	class ValueClass
	nulls int64
	runes int64
	// index maps a value's hash to its entry; entries is kept as a slice of
	// values so that a large profile is a few big objects for the GC.
	index   map[uint64]int32
	entries []valEntry
	// min and max, full text; numeric ones also parsed.
	min, max       string
	minNum, maxNum float64
	minOK, maxOK   bool
	candidates     []string
	sample         []string
}

// NewProfiler prepares a profiler for the given columns.
func NewProfiler(cols []Column, opts ProfileOptions) *Profiler {
	if opts.TopK <= 0 {
		opts.TopK = 5
	}
	if opts.SampleValues <= 0 {
		opts.SampleValues = 5
	}
	if opts.SemanticThreshold <= 0 || opts.SemanticThreshold > 1 {
		opts.SemanticThreshold = defaultSemanticThreshold
	}
	p := &Profiler{opts: opts, seed: maphash.MakeSeed()}
	for _, c := range cols {
		cl := c.Class
		if cl == "" {
			cl = ClassOf(c.DataType)
		}
		p.cols = append(p.cols, &colAcc{name: c.Name, class: cl, index: make(map[uint64]int32, 1024)})
	}
	return p
}

// Rows is the number of rows added so far.
func (p *Profiler) Rows() int64 { return p.rows }

// Add feeds one row: one value per column in text form, nil for NULL.
func (p *Profiler) Add(row [][]byte) {
	p.rows++
	for i, c := range p.cols {
		var v []byte
		if i < len(row) {
			v = row[i]
		}
		if v == nil {
			c.nulls++
			continue
		}
		c.runes += int64(utf8.RuneCount(v))
		h := maphash.Bytes(p.seed, v)
		if i, ok := c.index[h]; ok {
			c.entries[i].count++
			continue
		}
		// A new distinct value: the only point where text is copied.
		s := string(v)
		c.index[h] = int32(len(c.entries))
		c.entries = append(c.entries, valEntry{count: 1, value: shorten(s)})
		if len(c.candidates) < maxSemanticCandidates {
			c.candidates = append(c.candidates, s)
		}
		if len(c.sample) < p.opts.SampleValues && strings.TrimSpace(s) != "" {
			c.sample = append(c.sample, shorten(s))
		}
		c.observeMinMax(s)
	}
}

// observeMinMax only needs distinct values: a repeat cannot move min or max.
func (c *colAcc) observeMinMax(s string) {
	switch c.class {
	case ClassOther:
		return
	case ClassNumeric:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) {
			return
		}
		if !c.minOK || f < c.minNum {
			c.min, c.minNum, c.minOK = s, f, true
		}
		if !c.maxOK || f > c.maxNum {
			c.max, c.maxNum, c.maxOK = s, f, true
		}
	case ClassBoolean:
		b, ok := parseBool(s)
		if !ok {
			return
		}
		if b {
			c.max, c.maxOK = "true", true
			if !c.minOK {
				c.min, c.minOK = "true", true
			}
		} else {
			c.min, c.minOK = "false", true
			if !c.maxOK {
				c.max, c.maxOK = "false", true
			}
		}
	default:
		if !c.minOK || s < c.min {
			c.min, c.minOK = s, true
		}
		if !c.maxOK || s > c.max {
			c.max, c.maxOK = s, true
		}
	}
}

// Finish computes the profiles. totalRows is the table's row count (used to
// extrapolate distinct counts from a sample); exact says the rows added were
// the whole table.
func (p *Profiler) Finish(totalRows int64, exact bool) map[string]*FieldProfile {
	out := make(map[string]*FieldProfile, len(p.cols))
	for _, c := range p.cols {
		fp := &FieldProfile{NullCount: c.nulls, Sample: c.sample, TopValues: []ValueFrequency{}}
		if fp.Sample == nil {
			fp.Sample = []string{}
		}
		n := p.rows
		nonNull := n - c.nulls
		if n > 0 {
			fp.NullFraction = round(float64(c.nulls)/float64(n), 6)
		}
		if nonNull > 0 {
			fp.AvgLength = round(float64(c.runes)/float64(nonNull), 2)
		}
		d := int64(len(c.entries))
		fp.DistinctCount = d
		if !exact && nonNull > 0 {
			fp.DistinctEstimated = true
			var f1 int64
			for i := range c.entries {
				if c.entries[i].count == 1 {
					f1++
				}
			}
			popNonNull := float64(nonNull)
			if totalRows > 0 && n > 0 {
				popNonNull = float64(totalRows) * float64(nonNull) / float64(n)
			}
			fp.DistinctCount = estimateDistinct(float64(nonNull), float64(d), float64(f1), popNonNull)
		}
		if c.minOK {
			fp.Min = typedValue(c.class, shorten(c.min))
		}
		if c.maxOK {
			fp.Max = typedValue(c.class, shorten(c.max))
		}
		fp.TopValues = c.top(p.opts.TopK, n)
		var flags []string
		if len(c.entries) <= 4 {
			for _, e := range c.entries {
				flags = append(flags, e.value)
			}
		}
		fp.SemanticType, fp.SemanticConfidence = detectSemantic(c.name, c.class, c.candidates, flags, len(c.entries), p.opts.SemanticThreshold)
		out[c.name] = fp
	}
	return out
}

// top returns the k most frequent values (ties: smaller value first) in
// one pass over the entries, keeping a k-slot leaderboard.
func (c *colAcc) top(k int, rows int64) []ValueFrequency {
	better := func(a, b *valEntry) bool {
		if a.count != b.count {
			return a.count > b.count
		}
		return a.value < b.value
	}
	best := make([]*valEntry, 0, k)
	for i := range c.entries {
		e := &c.entries[i]
		if len(best) < k {
			best = append(best, e)
			continue
		}
		worst := 0
		for j := 1; j < len(best); j++ {
			if better(best[worst], best[j]) {
				worst = j
			}
		}
		if better(e, best[worst]) {
			best[worst] = e
		}
	}
	sort.Slice(best, func(i, j int) bool { return better(best[i], best[j]) })
	out := make([]ValueFrequency, len(best))
	for i, e := range best {
		out[i] = ValueFrequency{Value: typedValue(c.class, e.value), Count: e.count}
		if rows > 0 {
			out[i].Frequency = round(float64(e.count)/float64(rows), 6)
		}
	}
	return out
}

// estimateDistinct is the Haas-Stokes Duj1 estimator that PostgreSQL's
// ANALYZE uses: n*d / (n - f1 + f1*n/N), for a sample of n non-null values
// with d distinct of which f1 occur once, from N non-null rows.
func estimateDistinct(n, d, f1, N float64) int64 {
	if N <= n || n == 0 {
		return int64(d)
	}
	if f1 == n { // every sampled value unique: assume a unique column
		return int64(math.Round(N))
	}
	denom := n - f1 + f1*n/N
	est := n * d / denom
	est = math.Max(est, d)
	est = math.Min(est, N)
	return int64(math.Round(est))
}

var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// typedValue turns a text value into its JSON form for the column's class.
func typedValue(class ValueClass, s string) any {
	switch class {
	case ClassNumeric:
		t := strings.TrimSpace(s)
		if jsonNumber.MatchString(t) {
			return json.Number(t)
		}
	case ClassBoolean:
		if b, ok := parseBool(s); ok {
			return b
		}
	}
	return s
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "t", "true", "1", "yes", "y", "on":
		return true, true
	case "f", "false", "0", "no", "n", "off":
		return false, true
	}
	return false, false
}

func shorten(s string) string {
	if len(s) <= maxDisplayRunes {
		return s
	}
	n := 0
	for i := range s {
		if n == maxDisplayRunes {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

func round(f float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(f*p) / p
}
