package dispatch

import (
	"context"
	"fmt"
	"time"

	"jiraexport/shared/ratebudget"
)

// QuotaPauses adapts shared/ratebudget's pause store to Pauses.
type QuotaPauses struct{ Store *ratebudget.Pauses }

var _ Pauses = QuotaPauses{}

// InForce implements Pauses with one query of the app's pause items.
func (q QuotaPauses) InForce(ctx context.Context) (PauseSet, error) {
	set, err := q.Store.Active(ctx)
	if err != nil {
		return PauseSet{}, err
	}
	out := PauseSet{Sites: make(map[string]time.Time, len(set.Sites))}
	if set.Global != nil {
		out.Global = set.Global.Until
	}
	for id, p := range set.Sites {
		out.Sites[id] = p.Until
	}
	return out, nil
}

// PointsBudget admits work under the app's hourly points budget: shared/ratebudget's Allocator (max-min fair
// across connections, with its safety margin and hour pacing) fed by the points Ledger of this UTC hour. Each
// grant is the admitted invocation's allowance.
type PointsBudget struct {
	Ledger    *ratebudget.Ledger
	Allocator ratebudget.Allocator
}

var _ Budget = PointsBudget{}

// Admit implements Budget.
func (b PointsBudget) Admit(ctx context.Context, a Admission) ([]Grant, error) {
	if len(a.Demands) == 0 {
		return nil, nil
	}
	seen := map[string]bool{}
	var conns []string
	for _, d := range a.Demands {
		if !seen[d.Ref.ConnectionID] {
			seen[d.Ref.ConnectionID] = true
			conns = append(conns, d.Ref.ConnectionID)
		}
	}
	usage, err := b.Ledger.Usage(ctx, a.Now, conns...)
	if err != nil {
		return nil, fmt.Errorf("dispatch: read points ledger: %w", err)
	}
	// What a running invocation may still spend: its allowance less what it has spent of it. Its spent points
	// are already in the ledger (flushed at its checkpoints, when the run's counter is saved too), so reserving
	// its whole allowance would count them twice and admit less than the budget allows. Points spent since its
	// last checkpoint are in neither: the Allocator's safety margin covers them.
	var outstanding int64
	for _, r := range a.Running {
		outstanding += max(0, r.Allowance-max(0, r.Spent-r.SpentAtGrant))
	}
	in := ratebudget.Input{Now: a.Now, Spent: usage.App, Outstanding: outstanding, SpentByConn: usage.ByConnection}
	refs := make(map[string]Demand, len(a.Demands))
	for _, d := range a.Demands {
		refs[d.Ref.RunID] = d
		in.Demands = append(in.Demands, ratebudget.Demand{RunID: d.Ref.RunID, ConnID: d.Ref.ConnectionID, Points: d.Points})
	}
	alloc := b.Allocator.Allocate(in)
	out := make([]Grant, 0, len(alloc.Grants))
	for _, g := range alloc.Grants {
		if g.Points <= 0 {
			continue
		}
		out = append(out, Grant{Ref: refs[g.RunID].Ref, Points: g.Points})
	}
	return out, nil
}
