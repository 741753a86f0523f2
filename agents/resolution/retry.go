package resolution

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// RetryPolicy is exponential backoff with jitter, bounded both by the number
// of attempts and by the total time spent. It is used for transient
// categories only.
type RetryPolicy struct {
	// MaxAttempts counts every try, the first included. 1 means no retry.
	MaxAttempts     int           `json:"maxAttempts"`
	InitialInterval time.Duration `json:"initialInterval"`
	MaxInterval     time.Duration `json:"maxInterval"`
	// MaxElapsed bounds the time from the first try to the start of the
	// last one; a retry that would start later is not made.
	MaxElapsed time.Duration `json:"maxElapsed"`
	Multiplier float64       `json:"multiplier"`
	// Jitter is the fraction (0..1) of each delay that is randomised.
	Jitter float64 `json:"jitter"`
}

// DefaultRetryPolicy: 6 attempts, 200ms doubling to at most 5s, within 30s.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 6, InitialInterval: 200 * time.Millisecond, MaxInterval: 5 * time.Second,
		MaxElapsed: 30 * time.Second, Multiplier: 2, Jitter: 0.3}
}

func (p RetryPolicy) normalised() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.InitialInterval <= 0 {
		p.InitialInterval = d.InitialInterval
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = d.MaxInterval
	}
	if p.MaxInterval < p.InitialInterval {
		p.MaxInterval = p.InitialInterval
	}
	if p.Multiplier < 1 {
		p.Multiplier = d.Multiplier
	}
	if p.Jitter < 0 || p.Jitter > 1 {
		p.Jitter = d.Jitter
	}
	return p
}

// Delay is the wait before retry number n (1 for the first retry).
func (p RetryPolicy) Delay(n int) time.Duration {
	p = p.normalised()
	if n < 1 {
		n = 1
	}
	d := float64(p.InitialInterval) * math.Pow(p.Multiplier, float64(n-1))
	if d > float64(p.MaxInterval) {
		d = float64(p.MaxInterval)
	}
	if p.Jitter > 0 {
		// Full range [d*(1-j), d*(1+j)), so concurrent writers spread out.
		d = d * (1 - p.Jitter + 2*p.Jitter*rand.Float64())
	}
	return time.Duration(d)
}

// Retrier runs one operation under a policy.
type Retrier struct {
	Policy RetryPolicy
	// Retryable decides whether an error is worth another try; nil means
	// Classify(err).Transient.
	Retryable func(error) bool
	// OnRetry, if set, is called before each wait.
	OnRetry func(attempt int, err error, wait time.Duration)
	// Sleep waits; nil uses a timer honouring ctx.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Do runs op until it succeeds, returns a non-retryable error, or the
// policy's attempts or time are used up. It returns the number of attempts
// made and the last error.
func (r Retrier) Do(ctx context.Context, op func(ctx context.Context, attempt int) error) (int, error) {
	p := r.Policy.normalised()
	retryable := r.Retryable
	if retryable == nil {
		retryable = func(err error) bool { return Classify(err).Transient }
	}
	sleep := r.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	start := time.Now()
	var err error
	for attempt := 1; ; attempt++ {
		if err = op(ctx, attempt); err == nil {
			return attempt, nil
		}
		if ctx.Err() != nil || !retryable(err) || attempt >= p.MaxAttempts {
			return attempt, err
		}
		wait := p.Delay(attempt)
		if p.MaxElapsed > 0 && time.Since(start)+wait > p.MaxElapsed {
			return attempt, err
		}
		if r.OnRetry != nil {
			r.OnRetry(attempt, err, wait)
		}
		if serr := sleep(ctx, wait); serr != nil {
			return attempt, err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
