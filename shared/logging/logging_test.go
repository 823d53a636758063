package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

func TestRedaction(t *testing.T) {
	t.Parallel()
	secrets := []string{
		"ya29.a0AfH6SMBx", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "jxk_abcdefghijklmnop",
		"jane.doe@example.com", "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077", "5b10ac8d82e05b22cc7d4ef5",
		"rt-secret-123", "the-code-xyz",
	}
	tests := []struct {
		name string
		log  func(l *slog.Logger)
	}{
		{"sensitive keys", func(l *slog.Logger) {
			l.Info("x", "access_token", "ya29.a0AfH6SMBx", "refreshToken", "rt-secret-123", "code", "the-code-xyz")
		}},
		{"email in message", func(l *slog.Logger) { l.Info("user jane.doe@example.com signed in") }},
		{"bearer in error", func(l *slog.Logger) {
			l.Error("call failed", "err", errors.New("Authorization: Bearer ya29.a0AfH6SMBx rejected"))
		}},
		{"jwt anywhere", func(l *slog.Logger) { l.Info("x", "detail", "got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig back") }},
		{"api key", func(l *slog.Logger) { l.Info("x", "detail", "key jxk_abcdefghijklmnop used") }},
		{"url query", func(l *slog.Logger) {
			l.Info("x", "url", "https://h/cb?code=the-code-xyz&state=rt-secret-123")
		}},
		{"json body", func(l *slog.Logger) {
			l.Info("x", "resp", `{"access_token":"ya29.a0AfH6SMBx","refresh_token":"rt-secret-123"}`)
		}},
		{"account ids", func(l *slog.Logger) {
			l.Info("x", "detail", "mention 557058:f58131cb-b67d-43c7-b30d-6b58d40bd077 and 5b10ac8d82e05b22cc7d4ef5")
		}},
		{"groups and With", func(l *slog.Logger) {
			l.With("token", "ya29.a0AfH6SMBx").WithGroup("g").Info("x", slog.Group("inner", "email", "jane.doe@example.com"))
		}},
		{"LogValuer resolving to a group", func(l *slog.Logger) {
			l.Info("x", "who", groupValuer{})
		}},
		{"LogValuer nested in a group", func(l *slog.Logger) {
			l.Info("x", slog.Group("outer", "inner", groupValuer{}))
		}},
		{"LogValuer in With", func(l *slog.Logger) {
			l.With("who", groupValuer{}).Info("x")
		}},
		{"inline LogValuer group", func(l *slog.Logger) {
			l.Info("x", slog.Any("", groupValuer{}))
		}},
		{"LogValuer resolving to a string", func(l *slog.Logger) {
			l.Info("x", "detail", stringValuer{})
		}},
		{"sensitive group key", func(l *slog.Logger) {
			l.Info("x", slog.Group("token", "value", "ya29.a0AfH6SMBx"))
		}},
		{"struct values", func(l *slog.Logger) {
			l.Info("x", "v", struct{ Tok string }{"ya29.a0AfH6SMBx"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(New(&buf, slog.LevelDebug))
			out := buf.String()
			if !json.Valid(bytes.TrimSpace(buf.Bytes())) {
				t.Fatalf("log line is not JSON: %s", out)
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("log contains %q: %s", s, out)
				}
			}
		})
	}
}

func TestKeepsUsefulFields(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
	ctx = WithRunID(ctx, "run-9")
	New(&buf, slog.LevelInfo).InfoContext(ctx, "page written", "issues", 100, "connectionId", "c-123", "status", 429)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"message": "page written", "issues": 100.0, "connectionId": "c-123", "status": 429.0, "requestId": "req-1", "runId": "run-9"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("field %s = %v, want %v (line %s)", k, m[k], v, buf.String())
		}
	}
}

func FuzzRedactString(f *testing.F) {
	f.Add("Bearer abc.def")
	f.Add("x@y.io")
	f.Fuzz(func(t *testing.T, s string) {
		out := RedactString(s)
		if reAPIKey.MatchString(out) || reJWT.MatchString(out) {
			t.Fatalf("RedactString(%q) = %q still holds a secret shape", s, out)
		}
	})
}

// BenchmarkRedactedLine measures what the redaction layer costs on a typical log line.
func BenchmarkRedactedLine(b *testing.B) {
	l := New(io.Discard, slog.LevelInfo)
	ctx := WithRunID(context.Background(), "run-1")
	b.ReportAllocs()
	for b.Loop() {
		l.InfoContext(ctx, "page exported", "connectionId", "c-1", "issues", 100, "url", "https://api.atlassian.com/ex/jira/x/rest/api/3/search/jql?maxResults=100", "status", 200)
	}
}

// groupValuer is a value that logs itself as a group holding secrets under both sensitive and innocent keys.
type groupValuer struct{}

func (groupValuer) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("email", "jane.doe@example.com"),
		slog.String("note", "Bearer ya29.a0AfH6SMBx and jxk_abcdefghijklmnop"),
		slog.Any("nested", nestedValuer{}),
	)
}

type nestedValuer struct{}

func (nestedValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("displayName", "rt-secret-123"), slog.String("x", "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"))
}

type stringValuer struct{}

func (stringValuer) LogValue() slog.Value { return slog.StringValue("code for jane.doe@example.com") }

// TestGroupValuerKeepsIDs: redacting a LogValuer's group keeps its harmless members.
func TestGroupValuerKeepsIDs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	New(&buf, slog.LevelInfo).Info("x", "run", runValuer{})
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	run, _ := m["run"].(map[string]any)
	if run["id"] != "r-1" || run["issues"] != 3.0 || run["email"] != Redacted {
		t.Errorf("run = %v, want id r-1, issues 3 and email redacted", run)
	}
}

type runValuer struct{}

func (runValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", "r-1"), slog.Int("issues", 3), slog.String("email", "a@b.io"))
}
