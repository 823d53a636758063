package ratebudget

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Atlassian's RateLimit-Reason values (jira-cloud.md §4).
const (
	ReasonGlobalQuota   = "jira-quota-global-based"
	ReasonTenantQuota   = "jira-quota-tenant-based"
	ReasonBurst         = "jira-burst-based"
	ReasonPerIssueWrite = "jira-per-issue-on-write"
)

// Scope is what a 429 limits, and so what must wait.
type Scope int

const (
	// ScopeNone: not rate limited (or a 429 without any reason: treat as burst).
	ScopeNone Scope = iota
	// ScopeBurst: one site × endpoint × method bucket is empty; slow that bucket, retry after Retry-After.
	ScopeBurst
	// ScopeIssueWrite: writes to one issue; delay writes to that issue.
	ScopeIssueWrite
	// ScopeSite: the site's (tenant's) hourly quota is spent; pause that site until the reset.
	ScopeSite
	// ScopeGlobal: the app's hourly quota, shared by every customer, is spent; pause everything until the reset.
	ScopeGlobal
)

func (s Scope) String() string {
	switch s {
	case ScopeBurst:
		return "burst"
	case ScopeIssueWrite:
		return "issue-write"
	case ScopeSite:
		return "site"
	case ScopeGlobal:
		return "global"
	}
	return "none"
}

// Limit is what Atlassian's rate-limit headers say about one answer.
type Limit struct {
	// Reason is RateLimit-Reason ("" when absent; only sent on a 429).
	Reason string
	// RetryAfter is Retry-After (zero when absent or unreadable).
	RetryAfter time.Duration
	// Reset is X-RateLimit-Reset (zero when absent or unreadable).
	Reset time.Time
	// NearLimit is X-RateLimit-NearLimit: true, sent when less than 20 % of a quota is left.
	NearLimit bool
}

// MaxQuotaPause bounds how far a quota pause may reach: Atlassian's quotas reset at the top of every UTC hour,
// so a reset further away than that (a garbled or hostile header) must not stop the app for longer.
const MaxQuotaPause = time.Hour + time.Minute

// quotaSlack is how far now + Retry-After may pass a quota's X-RateLimit-Reset and still be the same instant
// (whole-second rounding plus the answer's time in flight).
const quotaSlack = 5 * time.Second

// ResetEndsQuota reports whether a spent quota ends at its X-RateLimit-Reset rather than at now + Retry-After:
// the reset is ahead, and Retry-After reaches no further than quotaSlack past it. The quota resets at the
// instant the header names (the top of the UTC hour); Retry-After is the same wait rounded up to whole seconds
// when the server answered, so now + Retry-After overshoots by the rounding plus the answer's time in flight, and
// would hold every run past a reset that has happened. A Retry-After reaching clearly further is honoured.
func ResetEndsQuota(now time.Time, retryAfter time.Duration, reset time.Time) bool {
	return reset.After(now) && !now.Add(retryAfter).After(reset.Add(quotaSlack))
}

// maxRetryAfter bounds Retry-After so a huge value cannot overflow a time.Duration.
const maxRetryAfter = 24 * time.Hour

// ParseLimit reads the rate-limit headers of an answer; now resolves an HTTP-date Retry-After.
func ParseLimit(h http.Header, now time.Time) Limit {
	l := Limit{Reason: strings.TrimSpace(h.Get("RateLimit-Reason"))}
	if d, ok := ParseRetryAfter(h.Get("Retry-After"), now); ok {
		l.RetryAfter = d
	}
	if t, err := ParseReset(h.Get("X-RateLimit-Reset")); err == nil {
		l.Reset = t
	}
	l.NearLimit = strings.EqualFold(strings.TrimSpace(h.Get("X-RateLimit-NearLimit")), "true")
	return l
}

// Scope maps the reason to what must wait. Unknown and legacy reasons (jira-cost-based, concurrency limits,
// a gateway 429 with no reason) are treated as burst: back off and retry, without pausing anyone else.
func (l Limit) Scope() Scope {
	switch l.Reason {
	case ReasonGlobalQuota:
		return ScopeGlobal
	case ReasonTenantQuota:
		return ScopeSite
	case ReasonPerIssueWrite:
		return ScopeIssueWrite
	case "":
		if l.RetryAfter == 0 && l.Reset.IsZero() {
			return ScopeNone
		}
	}
	return ScopeBurst
}

// Quota reports whether an hourly quota is spent: nothing in its scope can succeed before ResumeAt.
func (l Limit) Quota() bool { s := l.Scope(); return s == ScopeGlobal || s == ScopeSite }

// ResumeAt is when requests in the limit's scope may start again: for a quota, X-RateLimit-Reset when it is
// ahead; otherwise X-RateLimit-Reset or now + Retry-After, whichever is later; for a quota without either, the
// next top of the UTC hour (when every quota resets). A quota pause never reaches beyond now + MaxQuotaPause; a
// burst wait is at least one second.
func (l Limit) ResumeAt(now time.Time) time.Time {
	if l.Quota() && ResetEndsQuota(now, l.RetryAfter, l.Reset) {
		return minTime(l.Reset, now.Add(MaxQuotaPause)).UTC()
	}
	at := l.Reset
	if ra := now.Add(l.RetryAfter); l.RetryAfter > 0 && ra.After(at) {
		at = ra
	}
	if l.Quota() {
		if !at.After(now) {
			at = now.UTC().Truncate(time.Hour).Add(time.Hour)
		}
		return minTime(at, now.Add(MaxQuotaPause)).UTC()
	}
	if !at.After(now) {
		at = now.Add(time.Second)
	}
	return minTime(at, now.Add(maxRetryAfter)).UTC()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// ErrBadReset means an X-RateLimit-Reset value is not a time in a format Atlassian sends.
var ErrBadReset = errors.New("ratebudget: unreadable X-RateLimit-Reset")

// resetLayouts: Atlassian documents yyyy-MM-ddTHH:mmZ, and its own examples carry seconds
// (2025-10-08T15:00:00Z); RFC 3339 with fractions or an offset is accepted too.
var resetLayouts = []string{"2006-01-02T15:04Z07:00", time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04Z0700"}

// ParseReset parses an X-RateLimit-Reset value into UTC.
func ParseReset(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return time.Time{}, ErrBadReset
	}
	for _, layout := range resetLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, ErrBadReset
}

// ParseRetryAfter parses Retry-After: delay-seconds, or an HTTP-date (RFC 9110 §10.2.3) measured from now.
// Values beyond a day are capped; negative or unreadable values report false.
func ParseRetryAfter(s string, now time.Time) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(s); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return min(d, maxRetryAfter), true
	}
	return 0, false
}
