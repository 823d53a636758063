package atlassiansim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestAuthorizeValidation(t *testing.T) {
	f := newFixture(t, nil)
	acct := f.admin().AccountID
	tests := []struct {
		name       string
		mod        func(url.Values)
		hdr        []string
		wantStatus int
		wantError  string // error parameter of the redirect; "" = a code
		wantState  bool
	}{
		{"accept", nil, []string{"X-Sim-Consent", "accept", "X-Sim-User", acct}, 302, "", true},
		{"deny", nil, []string{"X-Sim-Consent", "deny"}, 302, "access_denied", true},
		{"unknown client", func(q url.Values) { q.Set("client_id", "other") }, []string{"X-Sim-Consent", "accept"}, 400, "", false},
		{"redirect trailing slash", func(q url.Values) { q.Set("redirect_uri", testRedirect+"/") }, []string{"X-Sim-Consent", "accept"}, 400, "", false},
		{"redirect missing", func(q url.Values) { q.Del("redirect_uri") }, []string{"X-Sim-Consent", "accept"}, 400, "", false},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, []string{"X-Sim-Consent", "accept"}, 302, "unsupported_response_type", true},
		{"no state", func(q url.Values) { q.Del("state") }, []string{"X-Sim-Consent", "accept"}, 302, "invalid_request", false},
		{"unknown scope", func(q url.Values) { q.Set("scope", "read:jira-work write:everything") }, []string{"X-Sim-Consent", "accept"}, 302, "invalid_scope", true},
		{"no scope", func(q url.Values) { q.Del("scope") }, []string{"X-Sim-Consent", "accept"}, 302, "invalid_scope", true},
		{"wrong audience", func(q url.Values) { q.Set("audience", "evil.example") }, []string{"X-Sim-Consent", "accept"}, 302, "invalid_request", true},
		{"unknown user", nil, []string{"X-Sim-Consent", "accept", "X-Sim-User", "nobody"}, 400, "", false},
		{"query switch ignored", func(q url.Values) { q.Set("sim_consent", "accept"); q.Set("sim_user", acct) }, nil, 200, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do("GET", authorizeQuery(tt.mod), "", nil, tt.hdr...)
			if r.status != tt.wantStatus {
				t.Fatalf("GET /authorize (%s) = %d, want %d: %s", tt.name, r.status, tt.wantStatus, r.body)
			}
			if r.status != 302 {
				if loc := r.header.Get("Location"); loc != "" {
					t.Errorf("non-redirect answer carries Location %q", loc)
				}
				return
			}
			loc, _ := url.Parse(r.header.Get("Location"))
			if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testRedirect {
				t.Errorf("redirect target = %q, want %q", got, testRedirect)
			}
			q := loc.Query()
			if q.Get("error") != tt.wantError {
				t.Errorf("redirect error = %q, want %q", q.Get("error"), tt.wantError)
			}
			if tt.wantError == "" && q.Get("code") == "" {
				t.Errorf("redirect %q has no code", loc)
			}
			if (q.Get("state") == "st-123") != tt.wantState {
				t.Errorf("redirect state = %q, want echoed %v", q.Get("state"), tt.wantState)
			}
		})
	}
}

func TestConsentSwitchNeedsTestControls(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.TestControls = false })
	r := f.do("GET", authorizeQuery(nil), "", nil, "X-Sim-Consent", "accept")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "<form") {
		t.Fatalf("GET /authorize with X-Sim-Consent and TestControls off = %d, want the consent page", r.status)
	}
}

func TestConsentPage(t *testing.T) {
	f := newFixture(t, nil)
	for _, decision := range []string{"accept", "deny"} {
		t.Run(decision, func(t *testing.T) {
			page := f.do("GET", authorizeQuery(nil), "", nil)
			if page.status != 200 {
				t.Fatalf("consent page status = %d", page.status)
			}
			m := regexp.MustCompile(`name="tx" value="([^"]+)"`).FindSubmatch(page.body)
			if m == nil {
				t.Fatalf("consent page has no tx field: %s", page.body)
			}
			r := f.do("POST", "/authorize", "", url.Values{"tx": {string(m[1])}, "user": {f.admin().AccountID}, "decision": {decision}})
			if r.status != http.StatusFound {
				t.Fatalf("POST /authorize = %d, want 302: %s", r.status, r.body)
			}
			loc, _ := url.Parse(r.header.Get("Location"))
			if loc.Query().Get("state") != "st-123" {
				t.Errorf("state = %q, want st-123", loc.Query().Get("state"))
			}
			if decision == "accept" && loc.Query().Get("code") == "" || decision == "deny" && loc.Query().Get("error") != "access_denied" {
				t.Errorf("redirect after %s = %q", decision, loc)
			}
			// The transaction is single-use.
			again := f.do("POST", "/authorize", "", url.Values{"tx": {string(m[1])}, "user": {f.admin().AccountID}, "decision": {"accept"}})
			if again.status != http.StatusBadRequest {
				t.Errorf("replayed consent = %d, want 400", again.status)
			}
		})
	}
}

