package markdown

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Marks are written outermost first in this order; code is always innermost because nothing inside a code span
// is parsed, and the HTML-only marks (underline, sub/superscript) go outside the delimiter ones, whose edges must
// be letters to be read as emphasis (see emphasis). Marks not listed (textColor, backgroundColor, annotation, fontSize, border, dataConsumer, fragment,
// alignment, indentation, breakout and any unknown mark) have no Markdown form: their text is kept, the mark is not.
var markRank = map[string]int{"link": 1, "underline": 2, "subsup": 3, "strike": 4, "strong": 5, "em": 6, "code": 7}

type markKey struct {
	typ, a, b string
}

func keyOf(m Mark) markKey {
	switch m.Type {
	case "link":
		return markKey{"link", str(m.Attrs, "href"), str(m.Attrs, "title")}
	case "subsup":
		if str(m.Attrs, "type") == "sub" {
			return markKey{typ: "subsup", a: "sub"}
		}
		return markKey{typ: "subsup", a: "sup"}
	}
	return markKey{typ: m.Type}
}

// effectiveMarks returns the node's marks that have a Markdown form, one per type.
func effectiveMarks(n Node) []markKey {
	var out []markKey
	seen := map[string]bool{}
	for _, m := range n.Marks {
		if markRank[m.Type] == 0 || seen[m.Type] {
			continue
		}
		seen[m.Type] = true
		out = append(out, keyOf(m))
	}
	return out
}

func hasMark(n Node, k markKey) bool {
	for _, m := range effectiveMarks(n) {
		if m == k {
			return true
		}
	}
	return false
}

// inline renders inline nodes. Adjacent nodes sharing a mark share one delimiter pair ([a **b**](u), not
// [a](u)[**b**](u)), which is what the reader expects and what keeps emphasis delimiters from colliding.
func (r *renderer) inline(nodes []Node, mode inlineMode) string {
	return r.inlineRun(nodes, map[markKey]bool{}, mode)
}

func (r *renderer) inlineRun(nodes []Node, applied map[markKey]bool, mode inlineMode) string {
	var b strings.Builder
	for i := 0; i < len(nodes); {
		pending := pendingMarks(nodes[i], applied)
		if len(pending) == 0 {
			b.WriteString(r.leaf(nodes[i], mode))
			i++
			continue
		}
		// Open the mark whose run is longest (ties: outermost rank); code only when nothing else is pending.
		best, bestEnd := markKey{}, -1
		for _, k := range pending {
			if k.typ == "code" && len(pending) > 1 {
				continue
			}
			j := i + 1
			for j < len(nodes) && hasMark(nodes[j], k) {
				j++
			}
			if j > bestEnd || (j == bestEnd && markRank[k.typ] < markRank[best.typ]) {
				best, bestEnd = k, j
			}
		}
		group := nodes[i:bestEnd]
		if best.typ == "code" {
			b.WriteString(r.codeGroup(group, applied, mode))
		} else {
			inner := map[markKey]bool{best: true}
			for k := range applied {
				inner[k] = true
			}
			b.WriteString(wrap(best, r.inlineRun(group, inner, mode), mode))
		}
		i = bestEnd
	}
	return b.String()
}

func pendingMarks(n Node, applied map[markKey]bool) []markKey {
	var out []markKey
	for _, k := range effectiveMarks(n) {
		if !applied[k] {
			out = append(out, k)
		}
	}
	return out
}

// codeGroup writes consecutive code-marked text as one code span (two adjacent spans would read as one broken one).
func (r *renderer) codeGroup(nodes []Node, applied map[markKey]bool, mode inlineMode) string {
	var b, run strings.Builder
	flush := func() {
		b.WriteString(codeSpan(run.String()))
		run.Reset()
	}
	for _, n := range nodes {
		if n.Type == "text" && len(n.Content) == 0 {
			run.WriteString(n.Text)
			continue
		}
		flush()
		inner := map[markKey]bool{{typ: "code"}: true}
		for k := range applied {
			inner[k] = true
		}
		b.WriteString(r.inlineRun([]Node{n}, inner, mode))
	}
	flush()
	return b.String()
}

// wrap puts delimiters around rendered content. Emphasis delimiters must touch non-blank text to be read as
// emphasis, so blanks at either end move outside them.
func wrap(k markKey, inner string, mode inlineMode) string {
	switch k.typ {
	case "link":
		text := inner
		if strings.TrimSpace(text) == "" {
			text = escapeText(k.a, mode)
		}
		if !safeURL(k.a) {
			return text
		}
		if text == "" {
			return inner
		}
		dest := linkDestination(k.a)
		if k.b != "" {
			dest += " " + linkTitle(k.b)
		}
		return "[" + text + "](" + dest + ")"
	case "underline":
		return around(inner, "<ins>", "</ins>")
	case "subsup":
		return around(inner, "<"+k.a+">", "</"+k.a+">")
	case "strong":
		return emphasis(inner, "**", "strong")
	case "em":
		return emphasis(inner, "*", "em")
	case "strike":
		return emphasis(inner, "~~", "del")
	}
	return inner
}

