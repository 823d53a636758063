package ratebudget

import "net/http"

// Objects counts what one response returned, by Atlassian's cost classes (jira-cloud.md §4, points-based
// quota): Core objects (issues, attachments, comments, changelog entries, worklogs, fields, projects, and any
// other object) cost 1 point each; Identity objects (users, groups, project roles, permissions) cost 2.
// Only the top-level objects of a response count: the users embedded in an issue do not (GET issue = 2 points,
// Atlassian's own example; /search/jql = 1 + issues).
type Objects struct {
	Core     int
	Identity int
}

// Charged reports whether Atlassian charges an answer with this status: the gateway refuses 401 (bad token)
// and 429 (rate limited) before Jira does any work, and a request that got no answer (status 0) is unknown.
// Everything else, errors included, costs at least the base point; counting a 5xx that Atlassian may not charge
// errs on the safe side.
func Charged(status int) bool {
	return status != 0 && status != http.StatusUnauthorized && status != http.StatusTooManyRequests
}

// Cost is the points one request costs by Atlassian's published rule: 1 per request, plus 1 per core object and
// 2 per identity object returned; writes (PUT, PATCH, DELETE) cost the base point only. Read-only POSTs
// (/search/jql, /issue/bulkfetch, ...) are reads: they pay for what they return.
func Cost(method string, status int, o Objects) int64 {
	if !Charged(status) {
		return 0
	}
	switch method {
	case http.MethodPut, http.MethodPatch, http.MethodDelete:
		return 1
	}
	return 1 + int64(max(o.Core, 0)) + 2*int64(max(o.Identity, 0))
}

func read(core, identity int) int64 {
	return Cost(http.MethodGet, http.StatusOK, Objects{core, identity})
}

// Per-endpoint costs of a successful (2xx/3xx) answer, from the counts the caller decoded. A failed answer costs
// Failure(status).

// SearchJQL is /search/jql (GET or POST) returning issues issues (ids-only census pages included).
func SearchJQL(issues int) int64 { return read(issues, 0) }

// ApproximateCount is POST /search/approximate-count: a count is no object.
func ApproximateCount() int64 { return read(0, 0) }

// ParseJQL is POST /jql/parse: parsed query structures are no counted object.
func ParseJQL() int64 { return read(0, 0) }

// Issue is GET /issue/{issueIdOrKey}: one issue (Atlassian's example: 2 points).
func Issue() int64 { return read(1, 0) }

// BulkFetch is POST /issue/bulkfetch returning issues issues (ids Jira leaves out cost nothing).
func BulkFetch(issues int) int64 { return read(issues, 0) }

// CommentPage is GET /issue/{id}/comment returning comments comments.
func CommentPage(comments int) int64 { return read(comments, 0) }

// ChangelogPage is GET /issue/{id}/changelog returning entries changelog entries (histories).
func ChangelogPage(entries int) int64 { return read(entries, 0) }

// ChangelogBulkFetch is POST /changelog/bulkfetch returning entries changelog entries (histories) across all
// its issues.
func ChangelogBulkFetch(entries int) int64 { return read(entries, 0) }

// WorklogPage is GET /issue/{id}/worklog returning worklogs worklogs.
func WorklogPage(worklogs int) int64 { return read(worklogs, 0) }

// Fields is GET /field returning fields field definitions.
func Fields(fields int) int64 { return read(fields, 0) }

// AttachmentContent is GET /attachment/content/{id} (the 303 or the bytes) or /attachment/thumbnail/{id}: one
// attachment object. The download from the media host that follows is not a Jira call and costs nothing.
func AttachmentContent() int64 { return read(1, 0) }

// AttachmentMetadata is GET /attachment/{id}: one attachment object.
func AttachmentMetadata() int64 { return read(1, 0) }

// Myself is GET /myself: one user object.
func Myself() int64 { return read(0, 1) }

// User is GET /user?accountId=: one user object.
func User() int64 { return read(0, 1) }

// Write is any PUT, PATCH or DELETE (and write POSTs): the base point only.
func Write() int64 { return 1 }

// Failure is what an answer with a non-success status costs: the base point, or nothing when Atlassian does
// not charge it (401, 429, no answer).
func Failure(status int) int64 { return Cost(http.MethodGet, status, Objects{}) }
