package oauthflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/stacktest"
	"jiraexport/shared/access"
	"jiraexport/shared/apikeys"
	"jiraexport/shared/config"
	"jiraexport/shared/connections"
	"jiraexport/shared/fingerprint"
	"jiraexport/shared/logging"
	"jiraexport/shared/oauthflow"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/table"
	"jiraexport/shared/tokens"
)

const clientSecret = "sim-secret-for-oauthflow-tests"

// testClock is our side's clock (states, tokens); the simulator keeps its own.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// harness is the handler in an httptest server, against the local stack and the simulator.
type harness struct {
	env    *stacktest.Env
	sim    *atlassiansim.Server
	clock  *testClock
	base   string
	states *oauthstate.Store
	conns  *connections.Store
	keys   *apikeys.Store
	toks   *tokens.Store
	logs   *lockedBuffer
}

func newHarness(t *testing.T, wrap ...func(*oauthflow.Deps)) *harness {
	t.Helper()
	return newHarnessWith(t, harnessOptions{wrap: wrap})
}

// harnessOptions shape a harness beyond the default.
type harnessOptions struct {
	wrap []func(*oauthflow.Deps)
	// sites is the simulator's number of sites; default 2.
	sites int
	// front, when set, stands between the handler and the simulator (both ATLASSIAN_AUTH_URL and _API_URL): it
	// gets the simulator's URL and returns its own.
	front func(t *testing.T, simURL string) string
}

func newHarnessWith(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	env := stacktest.New(t)
	if o.sites == 0 {
		o.sites = 2
	}
	// Our address first: the simulator must know the redirect URI, and the handler the simulator's URL.
	at := stacktest.StartAtlassian(t, atlassiansim.Config{
		Seed: 7, Sites: o.sites, ProjectsPerSite: 1, IssuesPerProject: 1, Users: 2, ClientSecret: clientSecret,
	})
	sim, simURL, base, ln := at.Sim, at.URL, at.Base, at.Listener
	atlassian := simURL
	if o.front != nil {
		atlassian = o.front(t, simURL)
	}

	h := &harness{env: env, sim: sim, clock: &testClock{t: time.Now()}, base: base, logs: &lockedBuffer{}}
	log := logging.New(h.logs, logging.ParseLevel("DEBUG"))
	db := env.Clients.DynamoDB
	h.states = oauthstate.NewStore(db, env.Table, table.WithClock(h.clock.Now))
	h.conns = connections.NewStore(db, env.Table)
	h.keys = apikeys.NewStore(db, env.Table)
	// The token store as functions/oauth builds it (flag only: that function may not query the connectors).
	h.toks = access.Tokens(access.Config{DB: db, KMS: env.Clients.KMS, Table: env.Table, TokenKeyID: env.TokenKeyARN,
		OAuth: &oauth2.Config{ClientID: "sim-client-id", ClientSecret: clientSecret, Endpoint: config.Endpoint(simURL)},
		Log:   log, FlagOnly: true,
	}, tokens.WithClock(h.clock.Now), tokens.WithRetryPolicy(tokens.RetryPolicy{Attempts: 1}))
	deps := oauthflow.Deps{States: h.states, Tokens: h.toks, Connections: h.conns, Keys: h.keys,
		Fingerprints: fingerprint.New(env.Clients.KMS, env.AccountKeyARN)}
	for _, w := range o.wrap {
		w(&deps)
	}
	handler, err := oauthflow.New(oauthflow.Config{
		ClientID: "sim-client-id", ClientSecret: clientSecret, AuthURL: atlassian, APIURL: atlassian, PublicBaseURL: base,
		Logger: log, Now: h.clock.Now,
	}, deps)
	if err != nil {
		t.Fatal(err)
	}
	// Served on ln, the listener whose address the base URL already names.
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: handler}}
	srv.Start()
	t.Cleanup(srv.Close)
	return h
}

// browser is one user agent (stacktest's: its own cookie jar, following redirects except into our callback, the
// simulator's test switches).
type browser struct{ *stacktest.Browser }

func newBrowser(t *testing.T) *browser { return &browser{stacktest.NewBrowser(t)} }

