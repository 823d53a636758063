package main

// End-to-end: the real bootstrap under the Lambda Runtime Interface Emulator, behind the template's HTTP API
// routes (payload 2.0 events), against the local AWS stack and the Atlassian simulator, driven by cookie-jar
// browsers.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/devapi"
	"jiraexport/infra/lambdarun"
	"jiraexport/infra/stacktest"
	"jiraexport/shared/access"
	"jiraexport/shared/apikeys"
	"jiraexport/shared/config"
	"jiraexport/shared/connections"
	"jiraexport/shared/oauthflow"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/tokens"
)

const e2eSecret = "e2e-client-secret-0123456789abcdef"

type e2e struct {
	env   *stacktest.Env
	sim   *atlassiansim.Server
	fn    *lambdarun.Function
	api   *lambdarun.Function // ConnectorsFunction, when started
	base  string
	conns *connections.Store
	keys  *apikeys.Store
	// secrets collects every plaintext secret the test sees (states, nonces, keys, tickets, codes).
	secrets []string
}

// e2eOptions shape the simulator and the functions behind the router.
type e2eOptions struct {
	sites int // default 2
	// connectors also serves the connectors API (ConnectorsFunction) behind the same router.
	connectors bool
}

func startE2E(t *testing.T, opts ...e2eOptions) *e2e {
	t.Helper()
	var o e2eOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.sites == 0 {
		o.sites = 2
	}
	stacktest.SkipIfShort(t, "DynamoDB Local, moto and the Lambda Runtime Interface Emulator (end to end: it builds and runs the bootstrap)")
	env := stacktest.New(t, stacktest.Options{SecretValues: map[string]string{"AtlassianClientSecret": e2eSecret}})
	// The router's address first: it is the public base URL the function and the simulator's redirect URI need.
	at := stacktest.StartAtlassian(t, atlassiansim.Config{
		Seed: 11, Sites: o.sites, ProjectsPerSite: 1, IssuesPerProject: 1, Users: 2, ClientSecret: e2eSecret,
	})
	sim, simURL, base, ln := at.Sim, at.URL, at.Base, at.Listener

	fn := env.StartFunction(t, "OAuthFunction", map[string]string{
		"ATLASSIAN_CLIENT_ID": "sim-client-id", "ATLASSIAN_AUTH_URL": simURL, "ATLASSIAN_API_URL": simURL,
		"PUBLIC_BASE_URL": base, "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
	})
	invokers := map[string]devapi.Invoker{fn.Name: fn}
	var api *lambdarun.Function
	if o.connectors {
		api = env.StartFunction(t, "ConnectorsFunction", map[string]string{
			"ATLASSIAN_CLIENT_ID": "sim-client-id", "ATLASSIAN_AUTH_URL": simURL, "ATLASSIAN_API_URL": simURL,
			"PUBLIC_BASE_URL": base, "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
		})
		invokers[api.Name] = api
	}
	router, err := devapi.New(env.Tmpl, invokers, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	return &e2e{env: env, sim: sim, fn: fn, api: api, base: base,
		conns: connections.NewStore(env.Clients.DynamoDB, env.Table), keys: apikeys.NewStore(env.Clients.DynamoDB, env.Table)}
}

// browser is one user agent (stacktest's: its own cookie jar, the simulator's test switches).
type browser = stacktest.Browser

func newBrowser(t *testing.T) *browser { return stacktest.NewBrowser(t) }

// consent opens u, consents or denies at the simulator, and returns the callback URL (not yet visited); the
// state, code and nonce it saw join the secrets no store or log may hold.
func (e *e2e) consent(t *testing.T, b *browser, u, decision string) string {
	t.Helper()
	loc := b.Consent(t, u, decision)
	cu, _ := url.Parse(loc)
	for _, k := range []string{"state", "code"} {
		if v := cu.Query().Get(k); v != "" {
			e.secrets = append(e.secrets, v)
		}
	}
	if n := b.Cookie(e.base, oauthflow.CookieName); n != "" {
		e.secrets = append(e.secrets, n)
	}
	return loc
}

type page struct {
	status int
	header http.Header
	body   string
	reason string
	key    string
}

func (e *e2e) get(t *testing.T, b *browser, u string, header ...string) page {
	t.Helper()
	p := b.Get(t, u, header...)
	if p.Key != "" {
		e.secrets = append(e.secrets, p.Key)
	}
	return page{status: p.Status, header: p.Header, body: p.Body, reason: p.Reason, key: p.Key}
}

func (e *e2e) connect(t *testing.T) page {
	t.Helper()
	b := newBrowser(t)
	p := e.get(t, b, e.consent(t, b, e.base+"/oauth/authorize", "accept"))
	if p.status != http.StatusOK || p.reason != string(oauthflow.ReasonConnected) || p.key == "" {
		t.Fatalf("flow = %d %q, want 200 connected with a key; body: %s\nlogs: %s", p.status, p.reason, p.body, e.fn.Logs())
	}
	return p
}

func TestEndToEnd(t *testing.T) {
	e := startE2E(t)
	ctx := context.Background()
	var firstKey string

	t.Run("full flow", func(t *testing.T) {
		p := e.connect(t)
		firstKey = p.key
		for k, v := range map[string]string{
			"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
			"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		} {
			if got := p.header.Get(k); got != v {
				t.Errorf("success page %s = %q, want %q", k, got, v)
			}
		}
		k, err := e.keys.Authenticate(ctx, p.key)
		if err != nil {
			t.Fatalf("Authenticate(key from the page) = %v", err)
		}
		c, err := e.conns.Get(ctx, k.ConnectionID)
		if err != nil || c.Status != connections.StatusActive || len(c.Sites) != 2 {
			t.Errorf("connection = %+v, %v, want active with 2 sites", c, err)
		}
	})

	refusals := []struct {
		name string
		run  func(t *testing.T) page
		want oauthflow.Reason
	}{
		{"denied consent", func(t *testing.T) page {
			b := newBrowser(t)
			return e.get(t, b, e.consent(t, b, e.base+"/oauth/authorize", "deny"))
		}, oauthflow.ReasonDenied},
		{"missing cookie", func(t *testing.T) page {
			cb := e.consent(t, newBrowser(t), e.base+"/oauth/authorize", "accept")
			return e.get(t, newBrowser(t), cb)
		}, oauthflow.ReasonNoCookie},
		{"foreign cookie", func(t *testing.T) page {
			victim, attacker := newBrowser(t), newBrowser(t)
			cb := e.consent(t, attacker, e.base+"/oauth/authorize", "accept")
			_ = e.consent(t, victim, e.base+"/oauth/authorize", "accept")
			return e.get(t, victim, cb)
		}, oauthflow.ReasonForeignCookie},
		{"replayed state", func(t *testing.T) page {
			b := newBrowser(t)
			cb := e.consent(t, b, e.base+"/oauth/authorize", "accept")
			nonce := b.Cookie(e.base, oauthflow.CookieName)
			if p := e.get(t, b, cb); p.reason != string(oauthflow.ReasonConnected) {
				t.Fatalf("first callback = %q, want connected", p.reason)
			}
			return e.get(t, b, cb, "Cookie", oauthflow.CookieName+"="+nonce)
		}, oauthflow.ReasonStateUsed},
		{"expired state", func(t *testing.T) page {
			b := newBrowser(t)
			cb := e.consent(t, b, e.base+"/oauth/authorize", "accept")
			cu, _ := url.Parse(cb)
			// The function runs on the wall clock: move the state's expiry into the past instead, as 10
			// minutes would (DynamoDB's own TTL deletion is lazy, so the item is still there).
			e.expireState(t, cu.Query().Get("state"))
			return e.get(t, b, cb)
		}, oauthflow.ReasonStateExpired},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.run(t)
			if p.reason != string(tt.want) || p.status < 400 || p.key != "" {
				t.Fatalf("%s = %d %q (key shown %v), want an error status and %q; body: %s", tt.name, p.status, p.reason,
					p.key != "", tt.want, p.body)
			}
			if p.header.Get("Cache-Control") != "no-store" || p.header.Get("Content-Security-Policy") == "" {
				t.Errorf("%s: refusal page lacks no-store or CSP", tt.name)
			}
		})
	}

	t.Run("reauthorization keeps connectors", func(t *testing.T) {
		k, err := e.keys.Authenticate(ctx, firstKey)
		if err != nil {
			t.Fatal(err)
		}
		connID := k.ConnectionID
		connector := map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: connections.PK(connID)}, "sk": &types.AttributeValueMemberS{Value: "CONNECTOR#c1"},
			"type": &types.AttributeValueMemberS{Value: "connector"}, "v": &types.AttributeValueMemberN{Value: "1"},
		}
		if _, err := e.env.Clients.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.env.Table), Item: connector}); err != nil {
			t.Fatal(err)
		}
		before := e.tokenVersion(t, connID)
		if err := e.conns.MarkGrantReauthRequired(ctx, connID, "invalid_grant", time.Time{}); err != nil {
			t.Fatal(err)
		}
		// What the connectors API does for a caller holding the connection's API key.
		ticket, err := oauthstate.NewStore(e.env.Clients.DynamoDB, e.env.Table).CreateReauth(ctx, connID)
		if err != nil {
			t.Fatal(err)
		}
		e.secrets = append(e.secrets, ticket)
		b := newBrowser(t)
		p := e.get(t, b, e.consent(t, b, oauthstate.ReauthURL(e.base, ticket), "accept"))
		if p.status != http.StatusOK || p.reason != string(oauthflow.ReasonReauthorized) || p.key != "" {
			t.Fatalf("re-authorisation = %d %q (new key %v), want 200 reauthorized without a new key; body: %s",
				p.status, p.reason, p.key != "", p.body)
		}
		out, err := e.env.Clients.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(e.env.Table),
			Key: map[string]types.AttributeValue{"pk": connector["pk"], "sk": connector["sk"]}})
		if err != nil || out.Item == nil {
			t.Errorf("connector after re-authorisation: %v, present %v, want kept", err, out.Item != nil)
		}
		if c, err := e.conns.Get(ctx, connID); err != nil || c.Status != connections.StatusActive {
			t.Errorf("connection after re-authorisation = %+v, %v, want active", c, err)
		}
		if after := e.tokenVersion(t, connID); after <= before {
			t.Errorf("token record version %d -> %d, want the family replaced", before, after)
		}
		if _, err := e.keys.Authenticate(ctx, firstKey); err != nil {
			t.Errorf("original key after re-authorisation = %v, want valid", err)
		}
		if p := e.get(t, newBrowser(t), oauthstate.ReauthURL(e.base, ticket)); p.reason != string(oauthflow.ReasonReauthUsed) {
			t.Errorf("reused re-authorisation link = %q, want %q", p.reason, oauthflow.ReasonReauthUsed)
		}
	})

	t.Run("revoked grant turns the connection reauth_required", func(t *testing.T) {
		k, err := e.keys.Authenticate(ctx, firstKey)
		if err != nil {
			t.Fatal(err)
		}
		// The export side of the product: the tokens store, told by Atlassian that the grant is gone.
		later := time.Now().Add(2 * atlassiansim.AccessTokenTTL)
		toks := access.Tokens(access.Config{DB: e.env.Clients.DynamoDB, KMS: e.env.Clients.KMS, Table: e.env.Table,
			TokenKeyID: e.env.TokenKeyARN, FlagOnly: true,
			OAuth: &oauth2.Config{ClientID: "sim-client-id", ClientSecret: e2eSecret, Endpoint: config.Endpoint(e.sim.URL())},
		}, tokens.WithClock(func() time.Time { return later }), tokens.WithRetryPolicy(tokens.RetryPolicy{Attempts: 1}))
		if err := e.sim.RevokeGrant(e.sim.ConsentingUsers()[0].AccountID); err != nil {
			t.Fatal(err)
		}
		if _, err := toks.Token(ctx, k.ConnectionID); !errors.Is(err, tokens.ErrReauthRequired) {
			t.Fatalf("Token after revocation = %v, want ErrReauthRequired", err)
		}
		if c, err := e.conns.Get(ctx, k.ConnectionID); err != nil || c.Status != connections.StatusReauthRequired {
			t.Errorf("connection after revocation = %+v, %v, want reauth_required", c, err)
		}
	})

	t.Run("privacy", func(t *testing.T) {
		items := e.scanAll(t)
		logs := e.fn.Logs()
		if !strings.Contains(logs, "connection created") {
			t.Errorf("function logs were not captured (no \"connection created\" line)")
		}
		shapes := []string{"sim_at_", "sim_rt_", "code_", "jxk_", e2eSecret}
		for _, s := range shapes {
			if strings.Contains(items, s) {
				t.Errorf("a table item contains %q", s)
			}
			if strings.Contains(logs, s) {
				t.Errorf("the function's logs contain %q", s)
			}
		}
		if len(e.secrets) < 10 {
			t.Errorf("only %d secrets collected, want the states, nonces, codes, keys and tickets of every flow", len(e.secrets))
		}
		for _, s := range e.secrets {
			if strings.Contains(items, s) {
				t.Errorf("a table item contains a plaintext secret (%d chars)", len(s))
			}
			if strings.Contains(logs, s) {
				t.Errorf("the function's logs contain a secret (%d chars)", len(s))
			}
		}
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
	})
}

