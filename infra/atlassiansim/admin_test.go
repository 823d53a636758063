package atlassiansim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAdminAPI drives the simulator the way another process would: over /_sim/ only.
func TestAdminAPI(t *testing.T) {
	f := newFixture(t, nil)
	var info Info
	mustUnmarshal(t, f.do("GET", "/_sim/info", "", nil).body, &info)
	if info.BaseURL != f.url || len(info.Sites) != 2 || len(info.Users) == 0 || info.ClientID != "sim-client-id" {
		t.Fatalf("info = %+v", info)
	}
	site := info.Sites[0]
	acct := info.Users[0].AccountID

	steps := []struct {
		method, path string
		body         any
		wantStatus   int
	}{
		{"POST", "/_sim/clock/advance", map[string]any{"by": "90s"}, 200},
		{"POST", "/_sim/clock/set", map[string]any{"now": t0.Add(time.Hour)}, 200},
		{"POST", "/_sim/sites/" + site.CloudID + "/issues", map[string]any{"project": site.Projects[0].Key, "summary": "via admin"}, 201},
		{"PATCH", "/_sim/sites/" + site.CloudID + "/issues/" + site.Projects[0].Key + "-1", map[string]any{"status": "Done", "addComment": "hi"}, 200},
		{"PATCH", "/_sim/sites/" + site.CloudID + "/issues/" + site.Projects[0].Key + "-1", map[string]any{"status": "Nope"}, 404},
		{"POST", "/_sim/sites/" + site.CloudID + "/issues/" + site.Projects[0].Key + "-2/move", map[string]any{"project": site.Projects[1].Key}, 200},
		{"DELETE", "/_sim/sites/" + site.CloudID + "/issues/" + site.Projects[0].Key + "-3", nil, 200},
		{"DELETE", "/_sim/sites/" + site.CloudID + "/issues/NOPE-3", nil, 404},
		{"PUT", "/_sim/sites/" + site.CloudID + "/projects/" + site.Projects[1].Key + "/permissions/" + acct, map[string]any{"browse": false}, 200},
		{"POST", "/_sim/faults", map[string]any{"endpoint": "GET /rest/api/3/myself", "kind": "status", "status": 502}, 200},
		{"POST", "/_sim/faults", map[string]any{"endpoint": "GET /rest/api/3/myself", "kind": "latency", "latency": "1ms", "count": 1}, 200},
		{"POST", "/_sim/faults", map[string]any{"endpoint": "x", "kind": "nonsense"}, 400},
		{"PUT", "/_sim/ratelimits", map[string]any{"globalPointsPerHour": 1000, "burstScale": 0.5}, 200},
		{"POST", "/_sim/grants/revoke", map[string]any{"accountId": "nobody"}, 404},
		{"GET", "/_sim/nothing", nil, 404},
		{"POST", "/_sim/clock/advance", `{"by": 5}`, 200},
		{"POST", "/_sim/clock/advance", `{"bogus": 5}`, 400},
	}
	for _, s := range steps {
		if r := f.do(s.method, s.path, "", s.body); r.status != s.wantStatus {
			t.Errorf("%s %s = %d %s, want %d", s.method, s.path, r.status, r.body, s.wantStatus)
		}
	}
	var tr TokenResponse
	r := f.do("POST", "/_sim/tokens", "", map[string]any{"accountId": acct, "scopes": []string{"read:jira-work", "offline_access"}})
	mustUnmarshal(t, r.body, &tr)
	if r.status != 200 || tr.AccessToken == "" || tr.RefreshToken == "" {
		t.Fatalf("POST /_sim/tokens = %d %s", r.status, r.body)
	}

	if got := f.sim.Now(); !got.Equal(t0.Add(time.Hour + 5)) {
		t.Errorf("clock = %v, want %v", got, t0.Add(time.Hour+5))
	}
	if r := f.jira("GET", site.CloudID, "/issue/"+site.Projects[0].Key+"-3", tr.AccessToken, nil); r.status != 404 {
		t.Errorf("issue deleted via admin = %d, want 404", r.status)
	}
	if r := f.jira("GET", site.CloudID, "/issue/"+site.Projects[1].Key+"-1", tr.AccessToken, nil); r.status != 404 {
		t.Errorf("issue in a project whose permission was removed = %d, want 404", r.status)
	}
	if r := f.jira("GET", site.CloudID, "/myself", tr.AccessToken, nil); r.status != 502 {
		t.Errorf("with a 502 fault = %d, want 502", r.status)
	}
	var faults []Fault
	mustUnmarshal(t, f.do("GET", "/_sim/faults", "", nil).body, &faults)
	if len(faults) != 1 || faults[0].Status != 502 {
		t.Errorf("faults = %+v, want the 502 left (latency used up)", faults)
	}
	f.do("DELETE", "/_sim/faults?endpoint=GET%20/rest/api/3/myself", "", nil)
	if r := f.jira("GET", site.CloudID, "/myself", tr.AccessToken, nil); r.status != http.StatusUnauthorized {
		// read:jira-user was not granted: 401 scope does not match, once the fault is gone.
		t.Errorf("after clearing faults = %d %s, want 401 (scope)", r.status, r.body)
	}
	var c Counters
	mustUnmarshal(t, f.do("GET", "/_sim/counters", "", nil).body, &c)
	if c.Requests["GET /rest/api/3/myself"] != 2 || c.Statuses["GET /rest/api/3/myself"][502] != 1 || c.Faults[FaultStatus] != 1 {
		t.Errorf("counters = %+v", c)
	}
	if r := f.do("POST", "/_sim/grants/revoke", "", map[string]any{"accountId": acct}); r.status != 200 {
		t.Errorf("revoke = %d", r.status)
	}
	if r := f.jira("GET", site.CloudID, "/issue/"+site.Projects[0].Key+"-1", tr.AccessToken, nil); r.status != 401 {
		t.Errorf("after revoking the grant = %d, want 401", r.status)
	}
	f.do("POST", "/_sim/counters/reset", "", "")
	if c := f.sim.Counters(); len(c.Requests) != 0 || c.PointsTotal != 0 {
		t.Errorf("counters after reset = %+v", c)
	}
}

