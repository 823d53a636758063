package jql

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCanonical(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"   \n ", ""},
		{"project = ABC", "project = ABC"},
		{"PROJECT=abc", "PROJECT = abc"},
		{"project = 'My Project'", `project = "My Project"`},
		{`summary ~ "foo*"`, `summary ~ "foo*"`},
		{`summary ~ "\"exact phrase\""`, `summary ~ "\"exact phrase\""`},
		{`summary !~ bar`, `summary !~ bar`},
		{"status in (Open, 'In Progress')", `status IN (Open, "In Progress")`},
		{"status not in (Done)", "status NOT IN (Done)"},
		{"assignee is empty", "assignee IS EMPTY"},
		{"assignee IS NOT NULL", "assignee IS NOT EMPTY"},
		{"assignee = currentUser()", "assignee = currentUser()"},
		{"created >= -5d and updated < now()", "created >= -5d AND updated < now()"},
		{`updated > startOfDay("-1d")`, "updated > startOfDay(-1d)"},
		{`updated <= endOfDay("+1w")`, `updated <= endOfDay("+1w")`},
		{`created > "2024/01/02 10:30"`, `created > "2024/01/02 10:30"`},
		{`created > 2024-01-02`, `created > 2024-01-02`},
		{`created > 1700000000000`, `created > 1700000000000`},
		{`key = "123"`, `key = "123"`},
		{"a = b or c = d and e = f", "a = b OR c = d AND e = f"},
		{"(a = b or c = d) and e = f", "(a = b OR c = d) AND e = f"},
		{"a = b and (c = d and e = f)", "a = b AND (c = d AND e = f)"},
		{"not a = b and c = d", "NOT a = b AND c = d"},
		{"not (a = b and c = d)", "NOT (a = b AND c = d)"},
		{"! a = b && c = d || e = f", "NOT a = b AND c = d OR e = f"},
		{"a = b & c = d | e = f", "a = b AND c = d OR e = f"},
		{"order by key desc", "ORDER BY key DESC"},
		{"project = A order by created desc, key ASC, summary", "project = A ORDER BY created DESC, key ASC, summary"},
		{"cf[10010] = x", "cf[10010] = x"},
		{`"cf" = cf`, `"cf" = "cf"`},
		{`"order" = "empty" order by "asc"`, `"order" = "empty" ORDER BY "asc"`},
		{`summary ~ "and"`, `summary ~ "and"`},
		{`summary ~ 'it\'s'`, `summary ~ "it's"`},
		{`summary ~ "tab\there"`, `summary ~ "tab\there"`},
		{`summary ~ "\u0041BC"`, `summary ~ ABC`},
		{`labels in ((a, b), c)`, `labels IN ((a, b), c)`},
		{`project = ABC order by key, created, updated, status, summary, issuetype, assignee`,
			`project = ABC ORDER BY key, created, updated, status, summary, issuetype, assignee`},
	}
	for _, tt := range tests {
		q, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q) = %v, want success", tt.in, err)
			continue
		}
		if got := q.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		q2, err := Parse(q.String())
		if err != nil || q2.String() != q.String() {
			t.Errorf("Parse(%q) round trip = %v, %v; want %q", q.String(), q2, err, q.String())
		}
	}
}

