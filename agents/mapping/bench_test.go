package mapping_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/mapping"
	"github.com/agentetl/agentetl/internal/model"
)

// wideSchemas builds a 200-column legacy source (abbreviated names,
// samples) and a 200-column modern target (full names, declared types),
// shuffled so that position says nothing.
func wideSchemas() (model.Schema, model.Schema) {
	entities := [][2]string{{"cust", "customer"}, {"ord", "order"}, {"prod", "product"}, {"inv", "invoice"},
		{"emp", "employee"}, {"acct", "account"}, {"shpmt", "shipment"}, {"pmt", "payment"}, {"vndr", "vendor"}, {"str", "store"}}
	attrs := []struct {
		short, long, styp, ttyp string
		sample                  any
	}{
		{"id", "id", "NUMBER(10)", "bigint", 1001.0}, {"nm", "name", "VARCHAR2(60)", "text", "Acme"},
		{"dt", "date", "VARCHAR2(10)", "date", "03/15/2021"}, {"amt", "amount", "VARCHAR2(20)", "numeric(12,2)", "$1,200.50"},
		{"stat_cd", "status", "CHAR(1)", "boolean", "Y"}, {"cd", "code", "CHAR(4)", "varchar(4)", "AB12"},
		{"typ", "type", "VARCHAR2(20)", "text", "retail"}, {"no", "number", "VARCHAR2(12)", "text", "N-0001"},
		{"desc", "description", "VARCHAR2(400)", "varchar(200)", "Long text here"}, {"cty", "city", "VARCHAR2(40)", "text", "Paris"},
		{"ctry", "country", "CHAR(2)", "char(2)", "FR"}, {"eml", "email", "VARCHAR2(80)", "text", "a@b.example"},
		{"ph", "phone", "VARCHAR2(20)", "text", "+33 1 23 45 67 89"}, {"crt_ts", "created_at", "NUMBER(13)", "timestamptz", 1.7e12},
		{"upd_ts", "updated_at", "NUMBER(13)", "timestamptz", 1.7e12}, {"qty", "quantity", "NUMBER(8)", "integer", 3.0},
		{"prc", "price", "NUMBER(10,2)", "numeric(10,2)", 9.99}, {"tot", "total", "NUMBER(12,2)", "numeric(12,2)", 99.5},
		{"zip", "postal_code", "VARCHAR2(10)", "varchar(10)", "75001"}, {"rmk", "remark", "VARCHAR2(200)", "text", "n/a"},
	}
	var sf, tf []model.Field
	for _, e := range entities {
		for _, a := range attrs {
			sf = append(sf, model.Field{Name: fmt.Sprintf("%s_%s", e[0], a.short), DataType: a.styp, Nullable: true, Samples: []any{a.sample}})
			tf = append(tf, model.Field{Name: fmt.Sprintf("%s_%s", e[1], a.long), DataType: a.ttyp, Nullable: true})
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(sf), func(i, j int) { sf[i], sf[j] = sf[j], sf[i] })
	r.Shuffle(len(tf), func(i, j int) { tf[i], tf[j] = tf[j], tf[i] })
	return model.Schema{ID: "legacy", Fields: sf}, model.Schema{ID: "modern", Fields: tf}
}

func TestWideSchemasMapWell(t *testing.T) {
	src, tgt := wideSchemas()
	require.Len(t, src.Fields, 200)
	require.Len(t, tgt.Fields, 200)
	res := mapPair(t, mapping.Options{}, src, tgt)
	right, proposed := 0, 0
	for _, m := range res.Mappings {
		if !m.Proposed() {
			if m.BestCandidate != nil {
				t.Logf("unmapped: %s best %s %.2f", m.TargetField, m.BestCandidate.SourceField, m.BestCandidate.Confidence)
			}
			continue
		}
		proposed++
		if len(m.SourceField) == 1 && expandLegacy(m.SourceField[0]) == m.TargetField {
			right++
		} else {
			t.Logf("wrong: %v -> %s (%.2f %s)", m.SourceField, m.TargetField, m.Confidence, m.Status)
		}
	}
	t.Logf("200x200: %d proposed, %d right", proposed, right)
	require.GreaterOrEqual(t, right, 170)
	require.GreaterOrEqual(t, float64(right)/float64(proposed), 0.9)
}

// expandLegacy reverses wideSchemas' naming to name the right target.
func expandLegacy(s string) string {
	ents := map[string]string{"cust": "customer", "ord": "order", "prod": "product", "inv": "invoice", "emp": "employee",
		"acct": "account", "shpmt": "shipment", "pmt": "payment", "vndr": "vendor", "str": "store"}
	atts := map[string]string{"id": "id", "nm": "name", "dt": "date", "amt": "amount", "stat_cd": "status", "cd": "code",
		"typ": "type", "no": "number", "desc": "description", "cty": "city", "ctry": "country", "eml": "email", "ph": "phone",
		"crt_ts": "created_at", "upd_ts": "updated_at", "qty": "quantity", "prc": "price", "tot": "total", "zip": "postal_code",
		"rmk": "remark"}
	for es, el := range ents {
		for as, al := range atts {
			if s == es+"_"+as {
				return el + "_" + al
			}
		}
	}
	return ""
}

func BenchmarkMap200x200(b *testing.B) {
	src, tgt := wideSchemas()
	m := mapping.New(mapping.Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Map(ctx, src, tgt); err != nil {
			b.Fatal(err)
		}
	}
}
