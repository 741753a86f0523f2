package kafkautil

import "sync"

// Tracker turns out-of-order acknowledgements of one partition's batches
// into the offset that is safe to commit. Kafka offsets are a single cursor
// per partition: committing offset N claims that every record below N is
// done, so the cursor may only advance over a contiguous prefix of
// acknowledged batches. A batch acknowledged ahead of an older unacknowledged
// one is remembered and folded in once the gap closes.
//
// The zero value is not usable; call NewTracker.
type Tracker struct {
	mu        sync.Mutex
	next      uint64           // sequence handed to the next Track call
	done      uint64           // every sequence below this is acknowledged
	acked     map[uint64]bool  // acknowledged, waiting for the prefix
	ends      map[uint64]int64 // end offset (last record + 1) of each outstanding batch
	epochs    map[uint64]int32 // leader epoch of each outstanding batch's last record
	committed int64            // offset safe to commit; -1 until a batch is done
	epoch     int32            // leader epoch that goes with committed
}

// NewTracker returns an empty tracker. Nothing is committable until the first
// tracked batch is acknowledged.
func NewTracker() *Tracker {
	return &Tracker{acked: map[uint64]bool{}, ends: map[uint64]int64{}, epochs: map[uint64]int32{}, committed: -1, epoch: -1}
}

// Track registers a batch handed to the pipeline whose last record has
// offset last and leader epoch epoch. It returns the sequence to pass to Ack.
// Batches must be tracked in offset order.
func (t *Tracker) Track(last int64, epoch int32) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	seq := t.next
	t.next++
	t.ends[seq] = last + 1
	t.epochs[seq] = epoch
	return seq
}

// Ack marks seq acknowledged and reports whether the committable offset moved.
// Acknowledging an unknown or already folded sequence is a no-op.
func (t *Tracker) Ack(seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq < t.done || seq >= t.next {
		return false
	}
	t.acked[seq] = true
	moved := false
	for t.acked[t.done] {
		t.committed, t.epoch = t.ends[t.done], t.epochs[t.done]
		delete(t.acked, t.done)
		delete(t.ends, t.done)
		delete(t.epochs, t.done)
		t.done++
		moved = true
	}
	return moved
}

// Committable is the offset to commit (the next record to consume) and its
// leader epoch; ok is false while no batch has completed the prefix.
func (t *Tracker) Committable() (offset int64, epoch int32, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.committed, t.epoch, t.committed >= 0
}

// Pending is the number of tracked batches not yet in the acknowledged prefix.
func (t *Tracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int(t.next - t.done)
}
