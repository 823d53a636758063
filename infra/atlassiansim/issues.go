package atlassiansim

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

const issueNotFound = "Issue does not exist or you do not have permission to see it."

// Embedded page sizes. Search embeds at most 20 comments and 20 changelog entries (Atlassian's migration guide);
// bulkfetch and GET issue embed 20 comments and 40 changelog entries (the spec's bulkfetch text).
const (
	searchEmbedComments  = 20
	searchEmbedChangelog = 20
	detailEmbedComments  = 20
	detailEmbedChangelog = 40
	embedWorklogs        = 20 // fields.worklog holds the first 20; GET .../worklog pages the rest
)

// fieldNames and fieldSchemas serve expand=names and expand=schema.
var (
	fieldNames = func() map[string]string {
		m := map[string]string{"id": "ID", "key": "Key"}
		for _, f := range fieldDefs {
			m[f.id] = f.name
		}
		return m
	}()
	fieldSchemas = func() map[string]map[string]any {
		m := map[string]map[string]any{}
		for _, f := range fieldDefs {
			m[f.id] = f.schema
		}
		return m
	}()
)

// fieldSel is a parsed `fields` list.
type fieldSel struct {
	all, navigable bool
	include        map[string]bool
	exclude        map[string]bool
}

func parseFields(list []string, def string) fieldSel {
	if len(list) == 0 {
		list = []string{def}
	}
	f := fieldSel{include: map[string]bool{}, exclude: map[string]bool{}}
	for _, v := range list {
		switch {
		case v == "*all":
			f.all = true
		case v == "*navigable":
			f.navigable = true
		case strings.HasPrefix(v, "-"):
			f.exclude[v[1:]] = true
		default:
			f.include[v] = true
		}
	}
	return f
}

func (f fieldSel) want(name string) bool {
	if f.exclude[name] {
		return false
	}
	if f.include[name] || f.all {
		return true
	}
	d := fieldByID[name]
	return f.navigable && d != nil && d.navigable
}

// identityOnly reports whether only id and/or key were asked for: such issues carry no `fields` object and
// search allows the largest pages for them.
func (f fieldSel) identityOnly() bool {
	if f.all || f.navigable {
		return false
	}
	for k := range f.include {
		if k != "id" && k != "key" {
			return false
		}
	}
	return true
}

func (f fieldSel) heavy() bool {
	return f.all || f.include["comment"] || f.include["description"] || f.include["worklog"]
}

type renderOpts struct {
	fields       fieldSel
	expand       map[string]bool
	commentCap   int
	changelogCap int
	worklogCap   int
	minimal      bool // search's id/key-only form
}

func parseExpand(vals ...string) map[string]bool {
	m := map[string]bool{}
	for _, v := range splitList(vals) {
		m[v] = true
	}
	return m
}

// findIssue resolves an id or a current or former key to a visible issue.
func (c *call) findIssue(idOrKey string) *issue {
	n, ok := c.site.lookup(idOrKey)
	if !ok {
		return nil
	}
	is := c.site.issue(n)
	if is == nil || is.deleted || !is.project.canBrowse(c.user.AccountID) {
		return nil
	}
	return is
}

func (c *call) userDetails(accountID string) any {
	if accountID == "" {
		return nil
	}
	u := c.s.data.userByID[accountID]
	if u == nil {
		return nil
	}
	m := map[string]any{
		"self":        c.api("/user?accountId=" + url.QueryEscape(u.AccountID)),
		"accountId":   u.AccountID,
		"accountType": u.AccountType,
		"active":      u.Active,
		"displayName": u.DisplayName,
		"avatarUrls":  avatarURLs(u.AccountID),
	}
	// Hidden by profile visibility: Jira omits or nulls these; the schema says string, so omit.
	if u.Email != "" {
		m["emailAddress"] = u.Email
	}
	if u.TimeZone != "" {
		m["timeZone"] = u.TimeZone
	}
	return m
}

