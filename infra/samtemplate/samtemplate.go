// Package samtemplate reads template.yaml so that the local stack, the local HTTP router and the tests take
// tables, keys, buckets, routes and function environments from the same file that deploys them.
//
// Only the long form of intrinsic functions is understood (Ref:, Fn::Sub:, Fn::GetAtt:, Fn::Join:), which is
// what template.yaml uses.
package samtemplate

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
)

// Template is the part of a SAM template that the local tooling needs.
type Template struct {
	Parameters map[string]Parameter `yaml:"Parameters"`
	Globals    struct {
		Function map[string]any `yaml:"Function"`
	} `yaml:"Globals"`
	Resources map[string]Resource `yaml:"Resources"`
}

// Parameter is a template parameter.
type Parameter struct {
	Type    string `yaml:"Type"`
	Default any    `yaml:"Default"`
}

// Resource is one entry of Resources.
type Resource struct {
	Type       string         `yaml:"Type"`
	Properties map[string]any `yaml:"Properties"`
	Metadata   map[string]any `yaml:"Metadata"`
}

// Route is one HttpApi event of a function.
type Route struct {
	Method string // upper case, or "ANY"
	Path   string // API Gateway route path, e.g. /v1/connectors/{id} or /{proxy+}
}

// Function is an AWS::Serverless::Function with what a local runner needs.
type Function struct {
	LogicalID string
	// Dir is the function's folder under functions/, derived from CodeUri.
	Dir string
	// Env holds the merged Globals and function environment variables, unresolved.
	Env     map[string]any
	Timeout int
	// MemorySize is the template's MemorySize (Globals, then the function), 128 by default as in Lambda.
	MemorySize int
	Routes     []Route
	// Props holds the function's properties over the Globals' (shallow merge, the function wins), unresolved,
	// for settings only some tools read (FunctionName, ReservedConcurrentExecutions, EventInvokeConfig,
	// DeadLetterQueue, Events).
	Props map[string]any
}

// Load parses the template at path.
func Load(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	return Parse(b)
}

// Parse parses template bytes.
func Parse(b []byte) (*Template, error) {
	var t Template
	if err := yaml.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	if len(t.Resources) == 0 {
		return nil, errors.New("parse template: no Resources")
	}
	return &t, nil
}

// ResourcesOfType returns the logical ids of every resource of the given type, sorted.
func (t *Template) ResourcesOfType(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Functions returns every AWS::Serverless::Function, sorted by logical id.
func (t *Template) Functions() ([]Function, error) {
	var fns []Function
	for _, id := range t.ResourcesOfType("AWS::Serverless::Function") {
		r := t.Resources[id]
		fn := Function{LogicalID: id, Env: map[string]any{}, Timeout: 3, MemorySize: 128, Props: map[string]any{}}
		for k, v := range t.Globals.Function {
			fn.Props[k] = v
		}
		for k, v := range r.Properties {
			fn.Props[k] = v
		}
		if v, ok := asInt(fn.Props["Timeout"]); ok {
			fn.Timeout = v
		}
		if v, ok := asInt(fn.Props["MemorySize"]); ok {
			fn.MemorySize = v
		}
		mergeEnv(fn.Env, t.Globals.Function)
		mergeEnv(fn.Env, r.Properties)
		dir, err := functionDir(id, fn.Props["CodeUri"])
		if err != nil {
			return nil, err
		}
		fn.Dir = dir
		events, _ := r.Properties["Events"].(map[string]any)
		names := make([]string, 0, len(events))
		for name := range events {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			ev, _ := events[name].(map[string]any)
			if ev["Type"] != "HttpApi" {
				continue
			}
			props, _ := ev["Properties"].(map[string]any)
			method, _ := props["Method"].(string)
			path, _ := props["Path"].(string)
			if method == "" || path == "" {
				return nil, fmt.Errorf("function %s event %s: HttpApi events need Method and Path", id, name)
			}
			fn.Routes = append(fn.Routes, Route{Method: strings.ToUpper(method), Path: path})
		}
		fns = append(fns, fn)
	}
	return fns, nil
}

// functionDir finds a function's source folder. The product's functions use `CodeUri: .` (SAM's makefile
// build runs `make build-<LogicalId>` from the module root, which the Go build needs), and the Makefile and
// this code share one convention: <Name>Function lives in functions/<name>. Any other CodeUri names the folder.
func functionDir(logicalID string, codeURI any) (string, error) {
	code, _ := codeURI.(string)
	code = strings.TrimSuffix(strings.TrimPrefix(code, "./"), "/")
	if code != "" && code != "." {
		return code, nil
	}
	name, ok := strings.CutSuffix(logicalID, "Function")
	if !ok || name == "" {
		return "", fmt.Errorf("function %s: with CodeUri \".\" the logical id must be <Name>Function", logicalID)
	}
	return "functions/" + strings.ToLower(name), nil
}

func mergeEnv(dst map[string]any, props map[string]any) {
	env, _ := props["Environment"].(map[string]any)
	vars, _ := env["Variables"].(map[string]any)
	for k, v := range vars {
		dst[k] = v
	}
}

func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case uint64:
		return int(n), true
	case int64:
		return int(n), true
	case float64:
		return int(n), true
	}
	return 0, false
}

