package markdown_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"jiraexport/shared/markdown"
)

var update = flag.Bool("update", false, "rewrite the golden .md files from the converter's output")

// adfSchemaPath is Atlassian's ADF JSON schema, installed pinned by `make deps` (infra/adf-schema/package.json).
const adfSchemaPath = "../../infra/adf-schema/node_modules/@atlaskit/adf-schema/json-schema/v1/full.json"

// adfSchema returns full.json, or skips the test when it is not installed (fails under CI, where it must be).
func adfSchema(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(adfSchemaPath)
	if err != nil {
		msg := "Atlassian's ADF schema is not installed (" + adfSchemaPath + "): run `make deps` (npm ci in infra/adf-schema)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + ": " + err.Error())
		}
		t.Skip(msg)
	}
	return b
}

type corpusDoc struct {
	name string
	raw  []byte
	adf  any
}

func corpus(t *testing.T) []corpusDoc {
	t.Helper()
	paths, err := filepath.Glob("testdata/adf/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no corpus in testdata/adf: %v", err)
	}
	var docs []corpusDoc
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		docs = append(docs, corpusDoc{name: strings.TrimSuffix(filepath.Base(p), ".json"), raw: raw, adf: v})
	}
	return docs
}

// schemaTypes derives from full.json every node type and mark type the specification defines: the definitions
// named *_node and *_mark that fix their "type" with an enum.
func schemaTypes(t *testing.T, schema []byte) (nodes, marks []string) {
	t.Helper()
	var s struct {
		Definitions map[string]struct {
			Properties struct {
				Type struct {
					Enum []string `json:"enum"`
				} `json:"type"`
			} `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(schema, &s); err != nil {
		t.Fatalf("full.json: %v", err)
	}
	seenN, seenM := map[string]bool{}, map[string]bool{}
	for name, d := range s.Definitions {
		for _, typ := range d.Properties.Type.Enum {
			switch {
			case strings.HasSuffix(name, "_node") && !seenN[typ]:
				seenN[typ] = true
				nodes = append(nodes, typ)
			case strings.HasSuffix(name, "_mark") && !seenM[typ]:
				seenM[typ] = true
				marks = append(marks, typ)
			}
		}
	}
	sort.Strings(nodes)
	sort.Strings(marks)
	if len(nodes) < 30 || len(marks) < 10 {
		t.Fatalf("full.json yields %d node and %d mark types: the schema's layout changed, fix schemaTypes", len(nodes), len(marks))
	}
	return nodes, marks
}

func walkADF(v any, visit func(node map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["type"].(string); ok {
			visit(x)
		}
		if c, ok := x["content"].([]any); ok {
			for _, e := range c {
				walkADF(e, visit)
			}
		}
	case []any:
		for _, e := range x {
			walkADF(e, visit)
		}
	}
}

func TestCorpusCoversEveryNodeAndMark(t *testing.T) {
	nodes, marks := schemaTypes(t, adfSchema(t))
	usedN, usedM := map[string]bool{}, map[string]bool{}
	for _, d := range corpus(t) {
		walkADF(d.adf, func(n map[string]any) {
			usedN[n["type"].(string)] = true
			ms, _ := n["marks"].([]any)
			for _, m := range ms {
				if mm, ok := m.(map[string]any); ok {
					if typ, ok := mm["type"].(string); ok {
						usedM[typ] = true
					}
				}
			}
		})
	}
	for _, n := range nodes {
		if !usedN[n] {
			t.Errorf("node type %q of full.json is in no corpus document (testdata/adf)", n)
		}
	}
	for _, m := range marks {
		if !usedM[m] {
			t.Errorf("mark type %q of full.json is in no corpus document (testdata/adf)", m)
		}
	}
	t.Logf("full.json: %d node types, %d mark types, all covered", len(nodes), len(marks))
}

func TestCorpusValidatesAgainstADFSchema(t *testing.T) {
	schema := adfSchema(t)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	const url = "https://unpkg.com/@atlaskit/adf-schema/json-schema/v1/full.json"
	if err := c.AddResource(url, inst); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		t.Fatal(err)
	}
	// The validator has teeth: documents a real editor could not produce are refused.
	for _, bad := range []string{
		`{"type":"doc","version":1,"content":[{"type":"heading","content":[]}]}`,
		`{"type":"doc","version":1,"content":[{"type":"mention","attrs":{"id":"x"}}]}`,
		`{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"x","marks":[{"type":"blink"}]}]}]}`,
	} {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		if sch.Validate(v) == nil {
			t.Errorf("full.json accepts %s", bad)
		}
	}
	for _, d := range corpus(t) {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(d.raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("%s.json does not validate against full.json: %v", d.name, err)
		}
	}
}

// testOptions are the resolvers the goldens are written with: they stand in for the export's attachment index and
// its people policy.
func testOptions() markdown.Options {
	return markdown.Options{
		Media: func(m markdown.Media) markdown.MediaLink {
			switch m.Alt {
			case "diagram.png":
				return markdown.MediaLink{Href: "attachments/10001", Name: "diagram.png", Image: true}
			case "notes.txt", "report.pdf":
				return markdown.MediaLink{Href: "attachments/10002", Name: m.Alt}
			case "huge.zip":
				return markdown.MediaLink{Skipped: "larger than the connector's 100 MB limit"}
			case "setup.exe":
				return markdown.MediaLink{Skipped: "media type not allowed"}
			case "gone.png":
				return markdown.MediaLink{Skipped: "removed from the issue"}
			}
			return markdown.MediaLink{}
		},
		Mention: func(m markdown.Mention) string {
			switch m.ID {
			case "5b10a2844c20165700ede21g":
				return "Alice Example"
			case "all":
				return "all"
			}
			return "user-3f9a1c" // a pseudonym
		},
	}
}

func TestGolden(t *testing.T) {
	for _, d := range corpus(t) {
		t.Run(d.name, func(t *testing.T) {
			got, err := markdown.FromADF(d.raw, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "adf", d.name+".md")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("FromADF(%s.json) differs from %s (rerun with -update after checking):\n--- got\n%s\n--- want\n%s", d.name, path, got, want)
			}
			for _, id := range accountIDs(d.adf) {
				if strings.Contains(got, id) {
					t.Errorf("output of %s.json contains the mention id %q", d.name, id)
				}
			}
			if !slices.Equal(letters(got), nil) && !containsInOrder(letters(got), letters(textOf(d.adf))) {
				t.Errorf("output of %s.json lost text characters", d.name)
			}
		})
	}
}

func accountIDs(v any) []string {
	var ids []string
	walkADF(v, func(n map[string]any) {
		if n["type"] == "mention" {
			if a, ok := n["attrs"].(map[string]any); ok {
				if id, _ := a["id"].(string); len(id) > 3 {
					ids = append(ids, id)
				}
			}
		}
	})
	return ids
}

func mustGlob(tb testing.TB, pattern string) []string {
	tb.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