func avatarURLs(id string) map[string]string {
	base := "https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/" + url.PathEscape(id) + "/"
	return map[string]string{"16x16": base + "16", "24x24": base + "24", "32x32": base + "32", "48x48": base + "48"}
}

func (c *call) renderIssue(is *issue, o renderOpts) map[string]any {
	out := map[string]any{"id": strconv.FormatInt(is.id, 10)}
	if o.minimal {
		if o.fields.include["key"] {
			out["key"] = is.key
		}
		return out
	}
	var expands []string
	for _, e := range []string{"renderedFields", "names", "schema", "transitions", "operations", "editmeta", "changelog", "versionedRepresentations"} {
		if !o.expand[e] {
			expands = append(expands, e)
		}
	}
	out["expand"] = strings.Join(expands, ",")
	out["key"] = is.key
	out["self"] = c.api("/issue/" + strconv.FormatInt(is.id, 10))
	fields := map[string]any{}
	names := map[string]any{}
	schema := map[string]any{}
	for _, fd := range fieldDefs {
		f := fd.id
		if !o.fields.want(f) {
			continue
		}
		fields[f] = c.fieldValue(is, f, o)
		names[f] = fieldNames[f]
		schema[f] = fieldSchemas[f]
	}
	out["fields"] = fields
	if o.expand["names"] {
		out["names"] = names
	}
	if o.expand["schema"] {
		out["schema"] = schema
	}
	if o.expand["renderedFields"] {
		rf := map[string]any{}
		for f := range fields {
			rf[f] = c.renderedValue(is, f, o)
		}
		out["renderedFields"] = rf
	}
	if o.expand["changelog"] {
		hs := is.histories
		total := len(hs)
		// The most recent entries, newest first, as the spec describes the embedded changelog.
		var page []any
		for i := len(hs) - 1; i >= 0 && len(page) < o.changelogCap; i-- {
			page = append(page, c.renderHistory(hs[i], nil))
		}
		if page == nil {
			page = []any{}
		}
		out["changelog"] = map[string]any{"startAt": 0, "maxResults": len(page), "total": total, "histories": page}
	}
	return out
}