func TestParseErrors(t *testing.T) {
	const ops = "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'."
	const esc = `The valid escape sequences are \', \", \t, \n, \r, \\, '\ ' and \uXXXX.`
	tests := []struct {
		in, want  string
		line, col int
	}{
		{"invalid query", "Expecting operator but got 'query'. " + ops, 1, 9},
		{"a", "Expecting operator before the end of the query. " + ops, 0, 0},
		{"a blah >", "Expecting operator but got 'blah'. " + ops, 1, 3},
		{"a =a and j not is empty", "Expecting 'IN' but got 'is'.", 1, 16},
		{"a =a and j is ! empty", "Expecting 'NOT' but got '!'.", 1, 15},
		{"a=b c=d", "Expecting either 'OR' or 'AND' but got 'c'.", 1, 5},
		{"a=b !c=d", "Expecting either 'OR' or 'AND' but got '!'.", 1, 5},
		{`project = ABC "jql"`, "Expecting either 'OR' or 'AND' but got 'jql'.", 1, 15},
		{`comment !~ "brenden" jack = jill`, "Expecting either 'OR' or 'AND' but got 'jack'.", 1, 22},
		{"comment ~ 'test", "The quoted string 'test' has not been completed.", 1, 11},
		{"comment ~ 'test\n", "The quoted string 'test ' has not been completed.", 1, 11},
		{"priority=\"test\nword", "The quoted string 'test word' has not been completed.", 1, 10},
		{"comment ~ '", "The quoted string has not been completed.", 1, 11},
		{`comme\unt ~ 'test'`, `'\un' is an illegal JQL escape sequence. ` + esc, 1, 6},
		{"status =\n\n\n\n\n\n \\c", `'\c' is an illegal JQL escape sequence. ` + esc, 7, 2},
		{"status =\n\n\n\n\\", "The escape sequence has not been completed. " + esc, 5, 1},
		{`summary ~ "\!"`, `'\!' is an illegal JQL escape sequence. ` + esc, 1, 12},
		{"mine{www = qwwr", `The character '{' is a reserved JQL character. You must enclose it in a string or use the escape '\u007b' instead.`, 1, 5},
		{"minewww# = qwwr", `The character '#' is a reserved JQL character. You must enclose it in a string or use the escape '\u0023' instead.`, 1, 8},
		{"summary ~ foo*", `The character '*' is a reserved JQL character. You must enclose it in a string or use the escape '\u002a' instead.`, 1, 14},
		{"updated <= endOfDay(+1w)", `The character '+' is a reserved JQL character. You must enclose it in a string or use the escape '\u002b' instead.`, 1, 21},
		{"minewww =\u007fqwwr", `The character 'U+007F' on line 1 at position 10 must be escaped. Use the escape '\u007f' instead.`, 1, 10},
		{"mqwwr=\"\u007f this is broken\"", `The character 'U+007F' on line 1 at position 8 must be escaped. Use the escape '\u007f' instead.`, 1, 8},
		{"aaaaa=-3482094382084092840932809482", "'-3482094382084092840932809482' is not a valid number. Numbers must be between -9,223,372,036,854,775,808 and 9,223,372,036,854,775,807.", 1, 7},
		{"summary ~ select", "'select' is a reserved JQL word. You must surround it in quotation marks to use it in a query.", 1, 11},
		{"a =b order", "Expecting 'by' before the end of the query.", 0, 0},
		{"a =b order summary", "Expecting 'by' but got 'summary'.", 1, 12},
		{"a =b order by", "Expecting a field name at the end of the query.", 0, 0},
		{"a =b order by asc", "Expecting a field name but got 'asc'. You must surround 'asc' in quotation marks to use it as a field name.", 1, 15},
		{"a =b order by ajsks blah", "Expecting either 'ASC' or 'DESC' but got 'blah'.", 1, 21},
		{"order by a desc d", "Expecting ',' but got 'd'.", 1, 17},
		{`a =b order by "" desc`, "A field name cannot be empty.", 1, 15},
		{"'' = c", "A field name cannot be empty.", 1, 1},
		{"a = ''()", "A function name cannot be empty.", 1, 5},
		{"a = func(", "Expecting ')' before the end of the query.", 0, 0},
		{"a = func(, and not (a = x)", "Expecting ')' but got ','.", 1, 10},
		{"bas=func(bad,)", "Function argument must be specified.", 1, 14},
		{"bas=func(bad,", "Expecting a function argument at the end of the query.", 0, 0},
		{"k = func(!", "Expecting a function argument but got '!'. You must surround '!' in quotation marks to use it as an argument.", 1, 10},
		{"k = func(abc, jk!)", "Expecting ')' or ',' but got '!'.", 1, 17},
		{"(a=b and c = d", "Expecting ')' before the end of the query.", 0, 0},
		{"b in ((12, (288)", "Expecting ')' before the end of the query.", 0, 0},
		{"abc IN ((foo) abc = a", "Expecting ')' but got 'abc'.", 1, 15},
		{"a=", "Expecting either a value, list or function before the end of the query.", 0, 0},
		{"a=!", "Expecting either a value, list or function but got '!'. You must surround '!' in quotation marks to use it as a value.", 1, 3},
		{"a=(a,(,bad))", "Expecting either a value, list or function but got ','. You must surround ',' in quotation marks to use it as a value.", 1, 7},
		{"a = ((c,d), d, e, f, yyy) and", "Expecting a field name at the end of the query.", 0, 0},
		{", a = b", "Expecting a field name but got ','. You must surround ',' in quotation marks to use it as a field name.", 1, 1},
		{"[brenden] = a", "Expecting a field name but got '['. Did you mean 'cf['?", 1, 1},
		{"cf", "Expecting '[' before the end of the query.", 0, 0},
		{"a = b and not (cf = 6)", "Expecting '[' but got '='.", 1, 19},
		{"cf[] = 1", "Expecting a custom field id (a positive number) but got ']'.", 1, 4},
		{"cf[29829 = world", "Expecting ']' but got '='.", 1, 10},
		{"project = A order by key, created, updated, status, summary, issuetype, assignee, reporter",
			"The ORDER BY clause can contain a maximum of 7 fields.", 1, 83},
		{"summary ~ 日本 and x y", "Expecting operator but got 'y'. " + ops, 1, 20},
		{"summary ~ \U0001F600 and x y", "Expecting operator but got 'y'. " + ops, 1, 20},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		var je *Error
		if !errors.As(err, &je) {
			t.Errorf("Parse(%q) = %v, want *Error %q", tt.in, err, tt.want)
			continue
		}
		if je.Message != tt.want || je.Line != tt.line || je.Column != tt.col {
			t.Errorf("Parse(%q) = %q at %d:%d, want %q at %d:%d", tt.in, je.Message, je.Line, je.Column, tt.want, tt.line, tt.col)
		}
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"invalid query", "Error in the JQL Query: Expecting operator but got 'query'. The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'. (line 1, character 9)"},
		{"project = A jql", "Error in the JQL Query: Expecting either 'OR' or 'AND' but got 'jql'. (line 1, character 13)"},
		{"(project = A", "Error in the JQL Query: Expecting ')' before the end of the query."},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestBounded(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", false},
		{"order by key desc", false},
		{"ORDER BY created", false},
		{"assignee = currentUser() order by key", true},
		{"project = ABC", true},
		{"not project = ABC", true},
	}
	for _, tt := range tests {
		q, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", tt.in, err)
		}
		if got := q.Bounded(); got != tt.want {
			t.Errorf("Parse(%q).Bounded() = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		in, want string // want: the tree in prefix form
	}{
		{"a = 1 OR b = 2 AND c = 3", "or(a,and(b,c))"},
		{"a = 1 AND b = 2 OR c = 3", "or(and(a,b),c)"},
		{"NOT a = 1 AND b = 2", "and(not(a),b)"},
		{"NOT (a = 1 OR b = 2)", "not(or(a,b))"},
		{"a = 1 AND b = 2 AND c = 3", "and(a,b,c)"},
		{"(a = 1 AND b = 2) AND c = 3", "and(and(a,b),c)"},
	}
	for _, tt := range tests {
		q, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", tt.in, err)
		}
		if got := prefix(q.where); got != tt.want {
			t.Errorf("Parse(%q) tree = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func prefix(c clause) string {
	switch c := c.(type) {
	case *compound:
		parts := make([]string, len(c.clauses))
		for i, sub := range c.clauses {
			parts[i] = prefix(sub)
		}
		return c.op + "(" + strings.Join(parts, ",") + ")"
	case *terminal:
		return c.field.name
	}
	return "?"
}
