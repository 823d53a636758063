package markdown_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	extast "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"

	"jiraexport/shared/markdown"
)

// shape is what a CommonMark/GFM reader must find in a converted document. It is derived from the ADF on one side
// and from goldmark's syntax tree of the Markdown on the other, so every corpus document is checked without
// hand-written expectations. Table cells are flattened by design, so nothing inside a table counts except the
// table's own shape.
type shape struct {
	Headings    []int
	Lists       []string // "ordered start=3 items=2 depth=0" / "bullet items=2 depth=1"
	Tasks       []bool   // checked state of each task item, in order
	Code        []string // "lang\x00content"
	Tables      []string // "cols=3 rows=4" (rows including the header row)
	Quotes      int
	Rules       int
	Links       []string // every destination the ADF asks for (the Markdown may have more: autolinks)
	TextLetters []rune
}

func adfShape(n markdown.Node, opts markdown.Options) shape {
	var s shape
	var walk func(n markdown.Node, listDepth int, inTable bool)
	walk = func(n markdown.Node, listDepth int, inTable bool) {
		for _, m := range n.Marks {
			if m.Type == "link" {
				if h, _ := m.Attrs["href"].(string); h != "" {
					s.Links = append(s.Links, h)
				}
			}
		}
		switch n.Type {
		case "inlineCard", "blockCard", "embedCard":
			u, _ := n.Attrs["url"].(string)
			if d, ok := n.Attrs["data"].(map[string]any); ok && u == "" {
				u, _ = d["url"].(string)
			}
			if u != "" {
				s.Links = append(s.Links, u)
			}
		case "media", "mediaInline":
			m := markdown.Media{Alt: str(n.Attrs, "alt"), Type: str(n.Attrs, "type"), URL: str(n.Attrs, "url")}
			l := opts.Media(m)
			if l.Href == "" && l.Skipped == "" && m.Type == "external" {
				l.Href = m.URL
			}
			if l.Href != "" {
				s.Links = append(s.Links, l.Href)
			}
		}
		if !inTable {
			switch n.Type {
			case "heading":
				s.Headings = append(s.Headings, int(n.Attrs["level"].(float64)))
			case "bulletList", "orderedList", "taskList", "decisionList":
				items := 0
				for i, c := range n.Content {
					if c.Type != "taskList" {
						items++
					} else if i == 0 {
						items++ // a leading nested task list hangs from an empty item
					}
				}
				if n.Type == "orderedList" {
					start := 1
					if o, ok := n.Attrs["order"].(float64); ok {
						start = int(o)
					}
					s.Lists = append(s.Lists, fmt.Sprintf("ordered start=%d items=%d depth=%d", start, items, listDepth))
				} else {
					s.Lists = append(s.Lists, fmt.Sprintf("bullet items=%d depth=%d", items, listDepth))
				}
			case "taskItem", "blockTaskItem":
				s.Tasks = append(s.Tasks, str(n.Attrs, "state") == "DONE")
			case "codeBlock":
				var b strings.Builder
				for _, c := range n.Content {
					b.WriteString(c.Text)
				}
				s.Code = append(s.Code, str(n.Attrs, "language")+"\x00"+strings.TrimSuffix(b.String(), "\n"))
			case "table":
				rows := len(n.Content)
				header := len(n.Content[0].Content) > 0
				for _, c := range n.Content[0].Content {
					header = header && c.Type == "tableHeader"
				}
				if !header {
					rows++
				}
				s.Tables = append(s.Tables, fmt.Sprintf("cols=%d rows=%d", markdown.TableWidth(n), rows))
			case "blockquote", "panel":
				s.Quotes++
			case "rule":
				s.Rules++
			}
		}
		depth := listDepth
		switch n.Type {
		case "bulletList", "orderedList", "decisionList":
			depth++
		case "taskList":
			depth++
		}
		for _, c := range n.Content {
			walk(c, depth, inTable || n.Type == "table")
		}
	}
	walk(n, 0, false)
	s.TextLetters = letters(textOfNode(n))
	return s
}

func str(m map[string]any, k string) string { v, _ := m[k].(string); return v }

var gfm = goldmark.New(goldmark.WithExtensions(extension.GFM))

