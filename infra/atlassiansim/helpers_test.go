package atlassiansim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// t0 is half past an hour, so quota windows have 1800 s left.
var t0 = time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)

const testRedirect = "https://app.example.test/oauth/callback"

type fixture struct {
	t     *testing.T
	sim   *Server
	clock *ManualClock
	url   string
	hc    *http.Client
}

// newFixture starts a simulator on loopback with a manual clock. mod adjusts the Config.
func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	clock := NewManualClock(t0)
	cfg := Config{Seed: 7, Clock: clock, RedirectURIs: []string{testRedirect}, TestControls: true}
	if mod != nil {
		mod(&cfg)
	}
	sim, err := New(cfg)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	u, err := sim.Start(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start() error = %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return &fixture{t: t, sim: sim, clock: clock, url: u, hc: &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// do sends a request; body may be nil, a string (sent as is), url.Values (form) or anything JSON-encodable.
func (f *fixture) do(method, path, token string, body any, hdr ...string) result {
	f.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	case url.Values:
		rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			f.t.Fatal(err)
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	u := path
	if !strings.HasPrefix(u, "http") {
		u = f.url + path
	}
	req, err := http.NewRequestWithContext(f.t.Context(), method, u, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return result{resp.StatusCode, resp.Header, b}
}

// jira calls the gateway for the site.
func (f *fixture) jira(method, cloudID, path, token string, body any, hdr ...string) result {
	f.t.Helper()
	return f.do(method, "/ex/jira/"+cloudID+"/rest/api/3"+path, token, body, hdr...)
}

func (f *fixture) admin() User { return f.sim.ConsentingUsers()[0] }

func (f *fixture) site(i int) Site { return f.sim.Sites()[i] }

// token issues tokens for the first user (member of every site).
func (f *fixture) token(scopes ...string) TokenResponse {
	f.t.Helper()
	if len(scopes) == 0 {
		scopes = []string{"read:jira-work", "read:jira-user", "offline_access"}
	}
	tr, err := f.sim.IssueTokens(f.admin().AccountID, scopes...)
	if err != nil {
		f.t.Fatal(err)
	}
	return tr
}

func authorizeQuery(mod func(url.Values)) string {
	q := url.Values{"audience": {"api.atlassian.com"}, "client_id": {"sim-client-id"},
		"scope": {"read:jira-work read:jira-user offline_access"}, "redirect_uri": {testRedirect},
		"state": {"st-123"}, "response_type": {"code"}, "prompt": {"consent"}}
	if mod != nil {
		mod(q)
	}
	return "/authorize?" + q.Encode()
}

// code runs /authorize with the test consent switch and returns the code.
func (f *fixture) code(account string, mod func(url.Values)) string {
	f.t.Helper()
	r := f.do("GET", authorizeQuery(mod), "", nil, "X-Sim-Consent", "accept", "X-Sim-User", account)
	if r.status != http.StatusFound {
		f.t.Fatalf("authorize status = %d, want 302: %s", r.status, r.body)
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		f.t.Fatal(err)
	}
	c := loc.Query().Get("code")
	if c == "" {
		f.t.Fatalf("authorize redirect %q has no code", loc)
	}
	return c
}

func (f *fixture) exchange(code string) (result, TokenResponse) {
	f.t.Helper()
	r := f.do("POST", "/oauth/token", "", map[string]string{"grant_type": "authorization_code", "client_id": "sim-client-id",
		"client_secret": "sim-client-secret", "code": code, "redirect_uri": testRedirect})
	var tr TokenResponse
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &tr); err != nil {
			f.t.Fatal(err)
		}
	}
	return r, tr
}

func (f *fixture) refresh(rt string) (result, TokenResponse) {
	f.t.Helper()
	r := f.do("POST", "/oauth/token", "", map[string]string{"grant_type": "refresh_token", "client_id": "sim-client-id",
		"client_secret": "sim-client-secret", "refresh_token": rt})
	var tr TokenResponse
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &tr); err != nil {
			f.t.Fatal(err)
		}
	}
	return r, tr
}

// searchAll pages through a JQL search and returns the issues in order.
func (f *fixture) searchAll(cloudID, token, jql string, maxResults int, fields ...string) ([]map[string]any, int) {
	f.t.Helper()
	var out []map[string]any
	next := ""
	pages := 0
	for {
		body := map[string]any{"jql": jql, "maxResults": maxResults}
		if len(fields) > 0 {
			body["fields"] = fields
		}
		if next != "" {
			body["nextPageToken"] = next
		}
		r := f.jira("POST", cloudID, "/search/jql", token, body)
		if r.status != http.StatusOK {
			f.t.Fatalf("search %q status = %d: %s", jql, r.status, r.body)
		}
		pages++
		m := r.json(f.t)
		for _, is := range m["issues"].([]any) {
			out = append(out, is.(map[string]any))
		}
		tok, has := m["nextPageToken"].(string)
		if last, _ := m["isLast"].(bool); last {
			if has {
				f.t.Fatalf("last page carries nextPageToken %q", tok)
			}
			return out, pages
		}
		if !has || tok == "" {
			f.t.Fatalf("page %d has isLast=false and no nextPageToken", pages)
		}
		next = tok
		if pages > 10000 {
			f.t.Fatal("search does not end")
		}
	}
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
}
