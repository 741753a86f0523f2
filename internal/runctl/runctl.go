// Package runctl lets a component stop a bounded `agentetl run` with a
// non-zero exit code when it meets an error that no retry can fix (a missing
// table, a wrong password, an incompatible column). Benthos itself would
// retry such errors forever; for a batch job that is a hang, not resilience.
//
// In streams mode many pipelines share the process, so Fail only logs and
// the component keeps reporting its error through Benthos' retry loop.
package runctl

import (
	"context"
	"sync"
)

// HandledMetaKey is the metadata key the error_resolution output sets on the
// messages it passes to its child output. An error on such a batch is
// classified and resolved by the wrapper (retried, bisected, dead-lettered
// or escalated), so the child must not stop the run for it: a permanent
// error about one record is not a reason to end the job.
const HandledMetaKey = "agentetl_errors_handled"

var (
	mu      sync.Mutex
	enabled bool
	cancel  context.CancelFunc
	failure error
)

// Enable installs the cancel function of the run's context. Called by main
// for the `run` command only.
func Enable(c context.CancelFunc) {
	mu.Lock()
	defer mu.Unlock()
	enabled, cancel = true, c
}

// Fail records err as the reason the run must end and cancels the run. The
// first failure wins. It reports whether the run is being stopped.
func Fail(err error) bool {
	mu.Lock()
	defer mu.Unlock()
	if !enabled {
		return false
	}
	if failure == nil {
		failure = err
		cancel()
	}
	return true
}

// Err returns the recorded failure, if any.
func Err() error {
	mu.Lock()
	defer mu.Unlock()
	return failure
}

// Attempts is a component's budget of consecutive connection failures
// under `agentetl run`: a permanent error, or the Max-th failure in a row,
// stops the run (Max 0 retries forever). The caller serialises its use.
type Attempts struct {
	Max int
	n   int
}

// Fail counts err and stops the run when it is permanent or the budget is
// spent. It returns err.
func (a *Attempts) Fail(err error, permanent bool) error {
	if permanent {
		Fail(err)
		return err
	}
	a.n++
	if a.Max > 0 && a.n >= a.Max {
		Fail(err)
	}
	return err
}

// Reset starts the count over: only consecutive failures count.
func (a *Attempts) Reset() { a.n = 0 }
