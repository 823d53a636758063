package markdown

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// IssueSchema names the version of the issue Markdown format. It is the front matter's first field; a change a
// reader could trip on (a field renamed, removed or retyped, a section renamed) makes a new version.
const IssueSchema = "jiraexport.issue.md/v1"

// frontMatterSchema is the JSON Schema (2020-12) of the front matter of IssueSchema documents.
//
//go:embed schema/issue-markdown.v1.json
var frontMatterSchema []byte

// FrontMatterSchema returns the JSON Schema of the front matter, for readers that validate documents.
func FrontMatterSchema() []byte { return append([]byte(nil), frontMatterSchema...) }

// Issue is what one issue's Markdown document is made from. People are already names here (display name or
// pseudonym, as the connector chooses): the renderer never sees an account id except inside ADF mentions, which
// Options.Mention resolves.
type Issue struct {
	Key        string
	ID         string
	Summary    string
	Type       string // issue type name; "" when unknown (null in the front matter)
	Status     string
	Priority   string
	Resolution string // "" while unresolved
	Labels     []string
	Components []string // component names
	Parent     *IssueRef
	Created    time.Time // zero when unknown
	Updated    time.Time
	SiteURL    string // e.g. https://example.atlassian.net
	IssueURL   string // e.g. https://example.atlassian.net/browse/PROJ-1

	Description json.RawMessage // ADF document; nil or JSON null when the issue has none
	Comments    []Comment       // oldest first, complete
	History     []Change        // oldest first; written only when IssueOptions.History is set
}

// IssueRef refers to another issue.
type IssueRef struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// Comment is one issue comment.
type Comment struct {
	ID      string
	Author  string // display name or pseudonym
	Created time.Time
	Updated time.Time
	Body    json.RawMessage // ADF document
}

// Change is one changelog entry (a set of field changes made together).
type Change struct {
	ID      string
	Author  string
	Created time.Time
	Items   []ChangeItem
}

// ChangeItem is one field's change; From and To are Jira's fromString/toString (names, not ids).
type ChangeItem struct {
	Field string
	From  string
	To    string
}

// IssueOptions configure RenderIssue.
type IssueOptions struct {
	// ADF resolves media and mentions in the description and comments. Its HeadingOffset is ignored: headings in
	// rich text are moved below the document's own section headings.
	ADF Options
	// History adds a History section with the changelog.
	History bool
}

// Heading levels the document's own sections use; rich text headings are shifted below them.
const (
	descriptionOffset = 2 // "# KEY: summary" > "## Description" > description's h1 as ###
	commentOffset     = 3 // "## Comments" > "### author, date" > comment's h1 as ####
)

// RenderIssue writes one issue as a Markdown document: YAML front matter (IssueSchema), a title, then the
// Description, Comments and (when asked) History sections; a section with nothing in it is left out.
// It fails only when the description or a comment body is not JSON.
func RenderIssue(is Issue, opts IssueOptions) ([]byte, error) {
	var b strings.Builder
	writeFrontMatter(&b, is)

	b.WriteString("\n# ")
	title := is.Key
	if s := strings.TrimSpace(is.Summary); s != "" {
		if title != "" {
			title += ": "
		}
		title += s
	}
	b.WriteString(strings.TrimSpace(escapeText(title, modeHeading)))
	b.WriteString("\n")

	desc, err := adfSection(is.Description, opts.ADF, descriptionOffset)
	if err != nil {
		return nil, fmt.Errorf("markdown: issue %s description: %w", is.ID, err)
	}
	if desc != "" {
		b.WriteString("\n## Description\n\n")
		b.WriteString(desc)
	}

	if len(is.Comments) > 0 {
		b.WriteString("\n## Comments\n")
		for _, c := range is.Comments {
			body, err := adfSection(c.Body, opts.ADF, commentOffset)
			if err != nil {
				return nil, fmt.Errorf("markdown: issue %s comment %s: %w", is.ID, c.ID, err)
			}
			b.WriteString("\n### ")
			b.WriteString(byline(c.Author, c.Created))
			b.WriteString("\n\n")
			if !c.Updated.IsZero() && c.Updated.Sub(c.Created) >= time.Second {
				b.WriteString("*Edited " + timestamp(c.Updated) + "*\n\n")
			}
			if body == "" {
				body = "*(empty comment)*\n"
			}
			b.WriteString(body)
		}
	}

	if opts.History && len(is.History) > 0 {
		b.WriteString("\n## History\n")
		for _, ch := range is.History {
			b.WriteString("\n### ")
			b.WriteString(byline(ch.Author, ch.Created))
			b.WriteString("\n\n")
			for _, it := range ch.Items {
				line := "**" + nonEmpty(escapeText(strings.TrimSpace(it.Field), modeParagraph), "field") + ":** " +
					changeValue(it.From) + " → " + changeValue(it.To)
				for _, l := range item("-", paragraphLines(line)) {
					b.WriteString(l)
					b.WriteByte('\n')
				}
			}
			if len(ch.Items) == 0 {
				b.WriteString("*(no field changes)*\n")
			}
		}
	}
	return []byte(strings.ToValidUTF8(b.String(), "\uFFFD")), nil
}

