package jql

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Issue is what the simulator evaluates queries against.
type Issue struct {
	ID                                 int64
	Key                                string
	ProjectID, ProjectKey, ProjectName string
	IssueType                          string
	Status                             string
	Labels                             []string
	Assignee, Reporter                 string // Atlassian account IDs, "" when empty
	Created, Updated                   time.Time
	Summary, Description, Comments     string // plain text, for text search (~)
	// Source, when set, supplies Summary, Description and Comments on demand (by ID): a large simulated site
	// generates issue bodies lazily and must not hold every body's text in memory just in case a query searches it.
	Source TextSource
	// Numbers holds number custom fields by id (cf[10016] = 5); an absent id is EMPTY.
	Numbers map[int64]float64
}

// Env is the context a query is evaluated in.
type Env struct {
	Now         time.Time      // zero means time.Now()
	Location    *time.Location // searching user's zone; nil = UTC
	CurrentUser string         // account id; "" = anonymous, currentUser() then matches nobody
}

// Match reports whether the issue satisfies the query's WHERE clause. Clauses that Check would reject
// (unknown fields, unsupported operators) match nothing.
func (q *Query) Match(is *Issue, env Env) bool {
	if q.where == nil {
		return true
	}
	return matchClause(q.where, is, env)
}

func matchClause(c clause, is *Issue, env Env) bool {
	switch c := c.(type) {
	case *compound:
		switch c.op {
		case "not":
			return !matchClause(c.clauses[0], is, env)
		case "and":
			for _, sub := range c.clauses {
				if !matchClause(sub, is, env) {
					return false
				}
			}
			return true
		default:
			for _, sub := range c.clauses {
				if matchClause(sub, is, env) {
					return true
				}
			}
			return false
		}
	case *terminal:
		return matchTerminal(c, is, env)
	}
	return false
}

// flatten lists the leaf operands (nested lists included).
func flatten(o operand) []operand {
	l, ok := o.(list)
	if !ok {
		return []operand{o}
	}
	var out []operand
	for _, it := range l.items {
		out = append(out, flatten(it)...)
	}
	return out
}

func matchTerminal(t *terminal, is *Issue, env Env) bool {
	fi, ok := lookupField(t.field)
	if !ok || !fi.ops[t.op] {
		return false
	}
	switch fi.typ {
	case vtNumber:
		return matchNumber(t, is)
	case vtText:
		return matchText(t, fi, is)
	case vtDate:
		return matchDate(t, fi, is, env)
	}
	return matchValues(t, fi, is, env)
}

// matchValues evaluates equality-style operators on single- and multi-valued fields.
// As in Jira, != and NOT IN never match an issue whose field is empty.
func matchValues(t *terminal, fi fieldInfo, is *Issue, env Env) bool {
	have := fieldValues(fi.kind, is)
	ops := flatten(t.operand)
	wantEmpty := false
	var want []operand
	for _, o := range ops {
		if _, ok := o.(keyword); ok {
			wantEmpty = true
		} else {
			want = append(want, o)
		}
	}
	anyEqual := func() bool {
		for _, o := range want {
			for _, h := range have {
				if valueEquals(fi.kind, h, o, is, env) {
					return true
				}
			}
		}
		return false
	}
	empty := len(have) == 0
	switch t.op {
	case "is":
		return wantEmpty && empty
	case "is not":
		return wantEmpty && !empty
	case "=", "in":
		return (wantEmpty && empty) || anyEqual()
	case "!=", "not in":
		return !empty && !anyEqual()
	case "<", "<=", ">", ">=":
		if fi.kind != fKey || len(want) != 1 {
			return false
		}
		c, ok := compareKey(is, want[0])
		return ok && ordered(t.op, c)
	}
	return false
}

func ordered(op string, c int) bool {
	switch op {
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	case "=", "in":
		return c == 0
	case "!=", "not in":
		return c != 0
	}
	return false
}

func fieldValues(k fieldKind, is *Issue) []string {
	one := func(s string) []string {
		if s == "" {
			return nil
		}
		return []string{s}
	}
	switch k {
	case fProject:
		return one(is.ProjectKey) // only its emptiness matters: valueEquals compares key, id and name
	case fKey:
		return []string{is.Key}
	case fIssueType:
		return one(is.IssueType)
	case fStatus:
		return one(is.Status)
	case fLabels:
		return is.Labels
	case fAssignee:
		return one(is.Assignee)
	case fReporter:
		return one(is.Reporter)
	}
	return nil
}

