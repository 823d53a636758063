package oauthflow_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/stacktest"
	"jiraexport/shared/connections"
	"jiraexport/shared/oauthflow"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/tokens"
)

// connectAs runs the whole flow in a fresh browser logged in at Atlassian as account; it returns the connection.
func (h *harness) connectAs(t *testing.T, account string) (connID, key string) {
	t.Helper()
	b := newBrowser(t).as(account)
	p := b.get(t, b.Consent(t, h.base+"/oauth/authorize", "accept"))
	if p.reason != string(oauthflow.ReasonConnected) {
		t.Fatalf("connect as %d: %d %q; body: %s", len(account), p.status, p.reason, p.body)
	}
	key = p.apiKey()
	return h.connIDOf(t, key), key
}

// countStates counts the OAuth states (not tickets) in the table.
func (h *harness) countStates(t *testing.T) int {
	t.Helper()
	n := 0
	for _, it := range h.scan(t) {
		if sk, _ := it["sk"].(*types.AttributeValueMemberS); sk != nil && sk.Value == "STATE" {
			n++
		}
	}
	return n
}

// rawToken is the connection's stored token item, for byte-for-byte comparisons.
func (h *harness) rawToken(t *testing.T, connID string) map[string]types.AttributeValue {
	t.Helper()
	out, err := h.env.Clients.DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(h.env.Table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: connections.PK(connID)}, "sk": &types.AttributeValueMemberS{Value: "TOKEN"},
		}})
	if err != nil || out.Item == nil {
		t.Fatalf("token item of the connection: %v, present %v", err, out.Item != nil)
	}
	return out.Item
}

// TestReauthLinkGetSpendsNothing: opening a re-authorisation link (a person, a link-preview bot, a mail
// scanner, with or without cookies, any number of times) shows the connection's sites and a form and changes
// nothing; the link still works for its owner afterwards.
func TestReauthLinkGetSpendsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	connID := h.connIDOf(t, h.connect(t).apiKey())
	conn, err := h.conns.Get(ctx, connID)
	if err != nil {
		t.Fatal(err)
	}
	ticket, err := h.states.CreateReauth(ctx, connID)
	if err != nil {
		t.Fatal(err)
	}
	link := oauthstate.ReauthURL(h.base, ticket)
	statesBefore := h.countStates(t)

	scanner := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i, method := range []string{http.MethodGet, http.MethodGet, http.MethodHead, http.MethodGet} {
		req, _ := http.NewRequest(method, link, nil)
		req.Header.Set("User-Agent", "Slackbot-LinkExpanding 1.0")
		resp, err := scanner.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" {
			t.Fatalf("%s #%d of the link = %d (Location %q), want 200 and no redirect", method, i, resp.StatusCode, resp.Header.Get("Location"))
		}
		for _, c := range resp.Cookies() {
			if c.Name == oauthflow.CookieName {
				t.Errorf("%s of the link set the OAuth cookie: a flow was started", method)
			}
		}
		if method == http.MethodGet {
			p := string(body)
			if !strings.Contains(p, `data-reason="reauth_confirm"`) {
				t.Fatalf("GET of the link: page %s, want reauth_confirm", p)
			}
			for _, s := range conn.Sites {
				if !strings.Contains(p, s.Name) || !strings.Contains(p, s.URL) {
					t.Errorf("the confirmation page does not name site %s", s.CloudID)
				}
			}
			// Framing would let another site click the button for the user; form-action must be absent (browsers
			// apply it to the redirects after the submission, through Atlassian's login).
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") ||
				strings.Contains(csp, "form-action") || resp.Header.Get("X-Frame-Options") != "DENY" {
				t.Errorf("confirmation page CSP = %q (X-Frame-Options %q), want no framing, no form-action", csp, resp.Header.Get("X-Frame-Options"))
			}
		}
	}
	if id, err := h.states.PeekReauth(ctx, ticket); err != nil || id != connID {
		t.Fatalf("ticket after the GETs: %q, %v, want still unused", id, err)
	}
	if n := h.countStates(t); n != statesBefore {
		t.Errorf("OAuth states after the GETs = %d, want %d (none started)", n, statesBefore)
	}
	if c, _ := h.conns.Get(ctx, connID); c.Version != conn.Version {
		t.Errorf("connection version %d -> %d after the GETs, want unchanged", conn.Version, c.Version)
	}

	// The owner still completes it.
	b := newBrowser(t)
	if p := b.get(t, b.Consent(t, link, "accept")); p.reason != string(oauthflow.ReasonReauthorized) {
		t.Fatalf("owner's re-authorisation after the scanners = %d %q, want reauthorized", p.status, p.reason)
	}
	if p := newBrowser(t).get(t, link); p.reason != string(oauthflow.ReasonReauthUsed) {
		t.Errorf("GET of a spent link = %q, want %q", p.reason, oauthflow.ReasonReauthUsed)
	}
}

