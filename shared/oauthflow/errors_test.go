package oauthflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"jiraexport/shared/oauthstate"
)

// TestReauthRefusal maps each ticket error to the page that explains it; anything else is an internal error.
func TestReauthRefusal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    error
		want   Reason
		wantOK bool
	}{
		{oauthstate.ErrUsed, ReasonReauthUsed, true},
		{fmt.Errorf("redeem: %w", oauthstate.ErrExpired), ReasonReauthExpired, true},
		{oauthstate.ErrUnknown, ReasonReauthUnknown, true},
		{errors.New("dynamodb: throttled"), "", false},
		{context.DeadlineExceeded, "", false},
	}
	for _, tt := range tests {
		if got, ok := reauthRefusal(tt.err); got != tt.want || ok != tt.wantOK {
			t.Errorf("reauthRefusal(%v) = %q, %v; want %q, %v", tt.err, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestExchangeReason: a failed code exchange is logged as the OAuth error code and status only; a body, a
// description or an error code that is not RFC 6749-shaped never reaches the log.
func TestExchangeReason(t *testing.T) {
	t.Parallel()
	re := func(status int, code, desc string) error {
		return fmt.Errorf("exchange: %w", &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, ErrorCode: code,
			ErrorDescription: desc, Body: []byte(`{"error":"` + code + `","error_description":"` + desc + `"}`)})
	}
	tests := []struct {
		err  error
		want string
	}{
		{re(400, "invalid_grant", "code for alice@example.com expired"), "invalid_grant (HTTP 400)"},
		{re(401, "access_denied", ""), "access_denied (HTTP 401)"},
		{re(500, "", "<html>oops</html>"), "other (HTTP 500)"},
		{re(400, "Invalid-Grant alice@example.com", ""), "other (HTTP 400)"},
		{re(400, strings.Repeat("a", 65), ""), "other (HTTP 400)"},
		{&oauth2.RetrieveError{ErrorCode: "server_error"}, "server_error (HTTP 0)"},
		{fmt.Errorf("post: %w", context.DeadlineExceeded), "timeout"},
		{errors.New("dial tcp 10.0.0.1:443: connection refused"), "transport error"},
	}
	for _, tt := range tests {
		if got := exchangeReason(tt.err); got != tt.want {
			t.Errorf("exchangeReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
