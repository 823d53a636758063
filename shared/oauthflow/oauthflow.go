// Package oauthflow is the HTTP side of the Atlassian OAuth 2.0 (3LO) flow: GET /oauth/authorize starts it and
// GET /oauth/callback finishes it with a connection, its encrypted tokens and an API key shown once.
//
// Re-authorisation: GET /oauth/authorize?reauth=<ticket> only shows which connection the link renews (its sites)
// and a form; the form's POST (same path, CSRF-checked) spends the ticket and starts the consent. The callback
// accepts the new grant only if it belongs to the Atlassian account that made the connection: the account id is
// read from the grant (GET /rest/api/3/myself on a granted site), fingerprinted (shared/fingerprint) and compared
// with the fingerprint stored at the first consent; another account's tokens are dropped unstored.
//
// It is a plain net/http Handler; functions/oauth adapts it to API Gateway (payload 2.0) events, and tests drive
// it through httptest.
//
// Secrets and where they go: the state travels in Atlassian's URLs but is useless without the browser's cookie
// nonce (see oauthstate); the code is exchanged once, server to server; tokens go only to the tokens store; the
// API key appears only in the success page's body. No secret is ever in a URL we issue, in a log line, or in a
// page other than that one.
package oauthflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/oauth2"

	"jiraexport/shared/apikeys"
	"jiraexport/shared/config"
	"jiraexport/shared/connections"
	"jiraexport/shared/fingerprint"
	"jiraexport/shared/oauthstate"
)

// Scopes returns the scopes the product asks for: read issues, read users (for fields that reference them), and
// a refresh token. Each call returns a new slice, so no caller can change what another asks for.
func Scopes() []string { return []string{"read:jira-work", "read:jira-user", "offline_access"} }

// Audience is Atlassian's API audience.
const Audience = "api.atlassian.com"

// CookieName holds the browser's nonce. The __Host- prefix makes browsers refuse it unless it is Secure, has
// Path=/ and no Domain, so no sibling host or plain-http page can plant or overwrite it. Browsers and Go's cookie
// jar treat loopback (http://127.0.0.1, http://localhost) as a secure origin, so the same name and flags work
// for the local router without any switch that could be mis-set in production.
const CookieName = "__Host-jxk_oauth"

// Ports, declared here where they are consumed.

// States keeps OAuth states and re-authorisation tickets (oauthstate.Store).
type States interface {
	Begin(ctx context.Context, connID string) (state, nonce string, err error)
	Consume(ctx context.Context, state, nonce string) (*oauthstate.Flow, error)
	PeekReauth(ctx context.Context, ticket string) (connID string, err error)
	RedeemReauth(ctx context.Context, ticket string) (connID string, err error)
}

// Fingerprints computes account fingerprints (fingerprint.Keyer).
type Fingerprints interface {
	Of(ctx context.Context, connID, accountID string) (string, error)
}

// Tokens stores token families (tokens.Store).
type Tokens interface {
	Put(ctx context.Context, connID string, tok *oauth2.Token, familyStartedAt time.Time) error
	Delete(ctx context.Context, connID string) error
}

// Connections stores connections (connections.Store).
type Connections interface {
	Get(ctx context.Context, id string) (*connections.Connection, error)
	Create(ctx context.Context, c *connections.Connection, also ...types.TransactWriteItem) error
	Reauthorize(ctx context.Context, id string, sites []connections.Site, grantStartedAt time.Time, accountFp string) (*connections.Connection, error)
}

// Keys mints API keys as transaction items (apikeys.Store).
type Keys interface {
	IssueItems(connID, name string) (plaintext string, k *apikeys.Key, items []types.TransactWriteItem, err error)
}

var (
	_ States       = (*oauthstate.Store)(nil)
	_ Connections  = (*connections.Store)(nil)
	_ Keys         = (*apikeys.Store)(nil)
	_ Fingerprints = (*fingerprint.Keyer)(nil)
)

