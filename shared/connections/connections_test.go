package connections_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"jiraexport/infra/stacktest"
	"jiraexport/shared/connections"
	"jiraexport/shared/table"
)

func newStore(t *testing.T) *connections.Store {
	t.Helper()
	env := stacktest.New(t)
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	return connections.NewStore(env.Clients.DynamoDB, env.Table, table.WithClock(func() time.Time {
		now = now.Add(time.Minute)
		return now
	}))
}

func TestCreateGet(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	sites := []connections.Site{{CloudID: "c1", URL: "https://a.atlassian.net", Name: "A", Scopes: []string{"read:jira-work"}}}
	c := &connections.Connection{Sites: sites}
	if err := s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	if len(c.ID) != 26 || c.Status != connections.StatusActive || c.CreatedAt.IsZero() || !c.GrantStartedAt.Equal(c.CreatedAt) {
		t.Errorf("Create filled %+v, want a 26-char id, active, times set", c)
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != c.ID || got.Status != connections.StatusActive || len(got.Sites) != 1 || got.Sites[0].CloudID != "c1" ||
		got.Sites[0].Scopes[0] != "read:jira-work" || !got.CreatedAt.Equal(c.CreatedAt) || got.Version != 1 {
		t.Errorf("Get = %+v, want %+v", got, c)
	}
	if err := s.Create(ctx, &connections.Connection{ID: c.ID}); !errors.Is(err, connections.ErrExists) {
		t.Errorf("Create(same id) = %v, want ErrExists", err)
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, connections.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, ""); !errors.Is(err, connections.ErrNotFound) {
		t.Errorf("Get(empty) = %v, want ErrNotFound", err)
	}
}

// Two account fingerprints (shared/fingerprint's shape; the store treats them as opaque).
const (
	fpA = "v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	fpB = "v1:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
)

func TestReauthLifecycle(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	c := &connections.Connection{Sites: []connections.Site{{CloudID: "old"}}, AccountFingerprint: fpA}
	if err := s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, c.ID); got.AccountFingerprint != fpA {
		t.Errorf("AccountFingerprint after Create = %q, want %q", got.AccountFingerprint, fpA)
	}
	if err := s.MarkGrantReauthRequired(ctx, c.ID, "invalid_grant", time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, c.ID)
	if got.Status != connections.StatusReauthRequired || got.StatusReason != "invalid_grant" || got.Version != 2 {
		t.Errorf("after MarkGrantReauthRequired: %+v, want reauth_required, invalid_grant, v2", got)
	}

	start := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	// Another account's grant changes nothing.
	for _, fp := range []string{fpB, ""} {
		if _, err := s.Reauthorize(ctx, c.ID, []connections.Site{{CloudID: "theirs"}}, start, fp); !errors.Is(err, connections.ErrAccountMismatch) {
			t.Errorf("Reauthorize(fingerprint %q) = %v, want ErrAccountMismatch", fp, err)
		}
	}
	if got, _ := s.Get(ctx, c.ID); got.Status != connections.StatusReauthRequired || len(got.Sites) != 1 ||
		got.Sites[0].CloudID != "old" || got.Version != 2 {
		t.Errorf("after refused Reauthorize: %+v, want it unchanged", got)
	}
	// A connection without a fingerprint cannot be matched by anyone.
	bare := &connections.Connection{}
	if err := s.Create(ctx, bare); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reauthorize(ctx, bare.ID, nil, start, fpA); !errors.Is(err, connections.ErrAccountMismatch) {
		t.Errorf("Reauthorize(connection without fingerprint) = %v, want ErrAccountMismatch", err)
	}

	r, err := s.Reauthorize(ctx, c.ID, []connections.Site{{CloudID: "new1"}, {CloudID: "new2"}}, start, fpA)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != connections.StatusActive || r.StatusReason != "" || len(r.Sites) != 2 || !r.GrantStartedAt.Equal(start) ||
		!r.CreatedAt.Equal(c.CreatedAt) || r.Version != 3 || r.AccountFingerprint != fpA {
		t.Errorf("Reauthorize = %+v, want active, 2 new sites, grant start %v, created unchanged, v3", r, start)
	}

	if err := s.MarkGrantReauthRequired(ctx, "missing", "x", time.Time{}); !errors.Is(err, connections.ErrNotFound) {
		t.Errorf("MarkGrantReauthRequired(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Reauthorize(ctx, "missing", nil, start, fpA); !errors.Is(err, connections.ErrNotFound) {
		t.Errorf("Reauthorize(missing) = %v, want ErrNotFound", err)
	}

	gone := &connections.Connection{Status: connections.StatusDisconnected, AccountFingerprint: fpA}
	if err := s.Create(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reauthorize(ctx, gone.ID, nil, start, fpA); !errors.Is(err, connections.ErrDisconnected) {
		t.Errorf("Reauthorize(disconnected) = %v, want ErrDisconnected", err)
	}
	if err := s.MarkGrantReauthRequired(ctx, gone.ID, "x", time.Time{}); err != nil {
		t.Errorf("MarkGrantReauthRequired(disconnected) = %v, want nil (no-op)", err)
	}
	if g, _ := s.Get(ctx, gone.ID); g.Status != connections.StatusDisconnected {
		t.Errorf("disconnected connection became %q", g.Status)
	}

	if err := s.Delete(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, c.ID); err != nil {
		t.Errorf("Delete(again) = %v, want nil", err)
	}
	if _, err := s.Get(ctx, c.ID); !errors.Is(err, connections.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
}

// stopper is a connections.WorkStopper whose behaviour each test sets.
type stopper struct {
	cancelActiveRuns func(ctx context.Context, connID, reason string) error
}

func (f stopper) CancelActiveRuns(ctx context.Context, connID, reason string) error {
	return f.cancelActiveRuns(ctx, connID, reason)
}

func TestOnGrantRejected(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	g1 := time.Date(2026, 2, 1, 10, 0, 0, 123456789, time.UTC)
	g2 := g1.Add(time.Hour)

	tests := []struct {
		name string
		// setup creates the connection and returns its id and the start of the grant the report is about.
		setup      func(t *testing.T) (id string, reported time.Time)
		stopErr    error
		wantErr    error // matched with errors.Is; nil: no error
		wantStatus connections.Status
		wantGrant  time.Time
		wantStops  int
	}{
		{"report about the current grant", func(t *testing.T) (string, time.Time) {
			return create(t, s, connections.StatusActive, g1), g1
		}, nil, nil, connections.StatusReauthRequired, g1, 1},
		{"late report after re-authorisation", func(t *testing.T) (string, time.Time) {
			id := create(t, s, connections.StatusActive, g1)
			if err := s.MarkGrantReauthRequired(ctx, id, "invalid_grant", g1); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Reauthorize(ctx, id, nil, g2, fpA); err != nil {
				t.Fatal(err)
			}
			return id, g1 // a second refresher of the old grant reports its rejection only now
		}, nil, nil, connections.StatusActive, g2, 0},
		{"grant start unknown", func(t *testing.T) (string, time.Time) {
			return create(t, s, connections.StatusActive, g2), time.Time{}
		}, nil, nil, connections.StatusReauthRequired, g2, 1},
		{"disconnected", func(t *testing.T) (string, time.Time) {
			return create(t, s, connections.StatusDisconnected, g1), g1
		}, nil, nil, connections.StatusDisconnected, g1, 0},
		{"missing", func(t *testing.T) (string, time.Time) { return "missing", g1 }, nil, connections.ErrNotFound, "", time.Time{}, 0},
		{"stopping the work fails", func(t *testing.T) (string, time.Time) {
			return create(t, s, connections.StatusActive, g1), g1
		}, errBoom, errBoom, connections.StatusReauthRequired, g1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, reported := tt.setup(t)
			var stops []string
			cb := s.OnGrantRejected(stopper{cancelActiveRuns: func(_ context.Context, connID, reason string) error {
				stops = append(stops, connID+" "+reason)
				return tt.stopErr
			}})
			err := cb(ctx, id, "invalid_grant", reported)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("OnGrantRejected(%s) = %v, want %v", tt.name, err, tt.wantErr)
			}
			if len(stops) != tt.wantStops || tt.wantStops > 0 && stops[0] != id+" reauth_required" {
				t.Errorf("CancelActiveRuns calls = %q, want %d for %s with reason reauth_required", stops, tt.wantStops, id)
			}
			if tt.wantStatus == "" {
				return
			}
			got, err := s.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.wantStatus || !got.GrantStartedAt.Equal(tt.wantGrant) {
				t.Errorf("connection = %q, grant %v; want %q, grant %v", got.Status, got.GrantStartedAt, tt.wantStatus, tt.wantGrant)
			}
			if tt.wantStatus == connections.StatusReauthRequired && got.StatusReason != "invalid_grant" {
				t.Errorf("status reason = %q, want invalid_grant", got.StatusReason)
			}
		})
	}
}

var errBoom = errors.New("boom")

func create(t *testing.T, s *connections.Store, st connections.Status, grant time.Time) string {
	t.Helper()
	c := &connections.Connection{Status: st, GrantStartedAt: grant, AccountFingerprint: fpA}
	if err := s.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func TestNewIDRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := connections.NewID()
		if len(id) != 26 || seen[id] {
			t.Fatalf("NewID() = %q: wrong length or repeated", id)
		}
		seen[id] = true
	}
}
