package pgutil

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// Binary-format codecs for the column types that dominate ETL workloads.
// pgx can encode and decode all of them, but through a plan look-up and an
// interface conversion per value; doing the common cases directly roughly
// halves the CPU of a table copy. Every other type goes through pgx.

// pgEpochMicros is 2000-01-01 00:00:00 UTC in microseconds since 1970.
const pgEpochMicros = 946684800 * 1_000_000

// Well-known type OIDs.
const (
	OIDBool        = pgtype.BoolOID
	OIDInt2        = pgtype.Int2OID
	OIDInt4        = pgtype.Int4OID
	OIDInt8        = pgtype.Int8OID
	OIDFloat4      = pgtype.Float4OID
	OIDFloat8      = pgtype.Float8OID
	OIDNumeric     = pgtype.NumericOID
	OIDText        = pgtype.TextOID
	OIDVarchar     = pgtype.VarcharOID
	OIDBPChar      = pgtype.BPCharOID
	OIDName        = pgtype.NameOID
	OIDTimestamp   = pgtype.TimestampOID
	OIDTimestamptz = pgtype.TimestamptzOID
	OIDDate        = pgtype.DateOID
)

// IsTextOID reports whether values of the type are plain UTF-8 on the wire.
func IsTextOID(oid uint32) bool {
	switch oid {
	case OIDText, OIDVarchar, OIDBPChar, OIDName:
		return true
	}
	return false
}

// Decoder turns one non-NULL wire value into a structured Go value.
type Decoder func(src []byte) (any, error)

// NewDecoder returns a decoder for a result column. Types without a fast
// path decode through tm and its codecs.
func NewDecoder(tm *pgtype.Map, oid uint32, format int16) Decoder {
	if format == pgtype.BinaryFormatCode {
		switch oid {
		case OIDInt8:
			return func(b []byte) (any, error) {
				if len(b) != 8 {
					return nil, fmt.Errorf("int8: %d bytes", len(b))
				}
				return int64(binary.BigEndian.Uint64(b)), nil
			}
		case OIDInt4:
			return func(b []byte) (any, error) {
				if len(b) != 4 {
					return nil, fmt.Errorf("int4: %d bytes", len(b))
				}
				return int64(int32(binary.BigEndian.Uint32(b))), nil
			}
		case OIDInt2:
			return func(b []byte) (any, error) {
				if len(b) != 2 {
					return nil, fmt.Errorf("int2: %d bytes", len(b))
				}
				return int64(int16(binary.BigEndian.Uint16(b))), nil
			}
		case OIDBool:
			return func(b []byte) (any, error) {
				if len(b) != 1 {
					return nil, fmt.Errorf("bool: %d bytes", len(b))
				}
				return b[0] != 0, nil
			}
		case OIDFloat8:
			return func(b []byte) (any, error) {
				if len(b) != 8 {
					return nil, fmt.Errorf("float8: %d bytes", len(b))
				}
				return finiteOrText(math.Float64frombits(binary.BigEndian.Uint64(b))), nil
			}
		case OIDFloat4:
			return func(b []byte) (any, error) {
				if len(b) != 4 {
					return nil, fmt.Errorf("float4: %d bytes", len(b))
				}
				return finiteOrText(float64(math.Float32frombits(binary.BigEndian.Uint32(b)))), nil
			}
		case OIDText, OIDVarchar, OIDBPChar, OIDName:
			return func(b []byte) (any, error) { return string(b), nil }
		case OIDNumeric:
			return func(b []byte) (any, error) {
				s, err := NumericBinaryToText(b)
				if err != nil {
					return nil, err
				}
				if s == "NaN" || s == "Infinity" || s == "-Infinity" {
					return s, nil
				}
				return json.Number(s), nil
			}
		case OIDTimestamptz, OIDTimestamp:
			return func(b []byte) (any, error) {
				if len(b) != 8 {
					return nil, fmt.Errorf("timestamp: %d bytes", len(b))
				}
				us := int64(binary.BigEndian.Uint64(b))
				switch us {
				case math.MaxInt64:
					return "infinity", nil
				case math.MinInt64:
					return "-infinity", nil
				}
				return time.UnixMicro(us + pgEpochMicros).UTC(), nil
			}
		case OIDDate:
			return func(b []byte) (any, error) {
				if len(b) != 4 {
					return nil, fmt.Errorf("date: %d bytes", len(b))
				}
				d := int32(binary.BigEndian.Uint32(b))
				switch d {
				case math.MaxInt32:
					return "infinity", nil
				case math.MinInt32:
					return "-infinity", nil
				}
				return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(d)), nil
			}
		}
	}
	t, ok := tm.TypeForOID(oid)
	if !ok {
		return func(b []byte) (any, error) { return string(b), nil }
	}
	return func(b []byte) (any, error) {
		v, err := t.Codec.DecodeValue(tm, oid, format, b)
		if err != nil {
			return nil, err
		}
		return normalizeValue(tm, v), nil
	}
}

