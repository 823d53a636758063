package connectorsapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/stacktest"
	"jiraexport/shared/access"
	"jiraexport/shared/apikeys"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/connectorsapi"
	"jiraexport/shared/erasure"
	"jiraexport/shared/jira"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/ratebudget"
	"jiraexport/shared/tokens"
)

// world is one isolated table, one simulator and two connections (a and b), each with an API key.
type world struct {
	t      *testing.T
	env    *stacktest.Env
	sim    *atlassiansim.Server
	simURL string
	conns  *connections.Store
	keys   *apikeys.Store
	tok    *tokens.Store
	store  *connectors.Store
	base   string // API base URL (httptest server or the emulated HTTP API)
	a, b   party
	sites  []atlassiansim.Site
	// clock, when set, is the API's time (scheduling); otherwise it is time.Now.
	clock atomic.Pointer[time.Time]
	// settle is the erasure's wait for writers that were running at the fence (none in most tests).
	settle atomic.Int64
	// exports records the export invocations the API makes (the Invoker port; shared/invoke in production).
	exports exports
}

func (w *world) now() time.Time {
	if t := w.clock.Load(); t != nil {
		return *t
	}
	return time.Now()
}

// eraserFunc adapts a function to the API's Eraser port.
type eraserFunc func(ctx context.Context, r erasure.Request) (*erasure.Report, error)

func (f eraserFunc) Erase(ctx context.Context, r erasure.Request) (*erasure.Report, error) {
	return f(ctx, r)
}

// eraser is the erasure core as functions/connectors wires it, with the world's settle and clock.
func (w *world) eraser() connectorsapi.Eraser {
	return eraserFunc(func(ctx context.Context, r erasure.Request) (*erasure.Report, error) {
		return erasure.New(erasure.Config{
			DB: w.env.Clients.DynamoDB, S3: w.env.Clients.S3, Table: w.env.Table, Bucket: w.env.Bucket,
			Connections: w.conns, Runs: w.store, Now: w.now, Settle: time.Duration(w.settle.Load()), StopMargin: time.Second,
		}).Erase(ctx, r)
	})
}

type exports struct {
	mu   sync.Mutex
	refs []connectors.RunRef
	fail atomic.Bool
}

