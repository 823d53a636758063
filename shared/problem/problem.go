// Package problem is the API's one error type and its RFC 9457 (application/problem+json) rendering.
//
// Code decides the status and the stable type URI; Detail and Errors are written for the caller. Internal causes
// are wrapped (errors.Unwrap) and only ever logged, never written to a response.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

// ContentType is the media type of every error body.
const ContentType = "application/problem+json"

// TypeBase prefixes every problem type URI. The URIs are identifiers, stable across releases; they need not
// resolve.
const TypeBase = "https://jiraexport.dev/problems/"

// Code is what callers branch on. Its set is small on purpose.
type Code string

// The codes, their slugs (Code value), titles and statuses are one table: see codes.
const (
	Invalid              Code = "invalid"
	NotFound             Code = "not-found"
	Conflict             Code = "conflict"
	PreconditionFailed   Code = "precondition-failed"
	PreconditionRequired Code = "precondition-required"
	Unauthorized         Code = "unauthorized"
	ReauthRequired       Code = "reauth-required"
	UnsupportedMediaType Code = "unsupported-media-type"
	TooLarge             Code = "too-large"
	MethodNotAllowed     Code = "method-not-allowed"
	RateLimited          Code = "rate-limited"
	Unavailable          Code = "upstream-unavailable"
	Internal             Code = "internal"
)

type entry struct {
	status int
	title  string
}

var codes = map[Code]entry{
	Invalid:              {http.StatusBadRequest, "The request is invalid"},
	NotFound:             {http.StatusNotFound, "Not found"},
	Conflict:             {http.StatusConflict, "Conflict with the current state"},
	PreconditionFailed:   {http.StatusPreconditionFailed, "The resource changed since it was read"},
	PreconditionRequired: {http.StatusPreconditionRequired, "If-Match is required"},
	Unauthorized:         {http.StatusUnauthorized, "Missing or invalid API key"},
	ReauthRequired:       {http.StatusConflict, "The connection must be re-authorised"},
	UnsupportedMediaType: {http.StatusUnsupportedMediaType, "Unsupported media type"},
	TooLarge:             {http.StatusRequestEntityTooLarge, "Request body too large"},
	MethodNotAllowed:     {http.StatusMethodNotAllowed, "Method not allowed"},
	RateLimited:          {http.StatusServiceUnavailable, "Jira's rate limit is exhausted; retry later"},
	Unavailable:          {http.StatusBadGateway, "Jira did not answer as expected"},
	Internal:             {http.StatusInternalServerError, "Internal error"},
}

// Codes lists every code (for documentation and tests).
func Codes() []Code {
	out := make([]Code, 0, len(codes))
	for c := range codes {
		out = append(out, c)
	}
	return out
}

// Status is the HTTP status of c; unknown codes are internal errors.
func (c Code) Status() int {
	if e, ok := codes[c]; ok {
		return e.status
	}
	return http.StatusInternalServerError
}

// Type is c's stable type URI.
func (c Code) Type() string {
	if _, ok := codes[c]; !ok {
		c = Internal
	}
	return TypeBase + string(c)
}

// FieldError names one request field (a JSON pointer-ish dotted path, e.g. "schedule.expression") and why it is
// wrong.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error is a problem with a code, a caller-facing detail and optional field errors. Cause, if any, is for logs.
type Error struct {
	Code   Code
	Detail string
	Errors []FieldError
	// RetryAfter, when positive, is sent as Retry-After (seconds).
	RetryAfter int
	Cause      error
}

func (e *Error) Error() string {
	s := string(e.Code)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Cause }

// New returns an Error with a formatted detail.
func New(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Detail: fmt.Sprintf(format, args...)}
}

// Fields returns an Invalid error listing field errors.
func Fields(detail string, errs ...FieldError) *Error {
	return &Error{Code: Invalid, Detail: detail, Errors: errs}
}

// Wrap returns an Internal error hiding cause from the caller.
func Wrap(cause error) *Error { return &Error{Code: Internal, Cause: cause} }

// CodeOf returns the code of err's first *Error, or Internal.
func CodeOf(err error) Code {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return Internal
}

// Body is the JSON document (RFC 9457 members plus the "errors" extension).
type Body struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// BodyOf renders err for the caller. Anything that is not an *Error, and every Internal error, becomes a bare
// internal problem: its text never reaches the response.
func BodyOf(err error) Body {
	var pe *Error
	if !errors.As(err, &pe) {
		pe = &Error{Code: Internal}
	}
	c := pe.Code
	if _, ok := codes[c]; !ok {
		c = Internal
	}
	b := Body{Type: c.Type(), Title: codes[c].title, Status: c.Status()}
	if c != Internal {
		b.Detail = pe.Detail
		b.Errors = pe.Errors
	}
	return b
}

// Write sends err as a problem document. Server-side errors (5xx) are logged with their cause; client errors are
// logged at debug level without their detail, which may echo request content.
func Write(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	b := BodyOf(err)
	if r != nil {
		b.Instance = r.URL.Path
	}
	if log != nil {
		ctx := r.Context()
		if b.Status >= 500 {
			log.ErrorContext(ctx, "request failed", "status", b.Status, "problem", string(CodeOf(err)), "error", err)
		} else {
			log.DebugContext(ctx, "request refused", "status", b.Status, "problem", string(CodeOf(err)))
		}
	}
	var pe *Error
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(pe.RetryAfter))
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(b.Status)
	_ = json.NewEncoder(w).Encode(b)
}
