package resolution_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/agents/resolution"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/pgutil"
)

func jsonErr(doc string, into any) error { return json.Unmarshal([]byte(doc), into) }

// TestClassification checks category and proposed strategy for real error
// messages and error values from PostgreSQL, MySQL, Kafka, the network and
// JSON decoding.
func TestClassification(t *testing.T) {
	var anyV any
	var typed struct {
		ID int `json:"id"`
	}
	cases := []struct {
		name     string
		err      error
		cat      resolution.Category
		strategy string
	}{
		// A truncated document reports io.ErrUnexpectedEOF like a closed
		// connection; the message says it is the payload.
		{"truncated record", fmt.Errorf("schema_mapping: record is not JSON: %w", io.ErrUnexpectedEOF), "poison", "skip"},
		{"not an object", errors.New("schema_mapping: record is not a JSON object"), "poison", "skip"},
		{"closed stream", fmt.Errorf("read frame: %w", io.ErrUnexpectedEOF), "connection", "retry"},
		// PostgreSQL, as pgx prints server errors.
		{"pg unique", errors.New(`ERROR: duplicate key value violates unique constraint "orders_pkey" (SQLSTATE 23505)`), "constraint", "skip"},
		{"pg not null", errors.New(`ERROR: null value in column "email" of relation "users" violates not-null constraint (SQLSTATE 23502)`), "constraint", "skip"},
		{"pg foreign key", errors.New(`ERROR: insert or update on table "orders" violates foreign key constraint "orders_customer_id_fkey" (SQLSTATE 23503)`), "constraint", "skip"},
		{"pg check", errors.New(`ERROR: new row for relation "orders" violates check constraint "orders_qty_check" (SQLSTATE 23514)`), "constraint", "skip"},
		{"pg too long", errors.New(`ERROR: value too long for type character varying(40) (SQLSTATE 22001)`), "data_type", "skip"},
		{"pg bad integer", errors.New(`ERROR: invalid input syntax for type integer: "abc" (SQLSTATE 22P02)`), "data_type", "skip"},
		{"pg bad date", errors.New(`ERROR: date/time field value out of range: "2024-02-30" (SQLSTATE 22008)`), "data_type", "skip"},
		{"pg overflow", errors.New(`ERROR: numeric field overflow (SQLSTATE 22003)`), "data_type", "skip"},
		{"pg missing table", errors.New(`ERROR: relation "public.orderz" does not exist (SQLSTATE 42P01)`), "schema", "escalate"},
		{"pg missing column", errors.New(`ERROR: column "discount" of relation "orders" does not exist (SQLSTATE 42703)`), "schema", "escalate"},
		{"pg permission", errors.New(`ERROR: permission denied for table orders (SQLSTATE 42501)`), "permission", "escalate"},
		{"pg password", errors.New(`failed to connect to user=etl database=app: FATAL: password authentication failed for user "etl" (SQLSTATE 28P01)`), "authentication", "escalate"},
		{"pg statement timeout", errors.New(`ERROR: canceling statement due to statement timeout (SQLSTATE 57014)`), "timeout", "retry"},
		{"pg terminated", errors.New(`FATAL: terminating connection due to administrator command (SQLSTATE 57P01)`), "connection", "retry"},
		{"pg deadlock", errors.New(`ERROR: deadlock detected (SQLSTATE 40P01)`), "conflict", "retry"},
		{"pg serialization", errors.New(`ERROR: could not serialize access due to concurrent update (SQLSTATE 40001)`), "conflict", "retry"},
		{"pg lock timeout", errors.New(`ERROR: canceling statement due to lock timeout (SQLSTATE 55P03)`), "conflict", "retry"},
		{"pg disk full", errors.New(`ERROR: could not extend file "base/16384/16385": No space left on device (SQLSTATE 53100)`), "resource", "escalate"},
		{"pg too many clients", errors.New(`FATAL: sorry, too many clients already (SQLSTATE 53300)`), "connection", "retry"},
		{"pg no database", errors.New(`FATAL: database "warehouse" does not exist (SQLSTATE 3D000)`), "configuration", "escalate"},
		{"pg syntax", errors.New(`ERROR: syntax error at or near "FROM" (SQLSTATE 42601)`), "configuration", "escalate"},
		{"pg refused", errors.New(`failed to connect to host=db user=etl database=app: dial error (dial tcp 10.0.0.5:5432: connect: connection refused)`), "connection", "retry"},
		{"pg structured", &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint \"t_pkey\"", Where: "COPY t, line 7"}, "constraint", "skip"},
		{"pgutil encode", &pgutil.Error{Op: "write t", SQLState: "22P02", Column: "qty", Err: errors.New(`record 3: column "qty" is integer: "x" is not an integer`)}, "data_type", "skip"},
		// MySQL, as go-sql-driver prints them, and as values.
		{"mysql duplicate", errors.New(`Error 1062 (23000): Duplicate entry '42' for key 'orders.PRIMARY'`), "constraint", "skip"},
		{"mysql too long", errors.New(`Error 1406 (22001): Data too long for column 'name' at row 1`), "data_type", "skip"},
		{"mysql bad datetime", errors.New(`Error 1292 (22007): Incorrect datetime value: '2024-13-01' for column 'created_at' at row 1`), "data_type", "skip"},
		{"mysql deadlock", errors.New(`Error 1213 (40001): Deadlock found when trying to get lock; try restarting transaction`), "conflict", "retry"},
		{"mysql lock wait", errors.New(`Error 1205 (HY000): Lock wait timeout exceeded; try restarting transaction`), "conflict", "retry"},
		{"mysql access denied", errors.New(`Error 1045 (28000): Access denied for user 'etl'@'10.0.0.7' (using password: YES)`), "authentication", "escalate"},
		{"mysql missing table", errors.New(`Error 1146 (42S02): Table 'shop.orderz' doesn't exist`), "schema", "escalate"},
		{"mysql packet", errors.New(`Error 1153 (08S01): Got a packet bigger than 'max_allowed_packet' bytes`), "resource", "adjust_config"},
		{"mysql too many connections", errors.New(`Error 1040: Too many connections`), "connection", "retry"},
		{"mysql fk value", &mysql.MySQLError{Number: 1452, Message: "Cannot add or update a child row: a foreign key constraint fails"}, "constraint", "skip"},
		{"mysql invalid conn", fmt.Errorf("exec: %w", mysql.ErrInvalidConn), "connection", "retry"},
		// Kafka, as franz-go's kerr prints protocol errors.
		{"kafka too large", errors.New(`MESSAGE_TOO_LARGE: The request included a message larger than the max message size the server will accept.`), "resource", "adjust_config"},
		{"kafka not leader", errors.New(`NOT_LEADER_FOR_PARTITION: This server is not the leader for that topic-partition.`), "connection", "retry"},
		{"kafka timed out", errors.New(`REQUEST_TIMED_OUT: The request timed out.`), "timeout", "retry"},
		{"kafka topic auth", errors.New(`TOPIC_AUTHORIZATION_FAILED: Topic authorization failed.`), "permission", "escalate"},
		{"kafka unknown topic", errors.New(`UNKNOWN_TOPIC_OR_PARTITION: This server does not host this topic-partition.`), "schema", "escalate"},
		{"kafka sasl", errors.New(`SASL_AUTHENTICATION_FAILED: SASL Authentication failed.`), "authentication", "escalate"},
		{"kafka throttled", errors.New(`THROTTLING_QUOTA_EXCEEDED: The throttling quota has been exceeded.`), "rate_limit", "retry"},
		{"kafka corrupt", errors.New(`CORRUPT_MESSAGE: This message has failed its CRC checksum, exceeds the valid size, has a null key for a compacted topic, or is otherwise corrupt.`), "poison", "skip"},
		// Network and context.
		{"net dial refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "connection", "retry"},
		{"context deadline", fmt.Errorf("query orders: %w", context.DeadlineExceeded), "timeout", "retry"},
		{"conn reset", errors.New(`read tcp 10.0.0.2:51234->10.0.0.5:5432: read: connection reset by peer`), "connection", "retry"},
		{"no such host", errors.New(`dial tcp: lookup db.internal on 127.0.0.53:53: no such host`), "configuration", "escalate"},
		{"dns value", &net.DNSError{Err: "no such host", Name: "db.internal", IsNotFound: true}, "configuration", "escalate"},
		{"http client timeout", errors.New(`Post "https://api.example.com/v1/events": net/http: request canceled (Client.Timeout exceeded while awaiting headers)`), "timeout", "retry"},
		{"http 429", errors.New(`HTTP 429 Too Many Requests: rate limit exceeded, retry after 30s`), "rate_limit", "retry"},
		{"http 503", errors.New(`unexpected status 503 Service Unavailable`), "connection", "retry"},
		// JSON.
		{"json syntax value", jsonErr(`{"id": 1,`, &anyV), "poison", "skip"},
		{"json type value", jsonErr(`{"id": "x"}`, &typed), "poison", "skip"},
		{"json invalid character", errors.New(`invalid character '}' looking for beginning of object key string`), "poison", "skip"},
		{"json truncated", errors.New(`unexpected end of JSON input`), "poison", "skip"},
		{"bloblang parse_json", errors.New(`failed assignment (line 1): function content: failed to parse value as JSON: unexpected EOF`), "poison", "skip"},
		{"unknown", errors.New(`something odd happened`), "unknown", "escalate"},
	}
	require.GreaterOrEqual(t, len(cases), 40)
	agent := resolution.New(resolution.Config{})
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NotNil(t, tc.err)
			c := resolution.Classify(tc.err)
			require.Equal(t, tc.cat, c.Category, "%v: %s", tc.err, c.Reason)
			require.Equal(t, tc.cat.Transient(), c.Transient)
			require.NotEmpty(t, c.Reason)
			rec, err := agent.CaptureGoError(ctx, tc.err, model.PipelineError{}, "test", nil)
			require.NoError(t, err)
			d, err := agent.DiagnoseError(ctx, rec)
			require.NoError(t, err)
			require.Equal(t, tc.strategy, d.Strategy, d.Reasoning)
			require.Len(t, d.Fingerprint, 16)
			require.NotEmpty(t, d.Reasoning)
			require.Greater(t, d.Confidence, 0.0)
		})
	}
}

