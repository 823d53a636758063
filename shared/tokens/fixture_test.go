package tokens

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/stacktest"
	"jiraexport/shared/table"
)

const testRedirect = "http://127.0.0.1:1/oauth/callback"

// fixture is one test's table and key on the local AWS stack plus its own Atlassian simulator, whose manual
// clock is also the stores' clock.
type fixture struct {
	env     *stacktest.Env
	sim     *atlassiansim.Server
	clock   *atlassiansim.ManualClock
	cfg     *oauth2.Config
	account string
	reauth  *reauthRecorder
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := stacktest.New(t)
	clock := atlassiansim.NewManualClock(time.Now().UTC().Truncate(time.Second))
	sim, err := atlassiansim.New(atlassiansim.Config{Seed: 7, Sites: 1, ProjectsPerSite: 1, IssuesPerProject: 1, Users: 2,
		Clock: clock, TestControls: true, RedirectURIs: []string{testRedirect}})
	if err != nil {
		t.Fatal(err)
	}
	base, err := sim.Start(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return &fixture{
		env: env, sim: sim, clock: clock,
		cfg: &oauth2.Config{ClientID: "sim-client-id", ClientSecret: "sim-client-secret", RedirectURL: testRedirect,
			Scopes:   []string{"read:jira-work", "offline_access"},
			Endpoint: oauth2.Endpoint{AuthURL: base + "/authorize", TokenURL: base + "/oauth/token"}},
		account: sim.ConsentingUsers()[0].AccountID,
		reauth:  &reauthRecorder{},
	}
}

// store returns a Store with its own SDK clients and HTTP client, as a separate Lambda would have.
func (f *fixture) store(opts ...Option) *Store {
	return f.storeOn(dynamodb.NewFromConfig(f.env.AWS), opts...)
}

// storeOn is store with the given DynamoDB client.
func (f *fixture) storeOn(db *dynamodb.Client, opts ...Option) *Store {
	base := []Option{
		WithClock(f.clock.Now),
		WithGrantReauthCallback(f.reauth.record),
		WithHTTPClient(&http.Client{Timeout: 10 * time.Second}),
		WithRetryPolicy(RetryPolicy{BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}),
	}
	return NewStore(db, kms.NewFromConfig(f.env.AWS), f.env.Table, f.env.KeyARN, f.cfg, append(base, opts...)...)
}

// grant issues a token pair through the simulator's consent and code exchange, as the OAuth function gets it.
func (f *fixture) grant(t *testing.T) *oauth2.Token {
	t.Helper()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
		f.cfg.AuthCodeURL("state-1", oauth2.SetAuthURLParam("audience", "api.atlassian.com")), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Sim-Consent", "accept")
	req.Header.Set("X-Sim-User", f.account)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("consent redirect = %d %q, want a code", resp.StatusCode, resp.Header.Get("Location"))
	}
	cfg := *f.cfg
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	tok, err := cfg.Exchange(t.Context(), loc.Query().Get("code"))
	if err != nil {
		t.Fatalf("Exchange() error = %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("Exchange() returned no refresh token")
	}
	tok.Expiry = f.clock.Now().Add(time.Hour)
	return tok
}

// expire moves the clock past the access token's lifetime.
func (f *fixture) expire() { f.clock.Advance(atlassiansim.AccessTokenTTL + time.Minute) }

func (f *fixture) tokenPosts() int64 { return f.sim.Counters().Requests[atlassiansim.KeyToken] }

// stored decrypts a connection's record (test-only look behind the API).
func stored(t *testing.T, s *Store, connID string) secret {
	t.Helper()
	rec, err := s.get(t.Context(), connID)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := s.open(t.Context(), connID, rec.env)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func (f *fixture) rawItem(t *testing.T, connID string) map[string]ddbtypes.AttributeValue {
	t.Helper()
	out, err := f.env.Clients.DynamoDB.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName: aws.String(f.env.Table), Key: key(connID), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

// setLease writes a lease as if another refresher held it.
func (f *fixture) setLease(t *testing.T, connID, owner string, until time.Time) {
	t.Helper()
	u := newUpdate()
	u.set("leaseOwner", "leaseOwner", table.S(owner))
	u.set("leaseUntil", "leaseUntil", table.N(until.UnixMilli()))
	u.bumpVersion(false)
	if _, err := f.env.Clients.DynamoDB.UpdateItem(t.Context(), u.input(f.env.Table, connID)); err != nil {
		t.Fatal(err)
	}
}

type reauthCall struct {
	connID, reason string
	grantStartedAt time.Time
}

type reauthRecorder struct {
	mu    sync.Mutex
	calls []reauthCall
	fail  int // how many calls, from the first, fail
}

func (r *reauthRecorder) record(_ context.Context, connID, reason string, grantStartedAt time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, reauthCall{connID, reason, grantStartedAt})
	if len(r.calls) <= r.fail {
		return errors.New("connections table unavailable")
	}
	return nil
}

func (r *reauthRecorder) list() []reauthCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]reauthCall(nil), r.calls...)
}
