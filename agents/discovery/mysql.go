package discovery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mysqlConnector reads MySQL and MariaDB through information_schema with
// three bulk queries and profiles one table per query, sampled with
// RAND(seed) < fraction when large (MySQL has no TABLESAMPLE).
type mysqlConnector struct {
	db   *sql.DB
	seed int64
}

type mysqlHandle struct{ estimate int64 }

// MySQLDriverDSN translates mysql://user:pass@host:3306/db?param=value into
// the go-sql-driver form user:pass@tcp(host:3306)/db?param=value. A socket
// parameter selects a unix socket instead of TCP. Parameters are passed
// through and validated by the driver.
func MySQLDriverDSN(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("not a mysql:// URL: %w", errors.Unwrap(err))
	}
	if s := strings.ToLower(u.Scheme); s != "mysql" && s != "mariadb" {
		return "", fmt.Errorf("scheme %q is not mysql://", u.Scheme)
	}
	cfg := mysql.NewConfig()
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:3306"
	} else if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	q := u.Query()
	if s := q.Get("socket"); s != "" {
		cfg.Net, cfg.Addr = "unix", s
		q.Del("socket")
	}
	out := cfg.FormatDSN()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sep := "?"
	if strings.Contains(out, "?") {
		sep = "&"
	}
	for _, k := range keys {
		out += sep + url.QueryEscape(k) + "=" + url.QueryEscape(q.Get(k))
		sep = "&"
	}
	if _, err := mysql.ParseDSN(out); err != nil {
		return "", err
	}
	return out, nil
}

type nopMySQLLogger struct{}

func (nopMySQLLogger) Print(...any) {}

func openMySQL(ctx context.Context, dsn string, opts ConnectorOptions) (Connector, error) {
	drv, err := MySQLDriverDSN(dsn)
	if err != nil {
		return nil, &SourceError{Op: "parse DSN", Permanent: true, Err: err}
	}
	cfg, err := mysql.ParseDSN(drv)
	if err != nil {
		return nil, &SourceError{Op: "parse DSN", Permanent: true, Err: err}
	}
	// Text protocol with client-side placeholder interpolation: every value
	// arrives in the server's own text form (exact decimals, dates as
	// written), which is what profiles are computed on.
	cfg.InterpolateParams = true
	cfg.ParseTime = false
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	cfg.Logger = nopMySQLLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, &SourceError{Op: "connect", Permanent: true, Err: err}
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(opts.MaxConns + 1)
	db.SetMaxIdleConns(opts.MaxConns + 1)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, mysqlSourceErr("connect", err)
	}
	return &mysqlConnector{db: db, seed: opts.Seed}, nil
}

// mysqlPermanent lists server errors that retrying cannot fix: access
// denied, unknown database, table access denied.
func mysqlPermanent(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1044, 1045, 1049, 1142, 1143, 1227, 1698:
			return true
		}
	}
	return false
}

func mysqlSourceErr(op string, err error) error {
	return &SourceError{Op: op, Permanent: mysqlPermanent(err), Err: err}
}

func (c *mysqlConnector) Kind() string { return "mysql" }

func (c *mysqlConnector) Close() error { return c.db.Close() }

