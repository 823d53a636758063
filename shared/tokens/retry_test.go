package tokens

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// These tests pin the refresh retry classification without the stack: which token-endpoint failures are tried
// again, and how often the endpoint is asked. TestRefreshRetries covers the same ground end to end against the
// simulator and DynamoDB Local.

func retrieveError(status int, code string) *oauth2.RetrieveError {
	return &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, ErrorCode: code}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	live := context.Background()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	transport := &url.Error{Op: "Post", URL: "https://auth.atlassian.com/oauth/token",
		Err: &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}}
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"500", live, retrieveError(500, ""), true},
		{"502", live, retrieveError(502, ""), true},
		{"503", live, retrieveError(503, ""), true},
		{"429", live, retrieveError(http.StatusTooManyRequests, ""), true},
		{"wrapped 503", live, fmt.Errorf("oauth2: %w", retrieveError(503, "")), true},
		{"400 invalid_grant: the grant is dead", live, retrieveError(400, "invalid_grant"), false},
		{"400 invalid_request", live, retrieveError(400, "invalid_request"), false},
		{"401 bad client", live, retrieveError(401, "unauthorized_client"), false},
		{"403", live, retrieveError(403, "access_denied"), false},
		{"redirect refused", live, retrieveError(http.StatusTemporaryRedirect, ""), false},
		{"answer without a response", live, &oauth2.RetrieveError{ErrorCode: "server_error"}, false},
		{"transport error: may not have arrived", live, transport, true},
		{"attempt timeout with the caller still waiting", live, context.DeadlineExceeded, true},
		{"the caller gave up", done, transport, false},
		{"the caller gave up on a 503", done, retrieveError(503, ""), false},
	}
	for _, tt := range tests {
		if got := retryable(tt.ctx, tt.err); got != tt.want {
			t.Errorf("retryable(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestStatusOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{retrieveError(503, ""), 503},
		{fmt.Errorf("x: %w", retrieveError(429, "")), 429},
		{&oauth2.RetrieveError{}, 0},
		{errors.New("dial tcp: refused"), 0},
		{nil, 0},
	}
	for _, tt := range tests {
		if got := statusOf(tt.err); got != tt.want {
			t.Errorf("statusOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// tokenEndpoint is a func-field fake of the token endpoint's transport: answer decides attempt n (1-based).
type tokenEndpoint struct {
	answer func(n int) (status int, body string, err error)

	mu       sync.Mutex
	attempts int
	refresh  []string // the refresh_token each attempt sent
}

func (e *tokenEndpoint) RoundTrip(r *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.attempts++
	n := e.attempts
	e.refresh = append(e.refresh, form.Get("refresh_token"))
	e.mu.Unlock()
	status, body, err := e.answer(n)
	if err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

func TestExchangeRetries(t *testing.T) {
	t.Parallel()
	const ok = `{"access_token":"new-access","refresh_token":"new-refresh","expires_in":3600,"token_type":"Bearer"}`
	reset := errors.New("connection reset by peer")
	seq := func(steps ...any) func(int) (int, string, error) {
		return func(n int) (int, string, error) {
			switch s := steps[min(n, len(steps))-1].(type) {
			case int:
				return s, `{"error":"server_error"}`, nil
			case string:
				return 200, s, nil
			case error:
				return 0, "", s
			}
			panic("bad step")
		}
	}
	tests := []struct {
		name         string
		answer       func(int) (int, string, error)
		wantAttempts int
		wantErr      bool
	}{
		{"success at once", seq(ok), 1, false},
		{"503 twice then success", seq(503, 503, ok), 3, false},
		{"429 then success", seq(429, ok), 2, false},
		{"connection reset then success", seq(reset, ok), 2, false},
		{"503 until the attempts run out", seq(503), 3, true},
		{"400 is not retried", seq(400), 1, true},
		{"401 is not retried", seq(401), 1, true},
		{"invalid_grant is not retried", func(int) (int, string, error) {
			return 400, `{"error":"invalid_grant","error_description":"Unknown or invalid refresh token."}`, nil
		}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ep := &tokenEndpoint{answer: tt.answer}
			cfg := &oauth2.Config{ClientID: "id", ClientSecret: "secret",
				Endpoint: oauth2.Endpoint{TokenURL: "https://auth.atlassian.invalid/oauth/token"}}
			s := NewStore(nil, nil, "", "", cfg, WithHTTPClient(&http.Client{Transport: ep}),
				WithRetryPolicy(RetryPolicy{Attempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}))
			tok, err := s.exchange(t.Context(), "c", "old-refresh")
			if (err != nil) != tt.wantErr {
				t.Fatalf("exchange = %v, %v; want error %v", tok, err, tt.wantErr)
			}
			if err == nil && (tok.AccessToken != "new-access" || tok.RefreshToken != "new-refresh") {
				t.Errorf("exchange = %+v, want the endpoint's pair", tok)
			}
			ep.mu.Lock()
			defer ep.mu.Unlock()
			if ep.attempts != tt.wantAttempts {
				t.Errorf("token endpoint asked %d time(s), want %d", ep.attempts, tt.wantAttempts)
			}
			for i, rt := range ep.refresh {
				if rt != "old-refresh" {
					t.Errorf("attempt %d sent refresh token %q, want the stored one every time", i+1, rt)
				}
			}
		})
	}
}

// TestExchangeStopsWhenTheCallerGivesUp: a caller whose context ends between attempts gets its error back at once
// instead of another attempt.
func TestExchangeStopsWhenTheCallerGivesUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	ep := &tokenEndpoint{answer: func(int) (int, string, error) {
		cancel()
		return 503, `{"error":"server_error"}`, nil
	}}
	s := NewStore(nil, nil, "", "", &oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: "https://auth.atlassian.invalid/oauth/token"}},
		WithHTTPClient(&http.Client{Transport: ep}),
		WithRetryPolicy(RetryPolicy{Attempts: 5, BaseDelay: time.Hour, MaxDelay: time.Hour}))
	start := time.Now()
	if _, err := s.exchange(ctx, "c", "rt"); err == nil {
		t.Fatal("exchange after the caller gave up succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("exchange took %v after the caller gave up, want it to return at once", d)
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.attempts != 1 {
		t.Errorf("token endpoint asked %d time(s), want 1", ep.attempts)
	}
}
