package pacer_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"jiraexport/infra/atlassiansim"
	"jiraexport/shared/ratebudget"
	"jiraexport/shared/ratebudget/pacer"
)

type simEnv struct {
	sim   *atlassiansim.Server
	base  string
	token string
	sites []atlassiansim.Site
}

func startSim(t *testing.T, cfg atlassiansim.Config) *simEnv {
	t.Helper()
	cfg.Seed = 7
	sim, err := atlassiansim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base, err := sim.Start(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	tok, err := sim.IssueTokens(sim.ConsentingUsers()[0].AccountID, "read:jira-work", "read:jira-user", "offline_access")
	if err != nil {
		t.Fatal(err)
	}
	return &simEnv{sim: sim, base: base, token: tok.AccessToken, sites: sim.Sites()}
}

// answer is what the tests read of a response: its body is drained and closed inside call.
type answer struct {
	StatusCode int
	Header     http.Header
}

func (e *simEnv) call(t *testing.T, hc *http.Client, method, cloudID, path, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.base+"/ex/jira/"+cloudID+"/rest/api/3"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	return answer{StatusCode: resp.StatusCode, Header: resp.Header}
}

func client(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// At Atlassian's default burst limits, a burst of concurrent calls meets 429s without pacing and none with it.
// Both sides run at a fifth of Atlassian's rates (the simulator's BurstScale, the pacer's Share), so the simulator
// outpaces them even under -race on a loaded machine; the arithmetic is the same as at full speed.
func TestPacingAvoidsBurst429s(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: paces 400 real requests on the wall clock (5-10 s); run `make test` for the full suite")
	}
	const scale = 0.2
	env := startSim(t, atlassiansim.Config{RateLimits: atlassiansim.RateLimitConfig{BurstScale: scale}}) // wall clock
	paced := client(pacer.New(nil, pacer.Options{Share: scale}))
	plain := client(http.DefaultTransport.(*http.Transport).Clone())
	key := env.sites[0].Projects[0].Key

	// 24 concurrent callers, as an export's worker pool would be: far faster than 100/s without pacing.
	burst := func(hc *http.Client, cloudID string, n int) map[int]int {
		var mu sync.Mutex
		statuses := map[int]int{}
		next := make(chan int)
		var wg sync.WaitGroup
		for range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					path := "/myself"
					if i%2 == 1 {
						path = "/issue/" + key + "-1"
					}
					r := env.call(t, hc, "GET", cloudID, path, "")
					mu.Lock()
					statuses[r.StatusCode]++
					mu.Unlock()
				}
			}()
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		return statuses
	}
	// Different sites: the simulator keeps one bucket set per tenant, as Atlassian does.
	if got := burst(paced, env.sites[0].CloudID, 200); got[200] != 200 {
		t.Errorf("paced burst of 200: statuses %v, want 200 × 200", got)
	}
	if c := env.sim.Counters(); c.RateLimited[ratebudget.ReasonBurst] != 0 {
		t.Errorf("paced burst met %d burst 429s, want none", c.RateLimited[ratebudget.ReasonBurst])
	}
	if got := burst(plain, env.sites[1].CloudID, 200); got[http.StatusTooManyRequests] == 0 {
		t.Errorf("unpaced burst of 200: statuses %v, want some 429s (else this test proves nothing)", got)
	}
}

func TestNearLimitSlowsTheSite(t *testing.T) {
	clock := atlassiansim.NewManualClock(time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC))
	env := startSim(t, atlassiansim.Config{Clock: clock, RateLimits: atlassiansim.RateLimitConfig{GlobalPointsPerHour: 1000, NoBurst: true}})
	tr := pacer.New(nil, pacer.Options{Now: clock.Now, Rates: map[string]float64{"GET": 40}, Burst: 1})
	hc := client(tr)
	a, b := env.sites[0].CloudID, env.sites[1].CloudID
	myself := ratebudget.Endpoint{Method: "GET", Path: "/rest/api/3/myself"}
	search := ratebudget.Endpoint{Method: "POST", Path: "/rest/api/3/search/jql"}

	elapsed := func(n int) time.Duration {
		start := time.Now()
		for range n {
			env.call(t, hc, "GET", a, "/myself", "")
		}
		return time.Since(start)
	}
	elapsed(1)
	if r := tr.Rate(a, myself); r != 40 {
		t.Fatalf("rate far from the quota = %v, want 40", r)
	}
	// 1000 points, 3 per /myself: below 20 % left after 267 calls. Cheaper to get there by search pages.
	for env.sim.Counters().WindowPointsGlobal < 810 {
		env.call(t, client(http.DefaultTransport), "POST", b, "/search/jql", `{"jql":"project is not empty","maxResults":100}`)
	}
	r := env.call(t, hc, "GET", a, "/myself", "")
	if r.Header.Get("X-RateLimit-NearLimit") != "true" {
		t.Fatalf("no NearLimit after %d points", env.sim.Counters().WindowPointsGlobal)
	}
	if got := tr.Rate(a, myself); got != 20 {
		t.Errorf("rate after NearLimit = %v, want 20 (halved)", got)
	}
	if got := tr.Rate(a, search); got != 50 {
		t.Errorf("another endpoint of the same site = %v, want 50 (the quota is the site's, not the endpoint's)", got)
	}
	if got := tr.Rate(b, myself); got != 40 {
		t.Errorf("another site = %v, want 40 (untouched)", got)
	}
	// Slower in fact: 10 more calls at 20/s take at least 450 ms (one token may be ready at once).
	if d := elapsed(10); d < 450*time.Millisecond {
		t.Errorf("10 calls after NearLimit took %v, want at least 450ms at 20/s", d)
	}
	clock.Advance(31 * time.Second) // no further NearLimit within SlowFor: back to full speed
	if got := tr.Rate(a, myself); got != 40 {
		t.Errorf("rate after the slow-down = %v, want 40", got)
	}
}

