package markdown_test

import (
	"bytes"
	"html"
	"regexp"
	"strings"
	"testing"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	gmhtml "github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/text"

	"jiraexport/shared/markdown"
)

// renderedText is what a reader sees of a Markdown document: goldmark's HTML with the tags taken out and the
// entities resolved, line breaks as "\n".
func renderedText(t *testing.T, md string) string {
	t.Helper()
	var b bytes.Buffer
	if err := gfm.Convert([]byte(md), &b); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(html.UnescapeString(tags.ReplaceAllString(b.String(), "")))
}

var tags = regexp.MustCompile(`<[^>]*>`)

func para(text string) markdown.Node {
	return markdown.Node{Type: "doc", Content: []markdown.Node{{Type: "paragraph", Content: []markdown.Node{{Type: "text", Text: text}}}}}
}

// TestEscapingKeepsTextText: text that looks like Markdown must come back from a CommonMark/GFM reader as the same
// characters, in a single paragraph.
func TestEscapingKeepsTextText(t *testing.T) {
	for _, in := range []string{
		"# not a heading", "## nor this", "#hashtag and issue #12", "*x*", "_x_", "**x**", "__x__", "***",
		"- item", "+ item", "* item", "1. one", "1) one", "123456789. big", "2024. A year", "> quote", ">>",
		"```go", "~~~", "~~strike~~", "~one~", "`code`", "``", "[a](b)", "![a](b)", "[a]: /b", "[^1]", "[ ] task",
		"<div>", "<b>bold</b>", "<!-- c -->", "<https://example.com>", "&amp;", "&#35;", "&#x41;", "R&D", "AT&T;",
		"a | b", "|", "\\", "\\*", "trailing\\", "===", "---", "- - -", "_ _ _", "    indented", "\tTab",
		"a  ", "line one\nline two", "1.5 and 2)", "-1", "+1", "=x", "x = y", "!", "www.example.com",
		"naïve café 東京 🚀", "ends with #", "###", "a\u00a0b",
	} {
		md := markdown.Convert(para(in), markdown.Options{})
		doc := gfm.Parser().Parse(text.NewReader([]byte(md)))
		if doc.ChildCount() != 1 || doc.FirstChild().Kind() != ast.KindParagraph {
			t.Errorf("Convert(%q) = %q: a reader finds %d blocks, first %v; want one paragraph", in, md, doc.ChildCount(), doc.FirstChild().Kind())
			continue
		}
		want := strings.TrimRight(strings.TrimLeft(in, " \t"), " ")
		if got := renderedText(t, md); got != want {
			t.Errorf("Convert(%q) = %q, which reads as %q", in, md, got)
		}
	}
}

func TestEscapingInHeadingsAndCells(t *testing.T) {
	for _, in := range []string{"ends with #", "##", "a | b", "*x*", "1. x", "- y", "<br>"} {
		h := markdown.Node{Type: "heading", Attrs: map[string]any{"level": 2.0}, Content: []markdown.Node{{Type: "text", Text: in}}}
		md := markdown.Convert(h, markdown.Options{})
		doc := gfm.Parser().Parse(text.NewReader([]byte(md)))
		hd, ok := doc.FirstChild().(*ast.Heading)
		if !ok || hd.Level != 2 || doc.ChildCount() != 1 {
			t.Errorf("heading %q = %q: not one level-2 heading", in, md)
		} else if got := renderedText(t, md); got != strings.TrimSpace(in) {
			t.Errorf("heading %q = %q, which reads as %q", in, md, got)
		}

		cell := func(s string) markdown.Node {
			return markdown.Node{Type: "tableCell", Content: []markdown.Node{{Type: "paragraph", Content: []markdown.Node{{Type: "text", Text: s}}}}}
		}
		tbl := markdown.Node{Type: "table", Content: []markdown.Node{{Type: "tableRow", Content: []markdown.Node{cell(in), cell("next")}}}}
		md = markdown.Convert(tbl, markdown.Options{})
		got := markdownShape(t, md)
		if len(got.Tables) != 1 || got.Tables[0] != "cols=2 rows=2" {
			t.Errorf("table with cell %q = %q: reader finds tables %v, want cols=2 rows=2", in, md, got.Tables)
		}
		if r := renderedText(t, md); !strings.Contains(r, in) {
			t.Errorf("table with cell %q = %q, which reads as %q", in, md, r)
		}
	}
}