// Config is the handler's configuration.
type Config struct {
	ClientID     string
	ClientSecret string
	// AuthURL is ATLASSIAN_AUTH_URL (https://auth.atlassian.com), APIURL is ATLASSIAN_API_URL
	// (https://api.atlassian.com).
	AuthURL, APIURL string
	// PublicBaseURL is the API's public base URL; empty derives "https://" + the request's host (the Lambda
	// adapter builds that host from the event's requestContext.domainName).
	PublicBaseURL string
	// HTTPClient calls Atlassian (code exchange, accessible-resources, myself); default: 10s timeout. The
	// handler uses a copy that follows no redirect: the exchange's body holds the client secret and the code,
	// which Go would re-send to wherever a 307 or 308 points, and the other calls carry the bearer token.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now stamps the grant's start; default time.Now.
	Now func() time.Time
}

// Deps are the stores the handler works with.
type Deps struct {
	States       States
	Tokens       Tokens
	Connections  Connections
	Keys         Keys
	Fingerprints Fingerprints
}

// Handler serves GET /oauth/authorize and GET /oauth/callback.
type Handler struct {
	cfg Config
	d   Deps
	mux *http.ServeMux
	log *slog.Logger
	// authorizeURL is Atlassian's consent page, the only place the handler redirects a browser to.
	authorizeURL string
}

// New returns the handler.
func New(cfg Config, d Deps) (*Handler, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" || cfg.AuthURL == "" || cfg.APIURL == "" {
		return nil, errors.New("oauthflow: client id, client secret, auth URL and API URL are required")
	}
	if d.States == nil || d.Tokens == nil || d.Connections == nil || d.Keys == nil || d.Fingerprints == nil {
		return nil, errors.New("oauthflow: every store is required")
	}
	if cfg.PublicBaseURL != "" {
		u, err := url.Parse(cfg.PublicBaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("oauthflow: PUBLIC_BASE_URL %q is not an absolute http(s) URL", cfg.PublicBaseURL)
		}
		cfg.PublicBaseURL = strings.TrimRight(cfg.PublicBaseURL, "/")
	}
	cfg.AuthURL = strings.TrimRight(cfg.AuthURL, "/")
	// Every consent redirect goes to this endpoint, so it must be absolute: a relative one would resolve against
	// the request's own URL.
	if u, err := url.Parse(cfg.AuthURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("oauthflow: auth URL %q is not an absolute http(s) URL without a query", cfg.AuthURL)
	}
	cfg.APIURL = strings.TrimRight(cfg.APIURL, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	hc := *cfg.HTTPClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.HTTPClient = &hc
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg, d: d, log: cfg.Logger, mux: http.NewServeMux(),
		authorizeURL: config.Endpoint(cfg.AuthURL).AuthURL}
	h.mux.HandleFunc("GET /oauth/authorize", h.authorize)
	h.mux.HandleFunc("POST /oauth/authorize", h.confirmReauth)
	h.mux.HandleFunc("GET /oauth/callback", h.callback)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { h.render(w, r, ReasonNotFound, pageData{}) })
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Every answer, redirects included: never cached (the success page holds a key), never framed, never leaks
	// its URL to another site.
	hd.Set("Cache-Control", "no-store")
	hd.Set("Pragma", "no-cache")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	h.mux.ServeHTTP(w, r)
}

// baseURL is the API's public base URL for this request.
func (h *Handler) baseURL(r *http.Request) string {
	if h.cfg.PublicBaseURL != "" {
		return h.cfg.PublicBaseURL
	}
	return "https://" + r.Host
}

func (h *Handler) oauthConfig(r *http.Request) *oauth2.Config {
	return &oauth2.Config{
		ClientID: h.cfg.ClientID, ClientSecret: h.cfg.ClientSecret, Endpoint: config.Endpoint(h.cfg.AuthURL),
		RedirectURL: h.baseURL(r) + "/oauth/callback", Scopes: Scopes(),
	}
}