func (c *call) fieldValue(is *issue, f string, o renderOpts) any {
	idStr := strconv.FormatInt(is.id, 10)
	cv := &is.custom
	nullIfZero := func(v int64) any {
		if v == 0 {
			return nil
		}
		return v
	}
	switch f {
	case "summary":
		return is.summary
	case "description":
		if is.description == nil {
			return nil
		}
		return is.description
	case "environment":
		if is.environment == nil {
			return nil
		}
		return is.environment
	case "issuetype":
		return c.issueTypeValue(is)
	case "parent":
		if is.parent < 0 || c.site.deleted(is.parent) {
			return nil
		}
		return c.issueRef(is.parent)
	case "project":
		p := is.project
		return map[string]any{"self": c.api(fmt.Sprintf("/project/%d", p.id)), "id": strconv.FormatInt(p.id, 10), "key": p.key,
			"name": p.name, "projectTypeKey": "software", "simplified": false, "avatarUrls": avatarURLs("project-" + p.key)}
	case "status":
		return c.statusValue(is)
	case "priority":
		return c.priorityValue(is)
	case "labels":
		if is.labels == nil {
			return []string{}
		}
		return is.labels
	case "assignee":
		return c.userDetails(is.assignee)
	case "reporter":
		return c.userDetails(is.reporter)
	case "creator":
		return c.userDetails(is.creator)
	case "created":
		return c.ts(is.created)
	case "updated":
		return c.ts(is.updated)
	case "duedate":
		if is.dueDate == nil {
			return nil
		}
		return is.dueDate.Format("2006-01-02")
	case "resolution":
		if is.status != "Done" {
			return nil
		}
		return map[string]any{"self": c.api("/resolution/10000"), "id": "10000", "name": "Done", "description": "Work has been completed on this issue."}
	case "resolutiondate":
		if is.status != "Done" {
			return nil
		}
		return c.ts(is.updated)
	case "statuscategorychangedate":
		return c.ts(is.updated)
	case "lastViewed", "security":
		return nil
	case "components":
		out := []any{}
		for _, i := range is.components {
			id := strconv.FormatInt(is.project.id*10+int64(i), 10)
			out = append(out, map[string]any{"self": c.api("/component/" + id), "id": id, "name": componentNames[i],
				"description": componentNames[i] + " of " + is.project.name})
		}
		return out
	case "fixVersions":
		return c.versionList(is.project, is.fixVersions)
	case "versions":
		return c.versionList(is.project, is.versions)
	case "issuelinks":
		return c.issueLinks(is)
	case "subtasks":
		out := []any{}
		for _, ch := range c.site.children[is.n] {
			if !c.site.deleted(ch) {
				out = append(out, c.issueRef(ch))
			}
		}
		return out
	case "votes":
		return map[string]any{"self": c.api("/issue/" + is.key + "/votes"), "votes": is.votes, "hasVoted": false}
	case "watches":
		return map[string]any{"self": c.api("/issue/" + is.key + "/watchers"), "watchCount": is.watchers, "isWatching": false}
	case "timetracking":
		// Jira leaves out what is not set and answers {} for an issue without any time tracking.
		tt := map[string]any{}
		spent := is.timeSpent()
		if is.estimate > 0 {
			tt["originalEstimate"], tt["originalEstimateSeconds"] = jiraDuration(is.estimate), is.estimate
			tt["remainingEstimate"], tt["remainingEstimateSeconds"] = jiraDuration(is.remaining), is.remaining
		}
		if spent > 0 {
			tt["timeSpent"], tt["timeSpentSeconds"] = jiraDuration(spent), spent
		}
		return tt
	case "timeoriginalestimate", "aggregatetimeoriginalestimate":
		return nullIfZero(is.estimate)
	case "timeestimate", "aggregatetimeestimate":
		if is.estimate == 0 {
			return nil
		}
		return is.remaining
	case "timespent", "aggregatetimespent":
		return nullIfZero(is.timeSpent())
	case "progress", "aggregateprogress":
		spent := is.timeSpent()
		p := map[string]any{"progress": spent, "total": spent + is.remaining}
		if spent+is.remaining > 0 {
			p["percent"] = spent * 100 / (spent + is.remaining)
		}
		return p
	case "workratio":
		if is.estimate == 0 {
			return -1
		}
		return is.timeSpent() * 100 / is.estimate
	case "customfield_10016":
		if cv.storyPoints == nil {
			return nil
		}
		return *cv.storyPoints
	case "customfield_10020":
		return c.sprints(is)
	case "customfield_10030":
		if cv.severity < 0 {
			return nil
		}
		return c.option(0, cv.severity, severityOpts)
	case "customfield_10031":
		if len(cv.platforms) == 0 {
			return nil
		}
		out := []any{}
		for _, i := range cv.platforms {
			out = append(out, c.option(1, i, platformOpts))
		}
		return out
	case "customfield_10032":
		return c.userDetails(cv.reviewer)
	case "customfield_10033":
		if len(cv.stakeholders) == 0 {
			return nil
		}
		out := []any{}
		for _, u := range cv.stakeholders {
			out = append(out, c.userDetails(u))
		}
		return out
	case "customfield_10034":
		if cv.acceptance == nil {
			return nil
		}
		return cv.acceptance
	case "customfield_10035":
		if cv.targetStart == nil {
			return nil
		}
		return cv.targetStart.Format("2006-01-02")
	case "customfield_10036":
		if cv.cost == nil {
			return nil
		}
		return *cv.cost
	case "customfield_10037":
		if len(cv.customerTags) == 0 {
			return nil
		}
		return cv.customerTags
	case "customfield_10038":
		if cv.designURL == "" {
			return nil
		}
		return cv.designURL
	case "customfield_10039":
		if cv.incidentAt == nil {
			return nil
		}
		return c.ts(*cv.incidentAt)
	case "attachment":
		out := []any{}
		for _, a := range is.attachments {
			out = append(out, c.renderAttachment(a))
		}
		return out
	case "comment":
		page := []any{}
		for _, cm := range is.comments {
			if len(page) >= o.commentCap {
				break
			}
			page = append(page, c.renderComment(is, cm, false))
		}
		return map[string]any{"self": c.api("/issue/" + idStr + "/comment"), "comments": page,
			"maxResults": o.commentCap, "total": len(is.comments), "startAt": 0}
	case "worklog":
		page := []any{}
		for _, w := range is.worklogs {
			if len(page) >= o.worklogCap {
				break
			}
			page = append(page, c.renderWorklog(is, w))
		}
		return map[string]any{"startAt": 0, "maxResults": o.worklogCap, "total": len(is.worklogs), "worklogs": page}
	}
	return nil
}

