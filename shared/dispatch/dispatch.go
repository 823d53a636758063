// Package dispatch is the dispatcher's tick: every minute it starts the runs of due connectors, hands waiting
// runs (queued, paused, abandoned by a crashed export) to the export function, and keeps a burst of work from
// stampeding Atlassian.
//
// Safety under overlap and redelivery rests on the store's conditional writes, not on this package running once:
// a connector's run is created in the same transaction that moves its schedule and requires the version the tick
// read (two ticks: one run); a run is handed to an invocation only through ClaimDispatch (two ticks: one invoke
// per DispatchGuard); and an export invocation works only under the run's lease (a duplicate async event: a
// no-op). The tick may therefore crash, overlap with another, or be retried at any point.
package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/logging"
	"jiraexport/shared/schedule"
)

// Invoker starts an export invocation of one run (production: an asynchronous Lambda Invoke of the export
// function, shared/invoke). Delivery may be duplicated; the export's lease makes that harmless.
type Invoker interface {
	Invoke(ctx context.Context, ref connectors.RunRef) error
}

// PauseSet is the quota pauses in force at one moment: nothing of a paused scope may call Jira before its time.
type PauseSet struct {
	// Global is the end of an app-wide pause (zero: none).
	Global time.Time
	// Sites maps a site's cloud id to the end of its pause.
	Sites map[string]time.Time
}

// Until reports whether site cloudID is paused at now, and until when (the later of both pauses).
func (p PauseSet) Until(cloudID string, now time.Time) (time.Time, bool) {
	until := p.Global
	if s, ok := p.Sites[cloudID]; ok && s.After(until) {
		until = s
	}
	return until, until.After(now)
}

// anySite reports whether any of sites is paused at now (an app-wide pause included).
func (p PauseSet) anySite(sites []string, now time.Time) bool {
	if p.Global.After(now) {
		return true
	}
	for _, s := range sites {
		if p.Sites[s].After(now) {
			return true
		}
	}
	return false
}

// Pauses reads the quota pauses in force (shared/ratebudget's pause store, through a small adapter). A run of a
// paused site is neither started nor resumed until its pause ends.
type Pauses interface {
	InForce(ctx context.Context) (PauseSet, error)
}

// Demand is a run that could be handed to an invocation this tick.
type Demand struct {
	Ref    connectors.RunRef
	SiteID string
	// Points estimates what the run still needs (0: unknown).
	Points int64
}

// Running is a run an export invocation holds now (leased): what its invocation was allowed and has spent, so a
// budget does not hand out the same points twice.
type Running struct {
	Ref    connectors.RunRef
	SiteID string
	// Allowance is what the dispatcher granted its current invocation (0: none set); Spent is the run's points
	// so far (all invocations; counters.pointsSpent) and SpentAtGrant what they were when the allowance was
	// granted, so Spent − SpentAtGrant is what the invocation has spent of it.
	Allowance, Spent, SpentAtGrant int64
}

// Admission is what a Budget decides on: the tick's moment, the runs that want to start (quota pauses already
// applied) in priority order, and the runs at work.
type Admission struct {
	Now     time.Time
	Demands []Demand
	Running []Running
}

// Grant admits one demand for this tick with a points allowance for its invocation (0: no allowance set; the
// run records it as connectors.Run.Allowance for the export to honour).
type Grant struct {
	Ref    connectors.RunRef
	Points int64
}

// Budget admits work under the app's points budget (shared/ratebudget's Allocator with its Ledger, through a
// small adapter): it returns the admitted demands, in the order they should start. Demands it leaves out wait for
// a later tick.
type Budget interface {
	Admit(ctx context.Context, a Admission) ([]Grant, error)
}

// Unlimited is the default Budget: every demand is admitted, without an allowance. The per-tick cap still
// bounds how many start at once.
type Unlimited struct{}

