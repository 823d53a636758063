package connectorsapi_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"mime"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"jiraexport/shared/connectorsapi"
)

const specURL = "https://jiraexport.dev/openapi.json"

type specIndex struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	paths    []pathTemplate
	mu       sync.Mutex
	cache    map[string]*jsonschema.Schema
}

type pathTemplate struct {
	template string
	re       *regexp.Regexp
}

var loadSpec = sync.OnceValues(func() (*specIndex, error) {
	raw, err := connectorsapi.OpenAPI()
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(specURL, inst); err != nil {
		return nil, err
	}
	ix := &specIndex{doc: doc, compiler: c, cache: map[string]*jsonschema.Schema{}}
	for p := range doc["paths"].(map[string]any) {
		re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(p), `[^/]+`) + "$")
		ix.paths = append(ix.paths, pathTemplate{p, re})
	}
	return ix, nil
})

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// resolve follows a local $ref in a non-schema object (a response).
func (ix *specIndex) resolve(v map[string]any) (map[string]any, string) {
	if ref, ok := v["$ref"].(string); ok {
		ptr := strings.TrimPrefix(ref, "#")
		cur := any(ix.doc)
		for _, part := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
			cur = cur.(map[string]any)[strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")]
		}
		return cur.(map[string]any), ptr
	}
	return v, ""
}

func (ix *specIndex) schema(ptr string) (*jsonschema.Schema, error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if s, ok := ix.cache[ptr]; ok {
		return s, nil
	}
	s, err := ix.compiler.Compile(specURL + "#" + ptr)
	if err != nil {
		return nil, err
	}
	ix.cache[ptr] = s
	return s, nil
}

// covered records which operation and status each checked response had.
var covered sync.Map

