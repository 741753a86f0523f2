package resolution

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentetl/agentetl/internal/pgutil"
)

// Evidence is the structured information an error carried. Classification
// reads it first and falls back to message patterns only when it says
// nothing.
type Evidence struct {
	// Source says where the evidence came from: postgres, mysql, kafka,
	// network, context, json or message.
	Source string `json:"source"`
	// Code is the SQLSTATE, MySQL error number or Kafka error name.
	Code       string `json:"code,omitempty"`
	Table      string `json:"table,omitempty"`
	Column     string `json:"column,omitempty"`
	Constraint string `json:"constraint,omitempty"`
	DataType   string `json:"dataType,omitempty"`
	Detail     string `json:"detail,omitempty"`
	// Record is the 0-based index, within the batch that was written, of
	// the record the server blamed (COPY line, encoder record), or -1.
	Record int `json:"record"`
	// Permanent is set when the error itself says retrying cannot help.
	Permanent bool `json:"permanent,omitempty"`
}

// Classification is the result of Classify.
type Classification struct {
	Category   Category `json:"category"`
	Transient  bool     `json:"transient"`
	Evidence   Evidence `json:"evidence"`
	Confidence float64  `json:"confidence"`
	// Reason says in one sentence why this category was chosen.
	Reason string `json:"reason"`
}

// Confidence levels of the classification sources.
const (
	ConfidenceStructured = 0.95
	ConfidencePattern    = 0.75
	ConfidenceUnknown    = 0.3
)

// Hints carry what is known about an error that is no longer a Go value,
// such as a line of `agentetl diagnose` input.
type Hints struct {
	ErrorType string
	SQLState  string
}

// Classify puts err in the taxonomy, using structured evidence first
// (PostgreSQL SQLSTATE, MySQL error number, Kafka error code, net and
// context errors, JSON decoding errors) and message patterns last.
func Classify(err error) Classification {
	if err == nil {
		return Classification{Category: CategoryUnknown, Evidence: Evidence{Record: -1}, Reason: "no error"}
	}
	if c, ok := classifyStructured(err); ok {
		c.Transient = c.Category.Transient() && !c.Evidence.Permanent
		return c
	}
	return ClassifyMessage(err.Error(), Hints{})
}

// ClassifyMessage classifies an error known only by its text and optional
// hints (an errorType such as "timeout", or an SQLSTATE).
func ClassifyMessage(msg string, h Hints) Classification {
	if code := strings.ToUpper(strings.TrimSpace(h.SQLState)); code != "" {
		if cat, reason, ok := sqlstateCategory(code); ok {
			ev := Evidence{Source: "postgres", Code: code, Record: -1, Permanent: pgutil.PermanentSQLState(code)}
			return finish(cat, ev, ConfidenceStructured, reason)
		}
	}
	if code := sqlstateInText.FindStringSubmatch(msg); code != nil {
		if cat, reason, ok := sqlstateCategory(code[1]); ok {
			ev := Evidence{Source: "postgres", Code: code[1], Record: -1, Permanent: pgutil.PermanentSQLState(code[1])}
			return finish(cat, ev, ConfidenceStructured-0.05, reason)
		}
	}
	if m := mysqlInText.FindStringSubmatch(msg); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			if cat, reason, ok := mysqlCategory(uint16(n)); ok {
				return finish(cat, Evidence{Source: "mysql", Code: m[1], Record: -1}, ConfidenceStructured-0.05, reason)
			}
		}
	}
	if name := kafkaCodeInText(msg); name != "" {
		if cat, reason, ok := kafkaCategory(name); ok {
			return finish(cat, Evidence{Source: "kafka", Code: name, Record: -1}, ConfidenceStructured-0.05, reason)
		}
	}
	for _, p := range messagePatterns {
		if p.re.MatchString(msg) {
			return finish(p.cat, Evidence{Source: "message", Record: -1}, ConfidencePattern, p.reason)
		}
	}
	if t := strings.ToLower(strings.TrimSpace(h.ErrorType)); t != "" {
		if cat, ok := errorTypeCategory(t); ok {
			return finish(cat, Evidence{Source: "message", Code: t, Record: -1}, ConfidencePattern-0.1,
				"the errorType "+strconv.Quote(t)+" names this category")
		}
	}
	return finish(CategoryUnknown, Evidence{Source: "message", Record: -1}, ConfidenceUnknown,
		"no structured evidence and no known message pattern")
}

