package export_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/infra/atlassiansim"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/export"
	"jiraexport/shared/jira"
	"jiraexport/shared/mirror"
	"jiraexport/shared/tokens"
)

func smallSite() atlassiansim.Config {
	return atlassiansim.Config{Seed: 9, Sites: 1, ProjectsPerSite: 3, IssuesPerProject: 60, MaxComments: 25, MaxChangelog: 45}
}

// A cancel through the API while the export works ends the run cancelled at the next checkpoint; nothing is
// written by that invocation after it: the first page's checkpoint is refused, so no later page's documents are
// written (the first page's are, before its checkpoint).
func TestCancelMidRun(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{sim: smallSite()})
	ref := w.startRun()
	var searches atomic.Int32
	w.setHook(func(o jira.Observation) {
		if o.Endpoint == "/rest/api/3/search/jql" && searches.Add(1) == 2 {
			if _, err := w.store.CancelRun(context.Background(), ref.ConnectionID, ref.ConnectorID, ref.RunID, "user"); err != nil {
				t.Errorf("CancelRun() = %v", err)
			}
		}
	})
	out, err := w.engine(nil).Run(t.Context(), ref)
	if err != nil || out != export.Stopped {
		t.Fatalf("Run() = %v, %v; want stopped", out, err)
	}
	r := w.run(ref)
	if r.Status != connectors.RunCancelled || r.CancelReason != "user" {
		t.Errorf("run = %s (%s), want cancelled (user)", r.Status, r.CancelReason)
	}
	// The second page's search is the one the cancel follows; the third and fourth may have been asked for ahead
	// (two pages ahead of the one being processed) before the first page's refused checkpoint was seen.
	if n := searches.Load(); n < 2 || n > 4 {
		t.Errorf("search requests = %d, want 2 to 4 (the cancel is seen at the second page's commit)", n)
	}
	docs := 0
	for k := range w.objects() {
		if strings.Contains(k, "/issues/") && strings.HasSuffix(k, ".json") {
			docs++
		}
	}
	if docs > jira.SearchMaxFull {
		t.Errorf("%d issue documents in the mirror, want at most the first page's %d", docs, jira.SearchMaxFull)
	}
	// A duplicate event for the finished run does nothing.
	if out, err := w.engine(nil).Run(t.Context(), ref); err != nil || out != export.Skipped {
		t.Errorf("Run(cancelled run) = %v, %v; want skipped", out, err)
	}
}

// A grant revoked mid-run fails the run with reason reauth_required and flags the connection, whichever way the
// export meets it (a 401 from Jira or a refused refresh).
func TestRevokedGrantMidRun(t *testing.T) {
	t.Parallel()
	for _, expire := range []bool{false, true} {
		name := map[bool]string{false: "401 from Jira", true: "refused refresh"}[expire]
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, worldOpts{sim: smallSite()})
			ref := w.startRun()
			var searches atomic.Int32
			w.setHook(func(o jira.Observation) {
				if o.Endpoint == "/rest/api/3/search/jql" && searches.Add(1) == 2 {
					if err := w.sim.RevokeGrant(w.user); err != nil {
						t.Errorf("RevokeGrant() = %v", err)
					}
				}
			})
			eng := w.engine(func(c *export.Config) {
				if expire {
					// Force a refresh at every token read: the refresh meets the revoked family.
					c.Tokens = w.tokens(tokens.WithRefreshAhead(2 * time.Hour))
				}
			})
			out, err := eng.Run(t.Context(), ref)
			if err != nil || out != export.Failed {
				t.Fatalf("Run() = %v, %v; want failed", out, err)
			}
			r := w.run(ref)
			if r.Status != connectors.RunFailed || len(r.Errors) != 1 || r.Errors[0].Reason != export.ReasonReauth {
				t.Errorf("run = %s %v, want failed with reason %s", r.Status, r.Errors, export.ReasonReauth)
			}
			if expire {
				c, err := w.conns.Get(t.Context(), w.connID)
				if err != nil || c.Status != connections.StatusReauthRequired {
					t.Errorf("connection = %v, %v; want reauth_required", c, err)
				}
			}
		})
	}
}