// emphasis wraps inner in Markdown delimiters when a reader will take them as such whatever surrounds them, else
// in the equivalent HTML element. CommonMark's flanking rules read "**" as opening only when it is followed by a
// non-punctuation character or preceded by a blank or punctuation: x**"q"**y stays literal. Content whose edges
// are not punctuation (after the same delimiter character, which merges into one run) is safe anywhere.
func emphasis(inner, delim, tag string) string {
	_, core, _ := splitEdges(inner)
	if core == "" {
		return inner
	}
	c := delim[:1]
	first, _ := utf8.DecodeRuneInString(strings.TrimLeft(core, c))
	last, _ := utf8.DecodeLastRuneInString(strings.TrimRight(core, c))
	if wordish(first) && wordish(last) {
		return around(inner, delim, delim)
	}
	return around(inner, "<"+tag+">", "</"+tag+">")
}

// wordish: neither blank nor what CommonMark calls punctuation (Unicode P and S categories).
func wordish(r rune) bool {
	return r != utf8.RuneError && !unicode.IsSpace(r) && !unicode.IsPunct(r) && !unicode.IsSymbol(r)
}

func around(inner, open, close string) string {
	lead, core, trail := splitEdges(inner)
	if core == "" {
		return inner
	}
	return lead + open + core + close + trail
}

// splitEdges splits rendered inline content into leading blanks, the core, and trailing blanks and hard breaks:
// delimiters go around the core only, since blanks inside them stop emphasis and a hard break's "\" before a
// closing delimiter would escape it.
func splitEdges(inner string) (lead, core, trail string) {
	core = strings.TrimLeftFunc(inner, unicode.IsSpace)
	lead = inner[:len(inner)-len(core)]
	for {
		core = strings.TrimRightFunc(core, unicode.IsSpace)
		n := len(core) - len(strings.TrimRight(core, "\\"))
		if n%2 == 0 { // no backslash, or escaped ones: text, not a hard break
			break
		}
		core = core[:len(core)-1]
	}
	return lead, core, inner[len(lead)+len(core):]
}

// leaf renders one inline node (and degrades block nodes met in running text to their flattened text).
func (r *renderer) leaf(n Node, mode inlineMode) string {
	if leafTypes[n.Type] && len(n.Content) > 0 {
		bare := n
		bare.Content = nil
		own, rest := r.leaf(bare, mode), r.inlineOrFlat(n.Content, mode)
		if own == "" || rest == "" {
			return own + rest
		}
		return own + " " + rest
	}
	switch n.Type {
	case "text":
		return escapeText(n.Text, mode)
	case "hardBreak":
		return mode.hardBreak()
	case "mention":
		return r.mention(n, mode)
	case "emoji":
		t := str(n.Attrs, "text")
		if strings.TrimSpace(t) == "" {
			t = str(n.Attrs, "shortName")
		}
		return escapeText(t, mode)
	case "date":
		ts := str(n.Attrs, "timestamp")
		if d, ok := formatDate(ts); ok {
			return d
		}
		return escapeText(ts, mode)
	case "status":
		t := strings.TrimSpace(str(n.Attrs, "text"))
		if t == "" {
			return ""
		}
		return `\[` + escapeText(t, mode) + `\]`
	case "inlineCard", "blockCard", "embedCard":
		return card(n, mode)
	case "placeholder":
		return around(escapeText(str(n.Attrs, "text"), mode), "*", "*")
	case "inlineExtension", "extension":
		if t := str(n.Attrs, "text"); strings.TrimSpace(t) != "" {
			return escapeText(t, mode)
		}
		key := str(n.Attrs, "extensionKey")
		if key == "" {
			key = "extension"
		}
		return "*" + escapeText("("+key+")", mode) + "*"
	case "syncBlock":
		return "*" + escapeText("(synced block)", mode) + "*"
	case "mediaInline":
		return r.media(n, true, mode)
	case "media":
		return r.media(n, true, mode)
	}
	// Unknown inline node, or a block node in running text: keep its text.
	var parts []string
	if n.Text != "" {
		parts = append(parts, escapeText(n.Text, mode))
	} else if t := str(n.Attrs, "text"); t != "" && len(n.Content) == 0 {
		parts = append(parts, escapeText(t, mode))
	}
	if len(n.Content) > 0 {
		parts = append(parts, r.inlineOrFlat(n.Content, mode))
	}
	return strings.Join(parts, " ")
}

func (r *renderer) inlineOrFlat(nodes []Node, mode inlineMode) string {
	if allInline(nodes) {
		return r.inline(nodes, mode)
	}
	return r.flatJoin(nodes, 0, mode)
}