func finish(cat Category, ev Evidence, conf float64, reason string) Classification {
	return Classification{Category: cat, Transient: cat.Transient() && !ev.Permanent, Evidence: ev, Confidence: conf, Reason: reason}
}

var (
	sqlstateInText = regexp.MustCompile(`(?:\(SQLSTATE |SQLSTATE[ =:]+)([0-9A-Z]{5})`)
	mysqlInText    = regexp.MustCompile(`(?:^|: )Error (\d{4})(?: \([0-9A-Z]{5}\))?:`)
	copyWhere      = regexp.MustCompile(`^COPY (.+), line (\d+)(?:, column ([^:]+))?`)
	uniqueDetail   = regexp.MustCompile(`^Key \((.+)\)=\((.*)\) already exists`)
	tooLongType    = regexp.MustCompile(`value too long for type character(?: varying)?\((\d+)\)`)
)

func classifyStructured(err error) (Classification, bool) {
	// JSON decoding errors mean the payload itself is unreadable.
	var syn *json.SyntaxError
	var ute *json.UnmarshalTypeError
	if errors.As(err, &syn) {
		return finish(CategoryPoison, Evidence{Source: "json", Record: -1, Permanent: true}, ConfidenceStructured,
			"the payload is not valid JSON"), true
	}
	if errors.As(err, &ute) {
		return finish(CategoryPoison, Evidence{Source: "json", Record: -1, Permanent: true, Column: ute.Field}, ConfidenceStructured,
			"a JSON value has the wrong type for the field it decodes into"), true
	}

	var pe *pgutil.Error
	var pg *pgconn.PgError
	hasPE, hasPG := errors.As(err, &pe), errors.As(err, &pg)
	if hasPE || hasPG {
		ev := Evidence{Source: "postgres", Record: -1}
		if hasPE {
			ev.Code, ev.Table, ev.Column, ev.Constraint, ev.DataType, ev.Detail = pe.SQLState, pe.Table, pe.Column, pe.Constraint, pe.DataType, pe.Detail
			ev.Permanent = pe.Permanent
			if pe.Record > 0 {
				ev.Record = pe.Record - 1
			}
		}
		if hasPG {
			if ev.Code == "" {
				ev.Code = pg.Code
				ev.Permanent = pgutil.PermanentSQLState(pg.Code)
			}
			if ev.Table == "" {
				ev.Table = pg.TableName
			}
			if ev.Column == "" {
				ev.Column = pg.ColumnName
			}
			if ev.Constraint == "" {
				ev.Constraint = pg.ConstraintName
			}
			if ev.Detail == "" {
				ev.Detail = pg.Detail
			}
			if m := copyWhere.FindStringSubmatch(pg.Where); m != nil && !strings.Contains(m[1], "_agentetl_stage_") {
				// Rows of a direct COPY are numbered from 1 in the order
				// they were sent; the staging COPY of an upsert has
				// de-duplicated rows, so its numbers do not map back.
				if n, err := strconv.Atoi(m[2]); err == nil && n > 0 {
					ev.Record = n - 1
				}
				if ev.Column == "" && m[3] != "" {
					ev.Column = m[3]
				}
			}
		}
		if ev.Code != "" {
			if cat, reason, ok := sqlstateCategory(ev.Code); ok {
				return finish(cat, ev, ConfidenceStructured, reason), true
			}
		}
		// A pgutil.Error without SQLSTATE: a client-side failure. Fall
		// through to the network checks and the message.
		if pgutil.IsConnectionError(err) && !ev.Permanent {
			return finish(CategoryConnection, ev, ConfidenceStructured-0.1, "the PostgreSQL connection failed"), true
		}
		if ev.Permanent {
			c := ClassifyMessage(err.Error(), Hints{})
			if c.Category == CategoryUnknown || c.Category.Transient() {
				c.Category, c.Reason = CategoryConfiguration, "a permanent error raised before reaching the server"
			}
			c.Evidence, c.Transient = ev, false
			return c, true
		}
	}

	var my *mysql.MySQLError
	if errors.As(err, &my) {
		ev := Evidence{Source: "mysql", Code: strconv.Itoa(int(my.Number)), Record: -1}
		if cat, reason, ok := mysqlCategory(my.Number); ok {
			return finish(cat, ev, ConfidenceStructured, reason), true
		}
	}
	if errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, mysql.ErrPktSync) || errors.Is(err, mysql.ErrPktSyncMul) {
		return finish(CategoryConnection, Evidence{Source: "mysql", Record: -1}, ConfidenceStructured, "the MySQL connection is broken"), true
	}
	if errors.Is(err, mysql.ErrPktTooLarge) {
		return finish(CategoryResource, Evidence{Source: "mysql", Record: -1}, ConfidenceStructured, "the packet exceeds max_allowed_packet"), true
	}

	if errors.Is(err, context.DeadlineExceeded) {
		return finish(CategoryTimeout, Evidence{Source: "context", Record: -1}, ConfidenceStructured, "the operation's deadline passed"), true
	}
	if errors.Is(err, context.Canceled) {
		return finish(CategoryConnection, Evidence{Source: "context", Record: -1}, ConfidenceStructured-0.2,
			"the operation was cancelled, usually by a shutdown; it can run again"), true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		if dns.IsNotFound {
			return finish(CategoryConfiguration, Evidence{Source: "network", Record: -1, Permanent: true}, ConfidenceStructured,
				"the host name does not exist"), true
		}
		return finish(CategoryConnection, Evidence{Source: "network", Record: -1}, ConfidenceStructured, "DNS lookup failed"), true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return finish(CategoryTimeout, Evidence{Source: "network", Record: -1}, ConfidenceStructured, "a network operation timed out"), true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return finish(CategoryConnection, Evidence{Source: "network", Record: -1}, ConfidenceStructured, "the network connection was refused, reset or broken"), true
	}
	if errors.Is(err, syscall.ENOSPC) {
		return finish(CategoryResource, Evidence{Source: "network", Record: -1}, ConfidenceStructured, "no space left on device"), true
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return finish(CategoryConnection, Evidence{Source: "network", Record: -1}, ConfidenceStructured-0.05, "a network operation ("+op.Op+") failed"), true
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		// Decoders report truncated input with the same sentinel errors as
		// a closed connection; the message tells them apart.
		if c := ClassifyMessage(err.Error(), Hints{}); c.Category == CategoryPoison || c.Category == CategoryDataType {
			return c, true
		}
		return finish(CategoryConnection, Evidence{Source: "network", Record: -1}, ConfidencePattern, "the peer closed the stream unexpectedly"), true
	}
	if hasPE || hasPG {
		return finish(CategoryUnknown, Evidence{Source: "postgres", Record: -1}, ConfidenceUnknown, "a PostgreSQL error without a known SQLSTATE"), true
	}
	return Classification{}, false
}

