package attachments

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"jiraexport/shared/ratebudget"
)

// Error kinds callers branch on with errors.Is. Every error Transfer returns is one of ErrInterrupted, ErrReauth,
// ErrRateLimited, ErrRetryable or ErrPermanent (ErrGone and ErrSizeMismatch are permanent too), or an error of
// the token source, passed through unchanged.
//
// This classification covers the two requests of a download only (the gateway's 303 and the media host). It
// mirrors shared/jira's (being reworked on branch export) and should merge into it: see the package notes.
var (
	// ErrInterrupted: the deadline (less the margin) came first. Keep Result.Resume (if any) in the checkpoint.
	ErrInterrupted = errors.New("attachments: transfer interrupted by the deadline")
	// ErrReauth: the gateway refused the bearer token (401): the connection needs a new grant or token.
	ErrReauth = errors.New("attachments: unauthorized")
	// ErrRateLimited: a 429 that this package did not wait out (a spent quota, or a wait beyond MaxWait).
	ErrRateLimited = errors.New("attachments: rate limited")
	// ErrRetryable: a transient failure (5xx, network, S3) that survived this call's retries; try again later.
	ErrRetryable = errors.New("attachments: transient failure")
	// ErrPermanent: retrying cannot help (403, an unexpected answer, a bad id).
	ErrPermanent = errors.New("attachments: permanent failure")
	// ErrGone: the attachment no longer exists or is no longer visible (404): treat it as removed.
	ErrGone = fmt.Errorf("attachments: attachment gone: %w", ErrPermanent)
	// ErrSizeMismatch: the bytes served differ from Jira's size. The upload was aborted; nothing is left in S3.
	ErrSizeMismatch = fmt.Errorf("attachments: size differs from Jira's: %w", ErrPermanent)
)

// RateLimitError is a 429 from the gateway or the media host, with Atlassian's headers.
type RateLimitError struct {
	Host  string // "gateway" or "media"
	Limit ratebudget.Limit
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("attachments: %s rate limited (reason %q, retry after %s)", e.Host, e.Limit.Reason, e.Limit.RetryAfter)
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// ResumeAt is when requests in the limit's scope may start again (ratebudget.Limit.ResumeAt).
func (e *RateLimitError) ResumeAt(now time.Time) time.Time { return e.Limit.ResumeAt(now) }

// StatusError is an unexpected HTTP status from one of the two hosts. Jira's message texts are not kept: they
// may quote issue content, and errors end up in logs.
type StatusError struct {
	Host   string // "gateway" or "media"
	Status int
	kind   error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("attachments: %s answered %d: %v", e.Host, e.Status, e.kind)
}

// Unwrap exposes the kind (ErrReauth, ErrGone, ErrRetryable, ErrPermanent).
func (e *StatusError) Unwrap() error { return e.kind }

// classify maps an answer's status to an error kind. host is "gateway" or "media". The media host's 401/403 are
// retryable: its URLs are signed and expire (600 s), and the next attempt takes a fresh 303.
func classify(host string, resp *http.Response, now time.Time) error {
	s := resp.StatusCode
	switch {
	case s == http.StatusTooManyRequests:
		return &RateLimitError{Host: host, Limit: ratebudget.ParseLimit(resp.Header, now)}
	case s == http.StatusUnauthorized && host == hostGateway:
		return &StatusError{Host: host, Status: s, kind: ErrReauth}
	case s == http.StatusUnauthorized || s == http.StatusForbidden && host == hostMedia:
		return &StatusError{Host: host, Status: s, kind: ErrRetryable}
	case s == http.StatusNotFound || s == http.StatusGone:
		return &StatusError{Host: host, Status: s, kind: ErrGone}
	case s == http.StatusRequestTimeout || s >= 500:
		return &StatusError{Host: host, Status: s, kind: ErrRetryable}
	}
	return &StatusError{Host: host, Status: s, kind: ErrPermanent}
}

const (
	hostGateway = "gateway"
	hostMedia   = "media"
)
