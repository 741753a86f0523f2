package mapping

import (
	"regexp"
	"strconv"
	"strings"
)

// Kind is a dialect-neutral data type. Declared types from Postgres, MySQL,
// Oracle, Salesforce and JSON Schema all reduce to one Kind, so that type
// compatibility is judged once rather than per dialect pair.
type Kind string

// Normalised kinds.
const (
	KindUnknown   Kind = ""
	KindString    Kind = "string"
	KindInteger   Kind = "integer"
	KindNumber    Kind = "number"
	KindBoolean   Kind = "boolean"
	KindDate      Kind = "date"
	KindTime      Kind = "time"
	KindTimestamp Kind = "timestamp"
	KindBinary    Kind = "binary"
	KindObject    Kind = "object"
	KindArray     Kind = "array"
	KindUUID      Kind = "uuid"
)

// TypeInfo is a parsed declared type.
type TypeInfo struct {
	Kind Kind
	// Length is n in varchar(n) / char(n); 0 when unbounded or unknown.
	Length int
	// Scale is s in numeric(p,s); -1 when not declared.
	Scale int
	// Hint carries semantic subtypes some dialects declare (Salesforce
	// email, phone, url, currency, percent, picklist, id).
	Hint string
}

var typeParams = regexp.MustCompile(`\(([^)]*)\)`)

// NormalizeType parses a declared type from any supported dialect.
func NormalizeType(raw string) TypeInfo {
	t := strings.ToLower(strings.TrimSpace(raw))
	ti := TypeInfo{Scale: -1}
	var params []int
	if m := typeParams.FindStringSubmatch(t); m != nil {
		for _, p := range strings.Split(m[1], ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
				params = append(params, n)
			}
		}
		t = strings.TrimSpace(typeParams.ReplaceAllString(t, ""))
	}
	if strings.HasSuffix(t, "[]") || strings.HasPrefix(t, "_") {
		ti.Kind = KindArray
		return ti
	}
	t = strings.TrimSuffix(t, " unsigned")
	switch t {
	case "int", "integer", "int2", "int4", "int8", "smallint", "bigint", "mediumint", "serial", "bigserial",
		"smallserial", "long", "short", "int32", "int64", "int16", "uint", "uint32", "uint64", "pls_integer",
		"binary_integer", "year":
		ti.Kind = KindInteger
	case "tinyint":
		ti.Kind = KindInteger
		if len(params) == 1 && params[0] == 1 {
			ti.Kind = KindBoolean
		}
	case "bit":
		ti.Kind = KindBoolean
		if len(params) == 1 && params[0] > 1 {
			ti.Kind = KindBinary
		}
	case "bool", "boolean", "checkbox", "logical":
		ti.Kind = KindBoolean
	case "number", "numeric", "decimal", "dec":
		ti.Kind = KindNumber
		if len(params) == 2 {
			ti.Scale = params[1]
		}
		if len(params) == 2 && params[1] == 0 || len(params) == 1 && t != "number" {
			ti.Kind = KindInteger
		}
		if t == "number" && len(params) == 1 {
			ti.Kind = KindInteger // Oracle NUMBER(p) has scale 0
		}
	case "real", "float", "float4", "float8", "double", "double precision", "binary_float", "binary_double",
		"money", "smallmoney", "float32", "float64":
		ti.Kind = KindNumber
	case "currency", "percent":
		ti.Kind, ti.Hint = KindNumber, t
	case "char", "character", "varchar", "character varying", "nvarchar", "nchar", "varchar2", "nvarchar2",
		"string", "text", "tinytext", "mediumtext", "longtext", "clob", "nclob", "citext", "enum", "set",
		"bpchar", "name", "textarea", "combobox", "encryptedstring", "anytype", "str", "interval", "inet", "cidr",
		"long varchar", "ntext", "xml":
		ti.Kind = KindString
		if len(params) == 1 {
			ti.Length = params[0]
		}
	case "picklist", "multipicklist", "email", "phone", "url", "reference", "id":
		ti.Kind, ti.Hint = KindString, t
		if t == "id" || t == "reference" {
			ti.Hint = "id"
		}
	case "date":
		ti.Kind = KindDate
	case "time", "timetz", "time with time zone", "time without time zone":
		ti.Kind = KindTime
	case "timestamp", "timestamptz", "timestamp with time zone", "timestamp without time zone", "datetime",
		"datetime2", "smalldatetime", "datetimeoffset", "date-time", "timestamp with local time zone", "instant":
		ti.Kind = KindTimestamp
	case "bytea", "blob", "binary", "varbinary", "raw", "long raw", "longblob", "mediumblob", "tinyblob",
		"image", "bytes", "base64":
		ti.Kind = KindBinary
	case "json", "jsonb", "object", "map", "struct", "record", "hstore", "address", "location":
		ti.Kind = KindObject
	case "array", "list":
		ti.Kind = KindArray
	case "uuid", "uniqueidentifier", "guid":
		ti.Kind = KindUUID
	case "double_precision":
		ti.Kind = KindNumber
	}
	return ti
}

// typeCompat scores how well a value of kind s converts to kind t: 1 is the
// same kind, lower values cost a conversion, near zero is nonsensical.
func typeCompat(s, t Kind) float64 {
	if s == KindUnknown || t == KindUnknown {
		return 0.7
	}
	if s == t {
		return 1
	}
	key := string(s) + ">" + string(t)
	if v, ok := compatTable[key]; ok {
		return v
	}
	if t == KindString {
		return 0.7
	}
	if s == KindString {
		return 0.5
	}
	return 0.15
}

var compatTable = map[string]float64{
	"integer>number":    0.95,
	"number>integer":    0.75,
	"integer>boolean":   0.5,
	"boolean>integer":   0.55,
	"string>boolean":    0.5,
	"date>timestamp":    0.9,
	"timestamp>date":    0.85,
	"timestamp>time":    0.5,
	"integer>timestamp": 0.45,
	"number>timestamp":  0.4,
	"integer>date":      0.35,
	"uuid>string":       0.9,
	"string>uuid":       0.8,
	"integer>string":    0.75,
	"number>string":     0.7,
	"date>string":       0.7,
	"timestamp>string":  0.7,
	"boolean>string":    0.6,
	"object>string":     0.4,
	"array>string":      0.4,
	"binary>string":     0.35,
	"string>binary":     0.35,
	"object>array":      0.3,
	"array>object":      0.3,
	"date>integer":      0.3,
	"timestamp>integer": 0.35,
	"boolean>number":    0.4,
	"number>boolean":    0.3,
}
