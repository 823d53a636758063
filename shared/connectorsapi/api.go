// Package connectorsapi is the connectors HTTP API (/v1/...): connection info and API keys, connectors CRUD with
// validation against the Jira site, run control and progress, and the OpenAPI description. It is a plain
// net/http Handler; functions/connectors adapts it to API Gateway HTTP API (payload 2.0) events.
//
// Every request except GET /v1/openapi.json is authenticated by `Authorization: Bearer <api key>` and confined to
// that key's connection: all reads and writes are keyed by the authenticated connection id, so another
// connection's resource is indistinguishable from a missing one. Every error is an RFC 9457 problem document.
package connectorsapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/awslabs/aws-lambda-go-api-proxy/core"

	"jiraexport/shared/apikeys"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/erasure"
	"jiraexport/shared/jira"
	"jiraexport/shared/problem"
	"jiraexport/shared/ratebudget"
)

// Keys is what the API needs of shared/apikeys.
type Keys interface {
	Authenticate(ctx context.Context, plaintext string) (*apikeys.Key, error)
	Issue(ctx context.Context, connID, name string) (string, *apikeys.Key, error)
	List(ctx context.Context, connID string) ([]apikeys.Key, error)
	Revoke(ctx context.Context, connID, keyID string) error
}

// Connections is what the API needs of shared/connections.
type Connections interface {
	Get(ctx context.Context, id string) (*connections.Connection, error)
}

// TokenInfo is the plaintext metadata of a connection's token record.
type TokenInfo struct {
	Scope           string
	Expiry          time.Time
	FamilyStartedAt time.Time
}

// Tokens is what the API needs of shared/tokens (main adapts the store).
type Tokens interface {
	TokenSource(ctx context.Context, connID string) oauth2.TokenSource
	// Info returns the token metadata; an error for which ReauthRequired is true means the grant is gone.
	Info(ctx context.Context, connID string) (*TokenInfo, error)
	// ReauthRequired reports whether err (from a token source or Info) means the user must consent again.
	ReauthRequired(err error) bool
}

// Reauthorizer creates one-time re-authorisation tickets (shared/oauthstate).
type Reauthorizer interface {
	CreateReauth(ctx context.Context, connID string) (ticket string, err error)
}

// Store is what the API needs of shared/connectors.
type Store interface {
	Create(ctx context.Context, connID string, spec connectors.Spec, next time.Time) (*connectors.Connector, error)
	Get(ctx context.Context, connID, id string) (*connectors.Connector, error)
	List(ctx context.Context, connID string, limit int, cursor string) ([]connectors.Connector, string, error)
	Update(ctx context.Context, connID, id string, spec connectors.Spec, version int64, next time.Time) (*connectors.Connector, error)
	Delete(ctx context.Context, connID, id string, version int64) error
	StartRun(ctx context.Context, connID, connectorID, trigger string, opts ...connectors.RunOption) (*connectors.Run, error)
	GetRun(ctx context.Context, connID, connectorID, runID string) (*connectors.Run, error)
	ListRuns(ctx context.Context, connID, connectorID string, limit int, cursor string) ([]connectors.Run, string, error)
	CancelRun(ctx context.Context, connID, connectorID, runID, reason string) (*connectors.Run, error)
}

// Jira is what the API asks of a Jira site.
type Jira interface {
	ParseJQL(ctx context.Context, cloudID string, queries ...string) ([]jira.ParsedQuery, error)
	ApproximateCount(ctx context.Context, cloudID, jql string) (int64, error)
}

// Eraser erases a connection completely: table items and exported data (shared/erasure, the core the purge
// function uses too).
type Eraser interface {
	Erase(ctx context.Context, r erasure.Request) (*erasure.Report, error)
}

// PointsUsage reads the points spent in an hour (shared/ratebudget.Ledger).
type PointsUsage interface {
	Usage(ctx context.Context, at time.Time, connIDs ...string) (ratebudget.Usage, error)
}

// Invoker starts the export of a run (shared/invoke: an asynchronous Lambda Invoke of the export function).
type Invoker interface {
	Invoke(ctx context.Context, ref connectors.RunRef) error
}

