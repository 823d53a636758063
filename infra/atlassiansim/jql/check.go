package jql

import (
	"fmt"
	"strconv"
	"strings"
)

// Catalog lets validation know which values exist on the site.
type Catalog interface {
	ProjectExists(v string) bool // key, id or name
	IssueTypeExists(v string) bool
	StatusExists(v string) bool
	UserExists(accountID string) bool
}

// IssueCatalog is optionally implemented by a Catalog; when it is, Check reports issue keys that do not exist
// as Jira does ("An issue with key 'X-1' does not exist for field 'key'.").
type IssueCatalog interface {
	IssueExists(keyOrID string) bool
}

// CustomFieldCatalog is implemented by catalogs that know the site's custom fields. cf[N] clauses are accepted
// for number custom fields it reports; without it, or for other ids, cf[N] does not exist (Jira's message).
type CustomFieldCatalog interface {
	NumberCustomFieldExists(id int64) bool
}

const dateFormatsHint = "Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."

// knownFunctions maps the lower-case function names the simulator implements to their argument counts.
var knownFunctions = map[string]struct{ min, max int }{
	"currentuser": {0, 0},
	"now":         {0, 0},
	"startofday":  {0, 1},
	"endofday":    {0, 1},
}

// Check validates fields, operators and values the way Jira does after parsing. Errors make a search fail;
// warnings name values that match nothing (Jira's validation=warn mode). Both are Jira's texts, without duplicates.
func (q *Query) Check(c Catalog) (errs, warnings []string) {
	ck := &checker{cat: c, seen: map[string]bool{}}
	if q.where != nil {
		ck.clause(q.where)
	}
	for _, of := range q.orderBy {
		fi, ok := lookupField(of.field)
		if ok && fi.kind == fCustomNumber {
			id, idOK := customID(of.field)
			cc, catOK := c.(CustomFieldCatalog)
			ok = idOK && catOK && cc.NumberCustomFieldExists(id)
		}
		switch {
		case !ok:
			ck.err("Field '%s' does not exist or you do not have permission to view it.", of.field.name)
		case !fi.sortable:
			ck.err("Field '%s' does not support sorting.", of.field.name)
		}
	}
	return ck.errs, ck.warnings
}

type checker struct {
	cat            Catalog
	errs, warnings []string
	seen           map[string]bool
}

func (c *checker) err(format string, args ...any) {
	if m := fmt.Sprintf(format, args...); !c.seen[m] {
		c.seen[m] = true
		c.errs = append(c.errs, m)
	}
}

func (c *checker) warn(format string, args ...any) {
	if m := fmt.Sprintf(format, args...); !c.seen[m] {
		c.seen[m] = true
		c.warnings = append(c.warnings, m)
	}
}

func (c *checker) clause(cl clause) {
	switch cl := cl.(type) {
	case *compound:
		for _, sub := range cl.clauses {
			c.clause(sub)
		}
	case *terminal:
		c.terminal(cl)
	}
}

func displayOperand(o operand) string {
	if v, ok := o.(value); ok {
		return v.display()
	}
	return o.String()
}

func (c *checker) terminal(t *terminal) {
	name := t.field.name
	fi, ok := lookupField(t.field)
	if ok && fi.kind == fCustomNumber {
		id, idOK := customID(t.field)
		cc, catOK := c.cat.(CustomFieldCatalog)
		ok = idOK && catOK && cc.NumberCustomFieldExists(id)
	}
	if !ok {
		c.err("Field '%s' does not exist or you do not have permission to view it.", name)
		return
	}
	_, isList := t.operand.(list)
	_, isEmpty := t.operand.(keyword)
	_, isFunc := t.operand.(function)
	switch t.op {
	case "in", "not in":
		if !isList && !isFunc {
			c.err("Operator '%s' does not support the non-list value '%s' for field '%s'.", t.op, displayOperand(t.operand), name)
			return
		}
	case "is", "is not":
		if !isEmpty {
			c.err("The operator '%s' only supports searching for EMPTY values.", t.op)
			return
		}
	default:
		if isList {
			c.err("Operator '%s' does not support the list value '%s' for field '%s'.", t.op, t.operand.String(), name)
			return
		}
	}
	if !fi.ops[t.op] {
		c.err("The operator '%s' is not supported by the '%s' field.", t.op, name)
		return
	}
	if isEmpty && t.op != "is" && t.op != "is not" && (fi.typ == vtText || fi.typ == vtKey || strings.ContainsAny(t.op, "<>")) {
		c.err("The operator '%s' does not support searching for EMPTY values.", t.op)
		return
	}
	for _, o := range flatten(t.operand) {
		c.operandValue(t, fi, o)
	}
}

func (c *checker) operandValue(t *terminal, fi fieldInfo, o operand) {
	name := t.field.name
	switch o := o.(type) {
	case function:
		c.function(t, fi, o)
	case value:
		switch fi.typ {
		case vtNumber:
			if _, err := strconv.ParseFloat(o.text, 64); err != nil {
				c.err("The value '%s' is invalid for the field '%s'.", o.text, name)
			}
		case vtDate:
			if !validDate(o.text) {
				c.err("Date value '%s' for field '%s' is invalid. %s", o.text, name, dateFormatsHint)
			}
		case vtKey:
			if !validKeyValue(o.text) {
				c.err("The issue key '%s' for field '%s' is invalid.", o.text, name)
			} else if ic, ok := c.cat.(IssueCatalog); ok && !ic.IssueExists(o.text) {
				if isNumberText(o.text) {
					c.err("An issue with id '%s' does not exist for field '%s'.", o.text, name)
				} else {
					c.err("An issue with key '%s' does not exist for field '%s'.", o.text, name)
				}
			}
		case vtUser:
			if !c.cat.UserExists(o.text) {
				c.warn("The value '%s' does not exist for the field '%s'.", o.text, name)
			}
		case vtName:
			exists := true
			switch fi.kind {
			case fProject:
				exists = c.cat.ProjectExists(o.text)
			case fIssueType:
				exists = c.cat.IssueTypeExists(o.text)
			case fStatus:
				exists = c.cat.StatusExists(o.text)
			}
			if !exists {
				c.warn("The value '%s' does not exist for the field '%s'.", o.text, name)
			}
		}
	}
}

func (c *checker) function(t *terminal, fi fieldInfo, f function) {
	lname := strings.ToLower(f.name)
	arity, ok := knownFunctions[lname]
	if !ok {
		c.err("Unable to find JQL function '%s()'.", f.name)
		return
	}
	switch n := len(f.args); {
	case arity.min == arity.max && n != arity.min:
		c.err("Function '%s' expected '%d' arguments but received '%d'.", f.name, arity.min, n)
		return
	case n < arity.min || n > arity.max:
		c.err("Function '%s' expected between '%d' and '%d' arguments but received '%d'.", f.name, arity.min, arity.max, n)
		return
	}
	if len(f.args) == 1 {
		if _, ok := parseFunctionOffset(f.args[0]); !ok {
			c.err("Duration for function '%s' should have the format (+/-)n(yMwdm), e.g -1M for 1 month earlier.", f.name)
			return
		}
	}
	userFunc := lname == "currentuser"
	if (userFunc && fi.typ != vtUser) || (!userFunc && fi.typ != vtDate) {
		c.err("A value provided by the JQL function '%s' is invalid for the field '%s'.", f.name, t.field.name)
	}
}