// sqlstateCategory maps a PostgreSQL SQLSTATE (exact code first, then its
// two-character class) to a category.
func sqlstateCategory(code string) (Category, string, bool) {
	switch code {
	case "57014":
		return CategoryTimeout, "SQLSTATE 57014: the statement was cancelled by statement_timeout or a cancel request", true
	case "57P01", "57P02", "57P03":
		return CategoryConnection, "SQLSTATE " + code + ": the server terminated the connection or is not accepting connections", true
	case "53300":
		return CategoryConnection, "SQLSTATE 53300: too many connections", true
	case "55P03":
		return CategoryConflict, "SQLSTATE 55P03: a lock could not be obtained in time", true
	case "55006":
		return CategoryConflict, "SQLSTATE 55006: the object is in use", true
	case "3D000":
		return CategoryConfiguration, "SQLSTATE 3D000: the database does not exist", true
	case "3F000":
		return CategorySchema, "SQLSTATE 3F000: the schema does not exist", true
	case "42501":
		return CategoryPermission, "SQLSTATE 42501: insufficient privilege", true
	case "42P01":
		return CategorySchema, "SQLSTATE 42P01: the table does not exist", true
	case "42703":
		return CategorySchema, "SQLSTATE 42703: the column does not exist", true
	case "42704", "42883", "42P07", "42701":
		return CategorySchema, "SQLSTATE " + code + ": an object is missing or already exists", true
	case "42804", "42846":
		return CategoryDataType, "SQLSTATE " + code + ": the value's type does not match the column", true
	case "42601", "42P10", "42P18", "42602", "42622":
		return CategoryConfiguration, "SQLSTATE " + code + ": the statement is invalid as configured", true
	case "25006":
		return CategoryConfiguration, "SQLSTATE 25006: the server is read-only", true
	case "54000", "54001", "54011", "54023":
		return CategoryResource, "SQLSTATE " + code + ": a program limit was exceeded", true
	case "22021", "22P05":
		return CategoryPoison, "SQLSTATE " + code + ": the payload has bytes that are not valid in the encoding", true
	case "0A000":
		return CategoryConfiguration, "SQLSTATE 0A000: feature not supported", true
	}
	if len(code) != 5 {
		return "", "", false
	}
	switch code[:2] {
	case "08":
		return CategoryConnection, "SQLSTATE class 08: connection exception", true
	case "28":
		return CategoryAuthentication, "SQLSTATE class 28: invalid authorization", true
	case "22":
		return CategoryDataType, "SQLSTATE class 22: a value is invalid for its type (format, length, range or date)", true
	case "23":
		return CategoryConstraint, "SQLSTATE class 23: an integrity constraint (not null, unique, foreign key, check) was violated", true
	case "40":
		return CategoryConflict, "SQLSTATE class 40: the transaction lost a serialization or deadlock race", true
	case "53":
		return CategoryResource, "SQLSTATE class 53: insufficient resources (disk, memory)", true
	case "57":
		return CategoryConnection, "SQLSTATE class 57: operator intervention", true
	case "58":
		return CategoryResource, "SQLSTATE class 58: system error (I/O)", true
	case "42":
		return CategoryConfiguration, "SQLSTATE class 42: syntax error or access rule violation", true
	case "XX":
		return CategoryUnknown, "SQLSTATE class XX: internal error", true
	}
	return "", "", false
}

