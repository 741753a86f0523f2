package discovery_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/discovery"
	"github.com/agentetl/agentetl/internal/model"
)

func TestDetectSemanticType(t *testing.T) {
	gen := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	cases := []struct {
		column string
		values []string
		want   string
	}{
		{"contact", gen(50, func(i int) string { return fmt.Sprintf("p%d@mail.example.com", i) }), discovery.SemanticEmail},
		{"mobile", gen(50, func(i int) string { return fmt.Sprintf("+44 7700 9%05d", i) }), discovery.SemanticPhone},
		{"tel", gen(50, func(i int) string { return fmt.Sprintf("0301234%04d", i) }), discovery.SemanticPhone},
		{"homepage", gen(50, func(i int) string { return fmt.Sprintf("https://example.com/p/%d?q=1", i) }), discovery.SemanticURL},
		{"ref", gen(50, func(i int) string { return fmt.Sprintf("%08x-1234-4abc-8def-%012x", i, i) }), discovery.SemanticUUID},
		{"client", gen(50, func(i int) string { return fmt.Sprintf("192.168.%d.%d", i/10, i) }), discovery.SemanticIP},
		{"client", []string{"2001:db8::1", "::1", "fe80::1", "10.0.0.0/8"}, discovery.SemanticIP},
		{"cc", []string{"DE", "FR", "US", "GB", "JP", "BR"}, discovery.SemanticCountryCode},
		{"country", []string{"DEU", "FRA", "USA"}, discovery.SemanticCountryCode},
		{"ccy", []string{"EUR", "USD", "GBP", "JPY"}, discovery.SemanticCurrencyCode},
		{"zip", []string{"10115", "80331", "01067", "20095"}, discovery.SemanticPostalCode},
		{"location", []string{"SW1A 1AA", "EC1A 1BB", "W1A 0AX", "M1 1AE"}, discovery.SemanticPostalCode},
		{"day", []string{"2024-01-31", "2023-12-01", "2020-02-29"}, discovery.SemanticISODate},
		{"at", []string{"2024-01-31T10:00:00Z", "2024-01-31 10:00:00+02", "2024-02-01T00:00:00.123+01:00"}, discovery.SemanticISOTimestamp},
		{"created", gen(20, func(i int) string { return fmt.Sprint(1700000000 + i*3600) }), discovery.SemanticEpochSeconds},
		{"event_ts", gen(20, func(i int) string { return fmt.Sprint(1700000000000 + int64(i)*3600000) }), discovery.SemanticEpochMillis},
		{"active", []string{"Y", "N"}, discovery.SemanticBooleanFlag},
		{"status", []string{"A", "T"}, discovery.SemanticBooleanFlag},
		{"opt_in", []string{"yes", "no"}, discovery.SemanticBooleanFlag},
		{"deleted", []string{"0", "1"}, discovery.SemanticBooleanFlag},
		{"confirmed", []string{"y"}, discovery.SemanticBooleanFlag},
		// Not semantic: plain numbers, ids in the epoch range, free text,
		// dates that are not valid, short codes without variety.
		{"qty", gen(50, func(i int) string { return fmt.Sprint(i * 7) }), ""},
		{"customer_id", gen(20, func(i int) string { return fmt.Sprint(1700000000 + i) }), ""},
		{"note", []string{"hello world", "foo", "bar baz"}, ""},
		{"day", []string{"2024-13-45", "2024-02-30"}, ""},
		{"state", []string{"NY", "CA"}, ""},
		{"amount", []string{"12345", "67890", "11111"}, ""},
		{"md5", gen(20, func(i int) string { return fmt.Sprintf("%032x", i*7919) }), ""},
	}
	for _, c := range cases {
		got, conf := discovery.DetectSemanticType(c.column, c.values)
		require.Equal(t, c.want, got, "%s %v", c.column, c.values[:min(3, len(c.values))])
		if c.want != "" {
			require.Greater(t, conf, 0.5)
		}
	}
}

