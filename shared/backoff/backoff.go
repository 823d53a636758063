// Package backoff is the one retry-delay policy of the repository: exponential backoff with multiplicative
// jitter and a floor from the server (Retry-After).
//
// Atlassian() is the policy Atlassian recommends for its cloud APIs (../shared/reference/jira-cloud.md §4,
// "Recommended handling"): start at 2 s, double per retry, cap at 30 s, multiply by a random factor in
// [0.7, 1.3], at most 4 retries, and never wait less than Retry-After. Other callers (token refresh, DynamoDB
// transaction conflicts) use the same Policy with their own Base and Max.
//
// Typical loop:
//
//	p := backoff.Atlassian()
//	for attempt := 0; ; attempt++ {
//		retryAfter, err := call()
//		if err == nil || !retryable(err) || !p.Allows(attempt) {
//			return err
//		}
//		if werr := p.Wait(ctx, attempt, retryAfter); werr != nil {
//			return errors.Join(err, werr)
//		}
//	}
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Default jitter range: Atlassian's pseudocode multiplies every delay by a random factor in [0.7, 1.3].
const (
	DefaultJitterLow  = 0.7
	DefaultJitterHigh = 1.3
)

// Policy describes a retry schedule. Zero jitter bounds mean the default [0.7, 1.3]; Retries zero means no
// retry at all (Allows is always false).
type Policy struct {
	// Base is the delay before the first retry (attempt 0); each later retry doubles it.
	Base time.Duration
	// Max caps the doubled delay before jitter, so a delay never exceeds Max × JitterHigh (plus Retry-After).
	Max time.Duration
	// Retries is how many retries Allows permits after the first attempt.
	Retries int
	// JitterLow and JitterHigh bound the random factor applied to every delay.
	JitterLow, JitterHigh float64
}

// Atlassian returns Atlassian's recommended policy for its REST APIs: 2 s doubling to at most 30 s, jitter
// ×[0.7, 1.3], at most 4 retries.
func Atlassian() Policy {
	return Policy{Base: 2 * time.Second, Max: 30 * time.Second, Retries: 4}
}

// Allows reports whether a retry may follow failed attempt number attempt (0 = the first call).
func (p Policy) Allows(attempt int) bool { return attempt >= 0 && attempt < p.Retries }

// Delay is the wait before retrying after failed attempt number attempt (0-based). The exponential part is
// min(Base·2^attempt, Max) times a random factor in [JitterLow, JitterHigh]. retryAfter (the server's
// Retry-After, zero if none) is a floor: when it is longer, the wait is retryAfter stretched by the upper half of
// the jitter only, so clients told the same Retry-After do not all return in the same instant.
func (p Policy) Delay(attempt int, retryAfter time.Duration) time.Duration {
	lo, hi := p.jitter()
	d := p.exp(attempt)
	wait := time.Duration(float64(d) * (lo + (hi-lo)*jitterFactor()))
	if retryAfter > wait {
		up := max(hi, 1) - 1
		wait = retryAfter + time.Duration(float64(retryAfter)*up*jitterFactor())
	}
	return wait
}

// jitterFactor is uniform in [0, 1). Jitter only decorrelates clients that failed together; nobody gains by
// predicting it, so the fast, lock-free math/rand/v2 generator is the right one (crypto/rand would add a
// system call per retry for nothing).
func jitterFactor() float64 {
	return rand.Float64() //nolint:gosec // G404: jitter is not a secret (see above)
}

// Bounds returns the shortest and longest Delay(attempt, 0) can return.
func (p Policy) Bounds(attempt int) (lo, hi time.Duration) {
	jl, jh := p.jitter()
	d := p.exp(attempt)
	return time.Duration(float64(d) * jl), time.Duration(float64(d) * jh)
}

func (p Policy) exp(attempt int) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	d := p.Base
	for i := 0; i < attempt && (p.Max <= 0 || d < p.Max); i++ {
		if d > time.Duration(1<<62)/2 {
			break // would overflow; Max (if any) applies below
		}
		d *= 2
	}
	if p.Max > 0 && d > p.Max {
		d = p.Max
	}
	return d
}

func (p Policy) jitter() (lo, hi float64) {
	lo, hi = p.JitterLow, p.JitterHigh
	if lo <= 0 && hi <= 0 {
		return DefaultJitterLow, DefaultJitterHigh
	}
	if lo <= 0 {
		lo = DefaultJitterLow
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// Wait sleeps Delay(attempt, retryAfter), or until ctx ends (then it returns ctx's error).
func (p Policy) Wait(ctx context.Context, attempt int, retryAfter time.Duration) error {
	return Sleep(ctx, p.Delay(attempt, retryAfter))
}

// Sleep waits d, or until ctx ends (then it returns ctx's error). A non-positive d returns at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