// as returns the browser with account logging in at Atlassian.
func (b *browser) as(account string) *browser { b.Account = account; return b }

// confirmForm is the re-authorisation page's form as a browser would submit it.
type confirmForm = stacktest.ConfirmForm

func formOf(t *testing.T, body string) confirmForm {
	t.Helper()
	f, ok := stacktest.FormOf(body)
	if !ok {
		t.Fatalf("no re-authorisation form in the page: %s", body)
	}
	return f
}

type page struct {
	status int
	header http.Header
	body   string
	reason string
}

func (b *browser) get(t *testing.T, u string, header ...string) page {
	t.Helper()
	p := b.Get(t, u, header...)
	return page{status: p.Status, header: p.Header, body: p.Body, reason: p.Reason}
}

func (p page) apiKey() string { return stacktest.APIKey(p.body) }

// nonce returns the browser's OAuth cookie value for base, or "".
func (b *browser) nonce(base string) string { return b.Cookie(base, oauthflow.CookieName) }

// connect runs the whole flow in a fresh browser and returns the success page.
func (h *harness) connect(t *testing.T) page {
	t.Helper()
	b := newBrowser(t)
	cb := b.Consent(t, h.base+"/oauth/authorize", "accept")
	p := b.get(t, cb)
	if p.reason != string(oauthflow.ReasonConnected) || p.status != http.StatusOK {
		t.Fatalf("callback = %d %q, want 200 %q; body: %s", p.status, p.reason, oauthflow.ReasonConnected, p.body)
	}
	return p
}

func (h *harness) connIDOf(t *testing.T, key string) string {
	t.Helper()
	k, err := h.keys.Authenticate(context.Background(), key)
	if err != nil {
		t.Fatalf("Authenticate(key from the page) = %v, want nil", err)
	}
	return k.ConnectionID
}

func (h *harness) scan(t *testing.T) []map[string]types.AttributeValue {
	t.Helper()
	var items []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(h.env.Clients.DynamoDB, &dynamodb.ScanInput{
		TableName: aws.String(h.env.Table), ConsistentRead: aws.Bool(true),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, out.Items...)
	}
	return items
}