// With a short deadline per invocation, a run pauses (reason deadline) and resumes across invocations until it
// succeeds, with the same mirror as an uninterrupted run.
func TestDeadlinePausesAndResumes(t *testing.T) {
	t.Parallel()
	big := smallSite()
	big.IssuesPerProject = 100
	w := newWorld(t, worldOpts{sim: big})
	if err := w.sim.SetFault(atlassiansim.Fault{Endpoint: "POST /rest/api/3/search/jql", Kind: atlassiansim.FaultLatency, Latency: atlassiansim.Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	ref := w.startRun()
	eng := w.engine(func(c *export.Config) { c.Reserve = time.Second })
	// Every attempt the engine made, by whether Jira answered it: one given up at a deadline (status 0) may or
	// may not have reached the simulator, and several can be in flight then (a page's follow-ups).
	var answered, abandoned atomic.Int64
	w.setHook(func(o jira.Observation) {
		if o.Status != 0 {
			answered.Add(1)
		} else {
			abandoned.Add(1)
		}
	})
	w.sim.ResetCounters()
	paused := 0
	var last connectors.Counters
	for i := 0; i < 60; i++ {
		// Four search pages of a second each cannot fit in one invocation's time.
		ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
		out, err := eng.Run(ctx, ref)
		cancel()
		if err != nil {
			t.Fatalf("Run() = %v", err)
		}
		if out == export.Paused {
			paused++
			r := w.run(ref)
			if r.Status != connectors.RunPaused || r.PauseReason != export.ReasonDeadline {
				t.Fatalf("after a paused invocation the run is %s (%s), want paused (deadline)", r.Status, r.PauseReason)
			}
			// Each invocation goes on from the figures the last one recorded: none goes back to zero.
			c := r.Counters
			if c.Requests <= last.Requests || c.PointsSpent < last.PointsSpent || c.IssuesWritten < last.IssuesWritten || c.IssuesDone < last.IssuesDone {
				t.Errorf("after pause %d the run's counters are %+v, down from (or no requests beyond) %+v", paused, c, last)
			}
			last = c
			continue
		}
		if out != export.Succeeded {
			t.Fatalf("Run() = %s, want paused or succeeded", out)
		}
		break
	}
	r := w.run(ref)
	if r.Status != connectors.RunSucceeded || paused < 1 || r.Invocations != int64(paused+1) {
		t.Fatalf("run = %s after %d pauses and %d invocations, want succeeded after at least one pause", r.Status, paused, r.Invocations)
	}
	t.Logf("succeeded after %d pauses", paused)
	// Requests summed over the invocations, each counted once: exactly the attempts Jira answered, and what
	// reached the simulator is those plus some of the ones given up at a deadline.
	sent := jiraRequests(w.sim.Counters())
	w.sim.ClearFaults("")
	w.checkMirror(w.objects())
	w.checkCounters(r, w.manifest(ref))
	c, ok, gaveUp := r.Counters, answered.Load(), abandoned.Load()
	if c.Requests != ok || sent < ok || sent > ok+gaveUp || c.IssuesWritten != int64(len(w.simIssues())) {
		t.Errorf("resumed run's counters: %d requests (%d answered and %d given up over %d pauses; Jira saw %d), %d written (want %d)",
			c.Requests, ok, gaveUp, paused, sent, c.IssuesWritten, len(w.simIssues()))
	}
}

// Duplicate async events delivered at once: one invocation works, the others skip; the mirror is exact.
func TestConcurrentDuplicatesOneWriter(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{sim: smallSite()})
	ref := w.startRun()
	eng := w.engine(nil)
	outs := make([]export.Outcome, 4)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := eng.Run(t.Context(), ref)
			if err != nil {
				t.Errorf("Run() = %v", err)
			}
			outs[i] = out
		}()
	}
	wg.Wait()
	n := map[export.Outcome]int{}
	for _, o := range outs {
		n[o]++
	}
	if n[export.Succeeded] != 1 || n[export.Skipped] != len(outs)-1 {
		t.Errorf("outcomes = %v, want one succeeded and the rest skipped", n)
	}
	if r := w.run(ref); r.Status != connectors.RunSucceeded || r.Invocations != 1 {
		t.Errorf("run = %s with %d invocations, want succeeded with 1", r.Status, r.Invocations)
	}
	w.checkMirror(w.objects())
}

