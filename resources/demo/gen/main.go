// Command gen writes the bundled demo data under resources/demo: a legacy
// order table with abbreviated column names (CUST_ORD: ord_dt is declared
// DATE but holds text, as SQLite allows) as an SQLite file (legacy.db) and
// as CSV (csv/cust_ord.csv), with a few bad records the modern target schema
// (target-*.sql) refuses, listed in bad-records.json. The output is
// deterministic: running it again writes the same bytes, so the generated
// files are committed and only regenerated when this program changes.
//
//	go run ./resources/demo/gen            # from the repository root
//	go run ./resources/demo/gen -dir resources/demo -rows 3000
package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite"
)

// The bad records: 1-based row, the column made bad, and why the target
// refuses it. tests/demo reads them back from bad-records.json.
var badRecords = []badRecord{
	{Row: 517, Column: "ord_dt", Value: "2023-02-30", Problem: "unparseable date: February has no 30th"},
	{Row: 1204, Column: "amt_usd", Value: "-42.50", Problem: "negative amount: violates CHECK (amount_usd >= 0)"},
	{Row: 2088, Column: "shp_cntry", Value: "United States of America", Problem: "country is not a 2-letter code: violates CHECK (length(ship_country) = 2)"},
	{Row: 2750, Column: "cst_nm", Value: "", Problem: "customer name longer than 100 characters: violates CHECK (length(customer_name) <= 100)"},
}

type badRecord struct {
	Row     int    `json:"row"`
	OrderID int64  `json:"ordId"`
	Column  string `json:"column"`
	Value   string `json:"value"`
	Problem string `json:"problem"`
}

const firstOrderID = 100001

var (
	firstNames = []string{"Ada", "Alan", "Grace", "Linus", "Ken", "Barbara", "Edsger", "Margaret", "Dennis", "Frances",
		"John", "Radia", "Tim", "Sophie", "Donald", "Hedy", "Niklaus", "Katherine", "Bjarne", "Annie", "Guido", "Mary",
		"James", "Carol", "Rob", "Lynn", "Yukihiro", "Shafi", "Leslie", "Jean"}
	lastNames = []string{"Lovelace", "Turing", "Hopper", "Torvalds", "Thompson", "Liskov", "Dijkstra", "Hamilton",
		"Ritchie", "Allen", "McCarthy", "Perlman", "Berners-Lee", "Wilson", "Knuth", "Lamarr", "Wirth", "Johnson",
		"Stroustrup", "Easley", "van Rossum", "Shaw", "Gosling", "Shaw", "Pike", "Conway", "Matsumoto", "Goldwasser",
		"Lamport", "Bartik"}
	domains   = []string{"example.com", "example.org", "mail.example.net", "corp.example"}
	countries = []string{"US", "US", "US", "DE", "DE", "FR", "GB", "GB", "NL", "SE", "ES", "IT", "CA", "JP", "BR", "AU"}
	statuses  = []string{"S", "S", "S", "S", "P", "P", "C", "R"}
)

type customer struct {
	id          int64
	name, email string
	country     string
}

type order struct {
	id, customerID int64
	name, email    string
	date           string
	amount         string
	qty            int
	country        string
	status         string
}

func main() {
	dir := flag.String("dir", "resources/demo", "output directory")
	rows := flag.Int("rows", 3000, "number of orders")
	flag.Parse()
	if err := run(*dir, *rows); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string, n int) error {
	if n < badRecords[len(badRecords)-1].Row {
		return fmt.Errorf("-rows must be at least %d", badRecords[len(badRecords)-1].Row)
	}
	orders := generate(n)
	if err := os.MkdirAll(filepath.Join(dir, "csv"), 0o755); err != nil {
		return err
	}
	if err := writeSQLite(filepath.Join(dir, "legacy.db"), orders); err != nil {
		return fmt.Errorf("legacy.db: %w", err)
	}
	if err := writeCSV(filepath.Join(dir, "csv", "cust_ord.csv"), orders); err != nil {
		return fmt.Errorf("cust_ord.csv: %w", err)
	}
	if err := writeBadRecords(filepath.Join(dir, "bad-records.json")); err != nil {
		return fmt.Errorf("bad-records.json: %w", err)
	}
	fmt.Printf("wrote %d orders (%d bad) to %s\n", len(orders), len(badRecords), dir)
	return nil
}

