package jql

type fieldKind int

const (
	fUnknown fieldKind = iota
	fProject
	fKey
	fIssueType
	fStatus
	fLabels
	fAssignee
	fReporter
	fCreated
	fUpdated
	fSummary
	fDescription
	fComment
	fText
	fCustomNumber
)

type valueType int

const (
	vtName valueType = iota // project, issue type, status, label
	vtKey
	vtUser
	vtDate
	vtText
	vtNumber
)

type fieldInfo struct {
	kind     fieldKind
	typ      valueType
	ops      map[string]bool
	sortable bool
}

func opSet(ops ...string) map[string]bool {
	m := make(map[string]bool, len(ops))
	for _, o := range ops {
		m[o] = true
	}
	return m
}

var (
	equalityOps = opSet("=", "!=", "in", "not in", "is", "is not")
	keyOps      = opSet("=", "!=", "<", ">", "<=", ">=", "in", "not in")
	dateOps     = opSet("=", "!=", "<", ">", "<=", ">=", "in", "not in", "is", "is not")
	textOps     = opSet("~", "!~", "is", "is not")
	numberOps   = opSet("=", "!=", "<", ">", "<=", ">=", "in", "not in", "is", "is not")
)

var fields = map[string]fieldInfo{
	"project":     {fProject, vtName, equalityOps, true},
	"key":         {fKey, vtKey, keyOps, true},
	"issuekey":    {fKey, vtKey, keyOps, true},
	"id":          {fKey, vtKey, keyOps, true},
	"issuetype":   {fIssueType, vtName, equalityOps, true},
	"type":        {fIssueType, vtName, equalityOps, true},
	"status":      {fStatus, vtName, equalityOps, true},
	"labels":      {fLabels, vtName, equalityOps, true},
	"assignee":    {fAssignee, vtUser, equalityOps, true},
	"reporter":    {fReporter, vtUser, equalityOps, true},
	"created":     {fCreated, vtDate, dateOps, true},
	"createddate": {fCreated, vtDate, dateOps, true},
	"updated":     {fUpdated, vtDate, dateOps, true},
	"updateddate": {fUpdated, vtDate, dateOps, true},
	"summary":     {fSummary, vtText, textOps, true},
	"description": {fDescription, vtText, textOps, false},
	"comment":     {fComment, vtText, opSet("~", "!~"), false},
	"text":        {fText, vtText, opSet("~"), false},
}

func lookupField(f fieldRef) (fieldInfo, bool) {
	if f.custom {
		// Number custom fields (story points and the like) are the only custom fields the simulator searches;
		// whether the id exists on the site is the catalog's question (see CustomFieldCatalog).
		return fieldInfo{fCustomNumber, vtNumber, numberOps, true}, true
	}
	fi, ok := fields[f.lower]
	return fi, ok
}

// customID returns N of a cf[N] reference.
func customID(f fieldRef) (int64, bool) {
	return f.id, f.custom && f.id > 0
}