// A quota 429 pauses the run until the reset instead of sleeping.
func TestQuotaPausesUntilReset(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{sim: smallSite()})
	ref := w.startRun()
	if err := w.sim.SetFault(atlassiansim.Fault{Endpoint: "POST /rest/api/3/search/jql", Kind: atlassiansim.FaultRateLimit,
		RetryAfter: 1800, Reason: "jira-quota-global-based", Count: 1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := w.engine(nil).Run(t.Context(), ref)
	if err != nil || out != export.Paused || time.Since(start) > 20*time.Second {
		t.Fatalf("Run() = %v, %v after %s; want paused at once", out, err, time.Since(start))
	}
	r := w.run(ref)
	if r.Status != connectors.RunPaused || r.PauseReason != export.ReasonQuota || r.ResumeAfter == nil ||
		r.ResumeAfter.Before(start.Add(29*time.Minute)) {
		t.Errorf("run = %s (%s) resume after %v, want paused (quota) for about 30 minutes", r.Status, r.PauseReason, r.ResumeAfter)
	}
	// Too early: the run is not taken.
	if out, _ := w.engine(nil).Run(t.Context(), ref); out != export.Skipped {
		t.Errorf("Run(before reset) = %s, want skipped", out)
	}
}

// Jira refusing a page token mid-search (400, as for an expired cursor) restarts the search after the last
// issue processed: the run succeeds with the exact mirror and no issue listed twice.
func TestExpiredCursorRestartsFromWatermark(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{sim: smallSite()})
	ref := w.startRun()
	var searches atomic.Int32
	w.setHook(func(o jira.Observation) {
		if o.Endpoint == "/rest/api/3/search/jql" && searches.Add(1) == 1 {
			if err := w.sim.SetFault(atlassiansim.Fault{Endpoint: "POST /rest/api/3/search/jql", Kind: atlassiansim.FaultStatus, Status: 400, Count: 1}); err != nil {
				t.Error(err)
			}
		}
	})
	r, _ := w.runToEnd(w.engine(nil), ref, time.Minute)
	if r.Status != connectors.RunSucceeded {
		t.Fatalf("run = %s %v, want succeeded", r.Status, r.Errors)
	}
	w.setHook(nil)
	w.checkMirror(w.objects())
	m := w.manifest(ref)
	if int(m.Counts.Written) != len(w.simIssues()) || int(m.Counts.Selected) != len(w.simIssues()) {
		t.Errorf("manifest counts %+v, want every issue selected and written once", m.Counts)
	}
}