func (e *exports) Invoke(_ context.Context, ref connectors.RunRef) error {
	if e.fail.Load() {
		return errors.New("lambda unavailable")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refs = append(e.refs, ref)
	return nil
}

func (e *exports) take() []connectors.RunRef {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.refs
	e.refs = nil
	return out
}

type party struct {
	connID string
	key    string
	keyID  string
	tok    *oauth2.Token // as first stored
}

func newSim(t *testing.T) (*atlassiansim.Server, string) {
	t.Helper()
	sim, err := atlassiansim.New(atlassiansim.Config{Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	u, err := sim.Start(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim, u
}

func oauthConfig(simURL string) *oauth2.Config {
	return &oauth2.Config{ClientID: "sim-client-id", ClientSecret: "sim-client-secret",
		Endpoint: oauth2.Endpoint{AuthURL: simURL + "/authorize", TokenURL: simURL + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// newWorld seeds the stores; serve (when nil: in-process httptest) returns the API's base URL.
func newWorld(t *testing.T, serve func(w *world) string) *world {
	t.Helper()
	env := stacktest.New(t, stacktest.Options{SecretValues: map[string]string{"AtlassianClientSecret": "sim-client-secret"}})
	sim, simURL := newSim(t)
	db := env.Clients.DynamoDB
	w := &world{t: t, env: env, sim: sim, simURL: simURL, sites: sim.Sites(),
		conns: connections.NewStore(db, env.Table), keys: apikeys.NewStore(db, env.Table),
		store: connectors.NewStore(db, env.Table)}
	w.settle.Store(int64(time.Nanosecond))
	// The token store as functions/connectors builds it: a rejected grant flags the connection and cancels its runs.
	w.tok = access.Tokens(access.Config{DB: db, KMS: kms.NewFromConfig(env.AWS), Table: env.Table,
		TokenKeyID: env.TokenKeyARN, OAuth: oauthConfig(simURL)})
	w.a = w.seed(w.sites[0], w.sites[1])
	w.b = w.seed(w.sites[0])
	if serve == nil {
		srv := httptest.NewServer(w.handler())
		t.Cleanup(srv.Close)
		w.base = srv.URL
	} else {
		w.base = serve(w)
	}
	return w
}

func (w *world) handler() http.Handler {
	db := w.env.Clients.DynamoDB
	return connectorsapi.New(connectorsapi.Config{
		Keys: w.keys, Connections: w.conns, Tokens: connectorsapi.TokenStore{S: w.tok},
		Reauth: oauthstate.NewStore(db, w.env.Table), Store: w.store,
		// As functions/connectors wires it: the API's own Jira calls record their points in the ledger.
		JiraFor: func(connID string, ts oauth2.TokenSource) connectorsapi.Jira {
			return jira.New(w.simURL, ts, jira.Options{Timeout: 5 * time.Second,
				Observe: connectorsapi.RecordPoints(ratebudget.NewLedger(db, w.env.Table), connID, nil, nil)})
		},
		Eraser:        w.eraser(),
		Exports:       &w.exports,
		Usage:         ratebudget.NewLedger(db, w.env.Table),
		PublicBaseURL: "https://api.example.test",
		Now:           w.now,
	})
}

// seed creates a connection on sites with tokens from the simulator and an API key, as the OAuth callback does.
func (w *world) seed(sites ...atlassiansim.Site) party {
	t := w.t
	ctx := t.Context()
	granted := time.Now().UTC()
	c := &connections.Connection{ID: connections.NewID(), Status: connections.StatusActive, GrantStartedAt: granted}
	for _, s := range sites {
		c.Sites = append(c.Sites, connections.Site{CloudID: s.CloudID, URL: s.URL, Name: s.Name, Scopes: []string{"read:jira-work", "offline_access"}})
	}
	if err := w.conns.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	tr, err := w.sim.IssueTokens(w.sim.ConsentingUsers()[0].AccountID, "read:jira-work", "read:jira-user", "offline_access")
	if err != nil {
		t.Fatal(err)
	}
	tok := &oauth2.Token{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, TokenType: "Bearer",
		Expiry: time.Now().Add(time.Duration(tr.ExpiresIn) * time.Second)}
	tok = tok.WithExtra(map[string]any{"scope": tr.Scope})
	if err := w.tok.Put(ctx, c.ID, tok, granted); err != nil {
		t.Fatal(err)
	}
	plain, k, err := w.keys.Issue(ctx, c.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	return party{connID: c.ID, key: plain, keyID: k.ID, tok: tok}
}

// resp is a response, already checked against the OpenAPI description.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

func (r resp) str(t *testing.T, field string) string {
	t.Helper()
	s, _ := r.json(t)[field].(string)
	return s
}

// fields returns the field names of a problem's errors, sorted.
func (r resp) fields(t *testing.T) []string {
	t.Helper()
	var p struct {
		Errors []struct{ Field string } `json:"errors"`
	}
	_ = json.Unmarshal(r.body, &p)
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	sort.Strings(out)
	return out
}

// req describes one call. body may be a string (sent as is) or a value (JSON-encoded).
type req struct {
	method, path string
	key          string
	body         any
	header       map[string]string
}

func (w *world) do(r req) resp {
	w.t.Helper()
	var rd io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			w.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	hr, err := http.NewRequestWithContext(w.t.Context(), r.method, w.base+r.path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	if rd != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.key != "" {
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	for k, v := range r.header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		w.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, header: res.Header, body: body}
	checkResponse(w.t, r.method, r.path, out)
	return out
}

func (w *world) expect(r req, status int) resp {
	w.t.Helper()
	got := w.do(r)
	if got.status != status {
		w.t.Fatalf("%s %s = %d %s, want %d", r.method, r.path, got.status, got.body, status)
	}
	return got
}

// scan returns every item of the table, canonically encoded, to compare before and after.
func (w *world) scan() string {
	w.t.Helper()
	var rows []string
	var start map[string]types.AttributeValue
	for {
		out, err := w.env.Clients.DynamoDB.Scan(w.t.Context(), &dynamodb.ScanInput{TableName: aws.String(w.env.Table), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true)})
		if err != nil {
			w.t.Fatal(err)
		}
		for _, it := range out.Items {
			rows = append(rows, canonical(it))
		}
		if out.LastEvaluatedKey == nil {
			break
		}
		start = out.LastEvaluatedKey
	}
	sort.Strings(rows)
	return strings.Join(rows, "\n")
}

func canonical(it map[string]types.AttributeValue) string {
	keys := make([]string, 0, len(it))
	for k := range it {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		j, _ := json.Marshal(avJSON(it[k]))
		b.WriteString(k + "=" + string(j) + ";")
	}
	return b.String()
}

func avJSON(v types.AttributeValue) any {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return "N" + v.Value
	case *types.AttributeValueMemberBOOL:
		return v.Value
	case *types.AttributeValueMemberB:
		return v.Value
	case *types.AttributeValueMemberL:
		out := make([]any, len(v.Value))
		for i, x := range v.Value {
			out[i] = avJSON(x)
		}
		return out
	case *types.AttributeValueMemberM:
		out := map[string]any{}
		for k, x := range v.Value {
			out[k] = avJSON(x)
		}
		return out
	case *types.AttributeValueMemberSS:
		return v.Value
	case *types.AttributeValueMemberNULL:
		return nil
	}
	return "?"
}

func (w *world) connectorBody(name string, site atlassiansim.Site) map[string]any {
	return map[string]any{
		"name": name, "siteId": site.CloudID, "jql": "project = " + site.Projects[0].Key,
		"schedule": map[string]any{"expression": "rate(1 hour)", "timezone": "Europe/Paris"},
		"include":  map[string]any{"comments": true, "attachments": map[string]any{"enabled": true, "mediaTypes": []string{"image/*"}}},
		"formats":  []string{"json", "markdown"},
	}
}