// Config wires the API. Exports may be nil; everything else is required.
type Config struct {
	Keys        Keys
	Connections Connections
	Tokens      Tokens
	Reauth      Reauthorizer
	Store       Store
	// Jira returns a client for one connection, drawing its access tokens from ts.
	Jira func(ts oauth2.TokenSource) Jira
	// JiraFor, when set, is used instead of Jira: it also knows the connection, so the points the API's own
	// Jira calls spend (JQL validation, preview counts) are recorded in the connection's hourly ledger.
	JiraFor func(connID string, ts oauth2.TokenSource) Jira
	Eraser  Eraser
	// Exports starts a run's export as soon as the API queues it, so a run started through the API begins within
	// seconds; nil leaves it to the dispatcher's next tick (which is also the safety net when an invoke fails).
	Exports Invoker
	// RunAllowance is the points allowance of the first invocation of a run the API starts, which the dispatcher's
	// admission does not see before it begins: zero means ratebudget.StarterGrant, negative none.
	RunAllowance int64
	// Usage, when set, is the points ledger: a connection that has spent RunAllowance or more this hour gets no
	// starter allowance, and its runs wait for the dispatcher's admission (else cancelling and starting runs again
	// would hand it one starter allowance after another, outside admission).
	Usage PointsUsage
	Log   *slog.Logger
	// PublicBaseURL is the API's public base URL; empty means "https://" + the request's domain name.
	PublicBaseURL string
	Now           func() time.Time
	// RequestTimeout bounds each request; zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// Limits of requests (documented in openapi.yaml).
const (
	MaxBodyBytes     = 64 << 10
	DefaultPageLimit = 20
	MaxPageLimit     = 100
	MaxKeyNameLen    = 100
	MaxKeys          = apikeys.MaxActive // active keys per connection
	// DefaultRequestTimeout stays below API Gateway's 29 s integration timeout, so a slow request still gets a
	// problem document from us rather than the platform's bare error.
	DefaultRequestTimeout = 20 * time.Second
	// GrantLifetime is how long Atlassian keeps a refresh-token family alive, however often it rotates.
	GrantLifetime = 365 * 24 * time.Hour
)

type api struct {
	Config
}

type ctxKey struct{}

type principal struct {
	conn  *connections.Connection
	keyID string
}

func from(ctx context.Context) *principal { return ctx.Value(ctxKey{}).(*principal) }

// New returns the API handler.
func New(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.RunAllowance == 0 {
		cfg.RunAllowance = ratebudget.StarterGrant
	}
	a := &api{Config: cfg}
	authed := http.NewServeMux()
	route := func(pattern string, h func(http.ResponseWriter, *http.Request) error) {
		authed.Handle(pattern, a.wrap(h))
	}
	route("GET /v1/connection", a.getConnection)
	route("DELETE /v1/connection", a.disconnect)
	route("POST /v1/connection/reauthorize", a.reauthorize)
	route("GET /v1/connection/keys", a.listKeys)
	route("POST /v1/connection/keys", a.createKey)
	route("DELETE /v1/connection/keys/{keyId}", a.revokeKey)
	route("POST /v1/connectors", a.createConnector)
	route("GET /v1/connectors", a.listConnectors)
	route("GET /v1/connectors/{id}", a.getConnector)
	route("PUT /v1/connectors/{id}", a.replaceConnector)
	route("PATCH /v1/connectors/{id}", a.patchConnector)
	route("DELETE /v1/connectors/{id}", a.deleteConnector)
	route("POST /v1/connectors/{id}/preview", a.preview)
	route("POST /v1/connectors/{id}/runs", a.startRun)
	route("GET /v1/connectors/{id}/runs", a.listRuns)
	route("GET /v1/connectors/{id}/runs/{runId}", a.getRun)
	route("POST /v1/connectors/{id}/runs/{runId}/cancel", a.cancelRun)
	// Method-less patterns catch the other methods of known paths (the method-specific ones are more specific).
	for _, p := range []string{"/v1/connection", "/v1/connection/reauthorize", "/v1/connection/keys",
		"/v1/connection/keys/{keyId}", "/v1/connectors", "/v1/connectors/{id}", "/v1/connectors/{id}/preview",
		"/v1/connectors/{id}/runs", "/v1/connectors/{id}/runs/{runId}", "/v1/connectors/{id}/runs/{runId}/cancel",
		"/v1/openapi.json"} {
		authed.Handle(p, a.wrap(func(http.ResponseWriter, *http.Request) error {
			return problem.New(problem.MethodNotAllowed, "this method is not allowed on this resource")
		}))
	}
	authed.Handle("/", a.wrap(func(http.ResponseWriter, *http.Request) error {
		return problem.New(problem.NotFound, "no such resource")
	}))

	root := http.NewServeMux()
	root.Handle("GET /v1/openapi.json", http.HandlerFunc(serveOpenAPI))
	root.Handle("/", a.authenticate(authed))
	return a.recoverer(a.deadline(root))
}

// deadline gives every request RequestTimeout to answer; the AWS and Jira calls under it honour the context.
func (a *api) deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// fail writes err as a problem; once the request's deadline has passed, whatever failed failed because of it, and
// the answer is a 504 timeout problem instead.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(r.Context().Err(), context.DeadlineExceeded) {
		a.Log.ErrorContext(r.Context(), "request timed out", "timeout", a.RequestTimeout, "error", err)
		// shared/problem has no timeout code; this one document is written here.
		w.Header().Set("Content-Type", problem.ContentType)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusGatewayTimeout)
		_ = json.NewEncoder(w).Encode(problem.Body{Type: problem.TypeBase + "timeout", Title: "The request took too long",
			Status: http.StatusGatewayTimeout, Detail: "the request did not finish in time; retry it", Instance: r.URL.Path})
		return
	}
	problem.Write(w, r, a.Log, err)
}

