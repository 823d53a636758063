package jql

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokenKind int

const (
	tokEOF    tokenKind = iota
	tokWord             // unquoted word; may be a keyword or a number
	tokString           // quoted string, already unescaped
	tokLParen
	tokRParen
	tokComma
	tokLBracket
	tokRBracket
	tokOp   // = != < > <= >= ~ !~
	tokBang // !
	tokAnd  // & or &&
	tokOr   // | or ||
)

type token struct {
	kind tokenKind
	text string // unescaped text (for tokString the content without quotes)
	raw  string // source text, used in "but got 'x'" messages for symbols
	line int
	col  int
	num  bool // tokWord that is a valid int64 literal
}

// display is how Jira quotes the token in "but got 'x'" messages: the unescaped text.
func (t token) display() string {
	switch t.kind {
	case tokWord, tokString:
		return t.text
	default:
		return t.raw
	}
}

// keyword reports whether the token is the unquoted keyword kw (lower case).
func (t token) keyword(kw string) bool {
	return t.kind == tokWord && strings.EqualFold(t.text, kw)
}

// jqlKeywords cannot be used unquoted as field names or values.
var jqlKeywords = map[string]bool{
	"and": true, "or": true, "not": true, "empty": true, "null": true,
	"in": true, "is": true, "order": true, "by": true, "asc": true, "desc": true,
}

func isKeyword(s string) bool { return jqlKeywords[strings.ToLower(s)] }

// reservedWords is Jira's list (JqlStringSupportImpl minus the words JQL itself uses): using one unquoted is a syntax error.
var reservedWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`abort access add alias all alter any as audit avg begin between boolean break byte
		catch char character check checkpoint collate collation column commit connect continue count create current
		date decimal declare decrement default defaults define delete delimiter difference distinct divide do double
		drop else encoding end equals escape exclusive exec execute exists explain false fetch file field first float
		for function go goto grant greater group having identified if immediate increment index initial inner inout
		input insert int integer intersect intersection into isempty isnull join last left less like limit lock long
		max min minus mode modify modulo more multiply next noaudit notin nowait number object of option outer output
		power previous prior privileges public raise raw remainder rename resource return returns revoke right row
		rowid rownum rows select session set share size sqrt start strict string subtract sum synonym table then trans
		transaction trigger true uid union unique update user validate values view when whenever where while with`) {
		m[w] = true
	}
	return m
}()

func isReservedWord(s string) bool { return reservedWords[strings.ToLower(s)] }

// reservedChars must be quoted or escaped; Jira rejects them anywhere outside a string.
const reservedChars = "{}*/%+^$#@?;"

// specialChars end an unquoted word.
const specialChars = "()[],=!<>~&|\"'"

const validEscapes = `The valid escape sequences are \', \", \t, \n, \r, \\, '\ ' and \uXXXX.`

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f'
}

// isIllegalChar reports characters Jira insists are escaped even inside strings.
func isIllegalChar(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return false
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r >= 0xd800 && r <= 0xdfff, r == 0xfffe, r == 0xffff, r == utf8.RuneError:
		return true
	}
	return false
}

type lexer struct {
	src  []rune
	i    int
	line int
	col  int // 1-based, counted in UTF-16 units like Jira
}

func lex(s string) ([]token, *Error) {
	lx := &lexer{src: []rune(s), line: 1, col: 1}
	var toks []token
	for {
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tokEOF {
			return toks, nil
		}
	}
}

func (lx *lexer) peek(off int) rune {
	if lx.i+off < len(lx.src) {
		return lx.src[lx.i+off]
	}
	return -1
}

func (lx *lexer) advance() rune {
	r := lx.src[lx.i]
	lx.i++
	switch {
	case r == '\n':
		lx.line, lx.col = lx.line+1, 1
	case r == '\r':
		if lx.peek(0) != '\n' {
			lx.line, lx.col = lx.line+1, 1
		}
	case r >= 0x10000:
		lx.col += 2
	default:
		lx.col++
	}
	return r
}

func (lx *lexer) errAt(line, col int, format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...), Line: line, Column: col}
}

func (lx *lexer) illegalChar(r rune) *Error {
	return lx.errAt(lx.line, lx.col, "The character 'U+%04X' on line %d at position %d must be escaped. Use the escape '\\u%04x' instead.",
		r, lx.line, lx.col, r)
}