func TestCompareTypes(t *testing.T) {
	cases := []struct{ dialect, from, to, want string }{
		{"postgres", "integer", "bigint", discovery.TypeWidening},
		{"postgres", "bigint", "integer", discovery.TypeNarrowing},
		{"postgres", "smallint", "numeric(10,0)", discovery.TypeWidening},
		{"postgres", "bigint", "numeric(10,0)", discovery.TypeNarrowing},
		{"postgres", "numeric(10,2)", "numeric(12,2)", discovery.TypeWidening},
		{"postgres", "numeric(10,2)", "numeric(10,4)", discovery.TypeNarrowing},
		{"postgres", "numeric(10,2)", "numeric", discovery.TypeWidening},
		{"postgres", "real", "double precision", discovery.TypeWidening},
		{"postgres", "integer", "double precision", discovery.TypeWidening},
		{"postgres", "bigint", "double precision", discovery.TypeNarrowing},
		{"postgres", "text", "character varying(10)", discovery.TypeNarrowing},
		{"postgres", "character varying(10)", "character varying(20)", discovery.TypeWidening},
		{"postgres", "character varying(10)", "text", discovery.TypeWidening},
		{"postgres", "character(2)", "character varying(2)", discovery.TypeEquivalent},
		{"postgres", "integer", "text", discovery.TypeWidening},
		{"postgres", "integer", "character varying(5)", discovery.TypeNarrowing},
		{"postgres", "integer", "character varying(11)", discovery.TypeWidening},
		{"postgres", "text", "integer", discovery.TypeNarrowing},
		{"postgres", "date", "timestamp without time zone", discovery.TypeWidening},
		{"postgres", "timestamp without time zone", "date", discovery.TypeNarrowing},
		{"postgres", "timestamp without time zone", "timestamp with time zone", discovery.TypeWidening},
		{"postgres", "timestamp with time zone", "timestamp without time zone", discovery.TypeNarrowing},
		{"postgres", "json", "jsonb", discovery.TypeEquivalent},
		{"postgres", "boolean", "integer", discovery.TypeWidening},
		{"postgres", "uuid", "integer", discovery.TypeIncompatible},
		{"postgres", "integer[]", "integer", discovery.TypeIncompatible},
		{"mysql", "int(11)", "bigint(20)", discovery.TypeWidening},
		{"mysql", "int(11)", "int", discovery.TypeEquivalent},
		{"mysql", "int(10) unsigned", "int(11)", discovery.TypeNarrowing},
		{"mysql", "int(10) unsigned", "bigint(20)", discovery.TypeWidening},
		{"mysql", "text", "varchar(10)", discovery.TypeNarrowing},
		{"mysql", "varchar(255)", "text", discovery.TypeWidening},
		{"mysql", "text", "mediumtext", discovery.TypeWidening},
		{"mysql", "longtext", "text", discovery.TypeNarrowing},
		{"mysql", "decimal(10,2)", "decimal(12,2)", discovery.TypeWidening},
		{"mysql", "float", "double", discovery.TypeWidening},
		{"mysql", "datetime", "datetime(6)", discovery.TypeWidening},
		{"sqlite", "INTEGER", "TEXT", discovery.TypeWidening},
	}
	for _, c := range cases {
		require.Equal(t, c.want, discovery.CompareTypes(c.dialect, c.from, c.to), "%s: %s -> %s", c.dialect, c.from, c.to)
	}
}

func doc(fields []model.Field, profiles map[string]*discovery.FieldProfile) *discovery.SourceMetadata {
	return &discovery.SourceMetadata{Table: "s.t", Connector: "postgres", Schema: model.Schema{Fields: fields},
		Stats: discovery.Stats{Fields: profiles, Profiled: profiles != nil}}
}

func prof(distinct int64, min, max string, top ...string) *discovery.FieldProfile {
	p := &discovery.FieldProfile{DistinctCount: distinct, Min: min, Max: max, AvgLength: float64(len(min))}
	for _, v := range top {
		p.TopValues = append(p.TopValues, discovery.ValueFrequency{Value: v, Count: 3})
	}
	return p
}