func finiteOrText(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return f
}

// Encoder appends one value, with its length prefix, in binary COPY format.
// It caches the pgx plan for the last Go type it saw, so a column of
// uniformly typed values costs one plan look-up per batch.
type Encoder struct {
	OID      uint32
	tm       *pgtype.Map
	lastType reflect.Type
	plan     pgtype.EncodePlan
}

// NewEncoder returns an encoder for a column of type oid.
func NewEncoder(tm *pgtype.Map, oid uint32) *Encoder { return &Encoder{OID: oid, tm: tm} }

// ErrIncompatible is wrapped by encoding errors where the Go value cannot be
// represented as the column type at all.
var ErrIncompatible = fmt.Errorf("incompatible column type")

// Append appends the length-prefixed encoding of v (NULL for nil).
func (e *Encoder) Append(buf []byte, v any) ([]byte, error) {
	if v == nil {
		return binary.BigEndian.AppendUint32(buf, math.MaxUint32), nil // -1: NULL
	}
	switch x := v.(type) {
	case string:
		if IsTextOID(e.OID) {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(x)))
			return append(buf, x...), nil
		}
		if textFormOID(e.OID) {
			// The reader emits these types as their SQL text (normalizeValue),
			// and JSON has no other form for them: parse the text, then
			// encode the parsed value in binary.
			if t, ok := e.tm.TypeForOID(e.OID); ok {
				pv, err := t.Codec.DecodeValue(e.tm, e.OID, pgtype.TextFormatCode, []byte(x))
				if err != nil {
					return buf, fmt.Errorf("%q is not a valid %s: %w", x, t.Name, err)
				}
				return e.Append(buf, pv)
			}
		}
	case json.Number:
		switch e.OID {
		case OIDNumeric:
			at := len(buf)
			buf = append(buf, 0, 0, 0, 0)
			out, err := AppendNumericBinary(buf, string(x))
			if err != nil {
				return buf[:at], fmt.Errorf("%q is not a number: %w", string(x), err)
			}
			binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at-4))
			return out, nil
		case OIDInt8, OIDInt4, OIDInt2:
			i, err := x.Int64()
			if err != nil {
				return buf, fmt.Errorf("%q is not an integer: %w", string(x), err)
			}
			return e.Append(buf, i)
		case OIDFloat8, OIDFloat4:
			f, err := x.Float64()
			if err != nil {
				return buf, fmt.Errorf("%q is not a number: %w", string(x), err)
			}
			return e.Append(buf, f)
		}
		if IsTextOID(e.OID) {
			return e.Append(buf, string(x))
		}
	case int64:
		if e.OID == OIDInt8 {
			buf = binary.BigEndian.AppendUint32(buf, 8)
			return binary.BigEndian.AppendUint64(buf, uint64(x)), nil
		}
	case bool:
		if e.OID == OIDBool {
			buf = binary.BigEndian.AppendUint32(buf, 1)
			if x {
				return append(buf, 1), nil
			}
			return append(buf, 0), nil
		}
	case time.Time:
		if e.OID == OIDTimestamptz {
			buf = binary.BigEndian.AppendUint32(buf, 8)
			return binary.BigEndian.AppendUint64(buf, uint64(x.Unix()*1_000_000+int64(x.Nanosecond())/1000-pgEpochMicros)), nil
		}
	}
	t := reflect.TypeOf(v)
	if t != e.lastType || e.plan == nil {
		e.plan = e.tm.PlanEncode(e.OID, pgtype.BinaryFormatCode, v)
		e.lastType = t
		if e.plan == nil {
			return buf, fmt.Errorf("%w: cannot encode a %s value", ErrIncompatible, GoTypeName(v))
		}
	}
	at := len(buf)
	buf = append(buf, 0, 0, 0, 0)
	out, err := e.plan.Encode(v, buf)
	if err != nil {
		return buf[:at], err
	}
	if out == nil {
		return binary.BigEndian.AppendUint32(buf[:at], math.MaxUint32), nil
	}
	binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at-4))
	return out, nil
}

// GoTypeName names a structured value's kind in SQL-ish words for messages.
func GoTypeName(v any) string {
	switch v.(type) {
	case string:
		return "text"
	case json.Number, pgtype.Numeric:
		return "numeric"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "integer"
	case float32, float64:
		return "float"
	case bool:
		return "boolean"
	case time.Time:
		return "timestamp"
	case []byte:
		return "bytes"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// textFormOID reports whether the structured form of the type's values is
// their SQL text (see normalizeValue): uuid, network addresses, intervals
// and times of day.
func textFormOID(oid uint32) bool {
	switch oid {
	case pgtype.UUIDOID, pgtype.InetOID, pgtype.CIDROID, pgtype.IntervalOID, pgtype.TimeOID:
		return true
	}
	return false
}
