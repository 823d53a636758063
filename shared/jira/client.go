// Package jira is a small client for the Jira Cloud REST API v3 behind Atlassian's API gateway
// (ATLASSIAN_API_URL + "/ex/jira/{cloudId}"), authenticated with a connection's OAuth 2.0 (3LO) token.
//
// Every call has a timeout. Rate limits (429) come back as *RateLimitError carrying Atlassian's RateLimit-Reason,
// Retry-After and reset time; only safe calls (reads, including read-only POSTs such as /jql/parse) are retried,
// a bounded number of times, after at least Retry-After with jitter. Redirects are never followed, so the bearer
// token is never sent anywhere but the gateway.
package jira

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Options tune a Client. Zero fields take the defaults named in their comments.
type Options struct {
	// HTTPClient defaults to a client with no redirects; its CheckRedirect is always replaced so redirects are
	// never followed.
	HTTPClient *http.Client
	// Timeout bounds each attempt; default 10 s.
	Timeout time.Duration
	// MaxRetries for safe calls on 429 and 5xx; default 3 (so at most 4 attempts).
	MaxRetries int
	// MaxWait is the longest single wait before a retry; a longer Retry-After (a spent hourly quota) is
	// returned to the caller instead. Default 30 s.
	MaxWait time.Duration
	// BaseBackoff is the first backoff, doubled per retry; default 2 s.
	BaseBackoff time.Duration
	// Sleep waits d or until ctx ends; tests replace it. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now defaults to time.Now.
	Now func() time.Time
}

// Client calls Jira for one connection (one token source). It is safe for concurrent use.
type Client struct {
	api  string
	ts   oauth2.TokenSource
	http *http.Client
	o    Options
}

// MaxResponseBytes bounds a JSON response body read into memory.
const MaxResponseBytes = 16 << 20

// New returns a client for the gateway at apiURL (e.g. https://api.atlassian.com).
func New(apiURL string, ts oauth2.TokenSource, o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = 3
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 30 * time.Second
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 2 * time.Second
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	hc := &http.Client{}
	if o.HTTPClient != nil {
		c := *o.HTTPClient
		hc = &c
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{api: strings.TrimRight(apiURL, "/"), ts: ts, http: hc, o: o}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sentinels for errors.Is.
var (
	ErrRateLimited  = errors.New("jira: rate limited")
	ErrUnauthorized = errors.New("jira: unauthorized")
)

// RateLimitError is a 429 from Jira.
type RateLimitError struct {
	// Reason is the RateLimit-Reason header, e.g. jira-quota-global-based, jira-burst-based ("" if absent).
	Reason string
	// RetryAfter is the Retry-After header (zero if absent).
	RetryAfter time.Duration
	// Reset is X-RateLimit-Reset, or now + RetryAfter when that header is absent (zero if neither is known).
	Reset time.Time
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("jira: rate limited (reason %q, retry after %s, reset %s)", e.Reason, e.RetryAfter, e.Reset.Format(time.RFC3339))
}
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// Quota reports whether the hourly points quota is spent: every call should pause until Reset.
func (e *RateLimitError) Quota() bool { return strings.HasPrefix(e.Reason, "jira-quota") }

// UnauthorizedError is a 401: the token lacks a scope, or the connection's grant no longer covers the site.
type UnauthorizedError struct {
	Message string // Jira's message, e.g. "Unauthorized; scope does not match"
}

// Error names the status only: Jira's text never reaches an error string, so never a log either.
func (e *UnauthorizedError) Error() string {
	if e.ScopeMismatch() {
		return "jira: unauthorized (scope mismatch)"
	}
	return "jira: unauthorized"
}
func (e *UnauthorizedError) Is(target error) bool { return target == ErrUnauthorized }

// ScopeMismatch reports whether Jira said the token's scopes do not cover the call.
func (e *UnauthorizedError) ScopeMismatch() bool { return strings.Contains(e.Message, "scope") }

// StatusError is any other non-2xx answer, with Jira's error messages (ErrorCollection). The messages can quote
// JQL values, user and project names: a caller may show them to the user they belong to, but Error() gives the
// status and their count only, so they never reach a log through an error.
type StatusError struct {
	Status   int
	Messages []string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("jira: status %d (%d messages)", e.Status, len(e.Messages))
}

type errorCollection struct {
	ErrorMessages []string          `json:"errorMessages"`
	Errors        map[string]string `json:"errors"`
	Message       string            `json:"message"`
}

// call is one API operation.
type call struct {
	method, path string
	query        url.Values
	body         any
	safe         bool // read-only: may be retried
}

func (c *Client) url(cloudID string, cl call) string {
	u := c.api + "/ex/jira/" + url.PathEscape(cloudID) + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	return u
}

// do runs cl against site cloudID and decodes a 2xx JSON answer into out.
func (c *Client) do(ctx context.Context, cloudID string, cl call, out any) error {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("jira: encode request: %w", err)
		}
	}
	for attempt := 0; ; attempt++ {
		err := c.attempt(ctx, cloudID, cl, payload, out)
		wait, retry := c.retryable(err, cl, attempt)
		if !retry {
			return err
		}
		if serr := c.o.Sleep(ctx, wait); serr != nil {
			// The caller learns both why it stopped waiting and what it was waiting out.
			return fmt.Errorf("%w (gave up waiting: %w)", err, serr)
		}
	}
}