// TestMappings pins the Markdown chosen for each ADF construct.
func TestMappings(t *testing.T) {
	opts := testOptions()
	tests := []struct {
		name string
		adf  string // the doc's content array
		opts *markdown.Options
		want string
	}{
		{"heading levels", `[{"type":"heading","attrs":{"level":1},"content":[{"type":"text","text":"One"}]},{"type":"heading","attrs":{"level":6},"content":[{"type":"text","text":"Six"}]}]`,
			nil, "# One\n\n###### Six\n"},
		{"heading offset clamps at 6", `[{"type":"heading","attrs":{"level":1},"content":[{"type":"text","text":"One"}]},{"type":"heading","attrs":{"level":5},"content":[{"type":"text","text":"Five"}]}]`,
			&markdown.Options{HeadingOffset: 2}, "### One\n\n###### Five\n"},
		{"heading hard break becomes a space", `[{"type":"heading","attrs":{"level":2},"content":[{"type":"text","text":"a"},{"type":"hardBreak"},{"type":"text","text":"b"}]}]`,
			nil, "## a b\n"},
		{"empty paragraph dropped", `[{"type":"paragraph"},{"type":"paragraph","content":[{"type":"text","text":"x"}]}]`, nil, "x\n"},
		{"hard break", `[{"type":"paragraph","content":[{"type":"text","text":"a"},{"type":"hardBreak"},{"type":"text","text":"b"},{"type":"hardBreak"}]}]`,
			nil, "a\\\nb\n"},
		{"ordered list keeps its start", `[{"type":"orderedList","attrs":{"order":7},"content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"a"}]}]},{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"b"}]}]}]}]`,
			nil, "7. a\n8. b\n"},
		{"ordered list start clamps to CommonMark's 9 digits", `[{"type":"orderedList","attrs":{"order":1e12},"content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"a"}]}]}]}]`,
			nil, "999999999. a\n"},
		{"adjacent lists stay apart", `[{"type":"bulletList","content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"a"}]}]}]},{"type":"bulletList","content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"b"}]}]}]},{"type":"bulletList","content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"c"}]}]}]}]`,
			nil, "- a\n\n* b\n\n- c\n"},
		{"empty list item", `[{"type":"bulletList","content":[{"type":"listItem","content":[{"type":"paragraph"}]}]}]`, nil, "- <!-- -->\n"},
		{"code block with language", `[{"type":"codeBlock","attrs":{"language":"python"},"content":[{"type":"text","text":"print(1)\n"}]}]`,
			nil, "```python\nprint(1)\n```\n"},
		{"code fence longer than the code's backticks", `[{"type":"codeBlock","attrs":{"language":"a b"},"content":[{"type":"text","text":"x ` + "````" + ` y"}]}]`,
			nil, "`````a\nx ```` y\n`````\n"},
		{"empty code block", `[{"type":"codeBlock"}]`, nil, "```\n```\n"},
		{"nested blockquote content", `[{"type":"blockquote","content":[{"type":"paragraph","content":[{"type":"text","text":"a"}]},{"type":"paragraph","content":[{"type":"text","text":"b"}]}]}]`,
			nil, "> a\n>\n> b\n"},
		{"panel", `[{"type":"panel","attrs":{"panelType":"error"},"content":[{"type":"paragraph","content":[{"type":"text","text":"Broken"}]}]}]`,
			nil, "> [!CAUTION]\n> Broken\n"},
		{"rule", `[{"type":"rule"}]`, nil, "---\n"},
		{"table with merged cells", `[{"type":"table","content":[{"type":"tableRow","content":[{"type":"tableHeader","attrs":{"colspan":2},"content":[{"type":"paragraph","content":[{"type":"text","text":"H"}]}]}]},{"type":"tableRow","content":[{"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"a"}]}]},{"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"b"}]}]}]}]}]`,
			nil, "| H | |\n| --- | --- |\n| a | b |\n"},
		{"table without header row", `[{"type":"table","content":[{"type":"tableRow","content":[{"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"a"}]}]}]}]}]`,
			nil, "| |\n| --- |\n| a |\n"},
		{"huge colspan is bounded", `[{"type":"table","content":[{"type":"tableRow","content":[{"type":"tableCell","attrs":{"colspan":1e9},"content":[{"type":"paragraph","content":[{"type":"text","text":"a"}]}]},{"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"b"}]}]}]}]}]`,
			nil, "| |" + strings.Repeat(" |", 63) + "\n|" + strings.Repeat(" --- |", 64) + "\n| a |" + strings.Repeat(" |", 62) + " b |\n"},
		{"media resolved as image", `[{"type":"mediaSingle","attrs":{"layout":"center"},"content":[{"type":"media","attrs":{"type":"file","id":"m1","collection":"c","alt":"diagram.png"}}]}]`,
			&opts, "![diagram.png](attachments/10001)\n"},
		{"media skipped with reason", `[{"type":"mediaGroup","content":[{"type":"media","attrs":{"type":"file","id":"m1","collection":"c","alt":"huge.zip"}}]}]`,
			&opts, "*(attachment huge.zip: larger than the connector's 100 MB limit)*\n"},
		{"media without resolver", `[{"type":"mediaGroup","content":[{"type":"media","attrs":{"type":"file","id":"m1","collection":"c","alt":"a_b.png"}}]}]`,
			nil, "*(attachment a\\_b.png: not exported)*\n"},
		{"external media links to its URL", `[{"type":"mediaSingle","attrs":{"layout":"center"},"content":[{"type":"media","attrs":{"type":"external","url":"https://x.test/a.png"}}]}]`,
			nil, "![attachment](https://x.test/a.png)\n"},
		{"mention uses the resolver, never the id", `[{"type":"paragraph","content":[{"type":"mention","attrs":{"id":"5b10a2844c20165700ede21g","text":"@Old Name"}}]}]`,
			&opts, "@Alice Example\n"},
		{"mention without resolver uses stored text", `[{"type":"paragraph","content":[{"type":"mention","attrs":{"id":"5b10a2844c20165700ede21g","text":"@Old_Name"}}]}]`,
			nil, "@Old\\_Name\n"},
		{"mention with nothing to show", `[{"type":"paragraph","content":[{"type":"mention","attrs":{"id":"5b10a2844c20165700ede21g"}}]}]`,
			nil, "@unknown user\n"},
		{"emoji", `[{"type":"paragraph","content":[{"type":"emoji","attrs":{"shortName":":+1:","text":"👍"}},{"type":"emoji","attrs":{"shortName":":custom_one:"}}]}]`,
			nil, "👍:custom\\_one:\n"},
		{"date", `[{"type":"paragraph","content":[{"type":"date","attrs":{"timestamp":"1700000000000"}}]}]`, nil, "2023-11-14\n"},
		{"date that is not a timestamp", `[{"type":"paragraph","content":[{"type":"date","attrs":{"timestamp":"soon*"}}]}]`, nil, "soon\\*\n"},
		{"status", `[{"type":"paragraph","content":[{"type":"status","attrs":{"text":"DONE","color":"green"}}]}]`, nil, "\\[DONE\\]\n"},
		{"inline card", `[{"type":"paragraph","content":[{"type":"inlineCard","attrs":{"url":"https://x.test/a b"}}]}]`,
			nil, "[https://x.test/a b](https://x.test/a%20b)\n"},
		{"block card", `[{"type":"blockCard","attrs":{"url":"https://x.test/b"}}]`, nil, "<https://x.test/b>\n"},
		{"embed card", `[{"type":"embedCard","attrs":{"url":"https://x.test/e","layout":"center"}}]`, nil, "<https://x.test/e>\n"},
		{"placeholder", `[{"type":"paragraph","content":[{"type":"placeholder","attrs":{"text":"Type here"}}]}]`, nil, "*Type here*\n"},
		{"expand", `[{"type":"expand","attrs":{"title":"A & B"},"content":[{"type":"paragraph","content":[{"type":"text","text":"x"}]}]}]`,
			nil, "<details><summary>A &amp; B</summary>\n\nx\n\n</details>\n"},
		{"task list", `[{"type":"taskList","attrs":{"localId":"l"},"content":[{"type":"taskItem","attrs":{"localId":"a","state":"DONE"},"content":[{"type":"text","text":"a"}]},{"type":"taskItem","attrs":{"localId":"b","state":"TODO"}}]}]`,
			nil, "- [x] a\n- [ ]\n"},
		{"decision list", `[{"type":"decisionList","attrs":{"localId":"l"},"content":[{"type":"decisionItem","attrs":{"localId":"a","state":"DECIDED"},"content":[{"type":"text","text":"Go"}]}]}]`,
			nil, "- **Decision:** Go\n"},
		{"extension degrades to its text", `[{"type":"extension","attrs":{"extensionKey":"k","extensionType":"t","text":"fallback"}}]`, nil, "fallback\n"},
		{"extension without text names itself", `[{"type":"extension","attrs":{"extensionKey":"jira-chart","extensionType":"t"}}]`, nil, "*(jira-chart)*\n"},
		{"layout columns in order", `[{"type":"layoutSection","content":[{"type":"layoutColumn","attrs":{"width":50},"content":[{"type":"paragraph","content":[{"type":"text","text":"L"}]}]},{"type":"layoutColumn","attrs":{"width":50},"content":[{"type":"paragraph","content":[{"type":"text","text":"R"}]}]}]}]`,
			nil, "L\n\nR\n"},
		{"marks", `[{"type":"paragraph","content":[{"type":"text","text":"b","marks":[{"type":"strong"}]},{"type":"text","text":"i","marks":[{"type":"em"}]},{"type":"text","text":"s","marks":[{"type":"strike"}]},{"type":"text","text":"u","marks":[{"type":"underline"}]},{"type":"text","text":"2","marks":[{"type":"subsup","attrs":{"type":"sub"}}]},{"type":"text","text":"3","marks":[{"type":"subsup","attrs":{"type":"sup"}}]},{"type":"text","text":"c","marks":[{"type":"code"}]}]}]`,
			nil, "**b***i*~~s~~<ins>u</ins><sub>2</sub><sup>3</sup>`c`\n"},
		{"colour and annotation marks keep text only", `[{"type":"paragraph","content":[{"type":"text","text":"red","marks":[{"type":"textColor","attrs":{"color":"#ff0000"}},{"type":"backgroundColor","attrs":{"color":"#00ff00"}},{"type":"annotation","attrs":{"id":"x","annotationType":"inlineComment"}}]}]}]`,
			nil, "red\n"},
		{"blanks move outside emphasis", `[{"type":"paragraph","content":[{"type":"text","text":"a"},{"type":"text","text":" b ","marks":[{"type":"strong"}]},{"type":"text","text":"c"}]}]`,
			nil, "a **b** c\n"},
		{"hard break at the end of bold stays outside it", `[{"type":"paragraph","content":[{"type":"text","text":"a","marks":[{"type":"strong"}]},{"type":"hardBreak","marks":[{"type":"strong"}]},{"type":"text","text":"b"}]}]`,
			nil, "**a**\\\nb\n"},
		{"escaped backslash at the end of bold is text", `[{"type":"paragraph","content":[{"type":"text","text":"a\\","marks":[{"type":"strong"}]}]}]`,
			nil, "<strong>a\\\\</strong>\n"},
		{"link spanning marked text is one link", `[{"type":"paragraph","content":[{"type":"text","text":"a ","marks":[{"type":"link","attrs":{"href":"https://x.test/(1)"}}]},{"type":"text","text":"b","marks":[{"type":"link","attrs":{"href":"https://x.test/(1)"}},{"type":"strong"}]}]}]`,
			nil, "[a **b**](https://x.test/\\(1\\))\n"},
		{"code span with backticks", `[{"type":"paragraph","content":[{"type":"text","text":"a ` + "`" + `b","marks":[{"type":"code"}]}]}]`,
			nil, "``a `b``\n"},
		{"adjacent code texts are one span", `[{"type":"paragraph","content":[{"type":"text","text":"ab","marks":[{"type":"code"}]},{"type":"text","text":"cd","marks":[{"type":"code"},{"type":"textColor","attrs":{"color":"#000000"}}]}]}]`,
			nil, "`abcd`\n"},
		{"script link keeps its text, loses its target", `[{"type":"paragraph","content":[{"type":"text","text":"click","marks":[{"type":"link","attrs":{"href":" Java\tScript:alert(1)"}}]}]}]`,
			nil, "click\n"},
		{"data card is text", `[{"type":"blockCard","attrs":{"url":"data:text/html,<b>x</b>"}}]`, nil, "data:text/html,\\<b>x\\</b>\n"},
		{"file media is not linked", `[{"type":"mediaSingle","attrs":{"layout":"center"},"content":[{"type":"media","attrs":{"type":"external","url":"file:///etc/passwd"}}]}]`,
			nil, "*(attachment: not exported)*\n"},
		{"unknown block keeps its content", `[{"type":"futureBlock","attrs":{"x":1},"content":[{"type":"paragraph","content":[{"type":"text","text":"kept"}]}]}]`,
			nil, "kept\n"},
		{"unknown inline keeps its text", `[{"type":"paragraph","content":[{"type":"futureInline","attrs":{"text":"*attr text*"}},{"type":"text","text":" and "},{"type":"futureInline","text":"own text"}]}]`,
			nil, "\\*attr text\\* and own text\n"},
		{"unknown mark keeps its text", `[{"type":"paragraph","content":[{"type":"text","text":"t","marks":[{"type":"futureMark"}]}]}]`, nil, "t\n"},
		{"inline node at block level becomes a paragraph", `[{"type":"text","text":"loose"},{"type":"rule"}]`, nil, "loose\n\n---\n"},
		{"block node inside a paragraph is flattened", `[{"type":"paragraph","content":[{"type":"text","text":"a "},{"type":"codeBlock","content":[{"type":"text","text":"x|y"}]}]}]`,
			nil, "a x\\|y\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := markdown.Options{}
			if tt.opts != nil {
				o = *tt.opts
			}
			got, err := markdown.FromADF([]byte(`{"type":"doc","version":1,"content":`+tt.adf+`}`), o)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("FromADF(%s) =\n%q, want\n%q", tt.adf, got, tt.want)
			}
			for _, id := range []string{"5b10a2844c20165700ede21g"} {
				if strings.Contains(got, id) {
					t.Errorf("output contains account id %q", id)
				}
			}
		})
	}
}