func dump(items []map[string]types.AttributeValue) string {
	var b strings.Builder
	for _, it := range items {
		var m map[string]any
		if err := attributevalue.UnmarshalMap(it, &m); err != nil {
			panic(err)
		}
		j, _ := json.Marshal(m)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestFullFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()

	// The authorize redirect, step by step.
	b := newBrowser(t)
	noFollow := &http.Client{Jar: b.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(h.base + "/oauth/authorize")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /oauth/authorize = %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	want := map[string]string{
		"audience": "api.atlassian.com", "client_id": "sim-client-id", "scope": "read:jira-work read:jira-user offline_access",
		"redirect_uri": h.base + "/oauth/callback", "response_type": "code", "prompt": "consent",
	}
	for k, v := range want {
		if got := q.Get(k); got != v {
			t.Errorf("authorize URL %s = %q, want %q", k, got, v)
		}
	}
	if loc.Path != "/authorize" || !strings.HasPrefix(loc.String(), h.sim.URL()) {
		t.Errorf("authorize URL = %s, want %s/authorize", loc.Redacted(), h.sim.URL())
	}
	if st := q.Get("state"); !oauthstate.WellFormed(st) {
		t.Errorf("state has %d chars, want 43 (256 bits, base64url)", len(st))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("authorize set %d cookies, want 1", len(cookies))
	}
	c := cookies[0]
	if c.Name != oauthflow.CookieName || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" ||
		c.Domain != "" || c.MaxAge != 600 || c.Value == q.Get("state") {
		t.Errorf("cookie = %+v, want __Host- name, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain, Max-Age 600, value unlike the state", c)
	}
	checkSecurityHeaders(t, "authorize", resp.Header)

	// Consent and the callback.
	cb := b.Consent(t, loc.String(), "accept")
	if strings.Contains(cb, "jxk_") {
		t.Errorf("callback URL carries an API key")
	}
	p := b.get(t, cb)
	if p.status != http.StatusOK || p.reason != string(oauthflow.ReasonConnected) {
		t.Fatalf("callback = %d %q, want 200 connected; body: %s", p.status, p.reason, p.body)
	}
	checkSecurityHeaders(t, "callback", p.header)
	if n := b.nonce(h.base); n != "" {
		t.Errorf("state cookie still in the browser after the callback")
	}
	key := p.apiKey()
	if !apikeys.WellFormed(key) {
		t.Fatalf("success page API key %q is not a well-formed key", key)
	}

	connID := h.connIDOf(t, key)
	conn, err := h.conns.Get(ctx, connID)
	if err != nil {
		t.Fatal(err)
	}
	if conn.Status != connections.StatusActive || len(conn.Sites) != 2 {
		t.Errorf("connection = status %q, %d sites, want active with 2 sites", conn.Status, len(conn.Sites))
	}
	simSites := map[string]bool{}
	for _, s := range h.sim.Sites() {
		simSites[s.CloudID] = true
	}
	for _, s := range conn.Sites {
		if !simSites[s.CloudID] || s.URL == "" || len(s.Scopes) == 0 {
			t.Errorf("site %+v is not one of the simulator's, or lacks URL/scopes", s)
		}
	}
	md, err := h.toks.Metadata(ctx, connID)
	if err != nil {
		t.Fatalf("tokens Metadata = %v, want the stored grant", err)
	}
	if !md.FamilyStartedAt.Equal(conn.GrantStartedAt) {
		t.Errorf("token family start %v, connection grant start %v, want equal", md.FamilyStartedAt, conn.GrantStartedAt)
	}
	// The stored tokens work against Atlassian.
	hc := oauth2.NewClient(ctx, h.toks.TokenSource(ctx, connID))
	r2, err := hc.Get(h.sim.URL() + "/oauth/token/accessible-resources")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusOK {
		t.Errorf("accessible-resources with the stored token = %d, want 200", r2.StatusCode)
	}
	keys, err := h.keys.List(ctx, connID)
	if err != nil || len(keys) != 1 || keys[0].Hint != key[len(key)-4:] {
		t.Errorf("List = %+v, %v, want one key with hint %q", keys, err, key[len(key)-4:])
	}

	checkPrivacy(t, h, []string{key}, nil)
}

func checkSecurityHeaders(t *testing.T, what string, hd http.Header) {
	t.Helper()
	want := map[string]string{
		"Cache-Control":           "no-store",
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		"Referrer-Policy":         "no-referrer",
		"X-Content-Type-Options":  "nosniff",
	}
	for k, v := range want {
		if got := hd.Get(k); got != v {
			t.Errorf("%s %s = %q, want %q", what, k, got, v)
		}
	}
}

// checkPrivacy scans every item and the captured logs for tokens, keys, codes, states and personal data.
func checkPrivacy(t *testing.T, h *harness, secrets []string, extraLogSecrets []string) {
	t.Helper()
	items := dump(h.scan(t))
	logs := h.logs.String()
	// Simulator tokens and codes carry these prefixes; our keys carry jxk_.
	shapes := []string{"sim_at_", "sim_rt_", "code_", "jxk_", clientSecret}
	for _, s := range shapes {
		if strings.Contains(items, s) {
			t.Errorf("a table item contains %q", s)
		}
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain %q", s)
		}
	}
	for _, s := range secrets {
		if strings.Contains(items, s) {
			t.Errorf("a table item contains a secret (%d chars)", len(s))
		}
	}
	for _, s := range append(secrets, extraLogSecrets...) {
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain a secret (%d chars)", len(s))
		}
	}
	for _, u := range h.sim.Users() {
		if u.AccountType != "atlassian" { // the app user and the literal "unknown" placeholder are not people
			continue
		}
		for _, pii := range []string{u.AccountID, u.Email, u.DisplayName} {
			if pii != "" && strings.Contains(items, pii) {
				t.Errorf("a table item contains an account id, e-mail or name")
			}
			if pii != "" && strings.Contains(logs, pii) {
				t.Errorf("the logs contain an account id, e-mail or name: %q", pii)
			}
		}
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()

	tests := []struct {
		name string
		run  func(t *testing.T) page
		want oauthflow.Reason
	}{
		{"denied consent", func(t *testing.T) page {
			b := newBrowser(t)
			return b.get(t, b.Consent(t, h.base+"/oauth/authorize", "deny"))
		}, oauthflow.ReasonDenied},
		{"missing cookie", func(t *testing.T) page {
			cb := newBrowser(t).Consent(t, h.base+"/oauth/authorize", "accept")
			return newBrowser(t).get(t, cb) // another browser, no cookie at all
		}, oauthflow.ReasonNoCookie},
		{"foreign cookie", func(t *testing.T) page {
			victim, attacker := newBrowser(t), newBrowser(t)
			// The attacker's own authorisation, completed at Atlassian, delivered in the victim's browser,
			// which holds a cookie from a flow of its own.
			cb := attacker.Consent(t, h.base+"/oauth/authorize", "accept")
			_ = victim.Consent(t, h.base+"/oauth/authorize", "accept")
			p := victim.get(t, cb)
			// Refused, the state is not burnt: its own browser still completes it.
			if own := attacker.get(t, cb); own.reason != string(oauthflow.ReasonConnected) {
				t.Errorf("own browser after a foreign attempt = %q, want connected", own.reason)
			}
			return p
		}, oauthflow.ReasonForeignCookie},
		{"replayed state", func(t *testing.T) page {
			b := newBrowser(t)
			cb := b.Consent(t, h.base+"/oauth/authorize", "accept")
			nonce := b.nonce(h.base)
			if p := b.get(t, cb); p.reason != string(oauthflow.ReasonConnected) {
				t.Fatalf("first callback = %q, want connected", p.reason)
			}
			// Replayed with the cookie it was issued with (a copy kept by whoever replays it).
			return b.get(t, cb, "Cookie", oauthflow.CookieName+"="+nonce)
		}, oauthflow.ReasonStateUsed},
		{"replayed state without cookie", func(t *testing.T) page {
			b := newBrowser(t)
			cb := b.Consent(t, h.base+"/oauth/authorize", "accept")
			if p := b.get(t, cb); p.reason != string(oauthflow.ReasonConnected) {
				t.Fatalf("first callback = %q, want connected", p.reason)
			}
			return b.get(t, cb) // same browser, back button: the cookie is gone
		}, oauthflow.ReasonNoCookie},
		{"unknown state", func(t *testing.T) page {
			b := newBrowser(t)
			cb := b.Consent(t, h.base+"/oauth/authorize", "accept")
			u, _ := url.Parse(cb)
			q := u.Query()
			q.Set("state", strings.Repeat("Z", 43))
			u.RawQuery = q.Encode()
			return b.get(t, u.String())
		}, oauthflow.ReasonStateUnknown},
		{"malformed callback", func(t *testing.T) page {
			return newBrowser(t).get(t, h.base+"/oauth/callback?code=a&code=b&state=c")
		}, oauthflow.ReasonBadRequest},
		{"unknown reauth link", func(t *testing.T) page {
			return newBrowser(t).get(t, h.base+"/oauth/authorize?reauth="+strings.Repeat("Q", 43))
		}, oauthflow.ReasonReauthUnknown},
		{"expired code", func(t *testing.T) page {
			b := newBrowser(t)
			cb := b.Consent(t, h.base+"/oauth/authorize", "accept")
			if err := h.sim.AdvanceClock(atlassiansim.AuthCodeTTL + time.Minute); err != nil {
				t.Fatal(err)
			}
			return b.get(t, cb)
		}, oauthflow.ReasonExchangeFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.run(t)
			if p.reason != string(tt.want) {
				t.Fatalf("%s: page %d %q, want %q; body: %s", tt.name, p.status, p.reason, tt.want, p.body)
			}
			if p.status < 400 {
				t.Errorf("%s: status %d, want an error status", tt.name, p.status)
			}
			if p.apiKey() != "" || strings.Contains(p.body, "jxk_") {
				t.Errorf("%s: refusal page shows an API key", tt.name)
			}
			checkSecurityHeaders(t, tt.name, p.header)
		})
	}

	// Only the flows that were meant to succeed created connections: the foreign-cookie case's own browser and
	// the two replay cases' first callbacks.
	n := 0
	for _, it := range h.scan(t) {
		if s, ok := it["sk"].(*types.AttributeValueMemberS); ok && s.Value == connections.MetaSK {
			n++
		}
	}
	if n != 3 {
		t.Errorf("connections after the refusals = %d, want 3", n)
	}
	_ = ctx
	checkPrivacy(t, h, nil, nil)
}

