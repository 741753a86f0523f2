package mapping_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/mapping"
	"github.com/agentetl/agentetl/internal/model"
)

// hrExpected is the human answer for the legacy HR master file against the
// modern employee table. FT_PT_IND -> is_full_time is included although no
// lexicon knows "FT" = full time: the matcher is allowed to miss it, and
// missing it must not make it guess something else.
var hrExpected = map[string][]string{
	"employee_id":     {"EMP_NO"},
	"first_name":      {"EMP_FNAME"},
	"last_name":       {"EMP_LNAME"},
	"full_name":       {"EMP_FNAME", "EMP_LNAME"},
	"date_of_birth":   {"DOB"},
	"birth_year":      {"DOB"},
	"hired_at":        {"HIRE_DT"},
	"terminated_on":   {"TERM_DT"},
	"annual_salary":   {"SAL_AMT"},
	"department_code": {"DEPT_CD"},
	"is_active":       {"STAT_CD"},
	"email":           {"EMAIL_ADDR"},
	"phone_number":    {"PHONE_NBR"},
	"manager_id":      {"MGR_EMP_NO"},
	"job_title":       {"JOB_TTL"},
	"street_address":  {"ADDR_LN1", "ADDR_LN2"},
	"city":            {"CITY_NM"},
	"state":           {"ST_CD"},
	"postal_code":     {"ZIP_CD"},
	"gender":          {"GNDR_CD"},
	"is_full_time":    {"FT_PT_IND"},
}

var crmExpected = map[string][]string{
	"contact_id":         {"Id"},
	"first_name":         {"FirstName"},
	"last_name":          {"LastName"},
	"email_address":      {"Email"},
	"phone_number":       {"Phone"},
	"mobile_number":      {"MobilePhone"},
	"job_title":          {"Title"},
	"company_name":       {"AccountName"},
	"street_address":     {"MailingStreet"},
	"city":               {"MailingCity"},
	"region":             {"MailingState"},
	"zip_code":           {"MailingPostalCode"},
	"country":            {"MailingCountry"},
	"lead_source":        {"LeadSource"},
	"created_at":         {"CreatedDate"},
	"email_opt_out":      {"HasOptedOutOfEmail"},
	"do_not_call":        {"DoNotCall"},
	"annual_revenue":     {"AnnualRevenue"},
	"industry":           {"Industry"},
	"employee_count":     {"NumberOfEmployees"},
	"website_url":        {"Website"},
	"last_activity_date": {"LastActivityDate"},
}

// requireAcceptedCorrect checks the promise behind "accepted": every
// accepted mapping is right.
func requireAcceptedCorrect(t *testing.T, ms []mapping.FieldMapping, expected map[string][]string) int {
	t.Helper()
	n := 0
	for _, m := range ms {
		if m.Status != mapping.StatusAccepted {
			continue
		}
		n++
		require.ElementsMatch(t, expected[m.TargetField], []string(m.SourceField), "accepted mapping for %s", m.TargetField)
	}
	return n
}

func TestLegacyHRAgainstModernTable(t *testing.T) {
	res := mapPair(t, mapping.Options{}, loadSchema(t, "hr_legacy.json"), loadSchema(t, "hr_modern.json"))
	require.Len(t, res.Mappings, 22, "one entry per target field")
	p, r, f1 := pairScores(res.Mappings, hrExpected)
	t.Logf("HR legacy -> modern: P=%.3f R=%.3f F1=%.3f", p, r, f1)
	require.GreaterOrEqual(t, p, 0.95)
	require.GreaterOrEqual(t, f1, 0.85, "far above the research benchmarks' ~0.55")
	require.GreaterOrEqual(t, requireAcceptedCorrect(t, res.Mappings, hrExpected), 8)

	by := byTarget(res.Mappings)
	// Abbreviations, vowel-dropped forms and synonyms.
	require.Equal(t, mapping.Sources{"EMP_NO"}, by["employee_id"].SourceField)
	require.Equal(t, mapping.Sources{"ZIP_CD"}, by["postal_code"].SourceField)
	require.Equal(t, mapping.Sources{"GNDR_CD"}, by["gender"].SourceField)
	// Derived mappings: many-to-one and one-to-many.
	require.Equal(t, mapping.TypeDerived, by["full_name"].MappingType)
	require.Equal(t, mapping.Sources{"EMP_FNAME", "EMP_LNAME"}, by["full_name"].SourceField)
	require.Equal(t, mapping.TypeDerived, by["street_address"].MappingType)
	require.Equal(t, mapping.TypeDerived, by["birth_year"].MappingType)
	// Transformations learned from samples.
	require.Equal(t, mapping.TypeTransformed, by["hired_at"].MappingType)
	require.Contains(t, by["hired_at"].Transformation, "/ 1000", "epoch milliseconds")
	require.Contains(t, by["date_of_birth"].Transformation, `ts_parse("1/2/2006")`, "US date layout detected")
	require.Contains(t, by["is_active"].Transformation, `"a" => true`)
	require.Contains(t, by["is_active"].Transformation, `"t" => false`)
	require.Contains(t, by["job_title"].Transformation, "{0,20}", "varchar(20) truncation")
	// Columns without a counterpart stay out.
	require.Equal(t, mapping.StatusUnmapped, by["badge_color"].Status)
	require.Nil(t, by["badge_color"].SourceField)
	for _, m := range res.Mappings {
		if m.Proposed() {
			require.NotContains(t, []string(m.SourceField), "SSN")
			require.NotEmpty(t, m.Signals)
			require.NotEmpty(t, m.Reasoning)
			require.False(t, strings.Contains(strings.TrimSuffix(m.Reasoning, "."), "\n"))
		}
	}
}

