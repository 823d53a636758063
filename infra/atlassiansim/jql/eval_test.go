package jql

import (
	"slices"
	"testing"
	"time"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone %s unavailable: %v", name, err)
	}
	return loc
}

func testIssues() []*Issue {
	utc := func(s string) time.Time {
		t, err := time.Parse("2006-01-02 15:04:05", s)
		if err != nil {
			panic(err)
		}
		return t
	}
	return []*Issue{
		{ID: 10001, Key: "ABC-1", ProjectID: "10000", ProjectKey: "ABC", ProjectName: "Alpha Project", IssueType: "Bug", Status: "Open",
			Labels: []string{"urgent", "backend"}, Assignee: "acc-1", Reporter: "acc-2",
			Created: utc("2024-01-01 09:00:30"), Updated: utc("2024-01-10 12:00:00"),
			Summary: "Login fails on Safari", Description: "The login button does nothing.", Comments: "Reproduced on macOS"},
		{ID: 10002, Key: "ABC-2", ProjectID: "10000", ProjectKey: "ABC", ProjectName: "Alpha Project", IssueType: "Task", Status: "Done",
			Labels: nil, Assignee: "", Reporter: "acc-1",
			Created: utc("2024-01-02 23:30:00"), Updated: utc("2024-01-11 08:15:59"),
			Summary: "Update dependencies", Description: "", Comments: ""},
		{ID: 10010, Key: "ABC-10", ProjectID: "10000", ProjectKey: "ABC", ProjectName: "Alpha Project", IssueType: "Story", Status: "In Progress",
			Labels: []string{"frontend"}, Assignee: "acc-2", Reporter: "acc-2",
			Created: utc("2024-01-05 00:00:00"), Updated: utc("2024-01-12 00:00:00"),
			Summary: "Dark mode for settings page", Description: "Users asked for a dark theme.", Comments: "Design is ready; login page next"},
		{ID: 20001, Key: "XYZ-1", ProjectID: "20000", ProjectKey: "XYZ", ProjectName: "Xylophone", IssueType: "Bug", Status: "Open",
			Labels: []string{"Urgent"}, Assignee: "acc-1", Reporter: "",
			Created: utc("2023-12-31 23:59:00"), Updated: utc("2024-01-12 10:00:00"),
			Summary: "Crash when saving", Description: "Stack trace attached", Comments: ""},
	}
}

func matchKeys(t *testing.T, jql string, env Env) []string {
	t.Helper()
	q, err := Parse(jql)
	if err != nil {
		t.Fatalf("Parse(%q) = %v", jql, err)
	}
	var keys []string
	for _, is := range testIssues() {
		if q.Match(is, env) {
			keys = append(keys, is.Key)
		}
	}
	return keys
}

