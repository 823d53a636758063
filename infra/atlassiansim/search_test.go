package atlassiansim

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSearchDefaultFieldsAreIDs(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	for _, r := range []result{
		f.jira("GET", s.CloudID, "/search/jql?jql=project%20is%20not%20empty", tr.AccessToken, nil),
		f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": "project is not empty"}),
	} {
		if r.status != 200 {
			t.Fatalf("search = %d: %s", r.status, r.body)
		}
		issues := r.json(t)["issues"].([]any)
		if len(issues) != searchDefaultMax {
			t.Errorf("default page size = %d, want %d", len(issues), searchDefaultMax)
		}
		for _, is := range issues {
			if m := is.(map[string]any); len(m) != 1 || m["id"] == nil {
				t.Fatalf("issue with default fields = %v, want only id", m)
			}
		}
	}
}

func TestSearchCursorPagingToLastPage(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	jql := "project in (" + s.Projects[0].Key + ", " + s.Projects[1].Key + ") ORDER BY updated DESC"
	got, pages := f.searchAll(s.CloudID, tr.AccessToken, jql, 7, "updated")
	if len(got) != 60 || pages != 9 {
		t.Fatalf("paged search got %d issues in %d pages, want 60 in 9", len(got), pages)
	}
	seen := map[string]bool{}
	prev := ""
	for _, is := range got {
		id := is["id"].(string)
		if seen[id] {
			t.Fatalf("issue %s returned twice", id)
		}
		seen[id] = true
		upd := is["fields"].(map[string]any)["updated"].(string)
		if prev != "" && parseJiraTime(t, upd).After(parseJiraTime(t, prev)) {
			t.Fatalf("ORDER BY updated DESC broken: %s after %s", upd, prev)
		}
		prev = upd
	}
	count := f.jira("POST", s.CloudID, "/search/approximate-count", tr.AccessToken, map[string]any{"jql": jql}).json(t)
	if count["count"] != float64(60) {
		t.Errorf("approximate-count = %v, want 60", count["count"])
	}
}

func parseJiraTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse("2006-01-02T15:04:05.000-0700", s)
	if err != nil {
		t.Fatalf("timestamp %q is not Jira's layout: %v", s, err)
	}
	return v
}

func TestSearchPageSizeCaps(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) {
		c.Sites, c.ProjectsPerSite, c.IssuesPerProject, c.MaxComments, c.MaxChangelog = 1, 2, 2600, 1, 1
		c.RateLimits.Disabled = true
	})
	tr := f.token()
	s := f.site(0)
	tests := []struct {
		fields []string
		expand string
		ask    int
		want   int
	}{
		{nil, "", 6000, 5000},
		{[]string{"id"}, "", 5000, 5000},
		{[]string{"key"}, "", 5001, 5000},
		{[]string{"summary", "status"}, "", 500, 100},
		{[]string{"*all"}, "", 500, 50},
		{[]string{"id"}, "changelog", 500, 50},
		{[]string{"summary"}, "", 30, 30},
	}
	for _, tt := range tests {
		body := map[string]any{"jql": "project = " + s.Projects[0].Key + " OR project = " + s.Projects[1].Key, "maxResults": tt.ask, "expand": tt.expand}
		if tt.fields != nil {
			body["fields"] = tt.fields
		}
		m := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, body).json(t)
		if n := len(m["issues"].([]any)); n != tt.want || m["isLast"] != false || m["nextPageToken"] == nil {
			t.Errorf("search(fields=%v, expand=%q, maxResults=%d) = %d issues (isLast %v), want %d and a next page", tt.fields, tt.expand, tt.ask, n, m["isLast"], tt.want)
		}
	}
}

