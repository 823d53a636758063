package connectors_test

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/table"
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
	// The crashed invocation had spent 42 points: a new allowance counts from there.
	if err := st.SaveProgress(ctx, ref, "w", time.Minute, connectors.Progress{Counters: connectors.Counters{PointsSpent: 42}}); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Minute + time.Millisecond)
	if r, _ := st.GetRun(ctx, ref.ConnectionID, ref.ConnectorID, ref.RunID); !r.Dispatchable(clk.now(), connectors.DispatchGuard) {
		t.Errorf("run with an expired lease is not dispatchable: %+v", r)
	}
	if err := st.ClaimDispatch(ctx, ref, 300); err != nil {
		t.Errorf("ClaimDispatch(expired lease) = %v", err)
	}
	if r, _ := st.GetRun(ctx, ref.ConnectionID, ref.ConnectorID, ref.RunID); r.Allowance != 300 || r.AllowanceBase != 42 {
		t.Errorf("run after claim = allowance %d from %d, want 300 from the 42 points spent before", r.Allowance, r.AllowanceBase)
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

// TestWorkReadsEveryShard: due connectors and active runs are found in every shard of the due index (and in the
// unsharded partition items written before sharding still sit in), merged into one queue in due order, and a
// limit keeps the most overdue across shards.
func TestWorkReadsEveryShard(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clk := newClock()
	st := f.clocked(clk)
	ctx := t.Context()
	conns := []string{f.connection(t), f.connection(t), f.connection(t)}
	now := clk.now().Truncate(time.Second)
	// Connectors due a second apart, oldest first: the 25 most overdue as written before the index was sharded
	// (all in the unsharded partition, so a limit below 25 needs several pages of it), then more until every
	// shard holds at least two.
	const legacyN = 25
	var due []*connectors.Connector
	perShard := map[int]int{}
	for i := 0; i < legacyN || len(perShard) < table.DueShards || slices.Min(slices.Collect(maps.Values(perShard))) < 2; i++ {
		c, err := st.Create(ctx, conns[i%len(conns)], spec("c"), now.Add(time.Duration(i-300)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		due = append(due, c)
		if i < legacyN {
			if _, err := f.env.Clients.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(f.env.Table),
				Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: connections.PK(c.ConnectionID)},
					"sk": &types.AttributeValueMemberS{Value: "CONNECTOR#" + c.ID}},
				UpdateExpression:          aws.String("SET gsi1pk = :p"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: table.GSIDueLegacy}},
			}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		perShard[table.DueShard(c.ID)]++
	}
	// Not due yet: never read.
	if _, err := st.Create(ctx, conns[0], spec("later"), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	ids := func(refs []connectors.DueRef) []string {
		var out []string
		for _, r := range refs {
			out = append(out, r.ConnectorID)
		}
		return out
	}
	var want []string
	for _, c := range due {
		want = append(want, c.ID)
	}
	// The index is eventually consistent: DynamoDB Local's is immediate, the limit below is the point.
	for _, limit := range []int{len(due) + 10, legacyN + 10, legacyN - 5, 1} {
		w, err := st.Work(ctx, now, connectors.WorkLimits{Due: limit, Active: 10})
		if err != nil {
			t.Fatal(err)
		}
		if got, wantN := ids(w.Due), want[:min(limit, len(want))]; !slices.Equal(got, wantN) {
			t.Errorf("Work(limit %d).Due = %d connectors %v,\nwant the %d most overdue in due order %v", limit, len(got), got, len(wantN), wantN)
		}
		if info := w.Connections[conns[0]]; info.Status != connections.StatusActive || !slices.Equal(info.Sites, []string{"site-1"}) {
			t.Errorf("connection info = %+v, want active on site-1", info)
		}
	}

	// Active runs of every shard; the oldest first under a limit.
	var runs []string
	for _, c := range due {
		clk.advance(time.Millisecond)
		r, err := st.StartRun(ctx, c.ConnectionID, c.ID, connectors.TriggerManual)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r.ID)
	}
	for _, limit := range []int{len(runs), 5} {
		w, err := st.Work(ctx, now, connectors.WorkLimits{Due: 1, Active: limit})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range w.Active {
			got = append(got, a.Run.ID)
			if a.Connector == nil || a.Connection != connections.StatusActive {
				t.Errorf("active run %s read without its connector or connection: %+v", a.Run.ID, a)
			}
		}
		if !slices.Equal(got, runs[:limit]) {
			t.Errorf("Work(active limit %d) = %v, want the oldest %v", limit, got, runs[:limit])
		}
	}

	// DueConnectors: the items decide; a connector moved on since the index was read is not due.
	got, _, err := st.DueConnectors(ctx, []connectors.DueRef{{ConnectionID: due[0].ConnectionID, ConnectorID: due[0].ID}}, now)
	if err != nil || got[due[0].ID] == nil {
		t.Fatalf("DueConnectors(due) = %v, %v; want it", got, err)
	}
	c := got[due[0].ID]
	if err := st.AdvanceSchedule(ctx, c, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _, err := st.DueConnectors(ctx, []connectors.DueRef{{ConnectionID: c.ConnectionID, ConnectorID: c.ID}}, now); err != nil || len(got) != 0 {
		t.Errorf("DueConnectors(moved on) = %v, %v; want none", got, err)
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