func (h *Handler) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// clearCookieIfOver clears the browser's nonce when consumeErr says the flow it belongs to is over: consumed
// now, or used or expired before. An unknown or foreign state says nothing about the browser's own flow.
func (h *Handler) clearCookieIfOver(w http.ResponseWriter, consumeErr error) {
	if consumeErr == nil || errors.Is(consumeErr, oauthstate.ErrUsed) || errors.Is(consumeErr, oauthstate.ErrExpired) {
		h.setCookie(w, "", -1)
	}
}

// authorize starts a flow for a new connection, or (with ?reauth=<ticket>) shows the page that asks whether to
// renew the connection the ticket was issued for. Showing it spends nothing: only the page's POST does.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) {
	ticket, err := parseAuthorize(r.URL.RawQuery)
	if err != nil {
		h.render(w, r, ReasonBadRequest, pageData{})
		return
	}
	if ticket != "" {
		h.showReauth(w, r, ticket)
		return
	}
	h.startConsent(w, r, "")
}

// startConsent begins an OAuth state (bound to connID when it re-authorises one), gives the browser its nonce
// and sends it to Atlassian's consent page.
func (h *Handler) startConsent(w http.ResponseWriter, r *http.Request, connID string) {
	ctx := r.Context()
	state, nonce, err := h.d.States.Begin(ctx, connID)
	if err != nil {
		h.fail(w, r, "begin OAuth state", err)
		return
	}
	h.setCookie(w, nonce, int(oauthstate.TTL/time.Second))
	// oauth2.Config.AuthCodeURL writes exactly the documented parameters; audience and prompt are Atlassian's.
	u := h.oauthConfig(r).AuthCodeURL(state,
		oauth2.SetAuthURLParam("audience", Audience),
		oauth2.SetAuthURLParam("prompt", "consent"))
	if connID != "" {
		h.log.InfoContext(ctx, "oauth authorize", slog.Bool("reauth", true), slog.String("connectionId", connID))
	} else {
		h.log.InfoContext(ctx, "oauth authorize", slog.Bool("reauth", false))
	}
	// 303 turns the confirming POST into a GET at Atlassian; for the GET that starts a new flow it is a 302's
	// equal.
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	// The target is Atlassian's authorize endpoint from the configuration (ATLASSIAN_AUTH_URL, checked to be an
	// absolute URL in New), never a URL from the request: the request reaches only the query, through
	// redirect_uri when PUBLIC_BASE_URL is unset, and Atlassian sends the code only to a callback URL registered
	// for the app. The prefix check keeps that true whatever the oauth2 library does.
	if !strings.HasPrefix(u, h.authorizeURL+"?") {
		h.fail(w, r, "build authorize URL", errors.New("authorize URL is not the configured endpoint"))
		return
	}
	http.Redirect(w, r, u, status) //nolint:gosec // G710: the target is the configured authorize endpoint (checked above)
}

// reauthRefusal maps a ticket error to its page; ok is false for an unexpected error.
func reauthRefusal(err error) (Reason, bool) {
	switch {
	case errors.Is(err, oauthstate.ErrUsed):
		return ReasonReauthUsed, true
	case errors.Is(err, oauthstate.ErrExpired):
		return ReasonReauthExpired, true
	case errors.Is(err, oauthstate.ErrUnknown):
		return ReasonReauthUnknown, true
	}
	return "", false
}

