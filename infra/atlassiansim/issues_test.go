package atlassiansim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var jiraTS = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$`)

func TestGeneratedData(t *testing.T) {
	f := newFixture(t, nil)
	var uuidFmt, hexFmt, noEmail, unknown, app int
	for _, u := range f.sim.Users() {
		switch {
		case u.AccountID == "unknown":
			unknown++
		case u.AccountType == "app":
			app++
		case regexp.MustCompile(`^557058:[0-9a-f-]{36}$`).MatchString(u.AccountID):
			uuidFmt++
		case regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(u.AccountID):
			hexFmt++
		default:
			t.Errorf("account id %q has neither format", u.AccountID)
		}
		if u.Email == "" {
			noEmail++
		}
	}
	if uuidFmt == 0 || hexFmt == 0 || noEmail < 2 || unknown != 1 || app != 1 {
		t.Errorf("users: %d 557058:uuid, %d hex, %d without email, %d unknown, %d app; want some of each, one unknown", uuidFmt, hexFmt, noEmail, unknown, app)
	}

	// Same seed, same data; another seed, other data.
	a, _ := New(Config{Seed: 7, Clock: NewManualClock(t0)})
	b, _ := New(Config{Seed: 7, Clock: NewManualClock(t0)})
	c, _ := New(Config{Seed: 8, Clock: NewManualClock(t0)})
	ja, _ := json.Marshal(a.Info().Sites)
	jb, _ := json.Marshal(b.Info().Sites)
	jc, _ := json.Marshal(c.Info().Sites)
	if string(ja) != string(jb) || string(ja) == string(jc) {
		t.Errorf("generation is not determined by the seed")
	}
}

func TestIssueShape(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	m := f.jira("POST", s.CloudID, "/issue/bulkfetch", tr.AccessToken, map[string]any{
		"issueIdsOrKeys": keysOf(s, 0, 30), "fields": []string{"*all"}}).json(t)
	var mentions, tables, codeBlocks, links, truncated, attachments, nullAssignee int
	for _, raw := range m["issues"].([]any) {
		is := raw.(map[string]any)
		if !strings.HasPrefix(is["self"].(string), f.url+"/ex/jira/"+s.CloudID+"/rest/api/3/issue/") {
			t.Errorf("self = %q, want gateway-rooted", is["self"])
		}
		fields := is["fields"].(map[string]any)
		for _, k := range []string{"created", "updated"} {
			if !jiraTS.MatchString(fields[k].(string)) {
				t.Errorf("%s = %q, want Jira's +0000 layout", k, fields[k])
			}
		}
		if fields["assignee"] == nil {
			nullAssignee++
		}
		desc, _ := json.Marshal(fields["description"])
		mentions += strings.Count(string(desc), `"type":"mention"`)
		tables += strings.Count(string(desc), `"type":"table"`)
		codeBlocks += strings.Count(string(desc), `"type":"codeBlock"`)
		links += strings.Count(string(desc), `"type":"link"`)
		cm := fields["comment"].(map[string]any)
		if cm["total"].(float64) > float64(len(cm["comments"].([]any))) {
			truncated++
		}
		for _, a := range fields["attachment"].([]any) {
			attachments++
			if _, ok := a.(map[string]any)["id"].(string); !ok {
				t.Errorf("attachment id = %v, want a string", a.(map[string]any)["id"])
			}
		}
	}
	if mentions == 0 || tables == 0 || codeBlocks == 0 || links == 0 || truncated == 0 || attachments == 0 || nullAssignee == 0 {
		t.Errorf("generated issues lack variety: %d mentions, %d tables, %d code blocks, %d links, %d truncated comment pages, %d attachments, %d unassigned",
			mentions, tables, codeBlocks, links, truncated, attachments, nullAssignee)
	}
	// Mentions carry account ids.
	ids := map[string]bool{}
	for _, u := range f.sim.Users() {
		ids[u.AccountID] = true
	}
	raw, _ := json.Marshal(m)
	found := regexp.MustCompile(`"attrs":\{"accessLevel":"","id":"([^"]+)"`).FindAllSubmatch(raw, -1)
	if len(found) == 0 {
		t.Errorf("no mention attrs found")
	}
	for _, id := range found {
		if !ids[string(id[1])] {
			t.Errorf("mention id %q is not a seeded account", id[1])
		}
	}
}

