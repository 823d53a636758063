package atlassiansim

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Lifetimes from jira-cloud.md §1. The authorization code's lifetime is undocumented; 5 minutes is the stricter
// side of the RFC's "10 minutes at most".
const (
	AccessTokenTTL     = time.Hour
	AuthCodeTTL        = 5 * time.Minute
	RefreshLeeway      = 10 * time.Minute
	RefreshInactivity  = 90 * 24 * time.Hour
	RefreshAbsolute    = 365 * 24 * time.Hour
	consentTxTTL       = 30 * time.Minute
	invalidRefreshText = "Unknown or invalid refresh token."
)

// knownScopes are the scopes /authorize accepts; anything else is invalid_scope.
var knownScopes = map[string]bool{
	"read:jira-work": true, "read:jira-user": true, "write:jira-work": true, "manage:jira-project": true,
	"manage:jira-configuration": true, "manage:jira-webhook": true, "offline_access": true, "read:me": true,
	"report:personal-data": true, "read:account": true,
	"read:issue-details:jira": true, "read:audit-log:jira": true, "read:avatar:jira": true,
	"read:field-configuration:jira": true, "read:issue-meta:jira": true, "read:field.default-value:jira": true,
	"read:field.option:jira": true, "read:field:jira": true, "read:group:jira": true, "validate:jql:jira": true,
	"read:jql:jira": true, "read:issue-security-level:jira": true, "read:issue.vote:jira": true,
	"read:issue.changelog:jira": true, "read:issue:jira": true, "read:status:jira": true, "read:user:jira": true,
	"read:comment:jira": true, "read:comment.property:jira": true, "read:project:jira": true,
	"read:project-role:jira": true, "read:attachment:jira": true, "read:application-role:jira": true,
	"read:email-address:jira": true,
}

// nonSiteScopes are not listed against sites in accessible-resources.
var nonSiteScopes = map[string]bool{"offline_access": true, "read:me": true, "report:personal-data": true, "read:account": true}

type authState struct {
	pending  map[string]*authRequest
	codes    map[string]*authCode
	grants   map[string]*grant // by account id: one grant per (account, app)
	families map[string]*family
	refresh  map[string]string // refresh token -> family id
	access   map[string]*accessRec
}

func newAuthState() *authState {
	return &authState{pending: map[string]*authRequest{}, codes: map[string]*authCode{}, grants: map[string]*grant{},
		families: map[string]*family{}, refresh: map[string]string{}, access: map[string]*accessRec{}}
}

type authRequest struct {
	redirectURI, scope, state string
	expires                   time.Time
}

type authCode struct {
	accountID, redirectURI, scope string
	expires                       time.Time
	used                          bool
	family                        string // the family the exchange created, revoked if the code is replayed
}

type grant struct {
	accountID string
	scope     string
	revoked   bool
}

// family is one chain of rotating refresh tokens, started by one code exchange.
type family struct {
	id, accountID, scope string
	created              time.Time // absolute expiry counts from here
	current              string    // the newest refresh token
	currentAt            time.Time // when current was issued: inactivity counts from here
	previous             string    // the token current replaced, accepted again within the leeway
	previousUntil        time.Time
	revoked              bool
	revokedWhy           string
}

type accessRec struct {
	accountID, scope, family string
	expires                  time.Time
}

// TokenResponse is the body of a successful /oauth/token answer.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	TokenType    string `json:"token_type"`
}

