package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"

	"jiraexport/shared/jira"
	"jiraexport/shared/mirror"
	"jiraexport/shared/scrub"
)

// fieldMeta is what the export keeps of /rest/api/3/field (cached in the checkpoint).
type fieldMeta struct {
	Name   string `json:"n"`
	Type   string `json:"t,omitempty"`
	Items  string `json:"i,omitempty"`
	Custom string `json:"c,omitempty"`
}

func fieldsFromJira(fs []jira.Field) map[string]fieldMeta {
	out := make(map[string]fieldMeta, len(fs))
	for _, f := range fs {
		out[f.ID] = fieldMeta{Name: f.Name, Type: f.Schema.Type, Items: f.Schema.Items, Custom: f.Schema.Custom}
	}
	return out
}

// userFields are the ids of user-valued fields, for the scrubber.
func userFields(meta map[string]fieldMeta) map[string]bool {
	out := map[string]bool{}
	for id, m := range meta {
		if m.Type == "user" || (m.Type == "array" && m.Items == "user") {
			out[id] = true
		}
	}
	return out
}

// rawIssue is a search result as the export reads it; values stay generic JSON (numbers as json.Number, so they
// are written back exactly as Jira sent them). A page's issues are first read for what planning the page needs
// (readIssue) and decoded in full one at a time, right before their documents are built (decode): a page's
// decoded issues are several times its JSON, pointer-rich, and the export runs under a tight GOMEMLIMIT, where
// the collector's work grows with what is live.
type rawIssue struct {
	ID  string
	Key string
	// updated is fields.updated as Jira sent it.
	updated string
	// comment, worklog and changelog are the shapes of the embedded child lists (nil when absent).
	comment, worklog, changelog *listShape
	// raw is the issue's JSON until its document is built.
	raw json.RawMessage
	// Fields and Changelog are set by decode.
	Fields    map[string]any
	Changelog *childList // nil when not expanded
}

// listShape is an embedded child list's length against Jira's total.
type listShape struct{ n, total int }

func (l *listShape) incomplete() bool { return l == nil || l.n < l.total }

// childList is an embedded list of children with Jira's total.
type childList struct {
	Items []any
	Total int
}

func decodeJSON(b []byte, v any) error {
	d := gojson.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// parseIssue decodes an issue in full.
func parseIssue(raw json.RawMessage) (*rawIssue, error) {
	is := &rawIssue{raw: raw}
	if err := is.decode(); err != nil {
		return nil, err
	}
	return is, nil
}

// issueHead is what readIssue decodes of an issue (the elements of the child lists decode to nothing).
type issueHead struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Fields *struct {
		Updated string    `json:"updated"`
		Comment *listHead `json:"comment"`
		Worklog *listHead `json:"worklog"`
	} `json:"fields"`
	Changelog *listHead `json:"changelog"`
}

type listHead struct {
	Comments  []struct{} `json:"comments"`
	Worklogs  []struct{} `json:"worklogs"`
	Histories []struct{} `json:"histories"`
	Total     int        `json:"total"`
}

func (h *listHead) shape(items []struct{}) *listShape {
	if h == nil {
		return nil
	}
	return &listShape{n: len(items), total: h.Total}
}

// readIssue reads what planning a page needs of an issue (id, key, updated, the shapes of its embedded child
// lists) and keeps its JSON for decode. A shape the light read does not take (a value of another type than
// Jira's) is decoded in full, which reads it as before.
func readIssue(raw json.RawMessage) (*rawIssue, error) {
	var h issueHead
	if err := gojson.Unmarshal(raw, &h); err != nil || h.ID == "" || h.Fields == nil {
		return parseIssue(raw)
	}
	is := &rawIssue{ID: h.ID, Key: h.Key, updated: h.Fields.Updated, raw: raw}
	if c := h.Fields.Comment; c != nil {
		is.comment = c.shape(c.Comments)
	}
	if wl := h.Fields.Worklog; wl != nil {
		is.worklog = wl.shape(wl.Worklogs)
	}
	if cl := h.Changelog; cl != nil {
		is.changelog = cl.shape(cl.Histories)
	}
	return is, nil
}

