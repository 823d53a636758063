package export

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"net/http"

	"golang.org/x/oauth2"
	"golang.org/x/sync/errgroup"

	"jiraexport/infra/atlassiansim"
	"jiraexport/shared/connectors"
	"jiraexport/shared/jira"
)

// These run against the in-process Atlassian simulator only (no AWS stack), so they also run under -short.

// rangeSim is a simulator and a Jira client that tallies what it spends, by Atlassian's rule (1 point per request
// plus 1 per object returned).
type rangeSim struct {
	sim   *atlassiansim.Server
	clock *atlassiansim.OffsetClock
	cl    *jira.Client
	cloud string
	base  string // JQL selecting the whole site

	token            atomic.Pointer[oauth2.Token]
	requests, points atomic.Int64
	mu               sync.Mutex
	starts           []time.Time // when each search request was answered, for the peak rate
}

func newRangeSim(tb testing.TB, cfg atlassiansim.Config) *rangeSim {
	tb.Helper()
	clk := &atlassiansim.OffsetClock{}
	cfg.Clock = clk
	sim, err := atlassiansim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	u, err := sim.Start(tb.Context(), "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sim.Close() })
	site := sim.Sites()[0]
	rs := &rangeSim{sim: sim, clock: clk, cloud: site.CloudID}
	rs.newToken(tb)
	keys := ""
	for i, p := range site.Projects {
		if i > 0 {
			keys += ", "
		}
		keys += p.Key
	}
	rs.base = "project in (" + keys + ")"
	// Enough idle connections for 8 chains and the probes, as the export's HTTP client has.
	hc := &http8Client
	rs.cl = jira.New(u, rs, jira.Options{
		HTTPClient: hc, Timeout: 30 * time.Second, BaseBackoff: 200 * time.Millisecond,
		Observe: func(o jira.Observation) {
			rs.requests.Add(1)
			rs.points.Add(1 + int64(max(o.Objects, 0)))
			if o.Endpoint == "/rest/api/3/search/jql" {
				rs.mu.Lock()
				rs.starts = append(rs.starts, time.Now())
				rs.mu.Unlock()
			}
		}})
	return rs
}

// newToken issues a fresh access token (after the clock moved past the last one's hour).
func (rs *rangeSim) newToken(tb testing.TB) {
	tb.Helper()
	tr, err := rs.sim.IssueTokens(rs.sim.ConsentingUsers()[0].AccountID, "read:jira-work", "read:jira-user")
	if err != nil {
		tb.Fatal(err)
	}
	rs.token.Store(&oauth2.Token{AccessToken: tr.AccessToken})
}

// Token makes rangeSim the client's token source.
func (rs *rangeSim) Token() (*oauth2.Token, error) { return rs.token.Load(), nil }

func (rs *rangeSim) reset() {
	rs.requests.Store(0)
	rs.points.Store(0)
	rs.mu.Lock()
	rs.starts = nil
	rs.mu.Unlock()
}

// peakSearchRate is the most search answers in any one second.
func (rs *rangeSim) peakSearchRate() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	ts := slices.Clone(rs.starts)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	peak, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= time.Second {
			lo++
		}
		peak = max(peak, hi-lo+1)
	}
	return peak
}

// pageRanges pages every range's chain at once (one goroutine per range, each sequential, as Jira's cursors
// are) and returns the issue ids in the order each range gave them, and the pages of each range.
func pageRanges(ctx context.Context, cl *jira.Client, cloud, base string, ranges []searchRange, fields []string, expand string, size int) ([][]int64, []int64, error) {
	ids := make([][]int64, len(ranges))
	pages := make([]int64, len(ranges))
	g, gctx := errgroup.WithContext(ctx)
	for i, r := range ranges {
		g.Go(func() error {
			req := jira.SearchRequest{JQL: r.jql(base, 0, 0), Fields: fields, Expand: expand, MaxResults: size}
			for {
				page, err := cl.Search(gctx, cloud, req)
				if err != nil {
					return fmt.Errorf("range %d: %w", i, err)
				}
				pages[i]++
				for _, raw := range page.Issues {
					var is struct {
						ID string `json:"id"`
					}
					if err := json.Unmarshal(raw, &is); err != nil {
						return err
					}
					ids[i] = append(ids[i], idNum(is.ID))
				}
				if page.IsLast || page.NextPageToken == "" {
					return nil
				}
				req.NextPageToken = page.NextPageToken
			}
		})
	}
	err := g.Wait()
	return ids, pages, err
}

var http8Client = jiraHTTPClient(16)

