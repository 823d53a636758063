package jira

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
)

func fixedToken(s string) oauth2.TokenSource {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: s})
}

func noSleep(waits *[]time.Duration) func(context.Context, time.Duration) error {
	return func(_ context.Context, d time.Duration) error {
		*waits = append(*waits, d)
		return nil
	}
}

func TestAgainstSimulator(t *testing.T) {
	sim, err := atlassiansim.New(atlassiansim.Config{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	base, err := sim.Start(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := sim.IssueTokens(sim.ConsentingUsers()[0].AccountID, "read:jira-work", "read:jira-user", "offline_access")
	if err != nil {
		t.Fatal(err)
	}
	site := sim.Sites()[0]
	proj := site.Projects[0]
	c := New(base, fixedToken(tr.AccessToken), Options{})
	ctx := t.Context()

	res, err := c.ParseJQL(ctx, site.CloudID, "project = "+proj.Key, "order by key", "project = ", "universe = 42")
	if err != nil {
		t.Fatalf("ParseJQL() = %v", err)
	}
	wants := []struct{ errs, bounded bool }{{false, true}, {false, false}, {true, false}, {true, false}}
	for i, w := range wants {
		if got := len(res[i].Errors) > 0; got != w.errs {
			t.Errorf("ParseJQL(%q) errors = %v, want errors %v", res[i].Query, res[i].Errors, w.errs)
		}
		if got := res[i].Bounded(); got != w.bounded {
			t.Errorf("ParseJQL(%q).Bounded() = %v, want %v", res[i].Query, got, w.bounded)
		}
	}

	n, err := c.ApproximateCount(ctx, site.CloudID, "project = "+proj.Key)
	if err != nil || n != int64(proj.Issues) {
		t.Errorf("ApproximateCount(project = %s) = %d, %v, want %d", proj.Key, n, err, proj.Issues)
	}
	var se *StatusError
	if _, err := c.ApproximateCount(ctx, site.CloudID, "order by key"); !errors.As(err, &se) || se.Status != 400 {
		t.Errorf("ApproximateCount(unbounded) = %v, want a 400 StatusError", err)
	}

	// A token without the needed scope: a typed 401.
	weak, err := sim.IssueTokens(sim.ConsentingUsers()[0].AccountID, "read:me")
	if err == nil {
		_, err = New(base, fixedToken(weak.AccessToken), Options{}).ApproximateCount(ctx, site.CloudID, "project = "+proj.Key)
		var ue *UnauthorizedError
		if !errors.As(err, &ue) || !errors.Is(err, ErrUnauthorized) {
			t.Errorf("ApproximateCount(weak token) = %v, want UnauthorizedError", err)
		}
	}
	// A site the grant does not cover: 401 too.
	if _, err := c.ParseJQL(ctx, "00000000-0000-0000-0000-000000000000", "project = X"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("ParseJQL(unknown site) = %v, want ErrUnauthorized", err)
	}
}

func TestRateLimit(t *testing.T) {
	tests := []struct {
		name        string
		headers     map[string]string
		failures    int
		wantErr     bool
		wantCalls   int32
		wantMinWait time.Duration
		wantReason  string
	}{
		{"burst retried after Retry-After", map[string]string{"Retry-After": "3", "RateLimit-Reason": "jira-burst-based"}, 1, false, 2, 3 * time.Second, ""},
		{"quota not retried", map[string]string{"Retry-After": "1847", "RateLimit-Reason": "jira-quota-global-based", "X-RateLimit-Reset": "2025-10-08T15:00Z"}, 1, true, 1, 0, "jira-quota-global-based"},
		{"too long a wait is returned", map[string]string{"Retry-After": "120", "RateLimit-Reason": "jira-burst-based"}, 1, true, 1, 0, "jira-burst-based"},
		{"bounded retries", map[string]string{"Retry-After": "1"}, 100, true, 4, 2 * time.Second, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) <= int32(tt.failures) {
					for k, v := range tt.headers {
						w.Header().Set(k, v)
					}
					w.WriteHeader(429)
					return
				}
				_, _ = w.Write([]byte(`{"count":7}`))
			}))
			defer srv.Close()
			var waits []time.Duration
			c := New(srv.URL, fixedToken("t"), Options{Sleep: noSleep(&waits)})
			n, err := c.ApproximateCount(t.Context(), "site", "project = A")
			if (err != nil) != tt.wantErr || calls.Load() != tt.wantCalls {
				t.Fatalf("ApproximateCount() = %d, %v after %d calls, want error %v after %d", n, err, calls.Load(), tt.wantErr, tt.wantCalls)
			}
			for _, w := range waits {
				if w < tt.wantMinWait {
					t.Errorf("waited %v, want at least %v", w, tt.wantMinWait)
				}
			}
			var rl *RateLimitError
			if tt.wantReason != "" && (!errors.As(err, &rl) || rl.Reason != tt.wantReason || rl.Reset.IsZero()) {
				t.Errorf("ApproximateCount() = %v, want RateLimitError with reason %s and a reset", err, tt.wantReason)
			}
		})
	}
	if rl := (&Client{o: Options{Now: time.Now}}).rateLimit(http.Header{"X-Ratelimit-Reset": {"2025-10-08T15:00Z"}}); !rl.Reset.Equal(time.Date(2025, 10, 8, 15, 0, 0, 0, time.UTC)) {
		t.Errorf("rateLimit(X-RateLimit-Reset: 2025-10-08T15:00Z).Reset = %v", rl.Reset)
	}
}

func TestNeverFollowsRedirects(t *testing.T) {
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
		_, _ = w.Write([]byte(`{"count":1}`))
	}))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/x", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	_, err := New(srv.URL, fixedToken("secret"), Options{}).ApproximateCount(t.Context(), "s", "project = A")
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusTemporaryRedirect || leaked.Load() {
		t.Errorf("ApproximateCount(redirect) = %v, leaked %v; want a 307 StatusError and no request elsewhere", err, leaked.Load())
	}
}

func TestTimeoutAndTokenErrors(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	var waits []time.Duration
	_, err := New(srv.URL, fixedToken("t"), Options{Timeout: 50 * time.Millisecond, Sleep: noSleep(&waits)}).ApproximateCount(t.Context(), "s", "project = A")
	if err == nil || len(waits) != 3 {
		t.Errorf("ApproximateCount(hanging server) = %v after %d retries, want an error after 3", err, len(waits))
	}
	reauth := errors.New("reauth required")
	ts := oauth2.ReuseTokenSource(nil, tokenFunc(func() (*oauth2.Token, error) { return nil, reauth }))
	if _, err := New(srv.URL, ts, Options{}).ParseJQL(t.Context(), "s", "x"); !errors.Is(err, reauth) || strings.Contains(err.Error(), "Bearer") {
		t.Errorf("ParseJQL(failing token source) = %v, want it wrapped", err)
	}
}

type tokenFunc func() (*oauth2.Token, error)

func (f tokenFunc) Token() (*oauth2.Token, error) { return f() }
