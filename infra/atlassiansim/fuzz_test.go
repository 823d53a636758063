package atlassiansim

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"", "bytes=0-9", "bytes=-5", "bytes=5-", "bytes=1-0", "bytes=0-1,2-3", "bytes=x-y", "bytes=--1"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		r, status := parseRange(h, size)
		if status != 0 {
			if status != 400 && status != 416 {
				t.Fatalf("parseRange(%q, %d) status = %d", h, size, status)
			}
			return
		}
		if h != "" && (r.start < 0 || r.end >= size || r.start > r.end) {
			t.Fatalf("parseRange(%q, %d) = %+v, outside the entity", h, size, r)
		}
	})
}

// FuzzTokenRequest posts arbitrary bodies to /oauth/token: the answer is always a JSON OAuth error or a token,
// never a 5xx or a panic.
func FuzzTokenRequest(f *testing.F) {
	sim, err := New(Config{Seed: 1, Clock: NewManualClock(t0), Sites: 1, IssuesPerProject: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("application/json", `{"grant_type":"refresh_token","client_id":"sim-client-id","client_secret":"sim-client-secret","refresh_token":"x"}`)
	f.Add("application/x-www-form-urlencoded", "grant_type=authorization_code&code=abc&client_id=sim-client-id&client_secret=sim-client-secret")
	f.Add("application/json", `{"grant_type":1}`)
	f.Add("text/plain", "")
	f.Fuzz(func(t *testing.T, ct, body string) {
		req := httptest.NewRequest("POST", "/oauth/token", strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		sim.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("POST /oauth/token (%q, %q) = %d %q", ct, body, rec.Code, rec.Header().Get("Content-Type"))
		}
	})
}

// FuzzCursor feeds arbitrary nextPageToken values to the cursor opener: they are rejected, never trusted.
func FuzzCursor(f *testing.F) {
	sim, err := New(Config{Seed: 1, Clock: NewManualClock(t0), Sites: 1, IssuesPerProject: 1})
	if err != nil {
		f.Fatal(err)
	}
	st := sim.data.sites[0]
	c := &call{s: sim, site: st, user: sim.data.users[0], now: t0, loc: time.UTC}
	good := sim.sealCursor(c, "d", 5)
	f.Add(good)
	f.Add("")
	f.Add("e30")
	f.Fuzz(func(t *testing.T, tok string) {
		off, ok := sim.openCursor(tok, c, "d")
		if ok && (tok != good || off != 5) {
			t.Fatalf("openCursor(%q) = %d, true; only the sealed token may open", tok, off)
		}
	})
}