// An issue deleted mid-search shifts the cursor's offsets, so the next page skips one issue that still matches.
// A full run must not remove that issue from the mirror: planned removals are checked against Jira first and the
// skipped issue is fetched again. The manifest lists only the deleted issue as removed.
func TestShiftedCursorRemovesNothingThatStillMatches(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{sim: smallSite()})
	eng := w.engine(nil)
	if r, _ := w.runToEnd(eng, w.startRun(), time.Minute); r.Status != connectors.RunSucceeded {
		t.Fatalf("first run = %s %v", r.Status, r.Errors)
	}
	all := w.simIssues()
	var sorted []string
	for id := range all {
		sorted = append(sorted, id)
	}
	sort.Slice(sorted, func(a, b int) bool {
		return len(sorted[a]) < len(sorted[b]) || (len(sorted[a]) == len(sorted[b]) && sorted[a] < sorted[b])
	})
	// A second full run (the JQL's text changed, so the mirror is rebuilt).
	cur, err := w.store.Get(t.Context(), w.connID, w.connector.ID)
	if err != nil {
		t.Fatal(err)
	}
	spec := cur.Spec
	spec.JQL += " "
	c, err := w.store.Update(t.Context(), w.connID, w.connector.ID, spec, cur.Version, time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	w.connector = c
	ref := w.startRun()
	var searches atomic.Int32
	// The deleted issue is one of the first page (so the next page's offsets shift) whose children need paging:
	// the export meets its deletion in a follow-up (404) and leaves it out. An issue whose page is complete is
	// mirrored as the search returned it, and only the next census removes it.
	// It is nobody's parent and has no links or sub-tasks: deleting it changes no other issue (whose document the
	// run may already have written).
	parents := map[string]bool{}
	for _, is := range all {
		if p, ok := is["fields"].(map[string]any)["parent"].(map[string]any); ok {
			parents[p["id"].(string)] = true
		}
	}
	deleted := ""
	for _, id := range sorted[:jira.SearchMaxFull] {
		is := all[id]
		f := is["fields"].(map[string]any)
		links, _ := f["issuelinks"].([]any)
		subs, _ := f["subtasks"].([]any)
		if parents[id] || len(links) > 0 || len(subs) > 0 {
			continue
		}
		if n := func(k string) int { l, _ := is[k].([]any); return len(l) }; n("comments") > 20 || n("histories") > 20 || n("worklogs") > 20 {
			deleted = id
			break
		}
	}
	if deleted == "" {
		t.Fatal("no unreferenced issue of the first page has more children than a page embeds")
	}
	w.setHook(func(o jira.Observation) {
		if o.Endpoint == "/rest/api/3/search/jql" && searches.Add(1) == 1 {
			if err := w.sim.DeleteIssue(w.site.CloudID, deleted); err != nil {
				t.Error(err)
			}
		}
	})
	r, _ := w.runToEnd(eng, ref, time.Minute)
	w.setHook(nil)
	if r.Status != connectors.RunSucceeded {
		t.Fatalf("second run = %s %v", r.Status, r.Errors)
	}
	w.checkMirror(w.objects())
	if m := w.manifest(ref); ids(m.Removed) != deleted {
		t.Errorf("manifest removed %s, want only %s", ids(m.Removed), deleted)
	}
}

// After an expired cursor the search restarts after the last issue processed (`id > N`), and Jira refuses that
// JQL once issue N is gone ("An issue with key … does not exist for field 'id'."). The run must not fail with
// jql_rejected: it restarts from the first issue and ends with the mirror equal to Jira.
func TestDeletedRestartBoundRestartsFromTheStart(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{sim: smallSite()})
	all := w.simIssues()
	var sorted []string
	for id := range all {
		sorted = append(sorted, id)
	}
	sort.Slice(sorted, func(a, b int) bool {
		return len(sorted[a]) < len(sorted[b]) || (len(sorted[a]) == len(sorted[b]) && sorted[a] < sorted[b])
	})
	if len(sorted) <= jira.SearchMaxFull {
		t.Fatalf("%d issues: the search needs a second page", len(sorted))
	}
	bound := sorted[jira.SearchMaxFull-1] // the first page's last issue: the restart's `id >` bound
	ref := w.startRun()
	var searches, refused atomic.Int32
	w.setHook(func(o jira.Observation) {
		if o.Endpoint != "/rest/api/3/search/jql" {
			return
		}
		if o.Status == 400 {
			refused.Add(1)
		}
		if searches.Add(1) == 1 {
			// The next page's token is refused (an expired cursor) and the bound disappears meanwhile.
			if err := w.sim.DeleteIssue(w.site.CloudID, bound); err != nil {
				t.Error(err)
			}
			if err := w.sim.SetFault(atlassiansim.Fault{Endpoint: "POST /rest/api/3/search/jql", Kind: atlassiansim.FaultStatus, Status: 400, Count: 1}); err != nil {
				t.Error(err)
			}
		}
	})
	r, _ := w.runToEnd(w.engine(nil), ref, time.Minute)
	w.setHook(nil)
	if r.Status != connectors.RunSucceeded {
		t.Fatalf("run = %s %v, want succeeded", r.Status, r.Errors)
	}
	if got := refused.Load(); got != 2 {
		t.Errorf("searches refused = %d, want 2 (the expired token, then the deleted bound)", got)
	}
	// Nothing lost: every issue Jira still matches is mirrored. The bound itself was read before it was deleted,
	// like any issue deleted after the run took it; the next census removes it.
	objs := w.objects()
	for id := range w.simIssues() {
		if _, ok := objs[w.connID+"/"+w.connector.ID+"/issues/"+id+".json"]; !ok {
			t.Errorf("issue %s matches the JQL but is not mirrored", id)
		}
	}
	r, _ = w.runToEnd(w.engine(func(c *export.Config) { c.CensusEvery = time.Nanosecond }), w.startRun(), time.Minute)
	if r.Status != connectors.RunSucceeded {
		t.Fatalf("census run = %s %v, want succeeded", r.Status, r.Errors)
	}
	objs = w.objects()
	w.checkMirror(objs)
	if _, ok := objs[w.connID+"/"+w.connector.ID+"/issues/"+bound+".json"]; ok {
		t.Errorf("the deleted issue %s is still mirrored after the census", bound)
	}
}

