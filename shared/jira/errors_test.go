package jira

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestClassify(t *testing.T) {
	reset := time.Date(2026, 3, 10, 13, 0, 0, 0, time.UTC)
	now := reset.Add(-10 * time.Minute)
	tests := []struct {
		name     string
		err      error
		want     Kind
		wantWait time.Duration
	}{
		{"quota", fmt.Errorf("x: %w", &RateLimitError{Reason: "jira-quota-global-based", RetryAfter: time.Second, Reset: reset}), KindRateLimited, 10 * time.Minute},
		{"quota, Retry-After rounded up past the reset", &RateLimitError{Reason: "jira-quota-global-based", RetryAfter: 10*time.Minute + time.Second, Reset: reset}, KindRateLimited, 10 * time.Minute},
		{"quota, Retry-After well past the reset", &RateLimitError{Reason: "jira-quota-tenant-based", RetryAfter: 12 * time.Minute, Reset: reset}, KindRateLimited, 12 * time.Minute},
		{"burst", &RateLimitError{Reason: "jira-burst-based", RetryAfter: 3 * time.Second}, KindRateLimited, 3 * time.Second},
		{"burst, Retry-After past the reset", &RateLimitError{Reason: "jira-burst-based", RetryAfter: 3 * time.Second, Reset: now.Add(2 * time.Second)}, KindRateLimited, 3 * time.Second},
		{"401", &UnauthorizedError{Endpoint: "GET /x"}, KindReauth, 0},
		{"dead grant", &TokenError{Reauth: true, err: errors.New("tokens: re-authorisation required")}, KindReauth, 0},
		{"token store down", &TokenError{err: errors.New("dynamodb unavailable")}, KindRetryable, 0},
		{"503", &StatusError{Status: 503}, KindRetryable, 0},
		{"transport", &StatusError{Status: 503, Code: "transport"}, KindRetryable, 0},
		{"400", &StatusError{Status: 400}, KindPermanent, 0},
		{"404", &StatusError{Status: 404}, KindPermanent, 0},
		{"deadline", fmt.Errorf("jira: %w", context.DeadlineExceeded), KindCancelled, 0},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%s) = %s, want %s", tt.name, got, tt.want)
		}
		if got := Wait(tt.err, now); got != tt.wantWait {
			t.Errorf("Wait(%s) = %s, want %s", tt.name, got, tt.wantWait)
		}
	}
	if !errors.Is(&StatusError{Status: 400, cursor: true}, ErrCursorExpired) || errors.Is(&StatusError{Status: 400}, ErrCursorExpired) {
		t.Error("ErrCursorExpired must match exactly a 400 on a request that carried a page token")
	}
	if !errors.Is(&StatusError{Status: 404}, ErrNotFound) {
		t.Error("a 404 must match ErrNotFound")
	}
}

// Jira's messages can quote JQL values, names and project names: they never reach an error's text.
func TestErrorTextsCarryNoJiraMessages(t *testing.T) {
	secret := "Project 'SECRET-PROJECT' of Ada Lovelace"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("case") {
		case "401":
			w.WriteHeader(401)
			_, _ = fmt.Fprintf(w, `{"code":401,"message":%q}`, secret)
		default:
			w.WriteHeader(400)
			_, _ = fmt.Fprintf(w, `{"errorMessages":[%q],"errors":{"jql":%q}}`, secret, secret)
		}
	}))
	defer srv.Close()
	c := New(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"}), Options{})
	for _, cs := range []string{"400", "401"} {
		err := c.do(t.Context(), "site", call{method: "GET", path: "/rest/api/3/field", query: map[string][]string{"case": {cs}}, safe: true}, nil)
		if err == nil || strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "Ada") {
			t.Errorf("error for a %s = %v, want one without Jira's message", cs, err)
		}
		var se *StatusError
		if cs == "400" && (!errors.As(err, &se) || len(se.Messages) != 2) {
			t.Errorf("StatusError.Messages = %v, want Jira's messages kept for the user-facing path", err)
		}
	}
}

// The observer sees every attempt with its endpoint template and the objects returned.
func TestObserver(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"startAt":0,"maxResults":100,"total":2,"comments":[{"id":"1"},{"id":"2"}]}`))
	}))
	defer srv.Close()
	var got []Observation
	c := New(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"}), Options{Observe: func(o Observation) { got = append(got, o) }})
	if _, err := c.Comments(t.Context(), "site", "10001", 0); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Endpoint != "/rest/api/3/issue/{issueIdOrKey}/comment" || got[0].Objects != 2 || got[0].Status != 200 {
		t.Errorf("observations = %+v, want one for the comment endpoint with 2 objects", got)
	}
}
