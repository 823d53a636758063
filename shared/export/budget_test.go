package export_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/dispatch"
	"jiraexport/shared/export"
	"jiraexport/shared/jira"
	"jiraexport/shared/mirror"
	"jiraexport/shared/ratebudget"
	"jiraexport/shared/ratebudget/pacer"
	"jiraexport/shared/table"
	"jiraexport/shared/tokens"
)

// budgetWorld is a world whose simulator, engine, stores, pauses and ledger share one movable clock, with the
// engine wired as functions/export wires it: a pacing transport, the points ledger and the shared pauses.
type budgetWorld struct {
	*world
	clk    *atlassiansim.OffsetClock
	store  *connectors.Store
	pauses *ratebudget.Pauses
	ledger *ratebudget.Ledger
}

// newBudgetWorld starts the simulator's clock `before` the top of an hour and behind the wall clock, so the
// simulator's quota resets soon, and the engine's deadline (wall time) is never reached early by the clock.
func newBudgetWorld(t *testing.T, before time.Duration) *budgetWorld {
	t.Helper()
	clk := &atlassiansim.OffsetClock{}
	clk.Set(time.Now().UTC().Truncate(time.Hour).Add(-before))
	// 120 issues in scope: several search pages, and children beyond the embedded page.
	w := newWorld(t, worldOpts{sim: atlassiansim.Config{Clock: clk, Sites: 1, ProjectsPerSite: 3, IssuesPerProject: 60,
		MaxComments: 45, MaxChangelog: 60}})
	db := w.env.Clients.DynamoDB
	return &budgetWorld{world: w, clk: clk,
		store:  connectors.NewStore(db, w.env.Table, connectors.WithClock(clk.Now)),
		pauses: ratebudget.NewPauses(db, w.env.Table, table.WithClock(clk.Now)),
		ledger: ratebudget.NewLedger(db, w.env.Table, table.WithClock(clk.Now)),
	}
}

func (b *budgetWorld) engine() *export.Engine {
	paced := &http.Client{Transport: pacer.New(http.DefaultTransport, pacer.Options{Now: b.clk.Now})}
	return b.world.engine(func(c *export.Config) {
		c.Runs, c.Now = b.store, b.clk.Now
		c.Budget = export.Budget{Pauses: b.pauses, Ledger: b.ledger}
		c.Jira = func(ts oauth2.TokenSource, observe func(jira.Observation)) *jira.Client {
			return jira.New(b.simURL, ts, jira.Options{Timeout: 10 * time.Second, BaseBackoff: 10 * time.Millisecond,
				IsReauth:   func(err error) bool { return errors.Is(err, tokens.ErrReauthRequired) },
				HTTPClient: paced, Observe: func(o jira.Observation) {
					observe(o)
					b.mu.Lock()
					h := b.hook
					b.mu.Unlock()
					if h != nil {
						h(o)
					}
				}})
		}
	})
}

// connector adds a connector with the world's spec (same JQL, same site) and starts its run.
func (b *budgetWorld) connector() connectors.RunRef {
	b.t.Helper()
	c, err := b.store.Create(b.t.Context(), b.connID, b.world.connector.Spec, b.clk.Now().Add(24*time.Hour))
	if err != nil {
		b.t.Fatal(err)
	}
	r, err := b.store.StartRun(b.t.Context(), b.connID, c.ID, connectors.TriggerManual)
	if err != nil {
		b.t.Fatal(err)
	}
	return connectors.RunRef{ConnectionID: b.connID, ConnectorID: c.ID, RunID: r.ID}
}

// finish invokes the engine until the run ends, moving the clock past every pause (what the dispatcher's later
// ticks amount to).
func (b *budgetWorld) finish(eng *export.Engine, ref connectors.RunRef) *connectors.Run {
	b.t.Helper()
	var last *connectors.Run
	var outs []export.Outcome
	for range 60 {
		// The engine's deadline is wall time and its clock may run ahead of it: a long timeout keeps the deadline
		// from cutting invocations short.
		ctx, cancel := context.WithTimeout(b.t.Context(), 3*time.Hour)
		out, err := eng.Run(ctx, ref)
		outs = append(outs, out)
		cancel()
		if err != nil {
			b.t.Fatalf("Run() = %v", err)
		}
		r := b.run(ref)
		if !r.Status.Active() {
			return r
		}
		last = r
		if r.ResumeAfter != nil && r.ResumeAfter.After(b.clk.Now()) {
			b.clk.Set(r.ResumeAfter.Add(time.Second))
		}
	}
	b.t.Fatalf("run did not finish in 60 invocations: %s (%s) until %v at %v; outcomes %v", last.Status, last.PauseReason,
		last.ResumeAfter, b.clk.Now(), outs)
	return nil
}

