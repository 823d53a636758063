package jira

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"jiraexport/shared/ratebudget"
)

// Sentinels for errors.Is.
var (
	ErrRateLimited  = errors.New("jira: rate limited")
	ErrUnauthorized = errors.New("jira: unauthorized")
	// ErrReauthRequired matches any failure that only a new consent can cure: a 401 from the gateway (token of a
	// revoked grant, site access removed, scope missing) or a token-source error that Options.IsReauth recognises.
	ErrReauthRequired = errors.New("jira: re-authorisation required")
	// ErrCursorExpired: Jira refused a nextPageToken (400 on a request that carried one): the page sequence must
	// restart from the caller's own watermark.
	ErrCursorExpired = errors.New("jira: page token invalid or expired")
	// ErrNotFound: 404, e.g. an issue deleted or hidden between a search and its follow-up call.
	ErrNotFound = errors.New("jira: not found")
)

// Kind is what a failed call means to its caller.
type Kind int

// The kinds of failure.
const (
	// KindPermanent: the same request will fail again (400, 403, 404, 410, a decode error).
	KindPermanent Kind = iota
	// KindRetryable: a transient failure (5xx, a transport error, a truncated answer): retry with backoff.
	KindRetryable
	// KindRateLimited: a 429; Wait says how long, Quota whether it is the hourly points quota.
	KindRateLimited
	// KindReauth: the grant no longer works; stop, never retry, tell the user to consent again.
	KindReauth
	// KindCancelled: the caller's context ended.
	KindCancelled
)

func (k Kind) String() string {
	switch k {
	case KindRetryable:
		return "retryable"
	case KindRateLimited:
		return "rate_limited"
	case KindReauth:
		return "reauth_required"
	case KindCancelled:
		return "cancelled"
	}
	return "permanent"
}

// Classify says what err, returned by this package, means.
func Classify(err error) Kind {
	if err == nil {
		return KindPermanent
	}
	var rl *RateLimitError
	var ue *UnauthorizedError
	var se *StatusError
	var tk *TokenError
	switch {
	case errors.As(err, &rl):
		return KindRateLimited
	case errors.As(err, &ue), errors.Is(err, ErrReauthRequired):
		return KindReauth
	case errors.As(err, &tk):
		if tk.Reauth {
			return KindReauth
		}
		return KindRetryable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return KindCancelled
	case errors.As(err, &se):
		switch se.Status {
		case 500, 502, 503, 504:
			return KindRetryable
		}
	}
	return KindPermanent
}

// Wait is how long to wait before the call may succeed: Retry-After, or the time until the reset (zero when err
// says nothing).
func Wait(err error, now time.Time) time.Duration {
	var rl *RateLimitError
	if !errors.As(err, &rl) {
		return 0
	}
	w := rl.RetryAfterLeft()
	if !rl.Reset.IsZero() {
		toReset := rl.Reset.Sub(now)
		if rl.Quota() && ratebudget.ResetEndsQuota(now, w, rl.Reset) {
			return toReset
		}
		w = max(w, toReset)
	}
	return max(w, 0)
}

// RateLimitError is a 429 from Jira.
type RateLimitError struct {
	Endpoint string
	// Reason is the RateLimit-Reason header, e.g. jira-quota-global-based, jira-quota-tenant-based,
	// jira-burst-based ("" if absent).
	Reason string
	// RetryAfter is the Retry-After header (zero if absent).
	RetryAfter time.Duration
	// Reset is X-RateLimit-Reset, or now + RetryAfter when that header is absent (zero if neither is known).
	Reset time.Time
	// NearLimit is X-RateLimit-NearLimit: true.
	NearLimit bool
	// At is when the answer came, on this process's monotonic clock (zero if unknown): Retry-After counts from
	// it, however long the error waits before someone acts on it (work still in flight, a prefetched page).
	At time.Time
}

// RetryAfterLeft is what is left of Retry-After now.
func (e *RateLimitError) RetryAfterLeft() time.Duration {
	if e.At.IsZero() {
		return e.RetryAfter
	}
	return max(0, e.RetryAfter-time.Since(e.At))
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("jira: %s: status 429 (reason %q, retry after %s)", e.Endpoint, e.Reason, e.RetryAfter)
}
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// Quota reports whether an hourly points quota is spent: every call should pause until Reset.
func (e *RateLimitError) Quota() bool { return strings.HasPrefix(e.Reason, "jira-quota") }

// Global reports whether the spent quota is the app-wide one (every site pauses) rather than one tenant's.
func (e *RateLimitError) Global() bool { return e.Reason == "jira-quota-global-based" }

// UnauthorizedError is a 401: the token lacks a scope, its grant was revoked, or the grant no longer covers the
// site.
type UnauthorizedError struct {
	Endpoint      string
	scopeMismatch bool
}

func (e *UnauthorizedError) Error() string {
	return "jira: " + e.Endpoint + ": status 401"
}
func (e *UnauthorizedError) Is(target error) bool {
	return target == ErrUnauthorized || target == ErrReauthRequired
}

// ScopeMismatch reports whether Jira said the token's scopes do not cover the call.
func (e *UnauthorizedError) ScopeMismatch() bool { return e.scopeMismatch }

// StatusError is any other non-2xx answer (or a transport failure, as a 503).
type StatusError struct {
	Endpoint string
	Status   int
	// Code is Jira's numeric code when its body carries one, or a fixed word of ours (transport,
	// response_interrupted).
	Code string
	// Messages are Jira's error messages. They can quote the user's JQL values and names: never log them and
	// never put them in an error's text; only show them to the user whose request caused them.
	Messages []string
	cursor   bool
	cause    string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("jira: %s: status %d", e.Endpoint, e.Status)
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.cause != "" {
		s += ": " + e.cause
	}
	return s
}

// Is lets errors.Is find ErrCursorExpired and ErrNotFound.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrCursorExpired:
		return e.cursor && e.Status == 400
	case ErrNotFound:
		return e.Status == 404
	}
	return false
}

// TokenError is a failure of the token source; Reauth says the grant is dead.
type TokenError struct {
	Reauth bool
	err    error
}

func (e *TokenError) Error() string { return "jira: access token: " + e.err.Error() }
func (e *TokenError) Unwrap() error { return e.err }
func (e *TokenError) Is(target error) bool {
	return e.Reauth && target == ErrReauthRequired
}

// transportKind names a transport failure without its URL.
func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op
	}
	return "connection failed"
}

type errorCollection struct {
	ErrorMessages []string          `json:"errorMessages"`
	Errors        map[string]string `json:"errors"`
	Message       string            `json:"message"`
	Code          *int              `json:"code"`
}