func TestCodeSingleUseAndShortLived(t *testing.T) {
	f := newFixture(t, nil)
	acct := f.admin().AccountID

	code := f.code(acct, nil)
	r, tr := f.exchange(code)
	if r.status != 200 {
		t.Fatalf("first exchange = %d: %s", r.status, r.body)
	}
	r2, _ := f.exchange(code)
	if r2.status != http.StatusBadRequest || r2.json(t)["error"] != "invalid_request" {
		t.Errorf("replayed code = %d %s, want 400 invalid_request", r2.status, r2.body)
	}
	// A replayed code revokes what it produced.
	if r := f.do("GET", "/oauth/token/accessible-resources", tr.AccessToken, nil); r.status != http.StatusUnauthorized {
		t.Errorf("access token after code replay = %d, want 401", r.status)
	}
	if r, _ := f.refresh(tr.RefreshToken); r.status != http.StatusForbidden {
		t.Errorf("refresh after code replay = %d, want 403", r.status)
	}

	late := f.code(acct, nil)
	f.clock.Advance(AuthCodeTTL + time.Second)
	if r, _ := f.exchange(late); r.status != http.StatusBadRequest {
		t.Errorf("expired code = %d, want 400", r.status)
	}

	wrongURI := f.code(acct, nil)
	r3 := f.do("POST", "/oauth/token", "", map[string]string{"grant_type": "authorization_code", "client_id": "sim-client-id",
		"client_secret": "sim-client-secret", "code": wrongURI, "redirect_uri": testRedirect + "x"})
	if r3.status != http.StatusBadRequest {
		t.Errorf("exchange with other redirect_uri = %d, want 400", r3.status)
	}
}

func TestTokenEndpointRequests(t *testing.T) {
	f := newFixture(t, nil)
	acct := f.admin().AccountID
	tests := []struct {
		name       string
		body       func(code string) any
		basic      bool
		wantStatus int
		wantError  string
	}{
		{"json", func(c string) any {
			return map[string]string{"grant_type": "authorization_code", "client_id": "sim-client-id", "client_secret": "sim-client-secret", "code": c, "redirect_uri": testRedirect}
		}, false, 200, ""},
		{"form", func(c string) any {
			return url.Values{"grant_type": {"authorization_code"}, "client_id": {"sim-client-id"}, "client_secret": {"sim-client-secret"}, "code": {c}, "redirect_uri": {testRedirect}}
		}, false, 200, ""},
		{"no secret", func(c string) any {
			return map[string]string{"grant_type": "authorization_code", "client_id": "sim-client-id", "code": c, "redirect_uri": testRedirect}
		}, false, 401, "access_denied"},
		{"wrong secret", func(c string) any {
			return map[string]string{"grant_type": "authorization_code", "client_id": "sim-client-id", "client_secret": "nope", "code": c, "redirect_uri": testRedirect}
		}, false, 401, "access_denied"},
		{"basic auth only", func(c string) any {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {testRedirect}}
		}, true, 401, "access_denied"},
		{"unsupported grant", func(c string) any {
			return map[string]string{"grant_type": "client_credentials", "client_id": "sim-client-id", "client_secret": "sim-client-secret"}
		}, false, 400, "unsupported_grant_type"},
		{"not json", func(string) any { return "{" }, false, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.basic {
				hdr = []string{"Authorization", "Basic c2ltLWNsaWVudC1pZDpzaW0tY2xpZW50LXNlY3JldA=="}
			}
			r := f.do("POST", "/oauth/token", "", tt.body(f.code(acct, nil)), hdr...)
			if r.status != tt.wantStatus {
				t.Fatalf("POST /oauth/token (%s) = %d, want %d: %s", tt.name, r.status, tt.wantStatus, r.body)
			}
			m := r.json(t)
			if tt.wantError != "" {
				if m["error"] != tt.wantError {
					t.Errorf("error = %v, want %q", m["error"], tt.wantError)
				}
				return
			}
			if m["expires_in"] != float64(3600) || m["token_type"] != "Bearer" || m["scope"] != "read:jira-work read:jira-user offline_access" ||
				m["access_token"] == "" || m["refresh_token"] == nil {
				t.Errorf("token response = %v", m)
			}
		})
	}
}

