// Package jira is a small client for the Jira Cloud REST API v3 behind Atlassian's API gateway
// (ATLASSIAN_API_URL + "/ex/jira/{cloudId}"), authenticated with a connection's OAuth 2.0 (3LO) token.
//
// Every call has a timeout. Failures are classified once, here (Classify: rate-limited, re-authorisation needed,
// retryable, permanent), so the connectors API, the dispatcher and the export give a failure the same meaning.
// Rate limits (429) come back as *RateLimitError carrying Atlassian's RateLimit-Reason, Retry-After and reset time;
// only safe calls (reads, including read-only POSTs such as /jql/parse) are retried, a bounded number of times,
// after at least Retry-After with jitter. Redirects are never followed, so the bearer token is never sent anywhere
// but the gateway.
//
// Error texts carry the method, the endpoint template, the status and Jira's error code only: Jira's messages can
// quote JQL values, user and project names, so they never reach an error's text or a log. StatusError.Messages
// keeps them for the one caller that shows users their own JQL errors (the connectors API); it must not log them.
package jira

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
	"golang.org/x/oauth2"

	backoffpkg "jiraexport/shared/backoff"
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
	// Observe, when set, is told about every attempt once its answer is in: the seam for points accounting
	// (shared/ratebudget). A pacing or quota-pausing layer plugs in as HTTPClient's Transport.
	Observe func(Observation)
	// IsReauth tells whether an error of the token source means the grant is dead (shared/tokens:
	// errors.Is(err, tokens.ErrReauthRequired)); such calls fail with KindReauth. Nil: none does.
	IsReauth func(error) bool
}