// issues returns the connector's issue documents by issue file name.
func (b *budgetWorld) issues(objs map[string][]byte, connectorID string) map[string]string {
	prefix := mirror.Prefix(b.connID, connectorID) + "issues/"
	out := map[string]string{}
	for k, v := range objs {
		if name, ok := strings.CutPrefix(k, prefix); ok {
			out[name] = string(v)
		}
	}
	return out
}

// sameMirror compares a connector's documents with the reference connector's, byte for byte.
func (b *budgetWorld) sameMirror(ref, got connectors.RunRef) {
	b.t.Helper()
	objs := b.objects()
	want, have := b.issues(objs, ref.ConnectorID), b.issues(objs, got.ConnectorID)
	if len(want) == 0 || len(have) != len(want) {
		b.t.Errorf("mirror has %d documents, want %d (the uninterrupted run's)", len(have), len(want))
	}
	for k, v := range want {
		if have[k] != v {
			b.t.Errorf("document %s differs from the uninterrupted run's", k)
		}
	}
	mw, mh := b.manifest(ref), b.manifest(got)
	if mh.Counts.Written != mw.Counts.Written || mh.Counts.Selected != mw.Counts.Selected || mh.Counts.Removed != 0 {
		b.t.Errorf("manifest counts %+v, want %+v (every issue written once, nothing removed)", mh.Counts, mw.Counts)
	}
}

type recordingInvoker struct {
	mu   sync.Mutex
	refs []connectors.RunRef
}

func (r *recordingInvoker) Invoke(_ context.Context, ref connectors.RunRef) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs = append(r.refs, ref)
	return nil
}

func (r *recordingInvoker) take() []connectors.RunRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.refs
	r.refs = nil
	return out
}