// mysqlCategory maps MySQL server and client error numbers.
func mysqlCategory(n uint16) (Category, string, bool) {
	r := func(s string) string { return "MySQL error " + strconv.Itoa(int(n)) + ": " + s }
	switch n {
	case 1045, 1698, 2049:
		return CategoryAuthentication, r("access denied for the user"), true
	case 1044, 1142, 1143, 1227, 1370:
		return CategoryPermission, r("command or object access denied"), true
	case 1049:
		return CategoryConfiguration, r("unknown database"), true
	case 1146, 1054, 1051, 1050, 1060, 1091:
		return CategorySchema, r("table or column missing or already present"), true
	case 1062, 1048, 1451, 1452, 1216, 1217, 3819, 1364, 1586:
		return CategoryConstraint, r("integrity constraint violated"), true
	case 1406, 1264, 1265, 1292, 1366, 1367, 1411, 1690, 3140:
		return CategoryDataType, r("value invalid, out of range or too long for the column type"), true
	case 1213, 1205, 1637:
		return CategoryConflict, r("deadlock or lock wait timeout"), true
	case 1040, 1053, 1077, 1080, 1081, 1129, 1130, 1152, 1158, 1159, 1160, 1161, 1184, 2002, 2003, 2006, 2013, 2055:
		return CategoryConnection, r("connection refused, lost or aborted"), true
	case 3024, 1317, 1969, 3031:
		return CategoryTimeout, r("query execution was interrupted or exceeded its time limit"), true
	case 1226, 1203:
		return CategoryRateLimit, r("the user exceeded a resource limit"), true
	case 1153, 1114, 1021, 1041, 1037, 1038, 3015, 1118, 1206:
		return CategoryResource, r("packet too large, table full, or out of disk or memory"), true
	case 1064, 1149, 1193, 1231, 1232, 1290, 1235:
		return CategoryConfiguration, r("syntax error or invalid setting"), true
	case 1300:
		return CategoryPoison, r("invalid character string"), true
	}
	return "", "", false
}