func TestNoRefreshTokenWithoutOfflineAccess(t *testing.T) {
	f := newFixture(t, nil)
	code := f.code(f.admin().AccountID, func(q url.Values) { q.Set("scope", "read:jira-work") })
	r, tr := f.exchange(code)
	if r.status != 200 || tr.RefreshToken != "" || strings.Contains(string(r.body), "refresh_token") {
		t.Errorf("exchange without offline_access = %d %s, want no refresh_token", r.status, r.body)
	}
}

func TestRefreshRotation(t *testing.T) {
	const invalid = `{"error":"invalid_grant","error_description":"Unknown or invalid refresh token."}`
	type step struct {
		advance time.Duration
		use     int  // index into the tokens issued so far (0 = from the code exchange)
		ok      bool // expect 200 (a new token is appended) or 403 invalid_grant
	}
	tests := []struct {
		name        string
		steps       []step
		wantRevoked bool
	}{
		{"rotate twice", []step{{0, 0, true}, {time.Hour, 1, true}, {time.Hour, 2, true}}, false},
		{"previous within leeway", []step{{0, 0, true}, {9 * time.Minute, 0, true}, {0, 2, true}}, false},
		{"previous after leeway revokes", []step{{0, 0, true}, {RefreshLeeway + time.Second, 0, false}, {0, 1, false}}, true},
		{"older token revokes family", []step{{0, 0, true}, {0, 1, true}, {0, 0, false}, {0, 2, false}}, true},
		{"token superseded by leeway retry revokes", []step{{0, 0, true}, {time.Minute, 0, true}, {0, 1, false}, {0, 2, false}}, true},
		{"idle just under 90 days", []step{{RefreshInactivity - time.Second, 0, true}}, false},
		{"idle 90 days", []step{{RefreshInactivity, 0, false}}, true},
		{"rotation resets idle", []step{{80 * 24 * time.Hour, 0, true}, {80 * 24 * time.Hour, 1, true}}, false},
		{"absolute 365 days", []step{{80 * 24 * time.Hour, 0, true}, {80 * 24 * time.Hour, 1, true}, {80 * 24 * time.Hour, 2, true},
			{80 * 24 * time.Hour, 3, true}, {45*24*time.Hour - time.Second, 4, true}, {time.Second, 5, false}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			_, first := f.exchange(f.code(f.admin().AccountID, nil))
			tokens := []string{first.RefreshToken}
			var lastAccess string
			for i, s := range tt.steps {
				f.clock.Advance(s.advance)
				r, tr := f.refresh(tokens[s.use])
				if s.ok {
					if r.status != 200 || tr.RefreshToken == "" || tr.ExpiresIn != 3600 {
						t.Fatalf("step %d: refresh(token %d) = %d %s, want 200 with a new refresh token", i, s.use, r.status, r.body)
					}
					if slices.Contains(tokens, tr.RefreshToken) {
						t.Fatalf("step %d: refresh token was not rotated", i)
					}
					tokens = append(tokens, tr.RefreshToken)
					lastAccess = tr.AccessToken
					continue
				}
				if r.status != http.StatusForbidden || string(r.body) != invalid {
					t.Fatalf("step %d: refresh(token %d) = %d %s, want 403 %s", i, s.use, r.status, r.body, invalid)
				}
			}
			revoked, _ := f.sim.FamilyRevoked(tokens[0])
			if revoked != tt.wantRevoked {
				t.Errorf("family revoked = %v, want %v", revoked, tt.wantRevoked)
			}
			if revoked {
				// Nothing of the family works any more, the newest refresh token and access token included.
				if r, _ := f.refresh(tokens[len(tokens)-1]); r.status != http.StatusForbidden {
					t.Errorf("newest refresh token after revocation = %d, want 403", r.status)
				}
				if lastAccess != "" {
					if r := f.do("GET", "/oauth/token/accessible-resources", lastAccess, nil); r.status != http.StatusUnauthorized {
						t.Errorf("access token after revocation = %d, want 401", r.status)
					}
				}
			}
		})
	}
}

