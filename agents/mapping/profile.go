package mapping

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ValueKind is the semantic pattern of a column's sample values.
type ValueKind string

// Value kinds detected from samples.
const (
	ValNone      ValueKind = ""
	ValMixed     ValueKind = "mixed"
	ValBool      ValueKind = "bool"      // JSON booleans
	ValFlag      ValueKind = "flag"      // yes/no, Y/N, A/T style strings
	ValInteger   ValueKind = "integer"   // integers or integer strings
	ValDecimal   ValueKind = "decimal"   // decimals or decimal strings
	ValEpoch     ValueKind = "epoch"     // unix seconds or milliseconds
	ValDate      ValueKind = "date"      // dates in DateLayout
	ValTimestamp ValueKind = "timestamp" // date and time in DateLayout
	ValEmail     ValueKind = "email"
	ValURL       ValueKind = "url"
	ValUUID      ValueKind = "uuid"
	ValPhone     ValueKind = "phone"
	ValCode      ValueKind = "code" // short identifiers mixing letters and digits
	ValText      ValueKind = "text"
)

// Profile summarises the sample values of one field. It is what the
// instance signal compares and what transformation generation reads to
// learn formats (date layouts, flag vocabularies, decimal decoration).
type Profile struct {
	N    int
	Kind ValueKind
	// Strings reports that the values arrived as JSON strings.
	Strings bool
	// Values are the distinct normalised (trimmed, lower-case) values.
	Values []string
	// DateLayout is the Go layout that parses every value (date kinds).
	DateLayout string
	// EpochUnit is "s", "ms", "us" or "ns" for ValEpoch.
	EpochUnit string
	// FlagTrue lists the values meaning true for ValFlag (lower-case).
	FlagTrue, FlagFalse []string
	// Decorated reports numeric strings with thousands separators or
	// currency symbols that must be stripped before conversion.
	Decorated bool
	Numeric   bool
	Min, Max  float64
	MeanLen   float64
	MaxLen    int
	Shapes    map[string]bool
	// SplitSep is set when every value splits into several words on it
	// (a full name), used to generate split transformations.
	SplitSep string
}

var (
	reEmail = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[a-z]{2,}$`)
	reURL   = regexp.MustCompile(`^(https?|ftp)://\S+$|^www\.\S+\.\S+$`)
	reUUID  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	rePhone = regexp.MustCompile(`^\+?[0-9][0-9 ()./-]{6,}[0-9]$`)
	reDecor = regexp.MustCompile(`^[-+]?[$€£¥]?\s?[-+]?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?$|^[-+]?[$€£¥]\s?[-+]?[0-9]+(\.[0-9]+)?$`)
)

// dateLayouts are tried in order; the first that parses every sample wins.
// Month-first comes before day-first, and day-first wins only when some
// sample has a day above 12, which the month-first layout rejects.
var dateLayouts = []struct {
	layout string
	kind   ValueKind
}{
	{"2006-01-02T15:04:05Z07:00", ValTimestamp},
	{"2006-01-02T15:04:05.999999999Z07:00", ValTimestamp},
	{"2006-01-02T15:04:05.000-0700", ValTimestamp},
	{"2006-01-02T15:04:05-0700", ValTimestamp},
	{"2006-01-02T15:04:05", ValTimestamp},
	{"2006-01-02T15:04:05.999999999", ValTimestamp},
	{"2006-01-02 15:04:05", ValTimestamp},
	{"2006-01-02 15:04:05.999999999", ValTimestamp},
	{"2006-01-02 15:04:05Z07:00", ValTimestamp},
	{"2006-01-02 15:04", ValTimestamp},
	{"1/2/2006 15:04:05", ValTimestamp},
	{"1/2/2006 15:04", ValTimestamp},
	{"2006-01-02", ValDate},
	{"2006/01/02", ValDate},
	{"2006/1/2", ValDate},
	{"1/2/2006", ValDate},
	{"2/1/2006", ValDate},
	{"1-2-2006", ValDate},
	{"2-1-2006", ValDate},
	{"2.1.2006", ValDate},
	{"02-Jan-2006", ValDate},
	{"2-Jan-2006", ValDate},
	{"2 Jan 2006", ValDate},
	{"Jan 2, 2006", ValDate},
	{"January 2, 2006", ValDate},
	{"2 January 2006", ValDate},
	{"20060102", ValDate},
	{"1/2/06", ValDate},
	{"2/1/06", ValDate},
}

