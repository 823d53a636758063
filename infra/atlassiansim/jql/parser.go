package jql

import (
	"fmt"
	"strings"
)

const validOperators = "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'."

// Parse parses a JQL query. Syntax errors are returned as *Error with Jira's text.
// An empty query is valid and unbounded.
func Parse(s string) (*Query, error) {
	toks, lerr := lex(s)
	if lerr != nil {
		return nil, lerr
	}
	p := &parser{toks: toks}
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	return q, nil
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) take() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func errAt(t token, format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...), Line: t.line, Column: t.col}
}

func errEnd(format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...)}
}

func (p *parser) query() (*Query, *Error) {
	q := &Query{}
	if t := p.peek(); t.kind != tokEOF && !t.keyword("order") {
		w, err := p.or()
		if err != nil {
			return nil, err
		}
		q.where = w
	}
	t := p.peek()
	if t.keyword("order") {
		ob, err := p.orderBy()
		if err != nil {
			return nil, err
		}
		q.orderBy = ob
		t = p.peek()
	}
	if t.kind != tokEOF {
		return nil, errAt(t, "Expecting either 'OR' or 'AND' but got '%s'.", t.display())
	}
	return q, nil
}

func isOr(t token) bool  { return t.kind == tokOr || t.keyword("or") }
func isAnd(t token) bool { return t.kind == tokAnd || t.keyword("and") }
func isNot(t token) bool { return t.kind == tokBang || t.keyword("not") }

func (p *parser) or() (clause, *Error) {
	return p.binary("or", isOr, p.and)
}

func (p *parser) and() (clause, *Error) {
	return p.binary("and", isAnd, p.not)
}

func (p *parser) binary(op string, isOp func(token) bool, sub func() (clause, *Error)) (clause, *Error) {
	first, err := sub()
	if err != nil {
		return nil, err
	}
	clauses := []clause{first}
	for isOp(p.peek()) {
		p.take()
		c, err := sub()
		if err != nil {
			return nil, err
		}
		clauses = append(clauses, c)
	}
	if len(clauses) == 1 {
		return first, nil
	}
	return &compound{op: op, clauses: clauses}, nil
}

func (p *parser) not() (clause, *Error) {
	t := p.peek()
	switch {
	case isNot(t):
		p.take()
		c, err := p.not()
		if err != nil {
			return nil, err
		}
		return &compound{op: "not", clauses: []clause{c}}, nil
	case t.kind == tokLParen:
		p.take()
		c, err := p.or()
		if err != nil {
			return nil, err
		}
		switch t := p.take(); t.kind {
		case tokRParen:
			return c, nil
		case tokEOF:
			return nil, errEnd("Expecting ')' before the end of the query.")
		default:
			return nil, errAt(t, "Expecting ')' but got '%s'.", t.display())
		}
	}
	return p.terminal()
}

// field parses a field name; in ORDER BY and in clauses alike.
func (p *parser) field() (fieldRef, *Error) {
	t := p.take()
	switch t.kind {
	case tokEOF:
		return fieldRef{}, errEnd("Expecting a field name at the end of the query.")
	case tokLBracket:
		return fieldRef{}, errAt(t, "Expecting a field name but got '['. Did you mean 'cf['?")
	case tokString:
		if t.text == "" {
			return fieldRef{}, errAt(t, "A field name cannot be empty.")
		}
		return newFieldRef(t.text, false), nil
	case tokWord:
		if isKeyword(t.text) {
			break
		}
		if strings.EqualFold(t.raw, "cf") {
			return p.customField(t)
		}
		return newFieldRef(t.text, false), nil
	}
	return fieldRef{}, errAt(t, "Expecting a field name but got '%s'. You must surround '%s' in quotation marks to use it as a field name.", t.display(), t.display())
}

func (p *parser) customField(cf token) (fieldRef, *Error) {
	switch t := p.take(); t.kind {
	case tokLBracket:
	case tokEOF:
		return fieldRef{}, errEnd("Expecting '[' before the end of the query.")
	default:
		return fieldRef{}, errAt(t, "Expecting '[' but got '%s'.", t.display())
	}
	id := p.take()
	if id.kind == tokEOF {
		return fieldRef{}, errEnd("Expecting a custom field id (a positive number) before the end of the query.")
	}
	if id.kind != tokWord || !id.num || strings.HasPrefix(id.raw, "-") {
		return fieldRef{}, errAt(id, "Expecting a custom field id (a positive number) but got '%s'.", id.display())
	}
	switch t := p.take(); t.kind {
	case tokRBracket:
	case tokEOF:
		return fieldRef{}, errEnd("Expecting ']' before the end of the query.")
	default:
		return fieldRef{}, errAt(t, "Expecting ']' but got '%s'.", t.display())
	}
	return newFieldRef(cf.raw+"["+id.raw+"]", true), nil
}

