package ratebudget_test

import (
	"fmt"
	"testing"
	"time"

	"jiraexport/shared/ratebudget"
)

func grantsOf(a ratebudget.Allocation) map[string]int64 {
	m := map[string]int64{}
	for _, g := range a.Grants {
		m[g.RunID] = g.Points
	}
	return m
}

func sum(a ratebudget.Allocation) int64 {
	var n int64
	for _, g := range a.Grants {
		n += g.Points
	}
	return n
}

func TestAllocatorFairness(t *testing.T) {
	// One connection with a backlog far above the hour and ten small ones, under a low budget.
	small := func(n int64) []ratebudget.Demand {
		var d []ratebudget.Demand
		for i := range 10 {
			d = append(d, ratebudget.Demand{RunID: fmt.Sprintf("small%d", i), ConnID: fmt.Sprintf("c%d", i), Points: n})
		}
		return d
	}
	huge := ratebudget.Demand{RunID: "huge", ConnID: "big", Points: 10_000_000}
	unknown := ratebudget.Demand{RunID: "unknown", ConnID: "big", Points: 0}
	tests := []struct {
		name      string
		alloc     ratebudget.Allocator
		in        ratebudget.Input
		wantSmall int64 // each small run's grant
		wantHuge  int64
		wantPool  int64
	}{
		{"small ones fully served, the large one gets the rest",
			ratebudget.Allocator{HourlyBudget: 5000, Margin: 0.1, Horizon: -1},
			ratebudget.Input{Now: t0, Demands: append(small(250), huge)},
			250, 4500 - 2500, 4500},
		{"backlog listed first changes nothing",
			ratebudget.Allocator{HourlyBudget: 5000, Margin: 0.1, Horizon: -1},
			ratebudget.Input{Now: t0, Demands: append([]ratebudget.Demand{huge}, small(250)...)},
			250, 2000, 4500},
		{"small demands above the fair share are cut to it, equally",
			ratebudget.Allocator{HourlyBudget: 5000, Margin: 0.1, Horizon: -1},
			ratebudget.Input{Now: t0, Demands: append(small(1000), huge)},
			409, 410, 4500}, // 4500 / 11; the rounding remainder goes to the largest claim
		{"spent and outstanding points come off the pool",
			ratebudget.Allocator{HourlyBudget: 5000, Margin: 0.1, Horizon: -1},
			ratebudget.Input{Now: t0, Spent: 1000, Outstanding: 500, Demands: append(small(250), huge)},
			250, 500, 3000},
		{"unknown demand counts as unbounded",
			ratebudget.Allocator{HourlyBudget: 5000, Margin: 0.1, Horizon: -1},
			ratebudget.Input{Now: t0, Demands: append(small(100), unknown)},
			100, 0, 4500},
		{"horizon paces the hour: a third of what is left with 30 minutes to go",
			ratebudget.Allocator{HourlyBudget: 65000, Margin: 0.1, Horizon: 10 * time.Minute},
			ratebudget.Input{Now: t0, Demands: append(small(250), huge)},
			250, 19500 - 2500, 19500},
		{"last minutes of the hour: all of it",
			ratebudget.Allocator{HourlyBudget: 65000, Horizon: 10 * time.Minute},
			ratebudget.Input{Now: t0.Add(25 * time.Minute), Spent: 50000, Demands: append(small(250), huge)},
			250, 8500 - 2500, 8500},
		{"budget spent: nothing",
			ratebudget.Allocator{HourlyBudget: 5000, Horizon: -1},
			ratebudget.Input{Now: t0, Spent: 6000, Demands: append(small(250), huge)},
			0, 0, 0},
	}
	for _, tt := range tests {
		a := tt.alloc.Allocate(tt.in)
		g := grantsOf(a)
		if a.Pool != tt.wantPool {
			t.Errorf("%s: pool %d, want %d", tt.name, a.Pool, tt.wantPool)
		}
		if s := sum(a); s > a.Pool || s > a.Remaining || a.Pool > a.Limit {
			t.Errorf("%s: granted %d of pool %d (remaining %d, limit %d)", tt.name, s, a.Pool, a.Remaining, a.Limit)
		}
		for i := range 10 {
			if got := g[fmt.Sprintf("small%d", i)]; got != tt.wantSmall {
				t.Errorf("%s: small%d got %d, want %d", tt.name, i, got, tt.wantSmall)
			}
		}
		if got := g["huge"]; got != tt.wantHuge {
			t.Errorf("%s: huge got %d, want %d", tt.name, got, tt.wantHuge)
		}
		if len(a.Grants)+len(a.Deferred) != len(tt.in.Demands) {
			t.Errorf("%s: %d granted + %d deferred, want %d runs accounted for", tt.name, len(a.Grants), len(a.Deferred), len(tt.in.Demands))
		}
	}
}

