package mapping_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/mapping"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/testpg"
)

func runProgram(t *testing.T, prog string, in map[string]any) map[string]any {
	t.Helper()
	exe, err := bloblang.Parse(prog)
	require.NoError(t, err, prog)
	out, err := exe.Query(in)
	require.NoError(t, err, prog)
	return out.(map[string]any)
}

var hrRecord = map[string]any{
	"EMP_NO": 10001, "EMP_FNAME": "Ada", "EMP_LNAME": "Lovelace", "DOB": "03/15/1985",
	"HIRE_DT": int64(1262304000000), "TERM_DT": nil, "SAL_AMT": "$85,000.50", "DEPT_CD": "FIN",
	"STAT_CD": "T", "EMAIL_ADDR": "ada@example.com", "PHONE_NBR": "+1 415 555 0100", "MGR_EMP_NO": 10002,
	"JOB_TTL": "Senior Software Engineer", "ADDR_LN1": "12 Analytical Way", "ADDR_LN2": "Suite 200",
	"CITY_NM": "London", "ST_CD": "CA", "ZIP_CD": "02110", "GNDR_CD": "F", "FT_PT_IND": "Y",
	"SSN": "123-45-6789", "LST_UPD_USR": "BATCH01",
}

func TestProgramTransformsLegacyRecord(t *testing.T) {
	res := mapPair(t, mapping.Options{}, loadSchema(t, "hr_legacy.json"), loadSchema(t, "hr_modern.json"))
	prog, err := mapping.Program(res)
	require.NoError(t, err)
	require.Contains(t, prog, "# unmapped: badge_color")
	out := runProgram(t, prog, hrRecord)
	require.EqualValues(t, 10001, out["employee_id"])
	require.Equal(t, "Ada", out["first_name"])
	require.Equal(t, "Ada Lovelace", out["full_name"])
	require.Equal(t, "1985-03-15", out["date_of_birth"])
	require.EqualValues(t, 1985, out["birth_year"])
	require.Equal(t, "2010-01-01T00:00:00Z", out["hired_at"])
	require.Nil(t, out["terminated_on"])
	require.Contains(t, out, "terminated_on", "a null source gives a null target, not a missing one")
	require.EqualValues(t, 85000.5, out["annual_salary"])
	require.Equal(t, false, out["is_active"], "T is terminated")
	require.Equal(t, "Senior Software Engi", out["job_title"], "varchar(20)")
	require.Equal(t, "12 Analytical Way, Suite 200", out["street_address"])
	require.Equal(t, "02110", out["postal_code"], "leading zeros survive")
	require.NotContains(t, out, "badge_color")

	rec := map[string]any{}
	for k, v := range hrRecord {
		rec[k] = v
	}
	rec["STAT_CD"], rec["ADDR_LN2"] = "A", nil
	out = runProgram(t, prog, rec)
	require.Equal(t, true, out["is_active"])
	require.Equal(t, "12 Analytical Way", out["street_address"], "null parts are skipped")
	rec["ADDR_LN1"] = nil
	out = runProgram(t, prog, rec)
	require.Nil(t, out["street_address"], "all parts null gives null, as in SQL")
}

func TestProgramCRM(t *testing.T) {
	res := mapPair(t, mapping.Options{}, loadSchema(t, "crm_contacts.json"), loadSchema(t, "marketing_contacts.json"))
	prog, err := mapping.Program(res)
	require.NoError(t, err)
	out := runProgram(t, prog, map[string]any{
		"Id": "0035g00000XyZ1AAA", "FirstName": "Marie", "LastName": "Curie", "Email": "marie@radium.example",
		"CreatedDate": "2023-04-01T10:15:00.000+0200", "HasOptedOutOfEmail": true, "AnnualRevenue": 1.2e6,
		"NumberOfEmployees": 42, "LastActivityDate": "2024-01-15",
	})
	require.Equal(t, "0035g00000XyZ1AAA", out["contact_id"])
	require.Equal(t, "marie@radium.example", out["email_address"])
	require.Equal(t, "2023-04-01T10:15:00+02:00", out["created_at"])
	require.Equal(t, true, out["email_opt_out"])
	require.EqualValues(t, 42, out["employee_count"])
}