func (p *parser) terminal() (clause, *Error) {
	f, err := p.field()
	if err != nil {
		return nil, err
	}
	opTok := p.take()
	t := &terminal{field: f, line: opTok.line, col: opTok.col}
	switch {
	case opTok.kind == tokOp:
		t.op = opTok.raw
	case opTok.keyword("in"):
		t.op = "in"
	case opTok.keyword("not"):
		switch n := p.take(); {
		case n.keyword("in"):
			t.op = "not in"
		case n.kind == tokEOF:
			return nil, errEnd("Expecting 'IN' before the end of the query.")
		default:
			return nil, errAt(n, "Expecting 'IN' but got '%s'.", n.display())
		}
	case opTok.keyword("is"):
		t.op = "is"
		if n := p.peek(); isNot(n) {
			if n.kind == tokBang {
				return nil, errAt(n, "Expecting 'NOT' but got '!'.")
			}
			p.take()
			t.op = "is not"
		} else if n.kind != tokEOF && !startsOperand(n) {
			return nil, errAt(n, "Expecting 'NOT' but got '%s'.", n.display())
		}
	case opTok.kind == tokEOF:
		return nil, errEnd("Expecting operator before the end of the query. %s", validOperators)
	default:
		return nil, errAt(opTok, "Expecting operator but got '%s'. %s", opTok.display(), validOperators)
	}
	o, err := p.operand()
	if err != nil {
		return nil, err
	}
	t.operand = o
	return t, nil
}

func startsOperand(t token) bool {
	switch t.kind {
	case tokString, tokLParen:
		return true
	case tokWord:
		return !isKeyword(t.text) || t.keyword("empty") || t.keyword("null")
	}
	return false
}

func (p *parser) operand() (operand, *Error) {
	t := p.take()
	switch {
	case t.kind == tokEOF:
		return nil, errEnd("Expecting either a value, list or function before the end of the query.")
	case t.keyword("empty") || t.keyword("null"):
		return keyword{}, nil
	case t.kind == tokLParen:
		return p.list()
	case startsOperand(t):
		if p.peek().kind == tokLParen {
			return p.function(t)
		}
		return value{text: t.text, num: t.num}, nil
	}
	return nil, errAt(t, "Expecting either a value, list or function but got '%s'. You must surround '%s' in quotation marks to use it as a value.", t.display(), t.display())
}

func (p *parser) list() (operand, *Error) {
	var l list
	for {
		o, err := p.operand()
		if err != nil {
			return nil, err
		}
		l.items = append(l.items, o)
		switch t := p.take(); t.kind {
		case tokComma:
			continue
		case tokRParen:
			return l, nil
		case tokEOF:
			return nil, errEnd("Expecting ')' before the end of the query.")
		default:
			return nil, errAt(t, "Expecting ')' but got '%s'.", t.display())
		}
	}
}

func isArgument(t token) bool { return t.kind == tokWord || t.kind == tokString }

func (p *parser) function(name token) (operand, *Error) {
	if name.text == "" {
		return nil, errAt(name, "A function name cannot be empty.")
	}
	p.take() // (
	f := function{name: name.text, args: []string{}}
	switch t := p.peek(); t.kind {
	case tokRParen:
		p.take()
		return f, nil
	case tokEOF:
		return nil, errEnd("Expecting ')' before the end of the query.")
	case tokComma:
		return nil, errAt(t, "Expecting ')' but got ','.")
	}
	for {
		t := p.take()
		switch {
		case isArgument(t):
			f.args = append(f.args, t.text)
		case t.kind == tokEOF:
			return nil, errEnd("Expecting a function argument at the end of the query.")
		case t.kind == tokRParen:
			return nil, errAt(t, "Function argument must be specified.")
		default:
			return nil, errAt(t, "Expecting a function argument but got '%s'. You must surround '%s' in quotation marks to use it as an argument.", t.display(), t.display())
		}
		switch n := p.take(); n.kind {
		case tokComma:
		case tokRParen:
			return f, nil
		case tokEOF:
			return nil, errEnd("Expecting ')' before the end of the query.")
		default:
			return nil, errAt(n, "Expecting ')' or ',' but got '%s'.", n.display())
		}
	}
}

func (p *parser) orderBy() ([]orderField, *Error) {
	p.take() // order
	switch t := p.take(); {
	case t.keyword("by"):
	case t.kind == tokEOF:
		return nil, errEnd("Expecting 'by' before the end of the query.")
	default:
		return nil, errAt(t, "Expecting 'by' but got '%s'.", t.display())
	}
	var fields []orderField
	for {
		start := p.peek()
		f, err := p.field()
		if err != nil {
			return nil, err
		}
		if len(fields) == MaxOrderByFields {
			return nil, errAt(start, "The ORDER BY clause can contain a maximum of %d fields.", MaxOrderByFields)
		}
		of := orderField{field: f}
		t := p.peek()
		if t.keyword("asc") || t.keyword("desc") {
			p.take()
			of.dir = strings.ToLower(t.text)
			t = p.peek()
		}
		fields = append(fields, of)
		switch {
		case t.kind == tokComma:
			p.take()
		case t.kind == tokEOF:
			return fields, nil
		case of.dir == "":
			return nil, errAt(t, "Expecting either 'ASC' or 'DESC' but got '%s'.", t.display())
		default:
			return nil, errAt(t, "Expecting ',' but got '%s'.", t.display())
		}
	}
}
