package mapping

// The lexicon is general data-modelling vocabulary: abbreviations that
// column names use, synonyms that name the same concept, and words that
// carry no meaning in a column name. It deliberately contains no dataset
// specific names so that the matcher behaves the same on unseen schemas.

// stopWords are dropped from names and descriptions before comparison: they
// glue a column name together but do not say what it holds.
var stopWords = setOf(
	"a", "an", "the", "of", "for", "to", "in", "on", "at", "by", "and", "or",
	"is", "are", "was", "be", "this", "that", "with", "as", "per", "from",
	"it", "its", "if", "which", "who", "whom", "whose", "what", "when",
	"where", "than", "then", "there", "these", "those", "has", "have", "had",
	"not", "no", "any", "all", "such", "may", "can", "will", "would", "should",
	"into", "used", "use", "using", "e", "g", "i", "ie", "eg", "etc", "also",
	"been", "being", "do", "does", "each", "other", "same", "some", "only",
	"via", "about", "so", "but", "how", "our", "we", "you", "your", "they",
	"their", "them", "he", "she", "his", "her", "one", "more", "most",
	"field", "column", "value", "values", "record", "records", "data",
	"attribute", "represents", "represent", "indicates", "indicate", "describe",
	"describes", "described", "specifies", "specify", "contains", "given",
)

// nameStopWords are dropped from column names only. "no" is not among them
// because as a column token it almost always abbreviates "number".
var nameStopWords = setOf(
	"a", "an", "the", "of", "for", "to", "in", "on", "at", "by", "and", "or",
	"is", "are", "this", "that", "with", "as", "per", "from", "if", "its",
	"was", "be",
)

