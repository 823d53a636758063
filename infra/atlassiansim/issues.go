package atlassiansim

import (
	"fmt"
	"html"
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
)

// allFields are the fields the simulator knows, in output order; navigable excludes comment (as Jira's
// *navigable does).
var allFields = []string{"summary", "description", "issuetype", "project", "status", "priority", "labels", "assignee",
	"reporter", "creator", "created", "updated", "duedate", "resolution", "resolutiondate", "customfield_10016",
	"environment", "components", "fixVersions", "issuelinks", "subtasks", "watches", "statuscategorychangedate",
	"lastViewed", "attachment", "comment"}

var fieldNames = map[string]string{"summary": "Summary", "description": "Description", "issuetype": "Issue Type",
	"project": "Project", "status": "Status", "priority": "Priority", "labels": "Labels", "assignee": "Assignee",
	"reporter": "Reporter", "creator": "Creator", "created": "Created", "updated": "Updated", "duedate": "Due date",
	"resolution": "Resolution", "resolutiondate": "Resolved", "customfield_10016": "Story point estimate",
	"environment": "Environment", "components": "Components", "fixVersions": "Fix versions", "issuelinks": "Linked Issues",
	"subtasks": "Sub-tasks", "watches": "Watchers", "statuscategorychangedate": "Status Category Changed",
	"lastViewed": "Last Viewed", "attachment": "Attachment", "comment": "Comment", "id": "ID", "key": "Key"}

var fieldSchemas = map[string]map[string]any{
	"summary": {"type": "string", "system": "summary"}, "description": {"type": "string", "system": "description"},
	"issuetype": {"type": "issuetype", "system": "issuetype"}, "project": {"type": "project", "system": "project"},
	"status": {"type": "status", "system": "status"}, "priority": {"type": "priority", "system": "priority"},
	"labels": {"type": "array", "items": "string", "system": "labels"}, "assignee": {"type": "user", "system": "assignee"},
	"reporter": {"type": "user", "system": "reporter"}, "creator": {"type": "user", "system": "creator"},
	"created": {"type": "datetime", "system": "created"}, "updated": {"type": "datetime", "system": "updated"},
	"duedate": {"type": "date", "system": "duedate"}, "resolution": {"type": "resolution", "system": "resolution"},
	"resolutiondate":    {"type": "datetime", "system": "resolutiondate"},
	"customfield_10016": {"type": "number", "custom": "com.pyxis.greenhopper.jira:jsw-story-points", "customId": 10016},
	"environment":       {"type": "string", "system": "environment"}, "components": {"type": "array", "items": "component", "system": "components"},
	"fixVersions": {"type": "array", "items": "version", "system": "fixVersions"}, "issuelinks": {"type": "array", "items": "issuelinks", "system": "issuelinks"},
	"subtasks": {"type": "array", "items": "issuelinks", "system": "subtasks"}, "watches": {"type": "watches", "system": "watches"},
	"statuscategorychangedate": {"type": "datetime", "system": "statuscategorychangedate"},
	"lastViewed":               {"type": "datetime", "system": "lastViewed"}, "attachment": {"type": "array", "items": "attachment", "system": "attachment"},
	"comment": {"type": "comments-page", "system": "comment"},
}

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
	return f.all || (f.navigable && name != "comment") || f.include[name]
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

func (f fieldSel) heavy() bool { return f.all || f.include["comment"] || f.include["description"] }