// renderedValue is a field's renderedFields entry: rich text as HTML, dates in the display format, the comment
// and worklog pages with HTML bodies; null for fields Jira does not render.
func (c *call) renderedValue(is *issue, f string, o renderOpts) any {
	doc := func(d map[string]any) any {
		if d == nil {
			return nil
		}
		return adfHTML(d)
	}
	switch f {
	case "description":
		return doc(is.description)
	case "environment":
		return doc(is.environment)
	case "customfield_10034":
		return doc(is.custom.acceptance)
	case "created":
		return renderedDate(is.created, c.loc, true)
	case "updated", "statuscategorychangedate":
		return renderedDate(is.updated, c.loc, true)
	case "resolutiondate":
		if is.status != "Done" {
			return nil
		}
		return renderedDate(is.updated, c.loc, true)
	case "duedate":
		if is.dueDate == nil {
			return nil
		}
		return renderedDate(*is.dueDate, c.loc, false)
	case "attachment":
		out := []any{}
		for _, a := range is.attachments {
			m := c.renderAttachment(a)
			m["created"] = renderedDate(a.created, c.loc, true)
			m["size"] = humanSize(a.size)
			out = append(out, m)
		}
		return out
	case "comment":
		page := []any{}
		for _, cm := range is.comments {
			if len(page) >= o.commentCap {
				break
			}
			m := c.renderComment(is, cm, false)
			m["body"] = adfHTML(cm.body)
			m["created"], m["updated"] = renderedDate(cm.created, c.loc, true), renderedDate(cm.updated, c.loc, true)
			page = append(page, m)
		}
		return map[string]any{"comments": page, "maxResults": o.commentCap, "total": len(is.comments), "startAt": 0}
	case "worklog":
		page := []any{}
		for _, w := range is.worklogs {
			if len(page) >= o.worklogCap {
				break
			}
			m := c.renderWorklog(is, w)
			if w.comment != nil {
				m["comment"] = adfHTML(w.comment)
			}
			page = append(page, m)
		}
		return map[string]any{"startAt": 0, "maxResults": o.worklogCap, "total": len(is.worklogs), "worklogs": page}
	case "timetracking":
		return c.fieldValue(is, f, o)
	}
	return nil
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (c *call) renderWorklog(is *issue, w *worklog) map[string]any {
	id := strconv.FormatInt(w.id, 10)
	m := map[string]any{"self": c.api(fmt.Sprintf("/issue/%d/worklog/%s", is.id, id)), "author": c.userDetails(w.author),
		"updateAuthor": c.userDetails(w.author), "created": c.ts(w.created), "updated": c.ts(w.updated),
		"started": c.ts(w.started), "timeSpent": jiraDuration(w.seconds), "timeSpentSeconds": w.seconds,
		"id": id, "issueId": strconv.FormatInt(is.id, 10)}
	if w.comment != nil {
		m["comment"] = w.comment
	}
	return m
}

func (c *call) renderAttachment(a *attachment) map[string]any {
	id := strconv.FormatInt(a.id, 10)
	m := map[string]any{"self": c.api("/attachment/" + id), "id": id, "filename": a.filename,
		"author": c.userDetails(a.author), "created": c.ts(a.created), "size": a.size, "mimeType": a.mimeType,
		"content": c.api("/attachment/content/" + id)}
	if strings.HasPrefix(a.mimeType, "image/") {
		m["thumbnail"] = c.api("/attachment/thumbnail/" + id)
	}
	return m
}

func (c *call) renderComment(is *issue, cm *comment, renderedBody bool) map[string]any {
	m := map[string]any{
		"self":         c.api(fmt.Sprintf("/issue/%d/comment/%d", is.id, cm.id)),
		"id":           strconv.FormatInt(cm.id, 10),
		"author":       c.userDetails(cm.author),
		"updateAuthor": c.userDetails(cm.updateAuthor),
		"body":         cm.body,
		"created":      c.ts(cm.created),
		"updated":      c.ts(cm.updated),
		"jsdPublic":    true,
	}
	if cm.visibility != nil {
		m["visibility"] = cm.visibility
	}
	if renderedBody {
		m["renderedBody"] = adfHTML(cm.body)
	}
	return m
}

// renderHistory renders a changelog entry; fieldIDs, when set, keeps only items for those fields. Items are
// written as Jira writes them: from/to and fromString/toString are null when the side is empty, and user fields
// carry tmpFromAccountId/tmpToAccountId beside the account ids in from/to.
func (c *call) renderHistory(h *history, fieldIDs map[string]bool) map[string]any {
	items := []any{}
	orNull := func(has bool, v string) any {
		if !has {
			return nil
		}
		return v
	}
	for _, it := range h.items {
		if fieldIDs != nil && !fieldIDs[it.FieldID] {
			continue
		}
		m := map[string]any{"field": it.Field, "fieldtype": it.FieldType, "fieldId": it.FieldID,
			"from": orNull(it.hasFrom, it.From), "fromString": orNull(it.hasFromString, it.FromString),
			"to": orNull(it.hasTo, it.To), "toString": orNull(it.hasToString, it.ToString)}
		if it.user {
			m["tmpFromAccountId"] = orNull(it.hasFrom, it.From)
			m["tmpToAccountId"] = orNull(it.hasTo, it.To)
		}
		items = append(items, m)
	}
	return map[string]any{"id": strconv.FormatInt(h.id, 10), "author": c.userDetails(h.author), "created": c.ts(h.created), "items": items}
}

// getIssue is GET /rest/api/3/issue/{issueIdOrKey}.
func (c *call) getIssue() response {
	is := c.findIssue(c.r.PathValue("issueIdOrKey"))
	if is == nil {
		return jiraErr(http.StatusNotFound, issueNotFound)
	}
	q := c.r.URL.Query()
	o := renderOpts{fields: parseFields(splitList(q["fields"]), "*all"), expand: parseExpand(q["expand"]...),
		commentCap: detailEmbedComments, changelogCap: detailEmbedChangelog, worklogCap: embedWorklogs}
	c.points++
	return jsonResponse(http.StatusOK, c.renderIssue(is, o))
}

// bulkFetch is POST /rest/api/3/issue/bulkfetch.
func (c *call) bulkFetch() response {
	var req struct {
		IssueIdsOrKeys []string `json:"issueIdsOrKeys"`
		Fields         []string `json:"fields"`
		Expand         []string `json:"expand"`
		Properties     []string `json:"properties"`
		FieldsByKeys   bool     `json:"fieldsByKeys"`
	}
	if err := decodeStrict(c.r, &req); err != nil {
		return jiraErr(http.StatusBadRequest, invalidPayload)
	}
	if len(req.IssueIdsOrKeys) == 0 {
		return jiraErr(http.StatusBadRequest, "issueIdsOrKeys must contain at least one issue id or key.")
	}
	if len(req.IssueIdsOrKeys) > 100 {
		return jiraErr(http.StatusBadRequest, "The number of issues requested exceeds the limit of 100.")
	}
	if len(req.Properties) > 5 {
		return jiraErr(http.StatusBadRequest, "The number of properties requested exceeds the limit of 5.")
	}
	o := renderOpts{fields: parseFields(req.Fields, "*navigable"), expand: parseExpand(req.Expand...),
		commentCap: detailEmbedComments, changelogCap: detailEmbedChangelog, worklogCap: embedWorklogs}
	seen := map[int64]bool{}
	var found []*issue
	// "Issues which aren't found or that the user doesn't have permission to view won't be returned in this list"
	// (BulkIssueResults.issueErrors in the spec): unknown, deleted and invisible ids are simply left out;
	// issueErrors is for retriable failures, which the issue_error fault produces.
	errs := []any{}
	for _, k := range req.IssueIdsOrKeys {
		is := c.findIssue(k)
		if is == nil {
			continue
		}
		if c.failIssue {
			c.failIssue = false
			errs = append(errs, map[string]any{"id": strconv.FormatInt(is.id, 10), "errorMessage": "Failed to retrieve the issue. Try again later."})
			seen[is.id] = true
			continue
		}
		if !seen[is.id] {
			seen[is.id] = true
			found = append(found, is)
		}
	}
	sort.Slice(found, func(a, b int) bool { return found[a].id < found[b].id })
	issues := []any{}
	for _, is := range found {
		issues = append(issues, c.renderIssue(is, o))
	}
	c.points += int64(len(found))
	return jsonResponse(http.StatusOK, map[string]any{"issues": issues, "issueErrors": errs})
}

// comments is GET /rest/api/3/issue/{issueIdOrKey}/comment.
func (c *call) comments() response {
	is := c.findIssue(c.r.PathValue("issueIdOrKey"))
	if is == nil {
		return jiraErr(http.StatusNotFound, issueNotFound)
	}
	q := c.r.URL.Query()
	startAt, err1 := queryInt(q, "startAt", 0)
	maxResults, err2 := queryInt(q, "maxResults", 100)
	if err1 != nil || err2 != nil || startAt < 0 || maxResults < 0 {
		return jiraErr(http.StatusBadRequest, "startAt and maxResults must be non-negative integers.")
	}
	maxResults = min(maxResults, 100)
	list := append([]*comment(nil), is.comments...)
	switch q.Get("orderBy") {
	case "", "created", "+created":
	case "-created":
		for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
			list[i], list[j] = list[j], list[i]
		}
	default:
		return jiraErr(http.StatusBadRequest, "orderBy must be one of created, -created, +created.")
	}
	rendered := parseExpand(q["expand"]...)["renderedBody"]
	page := []any{}
	for i := startAt; i < int64(len(list)) && int64(len(page)) < maxResults; i++ {
		page = append(page, c.renderComment(is, list[i], rendered))
	}
	c.points += int64(len(page))
	return jsonResponse(http.StatusOK, map[string]any{"startAt": startAt, "maxResults": maxResults, "total": len(list), "comments": page})
}