// TestRangesPartitionTheSearch: paged in parallel, the ranges findRanges cuts give exactly the issues of the
// sequential search, each once, in id order within each range, and share them about evenly.
func TestRangesPartitionTheSearch(t *testing.T) {
	t.Parallel()
	cfg := atlassiansim.Config{Seed: 21, Sites: 1, ProjectsPerSite: 2, IssuesPerProject: 400}
	cfg.RateLimits.Disabled = true
	rs := newRangeSim(t, cfg)
	ctx := t.Context()
	seq, _, err := pageRanges(ctx, rs.cl, rs.cloud, rs.base, []searchRange{{}}, []string{"id"}, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	want := seq[0]
	if len(want) != 800 || !slices.IsSorted(want) {
		t.Fatalf("sequential search gave %d issues (sorted %t), want 800 in id order", len(want), slices.IsSorted(want))
	}
	for _, k := range []int{2, 3, 4, 8} {
		t.Run(fmt.Sprintf("k=%d", k), func(t *testing.T) {
			ranges, err := findRanges(ctx, rs.cl, rs.cloud, rs.base, 0, k)
			if err != nil {
				t.Fatal(err)
			}
			if len(ranges) != k {
				t.Fatalf("findRanges() = %d ranges %v, want %d", len(ranges), ranges, k)
			}
			parts, _, err := pageRanges(ctx, rs.cl, rs.cloud, rs.base, ranges, []string{"id"}, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for i, p := range parts {
				if !slices.IsSorted(p) {
					t.Errorf("range %d is not in id order", i)
				}
				// Balanced: no range more than half again its share (the counts are exact here, the grid coarse).
				if share := len(want) / k; len(p) > share*3/2 || len(p) < share/2 {
					t.Errorf("range %d has %d issues, share %d", i, len(p), share)
				}
				got = append(got, p...)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("ranges gave %d issues, want the sequential search's %d exactly once each", len(got), len(want))
			}
		})
	}
}

// TestFindRangesSmallSelections: a selection too small or too short in time to split is one open range, and an
// incremental bound (updated >= since) is part of every probe.
func TestFindRangesSmallSelections(t *testing.T) {
	t.Parallel()
	cfg := atlassiansim.Config{Seed: 22, Sites: 1, ProjectsPerSite: 1, IssuesPerProject: 3}
	cfg.RateLimits.Disabled = true
	rs := newRangeSim(t, cfg)
	tests := []struct {
		name  string
		base  string
		since int64
		k     int
	}{
		{"k of one", rs.base, 0, 1},
		{"fewer issues than ranges", rs.base, 0, 4},
		{"nothing matches", rs.base + " AND labels = no-such-label-anywhere", 0, 4},
		{"nothing updated since", rs.base, time.Now().Add(24 * time.Hour).UnixMilli(), 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findRanges(t.Context(), rs.cl, rs.cloud, tt.base, tt.since, tt.k)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, []searchRange{{}}) {
				t.Errorf("findRanges() = %v, want one open range", got)
			}
		})
	}
}

// latencyFloor is the shortest time Jira's latency allows a split search under the WAN profile, whatever the
// simulator's own CPU: the probes (2 edge searches one after the other, then the counts, rangeProbeConcurrency at a
// time) and then the longest range's chain of pages, each a search round trip.
func latencyFloor(k int, pagesPerRange []int64) time.Duration {
	rtt := time.Duration(atlassiansim.LatencyWAN.Search)
	var rounds int64
	if k > 1 {
		rounds = 2 + int64((rangeGridPerRange*k+rangeProbeConcurrency-1)/rangeProbeConcurrency)
	}
	return time.Duration(rounds+slices.Max(pagesPerRange)) * rtt
}

// exportFields is the field set and expansion the export asks a search for, for a connector with comments and
// changelogs (the worker's own searchFields).
func exportFields() ([]string, string) {
	w := &worker{connector: &connectors.Connector{Spec: connectors.Spec{Include: connectors.Include{Comments: true, Changelog: true}}}}
	return w.searchFields()
}

