package export

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"jiraexport/shared/attachments"
	"jiraexport/shared/connectors"
	"jiraexport/shared/markdown"
	"jiraexport/shared/mirror"
)

// markdownType is the Content-Type of issues/<issueId>.md.
const markdownType = "text/markdown; charset=utf-8"

// mdAction is what storeAll does with an issue's Markdown object.
type mdAction int

const (
	mdKeep   mdAction = iota // the mirror holds the right object (or none, as it should)
	mdPut                    // write d.md
	mdDelete                 // the connector no longer writes Markdown: remove the object
)

// addMarkdown renders the issue's Markdown when the connector's formats include it. It is rendered from the
// scrubbed document, so it holds exactly the people the JSON holds (display names or pseudonyms, never ids).
func (w *worker) addMarkdown(b *built) error {
	if !w.connector.HasFormat("markdown") {
		return nil
	}
	md, err := renderMarkdown(b.doc, &w.connector.Spec)
	if err != nil {
		return &failure{reason: ReasonJira, msg: "Jira returned rich text the export cannot read"}
	}
	b.md = md
	return nil
}

// decideMarkdown completes decide for the Markdown object: it returns the index entry to write (e unchanged, or
// a copy of old carrying the new Markdown hash when only the Markdown changed) and what to do with the object.
func (w *worker) decideMarkdown(d built, old, e *indexEntry) (*indexEntry, mdAction) {
	want := ""
	if d.md != nil {
		want = mirror.Hash(d.md)
	}
	have := ""
	if old != nil && !old.Removed {
		have = old.MDHash
	}
	if e == nil {
		if want == have {
			return nil, mdKeep
		}
		c := *old
		e = &c
	}
	e.MDHash = want
	switch want {
	case have:
		return e, mdKeep
	case "":
		return e, mdDelete
	}
	return e, mdPut
}

// storeMarkdown applies a decideMarkdown action.
func (w *worker) storeMarkdown(ctx context.Context, d built, a mdAction) error {
	key := mirror.IssueMarkdownKey(w.ref.ConnectionID, w.ref.ConnectorID, d.doc.ID)
	switch a {
	case mdPut:
		return w.e.c.Mirror.Put(ctx, key, d.md, markdownType)
	case mdDelete:
		return w.e.c.Mirror.Delete(ctx, key)
	}
	return nil
}

// renderMarkdown builds the issue's Markdown from its (scrubbed) document.
func renderMarkdown(doc *mirror.Issue, spec *connectors.Spec) ([]byte, error) {
	f := doc.Fields
	is := markdown.Issue{
		Key: doc.Key, ID: doc.ID, Summary: str(f, "summary"),
		Type: nameOf(f["issuetype"]), Status: nameOf(f["status"]), Priority: nameOf(f["priority"]),
		Resolution: nameOf(f["resolution"]), Labels: stringsOf(f["labels"]),
		SiteURL: strings.TrimRight(doc.Site.URL, "/"),
	}
	for _, c := range anyList(f["components"]) {
		if n := nameOf(c); n != "" {
			is.Components = append(is.Components, n)
		}
	}
	if doc.Parent != nil {
		is.Parent = &markdown.IssueRef{ID: doc.Parent.ID, Key: doc.Parent.Key}
	}
	if is.SiteURL != "" && doc.Key != "" {
		is.IssueURL = is.SiteURL + "/browse/" + doc.Key
	}
	is.Created, _ = jiraTime(str(f, "created"))
	is.Updated, _ = jiraTime(str(f, "updated"))
	var err error
	if is.Description, err = rawADF(f["description"]); err != nil {
		return nil, err
	}
	for _, c := range doc.Comments {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		cm := markdown.Comment{ID: str(m, "id"), Author: authorOf(m)}
		cm.Created, _ = jiraTime(str(m, "created"))
		cm.Updated, _ = jiraTime(str(m, "updated"))
		if cm.Body, err = rawADF(m["body"]); err != nil {
			return nil, err
		}
		is.Comments = append(is.Comments, cm)
	}
	for _, h := range doc.Changelog {
		m, ok := h.(map[string]any)
		if !ok {
			continue
		}
		ch := markdown.Change{ID: str(m, "id"), Author: authorOf(m)}
		ch.Created, _ = jiraTime(str(m, "created"))
		for _, it := range anyList(m["items"]) {
			if im, ok := it.(map[string]any); ok {
				ch.Items = append(ch.Items, markdown.ChangeItem{Field: str(im, "field"), From: str(im, "fromString"), To: str(im, "toString")})
			}
		}
		is.History = append(is.History, ch)
	}
	return markdown.RenderIssue(is, markdown.IssueOptions{
		History: spec.Include.Changelog,
		ADF: markdown.Options{
			Media: markdown.AttachmentResolver(markdownAttachments(doc.Attachments, spec.Include.Attachments)),
			// The scrubber already put the display name or pseudonym into the mention's text and removed its id.
			Mention: func(m markdown.Mention) string { return strings.TrimPrefix(m.Text, "@") },
		},
	})
}

// markdownAttachments links media to the attachment objects the connector's rules export (relative to
// issues/<issueId>.md), and names the reason for the others.
func markdownAttachments(refs []mirror.AttachmentRef, rules connectors.Attachments) []markdown.Attachment {
	out := make([]markdown.Attachment, 0, len(refs))
	for _, r := range refs {
		a := markdown.Attachment{ID: r.ID, Filename: r.Filename, MimeType: r.MimeType}
		ok, why := attachments.Decide(rules, attachments.Attachment{ID: r.ID, Filename: r.Filename, Size: r.Size, MimeType: r.MimeType})
		switch {
		case ok:
			a.Href = "../attachments/" + r.ID
		case why == attachments.ReasonDisabled:
			a.Skipped = "attachments are not exported"
		case why == attachments.ReasonTooLarge:
			a.Skipped = "larger than the connector's size limit"
		case why == attachments.ReasonMediaType:
			a.Skipped = "media type not exported"
		default:
			a.Skipped = string(why)
		}
		out = append(out, a)
	}
	return out
}

func nameOf(v any) string {
	m, _ := v.(map[string]any)
	return str(m, "name")
}

func authorOf(m map[string]any) string {
	a, _ := m["author"].(map[string]any)
	return str(a, "displayName")
}

func stringsOf(v any) []string {
	var out []string
	for _, e := range anyList(v) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// rawADF re-encodes a decoded ADF value for the converter (nil when absent).
func rawADF(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode rich text: %w", err)
	}
	return b, nil
}