// validateResponse checks one response against the description: the status is declared (or default), the
// media type matches, the body validates against the schema.
func validateResponse(method, path string, status int, contentType string, body []byte) error {
	ix, err := loadSpec()
	if err != nil {
		return fmt.Errorf("load OpenAPI: %w", err)
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	template := ""
	for _, p := range ix.paths {
		if p.re.MatchString(path) {
			// Prefer the template with fewer parameters (literal segments win).
			if template == "" || strings.Count(p.template, "{") < strings.Count(template, "{") {
				template = p.template
			}
		}
	}
	var responses map[string]any
	base := ""
	if template != "" {
		if op, ok := ix.doc["paths"].(map[string]any)[template].(map[string]any)[strings.ToLower(method)].(map[string]any); ok {
			responses = op["responses"].(map[string]any)
			base = "/paths/" + escapePointer(template) + "/" + strings.ToLower(method) + "/responses/"
		}
	}
	code := strconv.Itoa(status)
	covered.Store(method+" "+template+" "+code, true)
	var respObj map[string]any
	ptr := ""
	switch {
	case responses == nil:
		// Unknown route or method: only a problem may answer.
		if status < 400 {
			return fmt.Errorf("undocumented %s %s answered %d", method, path, status)
		}
		respObj, ptr = ix.resolve(map[string]any{"$ref": "#/components/responses/Problem"})
	case responses[code] != nil:
		respObj, ptr = ix.resolve(responses[code].(map[string]any))
		if ptr == "" {
			ptr = base + code
		}
	case responses["default"] != nil && status >= 400:
		respObj, ptr = ix.resolve(responses["default"].(map[string]any))
		if ptr == "" {
			ptr = base + "default"
		}
	default:
		return fmt.Errorf("%s %s (%s) answered undocumented status %d", method, path, template, status)
	}
	content, _ := respObj["content"].(map[string]any)
	if len(content) == 0 {
		if len(bytes.TrimSpace(body)) != 0 {
			return fmt.Errorf("%s %s answered %d with a body, documented without one", method, path, status)
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || content[mt] == nil {
		return fmt.Errorf("%s %s answered %d as %q, documented as %v", method, path, status, contentType, keys(content))
	}
	s, err := ix.schema(ptr + "/content/" + escapePointer(mt) + "/schema")
	if err != nil {
		return fmt.Errorf("compile schema for %s %s %d: %w", method, template, status, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s answered %d with invalid JSON: %w", method, path, status, err)
	}
	if err := s.Validate(inst); err != nil {
		return fmt.Errorf("%s %s answered %d not matching the description: %w\nbody: %s", method, path, status, err, body)
	}
	return nil
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func checkResponse(t *testing.T, method, path string, r resp) {
	t.Helper()
	if err := validateResponse(method, path, r.status, r.header.Get("Content-Type"), r.body); err != nil {
		t.Error(err)
	}
}

func TestOpenAPIDescriptionIsValid(t *testing.T) {
	ix, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	if v := ix.doc["openapi"]; v != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", v)
	}
	// Every schema compiles, and every operation has an id and a problem default.
	for name := range ix.doc["components"].(map[string]any)["schemas"].(map[string]any) {
		if _, err := ix.schema("/components/schemas/" + name); err != nil {
			t.Errorf("schema %s: %v", name, err)
		}
	}
	for p, item := range ix.doc["paths"].(map[string]any) {
		for m, op := range item.(map[string]any) {
			if m == "parameters" {
				continue
			}
			o := op.(map[string]any)
			if o["operationId"] == nil {
				t.Errorf("%s %s has no operationId", m, p)
			}
			if _, ok := o["responses"].(map[string]any)["default"]; !ok && p != "/v1/openapi.json" {
				t.Errorf("%s %s has no default problem response", m, p)
			}
		}
	}
}

// The validator itself must reject what the description does not allow, or the response checks prove nothing.
func TestValidatorRejectsMismatches(t *testing.T) {
	tests := []struct {
		method, path string
		status       int
		ct, body     string
	}{
		{"GET", "/v1/connectors/01HZZZZZZZZZZZZZZZZZZZZZZZ", 200, "application/json", `{"id":"01HZZZZZZZZZZZZZZZZZZZZZZZ"}`},
		{"GET", "/v1/connectors", 200, "application/json", `{"items":[],"nextCursor":null,"extra":1}`},
		{"GET", "/v1/connectors", 418, "application/problem+json", `{"type":"x","title":"t","status":418}`},
		{"GET", "/v1/connectors", 400, "application/json", `{"type":"https://jiraexport.dev/problems/invalid","title":"t","status":400}`},
		{"DELETE", "/v1/connectors/01HZZZZZZZZZZZZZZZZZZZZZZZ", 204, "", `{}`},
		{"GET", "/v1/nowhere", 200, "application/json", `{}`},
	}
	for _, tt := range tests {
		if err := validateResponse(tt.method, tt.path, tt.status, tt.ct, []byte(tt.body)); err == nil {
			t.Errorf("validateResponse(%s %s %d %s) = nil, want an error", tt.method, tt.path, tt.status, tt.body)
		}
	}
	ok := `{"type":"https://jiraexport.dev/problems/not-found","title":"Not found","status":404,"detail":"x","instance":"/v1/connectors/1"}`
	if err := validateResponse("GET", "/v1/connectors/01HZZZZZZZZZZZZZZZZZZZZZZZ", 404, "application/problem+json", []byte(ok)); err != nil {
		t.Errorf("validateResponse(valid problem) = %v", err)
	}
}

// TestMain fails a complete run of the package when some operation of the description was never answered with
// each of its documented 2xx statuses: every response is validated, but only responses that happen.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" {
		if missing := uncovered(); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: operations never exercised with their success status:\n\t%s\n", strings.Join(missing, "\n\t"))
			code = 1
		}
	}
	os.Exit(code)
}

// uncovered lists "METHOD /path STATUS" for each documented 2xx response no checked response had.
func uncovered() []string {
	ix, err := loadSpec()
	if err != nil {
		return []string{"load OpenAPI: " + err.Error()}
	}
	var missing []string
	for p, item := range ix.doc["paths"].(map[string]any) {
		for m, op := range item.(map[string]any) {
			o, ok := op.(map[string]any)
			if !ok || m == "parameters" {
				continue
			}
			for code := range o["responses"].(map[string]any) {
				if !strings.HasPrefix(code, "2") {
					continue
				}
				k := strings.ToUpper(m) + " " + p + " " + code
				if _, ok := covered.Load(k); !ok {
					missing = append(missing, k)
				}
			}
		}
	}
	slices.Sort(missing)
	return missing
}