// wrap turns a handler that returns an error into an http.Handler that writes the error as a problem.
func (a *api) wrap(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.fail(w, r, err)
		}
	})
}

func (a *api) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := a.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				a.Log.ErrorContext(r.Context(), "panic serving request", "route", r.Pattern, "panic", v)
				if sw.status == 0 {
					problem.Write(sw, r, nil, problem.Wrap(errors.New("panic")))
				}
			}
			a.Log.InfoContext(r.Context(), "request", "method", r.Method, "status", sw.status,
				"ms", a.Now().Sub(start).Milliseconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// errUnauthenticated is the one answer for a missing, malformed, unknown or revoked key and for a key whose
// connection is gone, so a caller learns nothing about which keys or connections exist.
var errUnauthenticated = problem.New(problem.Unauthorized, "send a valid API key as Authorization: Bearer <key>")

func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(err error) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="jiraexport"`)
			problem.Write(w, r, a.Log, err)
		}
		scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || !apikeys.WellFormed(strings.TrimSpace(key)) {
			fail(errUnauthenticated)
			return
		}
		ctx := r.Context()
		k, err := a.Keys.Authenticate(ctx, strings.TrimSpace(key))
		if errors.Is(err, apikeys.ErrInvalid) {
			fail(errUnauthenticated)
			return
		}
		if err != nil {
			a.fail(w, r, problem.Wrap(err))
			return
		}
		conn, err := a.Connections.Get(ctx, k.ConnectionID)
		// A disconnected connection whose keys still exist is a disconnect that failed half-way: its keys may
		// only retry it.
		retry := r.Method == http.MethodDelete && r.URL.Path == "/v1/connection"
		if errors.Is(err, connections.ErrNotFound) || (err == nil && conn.Status == connections.StatusDisconnected && !retry) {
			fail(errUnauthenticated)
			return
		}
		if err != nil {
			a.fail(w, r, problem.Wrap(err))
			return
		}
		ctx = context.WithValue(ctx, ctxKey{}, &principal{conn: conn, keyID: k.ID})
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// baseURL is the API's public base URL for links.
func (a *api) baseURL(r *http.Request) string {
	if a.PublicBaseURL != "" {
		return strings.TrimRight(a.PublicBaseURL, "/")
	}
	if rc, ok := core.GetAPIGatewayV2ContextFromContext(r.Context()); ok && rc.DomainName != "" {
		return "https://" + rc.DomainName
	}
	return "https://" + r.Host
}
