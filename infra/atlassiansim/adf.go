package atlassiansim

import (
	"encoding/binary"
	"fmt"
	"html"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Atlassian Document Format, as Jira's editor writes it
// (https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/). Every document generated here
// validates against @atlaskit/adf-schema's json-schema/v1/full.json (TestADFCorpusValidates), and the corpus of a
// site uses every node and mark that Jira's issue editor produces (adfEditorNodes / adfEditorMarks).

// adfEditorNodes and adfEditorMarks are the ADF node and mark types Jira's issue editor produces. The rest of
// full.json is Confluence's or the platform's (extensions, sync blocks, layouts, placeholders, annotations,
// breakout, font sizes, data consumers, fragments, block task items) and never appears in a Jira field.
var (
	adfEditorNodes = []string{"doc", "paragraph", "text", "heading", "bulletList", "orderedList", "listItem", "codeBlock",
		"blockquote", "panel", "rule", "table", "tableRow", "tableHeader", "tableCell", "mediaSingle", "mediaGroup", "media",
		"mediaInline", "caption", "mention", "emoji", "hardBreak", "inlineCard", "blockCard", "embedCard", "status", "date",
		"expand", "nestedExpand", "taskList", "taskItem", "decisionList", "decisionItem"}
	adfEditorMarks = []string{"strong", "em", "code", "strike", "underline", "link", "subsup", "textColor",
		"backgroundColor", "alignment", "indentation", "border"}
)

type adfNode = map[string]any

func adfText1(s string, marks ...adfNode) adfNode {
	n := adfNode{"type": "text", "text": s}
	if len(marks) > 0 {
		ms := make([]any, len(marks))
		for i, m := range marks {
			ms[i] = m
		}
		n["marks"] = ms
	}
	return n
}

func adfPara(children ...any) adfNode { return adfNode{"type": "paragraph", "content": children} }

func adfMark(kind string, attrs adfNode) adfNode {
	if attrs == nil {
		return adfNode{"type": kind}
	}
	return adfNode{"type": kind, "attrs": attrs}
}

// mediaFileID is the media-platform file id (a UUID) of an attachment; the media URL and ADF media nodes use it.
func (st *site) mediaFileID(attID int64) string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], splitmix(st.seed^uint64(attID)*0x100000001b3))
	binary.LittleEndian.PutUint64(b[8:], splitmix(st.seed^uint64(attID)*0x100000001b3^0xa5a5))
	return formatUUID(b)
}