func TestSearchErrors(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	good := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": "project = " + s.Projects[0].Key, "maxResults": 5}).json(t)
	token := good["nextPageToken"].(string)
	jqlErr := regexp.MustCompile(`^Error in the JQL Query: .+ \(line 1, character \d+\)$`)
	tests := []struct {
		name string
		body any
		want string // exact message, or "jql" for Jira's parse-error form
	}{
		{"unbounded order by", map[string]any{"jql": "order by key desc"}, unboundedJQL},
		{"empty", map[string]any{"jql": ""}, unboundedJQL},
		{"syntax", map[string]any{"jql": "project = " + s.Projects[0].Key + " jql"}, "jql"},
		{"operator", map[string]any{"jql": "project = = x"}, "jql"},
		{"unknown project", map[string]any{"jql": "project = NOPE"}, "The value 'NOPE' does not exist for the field 'project'."},
		{"unknown field", map[string]any{"jql": "universe = 42"}, "Field 'universe' does not exist or you do not have permission to view it."},
		{"bad cursor", map[string]any{"jql": "project = " + s.Projects[0].Key, "nextPageToken": "x" + token}, invalidCursor},
		{"cursor for another query", map[string]any{"jql": "project = " + s.Projects[1].Key, "nextPageToken": token}, invalidCursor},
		{"unknown body field", map[string]any{"jql": "project = X", "startAt": 0}, invalidPayload},
		{"too many reconcile ids", map[string]any{"jql": "project = " + s.Projects[0].Key, "reconcileIssues": make([]int64, 51)}, "The number of issues to reconcile exceeds the limit of 50."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, tt.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("search(%v) = %d, want 400: %s", tt.body, r.status, r.body)
			}
			m := r.json(t)
			msgs := m["errorMessages"].([]any)
			if len(msgs) != 1 || len(m["errors"].(map[string]any)) != 0 {
				t.Fatalf("error body = %s, want one message and empty errors", r.body)
			}
			msg := msgs[0].(string)
			if tt.want == "jql" && !jqlErr.MatchString(msg) || tt.want != "jql" && msg != tt.want {
				t.Errorf("search(%v) message = %q, want %q", tt.body, msg, tt.want)
			}
		})
	}
	// The same JQL text as Jira reports it, through GET.
	r := f.jira("GET", s.CloudID, "/search/jql?jql="+strings.ReplaceAll("project = "+s.Projects[0].Key+" jql", " ", "%20"), tr.AccessToken, nil)
	if want := `{"errorMessages":["Error in the JQL Query: Expecting either 'OR' or 'AND' but got 'jql'. (line 1, character 15)"],"errors":{}}`; string(r.body) != want {
		t.Errorf("GET search bad JQL body = %s, want %s", r.body, want)
	}
}

func TestSearchCursorExpires(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	body := map[string]any{"jql": "project = " + s.Projects[0].Key, "maxResults": 5}
	tok := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, body).json(t)["nextPageToken"].(string)
	if strings.Contains(tok, s.Projects[0].Key) || strings.Contains(tok, f.admin().AccountID) {
		t.Errorf("nextPageToken %q is not opaque", tok)
	}
	f.clock.Advance(cursorTTL - time.Minute)
	tr = f.token()
	body["nextPageToken"] = tok
	if r := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, body); r.status != 200 {
		t.Fatalf("cursor before 7 days = %d, want 200", r.status)
	}
	f.clock.Advance(time.Minute)
	tr = f.token()
	if r := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, body); r.status != http.StatusBadRequest {
		t.Errorf("cursor after 7 days = %d, want 400", r.status)
	}
}

func TestEventualConsistency(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ConsistencyDelay = 5 * time.Second })
	tr := f.token()
	s := f.site(0)
	key := s.Projects[0].Key + "-3"
	ref, err := f.sim.UpdateIssue(s.CloudID, key, IssueChange{Summary: ptr("zebracorn sighting")})
	if err != nil {
		t.Fatal(err)
	}
	search := func(reconcile ...int64) int {
		body := map[string]any{"jql": "project = " + s.Projects[0].Key + " AND summary ~ zebracorn"}
		if reconcile != nil {
			body["reconcileIssues"] = reconcile
		}
		return len(f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, body).json(t)["issues"].([]any))
	}
	id, err := strconv.ParseInt(ref.ID, 10, 64)
	if err != nil {
		t.Fatalf("issue id %q: %v", ref.ID, err)
	}
	if n := search(); n != 0 {
		t.Errorf("search right after the update found %d, want 0 (index lags)", n)
	}
	if n := search(id); n != 1 {
		t.Errorf("search with reconcileIssues found %d, want 1", n)
	}
	f.clock.Advance(5 * time.Second)
	if n := search(); n != 1 {
		t.Errorf("search after the delay found %d, want 1", n)
	}
}

