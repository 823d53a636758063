// Package markdown turns Atlassian Document Format (ADF) into CommonMark with GitHub Flavored Markdown extensions,
// and renders one exported issue as a Markdown document with versioned YAML front matter.
//
// The converter is pure (no I/O) and total: any JSON value converts, nodes and marks it does not know degrade to
// their text, and no text of a text node is ever dropped. Callers supply two lookups: attachments (the exported
// object's key, or why it was skipped) and people (display name or pseudonym). Account ids never reach the output.
package markdown

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Node is one ADF node (https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/).
type Node struct {
	Type    string
	Attrs   map[string]any
	Content []Node
	Marks   []Mark
	Text    string
}

// Mark is one ADF mark on a node.
type Mark struct {
	Type  string
	Attrs map[string]any
}

// ParseADF decodes an ADF document. It fails only on malformed JSON: fields of the wrong JSON type are ignored
// rather than rejected, so that one odd document never costs an issue its Markdown.
func ParseADF(raw []byte) (Node, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return Node{}, fmt.Errorf("markdown: decode ADF: %w", err)
	}
	return NodeFromValue(v), nil
}

// NodeFromValue converts an already decoded JSON value (as encoding/json produces into an any) into a Node.
// A JSON array is taken as a list of top-level blocks; any other non-object value yields an empty node.
func NodeFromValue(v any) Node {
	switch t := v.(type) {
	case map[string]any:
		return nodeFromMap(t)
	case []any:
		return Node{Type: "doc", Content: nodesFromSlice(t)}
	case string:
		return Node{Type: "text", Text: t}
	}
	return Node{}
}

func nodeFromMap(m map[string]any) Node {
	var n Node
	n.Type, _ = m["type"].(string)
	n.Text, _ = m["text"].(string)
	n.Attrs, _ = m["attrs"].(map[string]any)
	if c, ok := m["content"].([]any); ok {
		n.Content = nodesFromSlice(c)
	}
	if ms, ok := m["marks"].([]any); ok {
		for _, x := range ms {
			mm, ok := x.(map[string]any)
			if !ok {
				continue
			}
			var mk Mark
			mk.Type, _ = mm["type"].(string)
			mk.Attrs, _ = mm["attrs"].(map[string]any)
			n.Marks = append(n.Marks, mk)
		}
	}
	return n
}

func nodesFromSlice(s []any) []Node {
	out := make([]Node, 0, len(s))
	for _, x := range s {
		if m, ok := x.(map[string]any); ok {
			out = append(out, nodeFromMap(m))
		}
	}
	return out
}

// str returns a string attribute, or "" when absent or not a string.
func str(attrs map[string]any, key string) string {
	s, _ := attrs[key].(string)
	return s
}

// num returns a numeric attribute (JSON number or numeric string) and whether it was usable.
func num(attrs map[string]any, key string) (float64, bool) {
	switch v := attrs[key].(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false
		}
		return v, true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case int:
		return float64(v), true
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return f, true
	}
	return 0, false
}

// intAttr returns a numeric attribute clamped to [lo, hi], or def when absent.
func intAttr(attrs map[string]any, key string, def, lo, hi int) int {
	f, ok := num(attrs, key)
	if !ok {
		return def
	}
	switch {
	case f < float64(lo):
		return lo
	case f > float64(hi):
		return hi
	}
	return int(f)
}