// genDoc builds an ADF document for issue n. Every body has text with marks, a link and (when mention) a
// mention; rich bodies add every other node and mark Jira's editor produces.
func (st *site) genDoc(r *rand.Rand, n int32, rich, mention bool) adfNode {
	localID := func() string { return newUUID(r) }
	first := []any{adfText1(sentence(r, 5) + " "), adfText1("important", adfMark("strong", nil)), adfText1(", see "),
		adfText1("the runbook", adfMark("link", adfNode{"href": "https://example.com/runbook/" + pick(r, words)}))}
	if mention {
		who := st.d.userByID[pick(r, st.people)]
		first = append(first, adfText1(" and ask "),
			adfNode{"type": "mention", "attrs": adfNode{"id": who.AccountID, "text": "@" + who.DisplayName, "accessLevel": ""}})
	}
	first = append(first, adfText1("."))
	content := []any{adfPara(first...)}
	if !rich {
		return adfNode{"type": "doc", "version": 1, "content": content}
	}
	// A file of this issue when it has attachments (an image pasted into the description), else one that was
	// removed since: both happen on real sites.
	fileID := newUUID(r)
	if st.skels[n].flags&flagAttachments != 0 {
		fileID = st.mediaFileID(attachmentID(n, 0))
	}
	media := func(marks ...adfNode) adfNode {
		m := adfNode{"type": "media", "attrs": adfNode{"type": "file", "id": fileID, "collection": "", "width": 640, "height": 480}}
		if len(marks) > 0 {
			ms := make([]any, len(marks))
			for i, x := range marks {
				ms[i] = x
			}
			m["marks"] = ms
		}
		return m
	}
	cell := func(kind, s string) adfNode {
		return adfNode{"type": kind, "attrs": adfNode{}, "content": []any{adfPara(adfText1(s))}}
	}
	item := func(children ...any) adfNode { return adfNode{"type": "listItem", "content": children} }
	due := time.UnixMilli(st.skels[n].created).UTC().Add(14 * 24 * time.Hour).Truncate(24 * time.Hour)
	who := st.d.userByID[pick(r, st.people)]
	content = append(content,
		adfNode{"type": "heading", "attrs": adfNode{"level": 2}, "content": []any{adfText1("Details")}},
		adfNode{"type": "paragraph", "marks": []any{adfMark("alignment", adfNode{"align": "center"})}, "content": []any{
			adfText1("em", adfMark("em", nil)), adfText1(" "), adfText1("struck", adfMark("strike", nil)), adfText1(" "),
			adfText1("underlined", adfMark("underline", nil)), adfText1(" H"), adfText1("2", adfMark("subsup", adfNode{"type": "sub"})),
			adfText1("O x"), adfText1("2", adfMark("subsup", adfNode{"type": "sup"})), adfText1(" "),
			adfText1("red", adfMark("textColor", adfNode{"color": "#ff5630"})), adfText1(" "),
			adfText1("highlighted", adfMark("backgroundColor", adfNode{"color": "#fedec8"})), adfText1(" "),
			adfText1("snake_case*chars*", adfMark("code", nil))}},
		adfNode{"type": "paragraph", "marks": []any{adfMark("indentation", adfNode{"level": 1})}, "content": []any{
			adfText1("Due "), adfNode{"type": "date", "attrs": adfNode{"timestamp": strconv.FormatInt(due.UnixMilli(), 10)}},
			adfText1(" status "), adfNode{"type": "status", "attrs": adfNode{"text": "IN PROGRESS", "color": "blue", "localId": localID()}},
			adfText1(" "), adfNode{"type": "emoji", "attrs": adfNode{"shortName": ":thumbsup:", "id": "1f44d", "text": "👍"}},
			adfNode{"type": "hardBreak"},
			adfNode{"type": "inlineCard", "attrs": adfNode{"url": "https://example.com/browse/" + pick(r, words)}},
			adfText1(" file "), adfNode{"type": "mediaInline", "attrs": adfNode{"type": "file", "id": fileID, "collection": ""}}}},
		adfNode{"type": "bulletList", "content": []any{
			item(adfPara(adfText1(sentence(r, 3)))),
			item(adfPara(adfText1(sentence(r, 3), adfMark("code", nil))),
				adfNode{"type": "bulletList", "content": []any{item(adfPara(adfText1("nested " + pick(r, words))))}}),
		}},
		adfNode{"type": "orderedList", "attrs": adfNode{"order": 3}, "content": []any{
			item(adfPara(adfText1("third " + pick(r, words)))), item(adfPara(adfText1("fourth " + pick(r, words)))),
		}},
		adfNode{"type": "codeBlock", "attrs": adfNode{"language": pick(r, []string{"go", "python", "sql", "javascript"})},
			"content": []any{adfText1("func main() {\n\tfmt.Println(\"" + pick(r, words) + "\")\n}")}},
		adfNode{"type": "blockquote", "content": []any{adfPara(adfText1("Quoted: " + sentence(r, 4)))}},
		adfNode{"type": "panel", "attrs": adfNode{"panelType": pick(r, []string{"info", "note", "warning", "success", "error"})},
			"content": []any{adfPara(adfText1(sentence(r, 6)))}},
		adfNode{"type": "rule"},
		adfNode{"type": "table", "attrs": adfNode{"isNumberColumnEnabled": false, "layout": "default", "localId": localID()},
			"content": []any{
				adfNode{"type": "tableRow", "content": []any{cell("tableHeader", "Field"), cell("tableHeader", "Value")}},
				adfNode{"type": "tableRow", "content": []any{cell("tableCell", pick(r, words)), cell("tableCell", fmt.Sprint(r.IntN(1000)))}},
				adfNode{"type": "tableRow", "content": []any{
					adfNode{"type": "tableCell", "attrs": adfNode{"colspan": 2}, "content": []any{
						adfNode{"type": "nestedExpand", "attrs": adfNode{"title": "More"}, "content": []any{adfPara(adfText1(sentence(r, 4)))}}}}}},
			}},
		adfNode{"type": "taskList", "attrs": adfNode{"localId": localID()}, "content": []any{
			adfNode{"type": "taskItem", "attrs": adfNode{"localId": localID(), "state": "DONE"}, "content": []any{adfText1("Reproduce")}},
			adfNode{"type": "taskItem", "attrs": adfNode{"localId": localID(), "state": "TODO"}, "content": []any{
				adfText1("Ask "), adfNode{"type": "mention", "attrs": adfNode{"id": who.AccountID, "text": "@" + who.DisplayName, "accessLevel": ""}}}},
		}},
		adfNode{"type": "decisionList", "attrs": adfNode{"localId": localID()}, "content": []any{
			adfNode{"type": "decisionItem", "attrs": adfNode{"localId": localID(), "state": "DECIDED"}, "content": []any{adfText1("Ship it behind a flag")}},
		}},
		adfNode{"type": "expand", "attrs": adfNode{"title": "Logs"}, "content": []any{
			adfNode{"type": "codeBlock", "attrs": adfNode{"language": "text"}, "content": []any{adfText1("ERROR " + sentence(r, 3))}}}},
		adfNode{"type": "mediaSingle", "attrs": adfNode{"layout": "center", "width": 66.67, "widthType": "percentage"}, "content": []any{
			media(adfMark("border", adfNode{"size": 2, "color": "#091e4224"})),
			adfNode{"type": "caption", "content": []any{adfText1("Screenshot")}}}},
		adfNode{"type": "mediaGroup", "content": []any{media()}},
		adfNode{"type": "blockCard", "attrs": adfNode{"url": "https://example.com/wiki/" + pick(r, words)}},
		adfNode{"type": "embedCard", "attrs": adfNode{"url": "https://example.com/embed/" + pick(r, words), "layout": "center"}},
	)
	return adfNode{"type": "doc", "version": 1, "content": content}
}