func adfSection(raw json.RawMessage, opts Options, offset int) (string, error) {
	if len(strings.TrimSpace(string(raw))) == 0 || strings.TrimSpace(string(raw)) == "null" {
		return "", nil
	}
	opts.HeadingOffset = offset
	return FromADF(raw, opts)
}

func byline(author string, at time.Time) string {
	a := strings.TrimSpace(author)
	if a == "" {
		a = "Unknown user"
	}
	s := escapeText(a, modeHeading)
	if !at.IsZero() {
		s += ", " + timestamp(at)
	}
	return s
}

func changeValue(v string) string {
	if strings.TrimSpace(v) == "" {
		return "*(none)*"
	}
	return escapeText(v, modeParagraph)
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// timestamp writes instants as RFC 3339 in UTC with milliseconds, Jira's own precision.
func timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// writeFrontMatter writes the YAML front matter by hand, every string double-quoted: a YAML 1.1 reader (still the
// most common in pipelines) would otherwise turn a label "no" into false, a summary "1.10" into a number or an
// unquoted timestamp into a date object.
func writeFrontMatter(b *strings.Builder, is Issue) {
	b.WriteString("---\n")
	field := func(k, v string) { b.WriteString(k + ": " + yamlString(v) + "\n") }
	nullable := func(k, v string) {
		if strings.TrimSpace(v) == "" {
			b.WriteString(k + ": null\n")
			return
		}
		field(k, v)
	}
	list := func(k string, vs []string) {
		if len(vs) == 0 {
			b.WriteString(k + ": []\n")
			return
		}
		b.WriteString(k + ":\n")
		for _, v := range vs {
			b.WriteString("  - " + yamlString(v) + "\n")
		}
	}
	when := func(k string, t time.Time) {
		if t.IsZero() {
			b.WriteString(k + ": null\n")
			return
		}
		field(k, timestamp(t))
	}
	field("schema", IssueSchema)
	field("key", is.Key)
	field("id", is.ID)
	field("summary", is.Summary)
	nullable("type", is.Type)
	nullable("status", is.Status)
	nullable("priority", is.Priority)
	list("labels", is.Labels)
	list("components", is.Components)
	if is.Parent == nil {
		b.WriteString("parent: null\n")
	} else {
		b.WriteString("parent:\n  id: " + yamlString(is.Parent.ID) + "\n  key: " + yamlString(is.Parent.Key) + "\n")
	}
	when("created", is.Created)
	when("updated", is.Updated)
	nullable("resolution", is.Resolution)
	nullable("site_url", is.SiteURL)
	nullable("issue_url", is.IssueURL)
	b.WriteString("---\n")
}

// yamlString writes s as a YAML double-quoted scalar. Only the escapes YAML shares with JSON are used (\" \\ \n
// \t \r \uXXXX), and every character outside YAML's printable set is escaped, so YAML 1.1 and 1.2 readers (and a
// JSON reader) all read back s.
func yamlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f, r == 0x2028, r == 0x2029, r == 0xfeff, r == 0xfffe, r == 0xffff:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