func TestFromADFRejectsOnlyMalformedJSON(t *testing.T) {
	for _, raw := range []string{`null`, `"just a string"`, `42`, `[]`, `{"type":7,"content":"x","marks":{}}`, `{}`} {
		if _, err := markdown.FromADF([]byte(raw), markdown.Options{}); err != nil {
			t.Errorf("FromADF(%s) = %v, want no error", raw, err)
		}
	}
	if _, err := markdown.FromADF([]byte(`{"type":`), markdown.Options{}); err == nil {
		t.Error("FromADF(truncated JSON) = nil error, want one")
	}
}

func TestDeepNestingIsBounded(t *testing.T) {
	n := markdown.Node{Type: "paragraph", Content: []markdown.Node{{Type: "text", Text: "bottom"}}}
	for i := 0; i < 2000; i++ {
		n = markdown.Node{Type: "bulletList", Content: []markdown.Node{{Type: "listItem", Content: []markdown.Node{n}}}}
	}
	out := markdown.Convert(markdown.Node{Type: "doc", Content: []markdown.Node{n}}, markdown.Options{})
	if !strings.Contains(out, "bottom") {
		t.Fatalf("deep text lost")
	}
	if len(out) > 64*1024 {
		t.Errorf("2000 nested lists produce %d bytes; nesting beyond the limit should be flattened", len(out))
	}
}