// changelog is GET /rest/api/3/issue/{issueIdOrKey}/changelog, oldest first.
func (c *call) changelog() response {
	is := c.findIssue(c.r.PathValue("issueIdOrKey"))
	if is == nil {
		return jiraErr(http.StatusNotFound, issueNotFound)
	}
	q := c.r.URL.Query()
	startAt, err1 := queryInt(q, "startAt", 0)
	maxResults, err2 := queryInt(q, "maxResults", 100)
	if err1 != nil || err2 != nil || startAt < 0 || maxResults < 0 {
		return jiraErr(http.StatusBadRequest, "startAt and maxResults must be non-negative integers.")
	}
	maxResults = min(maxResults, 100)
	values := []any{}
	for i := startAt; i < int64(len(is.histories)) && int64(len(values)) < maxResults; i++ {
		values = append(values, c.renderHistory(is.histories[i], nil))
	}
	total := int64(len(is.histories))
	self := fmt.Sprintf("/issue/%s/changelog?maxResults=%d&startAt=%d", is.key, maxResults, startAt)
	out := map[string]any{"self": c.api(self), "maxResults": maxResults, "startAt": startAt, "total": total,
		"isLast": startAt+int64(len(values)) >= total, "values": values}
	if next := startAt + int64(len(values)); next < total {
		out["nextPage"] = c.api(fmt.Sprintf("/issue/%s/changelog?maxResults=%d&startAt=%d", is.key, maxResults, next))
	}
	c.points += int64(len(values))
	return jsonResponse(http.StatusOK, out)
}

