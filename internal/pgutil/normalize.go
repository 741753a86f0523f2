package pgutil

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"
)

// normalizeValue turns pgx's decoded values into the structured values
// Benthos and Bloblang understand, without losing precision: numerics become
// json.Number holding the exact decimal text, UUIDs and network addresses
// their canonical strings, intervals and times of day their SQL text.
func normalizeValue(tm *pgtype.Map, v any) any {
	switch x := v.(type) {
	case pgtype.Numeric:
		if !x.Valid {
			return nil
		}
		if x.NaN {
			return "NaN"
		}
		if x.InfinityModifier != pgtype.Finite {
			if x.InfinityModifier == pgtype.Infinity {
				return "Infinity"
			}
			return "-Infinity"
		}
		b, err := x.MarshalJSON()
		if err != nil {
			return nil
		}
		return json.Number(b)
	case [16]byte:
		return uuidString(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
		return x
	case netip.Prefix:
		if x.IsSingleIP() {
			return x.Addr().String()
		}
		return x.String()
	case netip.Addr:
		return x.String()
	case pgtype.Interval:
		return textOf(tm, pgtype.IntervalOID, x)
	case pgtype.Time:
		return textOf(tm, pgtype.TimeOID, x)
	case []any:
		for i := range x {
			x[i] = normalizeValue(tm, x[i])
		}
		return x
	}
	return v
}

func textOf(tm *pgtype.Map, oid uint32, v any) any {
	b, err := tm.Encode(oid, pgtype.TextFormatCode, v, nil)
	if err != nil || b == nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func uuidString(u [16]byte) string {
	const hex = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[c>>4], hex[c&0xf]
		j += 2
	}
	return string(b[:])
}
