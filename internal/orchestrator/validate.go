package orchestrator

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"

	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/redact"
)

// Pipeline types.
const (
	TypeBatch  = "batch"
	TypeStream = "stream"
)

// Source and destination types the compiler knows.
const (
	ConnPostgres = "postgres"
	ConnNATS     = "nats"
)

var (
	// IDPattern is what a pipeline id may look like. It doubles as the
	// engine's stream id and a file name, so it is deliberately narrow.
	IDPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	envRef     = regexp.MustCompile(`\$\{([^}]*)\}`)
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	subjectPat = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
	filterPat  = regexp.MustCompile(`^[A-Za-z0-9_*-]+(\.[A-Za-z0-9_*-]+)*(\.>)?$`)
	secretKey  = regexp.MustCompile(`(?i)pass|secret|token|api[_-]?key|credential`)
)

// reservedEnvPrefix marks variables the orchestrator sets for the engine
// itself (the store and bus addresses). User configs may not reference
// them, nor anything else of the orchestrator's own (its API token).
const reservedEnvPrefix = "AGENTETL_"

// Connection keys each source and destination type accepts.
var connKeys = map[string]map[string][]string{
	"source": {
		ConnPostgres: {"dsn", "keyColumn", "pageSize", "columns"},
		ConnNATS:     {"url", "stream", "deliver"},
		ConnSQLite:   {"dsn", "keyColumn", "pageSize", "columns"},
		ConnCSV:      {"path", "delimiter"},
		ConnGenerate: {"mapping", "interval", "count"},
	},
	"destination": {
		ConnPostgres: {"dsn", "mode", "keyColumns"},
		ConnNATS:     {"url", "stream"},
		ConnSQLite:   {"dsn", "mode", "keyColumns"},
	},
}

// Validate checks every value of pc and returns all problems at once, each
// with its field path. Secrets must be environment references: a literal
// password anywhere is rejected, so none is ever stored or logged.
func Validate(pc model.PipelineConfig) []FieldError {
	var errs []FieldError
	add := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if !IDPattern.MatchString(pc.ID) {
		add("id", "must match %s (lower-case letters, digits, '-' and '_', at most 63 characters)", IDPattern)
	}
	if strings.TrimSpace(pc.Name) == "" {
		add("name", "is required")
	} else {
		checkText(&errs, "name", pc.Name, 200)
	}
	switch pc.Type {
	case TypeBatch:
		if pc.Source.Type != "" && !batchSource(pc.Source.Type) {
			add("source.type", "a batch pipeline reads %q, %q or %q; %q sources are for stream pipelines", ConnPostgres, ConnSQLite, ConnCSV, pc.Source.Type)
		}
	case TypeStream:
		if pc.Source.Type != "" && pc.Source.Type != ConnNATS && pc.Source.Type != ConnGenerate {
			add("source.type", "a stream pipeline reads %q or %q; %q sources are for batch pipelines", ConnNATS, ConnGenerate, pc.Source.Type)
		}
		if pc.Schedule != nil {
			add("schedule", "only batch pipelines have a schedule; a stream pipeline runs continuously")
		}
	case "":
		add("type", "is required: %q or %q", TypeBatch, TypeStream)
	default:
		add("type", "must be %q or %q, not %q", TypeBatch, TypeStream, truncate(pc.Type, 40))
	}
	checkEndpoint(&errs, "source", pc.Source.Type, pc.Source.Connection, pc.Source.Table, pc.Source.Topic, pc.Source.Query)
	checkEndpoint(&errs, "destination", pc.Destination.Type, pc.Destination.Connection, pc.Destination.Table, pc.Destination.Topic, "")
	seen := map[string]bool{}
	for i, t := range pc.Transformations {
		p := fmt.Sprintf("transformations[%d]", i)
		if t.ID != "" {
			if !IDPattern.MatchString(t.ID) {
				add(p+".id", "must match %s", IDPattern)
			} else if seen[t.ID] {
				add(p+".id", "duplicate transformation id %q", t.ID)
			}
			seen[t.ID] = true
		}
		checkNoEnv(&errs, p+".logic", t.Logic)
		checkNoEnv(&errs, p+".condition", t.Condition)
		switch t.Type {
		case "map":
			if strings.TrimSpace(t.Logic) == "" {
				add(p+".logic", "a map transformation needs logic: a Bloblang mapping or a JSON array of field mappings")
			}
			if t.Condition != "" {
				add(p+".condition", "is only used by filter transformations")
			}
		case "filter":
			if strings.TrimSpace(t.Condition) == "" && strings.TrimSpace(t.Logic) == "" {
				add(p+".condition", "a filter transformation needs a condition (a Bloblang query that is true for records to keep)")
			}
		case "aggregate", "join":
			add(p+".type", "%q transformations are not supported yet; use map or filter", t.Type)
		case "":
			add(p+".type", "is required: map or filter")
		default:
			add(p+".type", "must be map or filter, not %q", truncate(t.Type, 40))
		}
	}
	if pc.Schedule != nil {
		if strings.TrimSpace(pc.Schedule.Cron) == "" {
			add("schedule.cron", "is required when schedule is set")
		} else if _, err := ParseSchedule(*pc.Schedule); err != nil {
			add("schedule", "%v", err)
		}
	}
	if pc.ErrorHandling.MaxRetries < 0 || pc.ErrorHandling.MaxRetries > 1000 {
		add("errorHandling.maxRetries", "must be between 0 and 1000")
	}
	if dl := pc.ErrorHandling.DeadLetter; dl != "" {
		if msg := checkDeadLetter(pc, dl); msg != "" {
			add("errorHandling.deadLetter", "%s", msg)
		}
	}
	checkText(&errs, "metadata.owner", pc.Metadata.Owner, 200)
	checkText(&errs, "metadata.description", pc.Metadata.Description, 4000)
	for k, v := range pc.Metadata.Tags {
		checkText(&errs, "metadata.tags."+k, k+v, 400)
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Path < errs[j].Path })
	return errs
}

