package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	secret := errors.New("dynamodb: table t-123 credentials xyz")
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantType   string
		wantDetail string
		wantFields int
	}{
		{"invalid with fields", Fields("bad", FieldError{"name", "required"}), 400, TypeBase + "invalid", "bad", 1},
		{"not found", New(NotFound, "connector not found"), 404, TypeBase + "not-found", "connector not found", 0},
		{"precondition", New(PreconditionFailed, "stale"), 412, TypeBase + "precondition-failed", "stale", 0},
		{"wrapped problem", fmt.Errorf("ctx: %w", New(Conflict, "busy")), 409, TypeBase + "conflict", "busy", 0},
		{"plain error hides text", secret, 500, TypeBase + "internal", "", 0},
		{"internal hides detail", &Error{Code: Internal, Detail: "leak", Cause: secret}, 500, TypeBase + "internal", "", 0},
		{"unknown code", &Error{Code: "nope", Detail: "x"}, 500, TypeBase + "internal", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Write(rec, httptest.NewRequest("GET", "/v1/x", nil), nil, tt.err)
			if rec.Code != tt.wantStatus {
				t.Errorf("Write(%v) status = %d, want %d", tt.err, rec.Code, tt.wantStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != ContentType {
				t.Errorf("Write(%v) Content-Type = %q, want %q", tt.err, ct, ContentType)
			}
			if strings.Contains(rec.Body.String(), "credentials") || strings.Contains(rec.Body.String(), "leak") {
				t.Errorf("Write(%v) body = %s, leaks internal text", tt.err, rec.Body)
			}
			var b Body
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
				t.Fatal(err)
			}
			if b.Type != tt.wantType || b.Detail != tt.wantDetail || len(b.Errors) != tt.wantFields || b.Status != tt.wantStatus || b.Title == "" {
				t.Errorf("Write(%v) body = %+v, want type %s detail %q fields %d", tt.err, b, tt.wantType, tt.wantDetail, tt.wantFields)
			}
		})
	}
}

func TestEveryCodeHasStatusAndTitle(t *testing.T) {
	for _, c := range Codes() {
		if s := c.Status(); s < 400 || s > 599 || codes[c].title == "" {
			t.Errorf("Code(%q) status = %d title %q, want 4xx/5xx and a title", c, s, codes[c].title)
		}
		if c.Type() != TypeBase+string(c) {
			t.Errorf("Code(%q).Type() = %q", c, c.Type())
		}
	}
	if got := Code("x").Status(); got != http.StatusInternalServerError {
		t.Errorf("Code(%q).Status() = %d, want 500", "x", got)
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"problem", New(NotFound, "x"), NotFound},
		{"wrapped problem", fmt.Errorf("get: %w", New(Conflict, "busy")), Conflict},
		{"joined: the first problem wins", errors.Join(errors.New("plain"), New(RateLimited, "later"), New(Invalid, "x")), RateLimited},
		{"plain error", errors.New("dynamodb: throttled"), Internal},
		{"wrapped cause", Wrap(errors.New("kms")), Internal},
		{"nil", nil, Internal},
	}
	for _, tt := range tests {
		if got := CodeOf(tt.err); got != tt.want {
			t.Errorf("CodeOf(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestWriteRetryAfter(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"rate limited with a wait", &Error{Code: RateLimited, RetryAfter: 1847}, "1847"},
		{"wrapped", fmt.Errorf("search: %w", &Error{Code: RateLimited, RetryAfter: 30}), "30"},
		{"no wait known", &Error{Code: RateLimited}, ""},
		{"negative wait", &Error{Code: Unavailable, RetryAfter: -5}, ""},
		{"plain error", errors.New("x"), ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		Write(rec, httptest.NewRequest("GET", "/v1/x", nil), nil, tt.err)
		if got := rec.Header().Get("Retry-After"); got != tt.want {
			t.Errorf("Write(%s) Retry-After = %q, want %q", tt.name, got, tt.want)
		}
		if got := rec.Header().Get("Cache-Control"); got != "no-store" {
			t.Errorf("Write(%s) Cache-Control = %q, want no-store", tt.name, got)
		}
	}
}

// TestWriteLogs: a server-side error is logged with its cause; a client error is logged at debug level without
// its detail, which may echo what the caller sent.
func TestWriteLogs(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantLevel string
		want      []string
		never     []string
	}{
		{"5xx keeps the cause for the log", Wrap(errors.New("dynamodb: throttled")), "ERROR", []string{`"status":500`, "throttled"}, nil},
		{"4xx without detail", New(Invalid, "jql %q is invalid", "project = SECRET"), "DEBUG", []string{`"status":400`, `"problem":"invalid"`}, []string{"SECRET"}},
		{"404 without detail", New(NotFound, "connector c-1 not found"), "DEBUG", []string{`"status":404`}, []string{"c-1"}},
	}
	for _, tt := range tests {
		var buf strings.Builder
		log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		Write(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/x", nil), log, tt.err)
		line := buf.String()
		if !strings.Contains(line, `"level":"`+tt.wantLevel+`"`) {
			t.Errorf("%s: log = %s, want level %s", tt.name, line, tt.wantLevel)
		}
		for _, s := range tt.want {
			if !strings.Contains(line, s) {
				t.Errorf("%s: log = %s, want it to contain %s", tt.name, line, s)
			}
		}
		for _, s := range tt.never {
			if strings.Contains(line, s) {
				t.Errorf("%s: log = %s, must not contain %s", tt.name, line, s)
			}
		}
	}
}
