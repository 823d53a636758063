package oauthflow_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"jiraexport/shared/apikeys"
	"jiraexport/shared/connections"
	"jiraexport/shared/fingerprint"
	"jiraexport/shared/oauthflow"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/tokens"
)

// states is a func-field fake of the OAuth state store: only Begin is reached by starting a consent.
type states struct {
	begin func(ctx context.Context, connID string) (state, nonce string, err error)
}

func (s states) Begin(ctx context.Context, connID string) (string, string, error) {
	return s.begin(ctx, connID)
}
func (states) Consume(context.Context, string, string) (*oauthstate.Flow, error) {
	return nil, errors.New("not used")
}
func (states) PeekReauth(context.Context, string) (string, error) { return "", errors.New("not used") }
func (states) RedeemReauth(context.Context, string) (string, error) {
	return "", errors.New("not used")
}

var _ oauthflow.States = states{}

func pureHandler(t *testing.T, cfg oauthflow.Config, st oauthflow.States) *oauthflow.Handler {
	t.Helper()
	h, err := oauthflow.New(cfg, oauthflow.Deps{States: st, Tokens: &tokens.Store{}, Connections: &connections.Store{},
		Keys: &apikeys.Store{}, Fingerprints: &fingerprint.Keyer{}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestConsentRedirectsOnlyToTheConfiguredAuthorizeURL: whatever the request says (a forged Host, a path or query
// naming another site), the browser is sent to ATLASSIAN_AUTH_URL's /authorize, with the state just begun.
func TestConsentRedirectsOnlyToTheConfiguredAuthorizeURL(t *testing.T) {
	t.Parallel()
	st := states{begin: func(context.Context, string) (string, string, error) { return "the-state", "the-nonce", nil }}
	for _, public := range []string{"", "https://api.example.com"} {
		h := pureHandler(t, oauthflow.Config{ClientID: "c", ClientSecret: "s", AuthURL: "https://auth.atlassian.com/",
			APIURL: "https://api.atlassian.com", PublicBaseURL: public}, st)
		for _, target := range []string{
			"/oauth/authorize",
			"/oauth/authorize?next=https://evil.example/",
			"/oauth/authorize?redirect_uri=https://evil.example/cb",
		} {
			req := httptest.NewRequest(http.MethodGet, target, nil)
			req.Host = "evil.example"
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			loc, err := url.Parse(rec.Header().Get("Location"))
			if rec.Code != http.StatusFound || err != nil {
				t.Fatalf("GET %s (public %q) = %d %q, want 302 to Atlassian", target, public, rec.Code, rec.Header().Get("Location"))
			}
			if loc.Scheme != "https" || loc.Host != "auth.atlassian.com" || loc.Path != "/authorize" {
				t.Errorf("GET %s (public %q) redirects to %s://%s%s, want https://auth.atlassian.com/authorize", target, public, loc.Scheme, loc.Host, loc.Path)
			}
			q := loc.Query()
			if q.Get("state") != "the-state" || q.Get("client_id") != "c" || q.Get("response_type") != "code" {
				t.Errorf("GET %s: authorize query = %v, want the begun state, the client id and response_type=code", target, q)
			}
			if public != "" && q.Get("redirect_uri") != public+"/oauth/callback" {
				t.Errorf("GET %s: redirect_uri = %q, want the configured public base URL's callback", target, q.Get("redirect_uri"))
			}
		}
	}
}

// TestConsentFailsClosed: a state store that cannot begin a flow gives the error page, never a redirect.
func TestConsentFailsClosed(t *testing.T) {
	t.Parallel()
	h := pureHandler(t, oauthflow.Config{ClientID: "c", ClientSecret: "s", AuthURL: "https://auth.atlassian.com",
		APIURL: "https://api.atlassian.com"},
		states{begin: func(context.Context, string) (string, string, error) { return "", "", errors.New("throttled") }})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/oauth/authorize", nil))
	if rec.Code != http.StatusInternalServerError || rec.Header().Get("Location") != "" {
		t.Errorf("authorize with a failing state store = %d, Location %q; want 500 and no redirect", rec.Code, rec.Header().Get("Location"))
	}
	if strings.Contains(rec.Body.String(), "throttled") {
		t.Errorf("the error page shows the internal cause")
	}
	if c := rec.Result().Cookies(); len(c) != 0 {
		t.Errorf("cookies set on a failed start: %v", c)
	}
}

// TestNewRefusesAnAuthURLThatIsNotAbsolute: the consent redirect's target comes from ATLASSIAN_AUTH_URL, so it
// must be an absolute http(s) URL (a relative one would resolve against the request's own URL).
func TestNewRefusesAnAuthURLThatIsNotAbsolute(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		authURL string
		ok      bool
	}{
		{"https://auth.atlassian.com", true},
		{"https://auth.atlassian.com/", true},
		{"http://127.0.0.1:8443", true},
		{"auth.atlassian.com", false},
		{"/authorize", false},
		{"//evil.example", false},
		{"javascript:alert(1)", false},
		{"https://auth.atlassian.com?next=x", false},
		{"https://auth.atlassian.com#x", false},
		{"ftp://auth.atlassian.com", false},
	} {
		_, err := oauthflow.New(oauthflow.Config{ClientID: "c", ClientSecret: "s", AuthURL: tt.authURL, APIURL: "https://b"},
			oauthflow.Deps{States: &oauthstate.Store{}, Tokens: &tokens.Store{}, Connections: &connections.Store{},
				Keys: &apikeys.Store{}, Fingerprints: &fingerprint.Keyer{}})
		if (err == nil) != tt.ok {
			t.Errorf("New(AuthURL %q) = %v, want ok %v", tt.authURL, err, tt.ok)
		}
	}
}