// TestForgedCallbackKeepsFlow: a page can make the user's browser load our callback with any query while the
// user's own flow is at Atlassian; that must not end the flow.
func TestForgedCallbackKeepsFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	unknown := strings.Repeat("Z", 43)

	tests := []struct {
		name   string
		forged func(t *testing.T) string // the callback URL the victim's browser is lured to
		want   oauthflow.Reason
	}{
		{"malformed", func(*testing.T) string { return h.base + "/oauth/callback?code=a&code=b&state=c" }, oauthflow.ReasonBadRequest},
		{"malformed state", func(*testing.T) string { return h.base + "/oauth/callback?code=x&state=y" }, oauthflow.ReasonStateUnknown},
		{"unknown state", func(*testing.T) string { return h.base + "/oauth/callback?code=x&state=" + unknown }, oauthflow.ReasonStateUnknown},
		{"error with unknown state", func(*testing.T) string {
			return h.base + "/oauth/callback?error=access_denied&state=" + unknown
		}, oauthflow.ReasonDenied},
		{"attacker's pending state", func(t *testing.T) string {
			return newBrowser(t).Consent(t, h.base+"/oauth/authorize", "accept")
		}, oauthflow.ReasonForeignCookie},
		{"attacker's used state", func(t *testing.T) string {
			attacker := newBrowser(t)
			cb := attacker.Consent(t, h.base+"/oauth/authorize", "accept")
			if p := attacker.get(t, cb); p.reason != string(oauthflow.ReasonConnected) {
				t.Fatalf("attacker's own callback = %q, want connected", p.reason)
			}
			return cb
		}, oauthflow.ReasonForeignCookie},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			victim := newBrowser(t)
			real := victim.Consent(t, h.base+"/oauth/authorize", "accept")
			if p := victim.get(t, tt.forged(t)); p.reason != string(tt.want) {
				t.Fatalf("forged callback = %d %q, want %q", p.status, p.reason, tt.want)
			}
			if victim.nonce(h.base) == "" {
				t.Fatalf("forged callback cleared the victim's OAuth cookie")
			}
			if p := victim.get(t, real); p.reason != string(oauthflow.ReasonConnected) {
				t.Fatalf("real callback after a forged one = %d %q, want connected; body: %s", p.status, p.reason, p.body)
			}
			if victim.nonce(h.base) != "" {
				t.Errorf("OAuth cookie still set after the real callback")
			}
		})
	}
}

