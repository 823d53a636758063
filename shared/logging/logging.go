// Package logging builds the JSON slog logger every function uses, with a redaction layer in front of it.
//
// Privacy promise 4: logs carry no tokens, secrets, emails, names or issue content. Redaction works on two
// levels: attributes whose key names sensitive data are replaced wholesale, and every string value is scanned for
// shapes of secrets (bearer tokens, JWTs, API keys, OAuth codes in URLs, email addresses) whatever its key.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Redacted replaces a sensitive value.
const Redacted = "[REDACTED]"

// New returns a JSON logger writing to w at level, with redaction, and the Lambda request id on every record
// logged with a context that carries one.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: lambdacontext.ReplaceAttr})
	return slog.New(NewRedactor(&requestID{next: h}))
}

// ParseLevel maps the Lambda log level names (DEBUG, INFO, WARN, ERROR) to slog levels; INFO by default.
func ParseLevel(s string) slog.Level {
	switch strings.ToUpper(s) {
	case "DEBUG", "TRACE":
		return slog.LevelDebug
	case "WARN":
		return slog.LevelWarn
	case "ERROR", "FATAL":
		return slog.LevelError
	}
	return slog.LevelInfo
}

type ctxKey struct{}

// WithRunID returns a context whose log records carry runId (for work that is not a Lambda request, or spans
// several).
func WithRunID(ctx context.Context, runID string) context.Context {
	return context.WithValue(ctx, ctxKey{}, runID)
}

type requestID struct{ next slog.Handler }

func (h *requestID) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }
func (h *requestID) Handle(ctx context.Context, r slog.Record) error {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		r.AddAttrs(slog.String("requestId", lc.AwsRequestID))
	}
	if id, ok := ctx.Value(ctxKey{}).(string); ok {
		r.AddAttrs(slog.String("runId", id))
	}
	return h.next.Handle(ctx, r)
}
func (h *requestID) WithAttrs(as []slog.Attr) slog.Handler {
	return &requestID{next: h.next.WithAttrs(as)}
}
func (h *requestID) WithGroup(name string) slog.Handler {
	return &requestID{next: h.next.WithGroup(name)}
}

// Redactor is a slog.Handler that scrubs sensitive data before the next handler sees it.
type Redactor struct{ next slog.Handler }

// NewRedactor wraps next.
func NewRedactor(next slog.Handler) *Redactor { return &Redactor{next: next} }

// Enabled implements slog.Handler.
func (h *Redactor) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Redactor) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, RedactString(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *Redactor) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return &Redactor{next: h.next.WithAttrs(red)}
}

// WithGroup implements slog.Handler.
func (h *Redactor) WithGroup(name string) slog.Handler {
	return &Redactor{next: h.next.WithGroup(name)}
}

// sensitiveKey matches attribute keys whose values are never logged, whatever they look like.
var sensitiveKey = regexp.MustCompile(`(?i)(token|secret|password|passwd|authorization|cookie|api[_-]?key|apikey|credential|` +
	`^code$|email|e-mail|display[_-]?name|^name$|summary|description|comment|body|content|account[_-]?id|state$|plaintext|jql)`)

// Shapes of secrets and personal data inside free text.
var (
	reBearer = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*`)
	reJWT    = regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*`)
	reAPIKey = regexp.MustCompile(`\bjxk_[A-Za-z0-9_-]+`)
	reQuery  = regexp.MustCompile(`(?i)([?&](?:code|state|token|access_token|refresh_token|client_secret|key|reauth|nonce|ticket)=)[^&\s"]+`)
	reJSON   = regexp.MustCompile(`(?i)("(?:access_token|refresh_token|client_secret|code|id_token|password)"\s*:\s*")[^"]*`)
	reEmail  = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	reAcctID = regexp.MustCompile(`\b(?:[0-9]{6}:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{24})\b`)
)

// RedactString scrubs secret and personal-data shapes from free text such as error messages.
func RedactString(s string) string {
	s = reBearer.ReplaceAllString(s, "$1 "+Redacted)
	s = reJWT.ReplaceAllString(s, Redacted)
	s = reAPIKey.ReplaceAllString(s, Redacted)
	s = reQuery.ReplaceAllString(s, "${1}"+Redacted)
	s = reJSON.ReplaceAllString(s, "${1}"+Redacted)
	s = reEmail.ReplaceAllString(s, Redacted)
	s = reAcctID.ReplaceAllString(s, Redacted)
	return s
}

func redactAttr(a slog.Attr) slog.Attr {
	// A sensitive key hides its whole value, a group's included (an inline group's empty key never matches).
	if a.Key != "" && sensitiveKey.MatchString(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	// Resolve first: a LogValuer may resolve to a group, whose members must pass through the redaction too.
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		attrs := v.Group()
		red := make([]slog.Attr, len(attrs))
		for i, g := range attrs {
			red[i] = redactAttr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, RedactString(v.String()))
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, RedactString(err.Error()))
		}
		// Arbitrary values (structs, maps, slices) could hold anything, including issue content: only their
		// type is logged. Log the specific non-sensitive fields instead.
		return slog.String(a.Key, fmt.Sprintf("[%T]", v.Any()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}