// TestEmphasisIsReadAsEmphasis: whatever surrounds a marked run, a reader sees exactly one element per run and no
// stray delimiters, whether the converter chose Markdown delimiters or the HTML element.
func TestEmphasisIsReadAsEmphasis(t *testing.T) {
	unsafe := goldmark.New(goldmark.WithExtensions(extension.GFM), goldmark.WithRendererOptions(gmhtml.WithUnsafe()))
	txt := func(s string, marks ...string) markdown.Node {
		n := markdown.Node{Type: "text", Text: s}
		for _, m := range marks {
			mk := markdown.Mark{Type: m}
			if m == "link" {
				mk.Attrs = map[string]any{"href": "https://x.test/"}
			}
			n.Marks = append(n.Marks, mk)
		}
		return n
	}
	tests := []struct {
		name  string
		nodes []markdown.Node
		want  map[string]int // element -> count
	}{
		{"quoted bold between letters", []markdown.Node{txt("x"), txt(`"q"`, "strong"), txt("y")}, map[string]int{"strong": 1}},
		{"parenthesised italics between letters", []markdown.Node{txt("x"), txt("(p)", "em"), txt("y")}, map[string]int{"em": 1}},
		{"blank edges", []markdown.Node{txt("a"), txt(" b ", "strong"), txt("c")}, map[string]int{"strong": 1}},
		{"bold italic between letters", []markdown.Node{txt("a"), txt("x", "strong", "em"), txt("b")}, map[string]int{"strong": 1, "em": 1}},
		{"bold then italic", []markdown.Node{txt("a", "strong"), txt("b", "em")}, map[string]int{"strong": 1, "em": 1}},
		{"italic then bold", []markdown.Node{txt("a", "em"), txt("b", "strong")}, map[string]int{"strong": 1, "em": 1}},
		{"struck tildes", []markdown.Node{txt("a"), txt("~t~", "strike"), txt("b")}, map[string]int{"del": 1}},
		{"bold code", []markdown.Node{txt("a"), txt("x", "strong", "code"), txt("b")}, map[string]int{"strong": 1, "code": 1}},
		{"bold link", []markdown.Node{txt("a"), txt("x", "strong", "link"), txt("b")}, map[string]int{"strong": 1, "a": 1}},
		{"every mark", []markdown.Node{txt("a"), txt("x", "strong", "em", "strike", "underline", "link"), txt("b")}, map[string]int{"strong": 1, "em": 1, "del": 1, "ins": 1, "a": 1}},
		{"sentence end", []markdown.Node{txt("a"), txt("end.", "strong"), txt("b")}, map[string]int{"strong": 1}},
		{"emoji", []markdown.Node{txt("a"), txt("🚀", "em"), txt("b")}, map[string]int{"em": 1}},
		{"escaped star inside", []markdown.Node{txt("a"), txt("*x*", "em"), txt("b")}, map[string]int{"em": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := markdown.Convert(markdown.Node{Type: "paragraph", Content: tt.nodes}, markdown.Options{})
			var b bytes.Buffer
			if err := unsafe.Convert([]byte(md), &b); err != nil {
				t.Fatal(err)
			}
			h := b.String()
			for el, n := range tt.want {
				if got := strings.Count(h, "<"+el+">") + strings.Count(h, "<"+el+" "); got != n {
					t.Errorf("%q renders as %q: %d <%s>, want %d", md, h, got, el, n)
				}
			}
			var in strings.Builder
			for _, n := range tt.nodes {
				in.WriteString(n.Text)
			}
			plain := html.UnescapeString(tags.ReplaceAllString(h, ""))
			if strings.Count(plain, "*") != strings.Count(in.String(), "*") || strings.Count(plain, "~") != strings.Count(in.String(), "~") {
				t.Errorf("%q renders as %q: stray delimiters", md, h)
			}
		})
	}
}