// flagPairs are the two-valued vocabularies that encode booleans. The first
// list holds the true values. "a"/"t" is the legacy active/terminated
// status; "t"/"f" wins for true/false because it is tried first.
var flagPairs = [][2][]string{
	{{"y"}, {"n"}},
	{{"yes"}, {"no"}},
	{{"true"}, {"false"}},
	{{"t"}, {"f"}},
	{{"1"}, {"0"}},
	{{"a"}, {"t"}},
	{{"a"}, {"i"}},
	{{"active"}, {"inactive"}},
	{{"on"}, {"off"}},
	{{"enabled"}, {"disabled"}},
	{{"x"}, {"-"}},
	{{"yes", "y"}, {"no", "n"}},
	{{"true", "t"}, {"false", "f"}},
}

// NewProfile builds a profile from sample values as decoded from JSON.
func NewProfile(samples []any) *Profile {
	p := &Profile{Shapes: map[string]bool{}, Min: math.Inf(1), Max: math.Inf(-1)}
	seen := map[string]bool{}
	var raws []string
	nStr, nBool, nInt, nDec, nNum := 0, 0, 0, 0, 0
	var nums []float64
	for _, s := range samples {
		var raw string
		switch v := s.(type) {
		case nil:
			continue
		case bool:
			nBool++
			raw = strconv.FormatBool(v)
		case float64:
			raw = strconv.FormatFloat(v, 'f', -1, 64)
			nums = append(nums, v)
			nNum++
			if v == math.Trunc(v) && math.Abs(v) < 1e18 {
				nInt++
			} else {
				nDec++
			}
		case string:
			nStr++
			raw = strings.TrimSpace(v)
			if raw == "" {
				continue
			}
			if f, ok := parseNumberString(raw); ok {
				nums = append(nums, f)
				if strings.ContainsAny(raw, ".eE") || f != math.Trunc(f) {
					nDec++
				} else {
					nInt++
				}
				nNum++
			}
		default:
			raw = fmt.Sprint(v)
			nStr++
		}
		if raw == "" {
			continue
		}
		p.N++
		raws = append(raws, raw)
		p.MeanLen += float64(len(raw))
		p.MaxLen = max(p.MaxLen, len([]rune(raw)))
		p.Shapes[shapeOf(raw)] = true
		key := normValue(raw)
		if !seen[key] {
			seen[key] = true
			p.Values = append(p.Values, key)
		}
	}
	if p.N == 0 {
		return nil
	}
	p.MeanLen /= float64(p.N)
	p.Strings = nStr > 0 && nStr >= p.N-nBool
	if len(nums) > 0 {
		for _, f := range nums {
			p.Min, p.Max = math.Min(p.Min, f), math.Max(p.Max, f)
		}
	}
	p.Numeric = nNum == p.N
	switch {
	case nBool == p.N:
		p.Kind = ValBool
	case p.detectFlag():
		p.Kind = ValFlag
	case p.Numeric && nDec == 0:
		p.Kind = ValInteger
		if unit := epochUnit(p.Min, p.Max); unit != "" {
			p.Kind, p.EpochUnit = ValEpoch, unit
		}
		if p.Strings && leadingZeros(raws) {
			p.Kind, p.Numeric = ValCode, false
		}
	case p.Numeric:
		p.Kind = ValDecimal
	default:
		p.Kind = classify(raws, p)
	}
	if p.Kind == ValText {
		p.detectSplit(raws)
	}
	return p
}

func leadingZeros(raws []string) bool {
	for _, r := range raws {
		if len(r) > 1 && r[0] == '0' && r[1] != '.' {
			return true
		}
	}
	return false
}

func parseNumberString(s string) (float64, bool) {
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		return f, true
	}
	return 0, false
}

// epochUnit recognises integers that are plausible unix times between 1990
// and 2100 in seconds, milliseconds, microseconds or nanoseconds.
func epochUnit(lo, hi float64) string {
	const s0, s1 = 631152000, 4102444800 // 1990-01-01, 2100-01-01
	for _, u := range []struct {
		name string
		mul  float64
	}{{"s", 1}, {"ms", 1e3}, {"us", 1e6}, {"ns", 1e9}} {
		if lo >= s0*u.mul && hi <= s1*u.mul {
			return u.name
		}
	}
	return ""
}