// adfText flattens an ADF document to the plain text that JQL text search matches.
func adfText(doc map[string]any) string {
	if doc == nil {
		return ""
	}
	var b strings.Builder
	var walk func(n any)
	walk = func(n any) {
		m, ok := n.(map[string]any)
		if !ok {
			return
		}
		switch m["type"] {
		case "text":
			s, _ := m["text"].(string)
			b.WriteString(s)
		case "mention", "status", "emoji":
			if a, ok := m["attrs"].(map[string]any); ok {
				s, _ := a["text"].(string)
				b.WriteString(s)
			}
		case "hardBreak":
			b.WriteString("\n")
		}
		if c, ok := m["content"].([]any); ok {
			for _, ch := range c {
				walk(ch)
			}
			switch m["type"] {
			case "paragraph", "heading", "codeBlock", "taskItem", "decisionItem":
				b.WriteString("\n")
			}
		}
	}
	walk(doc)
	return b.String()
}

// adfHTML renders ADF to HTML the way Jira's renderedFields do (paragraphs, lists, tables, code, panels), closely
// enough that a client can tell structure from text. Every text is escaped.
func adfHTML(doc map[string]any) string {
	if doc == nil {
		return ""
	}
	var b strings.Builder
	var walk func(n any)
	children := func(m map[string]any) {
		if c, ok := m["content"].([]any); ok {
			for _, ch := range c {
				walk(ch)
			}
		}
	}
	wrap := func(open, close string, m map[string]any) {
		b.WriteString(open)
		children(m)
		b.WriteString(close)
	}
	walk = func(n any) {
		m, ok := n.(map[string]any)
		if !ok {
			return
		}
		attrs, _ := m["attrs"].(map[string]any)
		str := func(k string) string { s, _ := attrs[k].(string); return html.EscapeString(s) }
		switch m["type"] {
		case "doc":
			children(m)
		case "paragraph", "caption":
			wrap("<p>", "</p>", m)
		case "heading":
			lvl := 1
			if f, ok := attrs["level"].(int); ok {
				lvl = f
			} else if f, ok := attrs["level"].(float64); ok {
				lvl = int(f)
			}
			wrap(fmt.Sprintf("<h%d>", lvl), fmt.Sprintf("</h%d>", lvl), m)
		case "bulletList":
			wrap("<ul>", "</ul>", m)
		case "orderedList":
			wrap("<ol>", "</ol>", m)
		case "listItem":
			wrap("<li>", "</li>", m)
		case "taskList", "decisionList":
			wrap(`<ul class="`+m["type"].(string)+`">`, "</ul>", m)
		case "taskItem", "decisionItem":
			wrap(`<li data-state="`+str("state")+`">`, "</li>", m)
		case "codeBlock":
			wrap(`<div class="code panel"><div class="codeContent panelContent"><pre class="code-`+str("language")+`">`, "</pre></div></div>", m)
		case "blockquote":
			wrap("<blockquote>", "</blockquote>", m)
		case "panel":
			wrap(`<div class="panel" data-panel-type="`+str("panelType")+`"><div class="panelContent">`, "</div></div>", m)
		case "expand", "nestedExpand":
			wrap(`<details><summary>`+str("title")+`</summary>`, "</details>", m)
		case "rule":
			b.WriteString("<hr />")
		case "table":
			wrap(`<div class="table-wrap"><table class="confluenceTable"><tbody>`, "</tbody></table></div>", m)
		case "tableRow":
			wrap("<tr>", "</tr>", m)
		case "tableHeader":
			wrap(`<th class="confluenceTh">`, "</th>", m)
		case "tableCell":
			wrap(`<td class="confluenceTd">`, "</td>", m)
		case "mediaSingle", "mediaGroup":
			children(m)
		case "media", "mediaInline":
			b.WriteString(`<span class="image-wrap" data-media-id="` + str("id") + `"></span>`)
		case "mention":
			b.WriteString(`<a class="user-hover" rel="` + str("id") + `">` + str("text") + `</a>`)
		case "emoji":
			b.WriteString(str("text"))
		case "hardBreak":
			b.WriteString("<br/>")
		case "inlineCard", "blockCard", "embedCard":
			b.WriteString(`<a href="` + str("url") + `" class="external-link" rel="nofollow noreferrer">` + str("url") + `</a>`)
		case "status":
			b.WriteString(`<span class="aui-lozenge">` + str("text") + `</span>`)
		case "date":
			if ms, err := strconv.ParseInt(str("timestamp"), 10, 64); err == nil {
				b.WriteString(`<time datetime="` + time.UnixMilli(ms).UTC().Format("2006-01-02") + `">` + time.UnixMilli(ms).UTC().Format("02/Jan/06") + `</time>`)
			}
		case "text":
			s, _ := m["text"].(string)
			out := html.EscapeString(s)
			marks, _ := m["marks"].([]any)
			for _, mk := range marks {
				mm, _ := mk.(map[string]any)
				ma, _ := mm["attrs"].(map[string]any)
				switch mm["type"] {
				case "strong":
					out = "<b>" + out + "</b>"
				case "em":
					out = "<em>" + out + "</em>"
				case "code":
					out = "<tt>" + out + "</tt>"
				case "strike":
					out = "<del>" + out + "</del>"
				case "underline":
					out = "<ins>" + out + "</ins>"
				case "subsup":
					if ma["type"] == "sub" {
						out = "<sub>" + out + "</sub>"
					} else {
						out = "<sup>" + out + "</sup>"
					}
				case "textColor":
					c, _ := ma["color"].(string)
					out = `<font color="` + html.EscapeString(c) + `">` + out + "</font>"
				case "link":
					h, _ := ma["href"].(string)
					out = `<a href="` + html.EscapeString(h) + `" class="external-link" rel="nofollow noreferrer">` + out + "</a>"
				}
			}
			b.WriteString(out)
		default:
			children(m)
		}
	}
	walk(doc)
	return b.String()
}

// renderedDate is how renderedFields show dates and times: the site's display format in the user's zone.
func renderedDate(t time.Time, loc *time.Location, withTime bool) string {
	if withTime {
		return t.In(loc).Format("02/Jan/06 3:04 PM")
	}
	return t.Format("02/Jan/06")
}
