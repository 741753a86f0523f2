package metastore

import (
	"context"
	"database/sql"
	"fmt"
)

// ---- error fingerprints ----

// RecordFingerprint upserts in one IMMEDIATE transaction; the additions
// happen in SQL, so concurrent writers (other processes too) never lose an
// increment. Times are fixed-width text, so min/max compare them correctly.
func (s *sqliteStore) RecordFingerprint(ctx context.Context, d FingerprintDelta) error {
	d, err := prepareFingerprintDelta(d)
	if err != nil {
		return fmt.Errorf("metastore: record fingerprint: %w", err)
	}
	seen := sqliteTime(d.Seen)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO error_fingerprints (fingerprint, template, category, count, first_seen, last_seen, last_message)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (fingerprint) DO UPDATE SET
				template = CASE WHEN excluded.template <> '' THEN excluded.template ELSE error_fingerprints.template END,
				category = CASE WHEN excluded.category <> '' THEN excluded.category ELSE error_fingerprints.category END,
				count = error_fingerprints.count + excluded.count,
				first_seen = min(error_fingerprints.first_seen, excluded.first_seen),
				last_seen = max(error_fingerprints.last_seen, excluded.last_seen),
				last_message = CASE WHEN excluded.last_message <> '' AND excluded.last_seen >= error_fingerprints.last_seen
					THEN excluded.last_message ELSE error_fingerprints.last_message END`,
			d.Fingerprint, d.Template, d.Category, d.Count, seen, seen, d.Message); err != nil {
			return err
		}
		if d.Strategy == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx, `
			INSERT INTO error_fingerprint_strategies (fingerprint, strategy, attempts, successes) VALUES (?, ?, ?, ?)
			ON CONFLICT (fingerprint, strategy) DO UPDATE SET
				attempts = error_fingerprint_strategies.attempts + excluded.attempts,
				successes = error_fingerprint_strategies.successes + excluded.successes`,
			d.Fingerprint, d.Strategy, d.Attempts, d.Successes)
		return err
	})
	if err != nil {
		return fmt.Errorf("metastore: record fingerprint %q: %w", d.Fingerprint, err)
	}
	return nil
}

func (s *sqliteStore) collectFingerprints(ctx context.Context, what, query string, args ...any) ([]FingerprintStats, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: %s: %w", what, err)
	}
	defer rows.Close()
	var out []FingerprintStats
	for rows.Next() {
		var (
			st                  FingerprintStats
			first, last         string
			strategy            *string
			attempts, successes *int64
		)
		if err := rows.Scan(&st.Fingerprint, &st.Template, &st.Category, &st.Count, &first, &last,
			&st.LastMessage, &strategy, &attempts, &successes); err != nil {
			return nil, fmt.Errorf("metastore: %s: %w", what, err)
		}
		if st.FirstSeen, err = parseSQLiteTime(first); err != nil {
			return nil, err
		}
		if st.LastSeen, err = parseSQLiteTime(last); err != nil {
			return nil, err
		}
		out = appendFingerprintRow(out, st, strategy, attempts, successes)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: %s: %w", what, err)
	}
	return nonEmpty(out), nil
}

const sqliteFingerprintCols = `f.fingerprint, f.template, f.category, f.count, f.first_seen, f.last_seen, f.last_message,
	s.strategy, s.attempts, s.successes`

func (s *sqliteStore) GetFingerprintStats(ctx context.Context, fingerprint string) (FingerprintStats, error) {
	out, err := s.collectFingerprints(ctx, fmt.Sprintf("get fingerprint %q", fingerprint),
		`SELECT `+sqliteFingerprintCols+` FROM error_fingerprints f
		LEFT JOIN error_fingerprint_strategies s ON s.fingerprint = f.fingerprint
		WHERE f.fingerprint = ? ORDER BY s.strategy`, fingerprint)
	if err != nil {
		return FingerprintStats{}, err
	}
	if len(out) == 0 {
		return FingerprintStats{}, fmt.Errorf("metastore: get fingerprint %q: %w", fingerprint, ErrNotFound)
	}
	return out[0], nil
}

func (s *sqliteStore) ListFingerprintStats(ctx context.Context, fl FingerprintFilter) ([]FingerprintStats, error) {
	f := &filter{}
	if fl.Category != "" {
		f.add("category =", fl.Category)
	}
	inner := `SELECT * FROM error_fingerprints` + f.where() + ` ORDER BY last_seen DESC, fingerprint` + f.limit(fl.Limit)
	q := `SELECT ` + sqliteFingerprintCols + ` FROM (` + inner + `) f
		LEFT JOIN error_fingerprint_strategies s ON s.fingerprint = f.fingerprint
		ORDER BY f.last_seen DESC, f.fingerprint, s.strategy`
	return s.collectFingerprints(ctx, "list fingerprints", q, f.args...)
}