func TestClassifyHints(t *testing.T) {
	c := resolution.ClassifyMessage("insert failed", resolution.Hints{SQLState: "23505"})
	require.Equal(t, resolution.CategoryConstraint, c.Category)
	require.Equal(t, "23505", c.Evidence.Code)
	c = resolution.ClassifyMessage("the thing broke", resolution.Hints{ErrorType: "timeout"})
	require.Equal(t, resolution.CategoryTimeout, c.Category)
	// COPY's context names the failing row; a staging table's does not count.
	c = resolution.Classify(&pgconn.PgError{Code: "22001", Message: "value too long for type character varying(3)", Where: "COPY dst, line 12, column name"})
	require.Equal(t, 11, c.Evidence.Record)
	require.Equal(t, "name", c.Evidence.Column)
	c = resolution.Classify(&pgconn.PgError{Code: "22001", Where: "COPY _agentetl_stage_42, line 12, column name"})
	require.Equal(t, -1, c.Evidence.Record)
}

func TestFingerprintNormalisesValues(t *testing.T) {
	a := `ERROR: duplicate key value violates unique constraint "orders_pkey" (SQLSTATE 23505): Key (id)=(42) already exists.`
	b := `ERROR: duplicate key value violates unique constraint "users_pkey" (SQLSTATE 23505): Key (id)=(9001) already exists.`
	require.Equal(t, resolution.Template(a), resolution.Template(b))
	require.Equal(t, resolution.Fingerprint(resolution.CategoryConstraint, a), resolution.Fingerprint(resolution.CategoryConstraint, b))
	require.Equal(t,
		resolution.Template(`dial tcp 10.0.0.5:5432: connect: connection refused`),
		resolution.Template(`dial tcp 192.168.1.7:6543: connect: connection refused`))
	require.Equal(t,
		resolution.Template(`record 17 of job 3f2a1c9e-8d4b-4f6a-9c2e-1b2a3c4d5e6f failed at 2025-03-14T09:26:53Z`),
		resolution.Template(`record 9 of job 00000000-1111-2222-3333-444444444444 failed at 2024-01-01T00:00:00Z`))
	require.NotEqual(t, resolution.Fingerprint(resolution.CategoryConstraint, a),
		resolution.Fingerprint(resolution.CategoryDataType, `ERROR: value too long for type character varying(40) (SQLSTATE 22001)`))
	// Secrets in URLs never reach a template.
	require.NotContains(t, resolution.Template(`connect postgres://etl:hunter2@db:5432/app failed`), "hunter2")
}