// flakyRuns fails one search page's checkpoint write (a SaveProgress carrying index entries) the way a DynamoDB
// call can fail: before anything is written, or after the write committed with the answer lost on the way back.
type flakyRuns struct {
	export.Runs
	failPage  int  // which page write fails (1-based)
	committed bool // the failing write is made first
	mu        sync.Mutex
	pages     int
	failed    bool
}

func (f *flakyRuns) SaveProgress(ctx context.Context, ref connectors.RunRef, owner string, lease time.Duration, p connectors.Progress, extra ...types.TransactWriteItem) error {
	f.mu.Lock()
	fail := false
	if len(extra) > 2 { // the checkpoint and a page's index entries
		f.pages++
		fail = f.pages == f.failPage
		f.failed = f.failed || fail
	}
	f.mu.Unlock()
	if !fail {
		return f.Runs.SaveProgress(ctx, ref, owner, lease, p, extra...)
	}
	if f.committed {
		if err := f.Runs.SaveProgress(ctx, ref, owner, lease, p, extra...); err != nil {
			return err
		}
	}
	return errors.New("dynamodb: TransactWriteItems: connection reset by peer")
}

// A page's checkpoint write that fails while the next page is being read (pages are written in the background,
// commit.go) ends the invocation on the stored checkpoint; the next invocation, once the lease has expired,
// finishes with the same mirror and counts as an uninterrupted run. One whose answer was lost after it
// committed is found stored and the invocation goes on.
func TestFailedPageCheckpoint(t *testing.T) {
	t.Parallel()
	for _, committed := range []bool{false, true} {
		t.Run(map[bool]string{false: "not written", true: "written, answer lost"}[committed], func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, worldOpts{sim: smallSite()})
			ref := w.startRun()
			flaky := &flakyRuns{Runs: w.store, failPage: 2, committed: committed}
			const lease = 5 * time.Second // long enough for a page under -race on a loaded host
			eng := w.engine(func(c *export.Config) { c.Runs, c.Lease = flaky, lease })
			out, err := eng.Run(t.Context(), ref)
			if !flaky.failed {
				t.Fatal("no page checkpoint failed")
			}
			invocations := int64(1)
			if committed {
				if err != nil || out != export.Succeeded {
					t.Fatalf("Run() = %v, %v; want succeeded (the lost answer's write is stored)", out, err)
				}
			} else {
				if err == nil {
					t.Fatalf("Run() = %v, nil; want the write's error", out)
				}
				if r := w.run(ref); r.Status != connectors.RunRunning || r.Counters.IssuesWritten > int64(jira.SearchMaxFull) {
					t.Fatalf("after the failed write the run is %s with %d issues written, want running with at most the first page's",
						r.Status, r.Counters.IssuesWritten)
				}
				time.Sleep(lease + 500*time.Millisecond) // the dispatcher resumes it once the lease has expired
				if out, err := eng.Run(t.Context(), ref); err != nil || out != export.Succeeded {
					t.Fatalf("resumed Run() = %v, %v; want succeeded", out, err)
				}
				invocations++
			}
			r := w.run(ref)
			if r.Status != connectors.RunSucceeded || r.Invocations != invocations {
				t.Fatalf("run = %s after %d invocations, want succeeded after %d", r.Status, r.Invocations, invocations)
			}
			w.checkMirror(w.objects())
			w.checkCounters(r, w.manifest(ref))
			if r.Counters.IssuesWritten != int64(len(w.simIssues())) {
				t.Errorf("%d issues written, want %d (each once)", r.Counters.IssuesWritten, len(w.simIssues()))
			}
		})
	}
}

