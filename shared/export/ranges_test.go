package export

import (
	"slices"
	"testing"
	"time"
)

// t0 is a whole minute, so the tables read in minutes.
var rangeT0 = time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC).UnixMilli()

func mins(ns ...int64) []int64 {
	out := make([]int64, len(ns))
	for i, n := range ns {
		out[i] = rangeT0 + n*minuteMs
	}
	return out
}

func TestRangeJQL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		r            searchRange
		since, after int64
		want         string
	}{
		{name: "whole", r: searchRange{}, want: "((project = A)) ORDER BY id ASC"},
		{name: "first", r: searchRange{To: 1709283600000},
			want: "((project = A) AND created < 1709283600000) ORDER BY id ASC"},
		{name: "middle", r: searchRange{From: 1709283600000, To: 1709287200000},
			want: "((project = A) AND created >= 1709283600000 AND created < 1709287200000) ORDER BY id ASC"},
		{name: "last incremental after restart", r: searchRange{From: 1709287200000}, since: 1700000000000, after: 10042,
			want: "((project = A) AND created >= 1709287200000) AND updated >= 1700000000000 AND id > 10042 ORDER BY id ASC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.r.jql("project = A", tt.since, tt.after); got != tt.want {
				t.Errorf("jql() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGridBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		lo, hi int64
		g      int
		want   []int64
	}{
		{"even split of 8 minutes", rangeT0, rangeT0 + 7*minuteMs + 59_999, 4, mins(0, 2, 4, 6, 8)},
		{"lo and hi inside minutes", rangeT0 + 30_000, rangeT0 + 3*minuteMs + 1, 2, mins(0, 2, 4)},
		{"uneven split", rangeT0, rangeT0 + 9*minuteMs, 3, mins(0, 3, 6, 10)},
		{"fewer minutes than slices", rangeT0, rangeT0 + minuteMs, 8, mins(0, 1, 2)},
		{"one minute", rangeT0 + 5, rangeT0 + 59_000, 4, mins(0, 1)},
		{"hi before lo", rangeT0 + minuteMs, rangeT0, 4, nil},
		{"no slices", rangeT0, rangeT0 + minuteMs, 0, nil},
		{"before 1970", -90_000, 30_000, 3, []int64{-120_000, -60_000, 0, 60_000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := gridBounds(tt.lo, tt.hi, tt.g); !slices.Equal(got, tt.want) {
				t.Errorf("gridBounds() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCutRanges(t *testing.T) {
	t.Parallel()
	rng := func(from, to int64) searchRange {
		r := searchRange{}
		if from >= 0 {
			r.From = rangeT0 + from*minuteMs
		}
		if to >= 0 {
			r.To = rangeT0 + to*minuteMs
		}
		return r
	}
	whole := []searchRange{{}}
	tests := []struct {
		name   string
		bounds []int64
		counts []int64
		k      int
		want   []searchRange
	}{
		{"uniform into 4 on grid lines", mins(0, 10, 20, 30, 40), []int64{100, 100, 100, 100}, 4,
			[]searchRange{rng(-1, 10), rng(10, 20), rng(20, 30), rng(30, -1)}},
		{"uniform into 2 inside a slice", mins(0, 10, 20, 30), []int64{100, 100, 100}, 2,
			[]searchRange{rng(-1, 15), rng(15, -1)}},
		{"skewed: recent burst", mins(0, 10, 20, 30, 40), []int64{10, 10, 10, 370}, 2,
			[]searchRange{rng(-1, 35), rng(35, -1)}},
		{"skewed: old import", mins(0, 10, 20, 30, 40), []int64{370, 10, 10, 10}, 4,
			[]searchRange{rng(-1, 3), rng(3, 5), rng(5, 8), rng(8, -1)}},
		{"empty slices skipped", mins(0, 10, 20, 30, 40), []int64{50, 0, 0, 50}, 2,
			[]searchRange{rng(-1, 10), rng(10, -1)}},
		{"one minute cannot be split", mins(0, 1), []int64{5000}, 8, whole},
		{"two minutes give two ranges", mins(0, 1, 2), []int64{4000, 1000}, 8,
			[]searchRange{rng(-1, 1), rng(1, -1)}},
		{"k of one", mins(0, 10), []int64{100}, 1, whole},
		{"fewer issues than ranges", mins(0, 10, 20), []int64{1, 1}, 4, whole},
		{"nothing", mins(0, 10, 20), []int64{0, 0}, 2, whole},
		{"counts do not fit bounds", mins(0, 10, 20), []int64{10}, 2, whole},
		{"negative count", mins(0, 10, 20), []int64{10, -1}, 2, whole},
		{"bounds not increasing", mins(0, 10, 10), []int64{10, 10}, 2, whole},
		{"bounds off the minute", []int64{rangeT0 + 1, rangeT0 + minuteMs}, []int64{10}, 2, whole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := cutRanges(tt.bounds, tt.counts, tt.k)
			if !slices.Equal(got, tt.want) {
				t.Errorf("cutRanges() = %v, want %v", got, tt.want)
			}
			checkPartition(t, got, tt.bounds, tt.k)
		})
	}
}

// checkPartition asserts what every split must be: 1..k ranges, sorted, adjacent (each starts where the previous
// ends), open at both ends, every cut a whole minute strictly inside the grid.
func checkPartition(t *testing.T, rs []searchRange, bounds []int64, k int) {
	t.Helper()
	if len(rs) == 0 || len(rs) > max(k, 1) {
		t.Fatalf("%d ranges for k = %d", len(rs), k)
	}
	if rs[0].From != 0 || rs[len(rs)-1].To != 0 {
		t.Fatalf("ranges %v are not open at both ends", rs)
	}
	for i := 1; i < len(rs); i++ {
		c := rs[i].From
		if rs[i-1].To != c || c%minuteMs != 0 || c <= bounds[0] || c >= bounds[len(bounds)-1] || (i > 1 && c <= rs[i-1].From) {
			t.Fatalf("ranges %v: cut %d is not adjacent, whole-minute, increasing and inside the grid", rs, i)
		}
	}
}

// FuzzCutRanges: whatever the counts (an approximate count can be anything), the split is a partition.
func FuzzCutRanges(f *testing.F) {
	f.Add(uint8(4), uint16(40), []byte{10, 10, 10, 10})
	f.Add(uint8(8), uint16(1), []byte{255})
	f.Add(uint8(2), uint16(3), []byte{0, 0, 9})
	f.Fuzz(func(t *testing.T, k uint8, minutes uint16, raw []byte) {
		g := len(raw)
		bounds := gridBounds(rangeT0, rangeT0+int64(minutes)*minuteMs, max(g, 1))
		counts := make([]int64, len(bounds)-1)
		for i := range counts {
			if i < g {
				counts[i] = int64(raw[i]) * int64(raw[i]) // squares: heavy skew is common
			}
		}
		rs := cutRanges(bounds, counts, int(k%17))
		if len(bounds) < 2 {
			t.Fatalf("gridBounds gave %v", bounds)
		}
		checkPartition(t, rs, bounds, int(k%17))
	})
}