func TestMatch(t *testing.T) {
	env := Env{Now: time.Date(2024, 1, 12, 12, 0, 0, 0, time.UTC), CurrentUser: "acc-1"}
	tests := []struct {
		jql  string
		want []string
	}{
		// project by key, id and name; case-insensitive
		{"project = abc", []string{"ABC-1", "ABC-2", "ABC-10"}},
		{"project = 20000", []string{"XYZ-1"}},
		{`project = "alpha project"`, []string{"ABC-1", "ABC-2", "ABC-10"}},
		{"project != ABC", []string{"XYZ-1"}},
		{"project in (XYZ, 10000)", []string{"ABC-1", "ABC-2", "ABC-10", "XYZ-1"}},
		{"project not in (XYZ)", []string{"ABC-1", "ABC-2", "ABC-10"}},
		{"project is not empty", []string{"ABC-1", "ABC-2", "ABC-10", "XYZ-1"}},
		{"project is empty", nil},
		// key, issuekey, id
		{"key = ABC-2", []string{"ABC-2"}},
		{"issuekey = abc-10", []string{"ABC-10"}},
		{"id = 20001", []string{"XYZ-1"}},
		{"key = 10002", []string{"ABC-2"}},
		{"key != ABC-1", []string{"ABC-2", "ABC-10", "XYZ-1"}},
		{"key > ABC-1", []string{"ABC-2", "ABC-10"}},
		{"key >= ABC-2", []string{"ABC-2", "ABC-10"}},
		{"key < ABC-10", []string{"ABC-1", "ABC-2"}},
		{"key <= ABC-1", []string{"ABC-1"}},
		{"id > 10002", []string{"ABC-10", "XYZ-1"}},
		{"issuekey in (ABC-1, XYZ-1)", []string{"ABC-1", "XYZ-1"}},
		{"issuekey not in (ABC-1, XYZ-1)", []string{"ABC-2", "ABC-10"}},
		// issuetype, status
		{"issuetype = bug", []string{"ABC-1", "XYZ-1"}},
		{"type in (Task, Story)", []string{"ABC-2", "ABC-10"}},
		{`status = "in progress"`, []string{"ABC-10"}},
		{"status != Open", []string{"ABC-2", "ABC-10"}},
		{"status not in (Open, Done)", []string{"ABC-10"}},
		// labels: multi-valued; != and NOT IN never match issues without labels
		{"labels = urgent", []string{"ABC-1", "XYZ-1"}},
		{"labels in (frontend, backend)", []string{"ABC-1", "ABC-10"}},
		{"labels != urgent", []string{"ABC-10"}},
		{"labels not in (frontend)", []string{"ABC-1", "XYZ-1"}},
		{"labels is empty", []string{"ABC-2"}},
		{"labels is not empty", []string{"ABC-1", "ABC-10", "XYZ-1"}},
		{"labels in (frontend, EMPTY)", []string{"ABC-2", "ABC-10"}},
		// users
		{"assignee = currentUser()", []string{"ABC-1", "XYZ-1"}},
		{"assignee = acc-2", []string{"ABC-10"}},
		{"assignee != acc-1", []string{"ABC-10"}},
		{"assignee is EMPTY", []string{"ABC-2"}},
		{"assignee = EMPTY", []string{"ABC-2"}},
		{"assignee in (acc-2, EMPTY)", []string{"ABC-2", "ABC-10"}},
		{"reporter is null", []string{"XYZ-1"}},
		{"reporter is not empty and reporter != currentUser()", []string{"ABC-1", "ABC-10"}},
		{"reporter in (currentUser())", []string{"ABC-2"}},
		// text
		{"summary ~ login", []string{"ABC-1"}},
		{"summary ~ LOGIN", []string{"ABC-1"}},
		{`summary ~ "log*"`, []string{"ABC-1"}},
		{`summary ~ "s?fari"`, []string{"ABC-1"}},
		{`summary ~ "login safari"`, []string{"ABC-1"}},
		{`summary ~ "login chrome"`, nil},
		{`summary ~ "\"fails on Safari\""`, []string{"ABC-1"}},
		{`summary ~ "\"Safari fails\""`, nil},
		{"summary !~ login", []string{"ABC-2", "ABC-10", "XYZ-1"}},
		{"description ~ theme", []string{"ABC-10"}},
		{"description is empty", []string{"ABC-2"}},
		{"description is not empty", []string{"ABC-1", "ABC-10", "XYZ-1"}},
		{"comment ~ login", []string{"ABC-10"}},
		{"comment !~ login", []string{"ABC-1", "ABC-2", "XYZ-1"}},
		{"text ~ login", []string{"ABC-1", "ABC-10"}},
		{"text ~ stack", []string{"XYZ-1"}},
		// boolean structure
		{"project = ABC and status = Open", []string{"ABC-1"}},
		{"status = Done or labels = frontend", []string{"ABC-2", "ABC-10"}},
		{"not status = Open", []string{"ABC-2", "ABC-10"}},
		{"project = XYZ or project = ABC and status = Done", []string{"ABC-2", "XYZ-1"}},
		{"(project = XYZ or project = ABC) and status = Done", []string{"ABC-2"}},
		{"order by key", []string{"ABC-1", "ABC-2", "ABC-10", "XYZ-1"}},
		// unsupported combinations match nothing
		{"summary = login", nil},
		{"universe = 42", nil},
		{"assignee = bogus()", nil},
	}
	for _, tt := range tests {
		if got := matchKeys(t, tt.jql, env); !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) = %v, want %v", tt.jql, got, tt.want)
		}
	}
}

func TestMatchAnonymousCurrentUser(t *testing.T) {
	if got := matchKeys(t, "assignee = currentUser() or assignee is empty", Env{}); !slices.Equal(got, []string{"ABC-2"}) {
		t.Errorf("Match(anonymous currentUser) = %v, want [ABC-2]", got)
	}
}