func randomToken(prefix string) string {
	return prefix + base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func redirectWith(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, _ := url.Parse(redirectURI) // registered URIs were validated in New... or at least parse here
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

var errorPage = template.Must(template.New("err").Parse(`<!doctype html><html><head><title>Something went wrong</title></head>
<body><h1>Something went wrong</h1><p>{{.}}</p></body></html>`))

func authorizeErrorPage(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	_ = errorPage.Execute(w, msg)
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html><html><head><title>Authorize app – Atlassian simulator</title></head>
<body><h1>{{.Client}} is requesting access to your Atlassian account</h1>
<p>Scopes: {{range .Scopes}}<code>{{.}}</code> {{end}}</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="tx" value="{{.Tx}}">
<label>Log in as <select name="user">{{range .Users}}<option value="{{.AccountID}}">{{.DisplayName}} ({{len .Sites}} site(s))</option>{{end}}</select></label>
<p><button type="submit" name="decision" value="accept">Accept</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form></body></html>`))

// handleAuthorize is GET /authorize: validate, then either consent at once (test switch) or show the consent page.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") == "" || q.Get("client_id") != s.cfg.ClientID {
		authorizeErrorPage(w, "Invalid client_id: the app does not exist or is not configured for OAuth 2.0 (3LO).")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" || !slices.Contains(s.cfg.RedirectURIs, redirectURI) {
		// Never redirect to an unregistered URI: show the error instead.
		authorizeErrorPage(w, "The redirect_uri does not match any callback URL configured for this app.")
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) {
		p := url.Values{"error": {code}, "error_description": {desc}}
		if state != "" {
			p.Set("state", state)
		}
		redirectWith(w, r, redirectURI, p)
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "response_type must be code")
		return
	}
	if a := q.Get("audience"); a != "" && a != "api.atlassian.com" {
		fail("invalid_request", "unknown audience")
		return
	}
	if state == "" {
		fail("invalid_request", "state is required")
		return
	}
	scope, err := normaliseScope(q.Get("scope"))
	if err != nil {
		fail("invalid_scope", err.Error())
		return
	}
	req := &authRequest{redirectURI: redirectURI, scope: scope, state: state, expires: s.clock.Now().Add(consentTxTTL)}

	// The switch is headers only: a URL the product builds can never consent on a user's behalf.
	if s.cfg.TestControls && r.Header.Get("X-Sim-Consent") != "" {
		decision := r.Header.Get("X-Sim-Consent")
		account := r.Header.Get("X-Sim-User")
		s.finishConsent(w, r, req, account, decision)
		return
	}
	tx := randomToken("tx_")
	s.mu.Lock()
	s.auth.pending[tx] = req
	var users []*User
	for _, u := range s.data.users {
		if u.CanConsent {
			users = append(users, u)
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = consentPage.Execute(w, map[string]any{"Client": s.cfg.ClientID, "Scopes": strings.Fields(scope),
		"Action": "authorize", "Tx": tx, "Users": users})
}

// handleConsentPost is POST /authorize, the consent page's form.
func (s *Server) handleConsentPost(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		authorizeErrorPage(w, "bad form")
		return
	}
	tx := r.PostForm.Get("tx")
	s.mu.Lock()
	req := s.auth.pending[tx]
	delete(s.auth.pending, tx)
	s.mu.Unlock()
	if req == nil || s.clock.Now().After(req.expires) {
		authorizeErrorPage(w, "This authorization request has expired. Start again from the app.")
		return
	}
	s.finishConsent(w, r, req, r.PostForm.Get("user"), r.PostForm.Get("decision"))
}

func (s *Server) finishConsent(w http.ResponseWriter, r *http.Request, req *authRequest, account, decision string) {
	switch decision {
	case "deny":
		redirectWith(w, r, req.redirectURI, url.Values{"error": {"access_denied"},
			"error_description": {"User did not authorize the request"}, "state": {req.state}})
		return
	case "accept":
	default:
		authorizeErrorPage(w, "decision must be accept or deny")
		return
	}
	s.mu.Lock()
	if account == "" {
		for _, u := range s.data.users {
			if u.CanConsent {
				account = u.AccountID
				break
			}
		}
	}
	u := s.data.userByID[account]
	if u == nil || !u.CanConsent {
		s.mu.Unlock()
		authorizeErrorPage(w, "unknown user")
		return
	}
	code := randomToken("code_")
	s.auth.codes[code] = &authCode{accountID: account, redirectURI: req.redirectURI, scope: req.scope,
		expires: s.clock.Now().Add(AuthCodeTTL)}
	// A new consent replaces the grant's scopes ("scopes in the new grant override") and revives a revoked grant.
	s.auth.grants[account] = &grant{accountID: account, scope: req.scope}
	s.mu.Unlock()
	redirectWith(w, r, req.redirectURI, url.Values{"code": {code}, "state": {req.state}})
}

func normaliseScope(raw string) (string, error) {
	fs := strings.Fields(raw)
	if len(fs) == 0 {
		return "", errors.New("scope is required")
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range fs {
		if !knownScopes[f] {
			return "", fmt.Errorf("unknown scope %q", f)
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return strings.Join(out, " "), nil
}

// tokenParams reads the token request from a JSON (documented) or form (what golang.org/x/oauth2 sends) body.
func tokenParams(r *http.Request) (map[string]string, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	out := map[string]string{}
	switch mt {
	case "application/json":
		var m map[string]any
		dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
		if err := dec.Decode(&m); err != nil {
			return nil, errors.New("malformed JSON body")
		}
		for k, v := range m {
			sv, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("%s must be a string", k)
			}
			out[k] = sv
		}
	case "application/x-www-form-urlencoded":
		r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			return nil, errors.New("malformed form body")
		}
		for k := range r.PostForm {
			out[k] = r.PostForm.Get(k)
		}
	default:
		return nil, errors.New("Content-Type must be application/json or application/x-www-form-urlencoded")
	}
	return out, nil
}

// handleToken is POST /oauth/token.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	p, err := tokenParams(r)
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	gt := p["grant_type"]
	if gt == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	}
	if gt != "authorization_code" && gt != "refresh_token" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant type: "+gt)
		return
	}
	// Client credentials are read from the body only (the documented form); an Authorization: Basic header is not
	// consulted, so a client relying on it fails here as it would risk failing at Atlassian.
	if subtle.ConstantTimeCompare([]byte(p["client_id"]), []byte(s.cfg.ClientID)) != 1 ||
		p["client_secret"] == "" ||
		subtle.ConstantTimeCompare([]byte(p["client_secret"]), []byte(s.cfg.ClientSecret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "access_denied", "Unauthorized")
		return
	}
	now := s.clock.Now()
	var resp TokenResponse
	var status int
	var ecode, edesc string
	if gt == "authorization_code" {
		resp, status, ecode, edesc = s.exchangeCode(p["code"], p["redirect_uri"], now)
	} else {
		omit := s.takeContentFault("POST /oauth/token", FaultNoRefreshToken)
		resp, status, ecode, edesc = s.refresh(p["refresh_token"], now, omit)
	}
	if status != http.StatusOK {
		oauthError(w, status, ecode, edesc)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) exchangeCode(code, redirectURI string, now time.Time) (TokenResponse, int, string, string) {
	const bad = "authorization_code is invalid"
	if code == "" {
		return TokenResponse{}, http.StatusBadRequest, "invalid_request", "code is required"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.auth.codes[code]
	if c == nil || now.After(c.expires) {
		return TokenResponse{}, http.StatusBadRequest, "invalid_request", bad
	}
	if c.used {
		// RFC 6749 §4.1.2: a replayed code revokes what it produced.
		if f := s.auth.families[c.family]; f != nil {
			f.revoke("authorization code replayed")
		}
		return TokenResponse{}, http.StatusBadRequest, "invalid_request", bad
	}
	c.used = true
	if redirectURI != c.redirectURI {
		return TokenResponse{}, http.StatusBadRequest, "invalid_request", "redirect_uri does not match the authorization request"
	}
	if g := s.auth.grants[c.accountID]; g == nil || g.revoked {
		return TokenResponse{}, http.StatusForbidden, "invalid_grant", "Grant revoked"
	}
	f := &family{id: randomToken("fam_"), accountID: c.accountID, scope: c.scope, created: now}
	s.auth.families[f.id] = f
	c.family = f.id
	return s.mintLocked(f, now, false), http.StatusOK, "", ""
}

// mintLocked issues an access token, and a new refresh token (rotating the family) when the scope allows it.
func (s *Server) mintLocked(f *family, now time.Time, keepRefresh bool) TokenResponse {
	at := randomToken("sim_at_")
	s.auth.access[at] = &accessRec{accountID: f.accountID, scope: f.scope, family: f.id, expires: now.Add(AccessTokenTTL)}
	resp := TokenResponse{AccessToken: at, ExpiresIn: int(AccessTokenTTL / time.Second), Scope: f.scope, TokenType: "Bearer"}
	if !hasScope(f.scope, "offline_access") || keepRefresh {
		return resp
	}
	rt := randomToken("sim_rt_")
	s.auth.refresh[rt] = f.id
	f.current, f.currentAt = rt, now
	resp.RefreshToken = rt
	return resp
}

func (f *family) revoke(why string) {
	if !f.revoked {
		f.revoked, f.revokedWhy = true, why
	}
}

// refresh implements rotation as documented: the newest token rotates; the one it replaced is honoured again
// within the 10-minute leeway (the response then rotates again, and the token handed out by the first exchange
// is superseded); any other token of the family revokes the whole family. Idle and absolute expiry end it too.
func (s *Server) refresh(rt string, now time.Time, omitRefresh bool) (TokenResponse, int, string, string) {
	fail := func() (TokenResponse, int, string, string) {
		return TokenResponse{}, http.StatusForbidden, "invalid_grant", invalidRefreshText
	}
	if rt == "" {
		return TokenResponse{}, http.StatusBadRequest, "invalid_request", "refresh_token is required"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.auth.families[s.auth.refresh[rt]]
	if f == nil || f.revoked {
		return fail()
	}
	if g := s.auth.grants[f.accountID]; g == nil || g.revoked {
		f.revoke("grant revoked")
		return fail()
	}
	if !now.Before(f.created.Add(RefreshAbsolute)) {
		f.revoke("absolute expiry")
		return fail()
	}
	switch {
	case rt == f.current:
		if !now.Before(f.currentAt.Add(RefreshInactivity)) {
			f.revoke("inactivity expiry")
			return fail()
		}
		if omitRefresh {
			// Atlassian sometimes answers without refresh_token; the token used stays the current one so a client
			// that keeps its old token (as x/oauth2 does) carries on.
			return s.mintLocked(f, now, true), http.StatusOK, "", ""
		}
		f.previous, f.previousUntil = rt, now.Add(RefreshLeeway)
		return s.mintLocked(f, now, false), http.StatusOK, "", ""
	case rt == f.previous && now.Before(f.previousUntil):
		return s.mintLocked(f, now, omitRefresh), http.StatusOK, "", ""
	default:
		f.revoke("refresh token reuse")
		return fail()
	}
}

func hasScope(scope, want string) bool {
	return slices.Contains(strings.Fields(scope), want)
}

// authenticate resolves a bearer token to its live record. Expired, revoked-family and revoked-grant tokens fail.
func (s *Server) authenticateLocked(r *http.Request, now time.Time) *accessRec {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return nil
	}
	a := s.auth.access[tok]
	if a == nil || !now.Before(a.expires) {
		return nil
	}
	if f := s.auth.families[a.family]; f == nil || f.revoked {
		return nil
	}
	if g := s.auth.grants[a.accountID]; g == nil || g.revoked {
		return nil
	}
	return a
}

var errUnauthorized = map[string]any{"code": 401, "message": "Unauthorized"}

// handleAccessibleResources is GET /oauth/token/accessible-resources.
func (s *Server) handleAccessibleResources(w http.ResponseWriter, r *http.Request) {
	now := s.clock.Now()
	s.mu.Lock()
	a := s.authenticateLocked(r, now)
	if a == nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusUnauthorized, errUnauthorized)
		return
	}
	var scopes []string
	for _, sc := range strings.Fields(a.scope) {
		if !nonSiteScopes[sc] {
			scopes = append(scopes, sc)
		}
	}
	sort.Strings(scopes)
	out := []map[string]any{}
	if len(scopes) > 0 {
		for _, st := range s.data.sites {
			if st.members[a.accountID] {
				out = append(out, map[string]any{"id": st.cloudID, "name": st.name, "url": st.url, "scopes": scopes,
					"avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/flag.png"})
			}
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// RevokeGrant revokes a user's grant to the app, as the user does under "Connected apps": every access and refresh
// token of that user stops working and the user must consent again.
func (s *Server) RevokeGrant(accountID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.auth.grants[accountID]
	if g == nil {
		return fmt.Errorf("atlassiansim: no grant for account %q", accountID)
	}
	g.revoked = true
	for _, f := range s.auth.families {
		if f.accountID == accountID {
			f.revoke("grant revoked")
		}
	}
	return nil
}

// IssueTokens grants accountID the given scopes and returns tokens as a code exchange would, skipping the browser
// flow. Tests of the gateway use it; tests of the OAuth flow should go through /authorize.
func (s *Server) IssueTokens(accountID string, scopes ...string) (TokenResponse, error) {
	scope, err := normaliseScope(strings.Join(scopes, " "))
	if err != nil {
		return TokenResponse{}, fmt.Errorf("atlassiansim: %w", err)
	}
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.data.userByID[accountID]
	if u == nil || !u.CanConsent {
		return TokenResponse{}, fmt.Errorf("atlassiansim: account %q cannot consent", accountID)
	}
	s.auth.grants[accountID] = &grant{accountID: accountID, scope: scope}
	f := &family{id: randomToken("fam_"), accountID: accountID, scope: scope, created: now}
	s.auth.families[f.id] = f
	return s.mintLocked(f, now, false), nil
}

// FamilyRevoked reports whether the family that refreshToken belongs to has been revoked, and why.
func (s *Server) FamilyRevoked(refreshToken string) (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.auth.families[s.auth.refresh[refreshToken]]
	if f == nil {
		return false, "unknown token"
	}
	return f.revoked, f.revokedWhy
}
