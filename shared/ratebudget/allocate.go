package ratebudget

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Defaults of an Allocator.
const (
	// DefaultHourlyBudget is Atlassian's Tier 1 global pool: 65,000 points an hour for the whole app.
	DefaultHourlyBudget = 65000
	// DefaultMargin is the share of the budget never handed out: it absorbs points the ledger has not seen yet
	// (requests in flight, checkpoints not yet flushed) and the connectors API's own calls.
	DefaultMargin = 0.10
	// DefaultHorizon paces the hour: one dispatch hands out at most the remaining pool × horizon / time left,
	// so work that arrives later in the hour still finds budget.
	DefaultHorizon = 10 * time.Minute
	// DefaultMinGrant is the smallest allowance worth an invocation: a search page of 100 issues costs 101.
	DefaultMinGrant = 200
	// StarterGrant is the allowance of the first invocation of a run the connectors API starts at once, before
	// any admission: ten minimum grants (a full export's first 1,000 to 2,000 issues, a whole small one), 3 % of
	// the default hourly budget. A run that needs more pauses (reason budget) and goes on through the dispatcher's
	// admission, max-min fair with every other connection, so "run now" cannot spend a whole invocation's worth
	// of the app's shared quota before the allocator sees it.
	StarterGrant = 10 * DefaultMinGrant
)

// unbounded stands for an unknown demand: as much as the run can get (kept far from overflow when summed).
const unbounded = math.MaxInt64 / 1024

// Allocator shares the app's hourly points budget across the runs that have work. It is pure: the dispatcher
// feeds it what the Ledger says and what it is about to start. The zero value uses the defaults.
type Allocator struct {
	// HourlyBudget is the app's points per hour (template parameter; default 65,000).
	HourlyBudget int64
	// Margin is the fraction of HourlyBudget kept back (default 0.10; negative = none).
	Margin float64
	// Horizon paces the hour (default 10 minutes; negative = hand out everything that is left at once).
	Horizon time.Duration
	// MinGrant is the smallest allowance given to a run that needs more (default 200).
	MinGrant int64
}

// Demand is one run that wants to work.
type Demand struct {
	RunID  string
	ConnID string
	// Points is the estimate of what the run needs to finish (e.g. approximate count × points per issue);
	// zero or negative means unknown: as much as it can get.
	Points int64
}

// Input is the state of the hour the allocation is made in.
type Input struct {
	Now time.Time
	// Spent is the app's points this hour (Ledger.Usage's App).
	Spent int64
	// Outstanding is what allowances already granted this hour to invocations still running may yet spend
	// (granted minus what they have recorded in the ledger); it is not handed out twice.
	Outstanding int64
	// SpentByConn (optional) is each connection's points this hour: when the pool cannot admit every
	// connection, those that spent least go first, so admission rotates across ticks.
	SpentByConn map[string]int64
	Demands     []Demand
}

// Grant is one admitted run's allowance for its next invocation: it checkpoints and pauses (reason budget)
// once it has spent this many points.
type Grant struct {
	RunID  string
	ConnID string
	Points int64
}

// Allocation is the outcome of one Allocate.
type Allocation struct {
	Hour time.Time
	// Limit is the hour's budget after the margin; Remaining is Limit − Spent − Outstanding (≥ 0); Pool is the
	// part of Remaining this call could hand out (Horizon pacing).
	Limit, Remaining, Pool int64
	// Grants are the admitted runs in input order; their sum never exceeds Pool.
	Grants []Grant
	// Deferred are the runs not admitted now (no budget left for them this tick).
	Deferred []string
}

func (a Allocator) withDefaults() Allocator {
	if a.HourlyBudget <= 0 {
		a.HourlyBudget = DefaultHourlyBudget
	}
	switch {
	case a.Margin == 0:
		a.Margin = DefaultMargin
	case a.Margin < 0:
		a.Margin = -1 // explicit "none"; kept negative so defaulting twice cannot restore the default
	}
	a.Margin = min(a.Margin, 1)
	if a.Horizon == 0 {
		a.Horizon = DefaultHorizon
	}
	if a.MinGrant <= 0 {
		a.MinGrant = DefaultMinGrant
	}
	return a
}

// Limit is the hourly budget after the safety margin.
func (a Allocator) Limit() int64 { return a.withDefaults().limit() }

