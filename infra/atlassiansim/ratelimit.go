package atlassiansim

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Rate-limit reasons (RateLimit-Reason header), from Atlassian's rate limiting page.
const (
	ReasonGlobalQuota = "jira-quota-global-based"
	ReasonTenantQuota = "jira-quota-tenant-based"
	ReasonBurst       = "jira-burst-based"
)

// RateLimitConfig mirrors Atlassian's 2026 limits for 3LO apps. The zero value means Atlassian's defaults.
type RateLimitConfig struct {
	// Disabled turns every limit off (headers on normal answers are still sent).
	Disabled bool `json:"disabled"`
	// GlobalPointsPerHour is the Tier 1 pool shared by all tenants of the app; default 65000, negative = unlimited.
	GlobalPointsPerHour int64 `json:"globalPointsPerHour"`
	// TenantPointsPerHour, when positive, adds a Tier 2 per-tenant (per cloud id) pool of this size.
	TenantPointsPerHour int64 `json:"tenantPointsPerHour"`
	// BurstRPS overrides the steady-state rate of one endpoint, keyed like "GET /rest/api/3/issue/{issueIdOrKey}".
	BurstRPS map[string]float64 `json:"burstRps,omitempty"`
	// BurstScale multiplies every burst rate (default 1); 0.01 makes bursts easy to reach from a test.
	BurstScale float64 `json:"burstScale"`
	// NoBurst turns the per-second buckets off and keeps the points quota.
	NoBurst bool `json:"noBurst"`
}

func (c *RateLimitConfig) setDefaults() {
	if c.GlobalPointsPerHour == 0 {
		c.GlobalPointsPerHour = 65000
	}
	if c.BurstScale <= 0 {
		c.BurstScale = 1
	}
}

// defaultBurst lists Atlassian's documented steady-state rates: per method, and the per-endpoint overrides.
var defaultBurst = map[string]float64{
	"GET": 100, "POST": 100, "PUT": 50, "DELETE": 50,
	"GET /rest/api/3/attachment/content/{id}":        300,
	"GET /rest/api/3/attachment/thumbnail/{id}":      200,
	"GET /rest/api/3/issue/{issueIdOrKey}":           150,
	"GET /rest/api/3/issue/{issueIdOrKey}/changelog": 200,
	"GET /rest/api/3/user":                           150,
	"POST /rest/api/3/search/approximate-count":      150,
}

type limiter struct {
	cfg     RateLimitConfig
	window  time.Time // start of the current UTC hour
	global  int64     // points used in the window, all tenants
	tenant  map[string]int64
	buckets map[string]*rate.Limiter
}

func newLimiter(cfg RateLimitConfig) *limiter {
	return &limiter{cfg: cfg, tenant: map[string]int64{}, buckets: map[string]*rate.Limiter{}}
}

// denial describes a 429.
type denial struct {
	reason     string
	retryAfter int64
	limit      float64
	reset      time.Time
	policy     string // RateLimit-Policy entry
	window     int64
}

func (l *limiter) roll(now time.Time) {
	// Truncate works on absolute time, so hour boundaries are UTC hour boundaries.
	if w := now.Truncate(time.Hour); !w.Equal(l.window) {
		l.window, l.global = w, 0
		clear(l.tenant)
	}
}

func (l *limiter) burstRate(method, key string) float64 {
	r, ok := l.cfg.BurstRPS[key]
	if !ok {
		if r, ok = defaultBurst[key]; !ok {
			r = defaultBurst[method]
		}
		r *= l.cfg.BurstScale
	}
	return r
}