func TestMatchDates(t *testing.T) {
	utcNow := Env{Now: time.Date(2024, 1, 12, 12, 0, 0, 0, time.UTC)}
	sydney := Env{Now: utcNow.Now, Location: mustLoad(t, "Australia/Sydney")} // UTC+11 in January
	tests := []struct {
		name string
		jql  string
		env  Env
		want []string
	}{
		{"date only is midnight", `created >= "2024-01-02"`, utcNow, []string{"ABC-2", "ABC-10"}},
		{"slash format", `created < "2024/01/02"`, utcNow, []string{"ABC-1", "XYZ-1"}},
		{"minute precision drops seconds", `created = "2024-01-01 09:00"`, utcNow, []string{"ABC-1"}},
		{"greater than the truncated minute", `created > "2024-01-01 09:00"`, utcNow, []string{"ABC-2", "ABC-10"}},
		{"updated minute boundary", `updated <= "2024-01-11 08:15"`, utcNow, []string{"ABC-1", "ABC-2"}},
		{"not equal", `created != "2024-01-05 00:00"`, utcNow, []string{"ABC-1", "ABC-2", "XYZ-1"}},
		{"in list", `created in ("2024-01-05 00:00", "2023-12-31 23:59")`, utcNow, []string{"ABC-10", "XYZ-1"}},
		{"not in list", `created not in ("2024-01-05 00:00", "2023-12-31 23:59")`, utcNow, []string{"ABC-1", "ABC-2"}},
		{"createdDate alias", `createdDate >= 2024-01-05`, utcNow, []string{"ABC-10"}},
		{"updatedDate alias", `updatedDate > "2024-01-11"`, utcNow, []string{"ABC-2", "ABC-10", "XYZ-1"}},
		{"is empty", `created is empty`, utcNow, nil},
		{"is not empty", `updated is not empty`, utcNow, []string{"ABC-1", "ABC-2", "ABC-10", "XYZ-1"}},
		// In Sydney, 2024-01-02 00:00 local is 2024-01-01 13:00 UTC.
		{"user zone", `created >= "2024-01-02"`, sydney, []string{"ABC-2", "ABC-10"}},
		{"user zone excludes earlier", `created < "2024-01-01 20:01"`, sydney, []string{"ABC-1", "XYZ-1"}},
		{"user zone midnight", `created >= "2024/01/03 00:00" and created < "2024/01/04"`, sydney, []string{"ABC-2"}},
		{"epoch millis", `created >= 1704445200000`, utcNow, nil},                     // 2024-01-05 09:00 UTC
		{"epoch millis exact", `created = 1704412800000`, utcNow, []string{"ABC-10"}}, // 2024-01-05 00:00 UTC
		{"relative days", `updated >= -1d`, utcNow, []string{"ABC-10", "XYZ-1"}},
		{"relative quoted hours", `updated > "-3h"`, utcNow, []string{"XYZ-1"}},
		{"relative minutes", `updated >= -120m`, utcNow, []string{"XYZ-1"}},
		{"relative weeks", `created < "-1w 1d"`, utcNow, []string{"ABC-1", "ABC-2", "XYZ-1"}},
		{"relative weeks unquoted", `created >= -1w`, utcNow, nil},
		{"relative combined", `created >= "-1w 3d"`, utcNow, []string{"ABC-2", "ABC-10"}},
		{"now()", `updated < now()`, utcNow, []string{"ABC-1", "ABC-2", "ABC-10", "XYZ-1"}},
		{"startOfDay()", `updated >= startOfDay()`, utcNow, []string{"ABC-10", "XYZ-1"}},
		{"startOfDay offset", `updated >= startOfDay(-1d) and updated < startOfDay()`, utcNow, []string{"ABC-2"}},
		{"endOfDay offset", `updated <= endOfDay("-1d")`, utcNow, []string{"ABC-1", "ABC-2"}},
		{"endOfDay is 23:59", `created <= endOfDay("-12d")`, Env{Now: time.Date(2024, 1, 12, 12, 0, 0, 0, time.UTC)}, []string{"XYZ-1"}},
		// Sydney's day of 2024-01-12 starts at 2024-01-11 13:00 UTC.
		{"startOfDay in user zone", `updated >= startOfDay()`, sydney, []string{"ABC-10", "XYZ-1"}},
		{"startOfDay month offset", `created >= startOfDay(-1M)`, utcNow, []string{"ABC-1", "ABC-2", "ABC-10", "XYZ-1"}},
		{"invalid date matches nothing", `created > "yesterday"`, utcNow, nil},
	}
	for _, tt := range tests {
		if got := matchKeys(t, tt.jql, tt.env); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Match(%q) = %v, want %v", tt.name, tt.jql, got, tt.want)
		}
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		jql  string
		want []string
	}{
		{"project = ABC", []string{"ABC-1", "ABC-2", "ABC-10", "XYZ-1"}}, // no ORDER BY: by id
		{"order by key", []string{"ABC-1", "ABC-2", "ABC-10", "XYZ-1"}},
		{"order by key desc", []string{"XYZ-1", "ABC-10", "ABC-2", "ABC-1"}},
		{"order by id desc", []string{"XYZ-1", "ABC-10", "ABC-2", "ABC-1"}},
		{"order by created", []string{"XYZ-1", "ABC-1", "ABC-2", "ABC-10"}},
		{"order by updated desc", []string{"XYZ-1", "ABC-10", "ABC-2", "ABC-1"}},
		{"order by status, key desc", []string{"ABC-2", "ABC-10", "XYZ-1", "ABC-1"}},
		{"order by issuetype desc, created asc", []string{"ABC-2", "ABC-10", "XYZ-1", "ABC-1"}},
		{"order by assignee", []string{"ABC-1", "XYZ-1", "ABC-10", "ABC-2"}},      // empty last
		{"order by assignee desc", []string{"ABC-2", "ABC-10", "ABC-1", "XYZ-1"}}, // empty first; ties by id
		{"order by summary", []string{"XYZ-1", "ABC-10", "ABC-1", "ABC-2"}},
		{"order by project desc, key desc", []string{"XYZ-1", "ABC-10", "ABC-2", "ABC-1"}},
		{"order by labels", []string{"ABC-1", "ABC-10", "XYZ-1", "ABC-2"}},
	}
	for _, tt := range tests {
		q, err := Parse(tt.jql)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", tt.jql, err)
		}
		issues := testIssues()
		slices.Reverse(issues)
		slices.SortStableFunc(issues, q.Compare)
		var got []string
		for _, is := range issues {
			got = append(got, is.Key)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Compare(%q) order = %v, want %v", tt.jql, got, tt.want)
		}
	}
}

