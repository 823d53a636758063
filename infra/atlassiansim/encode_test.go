package atlassiansim

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestAnswersEncodeAsEncodingJSON: marshalJSON (goccy/go-json) writes exactly the bytes encoding/json writes, for
// every kind of value the simulator answers with: issues rendered in full (every field, rendered fields, names,
// schema, changelog, comments, worklogs and attachments embedded without caps), in the navigable default and in
// the id/key-only form, and the other answers' shapes. A difference would change what the simulator serves.
func TestAnswersEncodeAsEncodingJSON(t *testing.T) {
	sim, err := New(Config{Seed: 20261202, Clock: NewManualClock(t0), Sites: 1, ProjectsPerSite: 2, IssuesPerProject: 60,
		AttachmentShare: 0.5, ManyCommentsShare: 0.3, LongChangelogShare: 0.3, ManyWorklogsShare: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	st := sim.data.sites[0]
	c := &call{s: sim, site: st, user: sim.data.users[0], now: t0, loc: time.UTC}
	all := renderOpts{fields: parseFields([]string{"*all"}, "*navigable"), commentCap: 1 << 20, changelogCap: 1 << 20, worklogCap: 1 << 20,
		expand: parseExpand("renderedFields,names,schema,transitions,operations,editmeta,changelog,versionedRepresentations")}
	opts := map[string]renderOpts{
		"all fields, every expand": all,
		"navigable":                {fields: parseFields(nil, "*navigable"), commentCap: searchEmbedComments, changelogCap: searchEmbedChangelog, worklogCap: embedWorklogs},
		"id and key":               {fields: parseFields([]string{"key"}, "*navigable"), minimal: true},
	}
	same := func(t *testing.T, what string, v any) {
		t.Helper()
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: encoding/json: %v", what, err)
		}
		got, err := marshalJSON(v)
		if err != nil {
			t.Fatalf("%s: marshalJSON: %v", what, err)
		}
		if !bytes.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Fatalf("%s: marshalJSON differs from encoding/json at byte %d:\n got %q\nwant %q", what, i,
				got[max(i-40, 0):min(i+40, len(got))], want[max(i-40, 0):min(i+40, len(want))])
		}
	}
	for name, o := range opts {
		t.Run(name, func(t *testing.T) {
			for n := range int32(len(st.skels)) {
				is := st.issue(n)
				same(t, is.key, c.renderIssue(is, o))
			}
		})
	}
	t.Run("other answers", func(t *testing.T) {
		tr, err := sim.IssueTokens(sim.ConsentingUsers()[0].AccountID, "read:jira-work", "offline_access")
		if err != nil {
			t.Fatal(err)
		}
		same(t, "token", tr)
		same(t, "error collection", errorCollection("The value 'a<b>&c' is invalid.", "\u2028 and \x7f"))
		same(t, "names", fieldNames)
		same(t, "schemas", fieldSchemas)
		same(t, "sites", sim.Sites())
		same(t, "info", sim.Info())
		same(t, "counters", sim.Counters())
		same(t, "numbers", map[string]any{"f": []any{0.1, 1e21, 1e-7, 123456789.0, math.Copysign(0, -1), float32(0.1)}, "i": []any{int64(-1 << 62), uint8(7)}})
	})
}