func markdownShape(t *testing.T, md string) shape {
	t.Helper()
	src := []byte(md)
	doc := gfm.Parser().Parse(text.NewReader(src))
	var s shape
	inTable := 0
	err := ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if _, ok := n.(*extast.Table); ok {
			if entering {
				inTable++
			} else {
				inTable--
			}
		}
		if !entering {
			return ast.WalkContinue, nil
		}
		switch x := n.(type) {
		case *ast.AutoLink:
			s.Links = append(s.Links, string(x.URL(src)))
		case *ast.Link:
			s.Links = append(s.Links, string(util.UnescapePunctuations(x.Destination)))
		case *ast.Image:
			s.Links = append(s.Links, string(util.UnescapePunctuations(x.Destination)))
		}
		if inTable > 0 {
			if tb, ok := n.(*extast.Table); ok {
				rows, cols := 0, 0
				for r := tb.FirstChild(); r != nil; r = r.NextSibling() {
					rows++
					if _, ok := r.(*extast.TableHeader); ok {
						cols = r.ChildCount()
					}
				}
				s.Tables = append(s.Tables, fmt.Sprintf("cols=%d rows=%d", cols, rows))
			}
			return ast.WalkContinue, nil
		}
		switch x := n.(type) {
		case *ast.Heading:
			s.Headings = append(s.Headings, x.Level)
		case *ast.List:
			depth := 0
			for p := x.Parent(); p != nil; p = p.Parent() {
				if _, ok := p.(*ast.List); ok {
					depth++
				}
			}
			if x.IsOrdered() {
				s.Lists = append(s.Lists, fmt.Sprintf("ordered start=%d items=%d depth=%d", x.Start, x.ChildCount(), depth))
			} else {
				s.Lists = append(s.Lists, fmt.Sprintf("bullet items=%d depth=%d", x.ChildCount(), depth))
			}
		case *extast.TaskCheckBox:
			s.Tasks = append(s.Tasks, x.IsChecked)
		case *ast.FencedCodeBlock:
			var b strings.Builder
			for i := 0; i < x.Lines().Len(); i++ {
				seg := x.Lines().At(i)
				b.Write(seg.Value(src))
			}
			s.Code = append(s.Code, string(x.Language(src))+"\x00"+strings.TrimSuffix(b.String(), "\n"))
		case *ast.Blockquote:
			s.Quotes++
		case *ast.ThematicBreak:
			s.Rules++
		}
		return ast.WalkContinue, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The AST's text is the source, escapes and all; what a reader sees is the rendering.
	s.TextLetters = letters(renderedText(t, md))
	return s
}

func TestGoldenStructure(t *testing.T) {
	opts := testOptions()
	for _, d := range corpus(t) {
		t.Run(d.name, func(t *testing.T) {
			md, err := markdown.FromADF(d.raw, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkShape(t, markdown.NodeFromValue(d.adf), md, opts)
		})
	}
}

func checkShape(t *testing.T, n markdown.Node, md string, opts markdown.Options) {
	t.Helper()
	want, got := adfShape(n, opts), markdownShape(t, md)
	eq := func(what string, w, g any) {
		if fmt.Sprint(w) != fmt.Sprint(g) {
			t.Errorf("%s: Markdown has %q, ADF has %q\n%s", what, g, w, md)
		}
	}
	eq("headings", want.Headings, got.Headings)
	eq("lists", want.Lists, got.Lists)
	eq("task states", want.Tasks, got.Tasks)
	eq("code blocks", want.Code, got.Code)
	eq("tables", want.Tables, got.Tables)
	eq("blockquotes", want.Quotes, got.Quotes)
	eq("rules", want.Rules, got.Rules)
	for _, l := range want.Links {
		if !slices.Contains(got.Links, l) {
			t.Errorf("link %q missing: Markdown has %q\n%s", l, got.Links, md)
		}
	}
	if !containsInOrder(got.TextLetters, want.TextLetters) {
		t.Errorf("rendered text lost letters or digits of the ADF text\nADF:  %s\nMD:   %s", string(want.TextLetters), string(got.TextLetters))
	}
}

// letters keeps the characters the converter promises to keep: Unicode letters and digits.
func letters(s string) []rune {
	var out []rune
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			out = append(out, r)
		}
	}
	return out
}

// containsInOrder reports whether needle is a subsequence of hay.
func containsInOrder(hay, needle []rune) bool {
	i := 0
	for _, r := range hay {
		if i < len(needle) && r == needle[i] {
			i++
		}
	}
	return i == len(needle)
}

func textOfNode(n markdown.Node) string {
	var b strings.Builder
	var walk func(markdown.Node)
	walk = func(n markdown.Node) {
		if n.Type == "text" {
			b.WriteString(n.Text)
			b.WriteByte(' ')
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

func textOf(v any) string { return textOfNode(markdown.NodeFromValue(v)) }
