package markdown_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"jiraexport/shared/markdown"
)

// FuzzADFToMarkdown checks the converter's promises on any JSON: it does not panic, its output is valid UTF-8,
// and no text is lost. "Text" is defined as the Unicode letters and digits (unicode.IsLetter, unicode.IsDigit) of
// the "text" field of nodes of type "text", anywhere in the tree: they must appear in the output in document
// order, both in the Markdown source and in what a CommonMark/GFM reader (goldmark) renders from it. Punctuation
// and blanks are left out of the rule because escaping, hard breaks and code spans legitimately change them in
// the source; attribute values (titles, names) are not text nodes and may be reformatted.
func FuzzADFToMarkdown(f *testing.F) {
	for _, d := range corpusForFuzz(f) {
		f.Add(d)
	}
	for _, s := range []string{
		`{"type":"doc","version":1,"content":[]}`,
		`{"type":"paragraph","content":[{"type":"text","text":"# *x* [y](z)"}]}`,
		`{"type":"doc","content":[{"type":"text","text":"loose text"},{"type":"mystery","content":[{"type":"text","text":"unknown keeps text"}]}]}`,
		`{"type":"table","content":[{"type":"tableRow","content":[{"type":"tableCell","attrs":{"colspan":1e9,"rowspan":-3},"content":[{"type":"text","text":"a|b"}]}]}]}`,
		`{"type":"bulletList","content":[{"type":"listItem","content":[{"type":"bulletList","content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"deep"}]}]}]}]}]}`,
		`{"type":"codeBlock","attrs":{"language":"a b` + "`" + `c"},"content":[{"type":"text","text":"` + "```" + `\n~~~"}]}`,
		`{"type":"paragraph","content":[{"type":"text","text":" x ","marks":[{"type":"strong"},{"type":"em"},{"type":"code"},{"type":"link","attrs":{"href":"a b)"}}]}]}`,
		`{"type":"date","attrs":{"timestamp":"99999999999999999999"}}`,
		`[{"type":"text","text":"array root"}]`,
	} {
		f.Add([]byte(s))
	}
	opts := testOptions()
	f.Fuzz(func(t *testing.T, raw []byte) {
		n, err := markdown.ParseADF(raw)
		if err != nil {
			// Random bytes are rarely JSON: read them as a recipe for a tree instead, so every input exercises
			// the converter on documents of any shape, valid or not.
			n = (&treeGen{b: raw}).node(0)
		}
		out := markdown.Convert(n, opts)
		if !utf8.ValidString(out) {
			t.Fatalf("output is not valid UTF-8: %q", out)
		}
		want := letters(textOfNode(n))
		if !containsInOrder(letters(out), want) {
			t.Fatalf("output lost text characters\ninput: %s\noutput: %q", raw, out)
		}
		if got := markdownShape(t, out).TextLetters; !containsInOrder(got, want) {
			t.Fatalf("rendered Markdown lost text characters\ninput: %s\noutput: %q\nrendered letters: %q", raw, out, string(got))
		}
	})
}

func corpusForFuzz(f *testing.F) [][]byte {
	var out [][]byte
	paths := mustGlob(f, "testdata/adf/*.json")
	for _, p := range paths {
		out = append(out, mustRead(f, p))
	}
	return out
}

var genTypes = []string{
	"doc", "paragraph", "text", "text", "text", "heading", "bulletList", "orderedList", "listItem", "codeBlock",
	"blockquote", "panel", "rule", "table", "tableRow", "tableCell", "tableHeader", "mediaSingle", "mediaGroup",
	"media", "mediaInline", "caption", "mention", "emoji", "hardBreak", "inlineCard", "blockCard", "embedCard",
	"date", "status", "expand", "nestedExpand", "taskList", "taskItem", "blockTaskItem", "decisionList",
	"decisionItem", "extension", "bodiedExtension", "inlineExtension", "layoutSection", "layoutColumn",
	"placeholder", "syncBlock", "bodiedSyncBlock", "somethingNew",
}

var genMarks = []string{"strong", "em", "code", "strike", "underline", "link", "subsup", "textColor",
	"backgroundColor", "annotation", "alignment", "indentation", "breakout", "border", "fontSize", "dataConsumer",
	"fragment", "mystery"}

var genTexts = []string{"word", " spaced ", "# h", "- li", "1. ol", "*x*", "_y_", "`c`", "```", "~~~", "[a](b)",
	"<b>", "&amp;", "a|b", "\\", "\n", "line\nbreak", "===", "---", "    code", "> q", "[ ] t", "naïve 東京", "\x00",
	"![i](j)", "www.example.com", "@x", ":smile:", "+", "10)", "\r\n", "  ", "\t"}

// treeGen builds an ADF tree from fuzz bytes.
type treeGen struct {
	b []byte
	i int
}

func (g *treeGen) next() int {
	if g.i >= len(g.b) {
		return 0
	}
	g.i++
	return int(g.b[g.i-1])
}

func (g *treeGen) text() string {
	n := g.next()
	if n%3 == 0 && g.i < len(g.b) { // raw bytes from the input, however odd
		end := min(len(g.b), g.i+n%17+1)
		s := string(g.b[g.i:end])
		g.i = end
		return s
	}
	return strings.NewReplacer(`\n`, "\n", `\r`, "\r", `\t`, "\t", `\x00`, "\x00").Replace(genTexts[n%len(genTexts)])
}

func (g *treeGen) node(depth int) markdown.Node {
	n := markdown.Node{Type: genTypes[g.next()%len(genTypes)], Attrs: map[string]any{}}
	switch g.next() % 6 {
	case 0:
		n.Attrs["level"] = float64(g.next()%9) - 1
		n.Attrs["order"] = float64(g.next() * 1000003 % 1000000007)
	case 1:
		n.Attrs["colspan"] = float64(g.next() % 5)
		n.Attrs["rowspan"] = float64(g.next()%5) - 1
	case 2:
		n.Attrs["state"] = []string{"DONE", "TODO", "DECIDED", ""}[g.next()%4]
		n.Attrs["text"] = g.text()
	case 3:
		n.Attrs["language"] = g.text()
		n.Attrs["title"] = g.text()
		n.Attrs["url"] = g.text()
	case 4:
		n.Attrs["alt"] = []string{"diagram.png", "huge.zip", "x", ""}[g.next()%4]
		n.Attrs["type"] = []string{"file", "external", "link"}[g.next()%3]
		n.Attrs["timestamp"] = g.text()
	}
	if n.Type == "text" || g.next()%5 == 0 {
		n.Text = g.text()
	}
	for k := g.next() % 4; k > 0 && g.i < len(g.b); k-- {
		m := markdown.Mark{Type: genMarks[g.next()%len(genMarks)], Attrs: map[string]any{}}
		m.Attrs["href"] = g.text()
		m.Attrs["type"] = []string{"sub", "sup"}[g.next()%2]
		n.Marks = append(n.Marks, m)
	}
	if depth < 12 {
		for k := g.next() % 5; k > 0 && g.i < len(g.b); k-- {
			n.Content = append(n.Content, g.node(depth+1))
		}
	}
	return n
}
