package markdown

import (
	"strconv"
	"strings"
	"time"
)

// Media describes one ADF media node (media, mediaInline) for the caller's resolver. ID and Collection identify a
// file in Atlassian's media store (not a Jira attachment id: callers usually match Alt, the file name, against the
// issue's attachments); external media carry URL instead.
type Media struct {
	Type       string // "file", "link", "image" or "external"
	ID         string
	Collection string
	URL        string
	Alt        string
	Inline     bool // mediaInline, or a media node written inside running text
}

// MediaLink is the resolver's answer: where the exported copy is, or why there is none.
type MediaLink struct {
	Href    string // link to the exported attachment (e.g. its S3 key, relative or absolute); empty when not exported
	Name    string // text shown for the link; defaults to Alt
	Image   bool   // render as an image (![name](href))
	Skipped string // reason the attachment was not exported (e.g. "too large"); used when Href is empty
}

// MediaResolver maps a media node to its exported attachment.
type MediaResolver func(Media) MediaLink

// Mention describes one ADF mention node. ID is the mentioned person's account id (or a scrubbed placeholder): it
// is handed to the resolver and never written to the output.
type Mention struct {
	ID       string
	Text     string // attrs.text as stored by the editor, usually "@Display Name" at the time of mentioning
	UserType string
}

// MentionResolver returns the name a mention is shown as (display name or pseudonym, without the "@").
type MentionResolver func(Mention) string

// Options configure a conversion. The zero value is usable: media without a resolver are listed as not exported
// (external media link to their URL) and mentions show the name the editor stored with them.
type Options struct {
	Media   MediaResolver
	Mention MentionResolver
	// HeadingOffset is added to every heading level (clamped to 6), so a document nests under the caller's own
	// headings.
	HeadingOffset int
}

// maxDepth bounds nesting: deeper content is written as plain text paragraphs, so a hostile document cannot make
// the output grow with the square of its depth.
const maxDepth = 48

// maxTableColumns bounds a table's width whatever its colspans say.
const maxTableColumns = 64

// FromADF converts an ADF document (JSON) to Markdown. The result ends with a newline unless it is empty.
func FromADF(raw []byte, opts Options) (string, error) {
	n, err := ParseADF(raw)
	if err != nil {
		return "", err
	}
	return Convert(n, opts), nil
}

// Convert converts a decoded ADF node (usually the doc) to Markdown.
func Convert(n Node, opts Options) string {
	r := &renderer{opts: opts}
	var lines []string
	if n.Type == "doc" || (n.Type == "" && len(n.Content) > 0) {
		lines = r.blocks(n.Content, 0, false)
	} else {
		lines = r.blocks([]Node{n}, 0, false)
	}
	out := strings.Join(lines, "\n")
	out = strings.TrimRight(out, "\n")
	if out == "" {
		return ""
	}
	return strings.ToValidUTF8(out, "\uFFFD") + "\n"
}

type renderer struct {
	opts Options
}

// inlineTypes are ADF's inline nodes; a run of them at block level forms a paragraph.
var inlineTypes = map[string]bool{
	"text": true, "hardBreak": true, "mention": true, "emoji": true, "date": true, "status": true,
	"inlineCard": true, "placeholder": true, "inlineExtension": true, "mediaInline": true,
}

func isInline(n Node) bool {
	if inlineTypes[n.Type] {
		return true
	}
	if knownBlock[n.Type] {
		return false
	}
	// Unknown: text without children reads as inline, anything with children as a container.
	return len(n.Content) == 0
}

var knownBlock = map[string]bool{
	"doc": true, "paragraph": true, "heading": true, "bulletList": true, "orderedList": true, "listItem": true,
	"codeBlock": true, "blockquote": true, "panel": true, "rule": true, "table": true, "tableRow": true,
	"tableCell": true, "tableHeader": true, "mediaSingle": true, "mediaGroup": true, "media": true, "caption": true,
	"blockCard": true, "embedCard": true, "expand": true, "nestedExpand": true, "taskList": true, "taskItem": true,
	"blockTaskItem": true, "decisionList": true, "decisionItem": true, "extension": true, "bodiedExtension": true,
	"layoutSection": true, "layoutColumn": true, "syncBlock": true, "bodiedSyncBlock": true,
}

