package atlassiansim

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

func timeDays(d int) time.Duration { return time.Duration(d) * 24 * time.Hour }

// fieldDef is one field of the site as GET /rest/api/3/field describes it (FieldDetails). Shapes of values
// follow Atlassian's field reference: https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-fields/
// and the "custom field types" of https://support.atlassian.com/jira-cloud-administration/docs/custom-fields-types-in-company-managed-projects/
type fieldDef struct {
	id, name   string
	custom     bool
	navigable  bool
	orderable  bool
	searchable bool
	clauses    []string
	schema     map[string]any
}

func sys(id, name, typ string, extra ...string) fieldDef {
	s := map[string]any{"type": typ, "system": id}
	if len(extra) > 0 {
		s["items"] = extra[0]
	}
	return fieldDef{id: id, name: name, navigable: true, orderable: true, searchable: true, clauses: []string{strings.ToLower(id)}, schema: s}
}

func cf(id int64, name, typ, custom string, items ...string) fieldDef {
	s := map[string]any{"type": typ, "custom": custom, "customId": id}
	if len(items) > 0 {
		s["items"] = items[0]
	}
	fid := "customfield_" + strconv.FormatInt(id, 10)
	return fieldDef{id: fid, name: name, custom: true, navigable: true, orderable: true, searchable: true,
		clauses: []string{fmt.Sprintf("cf[%d]", id), name}, schema: s}
}

const cfTypes = "com.atlassian.jira.plugin.system.customfieldtypes:"

// fieldDefs are the fields the simulator serves, in output order. *navigable leaves out the ones whose navigable
// is false (comment, worklog, timetracking), as Jira does.
var fieldDefs = func() []fieldDef {
	nonNav := func(f fieldDef) fieldDef { f.navigable = false; return f }
	defs := []fieldDef{
		sys("summary", "Summary", "string"), sys("description", "Description", "string"), sys("environment", "Environment", "string"),
		sys("issuetype", "Issue Type", "issuetype"), sys("parent", "Parent", "issuelink"), sys("project", "Project", "project"),
		sys("status", "Status", "status"), sys("priority", "Priority", "priority"), sys("resolution", "Resolution", "resolution"),
		sys("labels", "Labels", "array", "string"), sys("components", "Components", "array", "component"),
		sys("fixVersions", "Fix versions", "array", "version"), sys("versions", "Affects versions", "array", "version"),
		sys("assignee", "Assignee", "user"), sys("reporter", "Reporter", "user"), sys("creator", "Creator", "user"),
		sys("created", "Created", "datetime"), sys("updated", "Updated", "datetime"), sys("duedate", "Due date", "date"),
		sys("resolutiondate", "Resolved", "datetime"), sys("statuscategorychangedate", "Status Category Changed", "datetime"),
		sys("lastViewed", "Last Viewed", "datetime"), sys("issuelinks", "Linked Issues", "array", "issuelinks"),
		sys("subtasks", "Sub-tasks", "array", "issuelinks"), sys("votes", "Votes", "votes"), sys("watches", "Watchers", "watches"),
		sys("security", "Security Level", "securitylevel"),
		nonNav(sys("timetracking", "Time tracking", "timetracking")),
		sys("timeoriginalestimate", "Original estimate", "number"), sys("timeestimate", "Remaining Estimate", "number"),
		sys("timespent", "Time Spent", "number"), sys("aggregatetimeoriginalestimate", "Σ Original Estimate", "number"),
		sys("aggregatetimeestimate", "Σ Remaining Estimate", "number"), sys("aggregatetimespent", "Σ Time Spent", "number"),
		sys("progress", "Progress", "progress"), sys("aggregateprogress", "Σ Progress", "progress"),
		sys("workratio", "Work Ratio", "number"),
		cf(10016, "Story point estimate", "number", "com.pyxis.greenhopper.jira:jsw-story-points"),
		cf(10020, "Sprint", "array", "com.pyxis.greenhopper.jira:gh-sprint", "json"),
		cf(10030, "Severity", "option", cfTypes+"select"),
		cf(10031, "Affected platforms", "array", cfTypes+"multiselect", "option"),
		cf(10032, "Reviewer", "user", cfTypes+"userpicker"),
		cf(10033, "Stakeholders", "array", cfTypes+"multiuserpicker", "user"),
		cf(10034, "Acceptance criteria", "string", cfTypes+"textarea"),
		cf(10035, "Target start", "date", cfTypes+"datepicker"),
		cf(10036, "Cost estimate", "number", cfTypes+"float"),
		cf(10037, "Customer tags", "array", cfTypes+"labels", "string"),
		cf(10038, "Design document", "string", cfTypes+"url"),
		cf(10039, "Incident time", "datetime", cfTypes+"datetime"),
		sys("attachment", "Attachment", "array", "attachment"),
		nonNav(sys("comment", "Comment", "comments-page")),
		nonNav(sys("worklog", "Log Work", "array", "worklog")),
	}
	for i := range defs {
		switch defs[i].id {
		case "comment", "worklog", "attachment", "subtasks", "watches", "votes", "progress", "aggregateprogress",
			"issuelinks", "timetracking", "lastViewed", "description", "environment", "customfield_10034":
			defs[i].orderable = false // lists are not ordered by these
		}
	}
	return defs
}()