func TestAllocatorUnknownDemandGetsTheRest(t *testing.T) {
	a := ratebudget.Allocator{HourlyBudget: 5000, Horizon: -1}.Allocate(ratebudget.Input{Now: t0, Demands: []ratebudget.Demand{
		{RunID: "u", ConnID: "big"}, {RunID: "s", ConnID: "small", Points: 300},
	}})
	if g := grantsOf(a); g["s"] != 300 || g["u"] != 4500-300 {
		t.Errorf("grants %v, want s 300, u %d", g, 4500-300)
	}
}

func TestAllocatorConnectionsNotRuns(t *testing.T) {
	// A connection with many connectors gets one connection's share, split across its runs.
	var d []ratebudget.Demand
	for i := range 8 {
		d = append(d, ratebudget.Demand{RunID: fmt.Sprintf("many%d", i), ConnID: "many", Points: 100_000})
	}
	d = append(d, ratebudget.Demand{RunID: "solo", ConnID: "solo", Points: 100_000})
	a := ratebudget.Allocator{HourlyBudget: 4000, Margin: -1, Horizon: -1}.Allocate(ratebudget.Input{Now: t0, Demands: d})
	g := grantsOf(a)
	if g["solo"] != 2000 {
		t.Errorf("solo got %d, want half the pool (2000)", g["solo"])
	}
	var many int64
	for i := range 8 {
		many += g[fmt.Sprintf("many%d", i)]
	}
	if many != 2000 {
		t.Errorf("the 8 runs of one connection got %d together, want 2000", many)
	}
}

func TestAllocatorAdmissionWhenPoolIsShort(t *testing.T) {
	// 1000 points, MinGrant 200: five connections at most; those that spent least this hour go first.
	var d []ratebudget.Demand
	spent := map[string]int64{}
	for i := range 8 {
		c := fmt.Sprintf("c%d", i)
		d = append(d, ratebudget.Demand{RunID: "r" + c, ConnID: c})
		spent[c] = int64(800 - 100*i) // c7 spent least
	}
	a := ratebudget.Allocator{HourlyBudget: 1000, Margin: -1, Horizon: -1, MinGrant: 200}.Allocate(
		ratebudget.Input{Now: t0, SpentByConn: spent, Demands: d})
	g := grantsOf(a)
	for i := range 8 {
		want := int64(0)
		if i >= 3 {
			want = 200
		}
		if got := g[fmt.Sprintf("rc%d", i)]; got != want {
			t.Errorf("rc%d got %d, want %d (grants %v)", i, got, want, g)
		}
	}
	if len(a.Deferred) != 3 {
		t.Errorf("deferred %v, want 3 runs", a.Deferred)
	}
}