func TestBurst429SlowsOnlyThatBucket(t *testing.T) {
	clock := atlassiansim.NewManualClock(time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC))
	env := startSim(t, atlassiansim.Config{Clock: clock})
	a := env.sites[0].CloudID
	if err := env.sim.SetFault(atlassiansim.Fault{Endpoint: "GET /rest/api/3/myself", Kind: atlassiansim.FaultRateLimit, Count: 2}); err != nil {
		t.Fatal(err)
	}
	tr := pacer.New(nil, pacer.Options{Now: clock.Now})
	hc := client(tr)
	myself := ratebudget.Endpoint{Method: "GET", Path: "/rest/api/3/myself"}
	issue := ratebudget.Endpoint{Method: "GET", Path: "/rest/api/3/issue/{issueIdOrKey}"}
	if r := env.call(t, hc, "GET", a, "/myself", ""); r.StatusCode != 429 || r.Header.Get("RateLimit-Reason") != ratebudget.ReasonBurst {
		t.Fatalf("fault answer = %d %q", r.StatusCode, r.Header.Get("RateLimit-Reason"))
	}
	if got := tr.Rate(a, myself); got != 50 {
		t.Errorf("after one burst 429 = %v, want 50", got)
	}
	start := time.Now()
	env.call(t, hc, "GET", a, "/myself", "") // held until Retry-After (1 s), then the second fault
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retry after a burst 429 went after %v, want it held for Retry-After (1s)", d)
	}
	if got := tr.Rate(a, myself); got != 25 {
		t.Errorf("after two burst 429s = %v, want 25 (compounded)", got)
	}
	if got := tr.Rate(a, issue); got != 150 {
		t.Errorf("another endpoint after a burst 429 = %v, want 150 (untouched)", got)
	}
}

func TestQuotaPauseStopsCallsUntilTheReset(t *testing.T) {
	clock := atlassiansim.NewManualClock(time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC))
	env := startSim(t, atlassiansim.Config{Clock: clock, RateLimits: atlassiansim.RateLimitConfig{GlobalPointsPerHour: 10, NoBurst: true}})
	type report struct {
		site string
		l    ratebudget.Limit
	}
	var mu sync.Mutex
	var reports []report
	tr := pacer.New(nil, pacer.Options{Now: clock.Now, OnQuota: func(_ context.Context, site string, l ratebudget.Limit) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, report{site, l})
	}})
	hc := client(tr)
	a, b := env.sites[0].CloudID, env.sites[1].CloudID
	for range 4 { // 12 points: the hour's quota is spent
		env.call(t, hc, "GET", a, "/myself", "")
	}
	r := env.call(t, hc, "GET", a, "/myself", "")
	if r.StatusCode != 429 || r.Header.Get("RateLimit-Reason") != ratebudget.ReasonGlobalQuota {
		t.Fatalf("after the quota = %d %q", r.StatusCode, r.Header.Get("RateLimit-Reason"))
	}
	seen := env.sim.Counters().Requests["GET /rest/api/3/myself"]
	for _, site := range []string{a, b} { // every site waits: the global pool is the app's
		r := env.call(t, hc, "GET", site, "/myself", "")
		if r.StatusCode != 429 || r.Header.Get("X-Ratebudget-Paused") != "true" || r.Header.Get("X-RateLimit-Reset") != "2026-03-10T13:00:00Z" {
			t.Errorf("during the pause, site %s: %d %v", site, r.StatusCode, r.Header)
		}
	}
	if got := env.sim.Counters().Requests["GET /rest/api/3/myself"]; got != seen {
		t.Errorf("requests reached Atlassian during the pause: %d, want %d", got, seen)
	}
	if len(reports) != 1 || reports[0].site != a || reports[0].l.Scope() != ratebudget.ScopeGlobal {
		t.Errorf("OnQuota reports = %+v, want one global report", reports)
	}
	if at, ok := tr.PausedUntil(b); !ok || !at.Equal(time.Date(2026, 3, 10, 13, 0, 0, 0, time.UTC)) {
		t.Errorf("PausedUntil = %v, %v", at, ok)
	}
	clock.Advance(30 * time.Minute)
	if r := env.call(t, hc, "GET", b, "/myself", ""); r.StatusCode != 200 {
		t.Errorf("after the reset = %d, want 200", r.StatusCode)
	}
}

func TestNonJiraRequestsPassThrough(t *testing.T) {
	env := startSim(t, atlassiansim.Config{})
	tr := pacer.New(nil, pacer.Options{Rates: map[string]float64{"GET": 0.001}, Burst: 1})
	hc := client(tr)
	for range 3 { // at 0.001/s a paced request would wait 1000 s
		req, _ := http.NewRequestWithContext(t.Context(), "GET", env.base+"/oauth/token/accessible-resources", nil)
		req.Header.Set("Authorization", "Bearer "+env.token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// A Jira call that cannot get a token before its deadline fails at once instead of waiting.
	env.call(t, hc, "GET", env.sites[0].CloudID, "/myself", "") // takes the one token
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", env.base+"/ex/jira/"+env.sites[0].CloudID+"/rest/api/3/myself", nil)
	start := time.Now()
	resp, err := hc.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	if err == nil || time.Since(start) > 500*time.Millisecond {
		t.Errorf("call beyond its deadline = %v after %v, want an immediate error", err, time.Since(start))
	}
}