func TestJQLParse(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	queries := []string{"project = " + s.Projects[0].Key, "project = INVALID", "invalid query", "universe = 42"}
	type want struct{ structure, errors, warnings bool }
	tests := []struct {
		mode string
		want []want
	}{
		{"strict", []want{{true, false, false}, {true, false, true}, {false, true, false}, {false, true, false}}},
		{"warn", []want{{true, false, false}, {true, false, true}, {false, true, false}, {true, true, false}}},
		{"none", []want{{true, false, false}, {true, false, false}, {false, true, false}, {true, false, false}}},
	}
	for _, tt := range tests {
		r := f.jira("POST", s.CloudID, "/jql/parse?validation="+tt.mode, tr.AccessToken, map[string]any{"queries": queries})
		if r.status != 200 {
			t.Fatalf("parse(%s) = %d: %s", tt.mode, r.status, r.body)
		}
		for i, q := range r.json(t)["queries"].([]any) {
			m := q.(map[string]any)
			got := want{m["structure"] != nil, m["errors"] != nil, m["warnings"] != nil}
			if got != tt.want[i] || m["query"] != queries[i] {
				t.Errorf("parse(%s, %q) = %v, want structure/errors/warnings %v", tt.mode, queries[i], m, tt.want[i])
			}
		}
	}
	if r := f.jira("POST", s.CloudID, "/jql/parse", tr.AccessToken, map[string]any{"queries": queries}); r.status != http.StatusBadRequest {
		t.Errorf("parse without validation = %d, want 400", r.status)
	}
}

func ptr[T any](v T) *T { return &v }

// TestSearchCreatedRangesPartition: the export pages a large search as disjoint created ranges at once (shared/export
// ranges.go). Half-open ranges on `created` (JQL fields reference, "Created": operators =, !=, >, >=, <, <=;
// https://support.atlassian.com/jira-software-cloud/docs/jql-fields/#Created) with epoch-millisecond bounds (the form
// the export also uses for `updated`, which the simulator's date parser accepts) must split a search exactly: every
// issue in one range, none twice, a bound inside a minute acting on the whole minute (Jira compares dates at minute
// precision). Range bounds on `id` must name an issue that exists, even for < and >: Jira rejects the query otherwise
// ("An issue with id 'N' does not exist for field 'id'.", seen by clients paging with `id > lastId`).
func TestSearchCreatedRangesPartition(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) { c.Sites, c.ProjectsPerSite, c.IssuesPerProject = 1, 2, 60 })
	tr := f.token()
	s := f.site(0)
	base := "project in (" + s.Projects[0].Key + ", " + s.Projects[1].Key + ")"
	all, _ := f.searchAll(s.CloudID, tr.AccessToken, base+" ORDER BY id", 100, "created")
	if len(all) != 120 {
		t.Fatalf("whole search = %d issues, want 120", len(all))
	}
	created := map[string]time.Time{}
	for _, is := range all {
		created[is["id"].(string)] = parseJiraTime(t, is["fields"].(map[string]any)["created"].(string))
	}
	// Cuts at the created instants of the 30th and 80th issue by id, one 40 s into that minute: the issue itself
	// and everything else created in its minute belong above the cut.
	c1 := created[all[30]["id"].(string)].Truncate(time.Minute).Add(40 * time.Second).UnixMilli()
	c2 := created[all[80]["id"].(string)].UnixMilli()
	ranges := []string{
		fmt.Sprintf("created < %d", c1),
		fmt.Sprintf("created >= %d AND created < %d", c1, c2),
		fmt.Sprintf("created >= %d", c2),
	}
	seen := map[string]int{}
	for i, r := range ranges {
		got, _ := f.searchAll(s.CloudID, tr.AccessToken, "("+base+") AND "+r+" ORDER BY id ASC", 7, "created")
		if len(got) == 0 {
			t.Fatalf("range %q is empty", r)
		}
		for _, is := range got {
			id := is["id"].(string)
			seen[id]++
			at := created[id].Truncate(time.Minute)
			lo, hi := time.UnixMilli(c1).Truncate(time.Minute), time.UnixMilli(c2).Truncate(time.Minute)
			if in := []bool{at.Before(lo), !at.Before(lo) && at.Before(hi), !at.Before(hi)}[i]; !in {
				t.Errorf("issue %s created %s is in range %q", id, created[id], r)
			}
		}
	}
	for _, is := range all {
		if n := seen[is["id"].(string)]; n != 1 {
			t.Errorf("issue %s is in %d ranges, want exactly 1", is["id"], n)
		}
	}

	first := all[0]["id"].(string)
	if got, _ := f.searchAll(s.CloudID, tr.AccessToken, base+" AND id > "+first+" ORDER BY id", 100); len(got) != 119 {
		t.Errorf("id > the first issue = %d issues, want 119", len(got))
	}
	r := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": base + " AND id > 1 ORDER BY id"})
	if want := `{"errorMessages":["An issue with id '1' does not exist for field 'id'."],"errors":{}}`; r.status != http.StatusBadRequest || string(r.body) != want {
		t.Errorf("id > a missing issue = %d %s, want 400 %s", r.status, r.body, want)
	}
}