// TestIssuesDeletedBeforeTheirFollowUps: issues deleted in Jira after the search listed them but before the
// export asked for the rest of their children (404) are left out of the page, while the page's other issues are
// built beside those follow-ups: the run succeeds, every document it wrote is complete (no issue is written with
// only its embedded comments), and the next census removes what Jira no longer has.
func TestIssuesDeletedBeforeTheirFollowUps(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	var keys []string
	for _, is := range w.simIssues() {
		keys = append(keys, is["key"].(string))
	}
	var once sync.Once
	var notFound atomic.Int64
	w.setHook(func(o jira.Observation) {
		switch {
		case o.Endpoint == "/rest/api/3/search/jql" && o.Status == http.StatusOK:
			once.Do(func() {
				for _, k := range keys {
					if err := w.sim.DeleteIssue(w.site.CloudID, k); err != nil {
						t.Error(err)
					}
				}
			})
		case o.Status == http.StatusNotFound:
			notFound.Add(1)
		}
	})
	eng := w.engine(func(c *export.Config) { c.CensusEvery = time.Millisecond })
	r, _ := w.runToEnd(eng, w.startRun(), time.Minute)
	if r.Status != connectors.RunSucceeded {
		t.Fatalf("run ended %s (%v), want succeeded", r.Status, r.Errors)
	}
	if notFound.Load() == 0 {
		t.Fatal("no follow-up met a deleted issue: the test did not exercise what it is for")
	}
	prefix := mirror.Prefix(w.connID, w.connector.ID) + "issues/"
	docs := 0
	for k, b := range w.objects() {
		if !strings.HasPrefix(k, prefix) || !strings.HasSuffix(k, ".json") {
			continue
		}
		docs++
		var d mirror.Issue
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]*mirror.Count{"comments": d.Counts.Comments, "changelog": d.Counts.Changelog, "worklogs": d.Counts.Worklogs} {
			if c != nil && c.Exported != c.Total {
				t.Errorf("issue %s written with %d of its %d %s", d.Key, c.Exported, c.Total, name)
			}
		}
	}
	if docs == 0 || docs >= len(keys) {
		t.Errorf("%d documents written of %d issues listed; want those without follow-ups only", docs, len(keys))
	}

	// The next run's census removes the documents of issues Jira no longer has.
	r2, _ := w.runToEnd(eng, w.startRun(), time.Minute)
	if r2.Status != connectors.RunSucceeded {
		t.Fatalf("census run ended %s (%v), want succeeded", r2.Status, r2.Errors)
	}
	w.checkMirror(w.objects())
}

// failingMirror fails the first put of one document, once the export has got two pages ahead of it, and records
// every key put after that until told to stop.
type failingMirror struct {
	export.Mirror
	failKey string
	ahead   func() bool // true once the worker is two pages past the failing page

	mu        sync.Mutex
	failed    bool
	recording bool
	after     []string
}

