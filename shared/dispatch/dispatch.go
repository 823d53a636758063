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
	// so far (all invocations; counters.pointsSpent).
	Allowance, Spent int64
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
	// DefaultMaxDue and DefaultMaxActive bound what one tick reads of the index partitions.
	DefaultMaxDue    = 5000
	DefaultMaxActive = 5000
	// DefaultStartGap and DefaultMaxSpread spread the starts of one tick: n starts are spread over
	// min(n × StartGap, MaxSpread), each at an offset derived from its run id.
	DefaultStartGap  = 250 * time.Millisecond
	DefaultMaxSpread = 30 * time.Second
	// DefaultWriters is how many store writes and invokes a tick has in flight at once. Each due connector costs
	// one transaction (about 10 ms in DynamoDB): 32 in flight start 10,000 due connectors in about 3 s.
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
	Due        int `json:"due"`      // due connectors read
	Created    int `json:"created"`  // scheduled runs created
	Advanced   int `json:"advanced"` // schedules moved on without a run (previous run still active)
	Inactive   int `json:"inactive"` // due connectors and runs skipped: connection not active
	Lost       int `json:"lost"`     // writes another tick or a user won (not an error)
	Active     int `json:"active"`   // active runs read
	Waiting    int `json:"waiting"`  // runs that wait for an invocation
	Paused     int `json:"paused"`   // runs held back by a quota pause
	Deferred   int `json:"deferred"` // runs left for a later tick (budget or cap)
	Invoked    int `json:"invoked"`  // export invocations started
	InvokeErrs int `json:"invokeErrors"`
	Reads      int `json:"reads"`  // DynamoDB read requests
	Writes     int `json:"writes"` // DynamoDB write requests
	Errors     int `json:"errors"` // store errors (the tick went on)
}

// candidate is a run that could be handed to an invocation this tick: a new one of a due connector, or an
// active one that waits.
type candidate struct {
	ref    connectors.RunRef
	site   string
	points int64
	due    *connectors.Connector // set for a due connector's new run
	next   time.Time             // its next occurrence
}

// Tick does one round of work. It returns an error only when it could not read its work; everything else
// (a lost race, one failed write or invoke) is counted in the report and left to the next tick.
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

	// Candidates: waiting active runs first, least recently handed to an invocation first (never, then oldest:
	// a round robin, so a run that keeps pausing cannot crowd out one that has not started), then new runs of due
	// connectors (most overdue first).
	var cands []candidate
	var running []Running
	active := slices.Clone(work.Active)
	slices.SortStableFunc(active, func(a, b connectors.ActiveRun) int {
		return cmp.Compare(dispatchedMs(a.Run), dispatchedMs(b.Run))
	})
	for _, a := range active {
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
					Allowance: a.Run.Allowance, Spent: a.Run.Counters.PointsSpent})
			}
			continue
		}
		cands = append(cands, candidate{ref: refOf(a.Run), site: a.Connector.SiteID, points: remaining(a.Run)})
	}
	var advance []*connectors.Connector
	for _, dc := range work.Due {
		c := dc.Connector
		switch {
		case dc.Connection != connections.StatusActive:
			// Nothing starts for a connection that cannot run (re-authorisation needed, being erased, gone): its
			// missed occurrences are skipped rather than queued up for later.
			rep.Inactive++
			advance = append(advance, c)
		case c.ActiveRunID != "":
			advance = append(advance, c)
		default:
			ref := connectors.RunRef{ConnectionID: c.ConnectionID, ConnectorID: c.ID, RunID: connectors.NewID(now)}
			cands = append(cands, candidate{ref: ref, site: c.SiteID, due: c, next: nextRun(c, now)})
		}
	}
	rep.Waiting = len(cands)

	// Quota pauses, then the budget, then the cap decide which candidates are handed to an invocation now.
	var demands []Demand
	for _, c := range cands {
		if _, paused := pauses.Until(c.site, now); paused {
			rep.Paused++
			continue
		}
		demands = append(demands, Demand{Ref: c.ref, SiteID: c.site, Points: c.points})
	}
	grants, err := d.cfg.Budget.Admit(ctx, Admission{Now: now, Demands: demands, Running: running})
	if err != nil {
		d.cfg.Log.ErrorContext(ctx, "dispatch: budget admission failed; starting nothing this tick", "error", err)
		grants = nil
	}
	if len(grants) > d.cfg.MaxStarts {
		grants = grants[:d.cfg.MaxStarts]
	}
	rep.Deferred = len(demands) - len(grants)
	admitted := make(map[string]int64, len(grants))
	for _, g := range grants {
		admitted[g.Ref.RunID] = g.Points
	}

	// Writes: each due connector gets its run (dispatched now if admitted) and its schedule moved; each admitted
	// active run is claimed. Only what was written is invoked.
	var mu sync.Mutex
	var toInvoke []connectors.RunRef
	par := newPool(d.cfg.Writers)
	for _, c := range advance {
		par.do(func() {
			counters.writes.Add(1)
			if err := d.cfg.Store.AdvanceSchedule(ctx, c, nextRun(c, now)); err != nil {
				storeErr("advance schedule", err, "connectionId", c.ConnectionID, "connectorId", c.ID)
				return
			}
			counters.advanced.Add(1)
		})
	}
	for _, c := range cands {
		allowance, ok := admitted[c.ref.RunID]
		if c.due == nil && !ok {
			continue // an active run that waits for a later tick: nothing to write
		}
		par.do(func() {
			counters.writes.Add(1)
			if c.due != nil {
				if _, err := d.cfg.Store.StartScheduledRun(ctx, c.due, c.ref.RunID, c.next, ok, allowance); err != nil {
					storeErr("start scheduled run", err, "connectionId", c.ref.ConnectionID, "connectorId", c.ref.ConnectorID)
					return
				}
				counters.created.Add(1)
			} else if err := d.cfg.Store.ClaimDispatch(ctx, c.ref, allowance); err != nil {
				storeErr("claim run", err, "connectionId", c.ref.ConnectionID, "runId", c.ref.RunID)
				return
			}
			if ok {
				mu.Lock()
				toInvoke = append(toInvoke, c.ref)
				mu.Unlock()
			}
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
		"active", r.Active, "waiting", r.Waiting, "paused", r.Paused, "deferred", r.Deferred, "invoked", r.Invoked,
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