func valueEquals(k fieldKind, have string, o operand, is *Issue, env Env) bool {
	switch o := o.(type) {
	case function:
		if strings.EqualFold(o.name, "currentUser") && len(o.args) == 0 && (k == fAssignee || k == fReporter) {
			return env.CurrentUser != "" && have == env.CurrentUser
		}
		return false
	case value:
		switch k {
		case fProject:
			return o.text == is.ProjectID || strings.EqualFold(o.text, is.ProjectKey) || strings.EqualFold(o.text, is.ProjectName)
		case fKey:
			c, ok := compareKey(is, o)
			return ok && c == 0
		case fAssignee, fReporter:
			return have == o.text
		default:
			return strings.EqualFold(have, o.text)
		}
	}
	return false
}

// splitKey splits "ABC-123" into project key and number.
func splitKey(s string) (string, int64, bool) {
	i := strings.LastIndexByte(s, '-')
	if i <= 0 || i == len(s)-1 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(s[i+1:], 10, 64)
	if err != nil || n < 0 || strings.ContainsAny(s[i+1:], "+-") {
		return "", 0, false
	}
	return s[:i], n, true
}

func validKeyValue(s string) bool {
	if isNumberText(s) {
		return true
	}
	_, _, ok := splitKey(s)
	return ok
}

// compareKey compares the issue with an issue key or id operand. Keys order within their project only.
func compareKey(is *Issue, o operand) (int, bool) {
	v, ok := o.(value)
	if !ok {
		return 0, false
	}
	if isNumberText(v.text) {
		id, err := strconv.ParseInt(v.text, 10, 64)
		if err != nil {
			return 0, false
		}
		return cmp.Compare(is.ID, id), true
	}
	wp, wn, ok := splitKey(v.text)
	if !ok {
		return 0, false
	}
	hp, hn, ok := splitKey(is.Key)
	if !ok || !strings.EqualFold(hp, wp) {
		return 0, false
	}
	return cmp.Compare(hn, wn), true
}

func issueTime(k fieldKind, is *Issue) time.Time {
	if k == fCreated {
		return is.Created
	}
	return is.Updated
}

// resolveTime turns a date operand into instants at minute precision; ok is false for values that are not dates.
func resolveTime(o operand, env Env) (time.Time, bool) {
	switch o := o.(type) {
	case value:
		return parseDate(o.text, env)
	case function:
		return evalDateFunction(o, env)
	}
	return time.Time{}, false
}

func matchDate(t *terminal, fi fieldInfo, is *Issue, env Env) bool {
	at := issueTime(fi.kind, is)
	empty := at.IsZero()
	at = at.Truncate(time.Minute)
	wantEmpty := false
	var want []time.Time
	for _, o := range flatten(t.operand) {
		if _, ok := o.(keyword); ok {
			wantEmpty = true
			continue
		}
		if v, ok := resolveTime(o, env); ok {
			want = append(want, v)
		}
	}
	anyEqual := slices.ContainsFunc(want, at.Equal)
	switch t.op {
	case "is":
		return wantEmpty && empty
	case "is not":
		return wantEmpty && !empty
	case "=", "in":
		return (wantEmpty && empty) || (!empty && anyEqual)
	case "!=", "not in":
		return !empty && !anyEqual
	case "<", "<=", ">", ">=":
		if empty || len(want) != 1 {
			return false
		}
		return ordered(t.op, at.Compare(want[0]))
	}
	return false
}

func textOf(k fieldKind, is *Issue) string {
	desc, comments := is.Description, is.Comments
	if is.Source != nil && k != fSummary {
		desc, comments = is.Source.Texts(is.ID)
	}
	switch k {
	case fSummary:
		return is.summary()
	case fDescription:
		return desc
	case fComment:
		return comments
	}
	return is.summary() + "\n" + desc + "\n" + comments
}

// TextSource generates an issue's text fields on demand.
type TextSource interface {
	Summary(id int64) string
	Texts(id int64) (description, comments string)
}

func (is *Issue) summary() string {
	if is.Summary == "" && is.Source != nil {
		return is.Source.Summary(is.ID)
	}
	return is.Summary
}

func numberOf(t *terminal, is *Issue) (float64, bool) {
	id, ok := customID(t.field)
	if !ok {
		return 0, false
	}
	v, ok := is.Numbers[id]
	return v, ok
}

// matchNumber evaluates a number custom field. As for other fields, != and NOT IN never match an empty one.
func matchNumber(t *terminal, is *Issue) bool {
	have, ok := numberOf(t, is)
	empty := !ok
	wantEmpty := false
	var want []float64
	for _, o := range flatten(t.operand) {
		switch o := o.(type) {
		case keyword:
			wantEmpty = true
		case value:
			if f, err := strconv.ParseFloat(o.text, 64); err == nil {
				want = append(want, f)
			}
		}
	}
	anyEqual := !empty && slices.Contains(want, have)
	switch t.op {
	case "is":
		return wantEmpty && empty
	case "is not":
		return wantEmpty && !empty
	case "=", "in":
		return (wantEmpty && empty) || anyEqual
	case "!=", "not in":
		return !empty && !anyEqual
	case "<", "<=", ">", ">=":
		if empty || len(want) != 1 {
			return false
		}
		return ordered(t.op, cmp.Compare(have, want[0]))
	}
	return false
}

