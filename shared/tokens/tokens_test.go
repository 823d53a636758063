package tokens

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/shared/table"
)

func TestPutTokenRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.store()
	ctx := t.Context()
	tok := f.grant(t)
	started := f.clock.Now().Add(-time.Second)
	f.sim.ResetCounters()

	if err := s.Put(ctx, "c1", tok, started); err != nil {
		t.Fatalf("Put() error = %v", err)
	}
	md, err := s.Metadata(ctx, "c1")
	if err != nil {
		t.Fatalf("Metadata(%q) error = %v", "c1", err)
	}
	want := Metadata{Scope: "read:jira-work offline_access", TokenType: "Bearer", Expiry: tok.Expiry,
		FamilyStartedAt: started, RefreshedAt: f.clock.Now(), Version: 1}
	if md.Scope != want.Scope || md.TokenType != want.TokenType || !md.Expiry.Equal(want.Expiry) ||
		!md.FamilyStartedAt.Equal(want.FamilyStartedAt) || !md.RefreshedAt.Equal(want.RefreshedAt) || md.Version != want.Version {
		t.Errorf("Metadata(%q) = %+v, want %+v", "c1", *md, want)
	}

	got, err := s.Token(ctx, "c1")
	if err != nil {
		t.Fatalf("Token(%q) error = %v", "c1", err)
	}
	if got.AccessToken != tok.AccessToken || !got.Expiry.Equal(tok.Expiry) || got.RefreshToken != "" {
		t.Errorf("Token(%q) = {access match %v, expiry %v, refresh %q}, want the stored access token, expiry %v, no refresh token",
			"c1", got.AccessToken == tok.AccessToken, got.Expiry, got.RefreshToken, tok.Expiry)
	}
	if sec := stored(t, s, "c1"); sec.RefreshToken != tok.RefreshToken {
		t.Errorf("stored refresh token differs from the one put")
	}
	if n := f.tokenPosts(); n != 0 {
		t.Errorf("token endpoint calls for a valid token = %d, want 0", n)
	}

	// The token works against the gateway through x/oauth2's transport.
	hc := oauth2.NewClient(ctx, s.TokenSource(ctx, "c1"))
	resp, err := hc.Get(f.sim.URL() + "/oauth/token/accessible-resources")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("accessible-resources via TokenSource = %d, want 200", resp.StatusCode)
	}

	// A re-authorisation replaces the record and its version keeps counting.
	tok2 := f.grant(t)
	if err := s.Put(ctx, "c1", tok2, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if md, err := s.Metadata(ctx, "c1"); err != nil || md.Version != 2 || !md.FamilyStartedAt.Equal(f.clock.Now()) {
		t.Errorf("Metadata after second Put = %+v, %v, want version 2 and family starting now", md, err)
	}
	if got, err := s.Token(ctx, "c1"); err != nil || got.AccessToken != tok2.AccessToken {
		t.Errorf("Token after second Put: error %v, want the new access token", err)
	}

	if err := s.Delete(ctx, "c1"); err != nil {
		t.Fatalf("Delete() error = %v", err)
	}
	if err := s.Delete(ctx, "c1"); err != nil {
		t.Errorf("second Delete() error = %v, want nil", err)
	}
	if _, err := s.Token(ctx, "c1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Token after Delete error = %v, want ErrNotFound", err)
	}
	if _, err := s.Metadata(ctx, "c1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Metadata after Delete error = %v, want ErrNotFound", err)
	}
}

func TestPutRejectsIncompleteTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.store()
	tests := []struct {
		name, connID string
		tok          *oauth2.Token
	}{
		{"no connection", "", &oauth2.Token{AccessToken: "a", RefreshToken: "r"}},
		{"nil token", "c", nil},
		{"no access token", "c", &oauth2.Token{RefreshToken: "r"}},
		{"no refresh token", "c", &oauth2.Token{AccessToken: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Put(t.Context(), tt.connID, tt.tok, time.Time{}); err == nil {
				t.Errorf("Put(%q, %v) = nil, want an error", tt.connID, tt.tok)
			}
		})
	}
}

