package jql

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "order by key desc", "project = ABC", "invalid query",
		`project in (ABC, "My Project") AND NOT (status = Done OR labels is EMPTY) ORDER BY created DESC, key`,
		`summary ~ "\"fails on\" log*" and text ~ 'it\'s' and comment !~ x`,
		`updated >= -5d and created < "2024/01/02 10:30" and updated > startOfDay("-1d") and created <= 1700000000000`,
		`assignee = currentUser() && reporter != acc-1 || key > ABC-10`,
		`cf[10010] = x`, `a = ((c,d), d) and b = f(1, "two")`, "comme\\unt ~ 'test", "mine{www", "a = \u007f",
		"summary ~ \U0001F600\nand\r\nx = y", `a = "\u00e9\t"`,
	} {
		f.Add(s)
	}
	env := Env{Now: time.Date(2024, 1, 12, 12, 0, 0, 0, time.UTC), CurrentUser: "acc-1"}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			var je *Error
			if !errors.As(err, &je) || je.Message == "" || je.Line < 0 || je.Column < 0 {
				t.Fatalf("Parse(%q) = %#v, want *Error with a message", s, err)
			}
			return
		}
		out := q.String()
		q2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) of Parse(%q).String() = %v, want success", out, s, err)
		}
		if got := q2.String(); got != out {
			t.Fatalf("Parse(%q).String() = %q, want %q", out, got, out)
		}
		a, _ := json.Marshal(q.Structure())
		b, _ := json.Marshal(q2.Structure())
		if string(a) != string(b) {
			t.Fatalf("Structure after round trip of %q = %s, want %s", s, b, a)
		}
		for _, is := range testIssues() {
			q.Match(is, env)
		}
		issues := testIssues()
		q.Compare(issues[0], issues[1])
		q.Check(fakeCatalog{})
	})
}