// Admit implements Budget.
func (Unlimited) Admit(_ context.Context, a Admission) ([]Grant, error) {
	out := make([]Grant, len(a.Demands))
	for i, d := range a.Demands {
		out[i] = Grant{Ref: d.Ref}
	}
	return out, nil
}

// Sweeper is work the dispatcher triggers once per tick besides runs, such as erasing connections whose grant
// stayed revoked past the retention period (the purge's core). Its failure is logged and does not fail the tick.
type Sweeper interface {
	Sweep(ctx context.Context, now time.Time) error
}

// Defaults of a Dispatcher.
const (
	// DefaultMaxStarts bounds the export invocations one tick starts: a burst of due connectors starts over
	// several minutes instead of at once.
	DefaultMaxStarts = 200
	// DefaultMaxDue bounds the due connectors one tick reads from the index: the most overdue, keys only (about
	// 260 bytes each, 5 MB at most); the budget shares its admissions across the connections among them.
	// DefaultMaxActive bounds the active runs it reads (with their items).
	DefaultMaxDue    = 20000
	DefaultMaxActive = 5000
	// DefaultStartGap and DefaultMaxSpread spread the starts of one tick: n starts are spread over
	// min(n × StartGap, MaxSpread), each at an offset derived from its run id.
	DefaultStartGap  = 250 * time.Millisecond
	DefaultMaxSpread = 30 * time.Second
	// DefaultWriters is how many store writes and invokes a tick has in flight at once. Only admitted runs (and
	// schedules that move on) are written, one request each.
	DefaultWriters = 32
)

// Config wires a Dispatcher. Store and Invoker are required.
type Config struct {
	Store   *connectors.Store
	Invoker Invoker
	Budget  Budget  // nil: Unlimited
	Pauses  Pauses  // nil: no pauses
	Sweeper Sweeper // nil: none
	Log     *slog.Logger
	Now     func() time.Time
	// Sleep waits d or until ctx ends (tests replace it so a spread costs no wall time).
	Sleep func(ctx context.Context, d time.Duration)

	MaxStarts, MaxDue, MaxActive int
	StartGap, MaxSpread          time.Duration
	Writers                      int
}

// Dispatcher runs ticks.
type Dispatcher struct{ cfg Config }