// listKind is what a rendered block was, so the next sibling list can be kept apart from it.
type listKind int

const (
	notList listKind = iota
	bulletKind
	orderedKind
)

// blocks renders a sequence of block nodes, separated by blank lines. Runs of inline nodes become paragraphs.
// tight joins a paragraph and a list that follows it without a blank line (inside list items, to keep lists tight).
func (r *renderer) blocks(nodes []Node, depth int, tight bool) []string {
	var out []string
	prevKind, prevMarker := notList, byte(0)
	prevPara := false
	for i := 0; i < len(nodes); {
		var lines []string
		kind, marker := notList, byte(0)
		isPara := false
		if isInline(nodes[i]) {
			j := i
			for j < len(nodes) && isInline(nodes[j]) {
				j++
			}
			lines = r.paragraph(nodes[i:j])
			isPara = true
			i = j
		} else {
			n := nodes[i]
			i++
			if k := kindOf(n); k != notList {
				kind = k
				marker = firstMarker(k)
				if k == prevKind && marker == prevMarker {
					marker = otherMarker(k, marker) // CommonMark: a new marker character starts a new list
				}
				lines = r.list(n, depth, marker)
			} else {
				lines = r.block(n, depth)
				isPara = n.Type == "paragraph"
			}
		}
		if len(lines) == 0 {
			continue
		}
		if len(out) > 0 {
			joinTight := tight && prevPara && kind != notList && startsAtOne(nodes, i-1, kind)
			if !joinTight {
				out = append(out, "")
			}
		}
		out = append(out, lines...)
		prevKind, prevMarker, prevPara = kind, marker, isPara
	}
	return out
}

// startsAtOne reports whether the list at nodes[i] may interrupt a paragraph: CommonMark lets only ordered lists
// that start at 1 do so.
func startsAtOne(nodes []Node, i int, kind listKind) bool {
	if kind != orderedKind {
		return true
	}
	return orderedStart(nodes[i]) == 1
}

func kindOf(n Node) listKind {
	switch n.Type {
	case "bulletList", "taskList", "decisionList":
		return bulletKind
	case "orderedList":
		return orderedKind
	}
	return notList
}

func firstMarker(k listKind) byte {
	if k == orderedKind {
		return '.'
	}
	return '-'
}

func otherMarker(k listKind, m byte) byte {
	if k == orderedKind {
		if m == '.' {
			return ')'
		}
		return '.'
	}
	if m == '-' {
		return '*'
	}
	return '-'
}

func orderedStart(n Node) int {
	return intAttr(n.Attrs, "order", 1, 0, 999999999)
}

