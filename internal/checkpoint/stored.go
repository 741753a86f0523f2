package checkpoint

import (
	"context"
	"errors"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/pgutil"
	"github.com/agentetl/agentetl/internal/redact"
)

// Stored is a checkpoint kept in the metadata store: the store, the tracker
// that saves into it, and the position a previous run reached.
type Stored struct {
	Store   metastore.Store
	Tracker *Tracker
	// Resumed is the stored position the reader was moved to, "" when
	// the run starts from the beginning.
	Resumed string
}

// OpenStored opens the checkpoint store at dsn and reads the position saved
// under id; unless reset is set or nothing is saved, it hands the position
// to resume (the reader moves past it). The tracker saves new positions
// under id. On error nothing is left open. A store that cannot be opened is
// a permanent error: retrying will not make the DSN valid.
func OpenStored(ctx context.Context, dsn, id string, reset bool, resume func(position string) error) (*Stored, error) {
	st, err := metastore.Open(ctx, dsn)
	if err != nil {
		return nil, pgutil.Permanentf("open checkpoint store", "%s", redact.String(err.Error()))
	}
	s := &Stored{Store: st, Tracker: New(func(ctx context.Context, position string) error {
		return st.SaveCheckpoint(ctx, id, position)
	})}
	pos, err := st.GetCheckpoint(ctx, id)
	switch {
	case errors.Is(err, metastore.ErrNotFound) || (err == nil && reset):
	case err != nil:
		_ = st.Close()
		return nil, err
	default:
		if err := resume(pos); err != nil {
			_ = st.Close()
			return nil, err
		}
		s.Resumed = pos
	}
	return s, nil
}