func TestRevokeGrant(t *testing.T) {
	f := newFixture(t, nil)
	acct := f.admin().AccountID
	_, tr := f.exchange(f.code(acct, nil))
	if err := f.sim.RevokeGrant(acct); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.refresh(tr.RefreshToken); r.status != http.StatusForbidden || r.json(t)["error"] != "invalid_grant" {
		t.Errorf("refresh after grant revocation = %d %s, want 403 invalid_grant", r.status, r.body)
	}
	if r := f.jira("GET", f.site(0).CloudID, "/myself", tr.AccessToken, nil); r.status != http.StatusUnauthorized {
		t.Errorf("API call after grant revocation = %d, want 401", r.status)
	}
	// Consenting again gives a working grant.
	if r, tr2 := f.exchange(f.code(acct, nil)); r.status != 200 || f.jira("GET", f.site(0).CloudID, "/myself", tr2.AccessToken, nil).status != 200 {
		t.Errorf("re-consent after revocation = %d", r.status)
	}
}

func TestAccessTokenExpiry(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	f.clock.Advance(AccessTokenTTL - time.Second)
	if r := f.jira("GET", f.site(0).CloudID, "/myself", tr.AccessToken, nil); r.status != 200 {
		t.Fatalf("token at 3599 s = %d, want 200", r.status)
	}
	f.clock.Advance(time.Second)
	if r := f.jira("GET", f.site(0).CloudID, "/myself", tr.AccessToken, nil); r.status != http.StatusUnauthorized {
		t.Errorf("token at 3600 s = %d, want 401", r.status)
	}
}

func TestAccessibleResources(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Sites = 3 })
	for _, u := range f.sim.ConsentingUsers() {
		tr, err := f.sim.IssueTokens(u.AccountID, "read:jira-work", "offline_access")
		if err != nil {
			t.Fatal(err)
		}
		r := f.do("GET", "/oauth/token/accessible-resources", tr.AccessToken, nil, "Accept", "application/json")
		if r.status != 200 {
			t.Fatalf("accessible-resources = %d", r.status)
		}
		var got []map[string]any
		mustUnmarshal(t, r.body, &got)
		if len(got) != len(u.Sites) {
			t.Errorf("user %d sites: accessible-resources lists %d, want %d", len(u.Sites), len(got), len(u.Sites))
		}
		for _, res := range got {
			if len(res) != 5 || res["id"] == "" || !strings.HasPrefix(res["url"].(string), "https://") || res["avatarUrl"] == nil {
				t.Errorf("resource = %v, want {id,name,url,scopes,avatarUrl}", res)
			}
			if sc := res["scopes"].([]any); len(sc) != 1 || sc[0] != "read:jira-work" {
				t.Errorf("resource scopes = %v, want [read:jira-work]", sc)
			}
		}
	}
	if len(f.admin().Sites) != 3 {
		t.Errorf("first user belongs to %d sites, want all 3 (one grant, several sites)", len(f.admin().Sites))
	}
	if r := f.do("GET", "/oauth/token/accessible-resources", "bogus", nil); r.status != http.StatusUnauthorized {
		t.Errorf("accessible-resources with a bad token = %d, want 401", r.status)
	}
}

// TestOAuth2Library drives the server with golang.org/x/oauth2, which posts form bodies.
func TestOAuth2Library(t *testing.T) {
	f := newFixture(t, nil)
	conf := &oauth2.Config{ClientID: "sim-client-id", ClientSecret: "sim-client-secret", RedirectURL: testRedirect,
		Scopes:   []string{"read:jira-work", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: f.url + "/authorize", TokenURL: f.url + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	authURL := conf.AuthCodeURL("xyz", oauth2.SetAuthURLParam("audience", "api.atlassian.com"), oauth2.SetAuthURLParam("prompt", "consent"))
	r := f.do("GET", authURL, "", nil, "X-Sim-Consent", "accept")
	loc, _ := url.Parse(r.header.Get("Location"))
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, f.hc)
	tok, err := conf.Exchange(ctx, loc.Query().Get("code"))
	if err != nil {
		t.Fatalf("Exchange() error = %v", err)
	}
	first := tok.RefreshToken
	tok.Expiry = time.Now().Add(-time.Minute) // force a refresh
	next, err := conf.TokenSource(ctx, tok).Token()
	if err != nil || next.RefreshToken == first || next.RefreshToken == "" {
		t.Fatalf("refresh via x/oauth2 = %v, %v; want a rotated token", next, err)
	}
	// Reusing the first token after the leeway is a breach: x/oauth2 surfaces Atlassian's invalid_grant.
	f.clock.Advance(RefreshLeeway + time.Minute)
	tok.AccessToken = ""
	_, err = conf.TokenSource(ctx, tok).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || re.Response.StatusCode != http.StatusForbidden {
		t.Errorf("stale refresh via x/oauth2 error = %v, want 403 invalid_grant", err)
	}
}