// TestReauthConfirmRejectsForgery: only the page's own form, from this origin and this browser, spends a link.
func TestReauthConfirmRejectsForgery(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	connID := h.connIDOf(t, h.connect(t).apiKey())

	tests := []struct {
		name string
		// post submits the form of page (opened by b) in some forged way.
		post func(t *testing.T, b *browser, f confirmForm) *http.Response
		want oauthflow.Reason
	}{
		{"no Origin", func(t *testing.T, b *browser, f confirmForm) *http.Response {
			return b.Submit(t, f, f.Ticket, f.CSRF, "accept", "-")
		}, oauthflow.ReasonForgedForm},
		{"foreign Origin", func(t *testing.T, b *browser, f confirmForm) *http.Response {
			return b.Submit(t, f, f.Ticket, f.CSRF, "accept", "https://evil.example")
		}, oauthflow.ReasonForgedForm},
		{"null Origin", func(t *testing.T, b *browser, f confirmForm) *http.Response {
			return b.Submit(t, f, f.Ticket, f.CSRF, "accept", "null")
		}, oauthflow.ReasonForgedForm},
		{"another browser (no cookie)", func(t *testing.T, _ *browser, f confirmForm) *http.Response {
			return newBrowser(t).Submit(t, f, f.Ticket, f.CSRF, "accept", "")
		}, oauthflow.ReasonForgedForm},
		{"token not the cookie's", func(t *testing.T, b *browser, f confirmForm) *http.Response {
			return b.Submit(t, f, f.Ticket, strings.Repeat("A", 43), "accept", "")
		}, oauthflow.ReasonForgedForm},
		{"malformed token", func(t *testing.T, b *browser, f confirmForm) *http.Response {
			return b.Submit(t, f, f.Ticket, "x", "accept", "")
		}, oauthflow.ReasonBadRequest},
		{"extra field", func(t *testing.T, b *browser, f confirmForm) *http.Response {
			body := url.Values{"reauth": {f.Ticket}, "csrf": {f.CSRF}, "x": {"1"}}.Encode()
			req, _ := http.NewRequest(http.MethodPost, f.Action, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", strings.TrimSuffix(f.Action, "/oauth/authorize"))
			resp, err := b.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}, oauthflow.ReasonBadRequest},
		{"JSON body", func(t *testing.T, b *browser, f confirmForm) *http.Response {
			req, _ := http.NewRequest(http.MethodPost, f.Action, strings.NewReader(`{"reauth":"`+f.Ticket+`","csrf":"`+f.CSRF+`"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", strings.TrimSuffix(f.Action, "/oauth/authorize"))
			resp, err := b.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}, oauthflow.ReasonBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ticket, err := h.states.CreateReauth(ctx, connID)
			if err != nil {
				t.Fatal(err)
			}
			b := newBrowser(t)
			page := b.get(t, oauthstate.ReauthURL(h.base, ticket))
			f := formOf(t, page.body)
			resp := tt.post(t, b, f)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if stacktest.Reason(string(body)) != string(tt.want) || resp.StatusCode < 400 {
				t.Fatalf("forged confirmation = %d %s, want an error status and %q", resp.StatusCode, body, tt.want)
			}
			if resp.Header.Get("Location") != "" {
				t.Errorf("forged confirmation redirected to %q", resp.Header.Get("Location"))
			}
			if id, err := h.states.PeekReauth(ctx, ticket); err != nil || id != connID {
				t.Errorf("ticket after a forged confirmation: %v, want still usable", err)
			}
			// The owner's own submission still works.
			resp = b.Submit(t, f, f.Ticket, f.CSRF, "accept", "")
			resp.Body.Close()
			if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "/oauth/callback?") {
				t.Errorf("genuine confirmation after a forged one = %d, want the consent to proceed", resp.StatusCode)
			}
		})
	}
}

// TestReauthByAnotherAccountRefused is the audit's attack at the handler: a re-authorisation link of one
// connection, consented to by another Atlassian account, changes nothing and stores nothing, in both
// directions (the attacker's link sent to a victim; a victim's link taken by an attacker).
func TestReauthByAnotherAccountRefused(t *testing.T) {
	t.Parallel()
	// Three sites: the simulator's first user belongs to all of them, the second to two, so the two accounts'
	// grants differ visibly.
	h := newHarnessWith(t, harnessOptions{sites: 3})
	ctx := context.Background()
	users := h.sim.ConsentingUsers()
	if len(users) < 2 {
		t.Fatal("the simulator needs two consenting users")
	}
	tests := []struct{ name, owner, other string }{
		{"attacker's link consented by the victim", users[1].AccountID, users[0].AccountID},
		{"victim's link consented by the attacker", users[0].AccountID, users[1].AccountID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			connID, key := h.connectAs(t, tt.owner)
			before, err := h.conns.Get(ctx, connID)
			if err != nil {
				t.Fatal(err)
			}
			tokBefore := h.rawToken(t, connID)
			accessBefore, err := h.toks.Token(ctx, connID)
			if err != nil {
				t.Fatal(err)
			}
			metas := h.countMeta(t)

			ticket, err := h.states.CreateReauth(ctx, connID)
			if err != nil {
				t.Fatal(err)
			}
			b := newBrowser(t).as(tt.other)
			p := b.get(t, b.Consent(t, oauthstate.ReauthURL(h.base, ticket), "accept"))
			if p.reason != string(oauthflow.ReasonAccountMismatch) || p.status != http.StatusForbidden {
				t.Fatalf("re-authorisation by another account = %d %q, want 403 %q; body: %s", p.status, p.reason,
					oauthflow.ReasonAccountMismatch, p.body)
			}
			for _, u := range users {
				if strings.Contains(p.body, u.DisplayName) || u.Email != "" && strings.Contains(p.body, u.Email) {
					t.Errorf("the refusal page names a person")
				}
			}
			after, err := h.conns.Get(ctx, connID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(after, before) {
				t.Errorf("connection after the refused re-authorisation = %+v, want unchanged %+v", after, before)
			}
			if tokAfter := h.rawToken(t, connID); !reflect.DeepEqual(tokAfter, tokBefore) {
				t.Errorf("token item changed by the refused re-authorisation")
			}
			accessAfter, err := h.toks.Token(ctx, connID)
			if err != nil || accessAfter.AccessToken != accessBefore.AccessToken {
				t.Errorf("access token after the refused re-authorisation: %v, changed %v, want the owner's", err,
					accessAfter == nil || accessAfter.AccessToken != accessBefore.AccessToken)
			}
			if n := h.countMeta(t); n != metas {
				t.Errorf("connections %d -> %d: the other account's grant was stored as a connection", metas, n)
			}
			if n := h.countTokens(t); n != metas {
				t.Errorf("token records = %d, want one per connection (%d): the other account's grant was stored", n, metas)
			}
			if _, err := h.keys.Authenticate(ctx, key); err != nil {
				t.Errorf("owner's key after the refusal: %v", err)
			}
			// The owner can still renew it.
			ticket2, err := h.states.CreateReauth(ctx, connID)
			if err != nil {
				t.Fatal(err)
			}
			ob := newBrowser(t).as(tt.owner)
			if p := ob.get(t, ob.Consent(t, oauthstate.ReauthURL(h.base, ticket2), "accept")); p.reason != string(oauthflow.ReasonReauthorized) {
				t.Errorf("owner's re-authorisation after the refused one = %d %q, want reauthorized", p.status, p.reason)
			}
			checkPrivacy(t, h, []string{key, ticket, ticket2}, nil)
		})
	}
	if logs := h.logs.String(); !strings.Contains(logs, "re-authorisation by another account refused") {
		t.Errorf("the refusal was not logged")
	}
}

func (h *harness) countSK(t *testing.T, sk string) int {
	t.Helper()
	n := 0
	for _, it := range h.scan(t) {
		if s, _ := it["sk"].(*types.AttributeValueMemberS); s != nil && s.Value == sk {
			n++
		}
	}
	return n
}

func (h *harness) countMeta(t *testing.T) int   { return h.countSK(t, connections.MetaSK) }
func (h *harness) countTokens(t *testing.T) int { return h.countSK(t, "TOKEN") }

// TestFingerprintStoredAtFirstConsent: a new connection carries its account's fingerprint, not the account id.
func TestFingerprintStoredAtFirstConsent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, _ := h.connectAs(t, h.sim.ConsentingUsers()[0].AccountID)
	b, _ := h.connectAs(t, h.sim.ConsentingUsers()[0].AccountID)
	ca, err := h.conns.Get(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := h.conns.Get(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ca.AccountFingerprint, "v1:") || !strings.HasPrefix(cb.AccountFingerprint, "v1:") {
		t.Fatalf("fingerprints %q, %q, want v1 MACs", ca.AccountFingerprint, cb.AccountFingerprint)
	}
	if ca.AccountFingerprint == cb.AccountFingerprint {
		t.Errorf("one account's two connections have the same fingerprint: they can be linked")
	}
	checkPrivacy(t, h, nil, nil) // no account id in any item or log line
}

// trap records whatever reaches it: the host a followed redirect would leak a secret to.
type trap struct {
	mu   sync.Mutex
	hits int
}

func (tr *trap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tr.mu.Lock()
	tr.hits++
	tr.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"access_token":"stolen","refresh_token":"stolen","expires_in":3600,"scope":"offline_access"}`)
}

// TestOutboundFollowsNoRedirect: the code exchange (client secret and code in its body), accessible-resources
// and myself (bearer token) each refuse a 307 instead of following it to another host.
func TestOutboundFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path string
		want oauthflow.Reason
	}{
		{"/oauth/token", oauthflow.ReasonExchangeFailed},
		{"/oauth/token/accessible-resources", oauthflow.ReasonResourcesFailed},
		{"/rest/api/3/myself", oauthflow.ReasonAccountUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			tr := &trap{}
			elsewhere := httptest.NewServer(tr)
			t.Cleanup(elsewhere.Close)
			h := newHarnessWith(t, harnessOptions{front: func(t *testing.T, simURL string) string {
				target, _ := url.Parse(simURL)
				proxy := httputil.NewSingleHostReverseProxy(target)
				front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == tt.path || strings.HasSuffix(r.URL.Path, tt.path) && strings.HasPrefix(r.URL.Path, "/ex/jira/") {
						http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
						return
					}
					proxy.ServeHTTP(w, r)
				}))
				t.Cleanup(front.Close)
				return front.URL
			}})
			b := newBrowser(t)
			p := b.get(t, b.Consent(t, h.base+"/oauth/authorize", "accept"))
			if p.reason != string(tt.want) {
				t.Fatalf("callback with a 307 on %s = %d %q, want %q", tt.path, p.status, p.reason, tt.want)
			}
			tr.mu.Lock()
			defer tr.mu.Unlock()
			if tr.hits != 0 {
				t.Errorf("the redirect target got %d request(s), want 0", tr.hits)
			}
			if n := h.countMeta(t); n != 0 {
				t.Errorf("connections after the refused redirect = %d, want 0", n)
			}
			if n := h.countTokens(t); n != 0 {
				t.Errorf("token records after the refused redirect = %d, want 0", n)
			}
		})
	}
}

