package tokens

// These benchmarks talk to local servers on loopback, on purpose: KMS (moto) and DynamoDB Local from the shared
// stack that infra/stacktest starts, and an Atlassian simulator. The figures are therefore round trips to
// emulators (HTTP, SigV4, JSON, AES-GCM), not AWS latencies; they compare versions of this package, and show
// which call dominates each path.

import (
	"testing"
	"time"

	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/stacktest"
)

// newBenchFixture is newFixture for a benchmark (newFixture and grant take *testing.T): its own table and key,
// and a one-issue simulator whose manual clock is the stores' clock, so no token expires while measuring.
func newBenchFixture(b *testing.B) *fixture {
	b.Helper()
	env := stacktest.New(b)
	clock := atlassiansim.NewManualClock(time.Now().UTC().Truncate(time.Second))
	sim, err := atlassiansim.New(atlassiansim.Config{Seed: 7, Sites: 1, ProjectsPerSite: 1, IssuesPerProject: 1, Users: 2,
		Clock: clock, RedirectURIs: []string{testRedirect}})
	if err != nil {
		b.Fatal(err)
	}
	base, err := sim.Start(b.Context(), "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sim.Close() })
	return &fixture{
		env: env, sim: sim, clock: clock,
		cfg: &oauth2.Config{ClientID: "sim-client-id", ClientSecret: "sim-client-secret", RedirectURL: testRedirect,
			Scopes:   []string{"read:jira-work", "offline_access"},
			Endpoint: oauth2.Endpoint{AuthURL: base + "/authorize", TokenURL: base + "/oauth/token"}},
		account: sim.ConsentingUsers()[0].AccountID,
		reauth:  &reauthRecorder{},
	}
}

// benchGrant issues a token pair straight from the simulator (the consent flow is not what is measured) in the
// shape the OAuth function's code exchange hands to Put.
func (f *fixture) benchGrant(b *testing.B) *oauth2.Token {
	b.Helper()
	tr, err := f.sim.IssueTokens(f.account, f.cfg.Scopes...)
	if err != nil {
		b.Fatal(err)
	}
	tok := &oauth2.Token{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, TokenType: tr.TokenType,
		Expiry: f.clock.Now().Add(time.Duration(tr.ExpiresIn) * time.Second)}
	return tok.WithExtra(map[string]any{"scope": tr.Scope})
}

// BenchmarkPut is one envelope encryption (KMS GenerateDataKey, AES-GCM) and one DynamoDB UpdateItem per op:
// a re-authorisation replacing the connection's record.
func BenchmarkPut(b *testing.B) {
	f := newBenchFixture(b)
	s := f.store()
	ctx := b.Context()
	tok := f.benchGrant(b)
	// The first Put opens the connections to KMS and DynamoDB and meets a cold table: keep it out of the figure.
	if err := s.Put(ctx, "bench", tok, time.Time{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Put(ctx, "bench", tok, time.Time{}); err != nil {
			b.Fatalf("Put(%q) error = %v", "bench", err)
		}
	}
	if md, err := s.Metadata(ctx, "bench"); err != nil || md.Version != int64(b.N)+1 {
		b.Fatalf("Metadata(%q) = %+v, %v, want version %d", "bench", md, err, b.N+1)
	}
}

// BenchmarkTokenCached is Token on a fresh, valid token: one GetItem, one KMS Decrypt and an AES-GCM open per
// op, and no call to Atlassian.
func BenchmarkTokenCached(b *testing.B) {
	f := newBenchFixture(b)
	s := f.store()
	ctx := b.Context()
	tok := f.benchGrant(b)
	if err := s.Put(ctx, "bench", tok, time.Time{}); err != nil {
		b.Fatal(err)
	}
	f.sim.ResetCounters()
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.Token(ctx, "bench")
		if err != nil || got.AccessToken != tok.AccessToken {
			b.Fatalf("Token(%q) error = %v, same access token = %v, want the stored one", "bench", err, err == nil && got.AccessToken == tok.AccessToken)
		}
	}
	if n := f.tokenPosts(); n != 0 {
		b.Fatalf("token endpoint calls = %d, want 0 for a valid token", n)
	}
}

// BenchmarkRefresh forces a refresh on every op: a refresh-ahead window longer than the access token's lifetime
// makes every Token call take the lease (UpdateItem), decrypt the record, exchange the refresh token at the
// simulator (rotation) and persist the new pair (GenerateDataKey, UpdateItem). The clock stands still, so the
// refresh family's inactivity and absolute expiries never end the run, however many ops it takes.
func BenchmarkRefresh(b *testing.B) {
	f := newBenchFixture(b)
	s := f.store(WithRefreshAhead(2 * atlassiansim.AccessTokenTTL))
	ctx := b.Context()
	tok := f.benchGrant(b)
	if err := s.Put(ctx, "bench", tok, time.Time{}); err != nil {
		b.Fatal(err)
	}
	f.sim.ResetCounters()
	prev := tok.AccessToken
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.Token(ctx, "bench")
		if err != nil || got.AccessToken == prev {
			b.Fatalf("Token(%q) error = %v, rotated = %v, want a new access token", "bench", err, err == nil && got.AccessToken != prev)
		}
		prev = got.AccessToken
	}
	if n := f.tokenPosts(); n != int64(b.N) {
		b.Fatalf("token endpoint calls = %d, want %d (one per op)", n, b.N)
	}
	rec, err := s.get(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	sec, err := s.open(ctx, "bench", rec.env)
	if err != nil {
		b.Fatal(err)
	}
	if sec.RefreshToken == tok.RefreshToken {
		b.Fatal("stored refresh token did not rotate")
	}
	if revoked, why := f.sim.FamilyRevoked(sec.RefreshToken); revoked {
		b.Fatalf("refresh family revoked after %d refreshes: %s", b.N, why)
	}
	if calls := f.reauth.list(); len(calls) != 0 {
		b.Fatalf("re-authorisation callbacks = %v, want none", calls)
	}
}