func (p *Profile) detectFlag() bool {
	if len(p.Values) > 2 {
		return false
	}
	for _, fp := range flagPairs {
		all := true
		for _, v := range p.Values {
			if !contains(fp[0], v) && !contains(fp[1], v) {
				all = false
				break
			}
		}
		if all {
			p.FlagTrue, p.FlagFalse = fp[0], fp[1]
			return true
		}
	}
	return false
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func classify(raws []string, p *Profile) ValueKind {
	counts := map[ValueKind]int{}
	for _, r := range raws {
		l := strings.ToLower(r)
		switch {
		case reEmail.MatchString(l):
			counts[ValEmail]++
		case reURL.MatchString(l):
			counts[ValURL]++
		case reUUID.MatchString(l):
			counts[ValUUID]++
		case reDecor.MatchString(r):
			counts[ValDecimal]++
		case rePhone.MatchString(r) && digitCount(r) >= 7:
			counts[ValPhone]++
		}
	}
	if layout, kind := detectDate(raws); layout != "" {
		p.DateLayout = layout
		return kind
	}
	for _, k := range []ValueKind{ValEmail, ValURL, ValUUID, ValDecimal, ValPhone} {
		if counts[k] == len(raws) {
			if k == ValDecimal {
				p.Decorated, p.Numeric = true, true
				for _, r := range raws {
					if f, ok := parseNumberString(stripDecoration(r)); ok {
						p.Min, p.Max = math.Min(p.Min, f), math.Max(p.Max, f)
					}
				}
			}
			return k
		}
	}
	code := 0
	for _, r := range raws {
		if len(r) <= 16 && !strings.Contains(r, " ") && digitCount(r) > 0 && digitCount(r) < len(r) {
			code++
		}
	}
	if code == len(raws) {
		return ValCode
	}
	return ValText
}

// detectDate returns the first layout that parses every value.
func detectDate(raws []string) (string, ValueKind) {
	for _, dl := range dateLayouts {
		ok := true
		for _, r := range raws {
			if _, err := time.Parse(dl.layout, r); err != nil {
				ok = false
				break
			}
		}
		if ok {
			return dl.layout, dl.kind
		}
	}
	return "", ValNone
}

// detectSplit notices values that are always several space-separated words
// (full names), which lets a derived split mapping feed first/last parts.
func (p *Profile) detectSplit(raws []string) {
	for _, r := range raws {
		if len(strings.Fields(r)) < 2 || len(strings.Fields(r)) > 4 {
			return
		}
	}
	p.SplitSep = " "
}

func stripDecoration(s string) string {
	return strings.NewReplacer(",", "", "$", "", "€", "", "£", "", "¥", "", " ", "").Replace(s)
}

func digitCount(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n
}

// shapeOf reduces a value to its character-class pattern ("C3L-00102" ->
// "A9A-9") so that formats compare even when the values differ.
func shapeOf(s string) string {
	var b strings.Builder
	var last rune = -1
	n := 0
	for _, r := range s {
		var c rune
		switch {
		case r >= '0' && r <= '9':
			c = '9'
		case r >= 'a' && r <= 'z':
			c = 'a'
		case r >= 'A' && r <= 'Z':
			c = 'A'
		case r == ' ':
			c = ' '
		case r > 127:
			c = 'a'
		default:
			c = r
		}
		if c != last {
			b.WriteRune(c)
			last = c
			n++
			if n >= 12 {
				break
			}
		}
	}
	return b.String()
}

// normValue is the comparison form of a sample value.
func normValue(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if f, ok := parseNumberString(s); ok && !(len(s) > 1 && s[0] == '0' && s[1] != '.') {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strings.Join(strings.Fields(s), " ")
}

// kindSim scores how compatible two value kinds are.
func kindSim(a, b ValueKind) float64 {
	if a == b {
		switch a {
		case ValText, ValMixed:
			return 0.6
		case ValInteger, ValDecimal, ValCode:
			return 0.8
		}
		return 1
	}
	pair := func(x, y ValueKind) bool { return a == x && b == y || a == y && b == x }
	switch {
	case pair(ValBool, ValFlag):
		return 0.9
	case pair(ValInteger, ValDecimal):
		return 0.75
	case pair(ValEpoch, ValTimestamp), pair(ValEpoch, ValDate):
		return 0.85
	case pair(ValDate, ValTimestamp):
		return 0.85
	case pair(ValInteger, ValFlag), pair(ValInteger, ValBool):
		return 0.5
	case pair(ValCode, ValText), pair(ValCode, ValInteger), pair(ValCode, ValUUID):
		return 0.45
	case pair(ValText, ValFlag):
		return 0.3
	case pair(ValPhone, ValCode), pair(ValPhone, ValInteger):
		return 0.4
	case pair(ValEpoch, ValInteger):
		return 0.5
	}
	return 0.1
}