// TestRecordBoundToConnection moves ciphertext between records: KMS's encryption context and GCM's additional
// data must both refuse.
func TestRecordBoundToConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.store()
	ctx := t.Context()
	if err := s.Put(ctx, "a", f.grant(t), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "b", f.grant(t), time.Time{}); err != nil {
		t.Fatal(err)
	}
	itemA, itemB := f.rawItem(t, "a"), f.rawItem(t, "b")

	tests := []struct {
		name   string
		target string
		build  func() map[string]ddbtypes.AttributeValue
	}{
		{"record copied to another connection", "x", func() map[string]ddbtypes.AttributeValue {
			return clone(itemA)
		}},
		{"data key swapped in from another connection", "a", func() map[string]ddbtypes.AttributeValue {
			m := clone(itemA)
			m["edk"] = itemB["edk"]
			return m
		}},
		{"ciphertext bit flipped", "a", func() map[string]ddbtypes.AttributeValue {
			m := clone(itemA)
			ct := bytes.Clone(m["ct"].(*ddbtypes.AttributeValueMemberB).Value)
			ct[0] ^= 1
			m["ct"] = &ddbtypes.AttributeValueMemberB{Value: ct}
			return m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item := tt.build()
			item["pk"] = table.S(table.ConnPK(tt.target))
			if _, err := f.env.Clients.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(f.env.Table), Item: item}); err != nil {
				t.Fatal(err)
			}
			tok, err := s.Token(ctx, tt.target)
			if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrReauthRequired) {
				t.Errorf("Token(%q) = %v, %v, want a decryption error", tt.target, tok, err)
			}
		})
	}
}

func TestNoPlaintextTokensAtRest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.store()
	ctx := t.Context()
	var secrets []string
	for _, id := range []string{"p1", "p2", "p3"} {
		tok := f.grant(t)
		secrets = append(secrets, tok.AccessToken, tok.RefreshToken)
		if err := s.Put(ctx, id, tok, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	f.expire()
	got, err := s.Token(ctx, "p1") // a rotation writes the record too
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, got.AccessToken, stored(t, s, "p1").RefreshToken)

	out, err := f.env.Clients.DynamoDB.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(f.env.Table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 3 {
		t.Fatalf("scan found %d items, want 3", len(out.Items))
	}
	for _, item := range out.Items {
		for name, v := range item {
			raw := attrBytes(v)
			for i, sec := range secrets {
				if bytes.Contains(raw, []byte(sec)) {
					t.Errorf("item %v attribute %s contains token #%d in plaintext", item["pk"], name, i)
				}
			}
		}
	}
}

func TestConcurrentRefreshRotatesOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	tok := f.grant(t)
	if err := f.store().Put(ctx, "c", tok, time.Time{}); err != nil {
		t.Fatal(err)
	}
	f.expire()
	f.sim.ResetCounters()

	const n = 20
	stores := make([]*Store, n)
	for i := range stores {
		stores[i] = f.store()
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		toks  = make([]*oauth2.Token, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			toks[i], errs[i] = stores[i].Token(ctx, "c")
		})
	}
	close(start)
	wg.Wait()

	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Token() in store %d error = %v", i, errs[i])
		}
		if toks[i].AccessToken != toks[0].AccessToken {
			t.Errorf("store %d got a different access token than store 0, want one rotation shared by all", i)
		}
	}
	if toks[0].AccessToken == tok.AccessToken {
		t.Error("Token() returned the expired access token, want a refreshed one")
	}
	c := f.sim.Counters()
	if got := c.Requests[atlassiansim.KeyToken]; got != 1 {
		t.Errorf("token endpoint calls = %d, want 1 (statuses %v)", got, c.Statuses[atlassiansim.KeyToken])
	}
	newRT := stored(t, stores[0], "c").RefreshToken
	if revoked, why := f.sim.FamilyRevoked(newRT); revoked || newRT == tok.RefreshToken {
		t.Errorf("after the refresh: family revoked = %v (%s), rotated = %v; want a live, rotated family", revoked, why, newRT != tok.RefreshToken)
	}
	if md, err := stores[0].Metadata(ctx, "c"); err != nil || md.Version != 3 {
		t.Errorf("Metadata().Version = %v, %v, want 3 (put, lease, rotation)", md, err)
	}
}

