// Package pacer paces calls to Jira Cloud below Atlassian's per-second burst limits, as an http.RoundTripper
// the Jira client wraps around its transport: it sees every request, including retries.
//
// Atlassian keeps one token bucket per tenant × endpoint × method, refilled at a steady rate (GET 100/s, POST
// 100/s, PUT 50/s, DELETE 50/s, with per-endpoint overrides such as 300/s for attachment content) and advises
// designing "for the steady-state refill rate, not the burst buffer" (jira-cloud.md §4). The Transport keeps
// the same buckets on its side (golang.org/x/time/rate), so requests wait here, briefly, instead of meeting a 429.
//
// It also reacts to what Jira answers:
//   - X-RateLimit-NearLimit: true (less than 20 % of an hourly quota left; the quota is the site's or the app's,
//     not one endpoint's) slows every bucket of that site by SlowFactor for SlowFor;
//   - a burst 429 (jira-burst-based) holds that bucket until Retry-After and slows it, further on each repeat;
//   - a quota 429 (jira-quota-global-based / jira-quota-tenant-based) is reported to OnQuota (which records the
//     shared pause, ratebudget.Pauses.Record) and, until the reset, requests in its scope are answered here
//     with the same 429 without reaching Atlassian ("pause ALL requests until the window resets").
//
// Waiting for a bucket never outlasts the request's context. Requests that are not Jira REST calls (token
// endpoint, media downloads) pass through untouched.
package pacer

import (
	"context"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"jiraexport/shared/backoff"
	"jiraexport/shared/ratebudget"
)

// Options tune a Transport. Zero fields take the defaults in their comments.
type Options struct {
	// Rates overrides steady rates (requests per second), keyed by endpoint ("GET /rest/api/3/issue/{issueIdOrKey}")
	// or by method ("GET"). Default: Atlassian's (ratebudget.DefaultRPS).
	Rates map[string]float64
	// Share is the fraction of each rate this process may use (default 1). When several processes call the same
	// site at once, give each a share so that together they stay below Atlassian's rate.
	Share float64
	// Burst is how many requests one bucket lets through back to back (default a tenth of its rate, at least 1):
	// well inside Atlassian's bucket, so clock skew and network jitter never empty it.
	Burst int
	// SlowFactor multiplies a slowed bucket's rate (default 0.5); SlowFor is how long it stays slow after the
	// last signal (default 30 s). A burst 429 compounds the factor, down to MinFactor (default 1/8).
	SlowFactor float64
	SlowFor    time.Duration
	MinFactor  float64
	// OnQuota is told, once per pause, about a quota 429: site is the cloud id (or host), l the parsed headers.
	// It runs synchronously before the 429 is returned, under the request's context.
	OnQuota func(ctx context.Context, site string, l ratebudget.Limit)
	// Now is the clock for slow-down and pause expiry (default time.Now). Bucket refills use the wall clock.
	Now func() time.Time
}

// Transport is the pacing http.RoundTripper. Safe for concurrent use.
type Transport struct {
	next http.RoundTripper
	o    Options

	mu       sync.Mutex
	buckets  map[string]*bucket
	siteSlow map[string]time.Time // site → NearLimit slow-down end
	paused   map[string]ratebudget.Limit
	pausedAt map[string]time.Time // site ("" = every site) → quota reset
}

var _ http.RoundTripper = (*Transport)(nil)

type bucket struct {
	site     string
	lim      *rate.Limiter
	base     float64
	factor   float64   // compounded by burst 429s
	slowTill time.Time // end of this bucket's own slow-down
	holdTill time.Time // no request before (Retry-After of a burst 429)
	current  float64
}

// New wraps next (nil: http.DefaultTransport).
func New(next http.RoundTripper, o Options) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	if o.Share <= 0 {
		o.Share = 1
	}
	if o.SlowFactor <= 0 || o.SlowFactor >= 1 {
		o.SlowFactor = 0.5
	}
	if o.SlowFor <= 0 {
		o.SlowFor = 30 * time.Second
	}
	if o.MinFactor <= 0 {
		o.MinFactor = 0.125
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Transport{next: next, o: o, buckets: map[string]*bucket{}, siteSlow: map[string]time.Time{},
		paused: map[string]ratebudget.Limit{}, pausedAt: map[string]time.Time{}}
}

func (t *Transport) baseRate(e ratebudget.Endpoint) float64 {
	r, ok := t.o.Rates[e.String()]
	if !ok {
		if r, ok = t.o.Rates[e.Method]; !ok {
			r = ratebudget.DefaultRPS(e)
		}
	}
	return r * t.o.Share
}

