package jql

// Structure returns a value whose JSON encoding matches the OpenAPI schema JqlQuery (where + orderBy), as
// /rest/api/3/jql/parse returns it. Nested lists are flattened because ListOperand only holds unitary operands.
//
// The spec's FieldValueClause operator enum lists "~=" where Jira's operator is "!~"; Structure reports "!~".
func (q *Query) Structure() any {
	s := map[string]any{}
	if q.where != nil {
		s["where"] = clauseStructure(q.where)
	}
	if len(q.orderBy) > 0 {
		fs := make([]any, len(q.orderBy))
		for i, of := range q.orderBy {
			e := map[string]any{"field": fieldStructure(of.field)}
			if of.dir != "" {
				e["direction"] = of.dir
			}
			fs[i] = e
		}
		s["orderBy"] = map[string]any{"fields": fs}
	}
	return s
}

func fieldStructure(f fieldRef) map[string]any {
	return map[string]any{"name": f.name, "encodedName": f.encoded()}
}

func clauseStructure(c clause) map[string]any {
	switch c := c.(type) {
	case *compound:
		subs := make([]any, len(c.clauses))
		for i, sub := range c.clauses {
			subs[i] = clauseStructure(sub)
		}
		return map[string]any{"operator": c.op, "clauses": subs}
	case *terminal:
		return map[string]any{
			"field":    fieldStructure(c.field),
			"operator": c.op,
			"operand":  operandStructure(c.operand),
		}
	}
	return nil
}

func operandStructure(o operand) map[string]any {
	switch o := o.(type) {
	case value:
		return map[string]any{"value": o.text, "encodedValue": o.String()}
	case function:
		args := make([]any, len(o.args))
		for i, a := range o.args {
			args[i] = a
		}
		return map[string]any{"function": o.name, "arguments": args, "encodedOperand": o.String()}
	case keyword:
		return map[string]any{"keyword": "empty"}
	case list:
		items := flatten(o)
		vals := make([]any, len(items))
		for i, it := range items {
			vals[i] = operandStructure(it)
		}
		return map[string]any{"values": vals, "encodedOperand": o.String()}
	}
	return nil
}