// TestRevokedThenSameAccountRenews: the legitimate case: the grant is revoked, the connection's owner renews it
// through a link and the connection is active again with its sites.
func TestRevokedThenSameAccountRenews(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	owner := h.sim.ConsentingUsers()[0].AccountID
	connID, _ := h.connectAs(t, owner)
	if err := h.sim.RevokeGrant(owner); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(atlassiansim.AccessTokenTTL + time.Minute)
	if _, err := h.toks.Token(ctx, connID); !errors.Is(err, tokens.ErrReauthRequired) {
		t.Fatalf("Token after revocation = %v, want ErrReauthRequired", err)
	}
	ticket, err := h.states.CreateReauth(ctx, connID)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t).as(owner)
	if p := b.get(t, b.Consent(t, oauthstate.ReauthURL(h.base, ticket), "accept")); p.reason != string(oauthflow.ReasonReauthorized) {
		t.Fatalf("owner's renewal after revocation = %d %q, want reauthorized; body: %s", p.status, p.reason, p.body)
	}
	if c, err := h.conns.Get(ctx, connID); err != nil || c.Status != connections.StatusActive {
		t.Errorf("connection after renewal = %+v, %v, want active", c, err)
	}
	if _, err := h.toks.Token(ctx, connID); err != nil {
		t.Errorf("Token after renewal = %v, want a token", err)
	}
}