var fieldByID = func() map[string]*fieldDef {
	m := map[string]*fieldDef{}
	for i := range fieldDefs {
		m[fieldDefs[i].id] = &fieldDefs[i]
	}
	return m
}()

// fieldsList is GET /rest/api/3/field: every field with its schema (FieldDetails), so a client can tell a user
// picker from a text field.
func (c *call) fieldsList() response {
	out := []any{}
	defs := append([]fieldDef(nil), fieldDefs...)
	sort.SliceStable(defs, func(a, b int) bool { return defs[a].custom != defs[b].custom && !defs[a].custom })
	for _, f := range defs {
		m := map[string]any{"id": f.id, "key": f.id, "name": f.name, "custom": f.custom, "orderable": f.orderable,
			"navigable": f.navigable, "searchable": f.searchable, "clauseNames": f.clauses, "schema": f.schema}
		out = append(out, m)
	}
	for _, f := range []struct{ id, name string }{{"issuekey", "Key"}, {"thumbnail", "Images"}} {
		out = append(out, map[string]any{"id": f.id, "key": f.id, "name": f.name, "custom": false, "orderable": false,
			"navigable": true, "searchable": f.id == "issuekey", "clauseNames": []string{}})
	}
	return jsonResponse(http.StatusOK, out)
}

// NumberCustomFieldExists lets cf[N] JQL clauses name story points, the one number custom field the search index
// holds (the skeleton carries it; other custom values live in generated bodies). Other cf[N] fail as unknown.
func (k catalog) NumberCustomFieldExists(id int64) bool { return id == 10016 }

// options of the select fields: ids as Jira numbers customFieldOption.
func (c *call) option(fieldNum, idx int, values []string) map[string]any {
	id := strconv.Itoa(10100 + fieldNum*10 + idx)
	return map[string]any{"self": c.api("/customFieldOption/" + id), "value": values[idx], "id": id}
}

// issueRef is the short form of an issue inside another one (parent, subtasks, issuelinks): id, key, self and a
// few fields.
func (c *call) issueRef(n int32) map[string]any {
	is := c.site.refIssue(n)
	if is == nil {
		return nil
	}
	id := strconv.FormatInt(is.id, 10)
	return map[string]any{"id": id, "key": is.key, "self": c.api("/issue/" + id), "fields": map[string]any{
		"summary": is.summary, "status": c.statusValue(is), "priority": c.priorityValue(is), "issuetype": c.issueTypeValue(is)}}
}

func (c *call) issueTypeValue(is *issue) map[string]any {
	id := 10001
	for i, t := range issueTypes {
		if t == is.issueType {
			id = 10001 + i
		}
	}
	level := 0
	switch is.issueType {
	case "Epic":
		level = 1
	case "Subtask":
		level = -1
	}
	return map[string]any{"self": c.api(fmt.Sprintf("/issuetype/%d", id)), "id": strconv.Itoa(id), "name": is.issueType,
		"description": "", "iconUrl": c.api(fmt.Sprintf("/issuetype/%d/avatar", id)), "subtask": is.issueType == "Subtask",
		"avatarId": 10300 + id%100, "hierarchyLevel": level}
}

func (c *call) statusValue(is *issue) map[string]any {
	sid := statusID(is.status)
	cat := map[string]any{"self": c.api("/statuscategory/2"), "id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"}
	switch is.status {
	case "In Progress", "In Review":
		cat = map[string]any{"self": c.api("/statuscategory/4"), "id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"}
	case "Done":
		cat = map[string]any{"self": c.api("/statuscategory/3"), "id": 3, "key": "done", "colorName": "green", "name": "Done"}
	}
	return map[string]any{"self": c.api("/status/" + sid), "id": sid, "name": is.status, "description": "",
		"iconUrl": c.s.base + "/images/icons/statuses/generic.png", "statusCategory": cat}
}