// expireState moves a state's stored expiry one second into the past.
func (e *e2e) expireState(t *testing.T, state string) {
	t.Helper()
	sum := sha256.Sum256([]byte(state))
	_, err := e.env.Clients.DynamoDB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName: aws.String(e.env.Table),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "STATE#" + hex.EncodeToString(sum[:])},
			"sk": &types.AttributeValueMemberS{Value: "STATE"},
		},
		UpdateExpression:          aws.String("SET #ttl = :past"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames:  map[string]string{"#ttl": "ttl"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":past": &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Unix()-1, 10)}},
	})
	if err != nil {
		t.Fatalf("expire state: %v", err)
	}
}

func (e *e2e) tokenVersion(t *testing.T, connID string) int64 {
	t.Helper()
	out, err := e.env.Clients.DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(e.env.Table),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: connections.PK(connID)}, "sk": &types.AttributeValueMemberS{Value: "TOKEN"},
		}, ConsistentRead: aws.Bool(true)})
	if err != nil || out.Item == nil {
		t.Fatalf("token record of %s: %v, present %v", connID, err, out.Item != nil)
	}
	var v struct {
		V int64 `dynamodbav:"v"`
	}
	if err := attributevalue.UnmarshalMap(out.Item, &v); err != nil {
		t.Fatal(err)
	}
	return v.V
}

// scanAll renders every item of the table as JSON (binary attributes base64) for substring scans.
func (e *e2e) scanAll(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	p := dynamodb.NewScanPaginator(e.env.Clients.DynamoDB, &dynamodb.ScanInput{TableName: aws.String(e.env.Table), ConsistentRead: aws.Bool(true)})
	n := 0
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			var m map[string]any
			if err := attributevalue.UnmarshalMap(it, &m); err != nil {
				t.Fatal(err)
			}
			j, _ := json.Marshal(m)
			b.Write(j)
			b.WriteByte('\n')
			n++
		}
	}
	if n == 0 {
		t.Fatal("the table is empty: nothing to scan")
	}
	return b.String()
}

// TestLoggerIsDefault: libraries that log through slog's default logger must go through the redacting one.
func TestLoggerIsDefault(t *testing.T) {
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	log := logger()
	if got := slog.Default().Handler(); got != log.Handler() {
		t.Errorf("slog.Default().Handler() = %T, want the redacting logger's %T", got, log.Handler())
	}
}
