package export_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/lambdarun"
	"jiraexport/shared/connectors"
)

// TestCrashResume runs the real export bootstrap under the Lambda emulator and kills it with SIGKILL at random
// points of two runs (a full one, then an incremental one after edits), invoking it again as the dispatcher would
// once the lease has expired. Each run must end exactly as an uninterrupted one: the mirror equal to the
// simulator field by field, the manifest listing exactly the changes, once each, and the run record succeeded
// with the manifest's counts. Issue 11's 20 kills resumed by the dispatcher itself are functions/export's
// TestEndToEnd (full runs, against an uninterrupted run's mirror); this test adds the incremental run and the
// field-by-field check with a few kills each.
func TestCrashResume(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the export bootstrap")
	}
	w := newWorld(t, worldOpts{sim: smallSite()})
	overrides := map[string]string{"ATLASSIAN_API_URL": w.simURL, "ATLASSIAN_AUTH_URL": w.simURL,
		"ATLASSIAN_CLIENT_ID": "sim-client-id", "EXPORT_LEASE_SECONDS": "2", "LOG_LEVEL": "INFO"}
	// Latency spreads a run over a few seconds, so the kills land in every phase.
	for ep, d := range map[string]time.Duration{"POST /rest/api/3/search/jql": 400 * time.Millisecond,
		"GET /rest/api/3/issue/{issueIdOrKey}/comment": 40 * time.Millisecond, "POST /rest/api/3/changelog/bulkfetch": 100 * time.Millisecond,
		"POST /rest/api/3/search/approximate-count": 100 * time.Millisecond} {
		if err := w.sim.SetFault(atlassiansim.Fault{Endpoint: ep, Kind: atlassiansim.FaultLatency, Latency: atlassiansim.Duration(d)}); err != nil {
			t.Fatal(err)
		}
	}
	var fn *lambdarun.Function
	start := func() {
		fn = w.env.StartFunction(t, "ExportFunction", overrides)
		// A warm-up event without a run (ignored by the handler), so the kills land in the run's work rather
		// than in the cold start.
		if _, err := fn.Invoke(t.Context(), []byte(`{}`)); err != nil {
			t.Fatalf("warm-up Invoke() = %v", err)
		}
	}
	kills := 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))

	drive := func(ref connectors.RunRef, wantKills int) *connectors.Run {
		payload, _ := json.Marshal(ref)
		killed := 0
		for i := 0; i < 200; i++ {
			if fn == nil {
				start()
			}
			done := make(chan error, 1)
			f := fn
			go func() {
				_, err := f.Invoke(context.Background(), payload)
				done <- err
			}()
			if killed < wantKills {
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("Invoke() = %v", err)
					}
				case <-time.After(time.Duration(20+rng.IntN(1000)) * time.Millisecond):
					f.Kill()
					killedErr := <-done
					_ = killedErr // the killed invocation fails: that is the point
					fn = nil
					killed++
					kills++
					// The crashed worker's lease must expire before anyone may take the run over.
					time.Sleep(2100 * time.Millisecond)
				}
			} else if err := <-done; err != nil {
				t.Fatalf("Invoke() = %v", err)
			}
			r := w.run(ref)
			if !r.Status.Active() {
				return r
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("run did not finish")
		return nil
	}

	ref := w.startRun()
	r := drive(ref, 3)
	w.sim.ClearFaults("")
	want := w.simIssues()
	if r.Status != connectors.RunSucceeded || len(r.Errors) != 0 || r.Counters.IssuesDone != int64(len(want)) {
		t.Fatalf("full run = %s %v done %d, want succeeded with %d issues done", r.Status, r.Errors, r.Counters.IssuesDone, len(want))
	}
	objs := w.objects()
	w.checkMirror(objs)
	w.privacyScan(objs)
	m := w.manifest(ref)
	var all []string
	for id := range want {
		all = append(all, id)
	}
	sort.Strings(all)
	if ids(m.Written) != sortedJoin(all) || len(m.Removed) != 0 || m.Counts.Written != int64(len(all)) || m.Counts.Unchanged != 0 {
		t.Errorf("full manifest written %s (counts %+v), want every issue once", ids(m.Written), m.Counts)
	}
	w.checkCounters(r, m)

	// Edits, then an incremental run crashed as often.
	var byKey []string
	for id := range want {
		byKey = append(byKey, id)
	}
	sort.Strings(byKey)
	summary, comment := "crash-tested edit", "crash-tested comment"
	if _, err := w.sim.UpdateIssue(w.site.CloudID, byKey[0], atlassiansim.IssueChange{Summary: &summary}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.sim.UpdateIssue(w.site.CloudID, byKey[5], atlassiansim.IssueChange{AddComment: &comment}); err != nil {
		t.Fatal(err)
	}
	created, err := w.sim.CreateIssue(w.site.CloudID, w.site.Projects[0].Key, atlassiansim.IssueChange{Summary: &summary})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.sim.SetFault(atlassiansim.Fault{Endpoint: "POST /rest/api/3/search/jql", Kind: atlassiansim.FaultLatency, Latency: atlassiansim.Duration(1200 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	ref2 := w.startRun()
	r2 := drive(ref2, 3)
	if r2.Status != connectors.RunSucceeded || len(r2.Errors) != 0 {
		t.Fatalf("incremental run = %s %v, want succeeded", r2.Status, r2.Errors)
	}
	w.sim.ClearFaults("")
	objs = w.objects()
	w.checkMirror(objs)
	w.privacyScan(objs)
	m2 := w.manifest(ref2)
	if got, wantW := ids(m2.Written), sortedJoin([]string{byKey[0], byKey[5], created.ID}); got != wantW || len(m2.Removed) != 0 {
		t.Errorf("incremental manifest written %s removed %d, want %s and none", got, len(m2.Removed), wantW)
	}
	w.checkCounters(r2, m2)
	if kills < 6 {
		t.Errorf("killed the bootstrap %d times, want 6 (runs finished before the kills)", kills)
	}
	t.Logf("killed %d times; run invocations %d and %d", kills, r.Invocations, r2.Invocations)
}
