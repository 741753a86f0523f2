// Package pgcdc captures row changes from PostgreSQL with logical
// replication (the pgoutput plugin over a replication connection) and hands
// them out in batches whose acknowledgement, in order, is the only thing that
// moves the replication slot's confirmed position.
//
// It manages the publication and the slot, can take an initial snapshot that
// is consistent with the slot's start, decodes pgoutput messages into typed
// rows, surfaces relation (DDL) changes as events and checks what cannot
// work (wal_level, replica identity) before anything is created. It has no
// Benthos import: plugins/postgres/input_postgres_cdc.go is the thin
// Benthos face of it.
package pgcdc

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/agentetl/agentetl/internal/pgutil"
)

// Config describes what to capture.
type Config struct {
	// DSN of the source database (a normal DSN: the replication connection
	// is derived from it).
	DSN string
	// Slot is the logical replication slot's name.
	Slot string
	// Publication is the publication's name.
	Publication string
	// Tables are the tables to capture, `name` or `schema.name`.
	Tables []string
	// CreateSlot creates the slot when it does not exist.
	CreateSlot bool
	// Snapshot emits the existing rows (operation read) before the stream.
	Snapshot bool
	// State remembers whether the initial snapshot finished; required when
	// Snapshot is set.
	State StateStore
	// BatchSize bounds the events of one batch (default 1000).
	BatchSize int
	// BatchPeriod is how long a batch waits for more events after its first
	// one (default 100ms).
	BatchPeriod time.Duration
	// StandbyInterval is how often the confirmed position is reported to
	// the server (default 10s).
	StandbyInterval time.Duration
	// Resume is a position known to be fully acknowledged (from an earlier
	// stream of this process); streaming starts at the later of it and the
	// slot's confirmed position.
	Resume LSN
	// Logger receives operational messages; nil logs nowhere.
	Logger Logger
}

// Logger is the subset of a logger the stream uses.
type Logger interface {
	Infof(format string, args ...any)
	Warnf(format string, args ...any)
}

type nopLogger struct{}

func (nopLogger) Infof(string, ...any) {}
func (nopLogger) Warnf(string, ...any) {}

// StateStore keeps the small durable state of a capture: whether the
// initial snapshot of a slot finished.
type StateStore interface {
	Get(ctx context.Context, key string) (value string, found bool, err error)
	Put(ctx context.Context, key, value string) error
}

// slotPattern is PostgreSQL's own rule for replication slot names. Slot
// names are pasted into replication commands, which have no parameters, so
// nothing else may pass.
var slotPattern = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// ValidSlotName reports whether s can name a replication slot.
func ValidSlotName(s string) bool { return slotPattern.MatchString(s) }

func (c *Config) validate() ([]pgutil.Ident, error) {
	const op = "configure postgres_cdc"
	if !ValidSlotName(c.Slot) {
		return nil, pgutil.Permanentf(op, "slot %q is not a valid replication slot name: use 1 to 63 lower-case letters, digits and underscores", c.Slot)
	}
	if c.Publication == "" {
		return nil, pgutil.Permanentf(op, "publication must not be empty")
	}
	if len(c.Tables) == 0 {
		return nil, pgutil.Permanentf(op, "tables must list at least one table")
	}
	ids := make([]pgutil.Ident, 0, len(c.Tables))
	for _, t := range c.Tables {
		id, err := pgutil.ParseIdent(t)
		if err != nil {
			return nil, pgutil.Permanentf(op, "tables: %w", err)
		}
		ids = append(ids, id)
	}
	if c.Snapshot && c.State == nil {
		return nil, pgutil.Permanentf(op, "snapshot needs a state store")
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.BatchPeriod <= 0 {
		c.BatchPeriod = 100 * time.Millisecond
	}
	if c.StandbyInterval <= 0 {
		c.StandbyInterval = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = nopLogger{}
	}
	return ids, nil
}

// snapshotKey is the state-store key of a slot's snapshot status.
func snapshotKey(slot string) string { return "postgres_cdc:snapshot:" + slot }

func errorf(op, format string, args ...any) error {
	return &pgutil.Error{Op: op, Err: fmt.Errorf(format, args...)}
}
