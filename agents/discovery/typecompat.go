package discovery

import (
	"math"
	"regexp"
	"strconv"
	"strings"
)

// How a type change affects the values a column can hold.
const (
	TypeWidening     = "widening"     // every old value fits the new type
	TypeNarrowing    = "narrowing"    // some old values may not fit
	TypeIncompatible = "incompatible" // different kinds of value
	TypeEquivalent   = "equivalent"   // spelled differently, same values
)

type typeFamily int

const (
	famUnknown typeFamily = iota
	famInteger
	famDecimal
	famFloat
	famText
	famBinary
	famBool
	famDate
	famTimestamp
	famTime
	famUUID
	famJSON
)

// typeInfo is a parsed type name.
type typeInfo struct {
	fam typeFamily
	// integers: value range; floats: mantissa bits.
	lo, hi float64
	bits   int
	// decimals: digits before and after the point (-1 = unlimited).
	intDigits, scale int
	// text/binary: maximum length, -1 unlimited.
	length int
	// timestamps: with time zone; fractional precision.
	tz        bool
	precision int
	array     bool
	norm      string
}

var reTypeArgs = regexp.MustCompile(`\(([^)]*)\)`)

// parseType normalises a type as PostgreSQL (format_type), MySQL/MariaDB
// (COLUMN_TYPE), SQLite (declared type) or the file connector name it.
func parseType(s, dialect string) typeInfo {
	t := strings.ToLower(strings.TrimSpace(s))
	ti := typeInfo{length: -1, intDigits: -1, scale: -1, precision: 6}
	if strings.HasSuffix(t, "[]") {
		ti.array = true
		t = strings.TrimSuffix(t, "[]")
	}
	unsigned := strings.Contains(t, "unsigned")
	t = strings.NewReplacer(" unsigned", "", " zerofill", "", " signed", "").Replace(t)
	var args []int
	if m := reTypeArgs.FindStringSubmatch(t); m != nil {
		for _, a := range strings.Split(m[1], ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(a)); err == nil {
				args = append(args, n)
			}
		}
	}
	base := strings.TrimSpace(reTypeArgs.ReplaceAllString(t, ""))
	base = strings.Join(strings.Fields(base), " ")
	ti.norm = base
	intRange := func(bytes int) {
		ti.fam = famInteger
		b := float64(bytes * 8)
		if unsigned {
			ti.lo, ti.hi = 0, math.Pow(2, b)-1
		} else {
			ti.lo, ti.hi = -math.Pow(2, b-1), math.Pow(2, b-1)-1
		}
		ti.norm = "int" + strconv.Itoa(bytes) + map[bool]string{true: "u", false: ""}[unsigned]
	}
	arg := func(i, def int) int {
		if i < len(args) {
			return args[i]
		}
		return def
	}
	switch base {
	case "tinyint", "int1":
		intRange(1)
	case "smallint", "int2", "smallserial", "serial2":
		intRange(2)
	case "mediumint", "int3":
		intRange(3)
	case "int", "integer", "int4", "serial", "serial4":
		intRange(4)
		if dialect == "sqlite" {
			intRange(8) // SQLite integers are 64-bit whatever the declaration
		}
	case "bigint", "int8", "bigserial", "serial8", "long":
		intRange(8)
	case "numeric", "decimal", "dec", "number", "fixed":
		ti.fam = famDecimal
		if len(args) == 0 {
			if dialect == "mysql" {
				ti.intDigits, ti.scale = 10, 0 // MySQL's default DECIMAL is (10,0)
			}
		} else {
			p, sc := arg(0, 10), arg(1, 0)
			ti.intDigits, ti.scale = p-sc, sc
		}
		ti.norm = base + "(" + strconv.Itoa(ti.intDigits) + "," + strconv.Itoa(ti.scale) + ")"
	case "real", "float4":
		ti.fam, ti.bits = famFloat, 24
	case "float":
		// MySQL FLOAT is single precision, FLOAT(p) single up to 24.
		ti.fam, ti.bits = famFloat, 24
		if arg(0, 0) > 24 {
			ti.bits = 53
		}
	case "double precision", "double", "float8", "double precision real":
		ti.fam, ti.bits = famFloat, 53
		ti.norm = "float8"
	case "boolean", "bool":
		ti.fam = famBool
	case "text", "string", "clob", "citext", "longtext", "name", "character varying", "varchar", "nvarchar",
		"varchar2", "nvarchar2", "char", "character", "bpchar", "nchar", "tinytext", "mediumtext",
		"national character varying", "national char", "native character", "varying character", "enum", "set":
		ti.fam = famText
		switch base {
		case "tinytext":
			ti.length = 255
		case "text":
			if dialect == "mysql" {
				ti.length = 65535
			}
		case "mediumtext":
			ti.length = 16777215
		case "longtext":
			ti.length = 4294967295
		case "char", "character", "bpchar", "nchar", "national char":
			ti.length = arg(0, 1)
		case "enum", "set":
			ti.length = -1
		default:
			ti.length = arg(0, -1)
		}
		ti.norm = "text(" + strconv.Itoa(ti.length) + ")"
	case "bytea", "blob", "binary", "varbinary", "tinyblob", "mediumblob", "longblob":
		ti.fam = famBinary
		switch base {
		case "binary", "varbinary":
			ti.length = arg(0, -1)
		case "tinyblob":
			ti.length = 255
		case "mediumblob":
			ti.length = 16777215
		}
		ti.norm = "binary(" + strconv.Itoa(ti.length) + ")"
	case "date":
		ti.fam = famDate
	case "timestamp", "timestamp without time zone", "datetime", "datetime2", "smalldatetime":
		ti.fam = famTimestamp
		ti.precision = arg(0, 6)
		if base == "datetime" && len(args) == 0 && !strings.Contains(strings.ToLower(s), "timestamp") {
			ti.precision = 0
		}
		ti.norm = "timestamp(" + strconv.Itoa(ti.precision) + ")"
	case "timestamp with time zone", "timestamptz", "datetimeoffset":
		ti.fam, ti.tz = famTimestamp, true
		ti.precision = arg(0, 6)
		ti.norm = "timestamptz(" + strconv.Itoa(ti.precision) + ")"
	case "time", "time without time zone", "time with time zone", "timetz":
		ti.fam = famTime
		ti.tz = strings.Contains(base, "with time zone") || base == "timetz"
	case "uuid", "uniqueidentifier":
		ti.fam = famUUID
	case "json", "jsonb":
		ti.fam = famJSON
		ti.norm = "json"
	case "year":
		ti.fam = famInteger
		ti.lo, ti.hi = 1901, 2155
	default:
		if strings.HasPrefix(base, "timestamp") {
			ti.fam, ti.tz = famTimestamp, strings.Contains(base, "with time zone")
		}
	}
	if ti.array {
		ti.norm += "[]"
	}
	return ti
}