// kafkaCategories maps Kafka protocol error names (as franz-go's kerr and the
// Java client print them) to categories.
var kafkaCategories = map[string]Category{
	"MESSAGE_TOO_LARGE": CategoryResource, "RECORD_LIST_TOO_LARGE": CategoryResource, "KAFKA_STORAGE_ERROR": CategoryResource,
	"REQUEST_TIMED_OUT": CategoryTimeout, "REBALANCE_TIMEOUT": CategoryTimeout,
	"NOT_LEADER_FOR_PARTITION": CategoryConnection, "NOT_LEADER_OR_FOLLOWER": CategoryConnection, "LEADER_NOT_AVAILABLE": CategoryConnection,
	"NETWORK_EXCEPTION": CategoryConnection, "BROKER_NOT_AVAILABLE": CategoryConnection, "NOT_ENOUGH_REPLICAS": CategoryConnection,
	"NOT_ENOUGH_REPLICAS_AFTER_APPEND": CategoryConnection, "COORDINATOR_NOT_AVAILABLE": CategoryConnection, "NOT_COORDINATOR": CategoryConnection,
	"COORDINATOR_LOAD_IN_PROGRESS": CategoryConnection, "REPLICA_NOT_AVAILABLE": CategoryConnection, "NOT_CONTROLLER": CategoryConnection,
	"UNKNOWN_TOPIC_OR_PARTITION": CategorySchema, "UNKNOWN_TOPIC_ID": CategorySchema,
	"TOPIC_AUTHORIZATION_FAILED": CategoryPermission, "GROUP_AUTHORIZATION_FAILED": CategoryPermission,
	"CLUSTER_AUTHORIZATION_FAILED": CategoryPermission, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED": CategoryPermission,
	"SASL_AUTHENTICATION_FAILED": CategoryAuthentication, "ILLEGAL_SASL_STATE": CategoryAuthentication, "UNSUPPORTED_SASL_MECHANISM": CategoryAuthentication,
	"THROTTLING_QUOTA_EXCEEDED": CategoryRateLimit,
	"CORRUPT_MESSAGE":           CategoryPoison, "INVALID_RECORD": CategoryPoison,
	"INVALID_REQUIRED_ACKS": CategoryConfiguration, "INVALID_CONFIG": CategoryConfiguration, "INVALID_TOPIC_EXCEPTION": CategoryConfiguration,
	"POLICY_VIOLATION": CategoryConfiguration, "OFFSET_OUT_OF_RANGE": CategoryConfiguration, "INVALID_PARTITIONS": CategoryConfiguration,
	"UNSUPPORTED_VERSION": CategoryConfiguration, "TOPIC_ALREADY_EXISTS": CategorySchema,
	"REBALANCE_IN_PROGRESS": CategoryConflict, "ILLEGAL_GENERATION": CategoryConflict, "UNKNOWN_MEMBER_ID": CategoryConflict,
	"CONCURRENT_TRANSACTIONS": CategoryConflict, "PRODUCER_FENCED": CategoryConflict, "INVALID_PRODUCER_EPOCH": CategoryConflict,
	"OUT_OF_ORDER_SEQUENCE_NUMBER": CategoryConflict, "FENCED_LEADER_EPOCH": CategoryConnection,
}

var kafkaName = regexp.MustCompile(`\b([A-Z][A-Z_]{4,}[A-Z])\b`)

func kafkaCodeInText(msg string) string {
	for _, m := range kafkaName.FindAllString(msg, 4) {
		if _, ok := kafkaCategories[m]; ok {
			return m
		}
	}
	return ""
}

func kafkaCategory(name string) (Category, string, bool) {
	c, ok := kafkaCategories[name]
	return c, "Kafka error " + name, ok
}

func errorTypeCategory(t string) (Category, bool) {
	t = strings.NewReplacer("-", "_", " ", "_").Replace(t)
	if c, ok := ParseCategory(t); ok {
		return c, true
	}
	switch {
	case strings.Contains(t, "timeout"):
		return CategoryTimeout, true
	case strings.Contains(t, "network"), strings.Contains(t, "connect"):
		return CategoryConnection, true
	case strings.Contains(t, "auth"):
		return CategoryAuthentication, true
	case strings.Contains(t, "type"), strings.Contains(t, "parse"), strings.Contains(t, "transform"), strings.Contains(t, "validation"):
		return CategoryDataType, true
	case strings.Contains(t, "constraint"), strings.Contains(t, "duplicate"):
		return CategoryConstraint, true
	case strings.Contains(t, "json"), strings.Contains(t, "decode"):
		return CategoryPoison, true
	}
	return "", false
}

