package tokens

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// trap records every request that reaches it: the host a redirect would send the client secret to.
type trap struct {
	mu     sync.Mutex
	bodies []string
}

func (tr *trap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	tr.mu.Lock()
	tr.bodies = append(tr.bodies, string(b))
	tr.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"access_token":"stolen","refresh_token":"stolen","expires_in":3600,"token_type":"Bearer"}`)
}

func (tr *trap) count() int { tr.mu.Lock(); defer tr.mu.Unlock(); return len(tr.bodies) }

// TestRefreshFollowsNoRedirect: a token endpoint answering 307 or 308 (which Go would follow with the same body:
// client secret and refresh token) makes the refresh fail; nothing reaches the redirect's target, even though
// the Store was given a client that follows redirects.
func TestRefreshFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			ctx := t.Context()
			tr := &trap{}
			elsewhere := httptest.NewServer(tr)
			t.Cleanup(elsewhere.Close)
			var hits int
			var mu sync.Mutex
			redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				hits++
				mu.Unlock()
				http.Redirect(w, r, elsewhere.URL+"/oauth/token", status)
			}))
			t.Cleanup(redirector.Close)

			tok := f.grant(t)
			cfg := *f.cfg
			cfg.Endpoint.TokenURL = redirector.URL + "/oauth/token"
			s := NewStore(f.env.Clients.DynamoDB, f.env.Clients.KMS, f.env.Table, f.env.KeyARN, &cfg,
				WithClock(f.clock.Now), WithGrantReauthCallback(f.reauth.record),
				WithHTTPClient(&http.Client{}), // follows redirects by default: the Store must not
				WithRetryPolicy(RetryPolicy{Attempts: 1}))
			if err := s.Put(ctx, "c", tok, f.clock.Now()); err != nil {
				t.Fatal(err)
			}
			f.expire()
			_, err := s.Token(ctx, "c")
			if err == nil || errors.Is(err, ErrReauthRequired) {
				t.Errorf("Token() through a %d = %v, want a non-reauth failure", status, err)
			}
			if n := tr.count(); n != 0 {
				t.Errorf("the redirect target got %d request(s), want 0", n)
			}
			mu.Lock()
			if hits != 1 {
				t.Errorf("token endpoint hits = %d, want 1", hits)
			}
			mu.Unlock()
			if sec := stored(t, s, "c"); sec.RefreshToken != tok.RefreshToken || strings.Contains(sec.AccessToken, "stolen") {
				t.Errorf("stored pair changed after a failed refresh")
			}
			if _, held := f.rawItem(t, "c")["leaseOwner"]; held {
				t.Error("lease still held after the refused redirect, want it released")
			}
		})
	}
}
