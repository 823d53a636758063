package markdown_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/text"

	"jiraexport/shared/markdown"
)

func frontMatterValidator(t *testing.T) *jsonschema.Schema {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(markdown.FrontMatterSchema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	const url = "https://jiraexport.dev/schemas/issue-markdown.v1.json"
	if err := c.AddResource(url, inst); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// splitDoc returns the front matter (YAML) and the Markdown body of an issue document.
func splitDoc(t *testing.T, doc []byte) (fm, body []byte) {
	t.Helper()
	s := string(doc)
	if !strings.HasPrefix(s, "---\n") {
		t.Fatalf("document does not open with front matter:\n%s", s)
	}
	end := strings.Index(s[4:], "\n---\n")
	if end < 0 {
		t.Fatalf("front matter not closed:\n%s", s)
	}
	return []byte(s[4 : 4+end+1]), []byte(s[4+end+5:])
}

func validateFrontMatter(t *testing.T, sch *jsonschema.Schema, fm []byte) (map[string]any, error) {
	t.Helper()
	// Decoded to Go values and re-encoded: goccy's YAMLToJSON writes control characters as escapes JSON lacks.
	var v any
	if err := yaml.Unmarshal(fm, &v); err != nil {
		t.Fatalf("front matter is not YAML: %v\n%s", err, fm)
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	return m, sch.Validate(inst)
}

func adfPara(s string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"type": "doc", "version": 1, "content": []any{
		map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": s}}},
	}})
	return b
}

func sampleIssue() markdown.Issue {
	at := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	desc := json.RawMessage(`{"type":"doc","version":1,"content":[
		{"type":"heading","attrs":{"level":1},"content":[{"type":"text","text":"Context"}]},
		{"type":"paragraph","content":[{"type":"text","text":"Exports fail for "},{"type":"mention","attrs":{"id":"5b10a2844c20165700ede21g","text":"@Alice Example"}},{"type":"text","text":" since "},{"type":"date","attrs":{"timestamp":"1735689600000"}},{"type":"text","text":"."}]},
		{"type":"orderedList","attrs":{"order":2},"content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"Open the "},{"type":"text","text":"settings","marks":[{"type":"strong"}]}]}]}]},
		{"type":"mediaSingle","attrs":{"layout":"center"},"content":[{"type":"media","attrs":{"type":"file","id":"c0ffee00-0000-4000-8000-000000000001","collection":"jira-10001","alt":"diagram.png"}}]},
		{"type":"mediaGroup","content":[{"type":"media","attrs":{"type":"file","id":"c0ffee00-0000-4000-8000-000000000003","collection":"jira-10001"}}]},
		{"type":"table","content":[{"type":"tableRow","content":[{"type":"tableHeader","content":[{"type":"paragraph","content":[{"type":"text","text":"Step"}]}]},{"type":"tableHeader","content":[{"type":"paragraph","content":[{"type":"text","text":"Result"}]}]}]},{"type":"tableRow","content":[{"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"run export"}]}]},{"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"status","attrs":{"text":"FAILED","color":"red"}}]}]}]}]},
		{"type":"taskList","attrs":{"localId":"tl"},"content":[{"type":"taskItem","attrs":{"localId":"a","state":"DONE"},"content":[{"type":"text","text":"collect logs"}]},{"type":"taskItem","attrs":{"localId":"b","state":"TODO"},"content":[{"type":"text","text":"fix the retry"}]}]}
	]}`)
	return markdown.Issue{
		Key: "PROJ-123", ID: "10123", Summary: "Export fails when a label is \"no\"",
		Type: "Bug", Status: "In Progress", Priority: "High", Labels: []string{"export", "no", "1.10"},
		Components: []string{"Connector"}, Parent: &markdown.IssueRef{ID: "10100", Key: "PROJ-100"},
		Created: at("2025-01-02T09:30:00Z"), Updated: at("2025-01-03T17:45:12.345+01:00"),
		SiteURL: "https://example.atlassian.net", IssueURL: "https://example.atlassian.net/browse/PROJ-123",
		Description: desc,
		Comments: []markdown.Comment{
			{ID: "20001", Author: "Alice Example", Created: at("2025-01-02T10:00:00Z"), Updated: at("2025-01-02T10:00:00Z"),
				Body: json.RawMessage(`{"type":"doc","version":1,"content":[{"type":"heading","attrs":{"level":2},"content":[{"type":"text","text":"Repro"}]},{"type":"codeBlock","attrs":{"language":"shell"},"content":[{"type":"text","text":"make demo"}]}]}`)},
			{ID: "20002", Author: "Bob Martin", Created: at("2025-01-03T08:00:00Z"), Updated: at("2025-01-03T09:00:00Z"),
				Body: adfPara("Fixed by *restarting*.")},
		},
		History: []markdown.Change{
			{ID: "30001", Author: "Alice Example", Created: at("2025-01-02T11:00:00Z"), Items: []markdown.ChangeItem{
				{Field: "status", From: "To Do", To: "In Progress"},
				{Field: "assignee", From: "", To: "Bob Martin"},
				{Field: "description", From: "line one\nline two", To: "# new"},
			}},
		},
	}
}

// exportOptions wire the converter as the export does: attachments from the issue's attachment index, links
// relative to issues/<issueId>.md.
func exportOptions() markdown.Options {
	return markdown.Options{
		Media: markdown.AttachmentResolver([]markdown.Attachment{
			{ID: "10001", MediaID: "c0ffee00-0000-4000-8000-000000000001", Filename: "diagram.png", MimeType: "image/png", Href: "../attachments/10001"},
			{ID: "10002", MediaID: "c0ffee00-0000-4000-8000-000000000003", Filename: "trace.zip", MimeType: "application/zip", Skipped: "larger than the connector's 100 MB limit"},
		}),
		Mention: testOptions().Mention,
	}
}

func TestRenderIssueGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts markdown.IssueOptions
	}{
		{"issue", markdown.IssueOptions{ADF: exportOptions()}},
		{"issue-with-history", markdown.IssueOptions{ADF: exportOptions(), History: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := markdown.RenderIssue(sampleIssue(), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "issue", tt.name+".md")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("RenderIssue differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
			}
			if bytes.Contains(got, []byte("5b10a2844c20165700ede21g")) {
				t.Error("document contains an account id")
			}

			fm, body := splitDoc(t, got)
			if _, err := validateFrontMatter(t, frontMatterValidator(t), fm); err != nil {
				t.Errorf("front matter does not validate: %v\n%s", err, fm)
			}
			// The body's outline: title, sections, one heading per comment (and change), rich text below them.
			src := body
			doc := gfm.Parser().Parse(text.NewReader(src))
			var outline []string
			_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
				if h, ok := n.(*ast.Heading); ok && entering {
					outline = append(outline, strings.Repeat("#", h.Level)+" "+string(h.Lines().Value(src)))
				}
				return ast.WalkContinue, nil
			})
			want2 := []string{
				`# PROJ-123: Export fails when a label is "no"`,
				"## Description", "### Context",
				"## Comments", "### Alice Example, 2025-01-02T10:00:00.000Z", "##### Repro", // the comment's h2, below its byline
				"### Bob Martin, 2025-01-03T08:00:00.000Z",
			}
			if tt.opts.History {
				want2 = append(want2, "## History", "### Alice Example, 2025-01-02T11:00:00.000Z")
			}
			if !reflect.DeepEqual(outline, want2) {
				t.Errorf("outline = %q, want %q", outline, want2)
			}
		})
	}
}