type pattern struct {
	cat    Category
	re     *regexp.Regexp
	reason string
}

// messagePatterns are tried in order: specific before general (a "lock wait
// timeout" is a conflict, not a timeout; "value too long" is a data error,
// not a resource error).
var messagePatterns = []pattern{
	{CategoryConflict, regexp.MustCompile(`(?i)deadlock|could not serialize|serialization failure|lock wait timeout|lock timeout|could not obtain lock|concurrent (update|transaction)|try restarting transaction`), "the message describes a lock or serialization conflict"},
	{CategoryAuthentication, regexp.MustCompile(`(?i)password authentication failed|authentication failed|access denied for user|invalid (credentials|api key|token)|unauthori[sz]ed|\b401\b|sasl|no pg_hba\.conf entry|login failed`), "the message describes failed authentication"},
	{CategoryPermission, regexp.MustCompile(`(?i)permission denied|forbidden|\b403\b|not authori[sz]ed|insufficient privilege|command denied|access ?denied|authorization failed`), "the message describes missing permissions"},
	{CategoryRateLimit, regexp.MustCompile(`(?i)rate.?limit|too many requests|\b429\b|throttl|quota exceeded|slow down|request limit`), "the message describes a rate limit"},
	{CategoryConstraint, regexp.MustCompile(`(?i)violates (not-null|unique|foreign key|check|exclusion) constraint|duplicate key|duplicate entry|cannot be null|foreign key constraint fails|check constraint .* (is )?violated|(unique|not null|check|foreign key) constraint failed|null value in column`), "the message describes a violated constraint"},
	{CategoryPoison, regexp.MustCompile(`(?i)invalid character .* (looking for|after|in)|unexpected end of json input|cannot parse json|malformed|unparse?able (payload|message|record)|corrupt|invalid utf-?8|failed to decode|not valid json|invalid json|failed to parse .*json|parse_json|json: cannot|unexpected end of input|(record|payload|message|value) is not (a )?json|not a json (object|document|value)`), "the message says the payload cannot be read"},
	{CategoryDataType, regexp.MustCompile(`(?i)invalid input syntax|value too long|out of range|numeric field overflow|cannot parse|parsing time|incorrect (integer|decimal|datetime|date|double) value|data too long|data truncat|invalid (date|time|timestamp|number)|date/time field value|cannot unmarshal|strconv\.|cannot encode|not a (number|valid)|type mismatch|cannot convert`), "the message describes a value that does not fit its type"},
	{CategorySchema, regexp.MustCompile(`(?i)(relation|table|column|schema|field) .*(does not exist|doesn't exist|not found)|unknown column|no such (table|column)|undefined (column|table)|has no column|schema (drift|mismatch)`), "the message describes a missing table or column"},
	{CategoryResource, regexp.MustCompile(`(?i)no space left|disk (is )?full|too large|out of memory|cannot allocate memory|oom|exceeds the maximum|max_allowed_packet|request entity too large|\b413\b|too many open files|storage (is )?full`), "the message describes exhausted resources or an oversized message"},
	{CategoryConfiguration, regexp.MustCompile(`(?i)no such host|x509:|certificate (is not valid|signed by unknown|has expired)|tls: failed to verify`), "the message describes an unknown host or an untrusted certificate"},
	{CategoryTimeout, regexp.MustCompile(`(?i)time(d)? ?out|deadline exceeded|statement timeout|canceling statement`), "the message describes a timeout"},
	{CategoryConnection, regexp.MustCompile(`(?i)connection (refused|reset|closed|lost|aborted)|broken pipe|no route to host|network is unreachable|server closed the connection|unexpected eof|\beof\b|dial tcp|conn(ection)? (is )?closed|terminating connection|server has gone away|lost connection|invalid connection|database system is (starting up|shutting down|in recovery)|failed to connect|could not connect|connection timed out|\b50[234]\b|service unavailable|bad gateway`), "the message describes a broken or refused connection"},
	{CategoryConfiguration, regexp.MustCompile(`(?i)unknown (field|option|setting|parameter)|invalid (config|configuration|dsn|url)|no such host|x509|certificate|database .* does not exist|unknown database|syntax error|not supported|unsupported`), "the message describes an invalid configuration"},
}