// block renders one block node (lists excepted: see list).
func (r *renderer) block(n Node, depth int) []string {
	if depth > maxDepth {
		return r.plain(n)
	}
	if leafTypes[n.Type] && len(n.Content) > 0 {
		// Not in the specification, but kept: the node's own rendering, then its content.
		bare := n
		bare.Content = nil
		return joinBlocks(r.block(bare, depth), r.blocks(n.Content, depth+1, false))
	}
	switch n.Type {
	case "paragraph":
		return r.paragraph(n.Content)
	case "heading":
		level := intAttr(n.Attrs, "level", 1, 1, 6) + r.opts.HeadingOffset
		level = min(max(level, 1), 6)
		text := strings.TrimSpace(r.inline(n.Content, modeHeading))
		h := strings.Repeat("#", level)
		if text == "" {
			return []string{h}
		}
		return []string{h + " " + text}
	case "codeBlock":
		return codeBlock(n)
	case "blockquote":
		return quote(r.blocks(n.Content, depth+1, false))
	case "panel":
		return r.panel(n, depth)
	case "rule":
		return []string{"---"}
	case "table":
		return r.table(n, depth)
	case "mediaSingle":
		return r.mediaSingle(n, depth)
	case "mediaGroup":
		var parts []string
		for _, c := range n.Content {
			if c.Type == "media" {
				parts = append(parts, r.media(c, false, modeParagraph))
			} else {
				parts = append(parts, r.flatJoin([]Node{c}, depth+1, modeParagraph))
			}
		}
		return paragraphLines(strings.Join(parts, "\\\n"))
	case "media":
		return paragraphLines(r.media(n, false, modeParagraph))
	case "caption":
		return r.paragraph(n.Content)
	case "blockCard", "embedCard":
		return paragraphLines(card(n, modeParagraph))
	case "expand", "nestedExpand":
		return r.expand(n, depth)
	case "extension", "syncBlock":
		return paragraphLines(r.leaf(n, modeParagraph))
	case "bodiedExtension", "bodiedSyncBlock", "layoutSection", "layoutColumn", "doc":
		return r.blocks(n.Content, depth+1, false)
	case "listItem", "taskItem", "blockTaskItem", "decisionItem":
		// An item outside its list: render it as a one-item list so it keeps its marker and state.
		return r.list(Node{Type: parentListOf(n.Type), Content: []Node{n}}, depth, firstMarker(kindOf(Node{Type: parentListOf(n.Type)})))
	case "tableRow", "tableCell", "tableHeader":
		return r.table(Node{Type: "table", Content: []Node{wrapRow(n)}}, depth)
	}
	// Unknown block: keep its children, or its text.
	if len(n.Content) > 0 {
		return r.blocks(n.Content, depth+1, false)
	}
	return paragraphLines(r.leaf(n, modeParagraph))
}

// leafTypes are the nodes the specification gives no content. Content found on one anyway is rendered after it.
var leafTypes = map[string]bool{
	"text": true, "hardBreak": true, "mention": true, "emoji": true, "date": true, "status": true,
	"inlineCard": true, "blockCard": true, "embedCard": true, "placeholder": true, "inlineExtension": true,
	"extension": true, "syncBlock": true, "rule": true, "media": true, "mediaInline": true,
}

func joinBlocks(a, b []string) []string {
	switch {
	case len(a) == 0:
		return b
	case len(b) == 0:
		return a
	}
	return append(append(a, ""), b...)
}

func parentListOf(item string) string {
	switch item {
	case "taskItem", "blockTaskItem":
		return "taskList"
	case "decisionItem":
		return "decisionList"
	}
	return "bulletList"
}

func wrapRow(n Node) Node {
	if n.Type == "tableRow" {
		return n
	}
	return Node{Type: "tableRow", Content: []Node{n}}
}

// plain writes everything below n as text paragraphs: used beyond maxDepth.
func (r *renderer) plain(n Node) []string {
	var words []string
	collectText(n, &words)
	if len(words) == 0 {
		return nil
	}
	return paragraphLines(escapeText(strings.Join(words, " "), modeParagraph))
}

func collectText(n Node, out *[]string) {
	if n.Text != "" {
		*out = append(*out, n.Text)
	}
	for _, c := range n.Content {
		collectText(c, out)
	}
}

// paragraph renders inline nodes as one paragraph.
func (r *renderer) paragraph(nodes []Node) []string {
	return paragraphLines(r.inline(nodes, modeParagraph))
}