func TestDiffRenameVersusDropAndAdd(t *testing.T) {
	id := model.Field{Name: "id", DataType: "integer"}
	email := model.Field{Name: "email", DataType: "text", Nullable: true}
	notes := model.Field{Name: "notes", DataType: "text", Nullable: true}
	legacy := model.Field{Name: "legacy_flag", DataType: "text", Nullable: true}
	idp := prof(100, "1", "100")
	emailP := prof(100, "a@x.io", "z@x.io", "a@x.io", "b@x.io")

	// Same data under a new name at the end of the table: a rename.
	prev := doc([]model.Field{id, email, notes}, map[string]*discovery.FieldProfile{"id": idp, "email": emailP, "notes": prof(5, "a", "e", "a")})
	mail := email
	mail.Name = "mail_address"
	cur := doc([]model.Field{id, notes, mail}, map[string]*discovery.FieldProfile{"id": idp, "notes": prof(5, "a", "e", "a"), "mail_address": emailP})
	cs := discovery.Diff(prev, cur, discovery.DiffOptions{})
	require.Len(t, cs, 1, describeChanges(cs))
	require.Equal(t, discovery.ChangeColumnRenamed, cs[0].ChangeType)
	require.Equal(t, "email", cs[0].PreviousColumn)
	require.Greater(t, cs[0].Confidence, 0.7)

	// Different data, different name, moved: a drop and an add.
	prev = doc([]model.Field{id, legacy, email}, map[string]*discovery.FieldProfile{"id": idp, "legacy_flag": prof(2, "N", "Y", "N", "Y"), "email": emailP})
	cur = doc([]model.Field{id, email, notes}, map[string]*discovery.FieldProfile{"id": idp, "email": emailP, "notes": prof(80, "aaa", "zzz", "q")})
	cs = discovery.Diff(prev, cur, discovery.DiffOptions{})
	require.Len(t, cs, 2, describeChanges(cs))
	types := map[string]string{}
	for _, c := range cs {
		types[c.ChangeType] = c.Column
	}
	require.Equal(t, map[string]string{discovery.ChangeColumnRemoved: "legacy_flag", discovery.ChangeColumnAdded: "notes"}, types)

	// An all-NULL new column is not paired with a dropped all-NULL one
	// just because their (empty) profiles agree.
	empty := &discovery.FieldProfile{NullFraction: 1}
	prev = doc([]model.Field{id, legacy}, map[string]*discovery.FieldProfile{"id": idp, "legacy_flag": empty})
	cur = doc([]model.Field{id, notes}, map[string]*discovery.FieldProfile{"id": idp, "notes": empty})
	cs = discovery.Diff(prev, cur, discovery.DiffOptions{})
	require.Len(t, cs, 2, describeChanges(cs))

	// A NOT NULL column added is breaking; a rename plus a type change
	// reports both.
	req := model.Field{Name: "req", DataType: "text"}
	cs = discovery.Diff(doc([]model.Field{id}, nil), doc([]model.Field{id, req}, nil), discovery.DiffOptions{})
	require.Len(t, cs, 1)
	require.Equal(t, discovery.SeverityBreaking, cs[0].Severity)
	wide := model.Field{Name: "ident", DataType: "bigint"}
	cs = discovery.Diff(doc([]model.Field{id, email}, nil), doc([]model.Field{wide, email}, nil), discovery.DiffOptions{})
	kinds := map[string]string{}
	for _, c := range cs {
		kinds[c.ChangeType] = c.TypeChange
	}
	require.Equal(t, map[string]string{discovery.ChangeColumnRenamed: "", discovery.ChangeTypeChanged: discovery.TypeWidening}, kinds, describeChanges(cs))

	// Table-level.
	require.Equal(t, discovery.ChangeTableAdded, discovery.Diff(nil, cur, discovery.DiffOptions{})[0].ChangeType)
	gone := discovery.Diff(prev, nil, discovery.DiffOptions{})[0]
	require.Equal(t, discovery.ChangeTableRemoved, gone.ChangeType)
	require.Equal(t, discovery.SeverityBreaking, gone.Severity)
}

func TestNameSimilarity(t *testing.T) {
	require.Equal(t, 1.0, discovery.NameSimilarity("Email", "email"))
	require.GreaterOrEqual(t, discovery.NameSimilarity("email", "contact_email"), 0.8)
	require.GreaterOrEqual(t, discovery.NameSimilarity("customerName", "customer_name"), 0.99)
	require.Less(t, discovery.NameSimilarity("amount", "zip"), 0.3)
}