func (a Allocator) limit() int64 {
	return a.HourlyBudget - int64(math.Ceil(float64(a.HourlyBudget)*max(a.Margin, 0)))
}

// Allocate admits runs and gives each an allowance, max-min fair across connections: every connection with
// work gets an equal share of the pool unless it needs less, and what it does not need is shared among the
// rest; within a connection its share is split the same way across its runs. A connection with a huge backlog
// therefore gets what the others leave, never more, and cannot starve them. When the pool cannot give every
// connection MinGrant, the connections that spent least this hour are admitted first, and among those that spent
// the same, the first listed.
func (a Allocator) Allocate(in Input) Allocation {
	a = a.withDefaults()
	out := Allocation{Hour: Hour(in.Now), Limit: a.limit()}
	out.Remaining = max(0, out.Limit-max(in.Spent, 0)-max(in.Outstanding, 0))
	out.Pool = out.Remaining
	if left := out.Hour.Add(time.Hour).Sub(in.Now); a.Horizon > 0 && left > a.Horizon {
		out.Pool = int64(float64(out.Remaining) * float64(a.Horizon) / float64(left))
	}

	// Group runs by connection, keeping input order inside each.
	type conn struct {
		id     string
		runs   []int // indexes into in.Demands
		demand int64
		spent  int64
	}
	var conns []*conn
	byID := map[string]*conn{}
	need := func(d Demand) int64 {
		if d.Points <= 0 {
			return unbounded
		}
		return min(d.Points, unbounded)
	}
	for i, d := range in.Demands {
		c := byID[d.ConnID]
		if c == nil {
			c = &conn{id: d.ConnID, spent: in.SpentByConn[d.ConnID]}
			byID[d.ConnID] = c
			conns = append(conns, c)
		}
		c.runs = append(c.runs, i)
		c.demand = min(c.demand+need(d), unbounded)
	}

	// Admission: least spent first, then smallest demand, then in the order the demands came (the dispatcher lists
	// its most overdue work first, so among equals the connection that has waited longest goes first), while
	// every admitted connection can still get its minimum.
	order := slices.Clone(conns)
	slices.SortStableFunc(order, func(x, y *conn) int {
		return cmp.Or(cmp.Compare(x.spent, y.spent), cmp.Compare(x.demand, y.demand))
	})
	var admitted []*conn
	var floor int64
	for _, c := range order {
		m := min(a.MinGrant, c.demand)
		if floor+m > out.Pool {
			continue
		}
		floor += m
		admitted = append(admitted, c)
	}

	caps := make([]int64, len(admitted))
	for i, c := range admitted {
		caps[i] = c.demand
	}
	shares := waterFill(out.Pool, caps)

	grants := map[int]int64{}
	for i, c := range admitted {
		// Within the connection: smallest demands first are admitted while each gets its minimum.
		runs := slices.Clone(c.runs)
		slices.SortStableFunc(runs, func(x, y int) int { return cmp.Compare(need(in.Demands[x]), need(in.Demands[y])) })
		var in2 []int
		var f int64
		for _, r := range runs {
			m := min(a.MinGrant, need(in.Demands[r]))
			if f+m > shares[i] {
				continue
			}
			f += m
			in2 = append(in2, r)
		}
		rc := make([]int64, len(in2))
		for j, r := range in2 {
			rc[j] = need(in.Demands[r])
		}
		for j, g := range waterFill(shares[i], rc) {
			grants[in2[j]] = g
		}
	}
	for i, d := range in.Demands {
		if g, ok := grants[i]; ok && g > 0 {
			out.Grants = append(out.Grants, Grant{RunID: d.RunID, ConnID: d.ConnID, Points: g})
		} else {
			out.Deferred = append(out.Deferred, d.RunID)
		}
	}
	return out
}

// waterFill splits pool across claimants with the given caps, max-min fairly: the smallest claims are met in
// full, and the rest share what is left equally. The sum never exceeds pool.
func waterFill(pool int64, caps []int64) []int64 {
	out := make([]int64, len(caps))
	idx := make([]int, len(caps))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(x, y int) int { return cmp.Compare(caps[x], caps[y]) })
	left := max(pool, 0)
	for k, i := range idx {
		share := left / int64(len(idx)-k)
		g := min(caps[i], share)
		out[i] = g
		left -= g
	}
	return out
}