// TestRefreshAfterLeeway: each refresh stores the newest refresh token, so a refresh long after the last one
// (far outside the 10-minute reuse leeway) from a fresh process still succeeds.
func TestRefreshAfterLeeway(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	tok := f.grant(t)
	if err := f.store().Put(ctx, "c", tok, time.Time{}); err != nil {
		t.Fatal(err)
	}
	f.sim.ResetCounters()
	seen := map[string]bool{tok.AccessToken: true}
	for round := 1; round <= 3; round++ {
		f.expire()
		f.clock.Advance(atlassiansim.RefreshLeeway)
		got, err := f.store().Token(ctx, "c")
		if err != nil {
			t.Fatalf("round %d: Token() error = %v", round, err)
		}
		if seen[got.AccessToken] {
			t.Errorf("round %d: Token() returned an old access token", round)
		}
		seen[got.AccessToken] = true
		if !got.Expiry.Equal(f.clock.Now().Add(atlassiansim.AccessTokenTTL)) {
			t.Errorf("round %d: expiry = %v, want %v (store clock + expires_in)", round, got.Expiry, f.clock.Now().Add(time.Hour))
		}
	}
	if got := f.sim.Counters().Statuses[atlassiansim.KeyToken]; got[http.StatusOK] != 3 || len(got) != 1 {
		t.Errorf("token endpoint statuses = %v, want three 200s", got)
	}
	if revoked, why := f.sim.FamilyRevoked(tok.RefreshToken); revoked {
		t.Errorf("family revoked (%s), want alive", why)
	}
}

func TestRefreshWithoutRefreshTokenKeepsOld(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	s := f.store()
	tok := f.grant(t)
	if err := s.Put(ctx, "c", tok, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := f.sim.SetFault(atlassiansim.Fault{Endpoint: atlassiansim.KeyToken, Kind: atlassiansim.FaultNoRefreshToken, Count: 1}); err != nil {
		t.Fatal(err)
	}
	f.expire()
	got, err := s.Token(ctx, "c")
	if err != nil || got.AccessToken == tok.AccessToken {
		t.Fatalf("Token() = %v, want a new access token", err)
	}
	if sec := stored(t, s, "c"); sec.RefreshToken != tok.RefreshToken || sec.AccessToken != got.AccessToken {
		t.Errorf("stored pair after a refresh without refresh_token: refresh kept = %v, access updated = %v; want both",
			sec.RefreshToken == tok.RefreshToken, sec.AccessToken == got.AccessToken)
	}
	// The kept token is still the family's current one, so the next refresh (past the leeway) rotates normally.
	f.expire()
	f.clock.Advance(atlassiansim.RefreshLeeway)
	if _, err := f.store().Token(ctx, "c"); err != nil {
		t.Fatalf("Token() after the kept refresh token error = %v", err)
	}
	if sec := stored(t, s, "c"); sec.RefreshToken == tok.RefreshToken {
		t.Error("refresh token not rotated by the following refresh")
	}
}

func TestRevokedGrantRequiresReauth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	family := f.clock.Now().Add(-time.Hour).UTC()
	if err := f.store().Put(ctx, "c", f.grant(t), family); err != nil {
		t.Fatal(err)
	}
	if err := f.sim.RevokeGrant(f.account); err != nil {
		t.Fatal(err)
	}
	f.expire()
	f.sim.ResetCounters()

	const n = 5
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		s := f.store()
		wg.Go(func() { _, errs[i] = s.Token(ctx, "c") })
	}
	wg.Wait()
	sawCause := false
	for i, err := range errs {
		if !errors.Is(err, ErrReauthRequired) {
			t.Errorf("Token() #%d error = %v, want ErrReauthRequired", i, err)
		}
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" && re.Response.StatusCode == http.StatusForbidden {
			sawCause = true
		}
	}
	if !sawCause {
		t.Error("no caller's error wraps the 403 invalid_grant *oauth2.RetrieveError")
	}
	// Later callers learn it from the record, without asking Atlassian again.
	s := f.store()
	if _, err := s.Token(ctx, "c"); !errors.Is(err, ErrReauthRequired) {
		t.Errorf("Token() after the rejection error = %v, want ErrReauthRequired", err)
	}
	if _, err := s.Metadata(ctx, "c"); !errors.Is(err, ErrReauthRequired) {
		t.Errorf("Metadata() after the rejection error = %v, want ErrReauthRequired", err)
	}
	if got := f.tokenPosts(); got != 1 {
		t.Errorf("token endpoint calls = %d, want 1 (invalid_grant is never retried)", got)
	}
	// The callback learns which grant died, so it can ignore the report once a newer grant exists.
	if got := f.reauth.list(); len(got) != 1 || got[0].connID != "c" || got[0].reason != "invalid_grant" ||
		!got[0].grantStartedAt.Equal(family) {
		t.Errorf("reauth callback calls = %v, want one for connection c, invalid_grant, grant started %v", got, family)
	}
	for _, a := range []string{"edk", "ct", "nonce", "leaseOwner"} {
		if _, ok := f.rawItem(t, "c")[a]; ok {
			t.Errorf("tombstone keeps attribute %s, want it removed", a)
		}
	}

	// Consent again: the new grant replaces the tombstone.
	tok := f.grant(t)
	if err := s.Put(ctx, "c", tok, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Token(ctx, "c"); err != nil || got.AccessToken != tok.AccessToken {
		t.Errorf("Token() after re-consent error = %v, want the new access token", err)
	}
}

