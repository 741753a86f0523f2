// Package pagequeue is the delivery bookkeeping of an input that reads a
// table in pages (the postgres and sqlite inputs): which pages are out
// downstream, which were rejected and must be sent again, and when the
// input may report end of input.
//
// A rejected page is sent again, after a backoff that grows with its
// rejections, before any new page; it is never dropped. End of input is
// reported only once the source is exhausted and every emitted page has
// been acknowledged, because a page rejected after the last read must still
// be replayed.
package pagequeue

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// ErrEndOfInput is returned by Next once the source is exhausted and every
// page has been acknowledged.
var ErrEndOfInput = errors.New("pagequeue: end of input")

// Page is one page in flight, with what the input tracks about it.
type Page[P any] struct {
	Page P
	// Seq and Tracked are the input's checkpoint tracker entry, if any.
	Seq     uint64
	Tracked bool
	// Nacks counts how often downstream rejected the page.
	Nacks int
}

// Queue holds the pages of one input. The zero value is not ready: use New.
type Queue[P any] struct {
	mu          sync.Mutex
	replay      []*Page[P]
	outstanding int
	eof         bool
	notify      chan struct{} // closed and replaced on every ack or nack
	// MaxBackoff bounds the wait before a rejected page is sent again.
	MaxBackoff time.Duration
}

// New returns an empty queue.
func New[P any]() *Queue[P] {
	return &Queue[P]{notify: make(chan struct{}), MaxBackoff: 5 * time.Second}
}

// Next returns the page to emit next: a rejected page first (after its
// backoff), else a new one from read. read returns io.EOF when the source
// is exhausted. After the source is exhausted Next waits for outstanding
// pages, replays those rejected, and returns ErrEndOfInput when none is
// left. The returned page counts as outstanding until Done is called.
func (q *Queue[P]) Next(ctx context.Context, read func(context.Context) (*Page[P], error)) (*Page[P], error) {
	for {
		q.mu.Lock()
		if len(q.replay) > 0 {
			pp := q.replay[0]
			q.replay = q.replay[1:]
			q.mu.Unlock()
			// Back off on a page that keeps being rejected, so a failing
			// destination is not hammered.
			wait := min(time.Duration(pp.Nacks)*100*time.Millisecond, q.MaxBackoff)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				q.mu.Lock()
				q.replay = append([]*Page[P]{pp}, q.replay...)
				q.mu.Unlock()
				return nil, ctx.Err()
			}
			q.emitted()
			return pp, nil
		}
		if q.eof {
			if q.outstanding == 0 {
				q.mu.Unlock()
				return nil, ErrEndOfInput
			}
			ch := q.notify
			q.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		q.mu.Unlock()

		pp, err := read(ctx)
		if errors.Is(err, io.EOF) {
			q.mu.Lock()
			q.eof = true
			q.mu.Unlock()
			continue
		}
		if err != nil {
			return nil, err
		}
		q.emitted()
		return pp, nil
	}
}

func (q *Queue[P]) emitted() {
	q.mu.Lock()
	q.outstanding++
	q.mu.Unlock()
}

// Done records downstream's answer for pp: a rejection (err != nil) queues
// it to be sent again; an acknowledgement is final.
func (q *Queue[P]) Done(pp *Page[P], err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err != nil {
		pp.Nacks++
		q.replay = append(q.replay, pp)
	}
	q.outstanding--
	close(q.notify)
	q.notify = make(chan struct{})
}