// New returns a Dispatcher with cfg's zero fields set to their defaults.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Store == nil || cfg.Invoker == nil {
		return nil, errors.New("dispatch: a store and an invoker are required")
	}
	if cfg.Budget == nil {
		cfg.Budget = Unlimited{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MaxStarts, DefaultMaxStarts)
	def(&cfg.MaxDue, DefaultMaxDue)
	def(&cfg.MaxActive, DefaultMaxActive)
	def(&cfg.Writers, DefaultWriters)
	if cfg.StartGap < 0 {
		cfg.StartGap = 0
	} else if cfg.StartGap == 0 {
		cfg.StartGap = DefaultStartGap
	}
	if cfg.MaxSpread == 0 {
		cfg.MaxSpread = DefaultMaxSpread
	}
	return &Dispatcher{cfg: cfg}, nil
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Report is what one tick did, in counts (it is logged as the tick's audit line).
type Report struct {
	Due        int `json:"due"`      // due connectors read from the index
	Created    int `json:"created"`  // scheduled runs created (each admitted)
	Advanced   int `json:"advanced"` // schedules moved on without a run (previous run still active)
	Inactive   int `json:"inactive"` // due connectors and runs skipped: connection not active
	Lost       int `json:"lost"`     // writes another tick or a user won (not an error)
	Active     int `json:"active"`   // active runs read
	Waiting    int `json:"waiting"`  // runs and due connectors that wait for an invocation
	Paused     int `json:"paused"`   // runs and due connectors held back by a quota pause
	Admitted   int `json:"admitted"` // runs the budget and the cap admitted
	Deferred   int `json:"deferred"` // runs and due connectors left for a later tick (budget or cap)
	Invoked    int `json:"invoked"`  // export invocations started
	InvokeErrs int `json:"invokeErrors"`
	Reads      int `json:"reads"`  // DynamoDB read requests
	Writes     int `json:"writes"` // DynamoDB write requests
	Errors     int `json:"errors"` // store errors (the tick went on)
}

// candidate is an active run that waits for an invocation.
type candidate struct {
	ref    connectors.RunRef
	site   string
	points int64
}

// maxRounds bounds how often one tick asks the budget again after an admitted due connector turned out not to
// be startable (the index lags its item).
const maxRounds = 4

// Tick does one round of work. It returns an error only when it could not read its work; everything else
// (a lost race, one failed write or invoke) is counted in the report and left to the next tick.
//
// The due index is the queue. The budget admits from the index's keys (the connection of each due connector is
// in its key), the tick reads the items of the admitted ones only, and creates runs only for them: a due
// connector that is not admitted is not written at all, keeps its place (its due time) and is admitted at a
// later tick, most overdue first.
func (d *Dispatcher) Tick(ctx context.Context) (Report, error) {
	var rep Report
	now := d.cfg.Now().UTC()
	work, err := d.cfg.Store.Work(ctx, now, connectors.WorkLimits{Due: d.cfg.MaxDue, Active: d.cfg.MaxActive})
	if err != nil {
		return rep, fmt.Errorf("dispatch: read work: %w", err)
	}
	rep.Reads, rep.Due, rep.Active = work.Reads, len(work.Due), len(work.Active)
	pauses := PauseSet{}
	if d.cfg.Pauses != nil {
		if pauses, err = d.cfg.Pauses.InForce(ctx); err != nil {
			// Without knowing the pauses nothing may start: a quota wall hit by surprise stops every customer.
			return rep, fmt.Errorf("dispatch: read quota pauses: %w", err)
		}
	}
	_, globalPause := pauses.Until("", now)

	// Waiting active runs, least recently handed to an invocation first (never, then oldest: a round robin, so a
	// run that keeps pausing cannot crowd out one that has not started), and the runs at work.
	var waiting []candidate
	var running []Running
	hasRun := map[string]bool{}
	active := slices.Clone(work.Active)
	slices.SortStableFunc(active, func(a, b connectors.ActiveRun) int {
		return cmp.Compare(dispatchedMs(a.Run), dispatchedMs(b.Run))
	})
	for _, a := range active {
		hasRun[a.Run.ConnectorID] = true
		if a.Connection != connections.StatusActive {
			rep.Inactive++
			continue
		}
		if a.Connector == nil {
			continue
		}
		if !a.Run.Dispatchable(now, d.cfg.Store.DispatchGuard()) {
			if a.Run.Status == connectors.RunRunning && a.Run.LeaseUntil != nil {
				running = append(running, Running{Ref: refOf(a.Run), SiteID: a.Connector.SiteID,
					Allowance: a.Run.Allowance, Spent: a.Run.Counters.PointsSpent, SpentAtGrant: a.Run.AllowanceBase})
			}
			continue
		}
		if _, paused := pauses.Until(a.Connector.SiteID, now); paused {
			rep.Paused++
			continue
		}
		waiting = append(waiting, candidate{ref: refOf(a.Run), site: a.Connector.SiteID, points: remaining(a.Run)})
	}

	// Due connectors, in queue order. Those whose schedule only moves on (a run still active, a connection that
	// cannot run) and those whose site may be paused need their items now; the others only if admitted.
	var advance, toRead []connectors.DueRef
	seen := map[string]bool{}
	queue := make([]connectors.DueRef, 0, len(work.Due))
	for _, r := range work.Due {
		if seen[r.ConnectorID] {
			continue // listed twice while the index moves it between partitions
		}
		seen[r.ConnectorID] = true
		info := work.Connections[r.ConnectionID]
		switch {
		case info.Status != connections.StatusActive:
			// Nothing starts for a connection that cannot run (re-authorisation needed, being erased, gone): its
			// missed occurrences are skipped rather than queued up for later.
			rep.Inactive++
			advance = append(advance, r)
		case hasRun[r.ConnectorID]:
			advance = append(advance, r)
		case globalPause:
			rep.Paused++ // it keeps its place in the queue
		default:
			if pauses.anySite(info.Sites, now) {
				toRead = append(toRead, r)
			}
			queue = append(queue, r)
		}
	}
	items := map[string]*connectors.Connector{} // due connectors read, still due by their items
	read := map[string]bool{}
	readItems := func(refs []connectors.DueRef) error {
		if len(refs) == 0 {
			return nil
		}
		got, n, err := d.cfg.Store.DueConnectors(ctx, refs, now)
		rep.Reads += n
		if err != nil {
			return fmt.Errorf("dispatch: read due connectors: %w", err)
		}
		for _, r := range refs {
			read[r.ConnectorID] = true
			if c := got[r.ConnectorID]; c != nil {
				items[r.ConnectorID] = c
			}
		}
		return nil
	}
	if err := readItems(append(slices.Clone(advance), toRead...)); err != nil {
		return rep, err
	}
	// excluded: due connectors the items showed cannot start now (index lag, a run the index did not show, a
	// paused site); they are not shown to the budget again.
	excluded := map[string]bool{}
	exclude := func(r connectors.DueRef) bool {
		c, isRead := items[r.ConnectorID], read[r.ConnectorID]
		switch {
		case !isRead:
			return false
		case c == nil:
			excluded[r.ConnectorID] = true
		case c.ActiveRunID != "":
			excluded[r.ConnectorID] = true
			advance = append(advance, r)
		default:
			if _, paused := pauses.Until(c.SiteID, now); paused {
				excluded[r.ConnectorID] = true
				rep.Paused++
			}
		}
		return excluded[r.ConnectorID]
	}
	fresh := map[string]connectors.DueRef{} // by the new run's id
	runIDs := map[string]string{}           // connector id -> the id its run would get this tick
	for _, r := range queue {
		runIDs[r.ConnectorID] = connectors.NewID(now)
		exclude(r)
	}

	// Quota pauses (above), then the budget, then the cap decide what starts now. The budget sees the keys only;
	// the items of what it admits are read, and when one turns out not startable the budget is asked again
	// without it, so the tick admits what the budget allows, not less.
	var grants []Grant
	var demands []Demand
	for round := 1; ; round++ {
		demands = demands[:0]
		for _, c := range waiting {
			demands = append(demands, Demand{Ref: c.ref, SiteID: c.site, Points: c.points})
		}
		for _, r := range queue {
			if excluded[r.ConnectorID] {
				continue
			}
			ref := connectors.RunRef{ConnectionID: r.ConnectionID, ConnectorID: r.ConnectorID, RunID: runIDs[r.ConnectorID]}
			fresh[ref.RunID] = r
			site := ""
			if c := items[r.ConnectorID]; c != nil {
				site = c.SiteID
			}
			demands = append(demands, Demand{Ref: ref, SiteID: site})
		}
		grants, err = d.cfg.Budget.Admit(ctx, Admission{Now: now, Demands: demands, Running: running})
		if err != nil {
			d.cfg.Log.ErrorContext(ctx, "dispatch: budget admission failed; starting nothing this tick", "error", err)
			grants = nil
		}
		if len(grants) > d.cfg.MaxStarts {
			grants = grants[:d.cfg.MaxStarts]
		}
		var unread []connectors.DueRef
		for _, g := range grants {
			if r, ok := fresh[g.Ref.RunID]; ok && !read[r.ConnectorID] {
				unread = append(unread, r)
			}
		}
		if len(unread) == 0 {
			break
		}
		if round == maxRounds {
			// Rare (the index lagging round after round): admit only what was verified; the rest waits.
			grants = slices.DeleteFunc(grants, func(g Grant) bool {
				r, ok := fresh[g.Ref.RunID]
				return ok && !read[r.ConnectorID]
			})
			break
		}
		if err := readItems(unread); err != nil {
			return rep, err
		}
		again := false
		for _, r := range unread {
			if exclude(r) {
				again = true
			}
		}
		if !again {
			break
		}
	}
	rep.Waiting = len(demands)
	rep.Admitted = len(grants)
	rep.Deferred = len(demands) - len(grants)

	// Writes: each admitted due connector gets its run, dispatched now, and its schedule moved in one
	// transaction; each admitted waiting run is claimed; schedules of connectors that cannot start move on. Only
	// what was written is invoked.
	var counters struct{ writes, lost, errs, advanced, created atomic.Int64 }
	storeErr := func(what string, err error, attrs ...any) {
		switch {
		case errors.Is(err, connectors.ErrNotDue), errors.Is(err, connectors.ErrActiveRun),
			errors.Is(err, connectors.ErrNotActive), errors.Is(err, connectors.ErrNotDispatchable),
			errors.Is(err, connectors.ErrNotFound):
			counters.lost.Add(1)
		default:
			counters.errs.Add(1)
			d.cfg.Log.ErrorContext(ctx, "dispatch: "+what, append(attrs, "error", err)...)
		}
	}
	var mu sync.Mutex
	var toInvoke []connectors.RunRef
	par := newPool(d.cfg.Writers)
	for _, r := range advance {
		c := items[r.ConnectorID]
		if c == nil {
			continue // not due by its item
		}
		par.do(func() {
			counters.writes.Add(1)
			if err := d.cfg.Store.AdvanceSchedule(ctx, c, nextRun(c, now)); err != nil {
				storeErr("advance schedule", err, "connectionId", c.ConnectionID, "connectorId", c.ID)
				return
			}
			counters.advanced.Add(1)
		})
	}
	for _, g := range grants {
		r, isDue := fresh[g.Ref.RunID]
		par.do(func() {
			counters.writes.Add(1)
			if isDue {
				c := items[r.ConnectorID]
				if _, err := d.cfg.Store.StartScheduledRun(ctx, c, g.Ref.RunID, nextRun(c, now), true, g.Points); err != nil {
					storeErr("start scheduled run", err, "connectionId", g.Ref.ConnectionID, "connectorId", g.Ref.ConnectorID)
					return
				}
				counters.created.Add(1)
			} else if err := d.cfg.Store.ClaimDispatch(ctx, g.Ref, g.Points); err != nil {
				storeErr("claim run", err, "connectionId", g.Ref.ConnectionID, "runId", g.Ref.RunID)
				return
			}
			mu.Lock()
			toInvoke = append(toInvoke, g.Ref)
			mu.Unlock()
		})
	}
	par.wait()
	rep.Writes, rep.Lost, rep.Errors = int(counters.writes.Load()), int(counters.lost.Load()), int(counters.errs.Load())
	rep.Created, rep.Advanced = int(counters.created.Load()), int(counters.advanced.Load())

	rep.Invoked, rep.InvokeErrs = d.invoke(ctx, now, toInvoke)

	if d.cfg.Sweeper != nil {
		if err := d.cfg.Sweeper.Sweep(ctx, now); err != nil {
			d.cfg.Log.ErrorContext(ctx, "dispatch: sweep failed", "error", err)
		}
	}
	d.cfg.Log.InfoContext(ctx, "tick", rep.attrs()...)
	return rep, nil
}

// attrs are the report's counts as flat log attributes (ids and counts only).
func (r Report) attrs() []any {
	return []any{"due", r.Due, "created", r.Created, "advanced", r.Advanced, "inactive", r.Inactive, "lost", r.Lost,
		"active", r.Active, "waiting", r.Waiting, "paused", r.Paused, "admitted", r.Admitted, "deferred", r.Deferred,
		"invoked", r.Invoked,
		"invokeErrors", r.InvokeErrs, "reads", r.Reads, "writes", r.Writes, "errors", r.Errors}
}

// invoke starts the export of each run, spread over the tick (see Spread), and returns how many invocations
// started and failed. A failed invocation is left to a later tick (after connectors.DispatchGuard).
func (d *Dispatcher) invoke(ctx context.Context, tickStart time.Time, refs []connectors.RunRef) (ok, failed int) {
	window := min(time.Duration(len(refs))*d.cfg.StartGap, d.cfg.MaxSpread)
	if dl, has := ctx.Deadline(); has {
		// Every start happens well before the function's own deadline.
		window = min(window, time.Until(dl)-5*time.Second)
	}
	var nOK, nFailed atomic.Int64
	par := newPool(d.cfg.Writers)
	var wg sync.WaitGroup
	for _, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.cfg.Sleep(ctx, tickStart.Add(Offset(ref.RunID, window)).Sub(d.cfg.Now()))
			par.do(func() {
				rctx := logging.WithRunID(ctx, ref.RunID)
				if err := d.cfg.Invoker.Invoke(rctx, ref); err != nil {
					nFailed.Add(1)
					d.cfg.Log.ErrorContext(rctx, "dispatch: invoke export failed", "connectionId", ref.ConnectionID,
						"connectorId", ref.ConnectorID, "error", err)
					return
				}
				nOK.Add(1)
			})
		}()
	}
	wg.Wait()
	par.wait()
	return int(nOK.Load()), int(nFailed.Load())
}

