package connectors_test

import (
	"errors"
	"testing"
	"time"

	"jiraexport/shared/connectors"
)

// TestStartScheduledRun: the run and the schedule move together, only from the version read, never beside an
// active run, never under a connection that is not active.
func TestStartScheduledRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clk := newClock()
	st := f.clocked(clk)
	ctx := t.Context()
	conn := f.connection(t)
	due := clk.now().Add(-time.Minute)
	next := clk.now().Add(time.Hour)

	c, err := st.Create(ctx, conn, spec("due"), due)
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.StartScheduledRun(ctx, c, connectors.NewID(clk.now()), next, true, 300)
	if err != nil || r.Trigger != connectors.TriggerSchedule || r.Status != connectors.RunQueued || r.Allowance != 300 || r.DispatchedAt == nil {
		t.Fatalf("StartScheduledRun() = %+v, %v; want a queued scheduled run, dispatched with its allowance", r, err)
	}
	got, _ := st.Get(ctx, conn, c.ID)
	if got.ActiveRunID != r.ID || got.Version != c.Version+1 || got.NextRunAt == nil || !got.NextRunAt.Equal(next) ||
		got.LastRun == nil || got.LastRun.ID != r.ID {
		t.Errorf("connector after StartScheduledRun = %+v; want the run active, version+1, next run moved", got)
	}
	// The same read again (an overlapping tick): nothing written.
	if _, err := st.StartScheduledRun(ctx, c, connectors.NewID(clk.now()), next, true, 0); !errors.Is(err, connectors.ErrNotDue) {
		t.Errorf("StartScheduledRun(stale version) = %v, want ErrNotDue", err)
	}
	// From the current version, but the run is still active.
	if _, err := st.StartScheduledRun(ctx, got, connectors.NewID(clk.now()), next, true, 0); !errors.Is(err, connectors.ErrActiveRun) {
		t.Errorf("StartScheduledRun(active run) = %v, want ErrActiveRun", err)
	}
	if err := st.AdvanceSchedule(ctx, got, next.Add(time.Hour)); err != nil {
		t.Errorf("AdvanceSchedule() = %v", err)
	}
	if err := st.AdvanceSchedule(ctx, got, next.Add(time.Hour)); !errors.Is(err, connectors.ErrNotDue) {
		t.Errorf("AdvanceSchedule(stale) = %v, want ErrNotDue", err)
	}
	runs, _, _ := st.ListRuns(ctx, conn, c.ID, 10, "")
	if len(runs) != 1 {
		t.Errorf("runs = %d, want 1", len(runs))
	}

	// A connection that is not active gets no run.
	other := f.connection(t)
	c2, err := st.Create(ctx, other, spec("reauth"), due)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.conns.MarkReauthRequired(ctx, other, "invalid_grant"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StartScheduledRun(ctx, c2, connectors.NewID(clk.now()), next, true, 0); !errors.Is(err, connectors.ErrNotActive) {
		t.Errorf("StartScheduledRun(reauth_required) = %v, want ErrNotActive", err)
	}
}

// TestClaimDispatch: one claim per run per guard window, only for runs that wait for an invocation.
func TestClaimDispatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clk := newClock()
	st := f.clocked(clk)
	ctx := t.Context()
	ref := f.queuedRun(t, st) // StartRun: handed to the API's invocation now

	if err := st.ClaimDispatch(ctx, ref, 0); !errors.Is(err, connectors.ErrNotDispatchable) {
		t.Fatalf("ClaimDispatch(just started by the API) = %v, want ErrNotDispatchable", err)
	}
	clk.advance(connectors.DispatchGuard + time.Millisecond)
	if err := st.ClaimDispatch(ctx, ref, 100); err != nil {
		t.Fatalf("ClaimDispatch(queued, guard passed) = %v", err)
	}
	if err := st.ClaimDispatch(ctx, ref, 100); !errors.Is(err, connectors.ErrNotDispatchable) {
		t.Errorf("second ClaimDispatch = %v, want ErrNotDispatchable", err)
	}
	r, _ := st.GetRun(ctx, ref.ConnectionID, ref.ConnectorID, ref.RunID)
	if r.Allowance != 100 || r.Dispatchable(clk.now(), connectors.DispatchGuard) {
		t.Errorf("run after claim = %+v; want allowance 100 and not dispatchable", r)
	}
	// Leased: not dispatchable until the lease expires.
	if _, err := st.AcquireRun(ctx, ref, "w", time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.advance(connectors.DispatchGuard + time.Millisecond)
	if err := st.ClaimDispatch(ctx, ref, 0); !errors.Is(err, connectors.ErrNotDispatchable) {
		t.Errorf("ClaimDispatch(leased) = %v, want ErrNotDispatchable", err)
	}
	clk.advance(time.Minute)
	if r, _ := st.GetRun(ctx, ref.ConnectionID, ref.ConnectorID, ref.RunID); !r.Dispatchable(clk.now(), connectors.DispatchGuard) {
		t.Errorf("run with an expired lease is not dispatchable: %+v", r)
	}
	if err := st.ClaimDispatch(ctx, ref, 0); err != nil {
		t.Errorf("ClaimDispatch(expired lease) = %v", err)
	}
	if _, err := st.CancelRun(ctx, ref.ConnectionID, ref.ConnectorID, ref.RunID, "user"); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour)
	if err := st.ClaimDispatch(ctx, ref, 0); !errors.Is(err, connectors.ErrNotDispatchable) {
		t.Errorf("ClaimDispatch(cancelled) = %v, want ErrNotDispatchable", err)
	}
	if err := st.ClaimDispatch(ctx, connectors.RunRef{ConnectionID: ref.ConnectionID, ConnectorID: ref.ConnectorID, RunID: connectors.NewID(clk.now())}, 0); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("ClaimDispatch(unknown) = %v, want ErrNotFound", err)
	}
}

// TestDispatchGuardOption: a store with a shorter guard (the dispatcher's DISPATCH_GUARD_SECONDS) hands a run on
// once that guard has passed, and its read-side twin agrees; the default stays DispatchGuard.
func TestDispatchGuardOption(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clk := newClock()
	const guard = 2 * time.Second
	st := connectors.NewStore(f.env.Clients.DynamoDB, f.env.Table, connectors.WithClock(clk.now), connectors.WithDispatchGuard(guard))
	if got, def := st.DispatchGuard(), f.clocked(clk).DispatchGuard(); got != guard || def != connectors.DispatchGuard {
		t.Fatalf("DispatchGuard() = %v (default store %v), want %v (%v)", got, def, guard, connectors.DispatchGuard)
	}
	ctx := t.Context()
	ref := f.queuedRun(t, st)
	clk.advance(guard - time.Millisecond)
	r, _ := st.GetRun(ctx, ref.ConnectionID, ref.ConnectorID, ref.RunID)
	if err := st.ClaimDispatch(ctx, ref, 0); !errors.Is(err, connectors.ErrNotDispatchable) || r.Dispatchable(clk.now(), guard) {
		t.Fatalf("ClaimDispatch(within the guard) = %v (dispatchable %v), want ErrNotDispatchable", err, r.Dispatchable(clk.now(), guard))
	}
	clk.advance(2 * time.Millisecond)
	if !r.Dispatchable(clk.now(), guard) {
		t.Error("a queued run past the guard is not dispatchable")
	}
	if err := st.ClaimDispatch(ctx, ref, 0); err != nil {
		t.Errorf("ClaimDispatch(guard passed) = %v", err)
	}
}