// decode decodes the issue in full (once; nothing after release).
func (is *rawIssue) decode() error {
	if is.Fields != nil || is.raw == nil {
		return nil
	}
	var m map[string]any
	if err := decodeJSON(is.raw, &m); err != nil {
		return fmt.Errorf("decode issue: invalid JSON")
	}
	id, _ := m["id"].(string)
	fields, _ := m["fields"].(map[string]any)
	if id == "" || fields == nil {
		return fmt.Errorf("decode issue: no id or fields")
	}
	is.ID = id
	is.Key, _ = m["key"].(string)
	is.Fields = fields
	is.updated = str(fields, "updated")
	if cl, ok := m["changelog"].(map[string]any); ok {
		is.Changelog = &childList{Items: anyList(cl["histories"]), Total: intOf(cl["total"])}
	}
	shape := func(c *childList) *listShape {
		if c == nil {
			return nil
		}
		return &listShape{n: len(c.Items), total: c.Total}
	}
	is.comment, is.worklog, is.changelog = shape(is.embedded("comment", "comments")), shape(is.embedded("worklog", "worklogs")), shape(is.Changelog)
	return nil
}

// release drops the issue's JSON and decoded values once its document is built.
func (is *rawIssue) release() {
	is.raw, is.Fields, is.Changelog = nil, nil, nil
}

// embedded returns the child list a field holds (comment: comments, worklog: worklogs), nil when absent; the
// issue must be decoded.
func (is *rawIssue) embedded(field, list string) *childList {
	m, ok := is.Fields[field].(map[string]any)
	if !ok {
		return nil
	}
	return &childList{Items: anyList(m[list]), Total: intOf(m["total"])}
}

func anyList(v any) []any {
	l, _ := v.([]any)
	if l == nil {
		return []any{}
	}
	return l
}

