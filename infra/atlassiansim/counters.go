package atlassiansim

import (
	"maps"
	"slices"
	"time"
)

// Counters are the simulator's meters, for tests and benchmarks (points per exported issue is the figure the
// product optimises).
type Counters struct {
	// Requests counts requests by endpoint key ("GET /rest/api/3/search/jql", "POST /oauth/token", ...),
	// including refused ones.
	Requests map[string]int64 `json:"requests"`
	// Statuses counts answers by endpoint key and then status code.
	Statuses map[string]map[int]int64 `json:"statuses"`
	// PointsTotal is every point charged since start (or the last reset), all tenants.
	PointsTotal int64 `json:"pointsTotal"`
	// PointsByTenant is the same by cloud id.
	PointsByTenant map[string]int64 `json:"pointsByTenant"`
	// PointsByKey is the same by endpoint key (what each kind of call cost: search pages, child pages, the
	// attachment 303s).
	PointsByKey map[string]int64 `json:"pointsByKey"`
	// WindowStart is the current quota hour; WindowPoints* are the points used in it.
	WindowStart          time.Time        `json:"windowStart"`
	WindowPointsGlobal   int64            `json:"windowPointsGlobal"`
	WindowPointsByTenant map[string]int64 `json:"windowPointsByTenant"`
	// RateLimited counts real (not injected) 429s by RateLimit-Reason.
	RateLimited map[string]int64 `json:"rateLimited"`
	// Faults counts injected faults by kind.
	Faults map[FaultKind]int64 `json:"faults"`
	// BytesServed counts attachment bytes sent, by the gateway (redirect=false) and the media host.
	BytesServed int64 `json:"bytesServed"`
}

type counters struct {
	Counters
	rateLimited map[string]int64
	searches    []Answer
}

// Answer is when a search request (POST or GET /search/jql) reached the simulator and when its answer was sent, in
// wall-clock time: the search is a chain (each page's cursor comes with the page before), so the time between one
// answer and the next request is what a client's own work adds to the chain.
type Answer struct {
	Arrived  time.Time `json:"arrived"`
	Answered time.Time `json:"answered"`
}

// maxSearchAnswers bounds the timeline a long-running simulator keeps (the oldest half is dropped when full).
const maxSearchAnswers = 100_000

func newCounters() *counters {
	c := &counters{}
	c.reset()
	return c
}

func (c *counters) reset() {
	c.Counters = Counters{Requests: map[string]int64{}, Statuses: map[string]map[int]int64{}, PointsByTenant: map[string]int64{},
		PointsByKey: map[string]int64{}, Faults: map[FaultKind]int64{}}
	c.rateLimited = map[string]int64{}
	c.searches = nil
}

func (c *counters) searched(a Answer) {
	if len(c.searches) >= maxSearchAnswers {
		c.searches = append(c.searches[:0], c.searches[maxSearchAnswers/2:]...)
	}
	c.searches = append(c.searches, a)
}

// SearchTimeline returns the search answers since start (or the last ResetCounters), in the order they were sent.
func (s *Server) SearchTimeline() []Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.counts.searches)
}

func (c *counters) points(tenant, key string, n int64) {
	c.PointsTotal += n
	c.PointsByTenant[tenant] += n
	c.PointsByKey[key] += n
}

func (c *counters) status(key string, code int) {
	m := c.Statuses[key]
	if m == nil {
		m = map[int]int64{}
		c.Statuses[key] = m
	}
	m[code]++
}

// Counters returns a snapshot of the meters.
func (s *Server) Counters() Counters {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits.roll(now)
	out := s.counts.Counters
	out.Requests = maps.Clone(out.Requests)
	out.Statuses = map[string]map[int]int64{}
	for k, v := range s.counts.Statuses {
		out.Statuses[k] = maps.Clone(v)
	}
	out.PointsByTenant = maps.Clone(out.PointsByTenant)
	out.PointsByKey = maps.Clone(out.PointsByKey)
	out.RateLimited = maps.Clone(s.counts.rateLimited)
	out.Faults = maps.Clone(out.Faults)
	out.WindowStart = s.limits.window
	out.WindowPointsGlobal = s.limits.global
	out.WindowPointsByTenant = maps.Clone(s.limits.tenant)
	return out
}

// ResetCounters zeroes the meters (not the quota usage, which only the hour resets).
func (s *Server) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.reset()
}