func TestCRMExportAgainstMarketingPlatform(t *testing.T) {
	res := mapPair(t, mapping.Options{}, loadSchema(t, "crm_contacts.json"), loadSchema(t, "marketing_contacts.json"))
	p, r, f1 := pairScores(res.Mappings, crmExpected)
	t.Logf("CRM -> marketing: P=%.3f R=%.3f F1=%.3f", p, r, f1)
	require.GreaterOrEqual(t, p, 0.95)
	require.GreaterOrEqual(t, f1, 0.9)
	require.GreaterOrEqual(t, requireAcceptedCorrect(t, res.Mappings, crmExpected), 8)
	by := byTarget(res.Mappings)
	require.Equal(t, mapping.StatusUnmapped, by["tags"].Status)
	require.Equal(t, mapping.StatusUnmapped, by["engagement_score"].Status)
	// Salesforce's datetime format is detected and normalised to RFC 3339.
	require.Contains(t, by["created_at"].Transformation, "2006-01-02T15:04:05.000-0700")
}

func TestOutputJSONShape(t *testing.T) {
	res := mapPair(t, mapping.Options{}, loadSchema(t, "hr_legacy.json"), loadSchema(t, "hr_modern.json"))
	b, err := json.Marshal(res.Mappings)
	require.NoError(t, err)
	var raw []map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	seen := map[string]bool{}
	for _, m := range raw {
		require.Contains(t, m, "sourceField")
		require.Contains(t, m, "targetField")
		require.Contains(t, m, "confidence")
		require.Contains(t, m, "status")
		c := m["confidence"].(float64)
		require.True(t, c >= 0 && c <= 1)
		switch m["status"] {
		case mapping.StatusUnmapped:
			require.Nil(t, m["sourceField"])
			seen["unmapped"] = true
		default:
			require.Contains(t, []any{"direct", "transformed", "derived"}, m["mappingType"])
			if m["mappingType"] == "derived" && m["targetField"] == "full_name" {
				require.IsType(t, []any{}, m["sourceField"], "many-to-one sources are an array")
			} else if m["mappingType"] != "derived" {
				require.IsType(t, "", m["sourceField"])
			}
		}
	}
	require.True(t, seen["unmapped"])
	// Round trip: Sources decodes null, a string and an array.
	var back []mapping.FieldMapping
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, res.Mappings, back)
}

func TestEmptySchemasGiveEmptyResult(t *testing.T) {
	full := loadSchema(t, "crm_contacts.json")
	for _, c := range []struct{ src, tgt model.Schema }{
		{schema("s"), full}, {full, schema("t")}, {schema("s"), schema("t")},
	} {
		res := mapPair(t, mapping.Options{}, c.src, c.tgt)
		b, err := json.Marshal(res.Mappings)
		require.NoError(t, err)
		require.JSONEq(t, `[]`, string(b))
	}
}

func TestDuplicateFieldNamesRejected(t *testing.T) {
	dup := schema("s", field("id", "int"), field("name", "text"), field("id", "bigint"))
	_, err := mapping.New(mapping.Options{}).Map(context.Background(), dup, schema("t", field("id", "int")))
	require.ErrorContains(t, err, `duplicate field name "id"`)
	_, err = mapping.New(mapping.Options{}).Map(context.Background(), schema("t", field("id", "int")), dup)
	require.ErrorContains(t, err, "target schema")
}

