package atlassiansim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestQuotaHeadersOnNormalAnswers(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.RateLimits.GlobalPointsPerHour = 100 })
	tr := f.token()
	s := f.site(0)
	r := f.jira("GET", s.CloudID, "/myself", tr.AccessToken, nil)
	if got, want := r.header.Get("RateLimit-Policy"), `"global-app-quota";q=100;w=3600`; got != want {
		t.Errorf("RateLimit-Policy = %q, want %q", got, want)
	}
	if got, want := r.header.Get("RateLimit"), `"global-app-quota";t=1800`; got != want {
		t.Errorf("RateLimit = %q, want %q", got, want)
	}
	if r.header.Get("X-RateLimit-NearLimit") != "" || r.header.Get("Retry-After") != "" {
		t.Errorf("normal answer far from the limit carries NearLimit/Retry-After: %v", r.header)
	}
	// /myself costs 3 points; after 27 calls 81 are used, so less than 20 % is left.
	for range 26 {
		r = f.jira("GET", s.CloudID, "/myself", tr.AccessToken, nil)
	}
	if got, want := r.header.Get("RateLimit"), `"global-app-quota";r=19;t=1800`; got != want {
		t.Errorf("RateLimit near the limit = %q, want %q", got, want)
	}
	if r.header.Get("X-RateLimit-NearLimit") != "true" {
		t.Errorf("X-RateLimit-NearLimit = %q, want true", r.header.Get("X-RateLimit-NearLimit"))
	}
}

func TestQuotaResetsAtTheHour(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.RateLimits.GlobalPointsPerHour = 10 })
	tr := f.token()
	s := f.site(0)
	var r result
	for i := 0; i < 4; i++ { // 3 points each: 12 used, the pool is spent
		if r = f.jira("GET", s.CloudID, "/myself", tr.AccessToken, nil); r.status != 200 {
			t.Fatalf("call %d = %d, want 200", i, r.status)
		}
	}
	r = f.jira("GET", s.CloudID, "/myself", tr.AccessToken, nil)
	want := map[string]string{"Retry-After": "1800", "X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0",
		"X-RateLimit-Reset": "2026-03-10T13:00:00Z", "RateLimit-Reason": ReasonGlobalQuota,
		"RateLimit-Policy": `"global-app-quota";q=10;w=3600`, "RateLimit": `"global-app-quota";r=0;t=1800`}
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("call after the quota = %d, want 429", r.status)
	}
	for k, v := range want {
		if got := r.header.Get(k); got != v {
			t.Errorf("429 %s = %q, want %q", k, got, v)
		}
	}
	// Every endpoint and every tenant is refused until the hour: no gradual throttling.
	if r := f.jira("POST", f.site(1).CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": "project is not empty"}); r.status != 429 {
		t.Errorf("other tenant during global exhaustion = %d, want 429", r.status)
	}
	f.clock.Advance(29*time.Minute + 59*time.Second)
	if r := f.jira("GET", s.CloudID, "/myself", tr.AccessToken, nil); r.status != 429 || r.header.Get("Retry-After") != "1" {
		t.Errorf("one second before the hour = %d (Retry-After %s), want 429 with 1", r.status, r.header.Get("Retry-After"))
	}
	f.clock.Advance(time.Second)
	tr = f.token() // the access token is still valid; a fresh one avoids depending on it
	if r := f.jira("GET", s.CloudID, "/myself", tr.AccessToken, nil); r.status != 200 {
		t.Errorf("at the top of the hour = %d, want 200", r.status)
	}
	c := f.sim.Counters()
	if c.RateLimited[ReasonGlobalQuota] != 3 || c.WindowPointsGlobal != 3 || !c.WindowStart.Equal(t0.Truncate(time.Hour).Add(time.Hour)) {
		t.Errorf("counters = %+v", c)
	}
}

func TestTenantQuota(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.RateLimits.TenantPointsPerHour = 6 })
	tr := f.token()
	a, b := f.site(0).CloudID, f.site(1).CloudID
	f.jira("GET", a, "/myself", tr.AccessToken, nil)
	f.jira("GET", a, "/myself", tr.AccessToken, nil)
	r := f.jira("GET", a, "/myself", tr.AccessToken, nil)
	if r.status != 429 || r.header.Get("RateLimit-Reason") != ReasonTenantQuota {
		t.Errorf("tenant over its pool = %d %q, want 429 %s", r.status, r.header.Get("RateLimit-Reason"), ReasonTenantQuota)
	}
	if r := f.jira("GET", b, "/myself", tr.AccessToken, nil); r.status != 200 {
		t.Errorf("other tenant = %d, want 200", r.status)
	}
	if !strings.Contains(r.header.Get("RateLimit-Policy"), `"tenant-app-quota";q=6;w=3600`) {
		t.Errorf("RateLimit-Policy = %q, want the tenant pool listed", r.header.Get("RateLimit-Policy"))
	}
}