// bucketLocked returns the bucket of site × endpoint, with its rate brought up to date.
func (t *Transport) bucketLocked(site string, e ratebudget.Endpoint, now time.Time) *bucket {
	k := site + " " + e.String()
	b := t.buckets[k]
	if b == nil {
		base := t.baseRate(e)
		burst := t.o.Burst
		if burst <= 0 {
			burst = max(1, int(base/10))
		}
		b = &bucket{site: site, base: base, factor: 1, current: base, lim: rate.NewLimiter(rate.Limit(base), burst)}
		t.buckets[k] = b
	}
	t.refreshLocked(b, now)
	return b
}

// refreshLocked applies the slow-downs in force at now to b's limiter.
func (t *Transport) refreshLocked(b *bucket, now time.Time) {
	if !now.Before(b.slowTill) {
		b.factor = 1
	}
	f := b.factor
	if now.Before(t.siteSlow[b.site]) {
		f *= t.o.SlowFactor
	}
	if r := b.base * max(f, t.o.MinFactor); r != b.current {
		b.current = r
		b.lim.SetLimit(rate.Limit(r))
	}
}

// Rate is the rate (requests per second) the bucket of site × e runs at now.
func (t *Transport) Rate(site string, e ratebudget.Endpoint) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bucketLocked(site, e, t.o.Now()).current
}

// PausedUntil reports whether this transport holds a quota pause for site, and its reset.
func (t *Transport) PausedUntil(site string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, at, ok := t.pauseLocked(site, t.o.Now())
	return at, ok
}

func (t *Transport) pauseLocked(site string, now time.Time) (ratebudget.Limit, time.Time, bool) {
	var l ratebudget.Limit
	var at time.Time
	for _, k := range []string{"", site} {
		if u, ok := t.pausedAt[k]; ok && now.Before(u) && u.After(at) {
			l, at = t.paused[k], u
		}
	}
	return l, at, !at.IsZero()
}

// RoundTrip paces req, sends it, and learns from the answer.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	e, site, ok := ratebudget.Classify(req.Method, req.URL.Path)
	if !ok {
		return t.next.RoundTrip(req)
	}
	if site == "" {
		site = req.URL.Host
	}
	ctx := req.Context()
	t.mu.Lock()
	now := t.o.Now()
	if l, at, paused := t.pauseLocked(site, now); paused {
		t.mu.Unlock()
		closeBody(req)
		return pausedResponse(req, l, at, now), nil
	}
	b := t.bucketLocked(site, e, now)
	hold := b.holdTill.Sub(now)
	t.mu.Unlock()

	if hold > 0 {
		if err := backoff.Sleep(ctx, hold); err != nil {
			closeBody(req)
			return nil, err
		}
	}
	if err := b.lim.Wait(ctx); err != nil {
		// Also when the wait would outlast the context's deadline: fail now rather than at the deadline.
		closeBody(req)
		return nil, err
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	t.learn(ctx, site, b, resp)
	return resp, nil
}

func (t *Transport) learn(ctx context.Context, site string, b *bucket, resp *http.Response) {
	now := t.o.Now()
	l := ratebudget.ParseLimit(resp.Header, now)
	var report bool
	t.mu.Lock()
	if l.NearLimit {
		t.siteSlow[site] = now.Add(t.o.SlowFor)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		switch l.Scope() {
		case ratebudget.ScopeGlobal, ratebudget.ScopeSite:
			k := site
			if l.Scope() == ratebudget.ScopeGlobal {
				k = ""
			}
			at := l.ResumeAt(now)
			report = !t.pausedAt[k].After(now) || at.After(t.pausedAt[k])
			t.paused[k], t.pausedAt[k] = l, at
		default:
			b.factor = max(b.factor*t.o.SlowFactor, t.o.MinFactor)
			b.slowTill = now.Add(t.o.SlowFor)
			b.holdTill = l.ResumeAt(now)
		}
	}
	t.refreshLocked(b, now)
	t.mu.Unlock()
	if report && t.o.OnQuota != nil {
		t.o.OnQuota(ctx, site, l)
	}
}

// pausedResponse answers a request during a known quota pause as Atlassian would, without calling it.
func pausedResponse(req *http.Request, l ratebudget.Limit, at, now time.Time) *http.Response {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("RateLimit-Reason", l.Reason)
	h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(at.Sub(now).Seconds())), 10))
	h.Set("X-RateLimit-Reset", at.UTC().Format("2006-01-02T15:04:05Z"))
	h.Set("X-Ratebudget-Paused", "true") // answered here, not by Atlassian: costs no points
	body := `{"errorMessages":["Rate limit exceeded."],"errors":{}}`
	return &http.Response{
		Status: "429 Too Many Requests", StatusCode: http.StatusTooManyRequests,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}
}

// closeBody honours the RoundTripper contract (the body is closed even when the request is not sent).
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