// maxTextLen is the longest text form of a value of the type, 0 when
// unbounded or unknown.
func (t typeInfo) maxTextLen() int {
	switch t.fam {
	case famInteger:
		return len(strconv.FormatFloat(math.Max(math.Abs(t.lo), t.hi), 'f', 0, 64)) + 1
	case famDecimal:
		if t.intDigits < 0 {
			return 0
		}
		return t.intDigits + t.scale + 2
	case famBool:
		return 5
	case famDate:
		return 10
	case famTimestamp:
		return 35
	case famUUID:
		return 36
	}
	return 0
}

// CompareTypes classes the change of a column's type from one declared type
// to another: widening when every value of from fits to, narrowing when
// some may not, incompatible across kinds of value, equivalent when only the
// spelling differs (int(11) and int). Unknown types compare by name.
// dialect is the connector kind (postgres, mysql, sqlite, file): it settles
// names whose meaning differs, such as MySQL's 64 KiB text.
func CompareTypes(dialect, from, to string) string {
	if strings.EqualFold(strings.TrimSpace(from), strings.TrimSpace(to)) {
		return TypeEquivalent
	}
	a, b := parseType(from, dialect), parseType(to, dialect)
	if a.array != b.array {
		return TypeIncompatible
	}
	if a.fam == famUnknown || b.fam == famUnknown {
		if a.norm == b.norm {
			return TypeEquivalent
		}
		if b.fam == famText && b.length < 0 {
			return TypeWidening
		}
		return TypeIncompatible
	}
	if a.norm == b.norm && a.fam == b.fam {
		return TypeEquivalent
	}
	widenIf := func(ok bool) string {
		if ok {
			return TypeWidening
		}
		return TypeNarrowing
	}
	// Anything has a text form: to unbounded text is widening, to bounded
	// text is widening when the longest text form fits.
	if b.fam == famText && a.fam != famText && a.fam != famBinary {
		if b.length < 0 {
			return TypeWidening
		}
		m := a.maxTextLen()
		return widenIf(m > 0 && m <= b.length)
	}
	switch a.fam {
	case famInteger:
		switch b.fam {
		case famInteger:
			return widenIf(b.lo <= a.lo && b.hi >= a.hi)
		case famDecimal:
			digits := len(strconv.FormatFloat(math.Max(math.Abs(a.lo), a.hi), 'f', 0, 64))
			return widenIf(b.intDigits < 0 || b.intDigits >= digits)
		case famFloat:
			return widenIf(math.Max(math.Abs(a.lo), a.hi) <= math.Pow(2, float64(b.bits)))
		case famBool:
			return TypeNarrowing
		}
	case famDecimal:
		switch b.fam {
		case famDecimal:
			okInt := b.intDigits < 0 || (a.intDigits >= 0 && b.intDigits >= a.intDigits)
			okScale := b.scale < 0 || (a.scale >= 0 && b.scale >= a.scale)
			return widenIf(okInt && okScale)
		case famInteger:
			if a.scale == 0 && a.intDigits >= 0 {
				digits := len(strconv.FormatFloat(b.hi, 'f', 0, 64)) - 1
				return widenIf(a.intDigits <= digits)
			}
			return TypeNarrowing
		case famFloat:
			return TypeNarrowing
		}
	case famFloat:
		switch b.fam {
		case famFloat:
			return widenIf(b.bits >= a.bits)
		case famDecimal, famInteger:
			return TypeNarrowing
		}
	case famText:
		if b.fam == famText {
			return widenIf(b.length < 0 || (a.length >= 0 && b.length >= a.length))
		}
		if b.fam == famBinary {
			return widenIf(b.length < 0)
		}
		return TypeNarrowing
	case famBinary:
		if b.fam == famBinary {
			return widenIf(b.length < 0 || (a.length >= 0 && b.length >= a.length))
		}
		return TypeIncompatible
	case famBool:
		if b.fam == famInteger {
			return TypeWidening
		}
	case famDate:
		if b.fam == famTimestamp {
			return TypeWidening
		}
	case famTimestamp:
		switch b.fam {
		case famTimestamp:
			if a.tz && !b.tz {
				return TypeNarrowing
			}
			return widenIf(b.precision >= a.precision)
		case famDate:
			return TypeNarrowing
		}
	case famTime:
		if b.fam == famTime {
			return widenIf(b.tz || !a.tz)
		}
	case famUUID:
		if b.fam == famUUID {
			return TypeEquivalent
		}
	case famJSON:
		if b.fam == famJSON {
			return TypeEquivalent
		}
	}
	if a.fam == b.fam {
		return TypeEquivalent
	}
	return TypeIncompatible
}

// sameTypeFamily is true when two types hold the same kind of value.
func sameTypeFamily(dialect, a, b string) bool {
	x, y := parseType(a, dialect), parseType(b, dialect)
	if x.fam == famUnknown || y.fam == famUnknown {
		return strings.EqualFold(x.norm, y.norm)
	}
	num := func(f typeFamily) bool { return f == famInteger || f == famDecimal || f == famFloat }
	return x.fam == y.fam || (num(x.fam) && num(y.fam))
}
