package export

import (
	"testing"
	"time"

	"jiraexport/infra/atlassiansim"
	"jiraexport/shared/jira"
	"jiraexport/shared/mirror"
)

// The search asks for at most two pages ahead of the one being processed: the next page's answer asks for the
// page after it at once, that one waits until the worker takes the next, and nothing is asked for beyond the
// invocation's points allowance, near its deadline, or after a page that was not the one wanted.
func TestPrefetchAsksAtMostTwoPagesAhead(t *testing.T) {
	rs := newRangeSim(t, atlassiansim.Config{Seed: 31, Sites: 1, ProjectsPerSite: 1, IssuesPerProject: 400, Users: 3,
		MaxComments: 2, AttachmentShare: -1, ManyCommentsShare: -1, LongChangelogShare: -1, ManyWorklogsShare: -1})
	w := &worker{e: &Engine{c: Config{Now: time.Now}}, jira: rs.cl, site: mirror.Site{CloudID: rs.cloud}, ctx: t.Context()}
	searches := func() int {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		return len(rs.starts)
	}
	// settle waits for every page asked for ahead, then returns how many were, counting from w.next.
	settle := func() int {
		n := 0
		for p := w.next; p != nil; n++ {
			<-p.done
			p.mu.Lock()
			f := p.follow
			p.mu.Unlock()
			p = f
		}
		return n
	}
	req := jira.SearchRequest{JQL: rs.base + " ORDER BY id ASC", Fields: []string{"summary", "updated"}, MaxResults: 50}
	page := func(token string) jira.SearchRequest { r := req; r.NextPageToken = token; return r }
	take := func(r jira.SearchRequest) *jira.SearchPage {
		t.Helper()
		p, err := w.search(t.Context(), r)
		if err != nil || len(p.Issues) == 0 {
			t.Fatalf("search() = %v, %v", p, err)
		}
		return p
	}

	p1 := take(req)
	w.prefetch(page(p1.NextPageToken), 300*time.Millisecond, 50)
	if ahead, n := settle(), searches(); ahead != 2 || n != 3 {
		t.Fatalf("while page 1 is processed: %d pages asked for ahead, %d searches; want 2 and 3", ahead, n)
	}
	// Taking page 2: page 3 is in already, so page 4 is asked for at once.
	p2 := take(page(p1.NextPageToken))
	w.prefetch(page(p2.NextPageToken), 300*time.Millisecond, 50)
	if ahead, n := settle(), searches(); ahead != 2 || n != 4 {
		t.Fatalf("while page 2 is processed: %d pages asked for ahead, %d searches; want 2 and 4", ahead, n)
	}
	// An allowance with room for one page ahead but not two: page 4 is there, page 5 is not asked for.
	p3 := take(page(p2.NextPageToken))
	m := w.meter()
	m.allowance = m.tally.Points() + 2*51
	w.prefetch(page(p3.NextPageToken), 300*time.Millisecond, 50)
	if ahead, n := settle(), searches(); ahead != 1 || n != 4 {
		t.Fatalf("with room for one page: %d pages asked for ahead, %d searches; want 1 and 4", ahead, n)
	}
	m.allowance = 0
	// Near the deadline nothing is asked for ahead.
	p4 := take(page(p3.NextPageToken))
	w.deadline = time.Now().Add(5 * time.Second)
	w.prefetch(page(p4.NextPageToken), 300*time.Millisecond, 50)
	if ahead, n := settle(), searches(); ahead != 0 || n != 5-1 {
		t.Fatalf("near the deadline: %d pages asked for ahead, %d searches; want 0 and 4", ahead, n)
	}
	w.deadline = time.Time{}
	// A page that is not the one wanted is dropped with what it asked for after it.
	w.prefetch(page(p4.NextPageToken), 300*time.Millisecond, 50)
	if ahead := settle(); ahead != 2 {
		t.Fatalf("%d pages asked for ahead, want 2", ahead)
	}
	other := req
	other.MaxResults = 10
	if p := take(other); len(p.Issues) != 10 {
		t.Fatalf("the other search returned %d issues, want 10", len(p.Issues))
	}
	if w.next != nil || searches() != 7 {
		t.Fatalf("after another search: next = %v, %d searches; want none ahead and 7", w.next, searches())
	}
}