// TestFrontMatterRoundTrip: whatever the strings, a YAML reader gets back exactly the issue's values, and the front
// matter validates against the published schema.
func TestFrontMatterRoundTrip(t *testing.T) {
	sch := frontMatterValidator(t)
	tricky := []string{"yes", "no", "on", "off", "true", "null", "~", "123", "1.10", "0x1F", "1e3", "2025-01-02",
		"- item", ": colon", "#comment", "a: b", "'single'", `"double"`, `back\slash`, "multi\nline\n", "  padded  ",
		"tab\there", "bell\a", "nul\x00", "del\x7f", "emoji 🚀", "東京", "\u2028sep", "\ufeffbom", "{flow}", "[seq]",
		"&anchor", "*alias", "!tag", "%directive", "@at", "`tick`", "|", ">", "---", "...", ""}
	for i, s := range tricky {
		is := markdown.Issue{
			Key: "K-" + s, ID: "1" + strings.Repeat("0", i), Summary: s, Type: s, Status: s, Priority: s, Resolution: s,
			Labels: []string{s, "plain"}, Components: []string{s}, Parent: &markdown.IssueRef{ID: "7", Key: s},
			SiteURL: "https://example.atlassian.net", IssueURL: "https://example.atlassian.net/browse/K-1",
		}
		doc, err := markdown.RenderIssue(is, markdown.IssueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fm, _ := splitDoc(t, doc)
		m, err := validateFrontMatter(t, sch, fm)
		if err != nil {
			t.Errorf("front matter for %q does not validate: %v\n%s", s, err, fm)
			continue
		}
		nullable := func(v string) any {
			if strings.TrimSpace(v) == "" {
				return nil
			}
			return v
		}
		want := map[string]any{
			"schema": markdown.IssueSchema, "key": "K-" + s, "id": is.ID, "summary": s,
			"type": nullable(s), "status": nullable(s), "priority": nullable(s), "resolution": nullable(s),
			"labels": []any{s, "plain"}, "components": []any{s}, "parent": map[string]any{"id": "7", "key": s},
			"created": nil, "updated": nil,
			"site_url": is.SiteURL, "issue_url": is.IssueURL,
		}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("front matter for %q reads back as\n%#v\nwant\n%#v\n%s", s, m, want, fm)
		}
	}
}