func keysOf(s Site, project, n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("%s-%d", s.Projects[project].Key, i))
	}
	return out
}

func TestCommentsAndChangelogPaging(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	for _, key := range keysOf(s, 0, 30) {
		is := f.jira("GET", s.CloudID, "/issue/"+key+"?fields=comment&expand=changelog", tr.AccessToken, nil).json(t)
		embedded := is["fields"].(map[string]any)["comment"].(map[string]any)
		total := int(embedded["total"].(float64))
		var ids []string
		for start := 0; start < total; start += 7 {
			p := f.jira("GET", s.CloudID, fmt.Sprintf("/issue/%s/comment?startAt=%d&maxResults=7", key, start), tr.AccessToken, nil).json(t)
			for _, c := range p["comments"].([]any) {
				ids = append(ids, c.(map[string]any)["id"].(string))
			}
		}
		if len(ids) != total {
			t.Errorf("%s: paged %d comments, want total %d", key, len(ids), total)
		}
		cl := is["changelog"].(map[string]any)
		htotal := int(cl["total"].(float64))
		var hs int
		for start := 0; ; start += 30 {
			p := f.jira("GET", s.CloudID, fmt.Sprintf("/issue/%s/changelog?startAt=%d&maxResults=30", key, start), tr.AccessToken, nil).json(t)
			hs += len(p["values"].([]any))
			if p["isLast"] == true {
				if p["nextPage"] != nil {
					t.Errorf("%s: last changelog page has nextPage", key)
				}
				break
			}
		}
		if hs != htotal {
			t.Errorf("%s: paged %d changelog entries, want %d", key, hs, htotal)
		}
	}
}

func TestChangelogBulkFetch(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	keys := keysOf(s, 0, 30)
	want := 0
	for _, k := range keys {
		want += int(f.jira("GET", s.CloudID, "/issue/"+k+"/changelog?maxResults=1", tr.AccessToken, nil).json(t)["total"].(float64))
	}
	got, next := 0, ""
	for pages := 0; ; pages++ {
		body := map[string]any{"issueIdsOrKeys": keys, "maxResults": 37}
		if next != "" {
			body["nextPageToken"] = next
		}
		m := f.jira("POST", s.CloudID, "/changelog/bulkfetch", tr.AccessToken, body).json(t)
		for _, l := range m["issueChangeLogs"].([]any) {
			got += len(l.(map[string]any)["changeHistories"].([]any))
		}
		n, ok := m["nextPageToken"].(string)
		if !ok {
			break
		}
		next = n
		if pages > 1000 {
			t.Fatal("bulkfetch does not end")
		}
	}
	if got != want || want < 50 {
		t.Errorf("changelog bulkfetch returned %d entries, want %d (≥ 50)", got, want)
	}
}

func TestBulkFetch(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	keys := []string{s.Projects[0].Key + "-9", s.Projects[0].Key + "-2", "NOPE-1", s.Projects[0].Key + "-5"}
	m := f.jira("POST", s.CloudID, "/issue/bulkfetch", tr.AccessToken, map[string]any{"issueIdsOrKeys": keys}).json(t)
	var ids []string
	for _, is := range m["issues"].([]any) {
		ids = append(ids, is.(map[string]any)["id"].(string))
		if _, ok := is.(map[string]any)["fields"].(map[string]any)["comment"]; ok {
			t.Errorf("bulkfetch default (*navigable) includes comment")
		}
	}
	if len(ids) != 3 || ids[0] >= ids[1] || ids[1] >= ids[2] {
		t.Errorf("bulkfetch ids = %v, want 3 in ascending order", ids)
	}
	// BulkIssueResults: "Issues which aren't found or that the user doesn't have permission to view won't be
	// returned in this list" — unknown keys are simply absent.
	if errs := m["issueErrors"].([]any); len(errs) != 0 {
		t.Errorf("issueErrors = %v, want none for an unknown key", errs)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprint(10000 + i)
	}
	if r := f.jira("POST", s.CloudID, "/issue/bulkfetch", tr.AccessToken, map[string]any{"issueIdsOrKeys": many}); r.status != http.StatusBadRequest {
		t.Errorf("bulkfetch of 101 = %d, want 400", r.status)
	}
}