// TestAssignBeatsGreedy: taking the single best pair first (A-X, 0.9)
// forces B onto Y (0.1), total 1.0; the optimum pairs A-Y and B-X (1.65).
func TestAssignBeatsGreedy(t *testing.T) {
	score := []float64{
		0.9, 0.8, // A: X, Y
		0.85, 0.1, // B: X, Y
	}
	require.Equal(t, []int{1, 0}, mapping.Assign(2, 2, score))
	// Rectangular, both orientations.
	require.Equal(t, []int{1, 0, -1}, mapping.Assign(3, 2, []float64{0.9, 0.8, 0.85, 0.1, 0.2, 0.2}))
	require.Equal(t, []int{2, 0}, mapping.Assign(2, 3, []float64{0.9, 0.1, 0.8, 0.85, 0.2, 0.1}))
}

// TestGlobalAssignmentInMap: "ship_date" is the best source for both
// "order_date" and "ship_date" style targets; the assignment keeps the
// exact pair and gives order_date the order column.
func TestGlobalAssignmentInMap(t *testing.T) {
	src := schema("s", field("ord_dt", "date"), field("ship_dt", "date"), field("order_ship_dt", "date"))
	tgt := schema("t", field("order_date", "date"), field("ship_date", "date"))
	by := byTarget(mapPair(t, mapping.Options{}, src, tgt).Mappings)
	require.Equal(t, mapping.Sources{"ord_dt"}, by["order_date"].SourceField)
	require.Equal(t, mapping.Sources{"ship_dt"}, by["ship_date"].SourceField)
}

func TestHistoryRaisesAndLowers(t *testing.T) {
	src := schema("s", field("ref_code", "text"), field("region", "text"))
	tgt := schema("t", field("reference_label", "text"))
	base := byTarget(mapPair(t, mapping.Options{}, src, tgt).Mappings)["reference_label"]
	require.Equal(t, mapping.Sources{"ref_code"}, base.SourceField)

	h := mapping.NewMemoryHistory()
	h.Record("ref_code", "reference_label", true)
	h.Record("ref_code", "reference_label", true)
	up := byTarget(mapPair(t, mapping.Options{History: h}, src, tgt).Mappings)["reference_label"]
	require.Greater(t, up.Confidence, base.Confidence)
	require.Greater(t, up.Signals[mapping.SignalHistory], 0.5)
	require.Contains(t, up.Reasoning, "accepted before")

	h2 := mapping.NewMemoryHistory()
	for range 3 {
		h2.Record("ref_code", "reference_label", false)
	}
	down := byTarget(mapPair(t, mapping.Options{History: h2}, src, tgt).Mappings)["reference_label"]
	require.Equal(t, mapping.StatusUnmapped, down.Status, "a pair rejected three times is not proposed again")
	require.NotNil(t, down.BestCandidate)
	require.Less(t, down.BestCandidate.Signals[mapping.SignalHistory], 0.5)
}

func TestHistoryFromDecisions(t *testing.T) {
	m := mapping.FieldMapping{SourceField: mapping.Sources{"a"}, TargetField: "b", Status: mapping.StatusAccepted, Confidence: 0.9}
	ds := []model.AgentDecision{
		mapping.Decision(m, mapping.ActionAccepted, "agent-1", "p1"),
		mapping.Decision(m, mapping.ActionRejected, "agent-1", "p1"),
		mapping.Decision(m, mapping.ActionAccepted, "agent-1", "p1"),
		mapping.Decision(m, mapping.ActionProposed, "agent-1", "p1"),
		{Action: mapping.ActionAccepted, Outcome: "not json"},
	}
	require.Equal(t, model.AgentMapping, ds[0].AgentType)
	acc, rej := mapping.HistoryFromDecisions(ds).Feedback("A", "B")
	require.Equal(t, 2, acc, "names compare case-insensitively")
	require.Equal(t, 1, rej)
}

func TestThresholdsAreConfigurable(t *testing.T) {
	src, tgt := loadSchema(t, "crm_contacts.json"), loadSchema(t, "marketing_contacts.json")
	strict := mapPair(t, mapping.Options{AcceptThreshold: 0.99, ReviewThreshold: 0.95}, src, tgt)
	loose := mapPair(t, mapping.Options{}, src, tgt)
	count := func(ms []mapping.FieldMapping, st string) int {
		n := 0
		for _, m := range ms {
			if m.Status == st {
				n++
			}
		}
		return n
	}
	require.Less(t, count(strict.Mappings, mapping.StatusAccepted), count(loose.Mappings, mapping.StatusAccepted))
	require.Greater(t, count(strict.Mappings, mapping.StatusUnmapped), count(loose.Mappings, mapping.StatusUnmapped))
	for _, m := range strict.Mappings {
		if m.Proposed() {
			require.GreaterOrEqual(t, m.Confidence, 0.95)
		}
	}
}