func TestGatewayAuth(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Sites = 3 })
	s := f.site(0)
	var lonely User // a user on fewer sites than the first one
	for _, u := range f.sim.ConsentingUsers() {
		if len(u.Sites) == 1 {
			lonely = u
			break
		}
	}
	other := ""
	for _, st := range f.sim.Sites() {
		if st.CloudID != lonely.Sites[0] {
			other = st.CloudID
		}
	}
	lt, _ := f.sim.IssueTokens(lonely.AccountID, "read:jira-work")
	work := f.token("read:jira-work")
	gran := f.token("read:jira-user", "read:issue-details:jira", "read:audit-log:jira", "read:avatar:jira", "read:field-configuration:jira", "read:issue-meta:jira")
	scopeMsg := `{"code":401,"message":"Unauthorized; scope does not match"}`
	tests := []struct {
		name, cloud, path, token string
		wantStatus               int
		wantBody                 string
	}{
		{"no token", s.CloudID, "/myself", "", 401, `{"code":401,"message":"Unauthorized"}`},
		{"bad token", s.CloudID, "/myself", "nope", 401, ""},
		{"unknown site", "11111111-2222-4333-8444-555555555555", "/myself", work.AccessToken, 401, ""},
		{"site not in grant", other, "/myself", lt.AccessToken, 401, ""},
		{"missing scope", s.CloudID, "/myself", work.AccessToken, 401, scopeMsg},
		{"classic scope", s.CloudID, "/search/jql?jql=project%20is%20not%20empty", work.AccessToken, 200, ""},
		{"granular scopes", s.CloudID, "/search/jql?jql=project%20is%20not%20empty", gran.AccessToken, 200, ""},
		{"granular scopes do not cover comments", s.CloudID, "/issue/" + s.Projects[0].Key + "-1/comment", gran.AccessToken, 401, scopeMsg},
		{"legacy search", s.CloudID, "/search?jql=project%3DX", work.AccessToken, 410,
			`{"errorMessages":["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"],"errors":{}}`},
		{"not simulated", s.CloudID, "/dashboard", work.AccessToken, 404, ""},
	}
	for _, tt := range tests {
		r := f.jira("GET", tt.cloud, tt.path, tt.token, nil)
		if r.status != tt.wantStatus || tt.wantBody != "" && string(r.body) != tt.wantBody {
			t.Errorf("%s: GET %s = %d %s, want %d %s", tt.name, tt.path, r.status, r.body, tt.wantStatus, tt.wantBody)
		}
	}
}

// TestAdminRefusesCrossSiteSimplePosts: a form or text/plain POST (what a web page can send without a CORS
// preflight) must not reach the control API.
func TestAdminRefusesCrossSiteSimplePosts(t *testing.T) {
	f := newFixture(t, nil)
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
		req, err := http.NewRequest("POST", f.url+"/_sim/clock/advance", strings.NewReader(`{"by":"1h"}`))
		if err != nil {
			t.Fatal(err)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("POST /_sim/clock/advance with Content-Type %q = %d, want 415", ct, resp.StatusCode)
		}
	}
}