// changelogBulk is POST /rest/api/3/changelog/bulkfetch: histories of several issues, oldest first per issue,
// paged across issues by an opaque cursor.
func (c *call) changelogBulk() response {
	var req struct {
		IssueIdsOrKeys []string `json:"issueIdsOrKeys"`
		FieldIDs       []string `json:"fieldIds"`
		MaxResults     *int     `json:"maxResults"`
		NextPageToken  string   `json:"nextPageToken"`
	}
	if err := decodeStrict(c.r, &req); err != nil {
		return jiraErr(http.StatusBadRequest, invalidPayload)
	}
	if n := len(req.IssueIdsOrKeys); n < 1 || n > 1000 {
		return jiraErr(http.StatusBadRequest, "issueIdsOrKeys must contain between 1 and 1000 issue ids or keys.")
	}
	if len(req.FieldIDs) > 10 {
		return jiraErr(http.StatusBadRequest, "fieldIds must contain at most 10 field ids.")
	}
	maxResults := 1000
	if req.MaxResults != nil {
		maxResults = *req.MaxResults
	}
	if maxResults < 1 || maxResults > 10000 {
		return jiraErr(http.StatusBadRequest, "maxResults must be between 1 and 10000.")
	}
	var fieldIDs map[string]bool
	if len(req.FieldIDs) > 0 {
		fieldIDs = map[string]bool{}
		for _, f := range req.FieldIDs {
			fieldIDs[f] = true
		}
	}
	var issues []*issue
	seen := map[int64]bool{}
	for _, k := range req.IssueIdsOrKeys {
		if is := c.findIssue(k); is != nil && !seen[is.id] {
			seen[is.id] = true
			issues = append(issues, is)
		}
	}
	sort.Slice(issues, func(a, b int) bool { return issues[a].id < issues[b].id })
	digest := cursorDigest("changelog", strings.Join(req.IssueIdsOrKeys, ","), strings.Join(req.FieldIDs, ","))
	offset := int64(0)
	if req.NextPageToken != "" {
		var ok bool
		if offset, ok = c.s.openCursor(req.NextPageToken, c, digest); !ok {
			return jiraErr(http.StatusBadRequest, invalidCursor)
		}
	}
	// Flatten (issue, history) pairs so a page can end in the middle of an issue.
	out := []any{}
	var pos, taken int64
	for _, is := range issues {
		var hs []any
		for _, h := range is.histories {
			if fieldIDs != nil && !historyTouches(h, fieldIDs) {
				continue
			}
			if pos >= offset && taken < int64(maxResults) {
				hs = append(hs, c.renderHistory(h, fieldIDs))
				taken++
			}
			pos++
		}
		if len(hs) > 0 {
			out = append(out, map[string]any{"issueId": strconv.FormatInt(is.id, 10), "changeHistories": hs})
		}
	}
	resp := map[string]any{"issueChangeLogs": out}
	if offset+taken < pos {
		resp["nextPageToken"] = c.s.sealCursor(c, digest, offset+taken)
	}
	c.points += taken
	return jsonResponse(http.StatusOK, resp)
}