// TestAllocatorHours drives the allocator hour after hour as the dispatcher would, each admitted run spending its
// whole allowance: the small connections finish in the first hour, the backlog progresses every hour, and no
// hour's spend exceeds the budget.
func TestAllocatorHours(t *testing.T) {
	alloc := ratebudget.Allocator{HourlyBudget: 6000}
	need := map[string]int64{"big": 1_000_000}
	for i := range 10 {
		need[fmt.Sprintf("c%d", i)] = 300
	}
	now := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	var bigPerHour []int64
	for hour := 0; hour < 3; hour++ {
		var spent int64
		byConn := map[string]int64{}
		for tick := 0; tick < 60; tick++ {
			var d []ratebudget.Demand
			for c, n := range need {
				if n > 0 {
					d = append(d, ratebudget.Demand{RunID: "run-" + c, ConnID: c, Points: n})
				}
			}
			a := alloc.Allocate(ratebudget.Input{Now: now, Spent: spent, SpentByConn: byConn, Demands: d})
			for _, g := range a.Grants {
				need[g.ConnID] -= g.Points
				byConn[g.ConnID] += g.Points
				spent += g.Points
			}
			now = now.Add(time.Minute)
		}
		if spent > alloc.Limit() {
			t.Fatalf("hour %d spent %d, above the limit %d", hour, spent, alloc.Limit())
		}
		if hour == 0 {
			for i := range 10 {
				if n := need[fmt.Sprintf("c%d", i)]; n != 0 {
					t.Errorf("small connection c%d still needs %d after the first hour", i, n)
				}
			}
		}
		bigPerHour = append(bigPerHour, byConn["big"])
	}
	// Hour 0: what the small ones left (5400 - 3000, less rounding); then nearly the whole limit.
	for h, p := range bigPerHour {
		if want := map[bool]int64{true: 2000, false: 5000}[h == 0]; p < want {
			t.Errorf("the backlog got %d points in hour %d, want at least %d (%v)", p, h, want, bigPerHour)
		}
	}
}

func TestStartOffset(t *testing.T) {
	w := time.Minute
	seen := map[time.Duration]bool{}
	var buckets [6]int
	for i := range 600 {
		id := fmt.Sprintf("01JRUN%04d", i)
		d := ratebudget.StartOffset(id, w)
		if d < 0 || d >= w {
			t.Fatalf("StartOffset(%q) = %v, outside [0, %v)", id, d, w)
		}
		if d != ratebudget.StartOffset(id, w) {
			t.Fatalf("StartOffset(%q) is not deterministic", id)
		}
		seen[d] = true
		buckets[d/(10*time.Second)]++
	}
	for i, n := range buckets {
		if n < 60 || n > 140 { // 100 expected per 10 s
			t.Errorf("%d of 600 starts fall in second %d-%d: not spread (%v)", n, i*10, i*10+10, buckets)
		}
	}
	if ratebudget.StartOffset("x", 0) != 0 {
		t.Error("StartOffset with no window is not zero")
	}
}

func TestTallyByHour(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 59, 0, 0, time.UTC)
	tl := ratebudget.NewTally(func() time.Time { return now })
	tl.Add(ratebudget.SearchJQL(100))
	tl.Add(ratebudget.Failure(429))
	now = now.Add(2 * time.Minute)
	tl.Add(ratebudget.Issue())
	if tl.Points() != 103 || tl.Requests() != 3 || tl.Pending() != 103 {
		t.Errorf("tally points %d requests %d pending %d, want 103 3 103", tl.Points(), tl.Requests(), tl.Pending())
	}
	if got, want := ratebudget.HourKey(now), "POINTS#2026031013"; got != want {
		t.Errorf("HourKey = %q, want %q", got, want)
	}
	if got, want := ratebudget.HourKey(time.Date(2026, 3, 10, 14, 5, 0, 0, time.FixedZone("CET", 3600))), "POINTS#2026031013"; got != want {
		t.Errorf("HourKey of a CET time = %q, want the UTC hour %q", got, want)
	}
}

// BenchmarkAllocate is one dispatcher tick's allocation: 10,000 runs of 1,000 connections.
func BenchmarkAllocate(b *testing.B) {
	var d []ratebudget.Demand
	spent := map[string]int64{}
	for i := range 10_000 {
		c := fmt.Sprintf("conn%04d", i%1000)
		d = append(d, ratebudget.Demand{RunID: fmt.Sprintf("run%05d", i), ConnID: c, Points: int64(50 + (i*7919)%5000)})
		spent[c] = int64(i % 300)
	}
	in := ratebudget.Input{Now: t0, Spent: 20_000, SpentByConn: spent, Demands: d}
	b.ReportAllocs()
	for b.Loop() {
		ratebudget.Allocator{}.Allocate(in)
	}
}