// paragraphLines splits rendered inline content into lines, escaping line starts; a trailing hard break (which
// CommonMark would show as a backslash) is dropped.
func paragraphLines(s string) []string {
	for {
		t := strings.TrimRight(s, " \t")
		if strings.HasSuffix(t, "\\\n") && !strings.HasSuffix(t, "\\\\\n") {
			s = strings.TrimSuffix(t, "\\\n")
			continue
		}
		s = t
		break
	}
	if strings.TrimSpace(s) == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	out := lines[:0]
	for _, l := range lines {
		// A blank line would end the paragraph; it can only hold blanks, which never render at a line start.
		if l = escapeLineStart(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func codeBlock(n Node) []string {
	var b strings.Builder
	var collect func(ns []Node)
	collect = func(ns []Node) {
		for _, c := range ns {
			b.WriteString(c.Text)
			if c.Type == "hardBreak" {
				b.WriteByte('\n')
			}
			collect(c.Content)
		}
	}
	collect(n.Content)
	code := strings.ReplaceAll(normalizeNewlines(b.String()), "\x00", "\uFFFD")
	fence := strings.Repeat("`", max(3, longestRun(code, '`')+1))
	lang := codeLanguage(str(n.Attrs, "language"))
	out := []string{fence + lang}
	if code != "" {
		lines := strings.Split(strings.TrimSuffix(code, "\n"), "\n")
		out = append(out, lines...)
	}
	return append(out, fence)
}

// codeLanguage makes attrs.language a valid info string: one word, no backticks.
func codeLanguage(lang string) string {
	f := strings.Fields(strings.ReplaceAll(lang, "`", ""))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func quote(lines []string) []string {
	if len(lines) == 0 {
		return nil
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if l == "" {
			out[i] = ">"
		} else {
			out[i] = "> " + l
		}
	}
	return out
}

// panelAlerts maps ADF panel types to GitHub's alert blockquotes, the closest Markdown has.
var panelAlerts = map[string]string{
	"info": "NOTE", "note": "NOTE", "tip": "TIP", "success": "TIP", "warning": "WARNING", "error": "CAUTION",
	"custom": "NOTE",
}

func panelAlert(n Node) string {
	if a, ok := panelAlerts[str(n.Attrs, "panelType")]; ok {
		return a
	}
	return "NOTE"
}

func (r *renderer) panel(n Node, depth int) []string {
	body := r.blocks(n.Content, depth+1, false)
	return quote(append([]string{"[!" + panelAlert(n) + "]"}, body...))
}

func (r *renderer) expand(n Node, depth int) []string {
	open := "<details>"
	if t := strings.TrimSpace(str(n.Attrs, "title")); t != "" {
		open += "<summary>" + escapeHTML(t) + "</summary>"
	}
	body := r.blocks(n.Content, depth+1, false)
	out := []string{open}
	if len(body) > 0 {
		out = append(out, "")
		out = append(out, body...)
	}
	return append(out, "", "</details>")
}

// list renders bulletList, orderedList, taskList and decisionList.
func (r *renderer) list(n Node, depth int, marker byte) []string {
	if depth > maxDepth {
		return r.plain(n)
	}
	ordered := n.Type == "orderedList"
	num := orderedStart(n)
	var out []string
	var pending []string // a leading nested taskList with no item to hang from
	items := n.Content
	for idx := 0; idx < len(items); idx++ {
		it := items[idx]
		var content []string
		prefix := ""
		switch {
		case n.Type == "taskList" && it.Type == "taskList":
			// ADF nests task lists directly in task lists; Markdown nests a list in the item before it.
			nested := r.list(it, depth+1, '-')
			if len(out) == 0 {
				pending = append(pending, nested...)
				continue
			}
			out = append(blankAfterHTML(out), indent(nested, len(lastMarker(out)))...)
			continue
		case it.Type == "taskItem":
			prefix = checkbox(it)
			content = r.paragraph(it.Content)
		case it.Type == "blockTaskItem":
			prefix = checkbox(it)
			content = r.blocks(it.Content, depth+1, true)
		case it.Type == "decisionItem":
			prefix = "**Decision:** "
			if s := str(it.Attrs, "state"); s != "" && s != "DECIDED" {
				prefix = "**Decision (" + escapeText(strings.ToLower(s), modeParagraph) + "):** "
			}
			content = r.paragraph(it.Content)
		case it.Type == "listItem":
			content = r.blocks(it.Content, depth+1, true)
		default:
			content = r.blocks([]Node{it}, depth+1, true)
		}
		if prefix != "" {
			switch {
			case len(content) == 0:
				content = []string{strings.TrimRight(prefix, " ")}
			case startsParagraph(it):
				content[0] = prefix + content[0]
			default:
				// The checkbox or label must open a paragraph; before a list or code fence it would swallow it.
				content = append([]string{strings.TrimRight(prefix, " "), ""}, content...)
			}
		}
		m := string(marker)
		if ordered {
			m = strconv.Itoa(num) + string(marker)
			num++
		}
		if len(out) == 0 && len(pending) > 0 {
			// Hang the leading nested list from an empty item so it stays nested.
			out = append(out, m+" "+emptyItem)
			out = append(out, indent(pending, len(m)+1)...)
			pending = nil
			if ordered {
				m = strconv.Itoa(num) + string(marker)
				num++
			}
		}
		out = append(blankAfterHTML(out), item(m, content)...)
	}
	if len(pending) > 0 {
		out = append(out, string(marker)+" "+emptyItem)
		out = append(out, indent(pending, 2)...)
	}
	return out
}

// startsParagraph reports whether an item's rendering begins with paragraph text.
func startsParagraph(it Node) bool {
	switch it.Type {
	case "taskItem", "decisionItem":
		return true
	}
	return len(it.Content) == 0 || isInline(it.Content[0]) || it.Content[0].Type == "paragraph"
}

// blankAfterHTML ends an HTML block (an expand's closing </details>) with a blank line before more list content:
// CommonMark's HTML block runs on to the next blank line and would swallow the next item.
func blankAfterHTML(out []string) []string {
	if len(out) > 0 && strings.HasSuffix(out[len(out)-1], "</details>") {
		return append(out, "")
	}
	return out
}

func checkbox(it Node) string {
	if str(it.Attrs, "state") == "DONE" {
		return "[x] "
	}
	return "[ ] "
}

// lastMarker returns the marker of the last item written ("- ", "12. "): nested content is indented by its width.
func lastMarker(out []string) string {
	for i := len(out) - 1; i >= 0; i-- {
		l := out[i]
		if l == "" || l[0] == ' ' {
			continue
		}
		if sp := strings.IndexByte(l, ' '); sp > 0 {
			return l[:sp+1]
		}
		return l + " "
	}
	return "- "
}

// emptyItem fills an item that has no content. CommonMark allows a bare marker, but readers disagree about what
// belongs to an empty item once a blank line follows (goldmark takes the next paragraph into it, or makes it a code
// block); an HTML comment makes the item non-empty and renders as nothing.
const emptyItem = "<!-- -->"

func item(marker string, content []string) []string {
	if len(content) == 0 {
		return []string{marker + " " + emptyItem}
	}
	out := make([]string, 0, len(content))
	out = append(out, marker+" "+content[0])
	return append(out, indent(content[1:], len(marker)+1)...)
}

func indent(lines []string, n int) []string {
	pad := strings.Repeat(" ", n)
	out := make([]string, len(lines))
	for i, l := range lines {
		if l != "" {
			out[i] = pad + l
		}
	}
	return out
}

func (r *renderer) mediaSingle(n Node, depth int) []string {
	var parts, caption []string
	for _, c := range n.Content {
		switch c.Type {
		case "media":
			if c.Marks == nil {
				c.Marks = n.Marks // a link on the mediaSingle applies to its media
			}
			parts = append(parts, r.media(c, false, modeParagraph))
		case "caption":
			caption = r.paragraph(c.Content)
		default:
			parts = append(parts, r.flatJoin([]Node{c}, depth+1, modeParagraph))
		}
	}
	out := paragraphLines(strings.Join(parts, "\\\n"))
	if len(caption) > 0 {
		if len(out) > 0 {
			out = append(out, "")
		}
		out = append(out, caption...)
	}
	return out
}

// media renders one media node as a link to the exported attachment, or as a note saying why there is none.
func (r *renderer) media(n Node, inline bool, mode inlineMode) string {
	md := r.mediaLink(n, inline, mode)
	if len(n.Content) > 0 {
		md += " " + r.inlineOrFlat(n.Content, mode)
	}
	for _, mk := range n.Marks {
		href := str(mk.Attrs, "href")
		if mk.Type != "link" || href == "" || !safeURL(href) {
			continue
		}
		if strings.HasPrefix(md, "![") {
			return "[" + md + "](" + linkDestination(href) + ")"
		}
		return md + " (" + autolink(href, mode) + ")"
	}
	return md
}

func (r *renderer) mediaLink(n Node, inline bool, mode inlineMode) string {
	m := Media{
		Type: str(n.Attrs, "type"), ID: str(n.Attrs, "id"), Collection: str(n.Attrs, "collection"),
		URL: str(n.Attrs, "url"), Alt: str(n.Attrs, "alt"), Inline: inline,
	}
	var link MediaLink
	if r.opts.Media != nil {
		link = r.opts.Media(m)
	}
	if link.Href == "" && link.Skipped == "" && m.Type == "external" && m.URL != "" && safeURL(m.URL) {
		link = MediaLink{Href: m.URL, Image: true}
	}
	name := link.Name
	if name == "" {
		name = m.Alt
	}
	if link.Href != "" {
		text := escapeText(name, mode)
		if text == "" {
			text = "attachment"
		}
		md := "[" + text + "](" + linkDestination(link.Href) + ")"
		if link.Image {
			md = "!" + md
		}
		return md
	}
	reason := link.Skipped
	if reason == "" {
		reason = "not exported"
	}
	label := "attachment"
	if name != "" {
		label = "attachment " + name
	}
	return "*" + escapeText("("+label+": "+reason+")", mode) + "*"
}

// card renders inlineCard, blockCard and embedCard as links.
func card(n Node, mode inlineMode) string {
	url := str(n.Attrs, "url")
	name := ""
	if data, ok := n.Attrs["data"].(map[string]any); ok {
		if url == "" {
			url = str(data, "url")
		}
		name = str(data, "name")
	}
	if !safeURL(url) {
		return escapeText(strings.TrimSpace(name+" "+url), mode)
	}
	switch {
	case url != "" && name != "":
		return "[" + escapeText(name, mode) + "](" + linkDestination(url) + ")"
	case url != "":
		return autolink(url, mode)
	case name != "":
		return escapeText(name, mode)
	}
	if _, ok := n.Attrs["datasource"]; ok {
		return "*" + escapeText("(Jira data source view)", mode) + "*"
	}
	return "*" + escapeText("(link)", mode) + "*"
}

// autolink writes a URL as <url> when CommonMark reads that back as the same URL, else as [url](url).
func autolink(url string, mode inlineMode) string {
	if isAutolinkable(url) {
		return "<" + url + ">"
	}
	return "[" + escapeText(url, mode) + "](" + linkDestination(url) + ")"
}

// isAutolinkable follows CommonMark's URI autolink: a scheme of 2 to 32 characters, a colon, then no blanks,
// controls or angle brackets. A backslash is refused too: inside an autolink it is not an escape, which a reader
// could misread.
func isAutolinkable(u string) bool {
	colon := strings.IndexByte(u, ':')
	if colon < 2 || colon > 32 {
		return false
	}
	for i := 0; i < colon; i++ {
		c := u[i]
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		later := i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '.' || c == '-') // RFC 3986: not first
		if !alpha && !later {
			return false
		}
	}
	for i := colon + 1; i < len(u); i++ {
		if c := u[i]; c <= ' ' || c == '<' || c == '>' || c == 0x7f || c == '\\' || c == '|' || c == '&' && entityAt(u[i:]) {
			return false
		}
	}
	return true
}

// formatDate turns a date node's epoch-millisecond timestamp into an ISO 8601 calendar date (UTC, as the editor
// stores midnight UTC).
func formatDate(ts string) (string, bool) {
	ms, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(strings.TrimSpace(ts), 64)
		if ferr != nil || f != f || f > 1e15 || f < -1e15 {
			return "", false
		}
		ms = int64(f)
	}
	// Years 0..9999 only: beyond them ISO 8601 needs a sign the reader will not expect.
	if ms < -62135596800000 || ms > 253402300799999 {
		return "", false
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02"), true
}

// safeURL refuses the schemes that run code or smuggle content where a reader renders the Markdown as HTML
// (javascript:, vbscript:, data:, file:). Such a link keeps its text and loses its target. Browsers ignore tabs and
// newlines inside a scheme, so they are ignored here too.
func safeURL(u string) bool {
	u = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, strings.TrimLeft(u, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f \t\n\r"))
	colon := strings.IndexByte(u, ':')
	if colon < 0 || strings.ContainsAny(u[:colon], "/?#") {
		return true // relative
	}
	switch strings.ToLower(u[:colon]) {
	case "javascript", "vbscript", "data", "file":
		return false
	}
	return true
}