func historyTouches(h *history, fieldIDs map[string]bool) bool {
	for _, it := range h.items {
		if fieldIDs[it.FieldID] {
			return true
		}
	}
	return false
}

// worklogs is GET /rest/api/3/issue/{issueIdOrKey}/worklog: oldest first, startAt/maxResults paging (default and
// most 5000, per the spec), startedAfter/startedBefore in epoch milliseconds.
func (c *call) worklogs() response {
	is := c.findIssue(c.r.PathValue("issueIdOrKey"))
	if is == nil {
		return jiraErr(http.StatusNotFound, issueNotFound)
	}
	q := c.r.URL.Query()
	startAt, err1 := queryInt(q, "startAt", 0)
	maxResults, err2 := queryInt(q, "maxResults", 5000)
	after, err3 := queryInt(q, "startedAfter", -1<<62)
	before, err4 := queryInt(q, "startedBefore", 1<<62)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || startAt < 0 || maxResults < 0 {
		return jiraErr(http.StatusBadRequest, "startAt, maxResults, startedAfter and startedBefore must be integers.")
	}
	maxResults = min(maxResults, 5000)
	var list []*worklog
	for _, w := range is.worklogs {
		if ms := w.started.UnixMilli(); ms > after && ms < before {
			list = append(list, w)
		}
	}
	page := []any{}
	for i := startAt; i < int64(len(list)) && int64(len(page)) < maxResults; i++ {
		page = append(page, c.renderWorklog(is, list[i]))
	}
	c.points += int64(len(page))
	return jsonResponse(http.StatusOK, map[string]any{"startAt": startAt, "maxResults": maxResults, "total": len(list), "worklogs": page})
}