func TestFrontMatterMinimalIssue(t *testing.T) {
	doc, err := markdown.RenderIssue(markdown.Issue{Key: "A-1", ID: "10001", Summary: "s"}, markdown.IssueOptions{History: true})
	if err != nil {
		t.Fatal(err)
	}
	fm, body := splitDoc(t, doc)
	m, err := validateFrontMatter(t, frontMatterValidator(t), fm)
	if err != nil {
		t.Fatalf("minimal front matter does not validate: %v\n%s", err, fm)
	}
	for _, k := range []string{"type", "status", "priority", "parent", "created", "updated", "resolution", "site_url", "issue_url"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", k, v, ok)
		}
	}
	if got, want := string(body), "\n# A-1: s\n"; got != want {
		t.Errorf("body = %q, want %q (empty sections left out)", got, want)
	}
}

// TestFrontMatterSchemaRejects proves the schema test has teeth.
func TestFrontMatterSchemaRejects(t *testing.T) {
	sch := frontMatterValidator(t)
	good, err := markdown.RenderIssue(sampleIssue(), markdown.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fm, _ := splitDoc(t, good)
	for _, tt := range []struct{ name, from, to string }{
		{"other version", `schema: "jiraexport.issue.md/v1"`, `schema: "jiraexport.issue.md/v2"`},
		{"missing key", "key: \"PROJ-123\"\n", ""},
		{"extra field", "id: \"10123\"\n", "id: \"10123\"\naccountId: \"5b10a2844c20165700ede21g\"\n"},
		{"non-numeric id", `id: "10123"`, `id: "PROJ-123"`},
		{"time without milliseconds", `created: "2025-01-02T09:30:00.000Z"`, `created: "2025-01-02T09:30:00Z"`},
	} {
		bad := strings.Replace(string(fm), tt.from, tt.to, 1)
		if bad == string(fm) {
			t.Fatalf("%s: replacement did not apply", tt.name)
		}
		if _, err := validateFrontMatter(t, sch, []byte(bad)); err == nil {
			t.Errorf("%s: schema accepts\n%s", tt.name, bad)
		}
	}
}

func TestRenderIssueErrors(t *testing.T) {
	is := markdown.Issue{Key: "A-1", ID: "1", Description: json.RawMessage(`{"type":`)}
	if _, err := markdown.RenderIssue(is, markdown.IssueOptions{}); err == nil {
		t.Error("RenderIssue(malformed description) = nil error")
	}
	is = markdown.Issue{Key: "A-1", ID: "1", Description: json.RawMessage(`null`), Comments: []markdown.Comment{{ID: "2", Body: json.RawMessage(`[`)}}}
	if _, err := markdown.RenderIssue(is, markdown.IssueOptions{}); err == nil {
		t.Error("RenderIssue(malformed comment) = nil error")
	}
}

// TestReadmeExample keeps the README's example document identical to what the renderer writes.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "issue", "issue-with-history.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, append(append([]byte("````markdown\n"), golden...), "````"...)) {
		t.Error("README.md's Markdown format example differs from testdata/issue/issue-with-history.md: copy it over")
	}
}
