package atlassiansim

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// adfSchemaPath is Atlassian's ADF JSON schema as installed, pinned, by `make deps` (infra/adf-schema/package.json).
func adfSchemaPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("module root (go.mod) not found")
		}
		dir = parent
	}
	p := filepath.Join(dir, "infra", "adf-schema", "node_modules", "@atlaskit", "adf-schema", "json-schema", "v1", "full.json")
	if _, err := os.Stat(p); err != nil {
		return "", errors.Join(os.ErrNotExist, err)
	}
	return p, nil
}

var loadADFSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	p, err := adfSchemaPath()
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	return c.Compile(p)
})

func adfSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	s, err := loadADFSchema()
	if errors.Is(err, os.ErrNotExist) && os.Getenv("CI") != "true" {
		t.Skipf("ADF JSON schema not installed (%v); run `make deps`", err)
	}
	if err != nil {
		t.Fatalf("compiling the ADF schema: %v", err)
	}
	return s
}

// adfNotInJira are the full.json node and mark types that Jira's issue editor never writes (Confluence's or the
// platform's). The corpus test fails when the schema gains a type that is in neither list, so a new editor feature
// is noticed.
var adfNotInJira = []string{"extension", "bodiedExtension", "inlineExtension", "multiBodiedExtension", "extensionFrame",
	"syncBlock", "bodiedSyncBlock", "blockTaskItem", "placeholder", "layoutSection", "layoutColumn",
	"annotation", "breakout", "dataConsumer", "fragment", "fontSize"}

// schemaTypes lists the node and mark types full.json defines (the enum of each definition's "type" property).
func schemaTypes(t *testing.T) []string {
	t.Helper()
	p, err := adfSchemaPath()
	if err != nil {
		t.Skip(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Definitions map[string]struct {
			Properties struct {
				Type struct {
					Enum []string `json:"enum"`
				} `json:"type"`
			} `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range doc.Definitions {
		for _, e := range d.Properties.Type.Enum {
			seen[e] = true
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// walkADF records node and mark types of a document.
func walkADF(v any, nodes, marks map[string]int) {
	switch x := v.(type) {
	case map[string]any:
		if tp, ok := x["type"].(string); ok {
			nodes[tp]++
		}
		if ms, ok := x["marks"].([]any); ok {
			for _, m := range ms {
				if mm, ok := m.(map[string]any); ok {
					marks[mm["type"].(string)]++
				}
			}
		}
		if c, ok := x["content"].([]any); ok {
			for _, ch := range c {
				walkADF(ch, nodes, marks)
			}
		}
	}
}

// siteDocs returns every ADF document a generated site holds: descriptions, environments, comments, worklog
// comments and the rich-text custom field.
func siteDocs(st *site) []map[string]any {
	var docs []map[string]any
	add := func(d map[string]any) {
		if d != nil {
			docs = append(docs, d)
		}
	}
	for n := range st.skels {
		is := st.issue(int32(n))
		add(is.description)
		add(is.environment)
		add(is.custom.acceptance)
		for _, c := range is.comments {
			add(c.body)
		}
		for _, w := range is.worklogs {
			add(w.comment)
		}
	}
	return docs
}

// TestADFCorpusValidates checks every ADF document of a generated site against Atlassian's own schema
// (@atlaskit/adf-schema json-schema/v1/full.json) and that, together, they use every node and mark Jira's editor
// produces: tables, panels, expands, task and decision lists, media, mentions, cards, status, dates, emoji, code
// blocks with languages, and all text marks.
func TestADFCorpusValidates(t *testing.T) {
	t.Parallel()
	schema := adfSchema(t)
	sim, err := New(Config{Seed: 7, Clock: NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	nodes, marks := map[string]int{}, map[string]int{}
	docs, validated := 0, 0
	shapes := map[string]bool{}
	for _, st := range sim.data.sites {
		for _, d := range siteDocs(st) {
			docs++
			walkADF(d, nodes, marks)
			// Validating takes ~25 ms a document, so each distinct shape is validated once: documents that differ
			// only in free text and ids (strings the schema constrains by minLength at most) share a shape.
			if k := adfShape(d); shapes[k] {
				continue
			} else {
				shapes[k] = true
			}
			validated++
			// Validate the JSON the simulator sends, not the Go values.
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(v); err != nil {
				t.Fatalf("generated ADF does not validate: %v\n%s", err, b)
			}
		}
	}
	// The validator does reject what the schema forbids (a guard against a schema that accepts anything).
	bad := map[string]any{"type": "doc", "version": 1, "content": []any{map[string]any{"type": "panel", "attrs": map[string]any{"panelType": "bogus"}, "content": []any{}}}}
	if err := schema.Validate(mustJSONValue(t, bad)); err == nil {
		t.Errorf("a panel with an unknown panelType validates; the schema is not in force")
	}
	// A comment body written through the mutation API is ADF too.
	if err := schema.Validate(mustJSONValue(t, textDoc("plain comment"))); err != nil {
		t.Errorf("textDoc does not validate: %v", err)
	}
	for _, n := range adfEditorNodes {
		if nodes[n] == 0 {
			t.Errorf("no generated document uses node %q", n)
		}
	}
	for _, m := range adfEditorMarks {
		if marks[m] == 0 {
			t.Errorf("no generated document uses mark %q", m)
		}
	}
	for _, tp := range schemaTypes(t) {
		if !slices.Contains(adfEditorNodes, tp) && !slices.Contains(adfEditorMarks, tp) && !slices.Contains(adfNotInJira, tp) {
			t.Errorf("full.json defines %q, which is neither generated nor listed as not written by Jira's editor", tp)
		}
	}
	t.Logf("%d documents, %d shapes validated, %d node types, %d mark types", docs, validated, len(nodes), len(marks))
}

// freeText are the attribute and node keys whose string values are free text or ids in the ADF schema.
var freeText = map[string]bool{"text": true, "id": true, "localId": true, "url": true, "href": true, "timestamp": true, "title": true}

// adfShape is a document with free text and ids blanked (non-empty stays non-empty), so documents that the
// schema cannot tell apart share a key.
func adfShape(d any) string {
	var blank func(v any, key string) any
	blank = func(v any, key string) any {
		switch x := v.(type) {
		case map[string]any:
			out := map[string]any{}
			for k, vv := range x {
				out[k] = blank(vv, k)
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, vv := range x {
				out[i] = blank(vv, key)
			}
			return out
		case string:
			if freeText[key] && x != "" {
				return "s"
			}
		}
		return v
	}
	b, _ := json.Marshal(blank(d, ""))
	return string(b)
}

func mustJSONValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRenderedHTMLEscapes: rendered fields are HTML built from ADF; text never escapes into markup.
func TestRenderedHTMLEscapes(t *testing.T) {
	t.Parallel()
	doc := map[string]any{"type": "doc", "version": 1, "content": []any{
		map[string]any{"type": "paragraph", "content": []any{
			map[string]any{"type": "text", "text": "<script>x</script> & more", "marks": []any{map[string]any{"type": "strong"}}}}},
		map[string]any{"type": "codeBlock", "attrs": map[string]any{"language": "go\"><x"}, "content": []any{
			map[string]any{"type": "text", "text": "a < b"}}},
	}}
	got := adfHTML(doc)
	want := `<p><b>&lt;script&gt;x&lt;/script&gt; &amp; more</b></p><div class="code panel"><div class="codeContent panelContent"><pre class="code-go&#34;&gt;&lt;x">a &lt; b</pre></div></div>`
	if got != want {
		t.Errorf("adfHTML =\n%s\nwant\n%s", got, want)
	}
}
