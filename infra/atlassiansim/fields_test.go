package atlassiansim

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// allIssues fetches every issue of site 0 with *all, through search.
func allIssues(t *testing.T, f *fixture, token string) []map[string]any {
	t.Helper()
	s := f.site(0)
	var out []map[string]any
	next := ""
	for {
		body := map[string]any{"jql": "project is not EMPTY ORDER BY id", "fields": []string{"*all"}, "maxResults": 50}
		if next != "" {
			body["nextPageToken"] = next
		}
		m := f.jira("POST", s.CloudID, "/search/jql", token, body).json(t)
		for _, is := range m["issues"].([]any) {
			out = append(out, is.(map[string]any))
		}
		n, ok := m["nextPageToken"].(string)
		if !ok {
			return out
		}
		next = n
	}
}

type shapeCheck func(v any) error

func isObject(keys ...string) shapeCheck {
	return func(v any) error {
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("want an object, got %T", v)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				return fmt.Errorf("object lacks %q: %v", k, m)
			}
		}
		return nil
	}
}

func arrayOf(item shapeCheck) shapeCheck {
	return func(v any) error {
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("want an array, got %T", v)
		}
		if len(a) == 0 {
			return errEmpty
		}
		for _, x := range a {
			if err := item(x); err != nil {
				return err
			}
		}
		return nil
	}
}

var errEmpty = fmt.Errorf("empty")

func matches(re string) shapeCheck {
	rx := regexp.MustCompile(re)
	return func(v any) error {
		s, ok := v.(string)
		if !ok || !rx.MatchString(s) {
			return fmt.Errorf("want a string matching %s, got %v", re, v)
		}
		return nil
	}
}

func isNumber(v any) error {
	if _, ok := v.(float64); !ok {
		return fmt.Errorf("want a number, got %T", v)
	}
	return nil
}

func isADF(v any) error {
	m, ok := v.(map[string]any)
	if !ok || m["type"] != "doc" || m["version"] != float64(1) {
		return fmt.Errorf("want an ADF doc, got %v", v)
	}
	return nil
}

var (
	userShape    = isObject("self", "accountId", "accountType", "active", "displayName", "avatarUrls")
	optionShape  = isObject("self", "value", "id")
	refShape     = isObject("id", "key", "self", "fields")
	versionShape = isObject("self", "id", "name", "archived", "released")
)