// showReauth answers GET /oauth/authorize?reauth=<ticket>: the connection's current sites and a form whose POST
// starts the consent. It reads the ticket without using it, so whoever merely opens the link (a person, a
// link-preview bot, a mail scanner) changes nothing. The form is protected by a double-submit token bound to a
// __Host- cookie set here (SameSite=Strict) and by an Origin check on the POST.
func (h *Handler) showReauth(w http.ResponseWriter, r *http.Request, ticket string) {
	ctx := r.Context()
	connID, err := h.d.States.PeekReauth(ctx, ticket)
	if err != nil {
		if reason, ok := reauthRefusal(err); ok {
			h.render(w, r, reason, pageData{})
			return
		}
		h.fail(w, r, "read re-authorisation ticket", err)
		return
	}
	c, err := h.d.Connections.Get(ctx, connID)
	if errors.Is(err, connections.ErrNotFound) || err == nil && c.Status == connections.StatusDisconnected {
		h.render(w, r, ReasonConnectionGone, pageData{})
		return
	}
	if err != nil {
		h.fail(w, r, "get connection", err)
		return
	}
	csrf := newCSRFToken()
	http.SetCookie(w, &http.Cookie{
		Name: CSRFCookieName, Value: csrf, Path: "/", MaxAge: int(oauthstate.TTL / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	// No form-action on this page: Chrome and Safari apply it to every redirect that follows the submission
	// (w3c/webappsec-csp#8), and the answer's redirect goes to Atlassian, which may redirect on to its login
	// (id.atlassian.com) and from there wherever the customer's sign-in leads. The page has nothing injectable
	// (html/template, fixed text, our own form), which is what form-action would guard against.
	w.Header().Set("Content-Security-Policy",
		"default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'")
	h.render(w, r, ReasonReauthConfirm, pageData{
		Sites: siteViews(c.Sites), FormAction: h.baseURL(r) + "/oauth/authorize", Ticket: ticket, CSRF: csrf,
	})
}

// confirmReauth answers the re-authorisation page's POST: it checks the request came from that page, spends the
// ticket and starts the consent.
func (h *Handler) confirmReauth(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form, err := parseConfirm(r)
	if err != nil {
		h.render(w, r, ReasonBadRequest, pageData{})
		return
	}
	// Browsers send Origin on every POST; a request without it, or from another origin, did not come from our
	// page. The double-submit token then proves the page was loaded in this browser: a __Host- cookie cannot be
	// set by another site or subdomain, and SameSite=Strict keeps it off cross-site requests.
	var cookie string
	if c, err := r.Cookie(CSRFCookieName); err == nil {
		cookie = c.Value
	}
	if r.Header.Get("Origin") != origin(h.baseURL(r)) || !csrfMatch(cookie, form.CSRF) {
		h.render(w, r, ReasonForgedForm, pageData{})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CSRFCookieName, Value: "", Path: "/", MaxAge: -1, Secure: true,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
	connID, err := h.d.States.RedeemReauth(ctx, form.Ticket)
	if err != nil {
		if reason, ok := reauthRefusal(err); ok {
			h.render(w, r, reason, pageData{})
			return
		}
		h.fail(w, r, "redeem re-authorisation ticket", err)
		return
	}
	h.startConsent(w, r, connID)
}

// callback finishes a flow.
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// The cookie is cleared only once its flow is over (the state consumed here, or already used or expired):
	// anyone can make the browser load this URL, and a forged callback must not end the user's real flow.
	q, err := parseCallback(r.URL.RawQuery)
	if err != nil {
		h.render(w, r, ReasonBadRequest, pageData{})
		return
	}
	var nonce string
	if c, err := r.Cookie(CookieName); err == nil {
		nonce = c.Value
	}

	if q.Error != "" {
		// Use up the state so the flow is over, whatever it was; the outcome does not depend on it.
		if q.State != "" && nonce != "" {
			_, err := h.d.States.Consume(ctx, q.State, nonce)
			h.clearCookieIfOver(w, err)
		}
		if q.Error == "access_denied" {
			h.render(w, r, ReasonDenied, pageData{})
			return
		}
		h.log.WarnContext(ctx, "oauth callback error from Atlassian", slog.String("error", safeErrorCode(q.Error)))
		h.render(w, r, ReasonAtlassianError, pageData{})
		return
	}

	flow, err := h.d.States.Consume(ctx, q.State, nonce)
	h.clearCookieIfOver(w, err)
	switch {
	case errors.Is(err, oauthstate.ErrNoSession):
		h.render(w, r, ReasonNoCookie, pageData{})
		return
	case errors.Is(err, oauthstate.ErrForeign):
		h.render(w, r, ReasonForeignCookie, pageData{})
		return
	case errors.Is(err, oauthstate.ErrUsed):
		h.render(w, r, ReasonStateUsed, pageData{})
		return
	case errors.Is(err, oauthstate.ErrExpired):
		h.render(w, r, ReasonStateExpired, pageData{})
		return
	case errors.Is(err, oauthstate.ErrUnknown):
		h.render(w, r, ReasonStateUnknown, pageData{})
		return
	case err != nil:
		h.fail(w, r, "consume OAuth state", err)
		return
	}

	var existing *connections.Connection
	if flow.ConnectionID != "" {
		// Refuse before spending the code on a connection that cannot take it.
		existing, err = h.d.Connections.Get(ctx, flow.ConnectionID)
		if errors.Is(err, connections.ErrNotFound) || err == nil && existing.Status == connections.StatusDisconnected {
			h.render(w, r, ReasonConnectionGone, pageData{})
			return
		}
		if err != nil {
			h.fail(w, r, "get connection", err)
			return
		}
	}

	grantStart := h.cfg.Now().UTC()
	xctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, h.cfg.HTTPClient), 15*time.Second)
	defer cancel()
	tok, err := h.oauthConfig(r).Exchange(xctx, q.Code)
	if err != nil {
		h.log.WarnContext(ctx, "oauth code exchange failed", slog.String("reason", exchangeReason(err)))
		h.render(w, r, ReasonExchangeFailed, pageData{})
		return
	}
	if tok.RefreshToken == "" {
		h.render(w, r, ReasonNoOfflineAccess, pageData{})
		return
	}
	sites, err := h.accessibleSites(xctx, tok)
	if err != nil {
		h.log.WarnContext(ctx, "accessible-resources failed", slog.String("error", err.Error()))
		h.render(w, r, ReasonResourcesFailed, pageData{})
		return
	}
	if len(sites) == 0 {
		h.render(w, r, ReasonNoJiraSite, pageData{})
		return
	}

	// Whose grant is this? The account id lives only in this function's memory; what is kept is its
	// fingerprint for this connection.
	accountID, err := h.grantAccount(xctx, tok, sites)
	if err != nil {
		h.log.WarnContext(ctx, "reading the grant's account failed", slog.String("error", err.Error()))
		h.render(w, r, ReasonAccountUnknown, pageData{})
		return
	}
	connID := flow.ConnectionID
	if connID == "" {
		connID = connections.NewID()
	}
	fp, err := h.d.Fingerprints.Of(ctx, connID, accountID)
	if err != nil {
		h.fail(w, r, "fingerprint the account", err)
		return
	}

	if existing != nil {
		if !fingerprint.Equal(existing.AccountFingerprint, fp) {
			// Another person's grant: it is dropped here, before anything is written. Atlassian offers no API
			// to revoke it; the page tells its owner where to remove the app.
			h.log.WarnContext(ctx, "re-authorisation by another account refused", slog.String("connectionId", connID))
			h.render(w, r, ReasonAccountMismatch, pageData{})
			return
		}
		h.finishReauth(w, r, connID, tok, sites, grantStart, fp)
		return
	}
	h.finishNew(w, r, connID, tok, sites, grantStart, fp)
}

// finishNew stores a new connection. The token record is written first (it cannot join a transaction: it is
// encrypted under a data key bound to the connection), then the connection and its first API key together; if
// that fails the token record is removed, so no half-made connection remains.
func (h *Handler) finishNew(w http.ResponseWriter, r *http.Request, connID string, tok *oauth2.Token, sites []connections.Site, grantStart time.Time, fp string) {
	ctx := r.Context()
	if err := h.d.Tokens.Put(ctx, connID, tok, grantStart); err != nil {
		h.fail(w, r, "store tokens", err)
		return
	}
	plaintext, key, items, err := h.d.Keys.IssueItems(connID, "default")
	if err == nil {
		err = h.d.Connections.Create(ctx, &connections.Connection{
			ID: connID, Status: connections.StatusActive, Sites: sites, GrantStartedAt: grantStart, AccountFingerprint: fp,
		}, items...)
	}
	if err != nil {
		h.discardTokens(ctx, connID)
		h.fail(w, r, "create connection", err)
		return
	}
	h.log.InfoContext(ctx, "connection created", slog.String("connectionId", connID), slog.String("keyId", key.ID),
		slog.Int("sites", len(sites)))
	h.render(w, r, ReasonConnected, pageData{
		APIKey: plaintext, ConnectionID: connID, Sites: siteViews(sites), APIBase: h.baseURL(r),
	})
}

// finishReauth replaces the connection's token family and sites and makes it active again; its connectors, runs
// and API keys stay as they are (the user started this with one of those keys, so no new key is issued). fp has
// been checked against the connection's; Reauthorize checks it again in its write.
func (h *Handler) finishReauth(w http.ResponseWriter, r *http.Request, connID string, tok *oauth2.Token, sites []connections.Site, grantStart time.Time, fp string) {
	ctx := r.Context()
	if err := h.d.Tokens.Put(ctx, connID, tok, grantStart); err != nil {
		h.fail(w, r, "store tokens", err)
		return
	}
	c, err := h.d.Connections.Reauthorize(ctx, connID, sites, grantStart, fp)
	if errors.Is(err, connections.ErrNotFound) || errors.Is(err, connections.ErrDisconnected) {
		// Disconnected while the user was at Atlassian: the new tokens must not outlive it.
		h.discardTokens(ctx, connID)
		h.render(w, r, ReasonConnectionGone, pageData{})
		return
	}
	if errors.Is(err, connections.ErrAccountMismatch) {
		// Unreachable while fingerprints never change (checked above); if it happens, the tokens just written
		// are not the connection's and must go.
		h.discardTokens(ctx, connID)
		h.render(w, r, ReasonAccountMismatch, pageData{})
		return
	}
	if err != nil {
		h.fail(w, r, "reauthorize connection", err)
		return
	}
	h.log.InfoContext(ctx, "connection reauthorized", slog.String("connectionId", connID), slog.Int("sites", len(c.Sites)))
	h.render(w, r, ReasonReauthorized, pageData{ConnectionID: connID, Sites: siteViews(c.Sites)})
}

func (h *Handler) discardTokens(ctx context.Context, connID string) {
	// A fresh context: the request's may be what failed.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := h.d.Tokens.Delete(dctx, connID); err != nil {
		h.log.ErrorContext(ctx, "orphaned token record not deleted", slog.String("connectionId", connID), slog.Any("error", err))
	}
}