// abbreviations expand short forms found in column names into the words
// they stand for. Ambiguous forms map to their most common reading in
// business schemas; the string similarity signals still see the raw token.
var abbreviations = map[string][]string{
	"acc": {"account"}, "acct": {"account"}, "accnt": {"account"},
	"addr": {"address"}, "adr": {"address"}, "adrs": {"address"}, "addrs": {"address"},
	"amt": {"amount"}, "amnt": {"amount"}, "avg": {"average"}, "bal": {"balance"},
	"bday": {"birth", "date"}, "bdate": {"birth", "date"}, "dob": {"birth", "date"},
	"birthdate": {"birth", "date"}, "birthday": {"birth", "date"},
	"cat": {"category"}, "cd": {"code"}, "cde": {"code"}, "cnt": {"count"},
	"co": {"company"}, "cmpny": {"company"}, "comp": {"company"},
	"ctry": {"country"}, "cntry": {"country"}, "cty": {"city"},
	"cur": {"currency"}, "curr": {"currency"}, "ccy": {"currency"},
	"cust": {"customer"}, "cstmr": {"customer"}, "cus": {"customer"},
	"desc": {"description"}, "descr": {"description"}, "dsc": {"description"},
	"dept": {"department"}, "dpt": {"department"}, "div": {"division"},
	"dt": {"date"}, "dte": {"date"}, "dttm": {"timestamp"}, "dtm": {"timestamp"}, "datetime": {"timestamp"},
	"eff": {"effective"}, "emp": {"employee"}, "empl": {"employee"}, "ee": {"employee"},
	"eml": {"email"}, "mail": {"email"}, "emailaddress": {"email"},
	"exp": {"expiry"}, "expiration": {"expiry"},
	"fname": {"first", "name"}, "firstname": {"first", "name"},
	"lname": {"last", "name"}, "lastname": {"last", "name"}, "surname": {"last", "name"},
	"mname": {"middle", "name"}, "fullname": {"full", "name"},
	"forename": {"first", "name"}, "forenames": {"first", "name"},
	"flg": {"flag"}, "ind": {"indicator"}, "grp": {"group"}, "hr": {"hour"}, "hrs": {"hour"},
	"ht": {"height"}, "wt": {"weight"}, "id": {"id"}, "ident": {"id"}, "identifier": {"id"},
	"img": {"image"}, "info": {"information"}, "inv": {"invoice"}, "lang": {"language"}, "ln": {"line"}, "nm": {"name"}, "nme": {"name"},
	"lat": {"latitude"}, "lon": {"longitude"}, "lng": {"longitude"},
	"loc": {"location"}, "max": {"maximum"}, "min": {"minimum"}, "mgr": {"manager"},
	"mgmt": {"management"}, "mo": {"month"}, "mon": {"month"}, "mth": {"month"},
	"msg": {"message"}, "mob": {"mobile"}, "mbl": {"mobile"},
	"no": {"number"}, "nbr": {"number"}, "num": {"number"}, "nr": {"number"}, "nmbr": {"number"}, "nb": {"number"},
	"org": {"organization"}, "organisation": {"organization"}, "orgn": {"organization"},
	"pct": {"percent"}, "perc": {"percent"}, "percentage": {"percent"},
	"ph": {"phone"}, "phn": {"phone"}, "tel": {"phone"}, "telephone": {"phone"}, "telno": {"phone"},
	"pos": {"position"}, "prc": {"price"}, "prod": {"product"}, "qty": {"quantity"}, "qnty": {"quantity"},
	"ref": {"reference"}, "seq": {"sequence"}, "src": {"source"}, "sal": {"salary"},
	"stat": {"status"}, "sts": {"status"},
	"tgt": {"target"}, "tm": {"time"}, "tot": {"total"}, "ts": {"timestamp"}, "tstamp": {"timestamp"},
	"txn": {"transaction"}, "trx": {"transaction"}, "trans": {"transaction"},
	"typ": {"type"}, "tp": {"type"}, "upd": {"updated"}, "usr": {"user"}, "username": {"user", "name"},
	"userid": {"user", "id"}, "uom": {"unit"}, "ver": {"version"}, "vol": {"volume"},
	"wk": {"week"}, "yr": {"year"}, "yrs": {"year"}, "yyyy": {"year"},
	"zip": {"postal", "code"}, "zipcode": {"postal", "code"}, "postcode": {"postal", "code"},
	"postalcode": {"postal", "code"}, "plz": {"postal", "code"},
	"ssn": {"social", "security", "number"}, "sku": {"stock", "unit"},
	"url": {"url"}, "uri": {"url"}, "www": {"website"}, "homepage": {"website"}, "webpage": {"website"},
	"web": {"website"}, "site": {"site"}, "email": {"email"}, "e-mail": {"email"},
	"mobilephone": {"mobile"}, "cellphone": {"mobile"}, "cell": {"mobile"},
	"dba": {"trade", "name"}, "pk": {"id"}, "uuid": {"id"}, "guid": {"id"},
	"dob_": {"birth", "date"}, "stdt": {"start", "date"}, "enddt": {"end", "date"},
	"crtd": {"created"}, "creat": {"created"}, "crt": {"created"}, "mod": {"modified"}, "modif": {"modified"},
	"del": {"deleted"}, "ins": {"inserted"}, "btch": {"batch"}, "cmt": {"comment"}, "cmnt": {"comment"},
	"temp": {"temperature"}, "dur": {"duration"}, "freq": {"frequency"}, "pwd": {"password"},
	"img_": {"image"}, "doc": {"document"}, "sec": {"second"}, "secs": {"second"},
	"mins": {"minute"}, "kg": {"kilogram"}, "cm": {"centimeter"}, "mm": {"millimeter"},
	"km": {"kilometer"}, "lb": {"pound"}, "lbs": {"pound"},
	"dist": {"distance"}, "std": {"standard"}, "prev": {"previous"},
	"orig": {"original"}, "pref": {"preference"}, "prefs": {"preference"},
	"opt": {"option"}, "sub": {"subscription"}, "subs": {"subscription"}, "rcpt": {"receipt"},
	"rev": {"revenue"}, "emps": {"employee"}, "hq": {"headquarters"},
}