func TestFilter(t *testing.T) {
	f, err := discovery.NewFilter([]string{"sales.*", "orders", "*.csv"}, []string{"sales.tmp_*"})
	require.NoError(t, err)
	require.True(t, f.Match("sales", "customers"))
	require.True(t, f.Match("SALES", "Customers"), "matching ignores case")
	require.False(t, f.Match("sales", "tmp_x"), "exclude wins")
	require.True(t, f.Match("public", "orders"))
	require.False(t, f.Match("public", "orders_archive"))
	require.True(t, f.Match("", "dir/a.csv"))
	require.False(t, f.Match("hr", "people"))
	all, err := discovery.NewFilter(nil, []string{"pg_*"})
	require.NoError(t, err)
	require.True(t, all.Match("x", "y"))
	lit, err := discovery.NewFilter([]string{"a+b.[x]"}, nil)
	require.NoError(t, err)
	require.True(t, lit.Match("a+b", "[x]"), "regexp characters are literal")
	require.False(t, lit.Match("aab", "x"))
}

func TestMySQLDriverDSN(t *testing.T) {
	got, err := discovery.MySQLDriverDSN("mysql://app:p%40ss@db.internal:3307/shop?tls=skip-verify&timeout=5s")
	require.NoError(t, err)
	require.Equal(t, "app:p@ss@tcp(db.internal:3307)/shop?timeout=5s&tls=skip-verify", got)
	got, err = discovery.MySQLDriverDSN("mysql://root@localhost/")
	require.NoError(t, err)
	require.Equal(t, "root@tcp(localhost:3306)/", got)
	got, err = discovery.MySQLDriverDSN("mysql://root@/shop?socket=/run/mysqld/mysqld.sock")
	require.NoError(t, err)
	require.Equal(t, "root@unix(/run/mysqld/mysqld.sock)/shop", got)
	_, err = discovery.MySQLDriverDSN("mysql://root@host/db?timeout=notaduration")
	require.Error(t, err)
	_, err = discovery.MySQLDriverDSN("postgres://x@y/z")
	require.Error(t, err)
}

func TestSourceIDFromDSN(t *testing.T) {
	require.Equal(t, "postgres://db.internal:5432/sales", discovery.SourceIDFromDSN("postgresql://u:secret@db.internal:5432/sales?sslmode=require"))
	require.Equal(t, "mysql://db:3306/shop", discovery.SourceIDFromDSN("mysql://root:pw@db:3306/shop"))
	require.Equal(t, "sqlite:///var/lib/x.db", discovery.SourceIDFromDSN("sqlite:///var/lib/x.db"))
	require.Equal(t, "kafka://b1:9092,b2:9093", discovery.SourceIDFromDSN("kafka://app:s3cret@b2:9093,b1:9092/?topics=orders&sample=100"))
	require.Equal(t, "kafka://localhost:9092", discovery.SourceIDFromDSN("kafka://localhost:9092"))
}

func TestProfilerStatistics(t *testing.T) {
	p := discovery.NewProfiler([]discovery.Column{
		{Name: "n", DataType: "integer"}, {Name: "s", DataType: "text"}, {Name: "b", DataType: "boolean"},
	}, discovery.ProfileOptions{TopK: 2})
	rows := [][]string{{"10", "b", "true"}, {"9", "a", "false"}, {"100", "", "true"}, {"", "a", ""}}
	for _, r := range rows {
		row := make([][]byte, len(r))
		for i, v := range r {
			if v != "" || i == 1 {
				row[i] = []byte(v)
			}
		}
		if r[1] == "" && r[0] == "100" {
			row[1] = []byte{} // an empty string is a value, not NULL
		}
		p.Add(row)
	}
	fp := p.Finish(4, true)
	require.Equal(t, "9", fmt.Sprint(fp["n"].Min), "numbers compare as numbers")
	require.Equal(t, "100", fmt.Sprint(fp["n"].Max))
	require.InDelta(t, 0.25, fp["n"].NullFraction, 1e-9)
	require.EqualValues(t, 3, fp["s"].DistinctCount)
	require.Equal(t, "a", fp["s"].TopValues[0].Value)
	require.EqualValues(t, 2, fp["s"].TopValues[0].Count)
	require.InDelta(t, 0.5, fp["s"].TopValues[0].Frequency, 1e-9)
	require.Len(t, fp["s"].TopValues, 2)
	require.Equal(t, false, fp["b"].Min)
	require.Equal(t, true, fp["b"].Max)
	require.False(t, fp["n"].DistinctEstimated)
}
