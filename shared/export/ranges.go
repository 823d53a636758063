package export

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"golang.org/x/sync/errgroup"

	"jiraexport/shared/jira"
)

// Parallel ranges split one search into K disjoint parts that can be paged at the same time, each with its own
// nextPageToken chain. They pay for wall time only, never for points (see README, "Parallel ranges"), so a run may
// use them only when its points allowance covers the whole search.
//
// The cut is on `created`, not on `id`: Jira rejects an `id`/`issuekey` comparison with an issue that does not
// exist ("An issue with id 'N' does not exist for field 'id'", also for `>` and `<`), so id bounds would have to be
// real issue ids found by extra searches, and an issue deleted mid-run would make its range's next page fail with
// 400. A date may be any instant; `created` never changes, so no issue moves between ranges while they are paged
// (JQL fields reference, "Created": operators =, !=, >, >=, <, <=;
// https://support.atlassian.com/jira-software-cloud/docs/jql-fields/#Created). Jira compares dates at minute
// precision. Bounds are epoch milliseconds, the form searchJQL already uses for `updated` (no time zone involved);
// the reference lists "yyyy/MM/dd HH:mm" forms, read in the user's zone, which would split just as exactly (the
// same zone for every bound keeps them in order), only less evenly. Ranges are half-open,
// [From, To), the first open below and the last open above, so they cover the search exactly whatever the bounds:
// the bounds only decide how evenly the issues are shared.

// searchRange is one part of a split search: issues created in [From, To) (epoch ms, whole minutes); 0 leaves
// that side open.
type searchRange struct {
	From int64 `json:"from,omitempty"`
	To   int64 `json:"to,omitempty"`
}

const minuteMs = int64(60_000)

// jql is the search of one range: the connector's filter, the range, the incremental and restart bounds, by id.
func (r searchRange) jql(base string, sinceMs, afterID int64) string {
	b := "(" + base + ")"
	if r.From > 0 {
		b += " AND created >= " + strconv.FormatInt(r.From, 10)
	}
	if r.To > 0 {
		b += " AND created < " + strconv.FormatInt(r.To, 10)
	}
	return searchJQL(b, sinceMs, afterID)
}

// gridBounds returns the g+1 minute-aligned boundaries of g equal slices covering [lo, hi] (epoch ms): the first
// is lo's minute, the last the minute after hi's. Slices narrower than a minute cannot be told apart by JQL, so a
// short span gets fewer slices (never an empty one).
func gridBounds(lo, hi int64, g int) []int64 {
	if g < 1 || hi < lo {
		return nil
	}
	start := floorMinute(lo)
	minutes := (floorMinute(hi)-start)/minuteMs + 1
	out := []int64{start}
	for i := 1; i <= g; i++ {
		b := start + minutes*int64(i)/int64(g)*minuteMs
		if b > out[len(out)-1] {
			out = append(out, b)
		}
	}
	return out
}

func floorMinute(ms int64) int64 {
	m := ms / minuteMs
	if ms < 0 && ms%minuteMs != 0 {
		m--
	}
	return m * minuteMs
}

// cutRanges shares the issues of a grid into at most k ranges of about equal counts. bounds are the grid's
// boundaries (gridBounds), counts[i] the issues created in [bounds[i], bounds[i+1]). Inside a slice issues are
// taken as spread evenly, so a cut may fall inside a slice (on a whole minute). Ranges come out sorted, disjoint
// and covering: the first is open below, the last open above. Too few distinct minutes or issues give fewer
// ranges; bad input gives one.
func cutRanges(bounds, counts []int64, k int) []searchRange {
	whole := []searchRange{{}}
	if k <= 1 || len(bounds) < 2 || len(counts) != len(bounds)-1 {
		return whole
	}
	var total int64
	for i, c := range counts {
		if c < 0 || bounds[i+1] <= bounds[i] || bounds[i]%minuteMs != 0 {
			return whole
		}
		total += c
	}
	if bounds[len(bounds)-1]%minuteMs != 0 || total < int64(k) {
		return whole
	}
	var cuts []int64
	var before int64 // issues in the slices before slice i
	i := 0
	for j := 1; j < k; j++ {
		// The cut below which about j/k of the issues lie (float: total*j would overflow for absurd counts).
		target := float64(total) * float64(j) / float64(k)
		for i < len(counts) && float64(before+counts[i]) < target {
			before += counts[i]
			i++
		}
		if i == len(counts) {
			break
		}
		span := (bounds[i+1] - bounds[i]) / minuteMs
		frac := (target - float64(before)) / float64(max(counts[i], 1))
		cut := bounds[i] + int64(frac*float64(span)+0.5)*minuteMs
		// A cut on the grid's first boundary leaves the first range empty; one on or past the last, the last.
		if cut <= bounds[0] || cut >= bounds[len(bounds)-1] || (len(cuts) > 0 && cut <= cuts[len(cuts)-1]) {
			continue
		}
		cuts = append(cuts, cut)
	}
	out := make([]searchRange, 0, len(cuts)+1)
	from := int64(0)
	for _, c := range cuts {
		out = append(out, searchRange{From: from, To: c})
		from = c
	}
	return append(out, searchRange{From: from})
}