func TestTransformationsFromSamples(t *testing.T) {
	src := schema("s",
		field("created_ms", "bigint", 1700000000123.0, 1700000500000.0),
		field("signup_date", "text", "15/03/2021", "28/02/2020"),
		field("vip_flag", "text", "Yes", "No"),
		field("price_txt", "varchar(20)", "12.50", "3.99"),
		field("qty", "numeric(10,2)", 2.0, 3.0),
		field("zip", "integer", 94105.0),
	)
	tgt := schema("t",
		field("created_at", "timestamptz"),
		field("signup_date", "date"),
		field("is_vip", "boolean"),
		field("price", "numeric(10,2)"),
		field("qty", "integer"),
		field("zip", "varchar(5)"),
	)
	res := mapPair(t, mapping.Options{ReviewThreshold: 0.3}, src, tgt)
	by := byTarget(res.Mappings)
	for _, name := range []string{"created_at", "signup_date", "is_vip", "price", "qty", "zip"} {
		require.True(t, by[name].Proposed(), name)
		require.Equal(t, mapping.TypeTransformed, by[name].MappingType, name)
	}
	prog, err := mapping.Program(res)
	require.NoError(t, err)
	out := runProgram(t, prog, map[string]any{
		"created_ms": int64(1700000000123), "signup_date": "15/03/2021", "vip_flag": "YES",
		"price_txt": "12.50", "qty": 2.6, "zip": 94105,
	})
	require.Equal(t, "2023-11-14T22:13:20.123Z", out["created_at"])
	require.Equal(t, "2021-03-15", out["signup_date"], "day-first layout detected from 15/03")
	require.Equal(t, true, out["is_vip"], "flag match is case-insensitive")
	require.EqualValues(t, 12.5, out["price"])
	require.EqualValues(t, 3, out["qty"], "rounded to the integer target")
	require.Equal(t, "94105", out["zip"])
	// A value outside the learned vocabulary becomes null rather than a lie.
	out = runProgram(t, prog, map[string]any{"vip_flag": "maybe"})
	require.Nil(t, out["is_vip"])
}

// TestWeirdNamesAreQuoted: every name shape must address exactly its field
// and never break out of the path into code.
func TestWeirdNamesAreQuoted(t *testing.T) {
	names := []string{
		"weird name", `quo"te`, "dot.ted", "new\nline", "tab\tbed", "ünïcødé", "1starts_digit",
		`back\slash`, "tilde~0", "if", "root", "this", `x" } root = "pwned`, "emoji 🚀",
	}
	var fs []model.Field
	rec := map[string]any{}
	for i, n := range names {
		fs = append(fs, field(n, "text"))
		rec[n] = i
	}
	s := schema("s", fs...)
	res := mapPair(t, mapping.Options{}, s, s)
	prog, err := mapping.Program(res)
	require.NoError(t, err)
	out := runProgram(t, prog, rec)
	require.Len(t, out, len(names))
	for i, n := range names {
		require.EqualValues(t, i, out[n], "%q", n)
	}
	require.Equal(t, `this."weird name"`, mapping.BloblangPath("this", "weird name"))
	require.Equal(t, "this.plain_name", mapping.BloblangPath("this", "plain_name"))
	require.Equal(t, `root."new\nline"`, mapping.BloblangPath("root", "new\nline"))
}

func TestSQLIdentifierQuoting(t *testing.T) {
	q, err := mapping.QuoteIdent(`we"ird`)
	require.NoError(t, err)
	require.Equal(t, `"we""ird"`, q)
	_, err = mapping.QuoteIdent("nul\x00byte")
	require.Error(t, err)
	l, err := mapping.QuoteLiteral(`it's \ fine`)
	require.NoError(t, err)
	require.Equal(t, `'it''s \ fine'`, l)
}

