package jql

import (
	"slices"
	"strings"
	"testing"
)

// fakeCatalog is a site with project ABC (id 10000, "Alpha Project"), a few types, statuses and users.
type fakeCatalog struct{}

func (fakeCatalog) ProjectExists(v string) bool {
	return strings.EqualFold(v, "ABC") || v == "10000" || strings.EqualFold(v, "Alpha Project")
}
func (fakeCatalog) IssueTypeExists(v string) bool {
	return slices.Contains([]string{"bug", "task", "story"}, strings.ToLower(v))
}
func (fakeCatalog) StatusExists(v string) bool {
	return slices.Contains([]string{"open", "done", "in progress"}, strings.ToLower(v))
}
func (fakeCatalog) UserExists(id string) bool { return id == "acc-1" || id == "acc-2" }

type issueCatalog struct{ fakeCatalog }

func (issueCatalog) IssueExists(k string) bool { return strings.EqualFold(k, "ABC-1") || k == "10001" }

func TestCheck(t *testing.T) {
	const dateHint = "Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
	tests := []struct {
		jql            string
		cat            Catalog
		errs, warnings []string
	}{
		{jql: "project = ABC and status in (Open, Done) and assignee = currentUser() order by created desc"},
		{jql: `project = "alpha project" and issuetype = bug and labels = anything and reporter = acc-2`},
		{jql: `created >= -5d and updated < "2024/01/02 10:00" and created > 1700000000000 and updated >= startOfDay("-1d") and updated <= endOfDay()`},
		{jql: `summary ~ "foo*" and description ~ bar and comment !~ baz and text ~ qux and description is empty`},
		{jql: "key > ABC-10 and id in (10001, 10002) and issuekey != XYZ-1"},
		{jql: "universe = 42", errs: []string{"Field 'universe' does not exist or you do not have permission to view it."}},
		{jql: "cf[10010] = x", errs: []string{"Field 'cf[10010]' does not exist or you do not have permission to view it."}},
		{jql: "summary = test", errs: []string{"The operator '=' is not supported by the 'summary' field."}},
		{jql: "Summary = test", errs: []string{"The operator '=' is not supported by the 'Summary' field."}},
		{jql: "summary in test", errs: []string{`Operator 'in' does not support the non-list value '"test"' for field 'summary'.`}},
		{jql: "status not in 5", errs: []string{`Operator 'not in' does not support the non-list value '5' for field 'status'.`}},
		{jql: "status = (Open, Done)", errs: []string{`Operator '=' does not support the list value '(Open, Done)' for field 'status'.`}},
		{jql: "project ~ ABC", errs: []string{"The operator '~' is not supported by the 'project' field."}},
		{jql: "status > Open", errs: []string{"The operator '>' is not supported by the 'status' field."}},
		{jql: "text is empty", errs: []string{"The operator 'is' is not supported by the 'text' field."}},
		{jql: "comment = x", errs: []string{"The operator '=' is not supported by the 'comment' field."}},
		{jql: "key is empty", errs: []string{"The operator 'is' is not supported by the 'key' field."}},
		{jql: "assignee is acc-1", errs: []string{"The operator 'is' only supports searching for EMPTY values."}},
		{jql: "created > empty", errs: []string{"The operator '>' does not support searching for EMPTY values."}},
		{jql: "project = INVALID", warnings: []string{"The value 'INVALID' does not exist for the field 'project'."}},
		{jql: "project in (ABC, NOPE, NOPE)", warnings: []string{"The value 'NOPE' does not exist for the field 'project'."}},
		{jql: "issuetype = Epic", warnings: []string{"The value 'Epic' does not exist for the field 'issuetype'."}},
		{jql: "type = Epic", warnings: []string{"The value 'Epic' does not exist for the field 'type'."}},
		{jql: "status = Closed", warnings: []string{"The value 'Closed' does not exist for the field 'status'."}},
		{jql: "assignee = nobody or reporter in (acc-1, ghost)", warnings: []string{
			"The value 'nobody' does not exist for the field 'assignee'.", "The value 'ghost' does not exist for the field 'reporter'."}},
		{jql: `created > "yesterday"`, errs: []string{"Date value 'yesterday' for field 'created' is invalid. " + dateHint}},
		{jql: `updated < "2024/13/45"`, errs: []string{"Date value '2024/13/45' for field 'updated' is invalid. " + dateHint}},
		{jql: "key = foo", errs: []string{"The issue key 'foo' for field 'key' is invalid."}},
		{jql: "key in (ABC-1, ABC-2, 10001, 10002)", cat: issueCatalog{}, errs: []string{
			"An issue with key 'ABC-2' does not exist for field 'key'.", "An issue with id '10002' does not exist for field 'key'."}},
		{jql: "assignee in membersOf(devs)", errs: []string{"Unable to find JQL function 'membersOf()'."}},
		{jql: "created > now(1)", errs: []string{"Function 'now' expected '0' arguments but received '1'."}},
		{jql: "created > startOfDay(1, 2)", errs: []string{"Function 'startOfDay' expected between '0' and '1' arguments but received '2'."}},
		{jql: `created > startOfDay("invalid")`, errs: []string{"Duration for function 'startOfDay' should have the format (+/-)n(yMwdm), e.g -1M for 1 month earlier."}},
		{jql: "created > currentUser()", errs: []string{"A value provided by the JQL function 'currentUser' is invalid for the field 'created'."}},
		{jql: "assignee = now()", errs: []string{"A value provided by the JQL function 'now' is invalid for the field 'assignee'."}},
		{jql: "project = ABC order by text, universe, key", errs: []string{
			"Field 'text' does not support sorting.", "Field 'universe' does not exist or you do not have permission to view it."}},
		{jql: "universe = 1 or universe = 2", errs: []string{"Field 'universe' does not exist or you do not have permission to view it."}},
	}
	for _, tt := range tests {
		q, err := Parse(tt.jql)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", tt.jql, err)
		}
		cat := tt.cat
		if cat == nil {
			cat = fakeCatalog{}
		}
		errs, warnings := q.Check(cat)
		if !slices.Equal(errs, tt.errs) || !slices.Equal(warnings, tt.warnings) {
			t.Errorf("Check(%q) = %q, %q; want %q, %q", tt.jql, errs, warnings, tt.errs, tt.warnings)
		}
	}
}