func TestTypesAcrossDialects(t *testing.T) {
	cases := map[string]mapping.Kind{
		"NUMBER(10)": mapping.KindInteger, "NUMBER(12,2)": mapping.KindNumber, "VARCHAR2(30)": mapping.KindString,
		"tinyint(1)": mapping.KindBoolean, "character varying(50)": mapping.KindString, "timestamptz": mapping.KindTimestamp,
		"datetime": mapping.KindTimestamp, "currency": mapping.KindNumber, "picklist": mapping.KindString,
		"checkbox": mapping.KindBoolean, "jsonb": mapping.KindObject, "text[]": mapping.KindArray, "uuid": mapping.KindUUID,
		"bigint unsigned": mapping.KindInteger, "double precision": mapping.KindNumber, "CLOB": mapping.KindString,
	}
	for in, want := range cases {
		require.Equal(t, want, mapping.NormalizeType(in).Kind, in)
	}
	require.Equal(t, 40, mapping.NormalizeType("varchar(40)").Length)
}

func TestTypeSignalPenalisesNonsense(t *testing.T) {
	// Same name, incompatible types: still proposed (names rule), but the
	// type signal is reported low and confidence drops.
	src := schema("s", field("created", "boolean", true, false))
	tgtOK := schema("t", field("created", "bool"))
	tgtBad := schema("t", field("created", "bytea"))
	ok := mapPair(t, mapping.Options{}, src, tgtOK).Mappings[0]
	bad := mapPair(t, mapping.Options{}, src, tgtBad).Mappings[0]
	require.Greater(t, ok.Confidence, bad.Confidence)
	require.Less(t, bad.Signals[mapping.SignalType], 0.5)
}

func TestInstanceSignalSeparatesLookalikes(t *testing.T) {
	// Two "contact" columns: the sample values decide which is the email.
	src := schema("s",
		field("contact_1", "text", "ana@example.com", "bo@example.org"),
		field("contact_2", "text", "+1 415 555 0100", "+44 20 7946 0958"))
	tgt := schema("t",
		field("contact_email", "text", "x@example.net"),
		field("contact_phone", "text", "+1 212 555 0199"))
	by := byTarget(mapPair(t, mapping.Options{}, src, tgt).Mappings)
	require.Equal(t, mapping.Sources{"contact_1"}, by["contact_email"].SourceField)
	require.Equal(t, mapping.Sources{"contact_2"}, by["contact_phone"].SourceField)
	require.Greater(t, by["contact_email"].Signals[mapping.SignalInstance], 0.7)
}

func TestDescriptionSignal(t *testing.T) {
	src := schema("s",
		model.Field{Name: "c1", DataType: "text", Description: "Customer's preferred language for correspondence"},
		model.Field{Name: "c2", DataType: "text", Description: "Country where the customer is taxed"})
	tgt := schema("t",
		model.Field{Name: "tax_country", DataType: "text", Description: "The country of tax residence of the customer"},
		model.Field{Name: "locale", DataType: "text", Description: "Preferred correspondence language"})
	by := byTarget(mapPair(t, mapping.Options{ReviewThreshold: 0.2}, src, tgt).Mappings)
	require.Equal(t, mapping.Sources{"c2"}, by["tax_country"].SourceField)
	require.Equal(t, mapping.Sources{"c1"}, by["locale"].SourceField)
	require.Contains(t, by["locale"].Signals, mapping.SignalDescription)
}

func TestAbbreviationForms(t *testing.T) {
	// Prefix, consonant skeleton, vowel-dropped and acronym-like forms.
	pairs := [][2]string{
		{"Fiscal year", "FiYe"},
		{"NumberCars", "nmbrcrs"},
		{"AgencyID", "gncd"},
		{"assay_test_type", "ASSTETY"},
		{"customer_number", "cust_no"},
		{"quantity_ordered", "qty_ord"},
	}
	var sf, tf []model.Field
	for _, p := range pairs {
		sf = append(sf, field(p[0], "string"))
		tf = append(tf, field(p[1], "string"))
	}
	by := byTarget(mapPair(t, mapping.Options{}, schema("s", sf...), schema("t", tf...)).Mappings)
	for _, p := range pairs {
		require.Equal(t, mapping.Sources{p[0]}, by[p[1]].SourceField, fmt.Sprintf("%s -> %s", p[0], p[1]))
	}
}

func TestKnownWordIsNotAnAbbreviation(t *testing.T) {
	// "city" is a word, not an abbreviation of "capacity".
	src := schema("s", field("city", "string"), field("cap", "string"))
	tgt := schema("t", field("capacity", "string"))
	by := byTarget(mapPair(t, mapping.Options{}, src, tgt).Mappings)
	require.Equal(t, mapping.Sources{"cap"}, by["capacity"].SourceField)
}