func (m *failingMirror) Put(ctx context.Context, key string, body []byte, contentType string) error {
	m.mu.Lock()
	if !m.failed && key == m.failKey {
		m.failed, m.recording = true, true
		m.mu.Unlock()
		for deadline := time.Now().Add(20 * time.Second); !m.ahead() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		return errors.New("injected S3 failure")
	}
	if m.recording {
		m.after = append(m.after, key)
	}
	m.mu.Unlock()
	return m.Mirror.Put(ctx, key, body, contentType)
}

// A page's commit that fails stops every write after it: the commits of the pages the worker went on to while
// it was in flight write neither documents nor checkpoints, and the run resumes from the last stored checkpoint
// and ends with every issue written once (each document's content is TestCrashResume's and TestExport's).
func TestFailedPageCommitStopsLaterWrites(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{sim: atlassiansim.Config{Seed: 9, Sites: 1, ProjectsPerSite: 3, IssuesPerProject: 180, MaxComments: 25, MaxChangelog: 45}})
	all := w.simIDs()
	sort.Slice(all, func(a, b int) bool { return len(all[a]) < len(all[b]) || len(all[a]) == len(all[b]) && all[a] < all[b] })
	if len(all) < 6*jira.SearchMaxFull {
		t.Fatalf("%d issues, want six pages", len(all))
	}
	pageOf := map[string]int{}
	for i, id := range all {
		pageOf[id] = i/jira.SearchMaxFull + 1
	}
	var searches atomic.Int32
	w.setHook(func(o jira.Observation) {
		if o.Endpoint == "/rest/api/3/search/jql" {
			searches.Add(1)
		}
	})
	var fm *failingMirror
	eng := w.engine(func(c *export.Config) {
		// The sixth search is asked for once the worker took the fourth page, after it started the third
		// page's commit behind the second's.
		fm = &failingMirror{Mirror: c.Mirror, failKey: mirror.IssueKey(w.connID, w.connector.ID, all[jira.SearchMaxFull]),
			ahead: func() bool { return searches.Load() >= 6 }}
		c.Mirror = fm
		// Our own infrastructure failing leaves the run to its lease: a short one lets the test take it over soon.
		c.Lease = 2 * time.Second
	})
	ref := w.startRun()
	if _, err := eng.Run(t.Context(), ref); err != nil {
		t.Logf("first invocation: %v", err)
	}
	fm.mu.Lock()
	failed, after := fm.failed, fm.after
	fm.recording = false
	fm.mu.Unlock()
	if !failed || searches.Load() < 6 {
		t.Fatalf("failed = %v after %d searches; want the second page's commit failed with the worker two pages ahead", failed, searches.Load())
	}
	for _, k := range after {
		id := strings.TrimSuffix(k[strings.LastIndex(k, "/")+1:], ".json")
		if p := pageOf[id]; p != 2 {
			t.Errorf("%s (page %d) was written after the second page's commit failed", k, p)
		}
	}
	time.Sleep(2100 * time.Millisecond) // the failed invocation's lease expires
	r, _ := w.runToEnd(eng, ref, 60*time.Second)
	if r.Status != connectors.RunSucceeded || r.Counters.IssuesDone != int64(len(all)) {
		t.Fatalf("run = %s %v done %d, want succeeded with %d issues", r.Status, r.Errors, r.Counters.IssuesDone, len(all))
	}
	var docs []string
	for _, k := range w.keys() {
		if strings.Contains(k, "/issues/") && strings.HasSuffix(k, ".json") {
			docs = append(docs, strings.TrimSuffix(k[strings.LastIndex(k, "/")+1:], ".json"))
		}
	}
	if sortedJoin(docs) != sortedJoin(all) {
		t.Errorf("the mirror holds %d issue documents, want one for each of the %d issues", len(docs), len(all))
	}
	m := w.manifest(ref)
	if ids(m.Written) != sortedJoin(all) || m.Counts.Written != int64(len(all)) || m.Counts.Unchanged != 0 {
		t.Errorf("manifest written %d (counts %+v), want every issue once", len(m.Written), m.Counts)
	}
	w.checkCounters(r, m)
}