// resource is one entry of accessible-resources.
type resource struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	URL    string   `json:"url"`
	Scopes []string `json:"scopes"`
}

// accessibleSites reads the grant's sites and keeps the Jira ones. An id can appear once per product (Jira,
// Confluence); only the scopes tell them apart.
func (h *Handler) accessibleSites(ctx context.Context, tok *oauth2.Token) ([]connections.Site, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.cfg.APIURL+"/oauth/token/accessible-resources", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	tok.SetAuthHeader(req)
	resp, err := h.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("accessible-resources: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("accessible-resources: status %d", resp.StatusCode)
	}
	var rs []resource
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rs); err != nil {
		return nil, fmt.Errorf("accessible-resources: decode: %w", err)
	}
	return jiraSites(rs), nil
}

// grantAccount asks the first sites of the grant, in Atlassian's order, who the user is; any one answer is the
// account (one grant is one account on every site), and trying another site rides out one site's outage.
func (h *Handler) grantAccount(ctx context.Context, tok *oauth2.Token, sites []connections.Site) (string, error) {
	var errs []error
	for _, s := range sites[:min(len(sites), 3)] {
		id, err := h.myself(ctx, tok, s.CloudID)
		if err == nil {
			return id, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return "", errors.Join(errs...)
}

// maxAccountID bounds an account id (Atlassian's are 24 hex digits, or "<6 digits>:<uuid>": well under this).
const maxAccountID = 128

// myself reads the account id of the grant's user: GET /rest/api/3/myself through the API gateway on a site the
// grant covers. It needs only read:jira-user, which the product asks for anyway (Atlassian's User Identity API,
// GET /me, would need the extra read:me scope and consent). Only accountId is decoded; the name and e-mail in
// the same answer are never read into memory as fields, logged or kept.
func (h *Handler) myself(ctx context.Context, tok *oauth2.Token, cloudID string) (string, error) {
	u := h.cfg.APIURL + "/ex/jira/" + url.PathEscape(cloudID) + "/rest/api/3/myself"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	tok.SetAuthHeader(req)
	resp, err := h.cfg.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("myself: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return "", fmt.Errorf("myself: status %d", resp.StatusCode)
	}
	var me struct {
		AccountID string `json:"accountId"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&me); err != nil {
		return "", errors.New("myself: undecodable answer")
	}
	if me.AccountID == "" || len(me.AccountID) > maxAccountID || !printable(me.AccountID) {
		return "", errors.New("myself: no usable accountId")
	}
	return me.AccountID, nil
}

// jiraSites keeps resources with a Jira scope, merging duplicate ids, in the order Atlassian listed them.
func jiraSites(rs []resource) []connections.Site {
	var out []connections.Site
	idx := map[string]int{}
	for _, r := range rs {
		var js []string
		for _, s := range r.Scopes {
			if isJiraScope(s) {
				js = append(js, s)
			}
		}
		if r.ID == "" || len(js) == 0 {
			continue
		}
		if i, ok := idx[r.ID]; ok {
			for _, s := range js {
				if !slices.Contains(out[i].Scopes, s) {
					out[i].Scopes = append(out[i].Scopes, s)
				}
			}
			continue
		}
		idx[r.ID] = len(out)
		out = append(out, connections.Site{CloudID: r.ID, URL: r.URL, Name: r.Name, Scopes: js})
	}
	return out
}

// isJiraScope matches classic (read:jira-work) and granular (read:issue:jira) Jira scopes.
func isJiraScope(s string) bool {
	return strings.Contains(s, ":jira-") || strings.HasSuffix(s, ":jira") || strings.HasSuffix(s, ":jira-software")
}

func siteViews(sites []connections.Site) []siteView {
	out := make([]siteView, 0, len(sites))
	for _, s := range sites {
		out = append(out, siteView{Name: s.Name, URL: s.URL})
	}
	return out
}

// exchangeReason is a loggable summary of a failed exchange: the OAuth error code and status, never the body.
func exchangeReason(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Sprintf("%s (HTTP %d)", safeErrorCode(re.ErrorCode), status)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "transport error"
}

// safeErrorCode passes OAuth error codes (RFC 6749 shape: lower-case letters and underscores) and nothing else.
func safeErrorCode(s string) string {
	if s == "" || len(s) > 64 {
		return "other"
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < 'a' || s[i] > 'z') && s[i] != '_' {
			return "other"
		}
	}
	return s
}

// fail answers the internal-error page; the cause goes to the log only.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	h.log.ErrorContext(r.Context(), "oauth flow failed", slog.String("op", op), slog.Any("error", err))
	h.render(w, r, ReasonInternal, pageData{})
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, reason Reason, d pageData) {
	p, ok := pages[reason]
	if !ok {
		p = pages[ReasonInternal]
	}
	d.Reason, d.Title, d.Message, d.Retry = reason, p.title, p.message, p.retry
	if d.Retry {
		d.AuthorizeURL = h.baseURL(r) + "/oauth/authorize"
	}
	if reason != ReasonConnected && reason != ReasonReauthorized && reason != ReasonNotFound && reason != ReasonReauthConfirm {
		h.log.InfoContext(r.Context(), "oauth flow refused", slog.String("reason", string(reason)), slog.Int("status", p.status))
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(p.status)
	if err := pageTmpl.Execute(w, d); err != nil {
		h.log.ErrorContext(r.Context(), "render page", slog.Any("error", err))
	}
}