// The app's quota runs out in the middle of a run: the run pauses until the simulator's reset and records the
// app-wide pause; a new run of the app does not call Jira while it lasts; the dispatcher starts nothing until the
// reset; afterwards both runs finish with the same mirror as an uninterrupted run, nothing lost or doubled, and
// the points ledger holds what Jira charged.
func TestQuotaExhaustionPausesEveryRunUntilTheReset(t *testing.T) {
	t.Parallel()
	b := newBudgetWorld(t, 5*time.Minute)
	ctx := t.Context()
	eng := b.engine()

	reference := b.connector()
	before := b.sim.Counters()
	if r := b.finish(eng, reference); r.Status != connectors.RunSucceeded {
		t.Fatalf("reference run = %s %v", r.Status, r.Errors)
	}
	after := b.sim.Counters()
	refPoints := after.PointsTotal - before.PointsTotal
	if refPoints < 40 {
		t.Fatalf("reference run spent %d points; the site is too small for this test", refPoints)
	}

	// Half of one run's points are left in this hour.
	b.sim.SetRateLimits(atlassiansim.RateLimitConfig{GlobalPointsPerHour: after.WindowPointsGlobal + refPoints/2, NoBurst: true})
	ref := b.connector()
	out, err := eng.Run(ctx, ref)
	if err != nil || out != export.Paused {
		t.Fatalf("Run() = %v, %v; want paused on the quota", out, err)
	}
	r := b.run(ref)
	reset := b.clk.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	if r.PauseReason != export.ReasonQuota || r.ResumeAfter == nil || r.ResumeAfter.Before(reset) || r.ResumeAfter.After(reset.Add(time.Minute)) {
		t.Fatalf("run paused (%s) until %v, want quota until the reset %v", r.PauseReason, r.ResumeAfter, reset)
	}
	if r.Counters.PointsSpent == 0 || r.Counters.IssuesDone >= b.manifest(reference).Counts.Selected {
		t.Errorf("run paused with %d points spent and %d issues done; the test wants a pause mid-run", r.Counters.PointsSpent, r.Counters.IssuesDone)
	}
	p, paused, err := b.pauses.IsPaused(ctx, b.site.CloudID)
	if err != nil || !paused || p.Scope != ratebudget.ScopeGlobal || p.Until.Before(reset) {
		t.Fatalf("shared pause = %+v %v %v, want the app-wide pause until %v", p, paused, err, reset)
	}

	// Another run of the app does not call Jira while the pause lasts: it pauses until the reset at once.
	other := b.connector()
	calls := jiraRequests(b.sim.Counters())
	if out, err := eng.Run(ctx, other); err != nil || out != export.Paused {
		t.Fatalf("Run(other) = %v, %v; want paused", out, err)
	}
	if n := jiraRequests(b.sim.Counters()); n != calls {
		t.Errorf("a run under the shared pause made %d requests to Jira, want 0", n-calls)
	}
	if o := b.run(other); o.PauseReason != export.ReasonQuota || o.ResumeAfter == nil || o.ResumeAfter.Before(reset) {
		t.Errorf("other run paused (%s) until %v, want quota until %v", o.PauseReason, o.ResumeAfter, reset)
	}
	// An early invocation is refused.
	if out, _ := eng.Run(ctx, ref); out != export.Skipped {
		t.Errorf("Run(before the reset) = %s, want skipped", out)
	}

	// The dispatcher starts nothing before the reset, both runs after it.
	inv := &recordingInvoker{}
	d, err := dispatch.New(dispatch.Config{Store: b.store, Invoker: inv, Pauses: dispatch.QuotaPauses{Store: b.pauses},
		Now: b.clk.Now, Sleep: func(context.Context, time.Duration) {}})
	if err != nil {
		t.Fatal(err)
	}
	// A queued run of the paused app (past its start guard) waits too.
	b.clk.Set(reset.Add(-90 * time.Second))
	queued := b.connector()
	b.clk.Set(reset.Add(-10 * time.Second))
	rep, err := d.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.take(); len(got) != 0 || rep.Paused != 1 {
		t.Fatalf("tick before the reset invoked %v (paused %d), want nothing invoked and the queued run held", got, rep.Paused)
	}
	// The new hour has the app's whole quota.
	b.sim.SetRateLimits(atlassiansim.RateLimitConfig{GlobalPointsPerHour: 100 * refPoints, NoBurst: true})
	b.clk.Set(reset.Add(time.Second))
	if _, err := d.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	got := inv.take()
	if len(got) != 3 {
		t.Fatalf("tick after the reset invoked %v, want both paused runs and the queued one", got)
	}
	for _, g := range got {
		if r := b.finish(eng, g); r.Status != connectors.RunSucceeded {
			t.Fatalf("run %s = %s %v after the reset", g.RunID, r.Status, r.Errors)
		}
	}
	b.sameMirror(reference, ref)
	b.sameMirror(reference, other)
	b.sameMirror(reference, queued)

	// The ledger holds what the simulator charged, across both hours.
	total := b.sim.Counters().PointsTotal - before.PointsTotal
	var ledger int64
	for _, at := range []time.Time{reset.Add(-time.Hour), reset} {
		u, err := b.ledger.Usage(ctx, at, b.connID)
		if err != nil {
			t.Fatal(err)
		}
		ledger += u.ByConnection[b.connID]
		if u.App < u.ByConnection[b.connID] {
			t.Errorf("hour %v: app %d < connection %d", at, u.App, u.ByConnection[b.connID])
		}
	}
	if ledger != total {
		t.Errorf("ledger has %d points for the connection, the simulator charged %d", ledger, total)
	}
}

// A storm of burst 429s, 503s and dropped connections across every endpoint: the run finishes with the same
// documents as a run without faults.
func TestFaultStormKeepsTheMirror(t *testing.T) {
	t.Parallel()
	b := newBudgetWorld(t, 30*time.Minute)
	eng := b.engine()
	reference := b.connector()
	if r := b.finish(eng, reference); r.Status != connectors.RunSucceeded {
		t.Fatalf("reference run = %s %v", r.Status, r.Errors)
	}

	kinds := []atlassiansim.Fault{
		{Endpoint: "*", Kind: atlassiansim.FaultRateLimit, Reason: atlassiansim.ReasonBurst, RetryAfter: 1, Count: 1},
		{Endpoint: "*", Kind: atlassiansim.FaultStatus, Status: 503, Count: 1},
		{Endpoint: "*", Kind: atlassiansim.FaultStatus, Status: 502, Count: 1},
		{Endpoint: "*", Kind: atlassiansim.FaultReset, Count: 1},
	}
	var seen, injected atomic.Int64
	const storm = 24
	b.setHook(func(o jira.Observation) {
		// Every second answer arms one fault for a later request, until the storm is spent.
		if o.Status/100 == 2 && seen.Add(1)%2 == 0 && injected.Load() < storm {
			n := injected.Add(1)
			if err := b.sim.SetFault(kinds[n%int64(len(kinds))]); err != nil {
				t.Error(err)
			}
		}
	})
	ref := b.connector()
	r := b.finish(eng, ref)
	b.setHook(nil)
	b.sim.ClearFaults("*")
	if r.Status != connectors.RunSucceeded {
		t.Fatalf("run under the storm = %s %v", r.Status, r.Errors)
	}
	if injected.Load() < storm/2 {
		t.Errorf("only %d faults were injected; the storm did not happen", injected.Load())
	}
	b.sameMirror(reference, ref)
}

