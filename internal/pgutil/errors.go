package pgutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentetl/agentetl/internal/redact"
)

// Error is a database error with the structured evidence that later error
// handling classifies on: the SQLSTATE code and the object that failed. It
// wraps the original error, so errors.As still finds *pgconn.PgError.
type Error struct {
	Op         string // what we were doing: connect, read, copy, merge...
	SQLState   string
	Severity   string
	Schema     string
	Table      string
	Column     string
	Constraint string
	DataType   string
	Detail     string
	Hint       string
	// Record is the 1-based position, in the batch being written, of the
	// record that caused the error; 0 when the error is not about one record.
	Record int
	// Permanent is true when retrying the same operation cannot succeed:
	// the object is missing, the types do not fit, or access is denied.
	Permanent bool
	Err       error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	msg := redact.String(e.Err.Error())
	b.WriteString(msg)
	var where []string
	// pgconn already prints "(SQLSTATE x)"; say it once.
	if e.SQLState != "" && !strings.Contains(msg, "SQLSTATE "+e.SQLState) {
		where = append(where, "SQLSTATE "+e.SQLState)
	}
	if e.Table != "" && !strings.Contains(msg, e.Table) {
		where = append(where, "table "+e.Table)
	}
	if e.Column != "" && !strings.Contains(msg, e.Column) {
		where = append(where, "column "+e.Column)
	}
	if e.Constraint != "" {
		where = append(where, "constraint "+e.Constraint)
	}
	if len(where) > 0 {
		b.WriteString(" (" + strings.Join(where, ", ") + ")")
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(redact.String(e.Detail))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Wrap attaches the operation and, when err carries a *pgconn.PgError, its
// structured fields. nil stays nil.
func Wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	e := &Error{Op: op, Err: err}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		e.SQLState = pgErr.Code
		e.Severity = pgErr.Severity
		e.Schema = pgErr.SchemaName
		e.Table = pgErr.TableName
		e.Column = pgErr.ColumnName
		e.Constraint = pgErr.ConstraintName
		e.DataType = pgErr.DataTypeName
		e.Detail = pgErr.Detail
		e.Hint = pgErr.Hint
		e.Permanent = PermanentSQLState(pgErr.Code)
	}
	return e
}

// Permanentf builds a permanent error that did not come from the server,
// such as a missing key column found while checking the catalog.
func Permanentf(op, format string, args ...any) error {
	return &Error{Op: op, Permanent: true, Err: fmt.Errorf(format, args...)}
}

// IsPermanent reports whether err cannot be fixed by retrying.
func IsPermanent(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Permanent
	}
	return false
}

// PermanentSQLState is true for SQLSTATE classes where a retry of the same
// statement cannot succeed: authentication and authorisation, a missing
// database, object or column, type mismatches and syntax errors.
func PermanentSQLState(code string) bool {
	switch {
	case strings.HasPrefix(code, "28"): // invalid authorization
		return true
	case code == "3D000", code == "3F000": // invalid catalog or schema name
		return true
	case code == "42P01", code == "42703", code == "42704", code == "42883": // undefined table, column, object, function
		return true
	case code == "42501": // insufficient privilege
		return true
	case code == "42804", code == "42846", code == "42P18": // datatype mismatch, cannot coerce, indeterminate
		return true
	case code == "42601", code == "42P10": // syntax error, invalid column reference (ON CONFLICT target)
		return true
	}
	return false
}

// SQLState returns the SQLSTATE carried by err, or "".
func SQLState(err error) string {
	var e *Error
	if errors.As(err, &e) && e.SQLState != "" {
		return e.SQLState
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// IsConnectionError reports whether err means the connection itself failed
// (refused, reset, terminated by an administrator, timed out): the kind of
// failure that a reconnect and retry can fix.
func IsConnectionError(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	switch code := SQLState(err); {
	case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02", code == "57P03":
		return true
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}