func matchText(t *terminal, fi fieldInfo, is *Issue) bool {
	text := textOf(fi.kind, is)
	if _, ok := t.operand.(keyword); ok {
		empty := strings.TrimSpace(text) == ""
		switch t.op {
		case "is":
			return empty
		case "is not":
			return !empty
		}
		return false
	}
	v, ok := t.operand.(value)
	if !ok {
		return false
	}
	switch t.op {
	case "~":
		return textMatches(v.text, text)
	case "!~":
		return !textMatches(v.text, text)
	}
	return false
}

// textMatches approximates Jira's text search: every term must occur as a word (case-insensitive),
// "quoted phrases" must occur as consecutive words, and * / ? are wildcards within a term.
func textMatches(query, text string) bool {
	words := tokenize(text, false)
	var conds [][]string
	for i, part := range strings.Split(query, `"`) {
		toks := tokenize(part, true)
		if len(toks) == 0 {
			continue
		}
		if i%2 == 1 {
			conds = append(conds, toks)
			continue
		}
		for _, tk := range toks {
			conds = append(conds, []string{tk})
		}
	}
	if len(conds) == 0 {
		return false
	}
	for _, phrase := range conds {
		if !containsPhrase(words, phrase) {
			return false
		}
	}
	return true
}

func tokenize(s string, wildcards bool) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		if wildcards && (r == '*' || r == '?') {
			return false
		}
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

func containsPhrase(words, phrase []string) bool {
	for i := 0; i+len(phrase) <= len(words); i++ {
		ok := true
		for j, p := range phrase {
			if !wildcardMatch(p, words[i+j]) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// wildcardMatch matches pattern (with * and ?) against word.
func wildcardMatch(pattern, word string) bool {
	p, w := []rune(pattern), []rune(word)
	pi, wi, star, mark := 0, 0, -1, 0
	for wi < len(w) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == w[wi]):
			pi++
			wi++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, wi
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			wi = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// Compare orders issues by the query's ORDER BY; when the query has no ORDER BY, or on ties, by ID ascending.
// Empty values sort after all others in ascending order, as in Jira.
func (q *Query) Compare(a, b *Issue) int {
	for _, of := range q.orderBy {
		fi, ok := lookupField(of.field)
		if !ok || !fi.sortable {
			continue
		}
		c := compareField(fi, of.field, a, b)
		if of.dir == "desc" {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(a.ID, b.ID)
}

func compareField(fi fieldInfo, f fieldRef, a, b *Issue) int {
	name := f.lower
	switch fi.kind {
	case fCustomNumber:
		id, _ := customID(f)
		av, aok := a.Numbers[id]
		bv, bok := b.Numbers[id]
		if c := emptyLast(!aok, !bok); c != 0 || !aok {
			return c
		}
		return cmp.Compare(av, bv)
	case fKey:
		if name == "id" {
			return cmp.Compare(a.ID, b.ID)
		}
		ap, an, _ := splitKey(a.Key)
		bp, bn, _ := splitKey(b.Key)
		if c := cmp.Compare(strings.ToLower(ap), strings.ToLower(bp)); c != 0 {
			return c
		}
		return cmp.Compare(an, bn)
	case fCreated, fUpdated:
		ta, tb := issueTime(fi.kind, a), issueTime(fi.kind, b)
		if c := emptyLast(ta.IsZero(), tb.IsZero()); c != 0 {
			return c
		}
		return ta.Truncate(time.Minute).Compare(tb.Truncate(time.Minute))
	case fProject:
		return compareStrings(a.ProjectName, b.ProjectName)
	case fSummary:
		return compareStrings(a.summary(), b.summary())
	case fLabels:
		return compareStrings(strings.Join(sortedLower(a.Labels), " "), strings.Join(sortedLower(b.Labels), " "))
	}
	av, bv := fieldValues(fi.kind, a), fieldValues(fi.kind, b)
	return compareStrings(strings.Join(av, ""), strings.Join(bv, ""))
}

func sortedLower(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	slices.Sort(out)
	return out
}

func emptyLast(aEmpty, bEmpty bool) int {
	switch {
	case aEmpty && !bEmpty:
		return 1
	case !aEmpty && bEmpty:
		return -1
	}
	return 0
}

func compareStrings(a, b string) int {
	if c := emptyLast(a == "", b == ""); c != 0 {
		return c
	}
	return cmp.Compare(strings.ToLower(a), strings.ToLower(b))
}