// TestFailedReauthCallbackIsRetried: the tombstone stops further exchanges, so the callback is the only way the
// connection learns its grant died; a failed one must be tried again by a later caller.
func TestFailedReauthCallbackIsRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fail      int // failing callback calls
		wantCalls []int
	}{
		{"first call succeeds", 0, []int{1, 1, 1}},
		{"first call fails", 1, []int{1, 2, 2}},
		{"first two calls fail", 2, []int{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.reauth.fail = tt.fail
			family := f.clock.Now().Add(-time.Hour).UTC()
			s := f.store()
			if err := s.Put(t.Context(), "c", f.grant(t), family); err != nil {
				t.Fatal(err)
			}
			if err := f.sim.RevokeGrant(f.account); err != nil {
				t.Fatal(err)
			}
			f.expire()
			f.sim.ResetCounters()
			for i, want := range tt.wantCalls {
				if i > 0 {
					f.clock.Advance(writeTimeout) // past the time the callback before had to finish
				}
				if _, err := s.Token(t.Context(), "c"); !errors.Is(err, ErrReauthRequired) {
					t.Fatalf("Token() #%d error = %v, want ErrReauthRequired", i+1, err)
				}
				calls := f.reauth.list()
				if len(calls) != want {
					t.Fatalf("after Token() #%d: %d callback calls, want %d", i+1, len(calls), want)
				}
				if last := calls[len(calls)-1]; last.connID != "c" || last.reason != "invalid_grant" || !last.grantStartedAt.Equal(family) {
					t.Errorf("callback call %+v, want connection c, invalid_grant, grant started %v", last, family)
				}
			}
			if n := f.tokenPosts(); n != 1 {
				t.Errorf("token endpoint calls = %d, want 1 (retrying the callback never asks Atlassian again)", n)
			}
		})
	}
}

func TestRefreshRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		faults    []atlassiansim.Fault
		wantPosts int64
		wantErr   bool
	}{
		{"503 twice then success", []atlassiansim.Fault{{Kind: atlassiansim.FaultStatus, Status: 503, Count: 2}}, 3, false},
		{"500 once", []atlassiansim.Fault{{Kind: atlassiansim.FaultStatus, Status: 500, Count: 1}}, 2, false},
		{"429 once", []atlassiansim.Fault{{Kind: atlassiansim.FaultRateLimit, Count: 1}}, 2, false},
		{"connection reset", []atlassiansim.Fault{{Kind: atlassiansim.FaultReset, Count: 1}}, 2, false},
		// The server rotated but the answer was lost: the retry re-sends the same refresh token inside the leeway.
		{"answer lost after rotation", []atlassiansim.Fault{{Kind: atlassiansim.FaultTruncate, Count: 1}}, 2, false},
		{"timeout", []atlassiansim.Fault{{Kind: atlassiansim.FaultLatency, Latency: atlassiansim.Duration(5 * time.Second), Count: 1}}, 2, false},
		{"503 until attempts run out", []atlassiansim.Fault{{Kind: atlassiansim.FaultStatus, Status: 503}}, 4, true},
		{"400 is not retried", []atlassiansim.Fault{{Kind: atlassiansim.FaultStatus, Status: 400}}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			ctx := t.Context()
			s := f.store(WithRetryPolicy(RetryPolicy{BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond,
				AttemptTimeout: 500 * time.Millisecond}))
			tok := f.grant(t)
			if err := s.Put(ctx, "c", tok, time.Time{}); err != nil {
				t.Fatal(err)
			}
			f.expire()
			f.sim.ResetCounters()
			for _, fl := range tt.faults {
				fl.Endpoint = atlassiansim.KeyToken
				if err := f.sim.SetFault(fl); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Token(ctx, "c")
			if posts := f.tokenPosts(); posts != tt.wantPosts {
				t.Errorf("token endpoint calls = %d, want %d", posts, tt.wantPosts)
			}
			if tt.wantErr {
				if err == nil || errors.Is(err, ErrReauthRequired) {
					t.Errorf("Token() error = %v, want a non-reauth failure", err)
				}
				if _, held := f.rawItem(t, "c")["leaseOwner"]; held {
					t.Error("lease still held after a failed refresh, want it released")
				}
				if len(f.reauth.list()) != 0 {
					t.Errorf("reauth callback called for a transient failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			sec := stored(t, s, "c")
			if sec.AccessToken != got.AccessToken || sec.RefreshToken == tok.RefreshToken {
				t.Error("stored pair is not the rotated one returned")
			}
			if revoked, why := f.sim.FamilyRevoked(sec.RefreshToken); revoked {
				t.Errorf("family revoked (%s), want alive", why)
			}
		})
	}
}

func TestLeases(t *testing.T) {
	t.Parallel()
	t.Run("expired lease of a crashed refresher is taken over", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		s := f.store()
		tok := f.grant(t)
		if err := s.Put(t.Context(), "c", tok, time.Time{}); err != nil {
			t.Fatal(err)
		}
		f.expire()
		f.setLease(t, "c", "crashed", f.clock.Now().Add(-time.Second))
		f.sim.ResetCounters()
		got, err := s.Token(t.Context(), "c")
		if err != nil || got.AccessToken == tok.AccessToken {
			t.Fatalf("Token() error = %v, want a refreshed token", err)
		}
		if n := f.tokenPosts(); n != 1 {
			t.Errorf("token endpoint calls = %d, want 1", n)
		}
	})
	t.Run("live lease and a token that still works", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		s := f.store()
		tok := f.grant(t)
		if err := s.Put(t.Context(), "c", tok, time.Time{}); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(57 * time.Minute) // inside the 5-minute refresh-ahead window, 3 minutes left
		f.setLease(t, "c", "busy", f.clock.Now().Add(20*time.Second))
		f.sim.ResetCounters()
		got, err := s.Token(t.Context(), "c")
		if err != nil || got.AccessToken != tok.AccessToken {
			t.Fatalf("Token() error = %v, want the current token without waiting", err)
		}
		if n := f.tokenPosts(); n != 0 {
			t.Errorf("token endpoint calls = %d, want 0", n)
		}
	})
	t.Run("refresher persisted between read and lease", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		winner, late := f.store(), f.store()
		if err := winner.Put(t.Context(), "c", f.grant(t), time.Time{}); err != nil {
			t.Fatal(err)
		}
		f.expire()
		f.setLease(t, "c", "expired", f.clock.Now().Add(-time.Second))
		f.sim.ResetCounters()
		var winnerTok *oauth2.Token
		var once sync.Once
		late.afterRead = func() {
			once.Do(func() {
				var err error
				if winnerTok, err = winner.Token(t.Context(), "c"); err != nil {
					t.Errorf("winner Token() error = %v", err)
				}
			})
		}
		got, err := late.Token(t.Context(), "c")
		if err != nil {
			t.Fatalf("Token() error = %v", err)
		}
		if winnerTok == nil || got.AccessToken != winnerTok.AccessToken {
			t.Error("late caller did not return the winner's token, want the version check to stop a second rotation")
		}
		if n := f.tokenPosts(); n != 1 {
			t.Errorf("token endpoint calls = %d, want 1", n)
		}
	})
}

