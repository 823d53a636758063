package atlassiansim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	const search = "POST /rest/api/3/search/jql"
	tests := []struct {
		name  string
		fault Fault
		check func(t *testing.T, f *fixture, resp *http.Response, err error)
	}{
		{"status 503", Fault{Endpoint: search, Kind: FaultStatus, RetryAfter: 7, Count: 1}, func(t *testing.T, f *fixture, resp *http.Response, err error) {
			if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" {
				t.Errorf("status fault = %v, %v; want 503 with Retry-After 7", resp, err)
			}
		}},
		{"status 500", Fault{Endpoint: "*", Kind: FaultStatus, Status: 500, Count: 1}, func(t *testing.T, f *fixture, resp *http.Response, err error) {
			if err != nil || resp.StatusCode != 500 {
				t.Errorf("status fault = %v, %v; want 500", resp, err)
			}
		}},
		{"429 storm", Fault{Endpoint: search, Kind: FaultRateLimit, RetryAfter: 30, Reason: ReasonGlobalQuota, Count: 1}, func(t *testing.T, f *fixture, resp *http.Response, err error) {
			if err != nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "30" || resp.Header.Get("RateLimit-Reason") != ReasonGlobalQuota {
				t.Errorf("429 fault = %v, %v", resp, err)
			}
		}},
		{"connection reset", Fault{Endpoint: search, Kind: FaultReset, Count: 1}, func(t *testing.T, f *fixture, resp *http.Response, err error) {
			if err == nil {
				t.Errorf("reset fault answered %d, want a transport error", resp.StatusCode)
			}
		}},
		{"truncated body", Fault{Endpoint: search, Kind: FaultTruncate, Count: 1}, func(t *testing.T, f *fixture, resp *http.Response, err error) {
			if err != nil {
				t.Fatalf("truncate fault: %v", err)
			}
			b, rerr := io.ReadAll(resp.Body)
			if rerr == nil || json.Valid(b) {
				t.Errorf("truncated body read = %d bytes, err %v; want a short read error", len(b), rerr)
			}
		}},
		{"latency", Fault{Endpoint: search, Kind: FaultLatency, Latency: Duration(time.Millisecond), Count: 1}, func(t *testing.T, f *fixture, resp *http.Response, err error) {
			if err != nil || resp.StatusCode != 200 || f.sim.Counters().Faults[FaultLatency] != 1 {
				t.Errorf("latency fault = %v, %v, counters %v", resp, err, f.sim.Counters().Faults)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			tr := f.token()
			if err := f.sim.SetFault(tt.fault); err != nil {
				t.Fatal(err)
			}
			url := f.url + "/ex/jira/" + f.site(0).CloudID + "/rest/api/3/search/jql"
			req, _ := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(`{"jql":"project is not empty","fields":["summary"]}`))
			req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := (&http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			if resp != nil {
				defer resp.Body.Close()
			}
			tt.check(t, f, resp, err)
			// Count 1: the next call is normal again.
			if r := f.jira("POST", f.site(0).CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": "project is not empty"}); r.status != 200 {
				t.Errorf("after the fault = %d, want 200", r.status)
			}
			if len(f.sim.Faults()) != 0 {
				t.Errorf("fault with count 1 still installed: %v", f.sim.Faults())
			}
		})
	}
}

func TestFaultNoRefreshToken(t *testing.T) {
	f := newFixture(t, nil)
	_, first := f.exchange(f.code(f.admin().AccountID, nil))
	if err := f.sim.SetFault(Fault{Endpoint: KeyToken, Kind: FaultNoRefreshToken, Count: 1}); err != nil {
		t.Fatal(err)
	}
	r, tr := f.refresh(first.RefreshToken)
	if r.status != 200 || tr.RefreshToken != "" || tr.AccessToken == "" {
		t.Fatalf("refresh with the fault = %d %s, want 200 without refresh_token", r.status, r.body)
	}
	// The client keeps its token, which still works later.
	f.clock.Advance(time.Hour)
	if r, tr := f.refresh(first.RefreshToken); r.status != 200 || tr.RefreshToken == "" {
		t.Errorf("refresh with the kept token = %d %s, want 200", r.status, r.body)
	}
}

func TestFaultValidation(t *testing.T) {
	for _, bad := range []Fault{{Kind: FaultStatus}, {Endpoint: "*", Kind: "boom"}, {Endpoint: "*", Kind: FaultLatency},
		{Endpoint: "*", Kind: FaultStatus, Status: 200}, {Endpoint: "*", Kind: FaultReset, Count: -1}} {
		if err := bad.validate(); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", bad)
		}
	}
}
