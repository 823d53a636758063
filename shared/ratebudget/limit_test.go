package ratebudget_test

import (
	"net/http"
	"testing"
	"time"

	"jiraexport/shared/ratebudget"
)

var t0 = time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)

func TestParseReset(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2025-10-08T15:00Z", time.Date(2025, 10, 8, 15, 0, 0, 0, time.UTC), true}, // documented yyyy-MM-ddTHH:mmZ
		{"2025-10-08T15:00:00Z", time.Date(2025, 10, 8, 15, 0, 0, 0, time.UTC), true},
		{" 2026-01-01T01:01:01Z ", time.Date(2026, 1, 1, 1, 1, 1, 0, time.UTC), true},
		{"2026-01-01T01:01:01.250Z", time.Date(2026, 1, 1, 1, 1, 1, 250e6, time.UTC), true},
		{"2026-01-01T03:01+02:00", time.Date(2026, 1, 1, 1, 1, 0, 0, time.UTC), true},
		{"2026-01-01T03:01:00+0200", time.Date(2026, 1, 1, 1, 1, 0, 0, time.UTC), true},
		{"", time.Time{}, false},
		{"1847", time.Time{}, false},
		{"Wed, 21 Oct 2015 07:28:00 GMT", time.Time{}, false},
		{"2026-13-01T00:00Z", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := ratebudget.ParseReset(tt.in)
		if (err == nil) != tt.ok || !got.Equal(tt.want) || (tt.ok && got.Location() != time.UTC) {
			t.Errorf("ParseReset(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1", time.Second, true},
		{"1847", 1847 * time.Second, true},
		{"0", 0, true},
		{"-3", 0, false},
		{"99999999999999999", 24 * time.Hour, true},
		{"Tue, 10 Mar 2026 12:31:00 GMT", time.Minute, true},
		{"Tue, 10 Mar 2026 12:00:00 GMT", 0, true},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := ratebudget.ParseRetryAfter(tt.in, t0)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestLimitScopeAndResume(t *testing.T) {
	top := time.Date(2026, 3, 10, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		h         map[string]string
		scope     ratebudget.Scope
		quota     bool
		resume    time.Time
		nearLimit bool
	}{
		{"global quota (Atlassian's example headers)", map[string]string{"Retry-After": "1800", "X-RateLimit-Reset": "2026-03-10T13:00Z", "RateLimit-Reason": "jira-quota-global-based"},
			ratebudget.ScopeGlobal, true, top, false},
		{"tenant quota, reset only", map[string]string{"X-RateLimit-Reset": "2026-03-10T13:00:00Z", "RateLimit-Reason": "jira-quota-tenant-based"},
			ratebudget.ScopeSite, true, top, false},
		{"quota, Retry-After only", map[string]string{"Retry-After": "60", "RateLimit-Reason": "jira-quota-global-based"},
			ratebudget.ScopeGlobal, true, t0.Add(time.Minute), false},
		{"quota, no timing: next top of the hour", map[string]string{"RateLimit-Reason": "jira-quota-global-based"},
			ratebudget.ScopeGlobal, true, top, false},
		{"quota, reset in the past: next top of the hour", map[string]string{"RateLimit-Reason": "jira-quota-tenant-based", "X-RateLimit-Reset": "2026-03-10T12:00Z"},
			ratebudget.ScopeSite, true, top, false},
		{"quota, later Retry-After wins over reset", map[string]string{"RateLimit-Reason": "jira-quota-global-based", "X-RateLimit-Reset": "2026-03-10T12:31Z", "Retry-After": "120"},
			ratebudget.ScopeGlobal, true, t0.Add(2 * time.Minute), false},
		{"quota, Retry-After rounded past the reset: the reset", map[string]string{"RateLimit-Reason": "jira-quota-global-based", "X-RateLimit-Reset": "2026-03-10T12:31:00Z", "Retry-After": "62"},
			ratebudget.ScopeGlobal, true, t0.Add(time.Minute), false},
		{"quota, absurd reset is capped", map[string]string{"RateLimit-Reason": "jira-quota-global-based", "X-RateLimit-Reset": "2099-01-01T00:00Z"},
			ratebudget.ScopeGlobal, true, t0.Add(ratebudget.MaxQuotaPause), false},
		{"burst", map[string]string{"Retry-After": "1", "X-RateLimit-Reset": "2026-03-10T12:30:01Z", "RateLimit-Reason": "jira-burst-based"},
			ratebudget.ScopeBurst, false, t0.Add(time.Second), false},
		{"per-issue write", map[string]string{"Retry-After": "2", "RateLimit-Reason": "jira-per-issue-on-write"},
			ratebudget.ScopeIssueWrite, false, t0.Add(2 * time.Second), false},
		{"legacy cost-based counts as burst", map[string]string{"Retry-After": "5", "RateLimit-Reason": "jira-cost-based"},
			ratebudget.ScopeBurst, false, t0.Add(5 * time.Second), false},
		{"gateway 429 without headers", map[string]string{"Retry-After": "3"}, ratebudget.ScopeBurst, false, t0.Add(3 * time.Second), false},
		{"normal answer near the quota", map[string]string{"X-RateLimit-NearLimit": "true"}, ratebudget.ScopeNone, false, t0.Add(time.Second), true},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.h {
			h.Set(k, v)
		}
		l := ratebudget.ParseLimit(h, t0)
		if l.Scope() != tt.scope || l.Quota() != tt.quota || l.NearLimit != tt.nearLimit {
			t.Errorf("%s: scope %s quota %v near %v, want %s %v %v", tt.name, l.Scope(), l.Quota(), l.NearLimit, tt.scope, tt.quota, tt.nearLimit)
		}
		if got := l.ResumeAt(t0); !got.Equal(tt.resume) {
			t.Errorf("%s: ResumeAt = %v, want %v", tt.name, got, tt.resume)
		}
	}
}

// FuzzLimitHeaders: no header value, however malformed, may panic, pause a quota beyond the hour, or resume in
// the past; a reset written in Atlassian's format reads back exactly.
func FuzzLimitHeaders(f *testing.F) {
	f.Add("2025-10-08T15:00Z", "1847", "jira-quota-global-based", int64(0))
	f.Add("2026-01-01T01:01:01Z", "1", "jira-burst-based", int64(3600))
	f.Add("", "Wed, 21 Oct 2015 07:28:00 GMT", "jira-quota-tenant-based", int64(-5))
	f.Add("9999-12-31T23:59:59.999999999+14:00", "-1", "", int64(1<<40))
	f.Fuzz(func(t *testing.T, reset, retryAfter, reason string, offsetSec int64) {
		now := t0.Add(time.Duration(offsetSec%(10*365*86400)) * time.Second)
		h := http.Header{}
		h.Set("X-RateLimit-Reset", reset)
		h.Set("Retry-After", retryAfter)
		h.Set("RateLimit-Reason", reason)
		l := ratebudget.ParseLimit(h, now)
		at := l.ResumeAt(now)
		if !at.After(now) {
			t.Fatalf("ResumeAt(%v) = %v, not after now (limit %+v)", now, at, l)
		}
		if l.Quota() && at.After(now.Add(ratebudget.MaxQuotaPause)) {
			t.Fatalf("quota ResumeAt = %v, beyond %v", at, now.Add(ratebudget.MaxQuotaPause))
		}
		if l.RetryAfter < 0 {
			t.Fatalf("negative RetryAfter %v", l.RetryAfter)
		}
		if got, err := ratebudget.ParseReset(reset); err == nil {
			if got.Location() != time.UTC {
				t.Fatalf("ParseReset(%q) not in UTC", reset)
			}
			minute := got.Truncate(time.Minute)
			if back, err := ratebudget.ParseReset(minute.Format("2006-01-02T15:04Z")); err == nil && !back.Equal(minute) {
				t.Fatalf("round trip of %v = %v", minute, back)
			}
		}
	})
}