// Probe sizes: rangeGridPerRange approximate counts per range (a count costs one point, and they run in
// parallel, so balance is cheap); rangeProbeConcurrency of them in flight at once, far below the count endpoint's
// 150 requests a second.
const (
	rangeGridPerRange     = 4
	rangeProbeConcurrency = 8
)

// rangeSearcher is the part of the Jira client that splitting needs (*jira.Client).
type rangeSearcher interface {
	Search(ctx context.Context, cloudID string, req jira.SearchRequest) (*jira.SearchPage, error)
	ApproximateCount(ctx context.Context, cloudID, jql string) (int64, error)
}

var _ rangeSearcher = (*jira.Client)(nil)

// findRanges splits the search of base (issues updated at or after sinceMs; 0: all) into at most k ranges of
// about equal size. It costs 2 searches of one issue with the created field only (the oldest and the newest: 2
// points each) and rangeGridPerRange*k approximate counts (1 point each): 4 + 4k points, about 36 for k = 8.
// k <= 1, an empty selection, or one whose issues share too few minutes, give one open range, for nothing or 2
// searches.
func findRanges(ctx context.Context, cl rangeSearcher, cloudID, base string, sinceMs int64, k int) ([]searchRange, error) {
	whole := []searchRange{{}}
	if k <= 1 {
		return whole, nil
	}
	filter := "(" + base + ")"
	if sinceMs > 0 {
		filter += " AND updated >= " + strconv.FormatInt(sinceMs, 10)
	}
	lo, ok, err := edgeCreated(ctx, cl, cloudID, filter+" ORDER BY created ASC, id ASC")
	if err != nil || !ok {
		return whole, err
	}
	hi, ok, err := edgeCreated(ctx, cl, cloudID, filter+" ORDER BY created DESC, id DESC")
	if err != nil || !ok {
		return whole, err
	}
	bounds := gridBounds(lo, hi, rangeGridPerRange*k)
	if len(bounds) < 3 {
		return whole, nil
	}
	counts := make([]int64, len(bounds)-1)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(rangeProbeConcurrency)
	for i := range counts {
		r := searchRange{From: bounds[i], To: bounds[i+1]}
		g.Go(func() error {
			jql := filter
			if r.From > 0 {
				jql += " AND created >= " + strconv.FormatInt(r.From, 10)
			}
			n, err := cl.ApproximateCount(gctx, cloudID, jql+" AND created < "+strconv.FormatInt(r.To, 10))
			counts[i] = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return whole, fmt.Errorf("count range: %w", err)
	}
	return cutRanges(bounds, counts, k), nil
}

// edgeCreated returns the created instant (epoch ms) of the first issue jql orders; ok is false when it matches
// none.
func edgeCreated(ctx context.Context, cl rangeSearcher, cloudID, jql string) (int64, bool, error) {
	page, err := cl.Search(ctx, cloudID, jira.SearchRequest{JQL: jql, Fields: []string{"created"}, MaxResults: 1})
	if err != nil {
		return 0, false, fmt.Errorf("find range edge: %w", err)
	}
	if len(page.Issues) == 0 {
		return 0, false, nil
	}
	var is struct {
		Fields struct {
			Created string `json:"created"`
		} `json:"fields"`
	}
	if err := json.Unmarshal(page.Issues[0], &is); err != nil {
		return 0, false, fmt.Errorf("find range edge: decode issue: %w", err)
	}
	t, ok := jiraTime(is.Fields.Created)
	if !ok {
		return 0, false, nil
	}
	return t.UnixMilli(), true, nil
}
