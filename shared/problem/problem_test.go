package problem

import (
	"encoding/json"
	"errors"
	"fmt"
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