type numCatalog struct{ fakeCatalog }

func (numCatalog) NumberCustomFieldExists(id int64) bool { return id == 10016 }

func TestCustomNumberField(t *testing.T) {
	pts := &Issue{ID: 1, Key: "A-1", Numbers: map[int64]float64{10016: 5}}
	none := &Issue{ID: 2, Key: "A-2"}
	cases := []struct {
		q         string
		pts, none bool
	}{
		{"cf[10016] = 5", true, false},
		{"cf[10016] >= 3", true, false},
		{"cf[10016] < 5", false, false},
		{"cf[10016] in (1, 5)", true, false},
		{"cf[10016] != 5", false, false},
		{"cf[10016] is EMPTY", false, true},
		{"cf[10016] is not EMPTY", true, false},
	}
	for _, c := range cases {
		q, err := Parse(c.q)
		if err != nil {
			t.Fatalf("%s: %v", c.q, err)
		}
		if errs, _ := q.Check(numCatalog{}); len(errs) > 0 {
			t.Fatalf("%s: %v", c.q, errs)
		}
		if got := q.Match(pts, Env{}); got != c.pts {
			t.Errorf("%s on 5 points = %v", c.q, got)
		}
		if got := q.Match(none, Env{}); got != c.none {
			t.Errorf("%s on no points = %v", c.q, got)
		}
	}
	q, _ := Parse("cf[10016] = x")
	if errs, _ := q.Check(numCatalog{}); len(errs) != 1 {
		t.Errorf("a non-number value: errors %v", errs)
	}
	q, _ = Parse("cf[10017] = 1 ORDER BY cf[10018]")
	if errs, _ := q.Check(numCatalog{}); len(errs) != 2 {
		t.Errorf("unknown custom fields: errors %v, want 2", errs)
	}
	q, _ = Parse("project = A ORDER BY cf[10016] ASC")
	if q.Compare(pts, none) >= 0 || q.Compare(none, pts) <= 0 {
		t.Error("ORDER BY cf[10016] ASC: empty values must sort last")
	}
}