// synonymGroups name one concept with several words. Every word of a group
// canonicalises to the group's first word, so "sex" and "gender" compare
// equal. Keep groups tight: a loose group creates confident wrong matches.
var synonymGroups = [][]string{
	{"gender", "sex"},
	{"mobile", "cellular"},
	{"phone", "telephone"},
	{"email", "mail"},
	{"postal", "postcode"},
	{"identifier", "id"},
	{"quantity", "qty"},
	{"organization", "organisation"},
	{"company", "firm", "employer", "business"},
	{"customer", "client", "patron"},
	{"supplier", "vendor"},
	{"employee", "staff", "worker", "personnel"},
	{"salary", "wage", "pay", "compensation"},
	{"department", "dept"},
	{"manager", "supervisor"},
	{"title", "designation"},
	{"description", "details", "detail", "summary"},
	{"website", "homepage", "webpage"},
	{"spouse", "partner"},
	{"price", "cost"},
	{"start", "begin", "commence", "kickoff", "onset"},
	{"end", "finish", "stop", "termination"},
	{"created", "inserted"},
	{"modified", "updated", "changed"},
	{"removed", "deleted"},
	{"city", "town", "municipality", "locality"},
	{"state", "province"},
	{"country", "nation"},
	{"amount", "sum"},
	{"total", "overall"},
	{"count", "tally"},
	{"percent", "pct"},
	{"birth", "born"},
	{"death", "deceased", "died"},
	{"hire", "hired", "joining"},
	{"job", "occupation"},
	{"optin", "consent", "subscribed"},
	{"revenue", "turnover"},
	{"industry", "sector"},
	{"remark", "note", "comment"},
	{"latitude", "lat"},
	{"longitude", "lon", "lng"},
	{"size", "dimension"},
}

// relatedWords are weaker associations: they raise a token pair to a
// partial score rather than an equality.
var relatedWords = [][]string{
	{"id", "number", "code", "key", "reference"},
	{"name", "title", "label"},
	{"type", "kind", "category", "class", "genre"},
	{"timestamp", "date", "time", "year"},
	{"address", "street", "line"},
	{"mobile", "phone"},
	{"amount", "total", "value", "price", "sum", "balance"},
	{"quantity", "count", "number", "amount"},
	{"job", "title", "position", "role"},
	{"first", "given"},
	{"last", "family"},
	{"postal", "zip"},
	{"region", "state", "province", "area"},
	{"location", "address", "place", "site"},
	{"start", "from", "in", "open"},
	{"end", "to", "out", "close", "retire", "shutdown", "decommission"},
	{"child", "kid"},
	{"company", "account", "organization"},
	{"group", "category", "segment"},
	{"active", "status", "enabled"},
	{"percent", "fraction", "ratio", "rate"},
	{"note", "description", "text"},
	{"weight", "mass"},
	{"size", "length", "width", "height", "diameter"},
	{"race", "ethnicity"},
	{"created", "registration", "signup"},
	{"test", "exam", "examine", "examination", "assess", "assessment", "evaluate", "evaluation", "inspect"},
	{"consumption", "intake", "usage", "use"},
}

