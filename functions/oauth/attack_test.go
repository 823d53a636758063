package main

// The audit's attack, end to end: the real OAuth and connectors bootstraps under the Lambda emulator behind the
// template's routes, the local AWS stack and the Atlassian simulator, two people with their own browsers.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/shared/config"
	"jiraexport/shared/connections"
	"jiraexport/shared/oauthflow"
	"jiraexport/shared/tokens"
)

// call sends one connectors API request with an API key and decodes the JSON answer into out (when not nil).
func (e *e2e) call(t *testing.T, method, path, key string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v; body: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

type connectionView struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Sites  []struct {
		ID, URL, Name string
	} `json:"sites"`
}

// reauthLink asks the connectors API for a re-authorisation link, as the key's holder does.
func (e *e2e) reauthLink(t *testing.T, key string) string {
	t.Helper()
	var out struct {
		AuthorizeURL string `json:"authorizeUrl"`
	}
	if st := e.call(t, http.MethodPost, "/v1/connection/reauthorize", key, nil, &out); st != http.StatusCreated || out.AuthorizeURL == "" {
		t.Fatalf("POST /v1/connection/reauthorize = %d %+v, want 201 with a link; logs: %s", st, out, e.api.Logs())
	}
	e.secrets = append(e.secrets, out.AuthorizeURL[strings.Index(out.AuthorizeURL, "reauth=")+len("reauth="):])
	return out.AuthorizeURL
}

