package metastore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ---- error fingerprints ----

// RecordFingerprint upserts the stats row and, when a strategy is given, its
// strategy row in one transaction; the additions happen in SQL so that
// concurrent writers never lose an increment.
func (s *pgStore) RecordFingerprint(ctx context.Context, d FingerprintDelta) error {
	d, err := prepareFingerprintDelta(d)
	if err != nil {
		return fmt.Errorf("metastore: record fingerprint: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO error_fingerprints (fingerprint, template, category, count, first_seen, last_seen, last_message)
			VALUES ($1, $2, $3, $4, $5, $5, $6)
			ON CONFLICT (fingerprint) DO UPDATE SET
				template = CASE WHEN EXCLUDED.template <> '' THEN EXCLUDED.template ELSE error_fingerprints.template END,
				category = CASE WHEN EXCLUDED.category <> '' THEN EXCLUDED.category ELSE error_fingerprints.category END,
				count = error_fingerprints.count + EXCLUDED.count,
				first_seen = LEAST(error_fingerprints.first_seen, EXCLUDED.first_seen),
				last_seen = GREATEST(error_fingerprints.last_seen, EXCLUDED.last_seen),
				last_message = CASE WHEN EXCLUDED.last_message <> '' AND EXCLUDED.last_seen >= error_fingerprints.last_seen
					THEN EXCLUDED.last_message ELSE error_fingerprints.last_message END`,
			d.Fingerprint, d.Template, d.Category, d.Count, d.Seen, d.Message); err != nil {
			return err
		}
		if d.Strategy == "" {
			return nil
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO error_fingerprint_strategies (fingerprint, strategy, attempts, successes) VALUES ($1, $2, $3, $4)
			ON CONFLICT (fingerprint, strategy) DO UPDATE SET
				attempts = error_fingerprint_strategies.attempts + EXCLUDED.attempts,
				successes = error_fingerprint_strategies.successes + EXCLUDED.successes`,
			d.Fingerprint, d.Strategy, d.Attempts, d.Successes)
		return err
	})
	if err != nil {
		return fmt.Errorf("metastore: record fingerprint %q: %w", d.Fingerprint, err)
	}
	return nil
}

const pgFingerprintSelect = `SELECT f.fingerprint, f.template, f.category, f.count, f.first_seen, f.last_seen, f.last_message,
	s.strategy, s.attempts, s.successes
	FROM error_fingerprints f LEFT JOIN error_fingerprint_strategies s ON s.fingerprint = f.fingerprint`

func (s *pgStore) collectFingerprints(ctx context.Context, what, query string, args ...any) ([]FingerprintStats, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: %s: %w", what, err)
	}
	defer rows.Close()
	var out []FingerprintStats
	for rows.Next() {
		var (
			st                  FingerprintStats
			strategy            *string
			attempts, successes *int64
		)
		if err := rows.Scan(&st.Fingerprint, &st.Template, &st.Category, &st.Count, &st.FirstSeen, &st.LastSeen,
			&st.LastMessage, &strategy, &attempts, &successes); err != nil {
			return nil, fmt.Errorf("metastore: %s: %w", what, err)
		}
		st.FirstSeen, st.LastSeen = pgTime(st.FirstSeen), pgTime(st.LastSeen)
		out = appendFingerprintRow(out, st, strategy, attempts, successes)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: %s: %w", what, err)
	}
	return nonEmpty(out), nil
}

func (s *pgStore) GetFingerprintStats(ctx context.Context, fingerprint string) (FingerprintStats, error) {
	out, err := s.collectFingerprints(ctx, fmt.Sprintf("get fingerprint %q", fingerprint),
		pgFingerprintSelect+` WHERE f.fingerprint = $1 ORDER BY s.strategy`, fingerprint)
	if err != nil {
		return FingerprintStats{}, err
	}
	if len(out) == 0 {
		return FingerprintStats{}, fmt.Errorf("metastore: get fingerprint %q: %w", fingerprint, ErrNotFound)
	}
	return out[0], nil
}

// ListFingerprintStats pages over the stats rows first (so Limit counts
// fingerprints, not joined rows), newest LastSeen first.
func (s *pgStore) ListFingerprintStats(ctx context.Context, fl FingerprintFilter) ([]FingerprintStats, error) {
	f := &filter{pg: true}
	if fl.Category != "" {
		f.add("category =", fl.Category)
	}
	inner := `SELECT * FROM error_fingerprints` + f.where() + ` ORDER BY last_seen DESC, fingerprint` + f.limit(fl.Limit)
	q := `SELECT f.fingerprint, f.template, f.category, f.count, f.first_seen, f.last_seen, f.last_message,
		s.strategy, s.attempts, s.successes
		FROM (` + inner + `) f LEFT JOIN error_fingerprint_strategies s ON s.fingerprint = f.fingerprint
		ORDER BY f.last_seen DESC, f.fingerprint, s.strategy`
	return s.collectFingerprints(ctx, "list fingerprints", q, f.args...)
}
