// Package jql parses and evaluates the subset of Jira Query Language the Atlassian simulator serves: the fields,
// operators, functions and error texts a Jira Cloud client meets when it exports issues incrementally.
package jql

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxOrderByFields is the most ORDER BY fields Jira Cloud's enhanced search accepts.
const MaxOrderByFields = 7

// Error is a JQL syntax error carrying Jira's own message text and 1-based position.
// Line and Column are 0 when Jira reports no position (errors at the end of the query).
type Error struct {
	Message      string // without the "Error in the JQL Query: " prefix and the position suffix
	Line, Column int
}

// Error returns exactly the text Jira puts in errorMessages.
func (e *Error) Error() string {
	if e.Line <= 0 {
		return "Error in the JQL Query: " + e.Message
	}
	return fmt.Sprintf("Error in the JQL Query: %s (line %d, character %d)", e.Message, e.Line, e.Column)
}

// Query is a parsed JQL query. It is immutable and safe for concurrent use.
type Query struct {
	where   clause // nil when the query has no search restriction
	orderBy []orderField
}

type orderField struct {
	field fieldRef
	dir   string // "", "asc" or "desc"
}

// Bounded reports whether the query restricts the search; Jira's enhanced search rejects unbounded queries.
func (q *Query) Bounded() bool { return q.where != nil }

// String renders the query in a canonical form that parses back to the same query.
func (q *Query) String() string {
	var b strings.Builder
	if q.where != nil {
		b.WriteString(q.where.String())
	}
	if len(q.orderBy) > 0 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("ORDER BY ")
		for i, f := range q.orderBy {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(f.field.encoded())
			if f.dir != "" {
				b.WriteByte(' ')
				b.WriteString(strings.ToUpper(f.dir))
			}
		}
	}
	return b.String()
}

// clause is a node of the WHERE tree: *compound or *terminal.
type clause interface {
	String() string
}

type compound struct {
	op      string // "and", "or", "not"
	clauses []clause
}

func (c *compound) String() string {
	if c.op == "not" {
		return "NOT " + c.child(c.clauses[0])
	}
	parts := make([]string, len(c.clauses))
	for i, cl := range c.clauses {
		parts[i] = c.child(cl)
	}
	return strings.Join(parts, " "+strings.ToUpper(c.op)+" ")
}

// child parenthesises nested compounds so that String round-trips the tree exactly, nesting included.
func (c *compound) child(cl clause) string {
	sub, ok := cl.(*compound)
	if !ok || sub.op == "not" || (c.op == "or" && sub.op == "and") {
		return cl.String()
	}
	return "(" + cl.String() + ")"
}

type terminal struct {
	field   fieldRef
	op      string // lower case: "=", "!=", "<", ">", "<=", ">=", "~", "!~", "in", "not in", "is", "is not"
	operand operand
	line    int
	col     int
}

func (t *terminal) String() string {
	return t.field.encoded() + " " + strings.ToUpper(t.op) + " " + t.operand.String()
}

// fieldRef is a field as written in the query.
type fieldRef struct {
	name   string // unescaped name as typed, e.g. "Project" or "cf[10010]"
	custom bool   // cf[N] form
	lower  string // name in lower case, computed once: lookups run per issue and per comparison
	id     int64  // N of cf[N]
}

func newFieldRef(name string, custom bool) fieldRef {
	f := fieldRef{name: name, custom: custom, lower: strings.ToLower(name)}
	if custom {
		inner := strings.TrimSuffix(strings.TrimPrefix(f.lower, "cf["), "]")
		f.id, _ = strconv.ParseInt(inner, 10, 64)
	}
	return f
}

func (f fieldRef) encoded() string {
	if f.custom {
		return f.name
	}
	return encodeString(f.name)
}

// operand is one of value, list, function or keyword.
type operand interface {
	String() string
}

type value struct {
	text string
	num  bool // an unquoted number literal (Jira keeps these as longs)
}

func (v value) String() string {
	if v.num {
		return v.text
	}
	return encodeString(v.text)
}

// display is Jira's operand rendering in validation messages: strings in double quotes, numbers bare.
func (v value) display() string {
	if v.num {
		return v.text
	}
	return `"` + v.text + `"`
}

type list struct{ items []operand }

func (l list) String() string {
	parts := make([]string, len(l.items))
	for i, it := range l.items {
		parts[i] = it.String()
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

type function struct {
	name string
	args []string
}

func (f function) String() string {
	parts := make([]string, len(f.args))
	for i, a := range f.args {
		parts[i] = encodeString(a)
	}
	return encodeString(f.name) + "(" + strings.Join(parts, ", ") + ")"
}

type keyword struct{} // EMPTY (and its synonym NULL)

func (keyword) String() string { return "EMPTY" }

// encodeString quotes s when it could not be read back as the same single unquoted word.
func encodeString(s string) string {
	if !needsQuotes(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case isIllegalChar(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func needsQuotes(s string) bool {
	// "cf" would start a cf[N] custom field reference in field position.
	if s == "" || isKeyword(s) || isReservedWord(s) || isNumberText(s) || strings.EqualFold(s, "cf") {
		return true
	}
	for _, r := range s {
		if isSpace(r) || isIllegalChar(r) || r == '\\' || strings.ContainsRune(specialChars, r) || strings.ContainsRune(reservedChars, r) {
			return true
		}
	}
	return false
}