// Observation is one attempt of one call, as Observe sees it: no URL, no query, no body.
type Observation struct {
	Method string
	// Endpoint is the OpenAPI path template, e.g. /rest/api/3/issue/{issueIdOrKey}/comment.
	Endpoint string
	CloudID  string
	// Status is the HTTP status (0 when no answer came).
	Status int
	// Objects counts the issues, comments, changelog entries, worklogs, attachments or fields a successful answer
	// returned (Atlassian charges a point for each on top of the request's); -1 when unknown.
	Objects  int
	Duration time.Duration
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

// call is one API operation.
type call struct {
	method, path string
	endpoint     string // OpenAPI template of path, for errors and observations
	query        url.Values
	body         any
	safe         bool // read-only: may be retried
	cursor       bool // the request carried a nextPageToken: a 400 means the cursor expired
	// objects counts the objects in a decoded answer (for Observe); nil: unknown.
	objects func() int
}

func (cl call) name() string {
	if cl.endpoint != "" {
		return cl.method + " " + cl.endpoint
	}
	return cl.method + " " + cl.path
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
	switch Classify(err) {
	case KindRateLimited:
		if w := Wait(err, c.o.Now()); w > backoff {
			backoff = w
		}
	case KindRetryable:
	default:
		return 0, false // permanent, re-authorisation, or the hourly quota (nothing succeeds before its reset)
	}
	// Jitter upwards only (x[1, 1.3]), so Retry-After stays a floor; the one backoff policy of the repo.
	wait := (backoffpkg.Policy{Base: backoff, Max: backoff, JitterLow: 1, JitterHigh: 1.3}).Delay(0, 0)
	if wait > c.o.MaxWait {
		return 0, false
	}
	return wait, true
}

func (c *Client) attempt(ctx context.Context, cloudID string, cl call, payload []byte, out any) error {
	started := c.o.Now()
	status, err := c.exchange(ctx, cloudID, cl, payload, func(resp *http.Response) error {
		if out == nil {
			return nil
		}
		// Decoded as it streams in, bounded: a page of issues never sits in memory twice. goccy/go-json reads
		// what encoding/json reads (FuzzDecodeAgreesWithEncodingJSON) in about half its CPU; a search page's
		// issues are most of what an export decodes.
		body := &readRecorder{r: io.LimitReader(resp.Body, MaxResponseBytes)}
		if err := gojson.NewDecoder(body).Decode(out); err != nil {
			if body.err == nil {
				// Offsets only: the error's text must not quote the body.
				return fmt.Errorf("jira: %s: decode response: invalid JSON", cl.name())
			}
			// A body cut short (dropped connection, the attempt's timeout): worth another attempt.
			return &StatusError{Endpoint: cl.name(), Status: 503, Code: "response_interrupted"}
		}
		return nil
	})
	c.observe(cloudID, cl, status, err, started)
	return err
}

// readRecorder keeps the first error other than io.EOF its reader returned: a decoder's own error does not say
// whether the JSON was bad or the body stopped arriving.
type readRecorder struct {
	r   io.Reader
	err error
}

func (r *readRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func (c *Client) observe(cloudID string, cl call, status int, err error, started time.Time) {
	if c.o.Observe == nil {
		return
	}
	n := -1
	if err == nil && cl.objects != nil {
		n = cl.objects()
	}
	c.o.Observe(Observation{Method: cl.method, Endpoint: cl.endpointOrPath(), CloudID: cloudID, Status: status,
		Objects: n, Duration: c.o.Now().Sub(started)})
}

func (cl call) endpointOrPath() string {
	if cl.endpoint != "" {
		return cl.endpoint
	}
	return cl.path
}

// exchange sends one attempt and hands a 2xx response to onOK; any other answer becomes a classified error. It
// returns the status seen (0 when none).
func (c *Client) exchange(parent context.Context, cloudID string, cl call, payload []byte, onOK func(*http.Response) error) (int, error) {
	ctx, cancel := context.WithTimeout(parent, c.o.Timeout)
	defer cancel()
	resp, err := c.send(ctx, cloudID, cl, payload)
	if err != nil {
		if parent.Err() != nil {
			// The caller gave up (its deadline or a cancel), not Jira: say so, so it is not retried.
			return 0, fmt.Errorf("jira: %s: %w", cl.name(), parent.Err())
		}
		return 0, err
	}
	defer resp.Body.Close()
	if err := c.statusError(cl, resp); err != nil {
		return resp.StatusCode, err
	}
	err = onOK(resp)
	if err != nil && parent.Err() != nil {
		return resp.StatusCode, fmt.Errorf("jira: %s: %w", cl.name(), parent.Err())
	}
	return resp.StatusCode, err
}

// send builds and sends one authenticated request; a transport failure is a retryable StatusError.
func (c *Client) send(ctx context.Context, cloudID string, cl call, payload []byte) (*http.Response, error) {
	tok, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.url(cloudID, cl), body)
	if err != nil {
		return nil, fmt.Errorf("jira: %s: build request: %w", cl.name(), err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// Connection errors on safe calls are treated like a 503 so they are retried. The URL is left out.
		return nil, &StatusError{Endpoint: cl.name(), Status: 503, Code: "transport", cause: transportKind(err)}
	}
	return resp, nil
}

// statusError turns a non-2xx answer into its typed error, reading at most a small error body.
func (c *Client) statusError(cl call, resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var ec errorCollection
	_ = json.Unmarshal(raw, &ec)
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		e := c.rateLimit(resp.Header)
		e.Endpoint = cl.name()
		return e
	case http.StatusUnauthorized:
		msg := ec.Message
		if msg == "" && len(ec.ErrorMessages) > 0 {
			msg = ec.ErrorMessages[0]
		}
		return &UnauthorizedError{Endpoint: cl.name(), scopeMismatch: strings.Contains(strings.ToLower(msg), "scope")}
	}
	msgs := append([]string(nil), ec.ErrorMessages...)
	for k, v := range ec.Errors {
		msgs = append(msgs, k+": "+v)
	}
	code := ""
	if ec.Code != nil {
		code = strconv.Itoa(*ec.Code)
	}
	return &StatusError{Endpoint: cl.name(), Status: resp.StatusCode, Code: code, Messages: msgs,
		cursor: cl.cursor}
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
			return "", &TokenError{Reauth: c.o.IsReauth != nil && c.o.IsReauth(r.err), err: r.err}
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
	e := &RateLimitError{Reason: h.Get("RateLimit-Reason"), NearLimit: h.Get("X-RateLimit-NearLimit") == "true", At: time.Now()}
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
		method: http.MethodPost, path: "/rest/api/3/jql/parse", objects: func() int { return 0 },
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
		method: http.MethodPost, path: "/rest/api/3/search/approximate-count", objects: func() int { return 0 },
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