// retryable decides whether err is worth another attempt and how long to wait first.
func (c *Client) retryable(err error, cl call, attempt int) (time.Duration, bool) {
	if err == nil || !cl.safe || attempt >= c.o.MaxRetries {
		return 0, false
	}
	backoff := c.o.BaseBackoff << attempt
	var rl *RateLimitError
	var se *StatusError
	switch {
	case errors.As(err, &rl):
		if rl.Quota() {
			return 0, false // the hourly quota: nothing succeeds before the reset, so do not spend attempts
		}
		if rl.RetryAfter > backoff {
			backoff = rl.RetryAfter
		}
	case errors.As(err, &se) && (se.Status == 500 || se.Status == 502 || se.Status == 503 || se.Status == 504):
	default:
		return 0, false
	}
	// Jitter upwards only, so Retry-After stays a floor.
	wait := time.Duration(float64(backoff) * (1 + 0.3*rand.Float64()))
	if wait > c.o.MaxWait {
		return 0, false
	}
	return wait, true
}

func (c *Client) attempt(ctx context.Context, cloudID string, cl call, payload []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	tok, err := c.token(ctx)
	if err != nil {
		return err
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.url(cloudID, cl), body)
	if err != nil {
		return fmt.Errorf("jira: build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// Connection errors on safe calls are treated like a 503 so they are retried.
		return fmt.Errorf("jira: %s %s: %w", cl.method, cl.path, &StatusError{Status: 503, Messages: []string{redactURLError(err)}})
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("jira: %s %s: read body: %w", cl.method, cl.path, &StatusError{Status: 503, Messages: []string{"response interrupted"}})
	}
	if len(raw) > MaxResponseBytes {
		return fmt.Errorf("jira: %s %s: response larger than %d bytes", cl.method, cl.path, MaxResponseBytes)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("jira: %s %s: %w", cl.method, cl.path, c.rateLimit(resp.Header))
	case resp.StatusCode == http.StatusUnauthorized:
		var ec errorCollection
		_ = json.Unmarshal(raw, &ec)
		msg := ec.Message
		if msg == "" && len(ec.ErrorMessages) > 0 {
			msg = ec.ErrorMessages[0]
		}
		return fmt.Errorf("jira: %s %s: %w", cl.method, cl.path, &UnauthorizedError{Message: msg})
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		var ec errorCollection
		_ = json.Unmarshal(raw, &ec)
		msgs := ec.ErrorMessages
		for k, v := range ec.Errors {
			msgs = append(msgs, k+": "+v)
		}
		return fmt.Errorf("jira: %s %s: %w", cl.method, cl.path, &StatusError{Status: resp.StatusCode, Messages: msgs})
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("jira: %s %s: decode response: %w", cl.method, cl.path, err)
	}
	return nil
}

func (c *Client) token(ctx context.Context) (string, error) {
	// oauth2.TokenSource has no context parameter; run it in a goroutine so the call's timeout still applies.
	type res struct {
		t   *oauth2.Token
		err error
	}
	ch := make(chan res, 1)
	go func() {
		t, err := c.ts.Token()
		ch <- res{t, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return "", fmt.Errorf("jira: access token: %w", r.err)
		}
		if r.t == nil || r.t.AccessToken == "" {
			return "", errors.New("jira: access token: empty token")
		}
		return r.t.AccessToken, nil
	case <-ctx.Done():
		return "", fmt.Errorf("jira: access token: %w", ctx.Err())
	}
}

func (c *Client) rateLimit(h http.Header) *RateLimitError {
	e := &RateLimitError{Reason: h.Get("RateLimit-Reason")}
	if s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	if r := h.Get("X-RateLimit-Reset"); r != "" {
		for _, layout := range []string{"2006-01-02T15:04Z07:00", time.RFC3339} {
			if t, err := time.Parse(layout, r); err == nil {
				e.Reset = t.UTC()
				break
			}
		}
	}
	if e.Reset.IsZero() && e.RetryAfter > 0 {
		e.Reset = c.o.Now().Add(e.RetryAfter).UTC()
	}
	return e
}

// redactURLError keeps the kind of a transport error without its URL (which holds nothing secret, but the
// message is surfaced to logs and need not grow).
func redactURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// ParsedQuery is one result of /rest/api/3/jql/parse.
type ParsedQuery struct {
	Query     string          `json:"query"`
	Structure json.RawMessage `json:"structure,omitempty"`
	Errors    []string        `json:"errors,omitempty"`
	Warnings  []string        `json:"warnings,omitempty"`
}

// Bounded reports whether a successfully parsed query has a WHERE clause; Jira refuses to search unbounded JQL.
func (p ParsedQuery) Bounded() bool {
	var s struct {
		Where json.RawMessage `json:"where"`
	}
	if len(p.Structure) == 0 || json.Unmarshal(p.Structure, &s) != nil {
		return false
	}
	return len(s.Where) > 0 && string(s.Where) != "null"
}

// ParseJQL validates queries strictly against site cloudID (POST /rest/api/3/jql/parse?validation=strict).
// Per-query problems are in the results' Errors; an error return means the call itself failed.
func (c *Client) ParseJQL(ctx context.Context, cloudID string, queries ...string) ([]ParsedQuery, error) {
	var out struct {
		Queries []ParsedQuery `json:"queries"`
	}
	err := c.do(ctx, cloudID, call{
		method: http.MethodPost, path: "/rest/api/3/jql/parse",
		query: url.Values{"validation": {"strict"}},
		body:  map[string]any{"queries": queries}, safe: true,
	}, &out)
	if err != nil {
		return nil, err
	}
	if len(out.Queries) != len(queries) {
		return nil, fmt.Errorf("jira: jql/parse answered %d results for %d queries", len(out.Queries), len(queries))
	}
	return out.Queries, nil
}

// ApproximateCount returns Jira's estimate of how many issues jql matches (POST /rest/api/3/search/approximate-count).
func (c *Client) ApproximateCount(ctx context.Context, cloudID, jql string) (int64, error) {
	var out struct {
		Count *int64 `json:"count"`
	}
	err := c.do(ctx, cloudID, call{
		method: http.MethodPost, path: "/rest/api/3/search/approximate-count",
		body: map[string]string{"jql": jql}, safe: true,
	}, &out)
	if err != nil {
		return 0, err
	}
	if out.Count == nil {
		return 0, errors.New("jira: approximate-count answered without a count")
	}
	return *out.Count, nil
}