// jiraRequests counts the requests that reached the simulator's Jira API.
func jiraRequests(c atlassiansim.Counters) int64 {
	var n int64
	for k, v := range c.Requests {
		if strings.Contains(k, "/rest/api/") {
			n += v
		}
	}
	return n
}

// Fairness on a controllable clock: one connection with a backlog far above a low app budget and ten small
// ones, dispatcher ticks every five simulated minutes admitting work under the budget (shared/dispatch with the
// ratebudget adapters) and export runs invoked in-process. The small ones finish in the first hour, the large one
// progresses every hour, the simulator's quota (set to the budget) never answers a 429, and the app's points per
// hour in the ledger stay within the budget.
func TestFairSharingUnderALowBudget(t *testing.T) {
	t.Parallel()
	const budget, hours, smalls = 1000, 3, 10
	clk := &atlassiansim.OffsetClock{}
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	clk.Set(t0)
	w := newWorld(t, worldOpts{sim: atlassiansim.Config{Clock: clk, Sites: 1, ProjectsPerSite: smalls + 1, IssuesPerProject: 300}})
	ctx := t.Context()
	db := w.env.Clients.DynamoDB
	b := &budgetWorld{world: w, clk: clk,
		store:  connectors.NewStore(db, w.env.Table, connectors.WithClock(clk.Now)),
		pauses: ratebudget.NewPauses(db, w.env.Table, table.WithClock(clk.Now)),
		ledger: ratebudget.NewLedger(db, w.env.Table, table.WithClock(clk.Now)),
	}
	// Tokens are refreshed by the simulator's time, which runs hours ahead here.
	b.tok = b.tokens(tokens.WithClock(clk.Now))
	eng := b.engine()
	b.sim.SetRateLimits(atlassiansim.RateLimitConfig{GlobalPointsPerHour: budget, NoBurst: true})

	// The world's connection is the large one: every project, 3,300 issues (about 3,400 points).
	var keys []string
	for _, p := range w.site.Projects {
		keys = append(keys, p.Key)
	}
	spec := func(jql string) connectors.Spec {
		return connectors.Spec{Name: "fair", SiteID: w.site.CloudID, JQL: jql, Formats: []string{"json"},
			Schedule: connectors.Schedule{Expression: "rate(1 day)", Timezone: "UTC"}}
	}
	start := func(connID string, s connectors.Spec) connectors.RunRef {
		c, err := b.store.Create(ctx, connID, s, clk.Now().Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		r, err := b.store.StartRun(ctx, connID, c.ID, connectors.TriggerManual)
		if err != nil {
			t.Fatal(err)
		}
		return connectors.RunRef{ConnectionID: connID, ConnectorID: c.ID, RunID: r.ID}
	}
	putToken := func(connID string) {
		tr, err := w.sim.IssueTokens(w.user, "read:jira-work", "read:jira-user", "offline_access")
		if err != nil {
			t.Fatal(err)
		}
		tok := (&oauth2.Token{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, TokenType: "Bearer",
			Expiry: clk.Now().Add(time.Duration(tr.ExpiresIn) * time.Second)}).WithExtra(map[string]any{"scope": tr.Scope})
		if err := b.tok.Put(ctx, connID, tok, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	putToken(w.connID) // its expiry in the simulator's time
	large := start(w.connID, spec("project in ("+strings.Join(keys, ", ")+")"))
	var small []connectors.RunRef
	for i := range smalls {
		c := &connections.Connection{ID: connections.NewID(), Status: connections.StatusActive, GrantStartedAt: clk.Now(),
			Sites: []connections.Site{{CloudID: w.site.CloudID, URL: w.site.URL, Name: w.site.Name, Scopes: []string{"read:jira-work"}}}}
		if err := w.conns.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		putToken(c.ID)
		p := w.site.Projects[i].Key
		small = append(small, start(c.ID, spec("project = "+p+" AND key <= "+p+"-8")))
	}

	inv := &recordingInvoker{}
	d, err := dispatch.New(dispatch.Config{Store: b.store, Invoker: inv, Pauses: dispatch.QuotaPauses{Store: b.pauses},
		Budget: dispatch.PointsBudget{Ledger: b.ledger, Allocator: ratebudget.Allocator{HourlyBudget: budget, MinGrant: 50}},
		Now:    clk.Now, Sleep: func(context.Context, time.Duration) {}})
	if err != nil {
		t.Fatal(err)
	}
	var progress []int64
	for k := 1; k <= hours*12; k++ {
		clk.Set(t0.Add(time.Duration(k) * 5 * time.Minute).Add(-30 * time.Second))
		if _, err := d.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		for _, ref := range inv.take() {
			rctx, cancel := context.WithTimeout(ctx, 6*time.Hour)
			if _, err := eng.Run(rctx, ref); err != nil {
				t.Fatalf("Run(%s) = %v", ref.RunID, err)
			}
			cancel()
		}
		if k%12 == 0 { // the hour's last tick is done
			progress = append(progress, b.run(large).Counters.IssuesDone)
			if k == 12 {
				for _, ref := range small {
					if r := b.run(ref); r.Status != connectors.RunSucceeded {
						t.Errorf("small run %s = %s after the first hour, want succeeded", ref.ConnectionID, r.Status)
					}
				}
			}
		}
	}
	lr := b.run(large)
	t.Logf("large run's issues done at the end of each hour: %v; now %s (%s) %v", progress, lr.Status, lr.PauseReason, lr.Errors)
	for h, n := range progress {
		if n == 0 || (h > 0 && n <= progress[h-1]) {
			t.Errorf("hour %d: the large run stands at %d issues (%v); want progress every hour", h, n, progress)
		}
	}
	if r := b.run(large); r.Status == connectors.RunSucceeded {
		t.Errorf("the large run finished; its backlog should exceed %d hours of budget", hours)
	}
	if rl := b.sim.Counters().RateLimited; len(rl) != 0 {
		for reason, n := range rl {
			if n != 0 {
				t.Errorf("the simulator answered %d 429s (%s); want none", n, reason)
			}
		}
	}
	for h := range hours {
		u, err := b.ledger.Usage(ctx, t0.Add(time.Duration(h)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("hour %d: app points %d (budget %d)", h, u.App, budget)
		if u.App > budget || u.App == 0 {
			t.Errorf("hour %d: the app spent %d points, want within the budget %d", h, u.App, budget)
		}
	}
}

// TestStarterAllowanceStopsTheFirstInvocation: a run started with an allowance (what the connectors API gives a
// run it starts at once, connectors.WithAllowance) checkpoints and pauses, reason budget, once its first
// invocation has spent it, overshooting by at most one page and its follow-ups; resumed (as the dispatcher's
// admission would), it finishes with the mirror of a run that had no allowance.
func TestStarterAllowanceStopsTheFirstInvocation(t *testing.T) {
	t.Parallel()
	b := newBudgetWorld(t, 2*time.Hour) // no quota reset during the test
	eng := b.engine()
	ref := b.connector()
	whole := b.finish(eng, ref)
	if whole.Status != connectors.RunSucceeded {
		t.Fatalf("reference run = %s %v", whole.Status, whole.Errors)
	}
	const allowance = 150
	c, err := b.store.Create(t.Context(), b.connID, b.world.connector.Spec, b.clk.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.store.StartRun(t.Context(), b.connID, c.ID, connectors.TriggerManual, connectors.WithAllowance(allowance))
	if err != nil {
		t.Fatal(err)
	}
	got := connectors.RunRef{ConnectionID: b.connID, ConnectorID: c.ID, RunID: r.ID}
	if _, err := eng.Run(t.Context(), got); err != nil {
		t.Fatal(err)
	}
	first := b.run(got)
	// The allowance is checked between steps, so the step that crosses it ends: its search page (up to 100
	// issues) and that page's follow-ups. Here the first page crosses it.
	if first.Status != connectors.RunPaused || first.PauseReason != export.ReasonBudget || first.Counters.PointsSpent < allowance ||
		first.Counters.IssuesDone > 100 || first.Counters.PointsSpent >= whole.Counters.PointsSpent {
		t.Fatalf("after its first invocation the run is %s (%s): %d issues, %d points; want paused for budget after at least %d points, "+
			"within one search page (the whole run: %d issues, %d points)", first.Status, first.PauseReason, first.Counters.IssuesDone,
			first.Counters.PointsSpent, allowance, whole.Counters.IssuesDone, whole.Counters.PointsSpent)
	}
	if r := b.finish(eng, got); r.Status != connectors.RunSucceeded {
		t.Fatalf("resumed run = %s %v", r.Status, r.Errors)
	}
	b.sameMirror(ref, got)
}