func (lx *lexer) next() (token, *Error) {
	for lx.i < len(lx.src) && isSpace(lx.src[lx.i]) {
		lx.advance()
	}
	t := token{line: lx.line, col: lx.col}
	if lx.i >= len(lx.src) {
		t.kind = tokEOF
		return t, nil
	}
	r := lx.src[lx.i]
	two := func(kind tokenKind, raw string) (token, *Error) {
		lx.advance()
		lx.advance()
		t.kind, t.raw = kind, raw
		return t, nil
	}
	one := func(kind tokenKind) (token, *Error) {
		lx.advance()
		t.kind, t.raw = kind, string(r)
		return t, nil
	}
	switch r {
	case '(':
		return one(tokLParen)
	case ')':
		return one(tokRParen)
	case ',':
		return one(tokComma)
	case '[':
		return one(tokLBracket)
	case ']':
		return one(tokRBracket)
	case '=', '~':
		return one(tokOp)
	case '<', '>':
		if lx.peek(1) == '=' {
			return two(tokOp, string(r)+"=")
		}
		return one(tokOp)
	case '!':
		if n := lx.peek(1); n == '=' || n == '~' {
			return two(tokOp, "!"+string(n))
		}
		return one(tokBang)
	case '&':
		if lx.peek(1) == '&' {
			return two(tokAnd, "&&")
		}
		return one(tokAnd)
	case '|':
		if lx.peek(1) == '|' {
			return two(tokOr, "||")
		}
		return one(tokOr)
	case '"', '\'':
		return lx.quoted(t)
	}
	if strings.ContainsRune(reservedChars, r) {
		return t, lx.errAt(lx.line, lx.col, "The character '%c' is a reserved JQL character. You must enclose it in a string or use the escape '\\u%04x' instead.", r, r)
	}
	return lx.word(t)
}

func (lx *lexer) quoted(t token) (token, *Error) {
	q := lx.advance()
	var b strings.Builder
	for {
		if lx.i >= len(lx.src) {
			content := strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(b.String())
			if content == "" {
				return t, lx.errAt(t.line, t.col, "The quoted string has not been completed.")
			}
			return t, lx.errAt(t.line, t.col, "The quoted string '%s' has not been completed.", content)
		}
		r := lx.src[lx.i]
		switch {
		case r == q:
			lx.advance()
			t.kind, t.text = tokString, b.String()
			t.raw = string(q) + t.text + string(q)
			return t, nil
		case r == '\\':
			e, err := lx.escape()
			if err != nil {
				return t, err
			}
			b.WriteRune(e)
		case isIllegalChar(r):
			return t, lx.illegalChar(r)
		default:
			b.WriteRune(lx.advance())
		}
	}
}

// escape decodes one backslash escape at the current position.
func (lx *lexer) escape() (rune, *Error) {
	line, col := lx.line, lx.col
	lx.advance() // backslash
	if lx.i >= len(lx.src) {
		return 0, lx.errAt(line, col, "The escape sequence has not been completed. %s", validEscapes)
	}
	r := lx.advance()
	switch r {
	case '\'', '"', '\\', ' ':
		return r, nil
	case 't':
		return '\t', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 'u':
		var v rune
		seq := `\u`
		for k := 0; k < 4; k++ {
			if lx.i >= len(lx.src) {
				return 0, lx.errAt(line, col, "'%s' is an illegal JQL escape sequence. %s", seq, validEscapes)
			}
			c := lx.advance()
			seq += string(c)
			d, err := strconv.ParseUint(string(c), 16, 8)
			if err != nil {
				return 0, lx.errAt(line, col, "'%s' is an illegal JQL escape sequence. %s", seq, validEscapes)
			}
			v = v<<4 | rune(d)
		}
		return v, nil
	}
	return 0, lx.errAt(line, col, "'\\%c' is an illegal JQL escape sequence. %s", r, validEscapes)
}

func (lx *lexer) word(t token) (token, *Error) {
	var b, raw strings.Builder
	start := lx.i
	for lx.i < len(lx.src) {
		r := lx.src[lx.i]
		if isSpace(r) || strings.ContainsRune(specialChars, r) || strings.ContainsRune(reservedChars, r) {
			break
		}
		if isIllegalChar(r) {
			return t, lx.illegalChar(r)
		}
		if r == '\\' {
			e, err := lx.escape()
			if err != nil {
				return t, err
			}
			b.WriteRune(e)
			continue
		}
		b.WriteRune(lx.advance())
	}
	raw.WriteString(string(lx.src[start:lx.i]))
	t.kind, t.text, t.raw = tokWord, b.String(), raw.String()
	if isNumberText(t.raw) {
		if _, err := strconv.ParseInt(t.raw, 10, 64); err != nil {
			return t, lx.errAt(t.line, t.col, "'%s' is not a valid number. Numbers must be between -9,223,372,036,854,775,808 and 9,223,372,036,854,775,807.", t.raw)
		}
		t.num = true
	}
	if isReservedWord(t.raw) {
		return t, lx.errAt(t.line, t.col, "'%s' is a reserved JQL word. You must surround it in quotation marks to use it in a query.", t.raw)
	}
	return t, nil
}

func isNumberText(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