// quoteMySQL quotes an identifier with backticks, doubling any inside.
func quoteMySQL(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

const mysqlSystemSchemas = "('mysql','information_schema','performance_schema','sys')"

func (c *mysqlConnector) Entities(ctx context.Context, f *Filter) ([]*Entity, []SkippedTable, error) {
	// One database when the DSN names it, else every non-system database.
	var db sql.NullString
	if err := c.db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&db); err != nil {
		return nil, nil, mysqlSourceErr("read catalog", err)
	}
	where := "TABLE_SCHEMA NOT IN " + mysqlSystemSchemas
	var args []any
	if db.Valid && db.String != "" {
		where = "TABLE_SCHEMA = ?"
		args = []any{db.String}
	}
	type key struct{ schema, name string }
	byKey := map[key]*Entity{}
	var ents []*Entity
	rows, err := c.db.QueryContext(ctx, `
SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, COALESCE(TABLE_ROWS, -1), COALESCE(TABLE_COMMENT, '')
FROM information_schema.TABLES WHERE `+where+` ORDER BY TABLE_SCHEMA, TABLE_NAME`, args...)
	if err != nil {
		return nil, nil, mysqlSourceErr("read catalog", err)
	}
	for rows.Next() {
		var schema, name, typ, comment string
		var est int64
		if err := rows.Scan(&schema, &name, &typ, &est, &comment); err != nil {
			rows.Close()
			return nil, nil, mysqlSourceErr("read catalog", err)
		}
		if !f.Match(schema, name) {
			continue
		}
		kind := KindTable
		if strings.Contains(typ, "VIEW") {
			kind, comment, est = KindView, "", -1
		}
		e := &Entity{Schema: schema, Name: name, Kind: kind, Description: comment, RowEstimate: est, Handle: &mysqlHandle{estimate: est}}
		ents = append(ents, e)
		byKey[key{schema, name}] = e
	}
	if err := rows.Err(); err != nil {
		return nil, nil, mysqlSourceErr("read catalog", err)
	}
	if len(ents) == 0 {
		return ents, nil, nil
	}
	rows, err = c.db.QueryContext(ctx, `
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, COALESCE(COLUMN_COMMENT, '')
FROM information_schema.COLUMNS WHERE `+where+` ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`, args...)
	if err != nil {
		return nil, nil, mysqlSourceErr("read columns", err)
	}
	for rows.Next() {
		var schema, name, colName, colType, dataType, nullable, comment string
		if err := rows.Scan(&schema, &name, &colName, &colType, &dataType, &nullable, &comment); err != nil {
			rows.Close()
			return nil, nil, mysqlSourceErr("read columns", err)
		}
		e := byKey[key{schema, name}]
		if e == nil {
			continue
		}
		e.Columns = append(e.Columns, Column{Name: colName, DataType: colType, Nullable: nullable == "YES",
			Description: comment, Class: mysqlClass(dataType, colType)})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, mysqlSourceErr("read columns", err)
	}
	rows, err = c.db.QueryContext(ctx, `
SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, c.CONSTRAINT_TYPE, k.COLUMN_NAME,
       COALESCE(k.REFERENCED_TABLE_SCHEMA, ''), COALESCE(k.REFERENCED_TABLE_NAME, ''), COALESCE(k.REFERENCED_COLUMN_NAME, '')
FROM information_schema.KEY_COLUMN_USAGE k
JOIN information_schema.TABLE_CONSTRAINTS c
  ON c.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME AND c.CONSTRAINT_NAME = k.CONSTRAINT_NAME
WHERE c.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'FOREIGN KEY') AND `+strings.ReplaceAll(where, "TABLE_SCHEMA", "k.TABLE_SCHEMA")+`
ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, c.CONSTRAINT_TYPE DESC, k.CONSTRAINT_NAME, k.ORDINAL_POSITION`, args...)
	if err != nil {
		return nil, nil, mysqlSourceErr("read keys", err)
	}
	for rows.Next() {
		var schema, name, cname, ctype, col, rschema, rtable, rcol string
		if err := rows.Scan(&schema, &name, &cname, &ctype, &col, &rschema, &rtable, &rcol); err != nil {
			rows.Close()
			return nil, nil, mysqlSourceErr("read keys", err)
		}
		e := byKey[key{schema, name}]
		if e == nil {
			continue
		}
		if ctype == "PRIMARY KEY" {
			e.PrimaryKey = append(e.PrimaryKey, col)
			continue
		}
		n := len(e.ForeignKeys)
		if n == 0 || e.ForeignKeys[n-1].Name != cname {
			e.ForeignKeys = append(e.ForeignKeys, ForeignKey{Name: cname, RefTable: qualify(rschema, rtable)})
			n++
		}
		fk := &e.ForeignKeys[n-1]
		fk.Columns = append(fk.Columns, col)
		fk.RefColumns = append(fk.RefColumns, rcol)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, mysqlSourceErr("read keys", err)
	}
	return ents, nil, nil
}

func mysqlClass(dataType, colType string) ValueClass {
	switch strings.ToLower(dataType) {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "float", "double", "real", "year":
		return ClassNumeric
	case "date", "datetime", "timestamp", "time":
		return ClassTemporal
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set":
		return ClassText
	}
	return ClassOf(colType)
}

func (c *mysqlConnector) Rows(ctx context.Context, e *Entity, target int64, emit func([][]byte) error) (ReadInfo, error) {
	h := e.Handle.(*mysqlHandle)
	var sel strings.Builder
	sel.WriteString("SELECT ")
	if len(e.Columns) == 0 {
		sel.WriteString("NULL")
	}
	for i, col := range e.Columns {
		if i > 0 {
			sel.WriteString(", ")
		}
		sel.WriteString(quoteMySQL(col.Name))
	}
	sel.WriteString(" FROM ")
	sel.WriteString(quoteMySQL(e.Schema))
	sel.WriteString(".")
	sel.WriteString(quoteMySQL(e.Name))
	info := ReadInfo{RowCount: h.estimate}
	var (
		query string
		args  []any
	)
	if e.Kind == KindTable && h.estimate > target {
		frac := min(1, float64(target)/float64(h.estimate)*1.15)
		query = sel.String() + " WHERE RAND(?) < ? LIMIT ?"
		args = []any{c.seed, frac, target}
		info.Sampled = true
		info.Method = "RAND(" + strconv.FormatInt(c.seed, 10) + ") < " + strconv.FormatFloat(frac, 'f', 5, 64)
	} else {
		query = sel.String() + " LIMIT ?"
		args = []any{2*target + 1}
	}
	rows, err := c.db.QueryContext(ctx, query, args...)
	if err != nil {
		return info, err
	}
	defer rows.Close()
	ncol := max(1, len(e.Columns))
	vals := make([][]byte, ncol)
	ptrs := make([]any, ncol)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for rows.Next() {
		n++
		if !info.Sampled && n > 2*target {
			break
		}
		for i := range vals {
			vals[i] = nil
		}
		if err := rows.Scan(ptrs...); err != nil {
			return info, err
		}
		row := vals
		if len(e.Columns) == 0 {
			row = nil
		}
		if err := emit(row); err != nil {
			return info, err
		}
	}
	if err := rows.Err(); err != nil {
		return info, err
	}
	if !info.Sampled {
		if n > 2*target {
			info.Sampled = true
			info.Method = "first " + strconv.FormatInt(2*target, 10) + " rows (the catalog estimate was too low to sample)"
			info.RowCount = max(h.estimate, n)
		} else {
			info.RowCount, info.RowCountExact = n, true
		}
	}
	return info, nil
}
