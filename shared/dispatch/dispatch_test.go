package dispatch_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/infra/stacktest"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/dispatch"
	"jiraexport/shared/ratebudget"
	"jiraexport/shared/table"
)

// clock is the controllable time every store and the dispatcher of a test share.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	// A round minute, so due keys (second precision) and schedules are easy to reason about.
	c.ns.Store(time.Now().Truncate(time.Minute).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// invocations records what the dispatcher asked the export function to do (the Invoker port; the production
// adapter, shared/invoke, is an asynchronous Lambda Invoke).
type invocations struct {
	mu   sync.Mutex
	refs []connectors.RunRef
	fail atomic.Bool
	// takeRuns, when set, plays the export's first step: the invoked run's lease is taken at once.
	takeRuns *connectors.Store
}

func (r *invocations) Invoke(ctx context.Context, ref connectors.RunRef) error {
	if r.fail.Load() {
		return fmt.Errorf("lambda unavailable")
	}
	if r.takeRuns != nil {
		if _, err := r.takeRuns.AcquireRun(ctx, ref, "export-"+ref.RunID, 10*time.Minute); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs = append(r.refs, ref)
	return nil
}

// take returns the run ids invoked since the last take, sorted.
func (r *invocations) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, ref := range r.refs {
		ids = append(ids, ref.RunID)
	}
	r.refs = nil
	sort.Strings(ids)
	return ids
}

type fixture struct {
	env   *stacktest.Env
	clk   *clock
	store *connectors.Store
	conns *connections.Store
	inv   *invocations
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	env := stacktest.New(t)
	clk := newClock()
	db := env.Clients.DynamoDB
	return &fixture{env: env, clk: clk, inv: &invocations{},
		store: connectors.NewStore(db, env.Table, connectors.WithClock(clk.now)),
		conns: connections.NewStore(db, env.Table, table.WithClock(clk.now))}
}

func (f *fixture) dispatcher(t testing.TB, cfg dispatch.Config) *dispatch.Dispatcher {
	cfg.Store, cfg.Now = f.store, f.clk.now
	if cfg.Invoker == nil {
		cfg.Invoker = f.inv
	}
	// The spread is computed as in production; only the waiting is skipped.
	cfg.Sleep = func(context.Context, time.Duration) {}
	d, err := dispatch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (f *fixture) connection(t testing.TB) string {
	c := &connections.Connection{ID: connections.NewID(), Status: connections.StatusActive, GrantStartedAt: f.clk.now(),
		Sites: []connections.Site{{CloudID: "site-1", URL: "https://a.atlassian.net", Name: "a"}}}
	if err := f.conns.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func spec(name, expr string) connectors.Spec {
	s := connectors.Spec{Name: name, SiteID: "site-1", JQL: "project = A", Enabled: true,
		Schedule: connectors.Schedule{Expression: expr, Timezone: "Europe/Paris"}}
	s.Normalize()
	return s
}

// connector creates a connector with an hourly schedule whose next run is at next (zero: no schedule).
func (f *fixture) connector(t testing.TB, connID string, next time.Time) *connectors.Connector {
	expr := "rate(1 hour)"
	if next.IsZero() {
		expr = ""
	}
	c, err := f.store.Create(context.Background(), connID, spec("c", expr), next)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) get(t testing.TB, c *connectors.Connector) *connectors.Connector {
	got, err := f.store.Get(context.Background(), c.ConnectionID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (f *fixture) runs(t testing.TB, c *connectors.Connector) []connectors.Run {
	runs, _, err := f.store.ListRuns(context.Background(), c.ConnectionID, c.ID, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

func tick(t testing.TB, d *dispatch.Dispatcher) dispatch.Report {
	rep, err := d.Tick(context.Background())
	if err != nil {
		t.Fatalf("Tick() = %v", err)
	}
	return rep
}

func TestDueConnectorsGetExactlyOneRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.dispatcher(t, dispatch.Config{})
	conn := f.connection(t)
	now := f.clk.now()
	due := []*connectors.Connector{f.connector(t, conn, now.Add(-time.Minute)), f.connector(t, conn, now.Add(-2*time.Hour)), f.connector(t, conn, now)}
	later := f.connector(t, conn, now.Add(time.Minute))
	manual := f.connector(t, conn, time.Time{})

	rep := tick(t, d)
	if rep.Created != 3 || rep.Invoked != 3 {
		t.Fatalf("first tick = %+v, want 3 runs created and invoked", rep)
	}
	invoked := f.inv.take()
	var want []string
	for _, c := range due {
		got := f.get(t, c)
		runs := f.runs(t, c)
		if len(runs) != 1 || runs[0].Trigger != connectors.TriggerSchedule || runs[0].Status != connectors.RunQueued {
			t.Fatalf("runs of due connector = %+v, want one queued scheduled run", runs)
		}
		if got.ActiveRunID != runs[0].ID || got.ETag() == c.ETag() || got.NextRunAt == nil || !got.NextRunAt.After(now) {
			t.Errorf("due connector after tick = active %q etag %s next %v; want the run active, a new ETag (was %s) and the next run after %v",
				got.ActiveRunID, got.ETag(), got.NextRunAt, c.ETag(), now)
		}
		want = append(want, runs[0].ID)
	}
	sort.Strings(want)
	if fmt.Sprint(invoked) != fmt.Sprint(want) {
		t.Errorf("invoked %v, want the new runs %v", invoked, want)
	}
	for _, c := range []*connectors.Connector{later, manual} {
		if runs := f.runs(t, c); len(runs) != 0 || f.get(t, c).ETag() != c.ETag() {
			t.Errorf("connector not due got runs %+v or a new ETag", runs)
		}
	}

	// A rate schedule keeps its phase: the connector due two hours ago (missed occurrences skipped) and the one
	// due a minute ago are next due one hour after their own occurrence, not after the tick.
	if got := f.get(t, due[1]); !got.NextRunAt.Equal(now.Add(time.Hour)) {
		t.Errorf("next run after a missed occurrence = %v, want %v", got.NextRunAt, now.Add(time.Hour))
	}
	if got := f.get(t, due[0]); !got.NextRunAt.Equal(now.Add(59 * time.Minute)) {
		t.Errorf("next run = %v, want %v (an hour after the occurrence)", got.NextRunAt, now.Add(59*time.Minute))
	}
	// The same minute again (a retried tick): nothing new, and the runs just handed over are not invoked twice.
	if rep := tick(t, d); rep.Created != 0 || rep.Invoked != 0 {
		t.Errorf("second tick = %+v, want nothing", rep)
	}
	// An hour on, the previous runs are still active: schedules move on without a second run.
	f.clk.advance(time.Hour)
	rep = tick(t, d)
	if rep.Created != 1 || rep.Advanced != 3 {
		t.Errorf("tick an hour later with runs still active = %+v, want 3 schedules advanced and one run (the later connector's)", rep)
	}
	for _, c := range due {
		if runs := f.runs(t, c); len(runs) != 1 {
			t.Errorf("connector has %d runs, want 1 (a connector never has two active runs)", len(runs))
		}
	}
	// later's hour has come too (it had no run): it gets its first.
	if runs := f.runs(t, later); len(runs) != 1 {
		t.Errorf("later connector has %d runs after its time, want 1", len(runs))
	}
}

func TestConcurrentTicksCreateOneRunPerConnector(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var conns []string
	for range 4 {
		conns = append(conns, f.connection(t))
	}
	var due []*connectors.Connector
	for i := range 24 {
		due = append(due, f.connector(t, conns[i%len(conns)], f.clk.now().Add(-time.Minute)))
	}
	// Two dispatchers (two overlapping Lambda invocations) tick at the same moment, twice.
	ticks := []*dispatch.Dispatcher{f.dispatcher(t, dispatch.Config{}), f.dispatcher(t, dispatch.Config{})}
	for range 2 {
		var wg sync.WaitGroup
		for _, d := range ticks {
			wg.Add(1)
			go func() { defer wg.Done(); tick(t, d) }()
		}
		wg.Wait()
	}
	invoked := f.inv.take()
	seen := map[string]bool{}
	for _, id := range invoked {
		if seen[id] {
			t.Errorf("run %s invoked twice", id)
		}
		seen[id] = true
	}
	for _, c := range due {
		runs := f.runs(t, c)
		if len(runs) != 1 {
			t.Fatalf("connector has %d runs after concurrent ticks, want 1", len(runs))
		}
		if !seen[runs[0].ID] {
			t.Errorf("run %s never invoked", runs[0].ID)
		}
	}
	if len(invoked) != len(due) {
		t.Errorf("%d invocations, want %d (one per run)", len(invoked), len(due))
	}
}

func TestWaitingRunsAreResumed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	d := f.dispatcher(t, dispatch.Config{})
	conn := f.connection(t)
	lease := 5 * time.Minute
	// newRun starts a run through the API path (which hands it to an invocation itself).
	newRun := func() connectors.RunRef {
		c := f.connector(t, conn, time.Time{})
		r, err := f.store.StartRun(ctx, conn, c.ID, connectors.TriggerManual)
		if err != nil {
			t.Fatal(err)
		}
		return connectors.RunRef{ConnectionID: conn, ConnectorID: c.ID, RunID: r.ID}
	}
	queued := newRun()
	leased := newRun()
	crashed := newRun()
	deadline := newRun()
	quota := newRun()
	for _, ref := range []connectors.RunRef{leased, crashed, deadline, quota} {
		if _, err := f.store.AcquireRun(ctx, ref, "w-"+ref.RunID, lease); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.PauseRun(ctx, deadline, "w-"+deadline.RunID, "deadline", time.Time{}, connectors.Progress{}); err != nil {
		t.Fatal(err)
	}
	reset := f.clk.now().Add(20 * time.Minute)
	if err := f.store.PauseRun(ctx, quota, "w-"+quota.RunID, "quota", reset, connectors.Progress{}); err != nil {
		t.Fatal(err)
	}

	// Within the API's own dispatch guard nothing is invoked again: the API already invoked these runs.
	if rep := tick(t, d); rep.Invoked != 0 {
		t.Fatalf("tick within the guard = %+v, want no invocation", rep)
	}
	// Later: the queued run the API's invocation never picked up and the run paused at its deadline are
	// invoked; the leased run, the crashed one (lease not yet expired) and the quota-paused one are not.
	f.clk.advance(connectors.DispatchGuard + time.Second)
	if got, want := invokedAfter(t, f, d), sorted(queued.RunID, deadline.RunID); got != want {
		t.Fatalf("invoked %s, want the queued and the deadline-paused runs %s", got, want)
	}
	// The exports invoked take their runs and finish them.
	for _, ref := range []connectors.RunRef{queued, deadline} {
		if _, err := f.store.AcquireRun(ctx, ref, "x", lease); err != nil {
			t.Fatal(err)
		}
		if err := f.store.FinishRun(ctx, ref, "x", connectors.RunSucceeded, connectors.Progress{}); err != nil {
			t.Fatal(err)
		}
	}
	// The crashed export's lease expires (the live one renews its lease): the dispatcher hands the run over.
	f.clk.advance(lease)
	if err := f.store.SaveProgress(ctx, leased, "w-"+leased.RunID, lease, connectors.Progress{}); err != nil {
		t.Fatal(err)
	}
	if got, want := invokedAfter(t, f, d), sorted(crashed.RunID); got != want {
		t.Fatalf("invoked %s, want only the run whose lease expired %s (the others were invoked within the guard)", got, want)
	}
	// The quota-paused run waits for its resumeAfter, however many ticks pass.
	for f.clk.now().Before(reset.Add(-time.Minute)) {
		f.clk.advance(time.Minute)
		if err := f.store.SaveProgress(ctx, leased, "w-"+leased.RunID, lease, connectors.Progress{}); err != nil {
			t.Fatal(err)
		}
		for _, id := range f.inv.takeAfter(t, d) {
			if id == quota.RunID {
				t.Fatalf("quota-paused run invoked at %v, before its resumeAfter %v", f.clk.now(), reset)
			}
		}
	}
	f.clk.advance(2 * time.Minute)
	if got := f.inv.takeAfter(t, d); !contains(got, quota.RunID) || contains(got, leased.RunID) {
		t.Errorf("invoked %v after the reset, want the quota-paused run and not the leased one", got)
	}
	r, err := f.store.GetRun(ctx, quota.ConnectionID, quota.ConnectorID, quota.RunID)
	if err != nil || r.DispatchedAt == nil || r.Status != connectors.RunPaused {
		t.Errorf("quota run after dispatch = %+v, %v; want still paused (the export takes it) and dispatchedAt set", r, err)
	}
}

func (r *invocations) takeAfter(t *testing.T, d *dispatch.Dispatcher) []string {
	t.Helper()
	tick(t, d)
	return r.take()
}

func invokedAfter(t *testing.T, f *fixture, d *dispatch.Dispatcher) string {
	t.Helper()
	return fmt.Sprint(f.inv.takeAfter(t, d))
}

func sorted(ids ...string) string {
	sort.Strings(ids)
	return fmt.Sprint(ids)
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func TestInactiveConnectionsGetNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	d := f.dispatcher(t, dispatch.Config{})
	// erasing: the purge's fence (shared/erasure), status disconnected with reason erasing.
	for _, status := range []string{string(connections.StatusReauthRequired), string(connections.StatusDisconnected), connections.ReasonErasing} {
		t.Run(status, func(t *testing.T) {
			conn := f.connection(t)
			c := f.connector(t, conn, f.clk.now().Add(-time.Minute))
			manual := f.connector(t, conn, time.Time{})
			r, err := f.store.StartRun(ctx, conn, manual.ID, connectors.TriggerManual)
			if err != nil {
				t.Fatal(err)
			}
			switch status {
			case string(connections.StatusReauthRequired):
				err = f.conns.MarkReauthRequired(ctx, conn, "invalid_grant")
			case string(connections.StatusDisconnected):
				err = f.store.MarkDisconnected(ctx, conn)
			case connections.ReasonErasing:
				_, err = f.conns.MarkErasing(ctx, conn, connections.FenceOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
			f.clk.advance(connectors.DispatchGuard + time.Second)
			tick(t, d)
			for _, id := range f.inv.take() {
				if id == r.ID {
					t.Errorf("run of a %s connection invoked", status)
				}
			}
			if runs := f.runs(t, c); len(runs) != 0 {
				t.Errorf("due connector of a %s connection got runs %+v", status, runs)
			}
			if got := f.get(t, c); got.NextRunAt == nil || !got.NextRunAt.After(f.clk.now()) {
				t.Errorf("due connector of a %s connection: next run %v, want moved past now (the missed run is skipped)", status, got.NextRunAt)
			}
		})
	}
}

func TestStartsPerTickAreCapped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.inv.takeRuns = f.store
	d := f.dispatcher(t, dispatch.Config{MaxStarts: 2})
	conn := f.connection(t)
	var due []*connectors.Connector
	for range 5 {
		due = append(due, f.connector(t, conn, f.clk.now().Add(-time.Minute)))
	}
	// Only what is admitted gets a run; the rest stays due, untouched, and starts at later ticks, most overdue
	// first.
	rep := tick(t, d)
	if rep.Created != 2 || rep.Invoked != 2 || rep.Deferred != 3 || rep.Writes != 2 {
		t.Fatalf("first tick = %+v, want 2 runs created and invoked (2 writes), 3 deferred", rep)
	}
	all := map[string]bool{}
	for _, id := range f.inv.take() {
		all[id] = true
	}
	for i, want := range []int{2, 1, 0} {
		f.clk.advance(time.Minute)
		got := f.inv.takeAfter(t, d)
		if len(got) != want {
			t.Fatalf("tick %d invoked %d runs, want %d", i+2, len(got), want)
		}
		for _, id := range got {
			if all[id] {
				t.Errorf("run %s invoked twice", id)
			}
			all[id] = true
		}
	}
	for _, c := range due {
		if runs := f.runs(t, c); len(runs) != 1 || !all[runs[0].ID] {
			t.Errorf("connector runs %+v, want one run, invoked once", runs)
		}
	}
}

// pauses is a fixed set of quota pauses (the Pauses port; shared/ratebudget's store plugs in in production).
type pauses struct{ set dispatch.PauseSet }

func (p pauses) InForce(context.Context) (dispatch.PauseSet, error) { return p.set, nil }

func TestQuotaPausesHoldStarts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	until := f.clk.now().Add(10 * time.Minute)
	tests := []struct {
		name string
		set  dispatch.PauseSet
	}{
		{"global", dispatch.PauseSet{Global: until}},
		{"site", dispatch.PauseSet{Sites: map[string]time.Time{"site-1": until}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.dispatcher(t, dispatch.Config{Pauses: pauses{tt.set}})
			conn := f.connection(t)
			c := f.connector(t, conn, f.clk.now().Add(-time.Minute))
			rep := tick(t, d)
			runs := f.runs(t, c)
			if len(runs) != 0 || rep.Paused == 0 || rep.Writes != 0 {
				t.Fatalf("tick during a %s pause: %+v, runs %+v; want nothing written, the connector held", tt.name, rep, runs)
			}
			// It keeps its place: still due at the same time, so it starts first once the pause ends.
			if got := f.get(t, c); got.ETag() != c.ETag() || !got.NextRunAt.Equal(*c.NextRunAt) {
				t.Errorf("connector held by a %s pause changed: next %v, want %v", tt.name, got.NextRunAt, c.NextRunAt)
			}
		})
	}
	// Another site is not held by a site pause.
	d := f.dispatcher(t, dispatch.Config{Pauses: pauses{dispatch.PauseSet{Sites: map[string]time.Time{"site-2": until}}}})
	c := f.connector(t, f.connection(t), f.clk.now().Add(-time.Minute))
	tick(t, d)
	if runs := f.runs(t, c); len(runs) != 1 || !contains(f.inv.take(), runs[0].ID) {
		t.Errorf("a pause of another site held this site's run")
	}
}

func TestFailedInvokeIsRetriedByALaterTick(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.dispatcher(t, dispatch.Config{})
	c := f.connector(t, f.connection(t), f.clk.now().Add(-time.Minute))
	f.inv.fail.Store(true)
	if rep := tick(t, d); rep.Created != 1 || rep.InvokeErrs != 1 {
		t.Fatalf("tick with Lambda down = %+v, want the run created and the invoke failed", rep)
	}
	f.inv.fail.Store(false)
	f.clk.advance(time.Minute)
	runs := f.runs(t, c)
	if got := f.inv.takeAfter(t, d); len(runs) != 1 || !contains(got, runs[0].ID) {
		t.Errorf("next tick invoked %v, want the run whose invoke failed", got)
	}
}

func TestOffsetSpreadsDeterministically(t *testing.T) {
	t.Parallel()
	window := 30 * time.Second
	buckets := make([]int, 10)
	for i := range 2000 {
		id := connectors.NewID(time.Unix(int64(i), 0))
		o := dispatch.Offset(id, window)
		if o < 0 || o >= window {
			t.Fatalf("Offset(%s) = %v, want within [0, %v)", id, o, window)
		}
		if o2 := dispatch.Offset(id, window); o2 != o {
			t.Fatalf("Offset(%s) = %v then %v, want the same", id, o, o2)
		}
		buckets[int(o*10/window)]++
	}
	for i, n := range buckets {
		if n < 120 || n > 280 { // 200 expected per tenth of the window
			t.Errorf("tenth %d of the window holds %d of 2000 starts, want about 200: %v", i, n, buckets)
		}
	}
	if dispatch.Offset("x", 0) != 0 {
		t.Error("Offset with no window is not 0")
	}
}

// TestItemsDecideNotTheIndex: the due index lags the items; a connector the index still lists as due but whose
// item is disabled or already moved on gets no run, and the budget's place goes to the next in the queue.
func TestItemsDecideNotTheIndex(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	b := &budget{} // admits one run a tick
	d := f.dispatcher(t, dispatch.Config{Budget: b})
	conn := f.connection(t)
	disabled := f.connector(t, conn, f.clk.now().Add(-3*time.Minute))
	movedOn := f.connector(t, conn, f.clk.now().Add(-2*time.Minute))
	next := f.connector(t, conn, f.clk.now().Add(-time.Minute))
	// What a lagging index shows: the due keys are still there while the items already say otherwise.
	for _, u := range []struct {
		c    *connectors.Connector
		expr string
		vals map[string]types.AttributeValue
	}{
		{disabled, "SET enabled = :f", map[string]types.AttributeValue{":f": &types.AttributeValueMemberBOOL{Value: false}}},
		{movedOn, "SET nextRunAt = :n", map[string]types.AttributeValue{":n": &types.AttributeValueMemberS{Value: f.clk.now().Add(time.Hour).Format(time.RFC3339Nano)}}},
	} {
		if _, err := f.env.Clients.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(f.env.Table),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: connections.PK(conn)},
				"sk": &types.AttributeValueMemberS{Value: "CONNECTOR#" + u.c.ID}},
			UpdateExpression: aws.String(u.expr), ExpressionAttributeValues: u.vals}); err != nil {
			t.Fatal(err)
		}
	}
	rep := tick(t, d)
	if rep.Created != 1 || rep.Invoked != 1 || len(b.seen) != 3 {
		t.Errorf("tick = %+v after %d admissions, want one run (the budget asked again after each stale entry)", rep, len(b.seen))
	}
	for _, c := range []*connectors.Connector{disabled, movedOn} {
		if runs := f.runs(t, c); len(runs) != 0 {
			t.Errorf("connector not due by its item got runs %+v", runs)
		}
	}
	if runs := f.runs(t, next); len(runs) != 1 {
		t.Errorf("the next due connector got %d runs, want the budget's one", len(runs))
	}
}

// TestBudgetShareAndQueue: over many due connectors a tick admits exactly what the points budget allows, max-min
// fairly across connections and most overdue first within each; the others are not written at all, keep their
// place, and are the next admitted once the budget allows.
func TestBudgetShareAndQueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.clk.ns.Store(f.clk.now().Truncate(time.Hour).Add(time.Hour + time.Minute).UnixNano())
	f.inv.takeRuns = f.store // each invoked export takes its run's lease at once
	db := f.env.Clients.DynamoDB
	alloc := ratebudget.Allocator{HourlyBudget: 1000, Margin: -1, Horizon: -1, MinGrant: 100}
	d := f.dispatcher(t, dispatch.Config{Budget: dispatch.PointsBudget{
		Ledger: ratebudget.NewLedger(db, f.env.Table, table.WithClock(f.clk.now)), Allocator: alloc}})
	const perConn = 8
	conns := []string{f.connection(t), f.connection(t), f.connection(t)}
	queue := map[string][]*connectors.Connector{} // per connection, most overdue first
	var in ratebudget.Input
	for k := range perConn {
		for j, conn := range conns {
			c := f.connector(t, conn, f.clk.now().Add(-time.Duration(100-3*k-j)*time.Second))
			queue[conn] = append(queue[conn], c)
			in.Demands = append(in.Demands, ratebudget.Demand{RunID: c.ID, ConnID: conn})
		}
	}
	in.Now = f.clk.now()
	share := len(alloc.Allocate(in).Grants) // what the budget allows: 1,000 points in 100-point minimums, 3 connections
	if share != 9 {
		t.Fatalf("the budget allows %d runs, want 9 (3 per connection)", share)
	}
	admitted := func(wantFrom int) {
		t.Helper()
		rep := tick(t, d)
		invoked := map[string]bool{}
		for _, id := range f.inv.take() {
			invoked[id] = true
		}
		if rep.Created != share || len(invoked) != share || rep.Writes != share {
			t.Fatalf("tick = %+v, want exactly the budget's %d runs created and invoked, %d writes", rep, share, share)
		}
		var allowances int64
		for _, conn := range conns {
			for i, c := range queue[conn] {
				runs, got := f.runs(t, c), f.get(t, c)
				start := i >= wantFrom && i < wantFrom+share/len(conns)
				switch {
				case start && (len(runs) == 0 || !invoked[runs[0].ID]):
					t.Errorf("connector %d of a queue got no run, want the %d after its first %d", i, share/len(conns), wantFrom)
				case start:
					allowances += runs[0].Allowance
				case i >= wantFrom && (len(runs) != 0 || got.ETag() != c.ETag()):
					t.Errorf("connector %d of a queue started or written out of turn: runs %+v", i, runs)
				}
			}
		}
		if allowances > alloc.Limit() {
			t.Errorf("allowances %d exceed the budget %d", allowances, alloc.Limit())
		}
	}
	admitted(0)
	// The exports hold their allowances: the next tick admits and writes nothing.
	f.clk.advance(time.Minute)
	if rep := tick(t, d); rep.Admitted != 0 || rep.Writes != 0 {
		t.Fatalf("tick with the budget handed out = %+v, want nothing admitted or written", rep)
	}
	// They finish; the next hour brings a new budget and the next three of each queue start (those that ran are
	// due again an hour after their occurrence, behind them).
	ctx := t.Context()
	for _, conn := range conns {
		for _, c := range queue[conn][:share/len(conns)] {
			ref := connectors.RunRef{ConnectionID: conn, ConnectorID: c.ID, RunID: f.get(t, c).ActiveRunID}
			if err := f.store.FinishRun(ctx, ref, "export-"+ref.RunID, connectors.RunSucceeded, connectors.Progress{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.clk.advance(time.Hour - time.Minute)
	admitted(share / len(conns))
}

// TestPointsBudgetReservesWhatInvocationsMaySpend: a running invocation's points already spent are in the ledger,
// so only the rest of its allowance is held back, not all of it.
func TestPointsBudgetReservesWhatInvocationsMaySpend(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	now := time.Now().UTC()
	ledger := ratebudget.NewLedger(env.Clients.DynamoDB, env.Table)
	if err := ledger.Record(t.Context(), "c1", now, 600); err != nil {
		t.Fatal(err)
	}
	b := dispatch.PointsBudget{Ledger: ledger, Allocator: ratebudget.Allocator{HourlyBudget: 2000, Margin: -1, Horizon: -1, MinGrant: 1}}
	grants, err := b.Admit(t.Context(), dispatch.Admission{Now: now,
		Demands: []dispatch.Demand{{Ref: connectors.RunRef{ConnectionID: "c2", ConnectorID: "k", RunID: "r2"}}},
		// Granted 500 when the run had spent 100; it has spent 400 now: 300 of them in this invocation.
		Running: []dispatch.Running{{Ref: connectors.RunRef{ConnectionID: "c1", ConnectorID: "k", RunID: "r1"}, Allowance: 500, Spent: 400, SpentAtGrant: 100}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// 2,000 − 600 spent − (500 − 300) outstanding.
	if len(grants) != 1 || grants[0].Points != 1200 {
		t.Errorf("grants = %+v, want 1,200 points", grants)
	}
}

// budget admits the first demand only, with an allowance, and records what it was shown (the Budget port;
// shared/ratebudget's Allocator plugs in in production).
type budget struct {
	mu   sync.Mutex
	seen []dispatch.Admission
}

func (b *budget) Admit(_ context.Context, a dispatch.Admission) ([]dispatch.Grant, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen = append(b.seen, a)
	if len(a.Demands) == 0 {
		return nil, nil
	}
	return []dispatch.Grant{{Ref: a.Demands[0].Ref, Points: 500}}, nil
}

type sweeps struct{ n atomic.Int32 }

func (s *sweeps) Sweep(context.Context, time.Time) error { s.n.Add(1); return nil }

func TestBudgetAdmitsAndAllowances(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	b, sw := &budget{}, &sweeps{}
	d := f.dispatcher(t, dispatch.Config{Budget: b, Sweeper: sw})
	conn := f.connection(t)
	f.connector(t, conn, f.clk.now().Add(-2*time.Minute))
	f.connector(t, conn, f.clk.now().Add(-time.Minute))
	rep := tick(t, d)
	invoked := f.inv.take()
	if rep.Created != 1 || len(invoked) != 1 || rep.Deferred != 1 {
		t.Fatalf("tick = %+v, invoked %v; want the run the budget admitted created and invoked, the other deferred", rep, invoked)
	}
	if got := b.seen[0].Demands; len(got) != 2 || b.seen[0].Now != f.clk.now() {
		t.Errorf("budget saw %+v, want both demands at the tick's time", b.seen[0])
	}
	r, err := f.store.GetRun(ctx, conn, b.seen[0].Demands[0].Ref.ConnectorID, invoked[0])
	if err != nil || r.Allowance != 500 || r.DispatchedAt == nil {
		t.Fatalf("admitted run = %+v, %v; want allowance 500 recorded with its dispatch", r, err)
	}
	// The export takes it: the next tick shows it to the budget as running, with its allowance.
	ref := b.seen[0].Demands[0].Ref
	if _, err := f.store.AcquireRun(ctx, ref, "export", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	f.clk.advance(time.Minute)
	tick(t, d)
	last := b.seen[len(b.seen)-1]
	if len(last.Running) != 1 || last.Running[0].Ref != ref || last.Running[0].Allowance != 500 {
		t.Errorf("budget saw running %+v, want the leased run with its allowance", last.Running)
	}
	if len(last.Demands) != 1 || f.inv.take()[0] != last.Demands[0].Ref.RunID {
		t.Errorf("second tick did not start the deferred run")
	}
	if sw.n.Load() != 2 {
		t.Errorf("sweeper ran %d times in 2 ticks, want 2", sw.n.Load())
	}
}

// TestQueueOrderAcrossConnections: when the budget admits fewer connections than have due work and none has spent
// anything yet, those that have waited longest go first.
func TestQueueOrderAcrossConnections(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	alloc := ratebudget.Allocator{HourlyBudget: 200, Margin: -1, Horizon: -1, MinGrant: 100}
	d := f.dispatcher(t, dispatch.Config{Budget: dispatch.PointsBudget{
		Ledger: ratebudget.NewLedger(f.env.Clients.DynamoDB, f.env.Table), Allocator: alloc}})
	now := f.clk.now()
	newest := f.connector(t, f.connection(t), now.Add(-time.Minute))
	oldest := f.connector(t, f.connection(t), now.Add(-3*time.Minute))
	middle := f.connector(t, f.connection(t), now.Add(-2*time.Minute))
	if rep := tick(t, d); rep.Created != 2 {
		t.Fatalf("tick = %+v, want the budget's 2 runs", rep)
	}
	for _, c := range []*connectors.Connector{oldest, middle} {
		if len(f.runs(t, c)) != 1 {
			t.Errorf("a connector due %v got no run, want the two that waited longest started", c.NextRunAt)
		}
	}
	if len(f.runs(t, newest)) != 0 {
		t.Error("the connector due last started before one that waited longer")
	}
}