func TestExpiredState(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := newBrowser(t)
	cb := b.Consent(t, h.base+"/oauth/authorize", "accept")
	h.clock.Advance(oauthstate.TTL + time.Second)
	p := b.get(t, cb)
	if p.reason != string(oauthflow.ReasonStateExpired) || p.status != http.StatusBadRequest {
		t.Fatalf("callback after 10 minutes = %d %q, want 400 %q", p.status, p.reason, oauthflow.ReasonStateExpired)
	}
}

func TestReauthorizationKeepsConnectors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	key := h.connect(t).apiKey()
	connID := h.connIDOf(t, key)
	before, err := h.toks.Token(ctx, connID)
	if err != nil {
		t.Fatal(err)
	}
	mdBefore, err := h.toks.Metadata(ctx, connID)
	if err != nil {
		t.Fatal(err)
	}

	// A connector under the connection (shared/connectors owns the real shape; any item under the pk will do).
	connector := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: connections.PK(connID)}, "sk": &types.AttributeValueMemberS{Value: "CONNECTOR#c1"},
		"type": &types.AttributeValueMemberS{Value: "connector"}, "v": &types.AttributeValueMemberN{Value: "1"},
	}
	if _, err := h.env.Clients.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(h.env.Table), Item: connector}); err != nil {
		t.Fatal(err)
	}
	if err := h.conns.MarkGrantReauthRequired(ctx, connID, "invalid_grant", time.Time{}); err != nil {
		t.Fatal(err)
	}

	// What the connectors API does for an authenticated caller.
	h.clock.Advance(time.Minute)
	ticket, err := h.states.CreateReauth(ctx, connID)
	if err != nil {
		t.Fatal(err)
	}
	link := oauthstate.ReauthURL(h.base, ticket)
	b := newBrowser(t)
	p := b.get(t, b.Consent(t, link, "accept"))
	if p.reason != string(oauthflow.ReasonReauthorized) || p.status != http.StatusOK {
		t.Fatalf("re-authorisation callback = %d %q, want 200 reauthorized; body: %s", p.status, p.reason, p.body)
	}
	if p.apiKey() != "" {
		t.Errorf("re-authorisation page shows a new API key, want the existing keys kept")
	}

	out, err := h.env.Clients.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(h.env.Table), Key: map[string]types.AttributeValue{"pk": connector["pk"], "sk": connector["sk"]},
	})
	if err != nil || out.Item == nil {
		t.Errorf("connector item after re-authorisation: %v, present %v, want kept", err, out.Item != nil)
	}
	conn, err := h.conns.Get(ctx, connID)
	if err != nil || conn.Status != connections.StatusActive || conn.StatusReason != "" || len(conn.Sites) != 2 {
		t.Errorf("connection after re-authorisation = %+v, %v, want active, no reason, 2 sites", conn, err)
	}
	after, err := h.toks.Token(ctx, connID)
	if err != nil {
		t.Fatal(err)
	}
	mdAfter, err := h.toks.Metadata(ctx, connID)
	if err != nil {
		t.Fatal(err)
	}
	if after.AccessToken == before.AccessToken || !mdAfter.FamilyStartedAt.After(mdBefore.FamilyStartedAt) ||
		!conn.GrantStartedAt.Equal(mdAfter.FamilyStartedAt) {
		t.Errorf("token family not replaced: same access token %v, family start %v -> %v, connection grant start %v",
			after.AccessToken == before.AccessToken, mdBefore.FamilyStartedAt, mdAfter.FamilyStartedAt, conn.GrantStartedAt)
	}
	if k, err := h.keys.Authenticate(ctx, key); err != nil || k.ConnectionID != connID {
		t.Errorf("original API key after re-authorisation: %v, want it still valid", err)
	}
	if keys, _ := h.keys.List(ctx, connID); len(keys) != 1 {
		t.Errorf("keys after re-authorisation = %d, want 1", len(keys))
	}

	// The link is single use.
	if p := newBrowser(t).get(t, link); p.reason != string(oauthflow.ReasonReauthUsed) {
		t.Errorf("reused re-authorisation link = %q, want %q", p.reason, oauthflow.ReasonReauthUsed)
	}
	// A link for a connection disconnected meanwhile stores nothing.
	ticket2, err := h.states.CreateReauth(ctx, connID)
	if err != nil {
		t.Fatal(err)
	}
	cb := b.Consent(t, oauthstate.ReauthURL(h.base, ticket2), "accept")
	if err := h.conns.Delete(ctx, connID); err != nil {
		t.Fatal(err)
	}
	if err := h.toks.Delete(ctx, connID); err != nil {
		t.Fatal(err)
	}
	if p := b.get(t, cb); p.reason != string(oauthflow.ReasonConnectionGone) {
		t.Errorf("re-authorising a deleted connection = %q, want %q", p.reason, oauthflow.ReasonConnectionGone)
	}
	if _, err := h.toks.Metadata(ctx, connID); !errors.Is(err, tokens.ErrNotFound) {
		t.Errorf("tokens after re-authorising a deleted connection: %v, want ErrNotFound", err)
	}
	checkPrivacy(t, h, []string{key, ticket, ticket2}, nil)
}