// user is GET /rest/api/3/user?accountId=: the `self` links of user objects point here. Profile visibility hides
// email and time zone as in issues; an unknown account is 404.
func (c *call) userGet() response {
	id := c.r.URL.Query().Get("accountId")
	if id == "" {
		return jiraErr(http.StatusBadRequest, "The accountId query parameter needs to be provided.")
	}
	u := c.s.data.userByID[id]
	if u == nil || !c.site.members[id] {
		return jiraErr(http.StatusNotFound, "Specified user does not exist or you do not have required permissions")
	}
	m := c.userDetails(id).(map[string]any)
	m["locale"] = u.Locale
	m["groups"] = map[string]any{"size": 1, "items": []any{}}
	m["applicationRoles"] = map[string]any{"size": 1, "items": []any{}}
	m["expand"] = "groups,applicationRoles"
	c.points += 2 // a user object costs two points
	return jsonResponse(http.StatusOK, m)
}

// myself is GET /rest/api/3/myself.
func (c *call) myself() response {
	u := c.user
	m := map[string]any{
		"self": c.api("/user?accountId=" + url.QueryEscape(u.AccountID)), "accountId": u.AccountID, "accountType": u.AccountType,
		"active": u.Active, "displayName": u.DisplayName, "avatarUrls": avatarURLs(u.AccountID), "locale": u.Locale,
		"groups":           map[string]any{"size": 1, "items": []any{}},
		"applicationRoles": map[string]any{"size": 1, "items": []any{}},
		"expand":           "groups,applicationRoles",
	}
	if u.Email != "" {
		m["emailAddress"] = u.Email
	}
	// Users always see their own time zone; JQL dates are read in it (UTC when unset).
	m["timeZone"] = c.loc.String()
	c.points += 2 // a user object costs two points
	return jsonResponse(http.StatusOK, m)
}