// baseWords seeds the word segmenter that splits run-together names such
// as CUSTOMERNUMBER or QUANTITYINSTOCK. Words from both schemas are added
// per match, so this list only needs common data-modelling vocabulary.
var baseWords = []string{
	"account", "active", "activity", "actual", "add", "added", "address", "admin", "age", "agency", "agent",
	"amount", "annual", "area", "assigned", "attempt", "author", "available", "average", "balance", "bank",
	"base", "batch", "begin", "bill", "billing", "birth", "block", "body", "book", "branch", "brand", "budget",
	"building", "business", "buy", "call", "campaign", "capacity", "card", "care", "cars", "case", "cash",
	"category", "cell", "center", "centre", "change", "channel", "charge", "check", "child", "children",
	"city", "class", "client", "close", "closed", "code", "comment", "commission", "company", "contact",
	"content", "contract", "cost", "count", "country", "county", "create", "created", "credit", "currency",
	"current", "customer", "daily", "date", "day", "days", "death", "debit", "default", "delivery",
	"department", "deposit", "description", "detail", "details", "device", "discount", "display", "district",
	"division", "document", "domain", "due", "duration", "each", "earned", "edit", "education", "effective",
	"email", "employee", "end", "entry", "event", "expense", "expiry", "extension", "external", "family",
	"fax", "fee", "file", "final", "first", "fiscal", "flag", "floor", "full", "fund", "gender", "given",
	"grade", "gross", "group", "height", "hire", "history", "home", "hour", "house", "image", "in", "income",
	"index", "industry", "info", "initial", "insert", "inventory", "invoice", "item", "job", "key", "kind",
	"label", "language", "last", "latitude", "lead", "level", "limit", "line", "list", "load", "loan",
	"local", "location", "login", "longitude", "manager", "marital", "market", "master", "max", "member",
	"message", "method", "middle", "min", "minute", "mobile", "mode", "model", "modified", "month", "name",
	"net", "new", "next", "note", "number", "office", "old", "open", "opt", "order", "ordered", "organization",
	"origin", "out", "owner", "page", "paid", "parent", "part", "partner", "party", "password", "path",
	"pay", "payment", "percent", "period", "person", "phone", "place", "plan", "plant", "point", "policy",
	"position", "post", "postal", "price", "primary", "priority", "product", "profile", "project", "purchase",
	"quantity", "quarter", "range", "rank", "rate", "rating", "reason", "received", "record", "reference",
	"region", "rent", "rep", "report", "request", "retail", "return", "revenue", "role", "sale", "sales",
	"salary", "score", "second", "section", "sector", "segment", "sell", "send", "sent", "serial", "service",
	"session", "ship", "shipment", "shipped", "shipping", "short", "size", "sku", "source", "start", "state",
	"status", "stock", "store", "street", "sub", "subject", "suffix", "supplier", "tag", "tax", "team",
	"term", "territory", "text", "ticket", "time", "title", "total", "town", "trade", "transaction", "type",
	"unit", "update", "updated", "url", "user", "value", "vendor", "version", "visit", "volume", "week",
	"weight", "width", "work", "year", "zip", "each", "on", "of", "at", "by", "to", "id", "no", "is",
}

// classWords are ISO 11179 representation terms: they say how a value is
// represented (an amount, a code, a date) rather than what it is about, so
// an unmatched class word costs a name less than an unmatched subject
// word ("SAL_AMT" is mostly "salary").
var classWords = setOf("identifier", "id", "number", "code", "name", "amount", "date", "time", "timestamp",
	"flag", "indicator", "type", "value", "count", "quantity", "percent", "text", "key", "nbr", "no", "present")

// negativeWords mark a boolean target whose true value means "not active";
// flag values learned from samples are inverted for such targets.
var negativeWords = setOf("terminated", "inactive", "disabled", "deleted", "removed", "closed",
	"cancelled", "canceled", "blocked", "suspended", "deceased", "churned", "unsubscribed", "optout",
	"opted", "archived", "expired", "locked", "banned", "dead")

func setOf(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// knownWords are real words (not abbreviations): a known word is never
// read as an abbreviation of a longer one ("city" is not "capacity") and
// never cut into pieces by the segmenter.
var knownWords = buildKnown()

func buildKnown() map[string]bool {
	k := map[string]bool{}
	for _, w := range baseWords {
		k[w] = true
	}
	for _, e := range abbreviations {
		for _, w := range e {
			k[w] = true
		}
	}
	for _, g := range synonymGroups {
		for _, w := range g {
			k[w] = true
		}
	}
	for _, g := range relatedWords {
		for _, w := range g {
			k[w] = true
		}
	}
	for w := range stopWords {
		k[w] = true
	}
	for w := range negativeWords {
		k[w] = true
	}
	// Short function words are too short to be abbreviations of anything.
	for _, w := range []string{"id", "no", "is", "of"} {
		delete(k, w)
	}
	return k
}

// canonical maps a word to the first word of its synonym group, built once.
var canonical, related = buildGroups()

func buildGroups() (map[string]string, map[string][]int) {
	c := make(map[string]string)
	for _, g := range synonymGroups {
		for _, w := range g {
			if _, ok := c[w]; !ok {
				c[w] = g[0]
			}
		}
	}
	r := make(map[string][]int)
	for i, g := range relatedWords {
		for _, w := range g {
			// Tokens are compared in canonical form, so index that form,
			// and its stem so that "retired" finds "retire".
			if cw, ok := c[w]; ok {
				w = cw
			}
			r[w] = append(r[w], i)
			if st := lightStem(w); st != w {
				r[st] = append(r[st], i)
			}
		}
	}
	return c, r
}