// Physical describes what a logical resource became: its Ref value and its attributes (for Fn::GetAtt).
type Physical struct {
	Ref   string
	Attrs map[string]string
}

// Resolver evaluates intrinsic functions against known parameters, pseudo parameters and resources.
type Resolver struct {
	Params    map[string]string
	Resources map[string]Physical
}

// NewResolver returns a resolver with the template's parameter defaults, overridden by overrides, and the
// pseudo parameters a local stack uses.
func (t *Template) NewResolver(region, accountID, stackName string, overrides map[string]string) *Resolver {
	r := &Resolver{Params: map[string]string{
		"AWS::Region":    region,
		"AWS::AccountId": accountID,
		"AWS::StackName": stackName,
		"AWS::Partition": "aws",
		"AWS::URLSuffix": "amazonaws.com",
	}, Resources: map[string]Physical{}}
	for name, p := range t.Parameters {
		if p.Default != nil {
			r.Params[name] = fmt.Sprint(p.Default)
		}
	}
	for k, v := range overrides {
		r.Params[k] = v
	}
	return r
}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

// ErrUnresolved reports a reference to something the resolver does not know (yet).
var ErrUnresolved = errors.New("unresolved reference")

// Resolve replaces intrinsic functions in v (recursively) by their values.
func (r *Resolver) Resolve(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				switch k {
				case "Ref":
					name, _ := arg.(string)
					return r.ref(name)
				case "Fn::GetAtt":
					return r.getAtt(arg)
				case "Fn::Sub":
					return r.sub(arg)
				case "Fn::Join":
					return r.join(arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			rv, err := r.Resolve(e)
			if err != nil {
				return nil, err
			}
			out[k] = rv
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			rv, err := r.Resolve(e)
			if err != nil {
				return nil, err
			}
			out[i] = rv
		}
		return out, nil
	default:
		return v, nil
	}
}

// ResolveString resolves v and requires a scalar result.
func (r *Resolver) ResolveString(v any) (string, error) {
	rv, err := r.Resolve(v)
	if err != nil {
		return "", err
	}
	switch s := rv.(type) {
	case string:
		return s, nil
	case map[string]any, []any:
		return "", fmt.Errorf("resolve: %v is not a scalar", rv)
	default:
		return fmt.Sprint(s), nil
	}
}

func (r *Resolver) ref(name string) (string, error) {
	if v, ok := r.Params[name]; ok {
		return v, nil
	}
	if p, ok := r.Resources[name]; ok {
		return p.Ref, nil
	}
	return "", fmt.Errorf("resolve Ref %s: %w", name, ErrUnresolved)
}

func (r *Resolver) getAtt(arg any) (string, error) {
	var res, attr string
	switch a := arg.(type) {
	case []any:
		if len(a) == 2 {
			res, _ = a[0].(string)
			attr, _ = a[1].(string)
		}
	case string:
		res, attr, _ = strings.Cut(a, ".")
	}
	p, ok := r.Resources[res]
	if !ok {
		return "", fmt.Errorf("Fn::GetAtt %s.%s: %w", res, attr, ErrUnresolved)
	}
	v, ok := p.Attrs[attr]
	if !ok {
		return "", fmt.Errorf("Fn::GetAtt %s.%s: %w", res, attr, ErrUnresolved)
	}
	return v, nil
}

func (r *Resolver) sub(arg any) (string, error) {
	var tmpl string
	vars := map[string]any{}
	switch a := arg.(type) {
	case string:
		tmpl = a
	case []any:
		if len(a) != 2 {
			return "", errors.New("Fn::Sub: want [template, {vars}]")
		}
		tmpl, _ = a[0].(string)
		vars, _ = a[1].(map[string]any)
	}
	var firstErr error
	out := subVar.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := vars[name]; ok {
			s, err := r.ResolveString(v)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			return s
		}
		var s string
		var err error
		if res, attr, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
			s, err = r.getAtt([]any{res, attr})
		} else {
			s, err = r.ref(name)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return s
	})
	if firstErr != nil {
		return "", fmt.Errorf("Fn::Sub %q: %w", tmpl, firstErr)
	}
	return out, nil
}

func (r *Resolver) join(arg any) (string, error) {
	a, _ := arg.([]any)
	if len(a) != 2 {
		return "", errors.New("Fn::Join: want [delimiter, [values]]")
	}
	sep, _ := a[0].(string)
	items, _ := a[1].([]any)
	parts := make([]string, len(items))
	for i, it := range items {
		s, err := r.ResolveString(it)
		if err != nil {
			return "", err
		}
		parts[i] = s
	}
	return strings.Join(parts, sep), nil
}

// AsInt reads a template number (YAML gives several integer types), reporting whether v is one.
func AsInt(v any) (int, bool) {
	if s, ok := v.(string); ok {
		n, err := strconv.Atoi(s)
		return n, err == nil
	}
	return asInt(v)
}