// check decides whether a request may proceed. Quota is checked first: when the hour's points are spent every
// request is refused until the reset ("no gradual throttling").
func (l *limiter) check(tenant, method, key string, now time.Time) *denial {
	l.roll(now)
	if l.cfg.Disabled {
		return nil
	}
	reset := l.window.Add(time.Hour)
	toReset := int64(math.Ceil(reset.Sub(now).Seconds()))
	if q := l.cfg.GlobalPointsPerHour; q > 0 && l.global >= q {
		return &denial{reason: ReasonGlobalQuota, retryAfter: max(1, toReset), limit: float64(q), reset: reset,
			policy: "global-app-quota", window: 3600}
	}
	if q := l.cfg.TenantPointsPerHour; q > 0 && l.tenant[tenant] >= q {
		return &denial{reason: ReasonTenantQuota, retryAfter: max(1, toReset), limit: float64(q), reset: reset,
			policy: "tenant-app-quota", window: 3600}
	}
	if l.cfg.NoBurst {
		return nil
	}
	rps := l.burstRate(method, key)
	if rps <= 0 {
		return nil
	}
	bk := tenant + " " + key
	b := l.buckets[bk]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(rps), max(1, int(rps)))
		l.buckets[bk] = b
	}
	if b.AllowN(now, 1) {
		return nil
	}
	res := b.ReserveN(now, 1)
	wait := res.DelayFrom(now)
	res.CancelAt(now)
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	return &denial{reason: ReasonBurst, retryAfter: secs, limit: rps, reset: now.Add(time.Duration(secs) * time.Second),
		policy: ReasonBurst, window: 1}
}

func (l *limiter) charge(tenant string, pts int64, now time.Time) {
	l.roll(now)
	l.global += pts
	l.tenant[tenant] += pts
}

func fmtRate(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// writeHeaders sets the 429 headers documented in jira-cloud.md §4.
func (d *denial) writeHeaders(h http.Header) {
	h.Set("Retry-After", strconv.FormatInt(d.retryAfter, 10))
	h.Set("X-RateLimit-Limit", fmtRate(d.limit))
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", d.reset.UTC().Format("2006-01-02T15:04:05Z"))
	h.Set("RateLimit-Reason", d.reason)
	h.Set("RateLimit-Policy", fmt.Sprintf("%q;q=%s;w=%d", d.policy, fmtRate(d.limit), d.window))
	h.Set("RateLimit", fmt.Sprintf("%q;r=0;t=%d", d.policy, d.retryAfter))
}

// quotaHeaders sets RateLimit-Policy and RateLimit on a normal answer; `r` (remaining) and X-RateLimit-NearLimit
// appear only when less than 20 % of a pool is left.
func (l *limiter) quotaHeaders(h http.Header, tenant string, now time.Time) {
	l.roll(now)
	t := int64(math.Ceil(l.window.Add(time.Hour).Sub(now).Seconds()))
	var pol, cur []string
	near := false
	add := func(name string, q, used int64) {
		if q <= 0 {
			return
		}
		pol = append(pol, fmt.Sprintf("%q;q=%d;w=3600", name, q))
		rem := max(0, q-used)
		if rem*5 < q {
			near = true
			cur = append(cur, fmt.Sprintf("%q;r=%d;t=%d", name, rem, t))
		} else {
			cur = append(cur, fmt.Sprintf("%q;t=%d", name, t))
		}
	}
	add("global-app-quota", l.cfg.GlobalPointsPerHour, l.global)
	add("tenant-app-quota", l.cfg.TenantPointsPerHour, l.tenant[tenant])
	if len(pol) == 0 {
		return
	}
	h.Set("RateLimit-Policy", strings.Join(pol, ", "))
	h.Set("RateLimit", strings.Join(cur, ", "))
	if near {
		h.Set("X-RateLimit-NearLimit", "true")
	}
}

// SetRateLimits replaces the rate-limit settings; usage in the current hour is kept, burst buckets start full.
func (s *Server) SetRateLimits(cfg RateLimitConfig) {
	cfg.setDefaults()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits.cfg = cfg
	s.limits.buckets = map[string]*rate.Limiter{}
}

// RateLimits returns the rate-limit settings in force.
func (s *Server) RateLimits() RateLimitConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits.cfg
}

// BurstRate is the steady-state rate (requests per second) of the bucket of one endpoint key, e.g.
// "GET /rest/api/3/attachment/content/{id}", under this configuration (benchmarks compute time floors from it).
func (c RateLimitConfig) BurstRate(key string) float64 {
	c.setDefaults()
	method, _, _ := strings.Cut(key, " ")
	return (&limiter{cfg: c}).burstRate(method, key)
}
