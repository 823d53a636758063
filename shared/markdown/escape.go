package markdown

import (
	"strings"
	"unicode/utf8"
)

// Escaping keeps text text. A backslash before ASCII punctuation always renders that character (CommonMark 2.4),
// so escaping more than strictly needed is harmless; escaping less turns words into markup. Characters that can
// open inline markup anywhere are escaped everywhere; characters that only matter at the start of a line (ATX
// headings, list markers, block quotes, setext underlines) are escaped by escapeLineStart, which runs on every
// line of a rendered paragraph.

// inlineMode says what a line break inside inline content becomes.
type inlineMode int

const (
	modeParagraph inlineMode = iota // backslash hard break
	modeHeading                     // a space: an ATX heading is one line
	modeCell                        // <br>: a GFM table row is one line
)

func (m inlineMode) hardBreak() string {
	switch m {
	case modeHeading:
		return " "
	case modeCell:
		return "<br>"
	}
	return "\\\n"
}

// escapeText escapes s so that it renders as exactly its characters.
func escapeText(s string, mode inlineMode) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r == 0:
			b.WriteRune(utf8.RuneError) // CommonMark replaces NUL with U+FFFD; do it here so output equals rendering
		case r == '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				break // the \n that follows makes the break
			}
			b.WriteString(mode.hardBreak())
		case r == '\n':
			b.WriteString(mode.hardBreak())
		case r == '\\', r == '`', r == '*', r == '_', r == '[', r == ']', r == '<', r == '|', r == '~':
			// '|' splits GFM table cells (and can make a table from two paragraph lines), '~' is GFM strikethrough.
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '#' && mode == modeHeading:
			// A trailing run of '#' closes an ATX heading and would vanish.
			b.WriteString(`\#`)
		case r == '&' && entityAt(s[i:]):
			b.WriteString(`\&`)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// entityAt reports whether s starts with something CommonMark reads as an entity or numeric character reference.
func entityAt(s string) bool {
	if len(s) < 3 || s[0] != '&' {
		return false
	}
	i := 1
	isHex := func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
	isAlnum := func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	if s[i] == '#' {
		i++
		digit := func(c byte) bool { return c >= '0' && c <= '9' }
		if i < len(s) && (s[i] == 'x' || s[i] == 'X') {
			i++
			digit = isHex
		}
		start := i
		for i < len(s) && digit(s[i]) && i-start < 8 {
			i++
		}
		return i > start && i < len(s) && s[i] == ';'
	}
	start := i
	for i < len(s) && isAlnum(s[i]) && i-start < 32 {
		i++
	}
	return i > start && i < len(s) && s[i] == ';'
}

// escapeLineStart escapes a character that would start a block construct at the beginning of a paragraph line,
// and drops leading blanks (four would start an indented code block; blanks at a line start never render).
func escapeLineStart(line string) string {
	line = strings.TrimLeft(line, " \t")
	if line == "" {
		return line
	}
	switch line[0] {
	case '#', '-', '+', '=', '>':
		return `\` + line
	}
	j := 0
	for j < len(line) && j < 10 && line[j] >= '0' && line[j] <= '9' {
		j++
	}
	if j > 0 && j < len(line) && (line[j] == '.' || line[j] == ')') {
		return line[:j] + `\` + line[j:]
	}
	return line
}

// codeSpan renders s as an inline code span whose content is exactly s (newlines become spaces, as CommonMark does).
func codeSpan(s string) string {
	s = normalizeNewlines(s)
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if s == "" {
		return ""
	}
	fence := strings.Repeat("`", longestRun(s, '`')+1)
	// A space on each side is stripped by the parser when both are present, and a backtick next to the fence would
	// merge with it: pad in both cases.
	if s[0] == '`' || s[len(s)-1] == '`' || (s[0] == ' ' && s[len(s)-1] == ' ' && strings.Trim(s, " ") != "") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

func longestRun(s string, c byte) int {
	best, cur := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			cur++
			best = max(best, cur)
		} else {
			cur = 0
		}
	}
	return best
}

func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// linkDestination writes href so that the parser reads back exactly href: blanks and controls percent-encoded,
// brackets and backslashes escaped. An empty destination is written <>.
func linkDestination(href string) string {
	if href == "" {
		return "<>"
	}
	var b strings.Builder
	for i := 0; i < len(href); i++ {
		c := href[i]
		switch {
		case c <= ' ' || c == 0x7f:
			b.WriteString("%" + strings.ToUpper(hex2(c)))
		case c == '(' || c == ')' || c == '\\' || c == '<' || c == '>' || c == '&' && entityAt(href[i:]):
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}

// linkTitle quotes a link title.
func linkTitle(t string) string {
	t = strings.Join(strings.Fields(normalizeNewlines(t)), " ")
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range t {
		if r == '"' || r == '\\' || r == '&' && entityAt(t[i:]) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// escapeHTML escapes text placed inside raw HTML (the <summary> of an expand).
func escapeHTML(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\"", "&quot;", "\n", " ", "\r", " ").Replace(s)
}

// escapeCellPipes makes every unescaped '|' in a table cell an escaped one: GFM splits cells on pipes before any
// inline parsing, even inside code spans and link destinations.
func escapeCellPipes(s string) string {
	if !strings.Contains(s, "|") {
		return s
	}
	var b strings.Builder
	backslashes := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '|' && backslashes%2 == 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
		if c == '\\' {
			backslashes++
		} else {
			backslashes = 0
		}
	}
	return b.String()
}