// TestSQLRunsOnPostgres executes the generated expression list against a
// real table holding the legacy row and checks it computes what the
// Bloblang program computes.
func TestSQLRunsOnPostgres(t *testing.T) {
	res := mapPair(t, mapping.Options{}, loadSchema(t, "hr_legacy.json"), loadSchema(t, "hr_modern.json"))
	list, err := mapping.SQL(res)
	require.NoError(t, err)
	require.Contains(t, list, `AS "employee_id"`)
	require.NotContains(t, list, "SSN")

	db := testpg.NewSchema(t)
	db.Exec(t, `CREATE TABLE legacy ("EMP_NO" numeric(10), "EMP_FNAME" varchar(30), "EMP_LNAME" varchar(30),
		"DOB" varchar(10), "HIRE_DT" bigint, "TERM_DT" date, "SAL_AMT" varchar(20), "DEPT_CD" char(4),
		"STAT_CD" char(1), "EMAIL_ADDR" text, "PHONE_NBR" text, "MGR_EMP_NO" numeric(10), "JOB_TTL" text,
		"ADDR_LN1" text, "ADDR_LN2" text, "CITY_NM" text, "ST_CD" char(2), "ZIP_CD" text, "GNDR_CD" char(1),
		"FT_PT_IND" char(1), "SSN" text, "LST_UPD_USR" text)`)
	db.Exec(t, `INSERT INTO legacy VALUES (10001, 'Ada', 'Lovelace', '03/15/1985', 1262304000000, NULL,
		'$85,000.50', 'FIN', 'T', 'ada@example.com', '+1 415 555 0100', 10002, 'Senior Software Engineer',
		'12 Analytical Way', NULL, 'London', 'CA', '02110', 'F', 'Y', '123-45-6789', 'BATCH01')`)
	q := "SELECT row_to_json(x)::text FROM (SELECT\n" + list + "FROM legacy) x"
	got := db.String(t, q)
	for _, want := range []string{
		`"employee_id":10001`, `"full_name":"Ada Lovelace"`, `"date_of_birth":"1985-03-15"`, `"birth_year":1985`,
		`"hired_at":"2010-01-01T00:00:00+00:00"`, `"annual_salary":85000.50`, `"is_active":false`,
		`"job_title":"Senior Software Engi"`, `"street_address":"12 Analytical Way"`, `"postal_code":"02110"`,
		`"terminated_on":null`,
	} {
		require.Contains(t, got, want, q)
	}
}

func TestSQLRejectsNUL(t *testing.T) {
	// A NUL cannot appear in a PostgreSQL identifier; the schema is refused
	// before any SQL is produced.
	_, err := mapping.New(mapping.Options{}).Map(context.Background(),
		schema("s", field("a\x00b", "text")), schema("t", field("ab", "text")))
	require.ErrorContains(t, err, "NUL")
}

func TestProgramRejectsUnknownFields(t *testing.T) {
	res := mapPair(t, mapping.Options{}, loadSchema(t, "crm_contacts.json"), loadSchema(t, "marketing_contacts.json"))
	res.Mappings[0].SourceField = mapping.Sources{"NoSuchColumn"}
	_, err := mapping.Program(res)
	require.ErrorContains(t, err, "NoSuchColumn")
	_, err = mapping.SQL(res)
	require.ErrorContains(t, err, "NoSuchColumn")
}

func TestProgramMarksReview(t *testing.T) {
	res := mapPair(t, mapping.Options{}, loadSchema(t, "hr_legacy.json"), loadSchema(t, "hr_modern.json"))
	prog, err := mapping.Program(res)
	require.NoError(t, err)
	n := 0
	for _, m := range res.Mappings {
		if m.Status == mapping.StatusReview {
			n++
		}
	}
	require.Positive(t, n)
	require.Equal(t, n, strings.Count(prog, "# review"))
}