// ParseSchedule parses a cron schedule: five fields or a descriptor such as
// @hourly or @every 5m, in Timezone (default UTC).
func ParseSchedule(s model.Schedule) (cron.Schedule, error) {
	spec := strings.TrimSpace(s.Cron)
	if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") {
		return nil, fmt.Errorf("cron: set the zone with schedule.timezone, not inside the expression")
	}
	tz := s.Timezone
	if tz == "" {
		tz = "UTC"
	}
	if _, err := time.LoadLocation(tz); err != nil || strings.ContainsAny(tz, " \t\n") {
		return nil, fmt.Errorf("timezone: unknown zone %q", truncate(tz, 60))
	}
	sch, err := cron.ParseStandard("CRON_TZ=" + tz + " " + spec)
	if err != nil {
		return nil, fmt.Errorf("cron: %q: %v", truncate(spec, 80), err)
	}
	return sch, nil
}

func checkText(errs *[]FieldError, path, s string, limit int) {
	if len(s) > limit {
		*errs = append(*errs, FieldError{Path: path, Message: fmt.Sprintf("is longer than %d bytes", limit)})
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\t' {
			*errs = append(*errs, FieldError{Path: path, Message: "contains control characters"})
			break
		}
	}
	checkNoEnv(errs, path, s)
}

// checkNoEnv rejects "${" outside connection values. The engine expands
// ${NAME} anywhere in a config's text before parsing it, so a mapping or a
// table name containing ${SOME_SECRET} would copy that secret into the data.
func checkNoEnv(errs *[]FieldError, path, s string) {
	if strings.Contains(s, "${") {
		*errs = append(*errs, FieldError{Path: path, Message: "must not contain \"${\": environment references are only allowed in connection values"})
	}
}

