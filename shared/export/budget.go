package export

import (
	"context"
	"errors"
	"time"

	"jiraexport/shared/jira"
	"jiraexport/shared/ratebudget"
)

// QuotaPauses is the app's shared quota pauses (shared/ratebudget.Pauses): an export reads them before it calls
// Jira and records one when Jira answers a quota 429, so every other export and the dispatcher stop too.
type QuotaPauses interface {
	IsPaused(ctx context.Context, cloudID string) (ratebudget.Pause, bool, error)
	Record(ctx context.Context, connID, cloudID string, l ratebudget.Limit) (ratebudget.Pause, bool, error)
}

// PointsLedger is the hourly points ledger the dispatcher admits work by (shared/ratebudget.Ledger).
type PointsLedger interface {
	Flush(ctx context.Context, connID string, t *ratebudget.Tally) error
}

var (
	_ QuotaPauses  = (*ratebudget.Pauses)(nil)
	_ PointsLedger = (*ratebudget.Ledger)(nil)
)

// Budget wires the rate budget into the engine; its zero value keeps no ledger and reads no pauses.
type Budget struct {
	Pauses QuotaPauses
	Ledger PointsLedger
}

// ReasonBudget pauses a run whose invocation spent the points allowance the dispatcher granted it; the
// dispatcher resumes it at a later tick with a new allowance.
const ReasonBudget = "budget"

// errBudget stops the work at the next step once the invocation's allowance is spent.
var errBudget = errors.New("points allowance spent")

// sharedPause is a quota pause another process recorded: the run pauses until it ends without calling Jira, and
// it is not recorded again.
type sharedPause struct{ jira.RateLimitError }

func (p *sharedPause) Unwrap() error { return &p.RateLimitError }

// meter is one invocation's points: what it spent (by Atlassian's rule, as answers arrive) and may spend.
type meter struct {
	tally     *ratebudget.Tally
	allowance int64 // 0: none
	// pauseChecked is when the shared pauses were last read.
	pauseChecked time.Time
}

func (w *worker) meter() *meter {
	if w.bud == nil {
		w.bud = &meter{tally: ratebudget.NewTally(w.e.c.Now)}
	}
	return w.bud
}

// spend counts one attempt's points in the invocation's tally.
func (w *worker) spend(o jira.Observation) {
	w.meter().tally.Add(ratebudget.Cost(o.Method, o.Status, ratebudget.Objects{Core: max(o.Objects, 0)}))
}

// pauseCheckEvery is how often, at most, the engine reads the shared pauses between steps: at the first step of
// every invocation (before any Jira call), then every few seconds, so a pause another export recorded stops this
// one at its next step without a read per page.
const pauseCheckEvery = 10 * time.Second

// mayGoOn is asked before every step: errBudget once the invocation's allowance is spent, a shared quota pause
// covering the site, nil otherwise.
func (w *worker) mayGoOn(ctx context.Context) error {
	m := w.meter()
	if m.allowance > 0 && m.tally.Points() >= m.allowance {
		return errBudget
	}
	if now := w.e.c.Now(); m.pauseChecked.IsZero() || now.Before(m.pauseChecked) || now.Sub(m.pauseChecked) >= pauseCheckEvery {
		m.pauseChecked = now
		return w.checkPause(ctx)
	}
	return nil
}

// checkPause refuses to call Jira while a shared quota pause covers the run's site: the run pauses until it ends.
func (w *worker) checkPause(ctx context.Context) error {
	if w.e.c.Budget.Pauses == nil {
		return nil
	}
	p, paused, err := w.e.c.Budget.Pauses.IsPaused(ctx, w.site.CloudID)
	if err != nil {
		return err
	}
	if !paused {
		return nil
	}
	reason := ratebudget.ReasonGlobalQuota
	if p.Scope == ratebudget.ScopeSite {
		reason = ratebudget.ReasonTenantQuota
	}
	return &sharedPause{jira.RateLimitError{Endpoint: "shared-pause", Reason: reason, Reset: p.Until}}
}

// recordQuota stores the shared pause a quota 429 calls for (app-wide for the global quota, the site's for a
// tenant quota). A failure is logged: the run pauses anyway, and the next export to meet the wall records it.
func (w *worker) recordQuota(ctx context.Context, err error) {
	var sp *sharedPause
	var rl *jira.RateLimitError
	if w.e.c.Budget.Pauses == nil || errors.As(err, &sp) || !errors.As(err, &rl) || !rl.Quota() {
		return
	}
	// What is left of Retry-After: work still in flight when the 429 came (a page's follow-ups, a prefetched
	// page) may delay this, and the pause must end at the reset, not later by that delay.
	l := ratebudget.Limit{Reason: rl.Reason, RetryAfter: rl.RetryAfterLeft(), Reset: rl.Reset}
	p, ok, rerr := w.e.c.Budget.Pauses.Record(ctx, w.ref.ConnectionID, w.site.CloudID, l)
	if rerr != nil {
		w.log.ErrorContext(ctx, "export could not record the quota pause", "error", rerr)
		return
	}
	if ok {
		w.log.InfoContext(ctx, "quota pause recorded", "scope", p.Scope.String(), "until", p.Until)
	}
}

// flushPoints adds the invocation's points not yet in the ledger to the connection's and the app's hour. A
// failed flush keeps them pending for the next checkpoint; the dispatcher then sees them late, not never.
func (w *worker) flushPoints(ctx context.Context) {
	if w.e.c.Budget.Ledger == nil || w.bud == nil || w.bud.tally.Pending() == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := w.e.c.Budget.Ledger.Flush(fctx, w.ref.ConnectionID, w.bud.tally); err != nil {
		w.log.WarnContext(ctx, "export could not flush its points", "error", err)
	}
}