func (e *e2e) rawItem(t *testing.T, connID, sk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := e.env.Clients.DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(e.env.Table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: connections.PK(connID)}, "sk": &types.AttributeValueMemberS{Value: sk},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

// countSK counts the table's items with sort key sk.
func (e *e2e) countSK(t *testing.T, sk string) int {
	t.Helper()
	n := 0
	p := dynamodb.NewScanPaginator(e.env.Clients.DynamoDB, &dynamodb.ScanInput{TableName: aws.String(e.env.Table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			if s, _ := it["sk"].(*types.AttributeValueMemberS); s != nil && s.Value == sk {
				n++
			}
		}
	}
	return n
}

// grantSites lists, through Atlassian, the sites the stored token of connID opens: whose grant it is.
func (e *e2e) grantSites(t *testing.T, toks *tokens.Store, connID string) []string {
	t.Helper()
	tok, err := toks.Token(context.Background(), connID)
	if err != nil {
		t.Fatalf("token of %s: %v", connID, err)
	}
	req, _ := http.NewRequest(http.MethodGet, e.sim.URL()+"/oauth/token/accessible-resources", nil)
	tok.SetAuthHeader(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rs []struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&rs); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("accessible-resources with the stored token = %d, %v", resp.StatusCode, err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestReauthAttackEndToEnd(t *testing.T) {
	e := startE2E(t, e2eOptions{sites: 3, connectors: true})
	ctx := context.Background()
	users := e.sim.ConsentingUsers()
	// The simulator's first user is a member of all three sites, the second of two: their grants differ.
	victim, attacker := users[0], users[1]
	toks := tokens.NewStore(e.env.Clients.DynamoDB, e.env.Clients.KMS, e.env.Table, e.env.TokenKeyARN, &oauth2.Config{
		ClientID: "sim-client-id", ClientSecret: e2eSecret, Endpoint: config.Endpoint(e.sim.URL()),
	}, tokens.WithRetryPolicy(tokens.RetryPolicy{Attempts: 1}))

	// The attacker connects their own account and keeps the API key.
	ab := newBrowser(t)
	ab.Account = attacker.AccountID
	ap := e.get(t, ab, e.consent(t, ab, e.base+"/oauth/authorize", "accept"))
	if ap.reason != string(oauthflow.ReasonConnected) || ap.key == "" {
		t.Fatalf("attacker's connect = %d %q; logs: %s", ap.status, ap.reason, e.fn.Logs())
	}
	attackerKey := ap.key
	var before connectionView
	if st := e.call(t, http.MethodGet, "/v1/connection", attackerKey, nil, &before); st != http.StatusOK || len(before.Sites) != 2 {
		t.Fatalf("GET /v1/connection = %d %+v, want the attacker's 2 sites; logs: %s", st, before, e.api.Logs())
	}
	attackerSites := e.grantSites(t, toks, before.ID)
	tokenBefore := e.rawItem(t, before.ID, "TOKEN")
	connsBefore, tokensBefore := e.countSK(t, connections.MetaSK), e.countSK(t, "TOKEN")

	t.Run("attacker's link consented by the victim changes nothing", func(t *testing.T) {
		link := e.reauthLink(t, attackerKey)
		// The link goes to the victim, who opens it and consents at the real (here: simulated) Atlassian.
		vb := newBrowser(t)
		vb.Account = victim.AccountID
		p := e.get(t, vb, e.consent(t, vb, link, "accept"))
		if p.reason != string(oauthflow.ReasonAccountMismatch) || p.status != http.StatusForbidden || p.key != "" {
			t.Fatalf("victim's consent through the attacker's link = %d %q, want 403 %q; body: %s\nlogs: %s",
				p.status, p.reason, oauthflow.ReasonAccountMismatch, p.body, e.fn.Logs())
		}
		var after connectionView
		if st := e.call(t, http.MethodGet, "/v1/connection", attackerKey, nil, &after); st != http.StatusOK {
			t.Fatalf("GET /v1/connection after the attack = %d", st)
		}
		if !reflect.DeepEqual(after, before) {
			t.Errorf("attacker's connection after the victim's consent = %+v, want unchanged %+v", after, before)
		}
		if got := e.rawItem(t, before.ID, "TOKEN"); !reflect.DeepEqual(got, tokenBefore) {
			t.Errorf("attacker's token record changed")
		}
		if got := e.grantSites(t, toks, before.ID); !reflect.DeepEqual(got, attackerSites) {
			t.Errorf("the stored token opens %v, want the attacker's own grant %v", got, attackerSites)
		}
		// The victim's grant is nowhere: no new connection, no new or replaced token record.
		if n := e.countSK(t, connections.MetaSK); n != connsBefore {
			t.Errorf("connections %d -> %d", connsBefore, n)
		}
		if n := e.countSK(t, "TOKEN"); n != tokensBefore {
			t.Errorf("token records %d -> %d", tokensBefore, n)
		}
	})

	t.Run("a link-preview bot spends nothing", func(t *testing.T) {
		link := e.reauthLink(t, attackerKey)
		bot := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for range 3 {
			resp, err := bot.Get(link)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("bot GET of the link = %d, want 200 (a page, no redirect)", resp.StatusCode)
			}
		}
		// The owner still uses the same link afterwards (reaching the consent proves the ticket was unspent).
		ob := newBrowser(t)
		ob.Account = attacker.AccountID
		_ = e.consent(t, ob, link, "deny")
	})

	t.Run("the owner renews after revoking and keeps the connectors", func(t *testing.T) {
		site := e.sim.Sites()
		var siteID, project string
		for _, s := range site {
			if s.CloudID == before.Sites[0].ID {
				siteID, project = s.CloudID, s.Projects[0].Key
			}
		}
		var created struct {
			ID string `json:"id"`
		}
		body := map[string]any{"name": "weekly", "siteId": siteID, "jql": "project = " + project,
			"schedule": map[string]any{"expression": "rate(1 hour)", "timezone": "UTC"}}
		if st := e.call(t, http.MethodPost, "/v1/connectors", attackerKey, body, &created); st != http.StatusCreated {
			t.Fatalf("POST /v1/connectors = %d; logs: %s", st, e.api.Logs())
		}
		// The owner revokes the app at Atlassian; the grant dies and the connection needs renewing.
		if err := e.sim.RevokeGrant(attacker.AccountID); err != nil {
			t.Fatal(err)
		}
		later := tokens.NewStore(e.env.Clients.DynamoDB, e.env.Clients.KMS, e.env.Table, e.env.TokenKeyARN, &oauth2.Config{
			ClientID: "sim-client-id", ClientSecret: e2eSecret, Endpoint: config.Endpoint(e.sim.URL()),
		}, tokens.WithClock(func() time.Time { return time.Now().Add(2 * atlassiansim.AccessTokenTTL) }),
			tokens.WithGrantReauthCallback(e.conns.OnGrantRejected(nil)), tokens.WithRetryPolicy(tokens.RetryPolicy{Attempts: 1}))
		if _, err := later.Token(ctx, before.ID); err == nil {
			t.Fatal("Token after revocation succeeded, want reauth required")
		}
		link := e.reauthLink(t, attackerKey)
		ob := newBrowser(t)
		ob.Account = attacker.AccountID
		p := e.get(t, ob, e.consent(t, ob, link, "accept"))
		if p.reason != string(oauthflow.ReasonReauthorized) || p.status != http.StatusOK {
			t.Fatalf("owner's renewal = %d %q, want 200 reauthorized; body: %s\nlogs: %s", p.status, p.reason, p.body, e.fn.Logs())
		}
		var after connectionView
		if st := e.call(t, http.MethodGet, "/v1/connection", attackerKey, nil, &after); st != http.StatusOK ||
			after.Status != string(connections.StatusActive) || len(after.Sites) != 2 {
			t.Errorf("connection after renewal = %d %+v, want active with its 2 sites", st, after)
		}
		var list struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		if st := e.call(t, http.MethodGet, "/v1/connectors", attackerKey, nil, &list); st != http.StatusOK ||
			len(list.Items) != 1 || list.Items[0].ID != created.ID {
			t.Errorf("connectors after renewal = %d %+v, want the one created before", st, list)
		}
	})

	t.Run("privacy", func(t *testing.T) {
		items := e.scanAll(t)
		logs := e.fn.Logs() + e.api.Logs()
		for _, u := range e.sim.Users() {
			if u.AccountType != "atlassian" {
				continue
			}
			for _, pii := range []string{u.AccountID, u.Email, u.DisplayName} {
				if pii != "" && (strings.Contains(items, pii) || strings.Contains(logs, pii)) {
					t.Errorf("an item or a log line contains an account id, e-mail or name")
				}
			}
		}
		for _, s := range append([]string{"sim_at_", "sim_rt_", "code_", e2eSecret}, e.secrets...) {
			if strings.Contains(items, s) || strings.Contains(logs, s) {
				t.Errorf("an item or a log line contains a secret (%d chars)", len(s))
			}
		}
	})
}