type renderOpts struct {
	fields       fieldSel
	expand       map[string]bool
	commentCap   int
	changelogCap int
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
	var is *issue
	if id, err := strconv.ParseInt(idOrKey, 10, 64); err == nil {
		is = c.site.issues[id]
	} else {
		is = c.site.keys[strings.ToUpper(idOrKey)]
	}
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
	for _, f := range allFields {
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
		if o.fields.want("description") {
			if is.description != nil {
				rf["description"] = "<p>" + strings.ReplaceAll(html.EscapeString(strings.TrimSpace(adfText(is.description))), "\n", "</p><p>") + "</p>"
			} else {
				rf["description"] = nil
			}
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
	switch f {
	case "summary":
		return is.summary
	case "description":
		if is.description == nil {
			return nil
		}
		return is.description
	case "issuetype":
		id := 10001
		for i, t := range issueTypes {
			if t == is.issueType {
				id = 10001 + i
			}
		}
		return map[string]any{"self": c.api(fmt.Sprintf("/issuetype/%d", id)), "id": strconv.Itoa(id), "name": is.issueType,
			"description": "", "iconUrl": c.api(fmt.Sprintf("/issuetype/%d/avatar", id)), "subtask": false,
			"hierarchyLevel": map[bool]int{true: 1, false: 0}[is.issueType == "Epic"]}
	case "project":
		p := is.project
		return map[string]any{"self": c.api(fmt.Sprintf("/project/%d", p.id)), "id": strconv.FormatInt(p.id, 10), "key": p.key,
			"name": p.name, "projectTypeKey": "software", "simplified": false, "avatarUrls": avatarURLs("project-" + p.key)}
	case "status":
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
	case "priority":
		id := 3
		for i, p := range priorities {
			if p == is.priority {
				id = i + 1
			}
		}
		return map[string]any{"self": c.api(fmt.Sprintf("/priority/%d", id)), "id": strconv.Itoa(id), "name": is.priority,
			"iconUrl": c.s.base + "/images/icons/priorities/" + strings.ToLower(is.priority) + ".svg"}
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
	case "customfield_10016":
		if is.storyPoints == 0 {
			return nil
		}
		return is.storyPoints
	case "environment", "lastViewed":
		return nil
	case "components", "fixVersions", "issuelinks", "subtasks":
		return []any{}
	case "watches":
		return map[string]any{"self": c.api("/issue/" + is.key + "/watchers"), "watchCount": 1, "isWatching": false}
	case "statuscategorychangedate":
		return c.ts(is.updated)
	case "attachment":
		out := []any{}
		for _, a := range is.attachments {
			out = append(out, c.renderAttachment(a))
		}
		return out
	case "comment":
		var page []any
		for _, cm := range is.comments {
			if len(page) >= o.commentCap {
				break
			}
			page = append(page, c.renderComment(is, cm))
		}
		if page == nil {
			page = []any{}
		}
		return map[string]any{"self": c.api("/issue/" + idStr + "/comment"), "comments": page,
			"maxResults": o.commentCap, "total": len(is.comments), "startAt": 0}
	}
	return nil
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

func (c *call) renderComment(is *issue, cm *comment) map[string]any {
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
	return m
}

// renderHistory renders a changelog entry; fieldIDs, when set, keeps only items for those fields.
func (c *call) renderHistory(h *history, fieldIDs map[string]bool) map[string]any {
	items := []any{}
	for _, it := range h.items {
		if fieldIDs != nil && !fieldIDs[it.FieldID] {
			continue
		}
		m := map[string]any{"field": it.Field, "fieldtype": it.FieldType, "fieldId": it.FieldID,
			"fromString": it.FromString, "toString": it.ToString}
		// Jira sends null for an absent from/to; the schema says string, so absent values are omitted.
		if it.hasFrom {
			m["from"] = it.From
		}
		if it.hasTo {
			m["to"] = it.To
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
		commentCap: detailEmbedComments, changelogCap: detailEmbedChangelog}
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
		commentCap: detailEmbedComments, changelogCap: detailEmbedChangelog}
	seen := map[int64]bool{}
	var found []*issue
	errs := []any{}
	for _, k := range req.IssueIdsOrKeys {
		is := c.findIssue(k)
		if is == nil {
			errs = append(errs, map[string]any{"id": k, "errorMessage": issueNotFound})
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
	page := []any{}
	for i := startAt; i < int64(len(list)) && int64(len(page)) < maxResults; i++ {
		page = append(page, c.renderComment(is, list[i]))
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