// BenchmarkParallelRanges pages the export's search (its real field set and expansion, pages of 50) over a
// 10,000-issue site under the simulator's WAN latency and Atlassian's default burst limits: sequentially (k=1)
// and split into k ranges paged at once. Per run it reports the wall time (ns/op), the requests and points of the
// whole search including the range-finding probes (bound-requests, bound-points), the peak search requests in
// one second (Atlassian's steady rate for POST is 100/s), the 429s met, and the points per hour the run spends at
// (quota-min: the minutes after which the app-wide 65,000 points would be gone at that rate). latency-floor-s is
// the time Jira's latency alone allows (probes, then the longest range's pages at 300 ms each): the simulator renders
// every answer under one lock (about 80 ms a page of this field set on an idle core) and the client decodes the
// pages, so on a small or busy machine the measured time stays well above it as k grows.
// Each k runs once (at least 2 minutes in all: the sequential chain alone is 200 pages of 300 ms).
// Run: go test -run '^$' -bench BenchmarkParallelRanges -benchtime 1x ./shared/export/
func BenchmarkParallelRanges(b *testing.B) {
	fields, expand := exportFields()
	for _, k := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			cfg := atlassiansim.Config{Seed: 13, Sites: 1, ProjectsPerSite: 2, IssuesPerProject: 5000, Users: 20,
				AttachmentShare: 0.10, ManyCommentsShare: 0.05, LongChangelogShare: 0.05, Latency: atlassiansim.LatencyWAN}
			rs := newRangeSim(b, cfg)
			var wall, floor time.Duration
			var issues, pages, reqs, pts, boundReqs, boundPts, peak, limited int64
			for b.Loop() {
				b.StopTimer()
				rs.clock.Advance(time.Hour) // a new quota hour for every run
				rs.newToken(b)
				rs.sim.ResetCounters()
				rs.reset()
				b.StartTimer()
				start := time.Now()
				ranges, err := findRanges(b.Context(), rs.cl, rs.cloud, rs.base, 0, k)
				if err != nil {
					b.Fatal(err)
				}
				boundReqs += rs.requests.Load()
				boundPts += rs.points.Load()
				parts, perRange, err := pageRanges(b.Context(), rs.cl, rs.cloud, rs.base, ranges, fields, expand, jira.SearchMaxFull)
				if err != nil {
					b.Fatal(err)
				}
				wall += time.Since(start)
				b.StopTimer()
				floor += latencyFloor(k, perRange)
				var got int64
				for _, p := range parts {
					got += int64(len(p))
				}
				if got != 10_000 {
					b.Fatalf("k=%d: %d issues paged, want 10000", k, got)
				}
				issues += got
				for _, n := range perRange {
					pages += n
				}
				reqs += rs.requests.Load()
				pts += rs.points.Load()
				peak = max(peak, int64(rs.peakSearchRate()))
				for _, v := range rs.sim.Counters().RateLimited {
					limited += v
				}
				b.StartTimer()
			}
			n := float64(b.N)
			b.ReportMetric(float64(pages)/n, "pages/op")
			b.ReportMetric(float64(reqs)/n, "requests/op")
			b.ReportMetric(float64(pts)/n, "points/op")
			b.ReportMetric(float64(boundReqs)/n, "bound-requests/op")
			b.ReportMetric(float64(boundPts)/n, "bound-points/op")
			b.ReportMetric(float64(peak), "peak-search-rps")
			b.ReportMetric(float64(limited)/n, "429s/op")
			perHour := float64(pts) / wall.Hours()
			b.ReportMetric(perHour, "points/h")
			b.ReportMetric(65000/perHour*60, "quota-min")
			b.ReportMetric(float64(issues)/wall.Seconds(), "issues/s")
			b.ReportMetric(floor.Seconds()/n, "latency-floor-s")
		})
	}
}

func jiraHTTPClient(conns int) http.Client {
	return http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
}

// TestRangesStableUnderEdits: edits do not move an issue between ranges (created never changes), and an issue
// created after the split lands in the last range, which is open above.
func TestRangesStableUnderEdits(t *testing.T) {
	t.Parallel()
	cfg := atlassiansim.Config{Seed: 23, Sites: 1, ProjectsPerSite: 2, IssuesPerProject: 150}
	cfg.RateLimits.Disabled = true
	rs := newRangeSim(t, cfg)
	ctx := t.Context()
	ranges, err := findRanges(ctx, rs.cl, rs.cloud, rs.base, 0, 4)
	if err != nil || len(ranges) != 4 {
		t.Fatalf("findRanges() = %v, %v; want 4 ranges", ranges, err)
	}
	before, _, err := pageRanges(ctx, rs.cl, rs.cloud, rs.base, ranges, []string{"id"}, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	summary, done := "edited while the export pages", "Done"
	for i, part := range before {
		for _, id := range part[:min(5, len(part))] {
			if _, err := rs.sim.UpdateIssue(rs.cloud, strconv.FormatInt(id, 10), atlassiansim.IssueChange{Summary: &summary, Status: &done}); err != nil {
				t.Fatalf("range %d: update %d: %v", i, id, err)
			}
		}
	}
	created, err := rs.sim.CreateIssue(rs.cloud, rs.sim.Sites()[0].Projects[0].Key, atlassiansim.IssueChange{Summary: &summary})
	if err != nil {
		t.Fatal(err)
	}
	after, _, err := pageRanges(ctx, rs.cl, rs.cloud, rs.base, ranges, []string{"id"}, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	last := len(ranges) - 1
	for i := range ranges {
		want := before[i]
		if i == last {
			want = append(slices.Clone(want), idNum(created.ID))
		}
		if !slices.Equal(after[i], want) {
			t.Errorf("range %d holds %d issues after the edits, want %d (the same, plus the new one in the last)", i, len(after[i]), len(want))
		}
	}
}