func allInline(nodes []Node) bool {
	for _, n := range nodes {
		if !isInline(n) {
			return false
		}
	}
	return true
}

func (r *renderer) mention(n Node, mode inlineMode) string {
	m := Mention{ID: str(n.Attrs, "id"), Text: str(n.Attrs, "text"), UserType: str(n.Attrs, "userType")}
	var name string
	if r.opts.Mention != nil {
		name = r.opts.Mention(m)
	} else {
		name = m.Text
	}
	name = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), "@"))
	if name == "" {
		name = "unknown user"
	}
	return "@" + escapeText(name, mode)
}

// flatJoin renders blocks where only inline content fits (a table cell, running text): each block becomes one
// or more segments joined by the mode's line break.
func (r *renderer) flatJoin(nodes []Node, depth int, mode inlineMode) string {
	return strings.Join(r.flat(nodes, depth, mode), mode.hardBreak())
}

func (r *renderer) flat(nodes []Node, depth int, mode inlineMode) []string {
	var out []string
	add := func(s ...string) {
		for _, x := range s {
			if strings.TrimSpace(x) != "" {
				out = append(out, strings.TrimSpace(x))
			}
		}
	}
	for i := 0; i < len(nodes); {
		n := nodes[i]
		if isInline(n) {
			j := i
			for j < len(nodes) && isInline(nodes[j]) {
				j++
			}
			add(r.inline(nodes[i:j], mode))
			i = j
			continue
		}
		i++
		if leafTypes[n.Type] && len(n.Content) > 0 {
			add(r.leaf(n, mode))
			continue
		}
		if depth > maxDepth {
			var words []string
			collectText(n, &words)
			add(escapeText(strings.Join(words, " "), mode))
			continue
		}
		switch n.Type {
		case "paragraph", "heading", "caption", "decisionItem", "taskItem":
			prefix := ""
			switch n.Type {
			case "taskItem":
				prefix = checkbox(n)
			case "decisionItem":
				prefix = "Decision: "
			}
			add(prefix + r.inline(n.Content, mode))
		case "codeBlock":
			lines := codeBlock(n)
			for _, l := range lines[1 : len(lines)-1] {
				add(codeSpan(l))
			}
		case "bulletList", "orderedList", "taskList", "decisionList":
			num := orderedStart(n)
			for _, it := range n.Content {
				prefix := "• "
				switch {
				case n.Type == "orderedList":
					prefix = strconv.Itoa(num) + ". "
					num++
				case it.Type == "taskItem" || it.Type == "blockTaskItem":
					prefix = checkbox(it)
				case it.Type == "decisionItem":
					prefix = "Decision: "
				}
				var body []string
				switch it.Type {
				case "taskItem", "decisionItem":
					body = []string{r.inline(it.Content, mode)}
				case "listItem", "blockTaskItem":
					body = r.flat(it.Content, depth+1, mode)
				default:
					body = r.flat([]Node{it}, depth+1, mode)
				}
				if len(body) == 0 {
					add(strings.TrimSpace(prefix))
					continue
				}
				body[0] = prefix + body[0]
				add(body...)
			}
		case "rule":
			add("---")
		case "panel":
			body := r.flat(n.Content, depth+1, mode)
			if len(body) > 0 {
				body[0] = panelLabel(n) + " " + body[0]
			}
			add(body...)
		case "expand", "nestedExpand":
			if t := strings.TrimSpace(str(n.Attrs, "title")); t != "" {
				add("**" + escapeText(t, mode) + "**")
			}
			add(r.flat(n.Content, depth+1, mode)...)
		case "mediaSingle", "mediaGroup":
			for _, c := range n.Content {
				if c.Type == "media" {
					add(r.media(c, false, mode))
				} else {
					add(r.flat([]Node{c}, depth+1, mode)...)
				}
			}
		case "media":
			add(r.media(n, false, mode))
		case "table":
			for _, row := range n.Content {
				var cells []string
				for _, c := range wrapRow(row).Content {
					content := c.Content
					if c.Type != "tableCell" && c.Type != "tableHeader" {
						content = []Node{c}
					}
					cells = append(cells, strings.Join(r.flat(content, depth+1, mode), " "))
				}
				add(strings.Join(cells, " / "))
			}
		case "blockCard", "embedCard":
			add(card(n, mode))
		case "extension", "syncBlock":
			add(r.leaf(n, mode))
		default:
			if len(n.Content) > 0 {
				add(r.flat(n.Content, depth+1, mode)...)
			} else {
				add(r.leaf(n, mode))
			}
		}
	}
	return out
}

func panelLabel(n Node) string {
	a := panelAlert(n)
	return "**" + a[:1] + strings.ToLower(a[1:]) + ":**"
}