func TestRevokedGrantRequiresReauth(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	connID := h.connIDOf(t, h.connect(t).apiKey())

	if err := h.sim.RevokeGrant(h.sim.ConsentingUsers()[0].AccountID); err != nil {
		t.Fatal(err)
	}
	// Past the access token's expiry, the store must refresh, and Atlassian answers invalid_grant.
	h.clock.Advance(atlassiansim.AccessTokenTTL + time.Minute)
	if _, err := h.toks.Token(ctx, connID); !errors.Is(err, tokens.ErrReauthRequired) {
		t.Fatalf("Token after revocation = %v, want ErrReauthRequired", err)
	}
	conn, err := h.conns.Get(ctx, connID)
	if err != nil {
		t.Fatal(err)
	}
	if conn.Status != connections.StatusReauthRequired || conn.StatusReason == "" {
		t.Errorf("connection after revocation = %q (%q), want reauth_required with a reason", conn.Status, conn.StatusReason)
	}
	checkPrivacy(t, h, nil, nil)
}

func TestScopesCannotBeChangedByCallers(t *testing.T) {
	t.Parallel()
	want := []string{"read:jira-work", "read:jira-user", "offline_access"}
	mine := oauthflow.Scopes()
	mine[0] = "write:jira-work"
	_ = append(mine[:1], "manage:jira-configuration")
	if got := oauthflow.Scopes(); !slices.Equal(got, want) {
		t.Errorf("Scopes() after a caller changed its copy = %q, want %q", got, want)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	h, err := oauthflow.New(oauthflow.Config{ClientID: "c", ClientSecret: "s", AuthURL: "https://a", APIURL: "https://b"},
		oauthflow.Deps{States: &oauthstate.Store{}, Tokens: &tokens.Store{}, Connections: &connections.Store{}, Keys: &apikeys.Store{},
			Fingerprints: &fingerprint.Keyer{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ method, path string }{{"GET", "/"}, {"POST", "/oauth/callback"}, {"GET", "/oauth/other"},
		{"PUT", "/oauth/authorize"}, {"POST", "/oauth/authorize"}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code < 400 {
			t.Errorf("%s %s = %d, want an error status", tt.method, tt.path, rec.Code)
		}
		checkSecurityHeaders(t, tt.path, rec.Header())
	}
}

// failingCreate is the real connections store whose Create fails, as a throttled or failed transaction would.
type failingCreate struct {
	*connections.Store
	connIDs chan string
}

func (f failingCreate) Create(ctx context.Context, c *connections.Connection, also ...types.TransactWriteItem) error {
	f.connIDs <- c.ID
	return errors.New("TransactionCanceledException: throttled")
}

func TestFailedCreateLeavesNothing(t *testing.T) {
	t.Parallel()
	ids := make(chan string, 1)
	h := newHarness(t, func(d *oauthflow.Deps) {
		d.Connections = failingCreate{Store: d.Connections.(*connections.Store), connIDs: ids}
	})
	b := newBrowser(t)
	p := b.get(t, b.Consent(t, h.base+"/oauth/authorize", "accept"))
	if p.reason != string(oauthflow.ReasonInternal) || p.status != http.StatusInternalServerError || p.apiKey() != "" {
		t.Fatalf("callback with a failing transaction = %d %q, want 500 %q and no key", p.status, p.reason, oauthflow.ReasonInternal)
	}
	if strings.Contains(p.body, "throttled") {
		t.Errorf("the page shows the internal error")
	}
	connID := <-ids
	if _, err := h.toks.Metadata(context.Background(), connID); !errors.Is(err, tokens.ErrNotFound) {
		t.Errorf("token record after the failed create: %v, want ErrNotFound (deleted)", err)
	}
	for _, it := range h.scan(t) {
		if pk := it["pk"].(*types.AttributeValueMemberS).Value; !strings.HasPrefix(pk, "STATE#") {
			t.Errorf("item %s left after the failed create, want only the used state", pk)
		}
	}
}