// TestFieldShapes asserts, per field type, the JSON a real site returns for it in `fields`. Sources: the field
// reference and examples in Atlassian's REST v3 documentation (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-issueidorkey-get,
// example response: parent, subtasks, issuelinks, timetracking, watcher, worklog, attachment, comment), the
// custom-field type keys of GET /rest/api/3/field (JsonTypeBean: "option", "array" of "option"/"user"/"json",
// "user", "date", "datetime", "number", "string"), Jira Software's sprint field (an array of objects with id,
// name, state, boardId, startDate, endDate, completeDate: https://developer.atlassian.com/cloud/jira/software/rest/api-group-sprint/)
// and the ADF structure page for rich text (https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/).
func TestFieldShapes(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.IssuesPerProject = 60 })
	tr := f.token()
	issues := allIssues(t, f, tr.AccessToken)
	cases := []struct {
		field, why string
		check      shapeCheck
	}{
		{"parent", "epic or parent issue: id, key, self and a few fields", refShape},
		{"subtasks", "array of issue references", arrayOf(refShape)},
		{"issuelinks", "array of links with type and inwardIssue or outwardIssue", arrayOf(func(v any) error {
			m := v.(map[string]any)
			if err := isObject("id", "self", "type")(v); err != nil {
				return err
			}
			if (m["inwardIssue"] == nil) == (m["outwardIssue"] == nil) {
				return fmt.Errorf("a link has exactly one of inwardIssue/outwardIssue: %v", m)
			}
			return isObject("id", "name", "inward", "outward")(m["type"])
		})},
		{"worklog", "page: startAt, maxResults, total, worklogs", func(v any) error {
			if err := isObject("startAt", "maxResults", "total", "worklogs")(v); err != nil {
				return err
			}
			return arrayOf(isObject("self", "author", "updateAuthor", "created", "updated", "started", "timeSpent", "timeSpentSeconds", "id", "issueId"))(v.(map[string]any)["worklogs"])
		}},
		{"timetracking", "estimates as text and seconds; {} when nothing is tracked", func(v any) error {
			m := v.(map[string]any)
			if len(m) == 0 {
				return errEmpty
			}
			if _, est := m["originalEstimate"]; est {
				if err := isObject("originalEstimateSeconds", "remainingEstimate", "remainingEstimateSeconds")(v); err != nil {
					return err
				}
			}
			if _, spent := m["timeSpent"]; spent {
				return isObject("timeSpentSeconds")(v)
			}
			return nil
		}},
		{"timespent", "seconds", isNumber},
		{"timeoriginalestimate", "seconds", isNumber},
		{"progress", "progress and total; percent when total > 0", func(v any) error {
			if err := isObject("progress", "total")(v); err != nil {
				return err
			}
			if v.(map[string]any)["total"] == float64(0) {
				return errEmpty
			}
			return isObject("percent")(v)
		}},
		{"votes", "self, votes, hasVoted", isObject("self", "votes", "hasVoted")},
		{"watches", "self, watchCount, isWatching", isObject("self", "watchCount", "isWatching")},
		{"components", "array of components", arrayOf(isObject("self", "id", "name"))},
		{"fixVersions", "array of versions", arrayOf(versionShape)},
		{"versions", "array of versions", arrayOf(versionShape)},
		{"priority", "self, id, name, iconUrl", isObject("self", "id", "name", "iconUrl")},
		{"resolution", "self, id, name, description", isObject("self", "id", "name", "description")},
		{"duedate", "a date without time", matches(`^\d{4}-\d\d-\d\d$`)},
		{"environment", "ADF", isADF},
		{"description", "ADF", isADF},
		{"labels", "array of strings", arrayOf(matches(`^\S+$`))},
		{"customfield_10016", "number (story point estimate)", isNumber},
		{"customfield_10020", "sprint: array of sprint objects", arrayOf(func(v any) error {
			if err := isObject("id", "name", "state", "boardId", "startDate", "endDate")(v); err != nil {
				return err
			}
			if st := v.(map[string]any)["state"]; st != "closed" && st != "active" && st != "future" {
				return fmt.Errorf("sprint state %v", st)
			}
			return isNumber(v.(map[string]any)["id"])
		})},
		{"customfield_10030", "single select: one option object", optionShape},
		{"customfield_10031", "multi select: array of option objects", arrayOf(optionShape)},
		{"customfield_10032", "user picker: a user object with accountId", userShape},
		{"customfield_10033", "multi-user picker: array of user objects", arrayOf(userShape)},
		{"customfield_10034", "rich text (textarea): ADF", isADF},
		{"customfield_10035", "date picker: yyyy-MM-dd", matches(`^\d{4}-\d\d-\d\d$`)},
		{"customfield_10036", "number (float)", isNumber},
		{"customfield_10037", "labels: array of strings", arrayOf(matches(`^\S+$`))},
		{"customfield_10038", "URL: a string", matches(`^https://`)},
		{"customfield_10039", "date-time picker: Jira's timestamp", matches(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$`)},
		{"attachment", "array of attachments, string ids", arrayOf(isObject("self", "id", "filename", "author", "created", "size", "mimeType", "content"))},
		{"comment", "page with comments", isObject("comments", "maxResults", "total", "startAt")},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			present, empty := 0, 0
			for _, is := range issues {
				fields := is["fields"].(map[string]any)
				v, ok := fields[tc.field]
				if !ok {
					t.Fatalf("%s: field %s missing from *all", is["key"], tc.field)
				}
				if v == nil {
					empty++
					continue
				}
				switch err := tc.check(v); {
				case errors.Is(err, errEmpty):
					empty++
				case err != nil:
					t.Fatalf("%s: %s (%s): %v", is["key"], tc.field, tc.why, err)
				default:
					present++
				}
			}
			if present == 0 {
				t.Errorf("no issue has a value for %s (%d empty)", tc.field, empty)
			}
		})
	}

	// Sub-tasks point at their parent and the parent lists them.
	byKey := map[string]map[string]any{}
	for _, is := range issues {
		byKey[is["key"].(string)] = is
	}
	var checked int
	for _, is := range issues {
		fields := is["fields"].(map[string]any)
		if fields["issuetype"].(map[string]any)["subtask"] != true {
			continue
		}
		p := fields["parent"].(map[string]any)
		parent := byKey[p["key"].(string)]
		found := false
		for _, s := range parent["fields"].(map[string]any)["subtasks"].([]any) {
			found = found || s.(map[string]any)["key"] == is["key"]
		}
		if !found {
			t.Errorf("%s is a sub-task of %s, which does not list it", is["key"], p["key"])
		}
		checked++
	}
	if checked == 0 {
		t.Error("no sub-tasks generated")
	}
}

// TestFieldsEndpoint: GET /rest/api/3/field describes every field in issues with a schema, so a client can tell a
// user picker from a text field.
func TestFieldsEndpoint(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	var defs []map[string]any
	if err := json.Unmarshal(f.jira("GET", s.CloudID, "/field", tr.AccessToken, nil).body, &defs); err != nil {
		t.Fatal(err)
	}
	byID := map[string]map[string]any{}
	for _, d := range defs {
		byID[d["id"].(string)] = d
	}
	is := f.jira("GET", s.CloudID, "/issue/"+s.Projects[0].Key+"-1", tr.AccessToken, nil).json(t)
	for k := range is["fields"].(map[string]any) {
		d := byID[k]
		if d == nil || d["schema"] == nil {
			t.Errorf("field %s of an issue is not described by /field with a schema", k)
		}
	}
	want := map[string]string{"customfield_10032": cfTypes + "userpicker", "customfield_10033": cfTypes + "multiuserpicker",
		"customfield_10020": "com.pyxis.greenhopper.jira:gh-sprint", "customfield_10030": cfTypes + "select"}
	for id, custom := range want {
		if got := byID[id]["schema"].(map[string]any)["custom"]; got != custom {
			t.Errorf("%s schema.custom = %v, want %s", id, got, custom)
		}
	}
	if c := byID["customfield_10016"]["clauseNames"].([]any); !slices.Contains(c, any("cf[10016]")) {
		t.Errorf("story points clause names = %v, want cf[10016]", c)
	}
}

// TestUserEndpoint: the `self` of every user object resolves, with the same privacy as in issues.
func TestUserEndpoint(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token("read:jira-work", "read:jira-user")
	s := f.site(0)
	is := f.jira("GET", s.CloudID, "/issue/"+s.Projects[0].Key+"-2?fields=reporter", tr.AccessToken, nil).json(t)
	rep := is["fields"].(map[string]any)["reporter"].(map[string]any)
	m := f.do("GET", rep["self"].(string), tr.AccessToken, nil)
	if m.status != 200 || m.json(t)["accountId"] != rep["accountId"] {
		t.Fatalf("GET %s = %d %s", rep["self"], m.status, m.body)
	}
	for _, u := range f.sim.Users() {
		if !slices.Contains(u.Sites, s.CloudID) {
			continue
		}
		got := f.jira("GET", s.CloudID, "/user?accountId="+u.AccountID, tr.AccessToken, nil).json(t)
		if _, has := got["emailAddress"]; has != (u.Email != "") {
			t.Errorf("user %s emailAddress present = %v, want %v", u.DisplayName, has, u.Email != "")
		}
	}
	if r := f.jira("GET", s.CloudID, "/user?accountId=nobody", tr.AccessToken, nil); r.status != 404 {
		t.Errorf("unknown account = %d, want 404", r.status)
	}
}

// TestWorklogPaging: fields.worklog embeds 20; GET .../worklog pages the rest, oldest first.
func TestWorklogPaging(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ManyWorklogsShare = 0.5 })
	tr := f.token()
	s := f.site(0)
	var key string
	var total int
	for _, k := range keysOf(s, 0, 30) {
		w := f.jira("GET", s.CloudID, "/issue/"+k+"?fields=worklog", tr.AccessToken, nil).json(t)["fields"].(map[string]any)["worklog"].(map[string]any)
		if n := int(w["total"].(float64)); n > 20 {
			if len(w["worklogs"].([]any)) != 20 {
				t.Fatalf("%s embeds %d worklogs, want 20", k, len(w["worklogs"].([]any)))
			}
			key, total = k, n
			break
		}
	}
	if key == "" {
		t.Fatal("no issue with more worklogs than one embedded page")
	}
	var started []string
	for start := 0; start < total; start += 7 {
		p := f.jira("GET", s.CloudID, fmt.Sprintf("/issue/%s/worklog?startAt=%d&maxResults=7", key, start), tr.AccessToken, nil).json(t)
		for _, w := range p["worklogs"].([]any) {
			started = append(started, w.(map[string]any)["id"].(string))
		}
	}
	if len(started) != total || !sort.SliceIsSorted(started, func(a, b int) bool {
		return len(started[a]) < len(started[b]) || (len(started[a]) == len(started[b]) && started[a] < started[b])
	}) {
		t.Errorf("paged %d worklogs of %d, ids %v; want all, ascending", len(started), total, started)
	}
}

// TestChangelogAsJiraWritesIt: items carry from/to and fromString/toString with null on an empty side, user fields
// add tmpFromAccountId/tmpToAccountId; expand=changelog is newest first and capped; /changelog is oldest first;
// ids rise with time.
func TestChangelogAsJiraWritesIt(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	users := map[string]bool{}
	for _, u := range f.sim.Users() {
		users[u.AccountID] = true
	}
	var userItems, nullFrom, longOnes int
	for _, k := range keysOf(s, 0, 30) {
		is := f.jira("GET", s.CloudID, "/issue/"+k+"?fields=comment&expand=changelog", tr.AccessToken, nil).json(t)
		cl := is["changelog"].(map[string]any)
		total := int(cl["total"].(float64))
		hs := cl["histories"].([]any)
		if len(hs) != min(total, detailEmbedChangelog) {
			t.Errorf("%s embeds %d of %d histories, want %d", k, len(hs), total, min(total, detailEmbedChangelog))
		}
		if total > detailEmbedChangelog {
			longOnes++
		}
		var embedded []string
		for _, h := range hs {
			embedded = append(embedded, h.(map[string]any)["created"].(string))
		}
		// Paged: oldest first; the embedded page is the newest entries, newest first.
		var paged []map[string]any
		for start := 0; ; start += 100 {
			p := f.jira("GET", s.CloudID, fmt.Sprintf("/issue/%s/changelog?startAt=%d", k, start), tr.AccessToken, nil).json(t)
			for _, v := range p["values"].([]any) {
				paged = append(paged, v.(map[string]any))
			}
			if p["isLast"] == true {
				break
			}
		}
		for i := 1; i < len(paged); i++ {
			if idNum(paged[i]["id"]) <= idNum(paged[i-1]["id"]) || paged[i]["created"].(string) < paged[i-1]["created"].(string) {
				t.Errorf("%s: /changelog not oldest first with rising ids at %d", k, i)
			}
		}
		for i, c := range embedded {
			if want := paged[len(paged)-1-i]["created"]; c != want {
				t.Errorf("%s: embedded history %d created %s, want the %d-th newest %s", k, i, c, i, want)
				break
			}
		}
		for _, h := range paged {
			for _, raw := range h["items"].([]any) {
				it := raw.(map[string]any)
				for _, key := range []string{"field", "fieldtype", "fieldId", "from", "fromString", "to", "toString"} {
					if _, ok := it[key]; !ok {
						t.Fatalf("%s: item without %q (Jira writes it, null when empty): %v", k, key, it)
					}
				}
				if it["fieldId"] == "assignee" {
					userItems++
					if it["tmpToAccountId"] != it["to"] || it["tmpFromAccountId"] != it["from"] {
						t.Errorf("assignee item tmp*AccountId differ from from/to: %v", it)
					}
					if to, ok := it["to"].(string); ok && !users[to] {
						t.Errorf("assignee item to = %q, not an account id", to)
					}
					if it["from"] == nil {
						nullFrom++
						if it["fromString"] != nil {
							t.Errorf("null from with fromString %v", it["fromString"])
						}
					}
				}
				if it["fieldId"] == "summary" && (it["from"] != nil || it["to"] != nil) {
					t.Errorf("summary item has ids: %v", it)
				}
				if it["fieldId"] == "status" && (it["from"] == nil || it["from"] == it["to"]) {
					t.Errorf("status item without from, or to itself: %v", it)
				}
			}
		}
		// Comment ids rise with creation time.
		var prevID float64
		var prevCreated string
		for _, c := range is["fields"].(map[string]any)["comment"].(map[string]any)["comments"].([]any) {
			cm := c.(map[string]any)
			if id := idNum(cm["id"]); id <= prevID || cm["created"].(string) < prevCreated {
				t.Errorf("%s: comment ids do not rise with creation time", k)
			} else {
				prevID, prevCreated = id, cm["created"].(string)
			}
		}
	}
	if userItems == 0 || nullFrom == 0 || longOnes == 0 {
		t.Errorf("changelog lacks variety: %d assignee items, %d with a null from, %d issues beyond the embedded page", userItems, nullFrom, longOnes)
	}

	// A mutation writes the same shapes, with ids above everything generated.
	before := f.jira("GET", s.CloudID, "/issue/"+s.Projects[0].Key+"-3/changelog?startAt=0&maxResults=100", tr.AccessToken, nil).json(t)
	f.clock.Advance(1e9)
	if _, err := f.sim.UpdateIssue(s.CloudID, s.Projects[0].Key+"-3", IssueChange{Assignee: ptr(""), AddComment: ptr("done")}); err != nil {
		t.Fatal(err)
	}
	after := f.jira("GET", s.CloudID, "/issue/"+s.Projects[0].Key+"-3/changelog?startAt=0&maxResults=100", tr.AccessToken, nil).json(t)
	vals := after["values"].([]any)
	last := vals[len(vals)-1].(map[string]any)
	if len(vals) != len(before["values"].([]any))+1 {
		t.Fatalf("a mutation added %d histories", len(vals)-len(before["values"].([]any)))
	}
	it := last["items"].([]any)[0].(map[string]any)
	if it["to"] != nil || it["toString"] != nil || it["tmpToAccountId"] != nil {
		t.Errorf("unassigning writes %v, want null to/toString/tmpToAccountId", it)
	}
}

func idNum(v any) float64 {
	var f float64
	_, _ = fmt.Sscan(v.(string), &f)
	return f
}

// TestRenderedFields: expand=renderedFields renders rich text as HTML, comments with HTML bodies; comment pages
// give renderedBody on request.
func TestRenderedFields(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	var checked int
	for _, k := range keysOf(s, 0, 12) {
		is := f.jira("GET", s.CloudID, "/issue/"+k+"?expand=renderedFields", tr.AccessToken, nil).json(t)
		fields, rf := is["fields"].(map[string]any), is["renderedFields"].(map[string]any)
		for name := range fields {
			if _, ok := rf[name]; !ok {
				t.Errorf("%s: renderedFields lacks %s", k, name)
			}
		}
		if fields["description"] != nil {
			h, _ := rf["description"].(string)
			if !strings.HasPrefix(h, "<p>") || strings.Contains(h, `"type"`) {
				t.Errorf("%s: rendered description = %.80q, want HTML", k, h)
			}
			if strings.Contains(h, "<table") {
				checked++
			}
		}
		for _, c := range rf["comment"].(map[string]any)["comments"].([]any) {
			if b, _ := c.(map[string]any)["body"].(string); !strings.HasPrefix(b, "<p>") {
				t.Errorf("%s: rendered comment body = %.80q", k, b)
			}
		}
		page := f.jira("GET", s.CloudID, "/issue/"+k+"/comment?expand=renderedBody", tr.AccessToken, nil).json(t)
		for _, c := range page["comments"].([]any) {
			if b, _ := c.(map[string]any)["renderedBody"].(string); !strings.HasPrefix(b, "<p>") {
				t.Errorf("%s: renderedBody = %.80q", k, b)
			}
		}
		page = f.jira("GET", s.CloudID, "/issue/"+k+"/comment", tr.AccessToken, nil).json(t)
		for _, c := range page["comments"].([]any) {
			if _, has := c.(map[string]any)["renderedBody"]; has {
				t.Errorf("%s: renderedBody without expand", k)
			}
		}
	}
	if checked == 0 {
		t.Error("no rendered table among the descriptions")
	}
}