func intOf(v any) int {
	switch x := v.(type) {
	case json.Number:
		n, _ := x.Int64()
		return int(n)
	case float64:
		return int(x)
	}
	return 0
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// jiraTime parses Jira's timestamps (2006-01-02T15:04:05.000-0700, in the caller's time zone).
func jiraTime(s string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02T15:04:05.000-0700", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// sortByID orders children oldest first by their numeric id (Jira embeds some lists newest first).
func sortByID(items []any) {
	sort.SliceStable(items, func(a, b int) bool {
		ma, _ := items[a].(map[string]any)
		mb, _ := items[b].(map[string]any)
		return idNum(str(ma, "id")) < idNum(str(mb, "id"))
	})
}

// docInput is everything one issue's document is built from.
type docInput struct {
	issue     *rawIssue
	site      mirror.Site
	meta      map[string]fieldMeta
	comments  *childList // nil: not exported
	changelog *childList
	worklogs  *childList
	scrub     scrub.Options
}

// buildDocument assembles and scrubs an issue's document and returns it encoded (deterministically: Go sorts
// map keys) with its hash. Nothing in it depends on when it was built.
func buildDocument(in docInput) (*mirror.Issue, []byte, error) {
	is := in.issue
	fields := map[string]any{}
	for k, v := range is.Fields {
		if k == "comment" || k == "worklog" {
			continue
		}
		fields[k] = v
	}
	// Scrub per field, so the scrubber knows which field a value belongs to (user pickers).
	for k, v := range fields {
		fields[k] = scrub.Value(map[string]any{k: v}, in.scrub).(map[string]any)[k]
		if _, ok := fields[k]; !ok {
			fields[k] = nil
		}
	}
	doc := &mirror.Issue{
		Schema: mirror.IssueSchema, ID: is.ID, Key: is.Key, Site: in.site, Fields: fields,
		Names: map[string]string{}, CustomFields: map[string]mirror.CustomField{},
		Subtasks: []mirror.IssueRef{}, Links: []mirror.Link{}, Attachments: []mirror.AttachmentRef{},
	}
	if t, ok := jiraTime(str(is.Fields, "updated")); ok {
		doc.Updated = t.UnixMilli()
	}
	nameCount := map[string]int{}
	for id := range fields {
		if m, ok := in.meta[id]; ok && m.Name != "" {
			doc.Names[id] = m.Name
			if strings.HasPrefix(id, "customfield_") {
				nameCount[m.Name]++
			}
		}
	}
	for id, v := range fields {
		if !strings.HasPrefix(id, "customfield_") {
			continue
		}
		m := in.meta[id]
		name := m.Name
		if name == "" || nameCount[name] > 1 {
			name = strings.TrimSpace(name + " [" + id + "]")
		}
		doc.CustomFields[name] = mirror.CustomField{ID: id, Type: m.Type, Items: m.Items, Custom: m.Custom, Value: v}
	}
	if p, ok := fields["parent"].(map[string]any); ok && str(p, "id") != "" {
		doc.Parent = &mirror.IssueRef{ID: str(p, "id"), Key: str(p, "key")}
	}
	for _, s := range anyList(fields["subtasks"]) {
		if m, ok := s.(map[string]any); ok && str(m, "id") != "" {
			doc.Subtasks = append(doc.Subtasks, mirror.IssueRef{ID: str(m, "id"), Key: str(m, "key")})
		}
	}
	for _, l := range anyList(fields["issuelinks"]) {
		m, ok := l.(map[string]any)
		if !ok {
			continue
		}
		link := mirror.Link{ID: str(m, "id")}
		if t, ok := m["type"].(map[string]any); ok {
			link.Type = str(t, "name")
		}
		for dir, k := range map[string]string{"inward": "inwardIssue", "outward": "outwardIssue"} {
			if o, ok := m[k].(map[string]any); ok {
				link.Direction, link.Issue = dir, mirror.IssueRef{ID: str(o, "id"), Key: str(o, "key")}
			}
		}
		if link.Direction != "" && link.Issue.ID != "" {
			doc.Links = append(doc.Links, link)
		}
	}
	for _, a := range anyList(fields["attachment"]) {
		if m, ok := a.(map[string]any); ok && str(m, "id") != "" {
			size, _ := m["size"].(json.Number)
			n, _ := size.Int64()
			doc.Attachments = append(doc.Attachments, mirror.AttachmentRef{ID: str(m, "id"), Filename: scrub.String(str(m, "filename")),
				MimeType: str(m, "mimeType"), Size: n})
		}
	}
	sort.Slice(doc.Attachments, func(a, b int) bool { return idNum(doc.Attachments[a].ID) < idNum(doc.Attachments[b].ID) })
	children := func(c *childList, byID bool) ([]any, *mirror.Count) {
		if c == nil {
			return nil, nil
		}
		items := scrub.Value(c.Items, in.scrub).([]any)
		if byID {
			sortByID(items)
		}
		if items == nil {
			items = []any{}
		}
		return items, &mirror.Count{Exported: len(items), Total: c.Total}
	}
	// Comments and worklogs keep Jira's order (by creation); changelogs come newest first when embedded and oldest
	// first from bulkfetch, so they are put in id order (ids grow with time).
	doc.Comments, doc.Counts.Comments = children(in.comments, false)
	doc.Changelog, doc.Counts.Changelog = children(in.changelog, true)
	doc.Worklogs, doc.Counts.Worklogs = children(in.worklogs, false)
	// goccy/go-json writes what encoding/json writes (map keys sorted, HTML characters escaped: the same bytes,
	// which FuzzBuildDocument holds it to) in about a third of the CPU time; documents are the export's largest
	// CPU cost after decoding.
	b, err := gojson.Marshal(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("encode issue document: %w", err)
	}
	return doc, b, nil
}