func checkEndpoint(errs *[]FieldError, role, typ string, conn map[string]string, table, topic, query string) {
	add := func(path, format string, args ...any) {
		*errs = append(*errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	allowed, ok := connKeys[role][typ]
	switch {
	case typ == "":
		add(role+".type", "is required: one of %s", knownTypes(role))
		return
	case !ok:
		add(role+".type", "must be one of %s, not %q", knownTypes(role), truncate(typ, 40))
		return
	}
	keys := make([]string, 0, len(conn))
	for k := range conn {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := conn[k]
		p := role + ".connection." + k
		if !contains(allowed, k) {
			if secretKey.MatchString(k) {
				add(p, "secrets are not separate connection fields: put the password in dsn as an environment reference, e.g. postgres://user:${PGPASSWORD}@host/db")
			} else {
				add(p, "unknown connection field for %s %s (known: %s)", typ, role, strings.Join(allowed, ", "))
			}
			continue
		}
		checkConnValue(errs, p, v)
	}
	checkText(errs, role+".table", table, 256)
	checkText(errs, role+".topic", topic, 256)
	checkNoEnv(errs, role+".query", query)
	switch typ {
	case ConnPostgres:
		if strings.TrimSpace(conn["dsn"]) == "" {
			add(role+".connection.dsn", "is required, e.g. ${SOURCE_DSN} or postgres://user:${PGPASSWORD}@host:5432/db")
		}
		if topic != "" {
			add(role+".topic", "is for nats endpoints; postgres uses table")
		}
		if role == "source" {
			if (table == "") == (query == "") {
				add(role+".table", "set exactly one of table or query")
			}
			if v := conn["pageSize"]; v != "" {
				if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 1000000 {
					add(role+".connection.pageSize", "must be an integer between 1 and 1000000")
				}
			}
		} else if table == "" {
			add(role+".table", "is required for a postgres destination")
		}
		if v := conn["mode"]; v != "" && v != "insert" && v != "upsert" {
			add(role+".connection.mode", "must be insert or upsert")
		}
	case ConnSQLite, ConnCSV, ConnGenerate:
		checkLocalEndpoint(errs, role, typ, conn, table, topic, query)
	case ConnNATS:
		if table != "" {
			add(role+".table", "is for postgres endpoints; nats uses topic")
		}
		if role == "source" && query != "" {
			add(role+".query", "is for postgres sources")
		}
		pat, what := subjectPat, "a subject such as agentetl.orders"
		if role == "source" {
			pat, what = filterPat, "a subject or filter such as agentetl.orders.>"
		}
		if topic == "" {
			add(role+".topic", "is required for a nats %s", role)
		} else if !pat.MatchString(topic) {
			add(role+".topic", "must be %s", what)
		}
		if v := conn["deliver"]; v != "" && v != "all" && v != "new" {
			add(role+".connection.deliver", "must be all or new")
		}
		if v := conn["stream"]; v != "" && !regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`).MatchString(v) {
			add(role+".connection.stream", "must be a JetStream stream name")
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkConnValue allows ${NAME} references and rejects literal secrets.
func checkConnValue(errs *[]FieldError, path, v string) {
	add := func(format string, args ...any) {
		*errs = append(*errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if len(v) > 4096 {
		add("is longer than 4096 bytes")
		return
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			add("contains control characters")
			return
		}
	}
	for _, m := range envRef.FindAllStringSubmatch(v, -1) {
		name := m[1]
		switch {
		case !envName.MatchString(name):
			// Only the name part is echoed: a default may be a secret.
			ref, _, _ := strings.Cut(name, ":")
			add("${%s...} is not a plain environment reference: use ${NAME} with letters, digits and '_' (no defaults, which would put a value in clear)", truncate(ref, 40))
			return
		case strings.HasPrefix(strings.ToUpper(name), reservedEnvPrefix):
			add("${%s} is reserved for the orchestrator's own settings", name)
			return
		}
	}
	rest := envRef.ReplaceAllString(v, "")
	if strings.Contains(rest, "${") || strings.Contains(rest, "$}") {
		add("has an unterminated environment reference")
		return
	}
	// With every reference replaced by the redaction mask, a value that
	// redaction would still change holds a literal secret.
	masked := envRef.ReplaceAllString(v, redact.Mask)
	if redact.DSN(masked) != masked || redact.String(masked) != masked {
		add("contains a literal password; reference it through an environment variable instead, e.g. postgres://user:${PGPASSWORD}@host:5432/db or a whole-DSN ${SOURCE_DSN}, and set that variable in the orchestrator's environment")
	}
}

// EnvRefs lists the environment variables a config's connections reference,
// sorted, with the field path of their first use.
func EnvRefs(pc model.PipelineConfig) []EnvRef {
	seen := map[string]bool{}
	var out []EnvRef
	collect := func(role string, conn map[string]string) {
		keys := make([]string, 0, len(conn))
		for k := range conn {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, m := range envRef.FindAllStringSubmatch(conn[k], -1) {
				if !seen[m[1]] {
					seen[m[1]] = true
					out = append(out, EnvRef{Name: m[1], Path: role + ".connection." + k})
				}
			}
		}
	}
	collect("source", pc.Source.Connection)
	collect("destination", pc.Destination.Connection)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// EnvRef is one environment variable a pipeline needs.
type EnvRef struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// Dead-letter destinations. A plain value is a bus subject: records a
// processor fails go there, with the error in a header. "table:" and
// "file:" put the error_resolution agent in front of the destination: it
// resolves processor and write failures and stores each unresolvable
// record, with its category and fingerprint, in a table of the destination
// database or a JSON Lines file, from where it can be replayed.
const (
	DeadLetterTable = "table:"
	DeadLetterFile  = "file:"
)

// DeadLetterKind splits errorHandling.deadLetter into its kind ("subject",
// "table" or "file") and value.
func DeadLetterKind(dl string) (kind, value string) {
	switch {
	case strings.HasPrefix(dl, DeadLetterTable):
		return "table", strings.TrimPrefix(dl, DeadLetterTable)
	case strings.HasPrefix(dl, DeadLetterFile):
		return "file", strings.TrimPrefix(dl, DeadLetterFile)
	}
	return "subject", dl
}

func checkDeadLetter(pc model.PipelineConfig, dl string) string {
	kind, v := DeadLetterKind(dl)
	switch kind {
	case "table":
		if pc.Destination.Type != ConnPostgres {
			return "table: dead letters are stored in the destination database, so they need a postgres destination (use file:<path> otherwise)"
		}
		if _, err := pgutil.ParseIdent(v); err != nil {
			return fmt.Sprintf("table: must name a table such as table:public.orders_dead_letters: %v", err)
		}
	case "file":
		switch {
		case strings.TrimSpace(v) == "":
			return "file: needs a path, such as file:./data/orders-dead-letters.jsonl"
		case len(v) > 1024:
			return "file: path is longer than 1024 bytes"
		case strings.Contains(v, "${"):
			return "file: path must not contain \"${\""
		case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return "file: path contains control characters"
		}
	default:
		if !subjectPat.MatchString(v) {
			return "must be a bus subject such as agentetl.deadletter.orders (letters, digits, '-', '_' separated by dots), table:<schema.table> or file:<path>"
		}
	}
	return ""
}

// Endpoint types that need no server: an SQLite database file, a CSV file
// (batch sources) and the generate input (stream sources).
const (
	ConnSQLite   = "sqlite"
	ConnCSV      = "csv"
	ConnGenerate = "generate"
)

func batchSource(typ string) bool {
	return typ == ConnPostgres || typ == ConnSQLite || typ == ConnCSV
}

// knownTypes lists the endpoint types of a role for messages.
func knownTypes(role string) string {
	var names []string
	for k := range connKeys[role] {
		names = append(names, strconv.Quote(k))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// checkLocalEndpoint checks sqlite, csv and generate endpoints. Paths must
// be absolute: the engine runs in its own working directory, so a relative
// path would silently name another file.
func checkLocalEndpoint(errs *[]FieldError, role, typ string, conn map[string]string, table, topic, query string) {
	add := func(path, format string, args ...any) {
		*errs = append(*errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if topic != "" {
		add(role+".topic", "is for nats endpoints")
	}
	if query != "" {
		add(role+".query", "is for postgres sources")
	}
	switch typ {
	case ConnSQLite:
		dsn := strings.TrimSpace(conn["dsn"])
		switch {
		case dsn == "":
			add(role+".connection.dsn", "is required: sqlite:///absolute/path.db or an environment reference such as ${TARGET_SQLITE}")
		case envRef.ReplaceAllString(dsn, "") == "":
			// A whole-value ${NAME}: checked where the engine expands it.
		case !strings.HasPrefix(dsn, "sqlite:///") && !strings.HasPrefix(dsn, "sqlite://${"):
			add(role+".connection.dsn", "must be sqlite:///absolute/path.db: the engine runs in its own working directory, so a relative path would name another file")
		case strings.ContainsAny(dsn, "?#"):
			add(role+".connection.dsn", "must be sqlite:///path without query parameters")
		}
		if table == "" {
			add(role+".table", "is required for an sqlite %s", role)
		} else if _, err := pgutil.ParseIdent(table); err != nil {
			add(role+".table", "%v", err)
		}
		if v := conn["pageSize"]; v != "" {
			if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 1000000 {
				add(role+".connection.pageSize", "must be an integer between 1 and 1000000")
			}
		}
		if v := conn["mode"]; v != "" && v != "insert" && v != "upsert" {
			add(role+".connection.mode", "must be insert or upsert")
		}
	case ConnCSV:
		p := strings.TrimSpace(conn["path"])
		switch {
		case p == "":
			add(role+".connection.path", "is required: the absolute path of the CSV file")
		case envRef.ReplaceAllString(p, "") == "":
		case !strings.HasPrefix(p, "/"):
			add(role+".connection.path", "must be an absolute path: the engine runs in its own working directory")
		}
		if table != "" {
			add(role+".table", "is for sqlite and postgres endpoints; a csv source reads connection.path")
		}
		if d := conn["delimiter"]; d != "" && len([]rune(d)) != 1 {
			add(role+".connection.delimiter", "must be a single character")
		}
	case ConnGenerate:
		if table != "" {
			add(role+".table", "is for sqlite and postgres endpoints")
		}
		checkNoEnv(errs, role+".connection.mapping", conn["mapping"])
		if v := conn["interval"]; v != "" {
			if d, err := time.ParseDuration(v); err != nil || d < 0 {
				add(role+".connection.interval", "must be a duration such as 1s or 500ms")
			}
		}
		if v := conn["count"]; v != "" {
			if n, err := strconv.Atoi(v); err != nil || n < 0 {
				add(role+".connection.count", "must be a non-negative integer (0 generates forever)")
			}
		}
	}
}