func (c *call) priorityValue(is *issue) map[string]any {
	id := 3
	for i, p := range priorities {
		if p == is.priority {
			id = i + 1
		}
	}
	return map[string]any{"self": c.api(fmt.Sprintf("/priority/%d", id)), "id": strconv.Itoa(id), "name": is.priority,
		"iconUrl": c.s.base + "/images/icons/priorities/" + strings.ToLower(is.priority) + ".svg"}
}

func (c *call) versionList(p *project, idx []int) []any {
	out := []any{}
	for _, i := range idx {
		id := strconv.FormatInt(p.id*10+int64(i), 10)
		v := map[string]any{"self": c.api("/version/" + id), "id": id, "name": versionNames[i], "description": "",
			"archived": false, "released": i < 3}
		if i < 3 {
			v["releaseDate"] = c.site.epoch.AddDate(0, 3*(i+1), 0).Format("2006-01-02")
		}
		out = append(out, v)
	}
	return out
}

// jiraDuration writes seconds the way Jira's time tracking does ("1d 2h 30m", 8-hour days, 5-day weeks).
func jiraDuration(secs int64) string {
	if secs <= 0 {
		return "0m"
	}
	units := []struct {
		s    int64
		name string
	}{{5 * 8 * 3600, "w"}, {8 * 3600, "d"}, {3600, "h"}, {60, "m"}}
	var parts []string
	for _, u := range units {
		if secs >= u.s {
			parts = append(parts, fmt.Sprintf("%d%s", secs/u.s, u.name))
			secs %= u.s
		}
	}
	return strings.Join(parts, " ")
}

func (is *issue) timeSpent() int64 {
	var t int64
	for _, w := range is.worklogs {
		t += w.seconds
	}
	return t
}

// links are the issue's links in both directions: issue n links to an earlier issue n-d for some n (deterministic
// per pair), and the earlier one shows the same link inward. Links to deleted or invisible issues are left out.
func (st *site) linkTarget(n int32) (int32, int, bool) {
	if n < 1 || n >= st.generated || unit(st.seed, n, 7) >= 0.3 {
		return 0, 0, false
	}
	d := 1 + int32(unit(st.seed, n, 8)*8)
	if n-d < 0 {
		return 0, 0, false
	}
	return n - d, int(unit(st.seed, n, 9) * float64(len(linkTypes))), true
}

const linkWindow = 9

func (c *call) issueLinks(is *issue) []any {
	out := []any{}
	visible := func(m int32) bool {
		if int(m) >= len(c.site.skels) || c.site.deleted(m) {
			return false
		}
		return c.site.projectOf(m).canBrowse(c.user.AccountID)
	}
	render := func(from, to int32, lt int, outward bool) {
		lid := strconv.FormatInt(10000+int64(from)*4+int64(lt), 10)
		t := linkTypes[lt]
		m := map[string]any{"id": lid, "self": c.api("/issueLink/" + lid), "type": map[string]any{"id": t.id, "name": t.name,
			"inward": t.inward, "outward": t.outward, "self": c.api("/issueLinkType/" + t.id)}}
		if outward {
			m["outwardIssue"] = c.issueRef(to)
		} else {
			m["inwardIssue"] = c.issueRef(from)
		}
		out = append(out, m)
	}
	if to, lt, ok := c.site.linkTarget(is.n); ok && visible(to) {
		render(is.n, to, lt, true)
	}
	for d := int32(1); d <= linkWindow; d++ {
		from := is.n + d
		if to, lt, ok := c.site.linkTarget(from); ok && to == is.n && visible(from) {
			render(from, is.n, lt, false)
		}
	}
	return out
}

func (c *call) sprints(is *issue) any {
	if len(is.custom.sprints) == 0 {
		return nil
	}
	out := []any{}
	now := c.now
	for _, id := range is.custom.sprints {
		start := c.site.epoch.Add(timeDays(14 * (id - 1)))
		end := start.Add(timeDays(14))
		sp := map[string]any{"id": id, "name": sprintName(is.project.key, id), "boardId": is.project.id - 9999,
			"goal": "", "startDate": start.UTC().Format("2006-01-02T15:04:05.000Z"), "endDate": end.UTC().Format("2006-01-02T15:04:05.000Z")}
		switch {
		case end.Before(now):
			sp["state"] = "closed"
			sp["completeDate"] = end.UTC().Format("2006-01-02T15:04:05.000Z")
		case start.Before(now):
			sp["state"] = "active"
		default:
			sp["state"] = "future"
		}
		out = append(out, sp)
	}
	return out
}