func TestMyself(t *testing.T) {
	f := newFixture(t, nil)
	for _, u := range f.sim.ConsentingUsers() {
		tr, _ := f.sim.IssueTokens(u.AccountID, "read:jira-user")
		m := f.jira("GET", u.Sites[0], "/myself", tr.AccessToken, nil).json(t)
		if m["accountId"] != u.AccountID || m["timeZone"] == nil {
			t.Errorf("myself = %v, want account %s with a time zone", m, u.AccountID)
		}
		if _, has := m["emailAddress"]; has != (u.Email != "") {
			t.Errorf("myself emailAddress present = %v, want %v", has, u.Email != "")
		}
	}
}

func TestMutations(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	p0, p1 := s.Projects[0].Key, s.Projects[1].Key
	get := func(k string) result {
		return f.jira("GET", s.CloudID, "/issue/"+k+"?fields=summary,updated", tr.AccessToken, nil)
	}
	count := func(jql string) float64 {
		return f.jira("POST", s.CloudID, "/search/approximate-count", tr.AccessToken, map[string]any{"jql": jql}).json(t)["count"].(float64)
	}

	before := get(p0 + "-4").json(t)
	f.clock.Advance(2 * time.Minute)
	if _, err := f.sim.UpdateIssue(s.CloudID, p0+"-4", IssueChange{Summary: ptr("renamed"), Status: ptr("Done")}); err != nil {
		t.Fatal(err)
	}
	after := get(p0 + "-4").json(t)
	if after["fields"].(map[string]any)["summary"] != "renamed" || after["fields"].(map[string]any)["updated"] == before["fields"].(map[string]any)["updated"] {
		t.Errorf("after update: %v", after["fields"])
	}
	if n := count(`project = ` + p0 + ` AND updated >= -1m`); n != 1 {
		t.Errorf("issues updated in the last minute = %v, want 1", n)
	}

	ref, err := f.sim.MoveIssue(s.CloudID, p0+"-5", p1)
	if err != nil || !strings.HasPrefix(ref.Key, p1+"-") {
		t.Fatalf("MoveIssue = %v, %v", ref, err)
	}
	if m := get(p0 + "-5").json(t); m["key"] != ref.Key {
		t.Errorf("old key resolves to %v, want %s", m["key"], ref.Key)
	}

	if err := f.sim.DeleteIssue(s.CloudID, p0+"-6"); err != nil {
		t.Fatal(err)
	}
	if r := get(p0 + "-6"); r.status != http.StatusNotFound {
		t.Errorf("deleted issue = %d, want 404", r.status)
	}
	if n := count("project = " + p0); n != 28 {
		t.Errorf("count after a move and a delete = %v, want 28", n)
	}

	if err := f.sim.SetProjectPermission(s.CloudID, p0, f.admin().AccountID, false); err != nil {
		t.Fatal(err)
	}
	if r := get(p0 + "-7"); r.status != http.StatusNotFound {
		t.Errorf("issue without browse permission = %d, want 404", r.status)
	}
	if r := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": "project = " + p0}); r.status != http.StatusBadRequest {
		t.Errorf("search of a project without permission = %d, want 400 (the value does not exist)", r.status)
	}
	if n := count("project = " + p1); n != 31 {
		t.Errorf("other project still visible: count = %v, want 31", n)
	}

	ref, err = f.sim.CreateIssue(s.CloudID, p1, IssueChange{Summary: ptr("brand new")})
	if err != nil || get(ref.Key).status != 200 {
		t.Errorf("CreateIssue = %v, %v", ref, err)
	}
}
