package export_test

import (
	"sort"
	"strings"
	"testing"
	"time"

	"jiraexport/infra/atlassiansim"
	"jiraexport/shared/connectors"
	"jiraexport/shared/export"
	"jiraexport/shared/mirror"
)

func ids(l []mirror.ManifestIssue) string {
	var out []string
	for _, e := range l {
		out = append(out, e.ID)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func sortedJoin(l []string) string {
	sort.Strings(l)
	return strings.Join(l, ",")
}

// TestMirrorFollowsJira: a full run mirrors the JQL's issues exactly; a run with nothing changed costs one search
// request and writes only its manifest; after edits, a comment, a delete, a move out and in, a permission
// removal and a new issue, an incremental run with a census brings the mirror to the new state and its manifest
// lists exactly those changes.
func TestMirrorFollowsJira(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	eng := w.engine(nil)
	ctx := t.Context()

	ref := w.startRun()
	r, _ := w.runToEnd(eng, ref, time.Minute)
	if r.Status != connectors.RunSucceeded {
		t.Fatalf("full run ended %s (%v), want succeeded", r.Status, r.Errors)
	}
	objs := w.objects()
	w.checkMirror(objs)
	w.privacyScan(objs)
	m := w.manifest(ref)
	validate(t, compileSchemas(t), "manifest.v1.json", "manifest", objs[mirror.ManifestKey(ref.ConnectionID, ref.ConnectorID, ref.RunID)])
	if m.Mode != "full" || int(m.Counts.Written) != len(w.simIssues()) || len(m.Removed) != 0 {
		t.Errorf("full manifest: mode %s, %d written, %d removed; want full, %d, 0", m.Mode, m.Counts.Written, len(m.Removed), len(w.simIssues()))
	}
	w.checkCounters(r, m)

	// Nothing changed: one search request, only the manifest written.
	w.sim.ResetCounters()
	before := w.objects()
	ref2 := w.startRun()
	r2, _ := w.runToEnd(eng, ref2, time.Minute)
	if r2.Status != connectors.RunSucceeded {
		t.Fatalf("no-change run ended %s (%v)", r2.Status, r2.Errors)
	}
	c := w.sim.Counters()
	var total int64
	for k, n := range c.Requests {
		if k != atlassiansim.KeyToken {
			total += n
		}
	}
	if c.Requests["POST /rest/api/3/search/jql"] != 1 || total != 1 {
		t.Errorf("no-change run made requests %v, want exactly one search", c.Requests)
	}
	after := w.objects()
	for k, b := range after {
		if _, ok := before[k]; !ok && k != mirror.ManifestKey(ref2.ConnectionID, ref2.ConnectorID, ref2.RunID) {
			t.Errorf("no-change run wrote %s", k)
		} else if ok && string(before[k]) != string(b) {
			t.Errorf("no-change run rewrote %s", k)
		}
	}
	m2 := w.manifest(ref2)
	if m2.Mode != "incremental" || len(m2.Written) != 0 || len(m2.Removed) != 0 {
		t.Errorf("no-change manifest = %+v, want incremental and empty", m2)
	}
	w.checkCounters(r2, m2)
	if r2.Counters.Requests != 1 || r2.Counters.IssuesWritten != 0 {
		t.Errorf("no-change run record: %d requests, %d written; want 1 and 0", r2.Counters.Requests, r2.Counters.IssuesWritten)
	}

	// Mutations.
	p0, p1, p2 := w.site.Projects[0].Key, w.site.Projects[1].Key, w.site.Projects[2].Key
	byProject := map[string][]string{}
	for id, is := range w.simIssues() {
		key := is["key"].(string)
		byProject[key[:strings.Index(key, "-")]] = append(byProject[key[:strings.Index(key, "-")]], id)
	}
	for _, l := range byProject {
		sort.Strings(l)
	}
	edited, commented, deleted, movedOut := byProject[p0][0], byProject[p0][1], byProject[p0][2], byProject[p0][3]
	summary, comment := "edited summary", "a new comment"
	if _, err := w.sim.UpdateIssue(w.site.CloudID, edited, atlassiansim.IssueChange{Summary: &summary}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.sim.UpdateIssue(w.site.CloudID, commented, atlassiansim.IssueChange{AddComment: &comment}); err != nil {
		t.Fatal(err)
	}
	if err := w.sim.DeleteIssue(w.site.CloudID, deleted); err != nil {
		t.Fatal(err)
	}
	if _, err := w.sim.MoveIssue(w.site.CloudID, movedOut, p2); err != nil {
		t.Fatal(err)
	}
	var p2ids []string
	for _, p := range w.site.Projects {
		_ = p
	}
	movedIn := ""
	{
		// An issue of the third project moves into the first: newly matching.
		all, err := w.sim.CreateIssue(w.site.CloudID, p2, atlassiansim.IssueChange{Summary: &summary})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.sim.MoveIssue(w.site.CloudID, all.ID, p0); err != nil {
			t.Fatal(err)
		}
		movedIn = all.ID
	}
	created, err := w.sim.CreateIssue(w.site.CloudID, p0, atlassiansim.IssueChange{Summary: &summary})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.sim.SetProjectPermission(w.site.CloudID, p1, w.user, false); err != nil {
		t.Fatal(err)
	}
	_ = p2ids
	_ = ctx

	ref3 := w.startRun()
	census := w.engine(func(c *export.Config) { c.CensusEvery = time.Nanosecond })
	r3, _ := w.runToEnd(census, ref3, time.Minute)
	if r3.Status != connectors.RunSucceeded {
		t.Fatalf("incremental run ended %s (%v)", r3.Status, r3.Errors)
	}
	objs = w.objects()
	w.checkMirror(objs)
	w.privacyScan(objs)
	m3 := w.manifest(ref3)
	wantWritten := sortedJoin([]string{edited, commented, movedIn, created.ID})
	wantRemoved := sortedJoin(append([]string{deleted, movedOut}, byProject[p1]...))
	if ids(m3.Written) != wantWritten || ids(m3.Removed) != wantRemoved || !m3.Census || m3.Mode != "incremental" {
		t.Errorf("incremental manifest: mode %s census %v written %s removed %s; want written %s removed %s",
			m3.Mode, m3.Census, ids(m3.Written), ids(m3.Removed), wantWritten, wantRemoved)
	}
	w.checkCounters(r3, m3)
	if r3.Counters.IssuesWritten != 4 || r3.Counters.IssuesRemoved != int64(len(strings.Split(wantRemoved, ","))) {
		t.Errorf("incremental run record: %d written, %d removed; want 4 and %d", r3.Counters.IssuesWritten, r3.Counters.IssuesRemoved, len(strings.Split(wantRemoved, ",")))
	}

	// The permission comes back: the issues reappear though none was updated; the census finds them.
	if err := w.sim.SetProjectPermission(w.site.CloudID, p1, w.user, true); err != nil {
		t.Fatal(err)
	}
	ref4 := w.startRun()
	r4, _ := w.runToEnd(census, ref4, time.Minute)
	if r4.Status != connectors.RunSucceeded {
		t.Fatalf("incremental run ended %s (%v)", r4.Status, r4.Errors)
	}
	objs = w.objects()
	w.checkMirror(objs)
	m4 := w.manifest(ref4)
	if ids(m4.Written) != sortedJoin(append([]string(nil), byProject[p1]...)) || len(m4.Removed) != 0 {
		t.Errorf("manifest after the permission came back: written %s removed %s, want the project's issues and none", ids(m4.Written), ids(m4.Removed))
	}
	w.checkCounters(r4, m4)
}
