// Package checkpoint tracks which read positions are safe to persist. Input
// plugins hand out batches in order but the pipeline may acknowledge them out
// of order (parallel outputs, retries); a position may only be stored once
// every batch before it is acknowledged too, or a crash would skip rows.
package checkpoint

import (
	"context"
	"sync"
)

// SaveFunc persists a position. It is called from ack functions, in position
// order, never concurrently, and only with contiguous-prefix positions.
type SaveFunc func(ctx context.Context, position string) error

// Tracker turns out-of-order acknowledgements into an in-order commit
// stream. The zero value is not usable; call New.
type Tracker struct {
	mu        sync.Mutex
	next      uint64            // sequence number handed to the next Track call
	committed uint64            // every sequence below this is acknowledged
	acked     map[uint64]bool   // acknowledged but not yet contiguous
	positions map[uint64]string // position reached by each outstanding sequence
	reached   string            // furthest position of the acknowledged prefix
	last      string            // last position successfully saved
	save      SaveFunc
}

// New returns a tracker that calls save with each new contiguous position.
func New(save SaveFunc) *Tracker {
	return &Tracker{acked: map[uint64]bool{}, positions: map[uint64]string{}, save: save}
}

// Track registers a batch that, once acknowledged along with everything
// before it, means position has been fully processed. It returns the
// sequence number to pass to Ack.
func (t *Tracker) Track(position string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	seq := t.next
	t.next++
	t.positions[seq] = position
	return seq
}

// Ack marks seq as acknowledged and, if that extends the contiguous prefix,
// saves the furthest position of the prefix. A save error is returned and the
// position stays pending, so a later Ack retries persisting it.
func (t *Tracker) Ack(ctx context.Context, seq uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.acked[seq] = true
	for t.acked[t.committed] {
		t.reached = t.positions[t.committed]
		delete(t.acked, t.committed)
		delete(t.positions, t.committed)
		t.committed++
	}
	if t.reached == t.last {
		return nil
	}
	if err := t.save(ctx, t.reached); err != nil {
		return err
	}
	t.last = t.reached
	return nil
}

// Pending is the number of tracked batches not yet in the committed prefix.
func (t *Tracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int(t.next - t.committed)
}

// Last is the last position successfully saved.
func (t *Tracker) Last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}