func generate(n int) []order {
	rng := rand.New(rand.NewPCG(2024, 9))
	custs := make([]customer, 400)
	for i := range custs {
		first, last := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
		c := customer{id: int64(1000 + i), name: first + " " + last, country: countries[rng.IntN(len(countries))]}
		// Legacy data: about one customer in twelve has no e-mail address.
		if rng.IntN(12) != 0 {
			local := strings.ToLower(strings.NewReplacer(" ", "", "-", "").Replace(first + "." + last))
			c.email = fmt.Sprintf("%s%d@%s", local, i, domains[rng.IntN(len(domains))])
		}
		custs[i] = c
	}
	start := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]order, n)
	for i := range out {
		c := custs[rng.IntN(len(custs))]
		cents := 500 + rng.IntN(99500)
		if rng.IntN(20) == 0 {
			cents += 100000 + rng.IntN(400000)
		}
		out[i] = order{
			id: int64(firstOrderID + i), customerID: c.id, name: c.name, email: c.email,
			date:    start.AddDate(0, 0, rng.IntN(3*365)).Format("2006-01-02"),
			amount:  strconv.Itoa(cents/100) + "." + fmt.Sprintf("%02d", cents%100),
			qty:     1 + rng.IntN(9),
			country: c.country, status: statuses[rng.IntN(len(statuses))],
		}
	}
	for i := range badRecords {
		b := &badRecords[i]
		o := &out[b.Row-1]
		b.OrderID = o.id
		switch b.Column {
		case "ord_dt":
			o.date = b.Value
		case "amt_usd":
			o.amount = b.Value
		case "shp_cntry":
			o.country = b.Value
		case "cst_nm":
			o.name = "Maximilian Alexander Bartholomew " + strings.Repeat("von Hohenzollern-Sigmaringen ", 3) + "the Third"
			b.Value = o.name
		}
	}
	return out
}

const legacyDDL = `CREATE TABLE CUST_ORD (
  ord_id    INTEGER PRIMARY KEY,
  cust_id   INTEGER NOT NULL,
  cst_nm    VARCHAR(200),
  eml_addr  VARCHAR(200),
  ord_dt    DATE,
  amt_usd   DECIMAL(10,2),
  qty       INTEGER,
  shp_cntry VARCHAR(40),
  ord_sts   CHAR(1)
)`

func writeSQLite(path string, orders []order) error {
	for _, p := range []string{path, path + "-journal", path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, legacyDDL); err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO CUST_ORD VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	for _, o := range orders {
		amount, err := strconv.ParseFloat(o.amount, 64)
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, o.id, o.customerID, o.name, nullable(o.email), o.date, amount, o.qty, o.country, o.status); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "VACUUM")
	return err
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func writeCSV(path string, orders []order) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"ord_id", "cust_id", "cst_nm", "eml_addr", "ord_dt", "amt_usd", "qty", "shp_cntry", "ord_sts"})
	for _, o := range orders {
		_ = w.Write([]string{strconv.FormatInt(o.id, 10), strconv.FormatInt(o.customerID, 10), o.name, o.email, o.date,
			o.amount, strconv.Itoa(o.qty), o.country, o.status})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeBadRecords(path string) error {
	var b strings.Builder
	b.WriteString("[\n")
	for i, r := range badRecords {
		fmt.Fprintf(&b, "  {\"row\": %d, \"ordId\": %d, \"column\": %q, \"value\": %q, \"problem\": %q}", r.Row, r.OrderID, r.Column, r.Value, r.Problem)
		if i < len(badRecords)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
