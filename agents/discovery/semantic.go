package discovery

import (
	"math"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Semantic types detected from column values (and, for ambiguous formats,
// the column name).
const (
	SemanticEmail        = "email"
	SemanticPhone        = "phone"
	SemanticURL          = "url"
	SemanticUUID         = "uuid"
	SemanticIP           = "ip"
	SemanticCountryCode  = "country_code"
	SemanticCurrencyCode = "currency_code"
	SemanticPostalCode   = "postal_code"
	SemanticISODate      = "iso_date"
	SemanticISOTimestamp = "iso_timestamp"
	SemanticEpochSeconds = "epoch_seconds"
	SemanticEpochMillis  = "epoch_millis"
	SemanticBooleanFlag  = "boolean_flag"
)

// DetectSemanticType classifies a column from its name and some of its
// distinct non-null values (text form). It returns "" when no type reaches
// the default threshold (90% of the values, 80% when the name agrees),
// and the share of values that matched.
func DetectSemanticType(column string, values []string) (string, float64) {
	seen := map[string]bool{}
	var small []string
	for _, v := range values {
		if !seen[v] {
			seen[v] = true
			if len(small) <= 4 {
				small = append(small, v)
			}
		}
	}
	if len(seen) > 4 {
		small = nil
	}
	return detectSemantic(column, ClassText, values, small, len(seen), defaultSemanticThreshold)
}

var (
	reEmail     = regexp.MustCompile(`^[A-Za-z0-9._%+\-']+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}$`)
	reUUID      = regexp.MustCompile(`^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$`)
	reISODate   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	reISOTime   = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?\s?(?:Z|[+-]\d{2}(?::?\d{2})?|UTC)?$`)
	rePhoneish  = regexp.MustCompile(`^\+?[0-9 ().\-/]{6,24}(?:\s?(?:x|ext\.?)\s?\d{1,5})?$`)
	reDigits    = regexp.MustCompile(`^[0-9]+$`)
	rePostalAny = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 \-]{1,8}[A-Za-z0-9]$`)
	// Distinctive postal formats: UK, Canada, Netherlands, US ZIP+4, Poland,
	// Brazil, Japan.
	rePostalDistinct = regexp.MustCompile(`^(?:[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}|[A-Za-z]\d[A-Za-z] ?\d[A-Za-z]\d|\d{4} ?[A-Za-z]{2}|\d{5}-\d{4}|\d{2}-\d{3}|\d{5}-\d{3}|\d{3}-\d{4})$`)
)

type detector struct {
	typ   string
	match func(v string) bool
	// needsHint means the format is too ambiguous without the column name
	// agreeing (a bare 5-digit number is not necessarily a ZIP code).
	needsHint bool
}

// detectSemantic is the profiler's entry point. values are distinct
// non-null values; small holds all distinct values when there are at most
// four (for boolean-like flags).
func detectSemantic(name string, class ValueClass, values, small []string, distinct int, threshold float64) (string, float64) {
	if class == ClassBoolean || class == ClassOther || len(values) == 0 {
		return "", 0
	}
	hints := nameHints(name)
	if small != nil && distinct <= 4 {
		if conf := flagConfidence(small, hints); conf > 0 {
			return SemanticBooleanFlag, conf
		}
	}
	var trimmed []string
	for _, v := range values {
		if t := strings.TrimSpace(v); t != "" {
			trimmed = append(trimmed, t)
		}
	}
	if len(trimmed) == 0 {
		return "", 0
	}
	idLike := hints["id"]
	dets := []detector{
		{typ: SemanticUUID, match: func(v string) bool { return reUUID.MatchString(v) }},
		{typ: SemanticEmail, match: func(v string) bool { return reEmail.MatchString(v) }},
		{typ: SemanticURL, match: isURL},
		{typ: SemanticIP, match: isIP},
		{typ: SemanticISOTimestamp, match: isISOTimestamp},
		{typ: SemanticISODate, match: isISODate},
		{typ: SemanticEpochMillis, match: func(v string) bool { return epochIn(v, 1e11, 4.2e12) }, needsHint: idLike},
		{typ: SemanticEpochSeconds, match: func(v string) bool { return epochIn(v, 1e8, 4.2e9) }, needsHint: idLike},
		{typ: SemanticCurrencyCode, match: func(v string) bool { return len(v) == 3 && currencyCodes[strings.ToUpper(v)] }},
		{typ: SemanticCountryCode, match: isCountryCode},
		{typ: SemanticPostalCode, match: func(v string) bool {
			if hints[SemanticPostalCode] {
				return rePostalAny.MatchString(v) && strings.ContainsAny(v, "0123456789")
			}
			return rePostalDistinct.MatchString(v)
		}},
		{typ: SemanticPhone, match: func(v string) bool { return isPhone(v, hints[SemanticPhone]) }},
	}
	if class == ClassTemporal {
		dets = dets[4:6]
	}
	// Hinted detectors first, with a lower bar; then all of them in order.
	for _, d := range dets {
		if !hints[d.typ] {
			continue
		}
		if f := share(trimmed, d.match); f >= math.Min(threshold, 0.8) {
			return d.typ, round(f, 3)
		}
	}
	for _, d := range dets {
		if d.needsHint && !hints[d.typ] {
			continue
		}
		if d.typ == SemanticCountryCode || d.typ == SemanticCurrencyCode {
			// Short upper-case codes are everywhere (status codes, states):
			// require a hint or a reasonable variety of values.
			if !hints[d.typ] && distinct < 3 {
				continue
			}
		}
		if f := share(trimmed, d.match); f >= threshold {
			return d.typ, round(f, 3)
		}
	}
	return "", 0
}

func share(values []string, match func(string) bool) float64 {
	n := 0
	for _, v := range values {
		if match(v) {
			n++
		}
	}
	return float64(n) / float64(len(values))
}

// Boolean-like flag pairs, lower case.
var flagPairs = [][2]string{
	{"y", "n"}, {"yes", "no"}, {"t", "f"}, {"true", "false"}, {"1", "0"}, {"on", "off"},
	{"a", "i"}, {"a", "t"}, {"a", "d"}, {"j", "n"}, {"ja", "nein"}, {"s", "n"}, {"si", "no"}, {"sí", "no"},
	{"o", "n"}, {"oui", "non"}, {"active", "inactive"}, {"enabled", "disabled"},
}

// singleFlags may form a flag column on their own (every row "Y").
var singleFlags = map[string]bool{"y": true, "n": true, "yes": true, "no": true, "true": true, "false": true, "t": true, "f": true}

func flagConfidence(values []string, hints map[string]bool) float64 {
	set := map[string]bool{}
	for _, v := range values {
		t := strings.ToLower(strings.TrimSpace(v))
		if t == "" {
			continue
		}
		set[t] = true
	}
	if len(set) == 0 || len(set) > 2 {
		return 0
	}
	if hints[SemanticCountryCode] {
		return 0
	}
	for _, p := range flagPairs {
		in := true
		for v := range set {
			if v != p[0] && v != p[1] {
				in = false
				break
			}
		}
		if !in {
			continue
		}
		if len(set) == 2 {
			return 1
		}
		for v := range set {
			if singleFlags[v] || hints[SemanticBooleanFlag] {
				return 0.7
			}
		}
	}
	return 0
}

func isURL(v string) bool {
	l := strings.ToLower(v)
	if !strings.HasPrefix(l, "http://") && !strings.HasPrefix(l, "https://") && !strings.HasPrefix(l, "ftp://") {
		return false
	}
	u, err := url.Parse(v)
	return err == nil && u.Host != "" && !strings.ContainsAny(v, " \t")
}

func isIP(v string) bool {
	if _, err := netip.ParseAddr(v); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(v)
	return err == nil
}

func isISODate(v string) bool {
	if !reISODate.MatchString(v) {
		return false
	}
	_, err := time.Parse("2006-01-02", v)
	return err == nil
}

func isISOTimestamp(v string) bool {
	m := reISOTime.FindStringSubmatch(v)
	if m == nil {
		return false
	}
	if _, err := time.Parse("2006-01-02", m[1]); err != nil {
		return false
	}
	h, _ := strconv.Atoi(m[2])
	mi, _ := strconv.Atoi(m[3])
	return h < 24 && mi < 60
}

func epochIn(v string, lo, hi float64) bool {
	s := v
	if i := strings.IndexByte(s, '.'); i > 0 {
		s = s[:i]
	}
	if !reDigits.MatchString(s) || len(s) > 14 {
		return false
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f >= lo && f <= hi
}

func isPhone(v string, hinted bool) bool {
	if !rePhoneish.MatchString(v) {
		return false
	}
	digits := 0
	for _, r := range v {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	if digits < 7 || digits > 15 {
		return false
	}
	if hinted {
		return true
	}
	// Without the name agreeing, bare digit strings are numbers, and
	// dates look like "2024-01-02": ask for phone-like formatting.
	if reISODate.MatchString(v) {
		return false
	}
	return strings.HasPrefix(v, "+") || strings.HasPrefix(v, "(") ||
		(strings.ContainsAny(v, " -.") && strings.Count(v, "-") <= 3 && !reDigits.MatchString(v))
}

func isCountryCode(v string) bool {
	u := strings.ToUpper(v)
	switch len(u) {
	case 2:
		return countryAlpha2[u]
	case 3:
		return countryAlpha3[u]
	}
	return false
}

// nameHints reads what the column name suggests. "id" marks identifier-like
// names, which are never taken for epoch timestamps without a time hint.
func nameHints(name string) map[string]bool {
	toks := nameTokens(name)
	joined := strings.Join(toks, "")
	h := map[string]bool{}
	has := func(words ...string) bool {
		for _, w := range words {
			for _, t := range toks {
				if t == w {
					return true
				}
			}
		}
		return false
	}
	contains := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(joined, w) {
				return true
			}
		}
		return false
	}
	h[SemanticEmail] = contains("email") || has("mail")
	h[SemanticPhone] = contains("phone", "mobile", "msisdn") || has("tel", "fax", "cell")
	h[SemanticURL] = contains("url", "website", "homepage", "href") || has("link", "uri", "site")
	h[SemanticUUID] = contains("uuid", "guid")
	h[SemanticIP] = has("ip", "ipv4", "ipv6", "ipaddr", "ipaddress") || contains("ipaddress")
	h[SemanticCountryCode] = contains("country", "cntry", "nation")
	h[SemanticCurrencyCode] = contains("currency") || has("ccy", "curr", "cur")
	h[SemanticPostalCode] = contains("zip", "postal", "postcode", "postleitzahl") || has("plz", "cep")
	epoch := contains("epoch", "timestamp", "created", "updated", "modified", "deleted", "time") ||
		has("ts", "at", "unix", "date")
	h[SemanticEpochSeconds], h[SemanticEpochMillis] = epoch, epoch
	h[SemanticBooleanFlag] = has("is", "has", "flag", "active", "enabled", "deleted")
	h["id"] = !epoch && (has("id", "key", "no", "num", "number", "code", "ref") || strings.HasSuffix(joined, "id"))
	return h
}

// nameTokens splits a column name into lower-case words at non-alphanumeric
// characters and camelCase boundaries.
func nameTokens(name string) []string {
	var toks []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			toks = append(toks, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return toks
}

func codeSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(s) {
		m[c] = true
	}
	return m
}

// ISO 3166-1 alpha-2 (plus the widely used UK, EU and XK) and alpha-3.
var countryAlpha2 = codeSet(`AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET
FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR
IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN
MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR
TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW UK EU XK`)

var countryAlpha3 = codeSet(`AFG ALA ALB DZA ASM AND AGO AIA ATA ATG ARG ARM ABW AUS AUT AZE BHS BHR BGD BRB BLR BEL BLZ
BEN BMU BTN BOL BES BIH BWA BVT BRA IOT BRN BGR BFA BDI CPV KHM CMR CAN CYM CAF TCD CHL CHN CXR CCK COL COM COG COD COK
CRI CIV HRV CUB CUW CYP CZE DNK DJI DMA DOM ECU EGY SLV GNQ ERI EST SWZ ETH FLK FRO FJI FIN FRA GUF PYF ATF GAB GMB GEO
DEU GHA GIB GRC GRL GRD GLP GUM GTM GGY GIN GNB GUY HTI HMD VAT HND HKG HUN ISL IND IDN IRN IRQ IRL IMN ISR ITA JAM JPN
JEY JOR KAZ KEN KIR PRK KOR KWT KGZ LAO LVA LBN LSO LBR LBY LIE LTU LUX MAC MDG MWI MYS MDV MLI MLT MHL MTQ MRT MUS MYT
MEX FSM MDA MCO MNG MNE MSR MAR MOZ MMR NAM NRU NPL NLD NCL NZL NIC NER NGA NIU NFK MKD MNP NOR OMN PAK PLW PSE PAN PNG
PRY PER PHL PCN POL PRT PRI QAT REU ROU RUS RWA BLM SHN KNA LCA MAF SPM VCT WSM SMR STP SAU SEN SRB SYC SLE SGP SXM SVK
SVN SLB SOM ZAF SGS SSD ESP LKA SDN SUR SJM SWE CHE SYR TWN TJK TZA THA TLS TGO TKL TON TTO TUN TUR TKM TCA TUV UGA UKR
ARE GBR USA UMI URY UZB VUT VEN VNM VGB VIR WLF ESH YEM ZMB ZWE`)

// ISO 4217 active codes (plus precious metals).
var currencyCodes = codeSet(`AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ
GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD
MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON
RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX
USD UYU UZS VED VES VND VUV WST XAF XAG XAU XCD XOF XPF YER ZAR ZMW ZWG ZWL`)