func TestPointsCharged(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	tests := []struct {
		name string
		call func() result
		want int64
	}{
		{"search of 50 ids", func() result {
			return f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": "project is not empty"})
		}, 51},
		{"get issue", func() result { return f.jira("GET", s.CloudID, "/issue/"+s.Projects[0].Key+"-1", tr.AccessToken, nil) }, 2},
		{"myself", func() result { return f.jira("GET", s.CloudID, "/myself", tr.AccessToken, nil) }, 3},
		{"bulkfetch of 3", func() result {
			return f.jira("POST", s.CloudID, "/issue/bulkfetch", tr.AccessToken, map[string]any{"issueIdsOrKeys": keysOf(s, 0, 3)})
		}, 4},
		{"not found", func() result { return f.jira("GET", s.CloudID, "/issue/NOPE-1", tr.AccessToken, nil) }, 1},
	}
	for _, tt := range tests {
		before := f.sim.Counters().PointsByTenant[s.CloudID]
		tt.call()
		if got := f.sim.Counters().PointsByTenant[s.CloudID] - before; got != tt.want {
			t.Errorf("%s cost %d points, want %d", tt.name, got, tt.want)
		}
	}
}

func TestBurstLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.RateLimits.BurstRPS = map[string]float64{"GET /rest/api/3/myself": 2}
	})
	tr := f.token()
	a, b := f.site(0).CloudID, f.site(1).CloudID
	for i := 0; i < 2; i++ {
		if r := f.jira("GET", a, "/myself", tr.AccessToken, nil); r.status != 200 {
			t.Fatalf("call %d within the bucket = %d", i, r.status)
		}
	}
	r := f.jira("GET", a, "/myself", tr.AccessToken, nil)
	if r.status != 429 {
		t.Fatalf("call beyond the bucket = %d, want 429", r.status)
	}
	want := map[string]string{"Retry-After": "1", "X-RateLimit-Limit": "2", "X-RateLimit-Remaining": "0",
		"X-RateLimit-Reset": "2026-03-10T12:30:01Z", "RateLimit-Reason": ReasonBurst,
		"RateLimit-Policy": `"jira-burst-based";q=2;w=1`, "RateLimit": `"jira-burst-based";r=0;t=1`}
	for k, v := range want {
		if got := r.header.Get(k); got != v {
			t.Errorf("burst 429 %s = %q, want %q", k, got, v)
		}
	}
	// Buckets are per tenant and per endpoint.
	if r := f.jira("GET", b, "/myself", tr.AccessToken, nil); r.status != 200 {
		t.Errorf("same endpoint, other tenant = %d, want 200", r.status)
	}
	if r := f.jira("GET", a, "/issue/"+f.site(0).Projects[0].Key+"-1", tr.AccessToken, nil); r.status != 200 {
		t.Errorf("other endpoint, same tenant = %d, want 200", r.status)
	}
	f.clock.Advance(500 * time.Millisecond) // refills one token at 2/s
	if r := f.jira("GET", a, "/myself", tr.AccessToken, nil); r.status != 200 {
		t.Errorf("after refill = %d, want 200", r.status)
	}
	if f.sim.Counters().RateLimited[ReasonBurst] != 1 {
		t.Errorf("RateLimited = %v, want one burst", f.sim.Counters().RateLimited)
	}
}

func TestDefaultBurstAndDisable(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0).CloudID
	n429 := 0
	for range 101 {
		if f.jira("GET", s, "/myself", tr.AccessToken, nil).status == 429 {
			n429++
		}
	}
	if n429 != 1 {
		t.Errorf("101 instant GETs at the default 100/s got %d 429s, want 1", n429)
	}
	f.sim.SetRateLimits(RateLimitConfig{Disabled: true})
	for range 150 {
		if r := f.jira("GET", s, "/myself", tr.AccessToken, nil); r.status != 200 {
			t.Fatalf("with limits disabled = %d", r.status)
		}
	}
}