// TestLeaseResponseLost: the lease write reaches DynamoDB but its response does not, so the SDK sends it again
// and that retry fails the condition against the lease it just took.
func TestLeaseResponseLost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	lossy := &loseFirstResponse{match: []byte(`":leaseOwner"`)}
	db := dynamodb.NewFromConfig(f.env.AWS, func(o *dynamodb.Options) {
		lossy.next = o.HTTPClient
		o.HTTPClient = lossy
	})
	// A short lease bounds the test without the fix: the caller would wait out its own lease, then give up.
	s := f.storeOn(db, WithLeaseDuration(2*time.Second))
	tok := f.grant(t)
	if err := s.Put(t.Context(), "c", tok, time.Time{}); err != nil {
		t.Fatal(err)
	}
	f.expire()
	f.sim.ResetCounters()
	got, err := s.Token(t.Context(), "c")
	if err != nil || got.AccessToken == tok.AccessToken {
		t.Fatalf("Token() error = %v, want a refreshed token", err)
	}
	if !lossy.lost.Load() {
		t.Fatal("no lease response was lost; the test did not exercise the retry")
	}
	if n := f.tokenPosts(); n != 1 {
		t.Errorf("token endpoint calls = %d, want 1", n)
	}
	if _, ok := f.rawItem(t, "c")["leaseOwner"]; ok {
		t.Error("lease still held after the refresh, want it gone with the persisted pair")
	}
}

// loseFirstResponse sends the first request whose body contains match, then reports a lost connection instead
// of its response.
type loseFirstResponse struct {
	next  aws.HTTPClient
	match []byte
	lost  atomic.Bool
}

func (l *loseFirstResponse) Do(req *http.Request) (*http.Response, error) {
	if l.lost.Load() || req.Body == nil {
		return l.next.Do(req)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	if !bytes.Contains(body, l.match) || !l.lost.CompareAndSwap(false, true) {
		return l.next.Do(req)
	}
	resp, err := l.next.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return nil, errors.New("read tcp: connection reset by peer")
}

func clone(m map[string]ddbtypes.AttributeValue) map[string]ddbtypes.AttributeValue {
	out := make(map[string]ddbtypes.AttributeValue, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// attrBytes flattens an attribute to bytes for a plaintext search.
func attrBytes(v ddbtypes.AttributeValue) []byte {
	switch v := v.(type) {
	case *ddbtypes.AttributeValueMemberS:
		return []byte(v.Value)
	case *ddbtypes.AttributeValueMemberN:
		return []byte(v.Value)
	case *ddbtypes.AttributeValueMemberB:
		return v.Value
	case *ddbtypes.AttributeValueMemberM:
		var b []byte
		for _, e := range v.Value {
			b = append(append(b, attrBytes(e)...), 0)
		}
		return b
	case *ddbtypes.AttributeValueMemberL:
		var b []byte
		for _, e := range v.Value {
			b = append(append(b, attrBytes(e)...), 0)
		}
		return b
	}
	return nil
}