// Offset is run runID's start offset in a spread window: deterministic (every tick, and a retried tick, computes
// the same for the same run) and uniform, so runs due in the same minute start evenly apart, as Atlassian asks of
// scheduled jobs. FNV-1a, the same rule as shared/ratebudget's StartOffset.
func Offset(runID string, window time.Duration) time.Duration {
	if window <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(runID))
	return time.Duration(h.Sum64() % uint64(window)) //nolint:gosec // the remainder is below window, an int64
}

func dispatchedMs(r *connectors.Run) int64 {
	if r.DispatchedAt == nil {
		return 0
	}
	return r.DispatchedAt.UnixMilli()
}

func refOf(r *connectors.Run) connectors.RunRef {
	return connectors.RunRef{ConnectionID: r.ConnectionID, ConnectorID: r.ConnectorID, RunID: r.ID}
}

// remaining estimates the points a run still needs from its progress (about one per issue, plus a search page
// per hundred); 0 when it has not counted yet.
func remaining(r *connectors.Run) int64 {
	left := r.Counters.ApproxTotal - r.Counters.IssuesDone
	if r.Counters.ApproxTotal <= 0 || left <= 0 {
		return 0
	}
	return left + left/100 + 1
}

// nextRun is c's next occurrence after now (zero: none, or a schedule that no longer parses, which takes the
// connector off the due index rather than failing every tick). It counts from the occurrence that was due, not
// from the tick, so a rate schedule keeps its phase however late the tick runs; occurrences missed while nothing
// ran (an outage) are skipped, not made up.
func nextRun(c *connectors.Connector, now time.Time) time.Time {
	if !c.Scheduled() {
		return time.Time{}
	}
	s, err := schedule.Parse(c.Schedule.Expression, c.Schedule.Timezone)
	if err != nil {
		return time.Time{}
	}
	if c.NextRunAt == nil {
		return s.Next(now)
	}
	n := s.Next(*c.NextRunAt)
	for i := 0; !n.IsZero() && !n.After(now) && i < 1000; i++ {
		n = s.Next(n)
	}
	if !n.After(now) {
		return s.Next(now)
	}
	return n
}

// pool runs functions with at most n in flight.
type pool struct {
	sem chan struct{}
	wg  sync.WaitGroup
}

func newPool(n int) *pool { return &pool{sem: make(chan struct{}, n)} }

func (p *pool) do(f func()) {
	p.wg.Add(1)
	p.sem <- struct{}{}
	go func() {
		defer func() { <-p.sem; p.wg.Done() }()
		f()
	}()
}

func (p *pool) wait() { p.wg.Wait() }
