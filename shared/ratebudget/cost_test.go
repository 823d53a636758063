package ratebudget_test

import (
	"net/http"
	"testing"

	"jiraexport/shared/ratebudget"
)

func TestCostRules(t *testing.T) {
	tests := []struct {
		name   string
		method string
		status int
		o      ratebudget.Objects
		want   int64
	}{
		{"GET issue (Atlassian's example)", "GET", 200, ratebudget.Objects{Core: 1}, 2},
		{"group member page of 8 users (Atlassian's example)", "GET", 200, ratebudget.Objects{Identity: 8}, 17},
		{"search page of 100", "POST", 200, ratebudget.Objects{Core: 100}, 101},
		{"write costs the base point only", "PUT", 204, ratebudget.Objects{Core: 3}, 1},
		{"delete", "DELETE", 204, ratebudget.Objects{}, 1},
		{"patch", "PATCH", 200, ratebudget.Objects{Identity: 1}, 1},
		{"404 still costs the request", "GET", 404, ratebudget.Objects{}, 1},
		{"5xx counted (safe side)", "GET", 503, ratebudget.Objects{}, 1},
		{"429 is refused before Jira works", "GET", 429, ratebudget.Objects{Core: 5}, 0},
		{"401 is refused by the gateway", "GET", 401, ratebudget.Objects{}, 0},
		{"no answer", "GET", 0, ratebudget.Objects{}, 0},
		{"negative counts are ignored", "GET", 200, ratebudget.Objects{Core: -4, Identity: -1}, 1},
	}
	for _, tt := range tests {
		if got := ratebudget.Cost(tt.method, tt.status, tt.o); got != tt.want {
			t.Errorf("%s: Cost(%s, %d, %+v) = %d, want %d", tt.name, tt.method, tt.status, tt.o, got, tt.want)
		}
	}
}

// The helpers must agree with the simulator's charges (infra/atlassiansim: TestPointsCharged) and Atlassian's rule.
func TestEndpointHelpers(t *testing.T) {
	tests := []struct {
		name string
		got  int64
		want int64
	}{
		{"search/jql with 50 ids", ratebudget.SearchJQL(50), 51},
		{"search/jql empty page", ratebudget.SearchJQL(0), 1},
		{"approximate-count", ratebudget.ApproximateCount(), 1},
		{"jql/parse", ratebudget.ParseJQL(), 1},
		{"issue", ratebudget.Issue(), 2},
		{"bulkfetch of 3", ratebudget.BulkFetch(3), 4},
		{"comment page of 100", ratebudget.CommentPage(100), 101},
		{"changelog page of 40", ratebudget.ChangelogPage(40), 41},
		{"changelog bulkfetch of 1000", ratebudget.ChangelogBulkFetch(1000), 1001},
		{"worklog page of 20", ratebudget.WorklogPage(20), 21},
		{"field list of 120", ratebudget.Fields(120), 121},
		{"attachment content", ratebudget.AttachmentContent(), 2},
		{"attachment metadata", ratebudget.AttachmentMetadata(), 2},
		{"myself", ratebudget.Myself(), 3},
		{"user", ratebudget.User(), 3},
		{"write", ratebudget.Write(), 1},
		{"failure 404", ratebudget.Failure(http.StatusNotFound), 1},
		{"failure 429", ratebudget.Failure(http.StatusTooManyRequests), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	const site = "c0ffee00-1111-2222-3333-444455556666"
	gw := "/ex/jira/" + site
	tests := []struct {
		method, path string
		want         string
		wantSite     string
		ok           bool
		rps          float64
	}{
		{"POST", gw + "/rest/api/3/search/jql", "POST /rest/api/3/search/jql", site, true, 100},
		{"GET", gw + "/rest/api/3/search/jql", "GET /rest/api/3/search/jql", site, true, 100},
		{"POST", gw + "/rest/api/3/search/approximate-count", "POST /rest/api/3/search/approximate-count", site, true, 150},
		{"POST", gw + "/rest/api/3/jql/parse", "POST /rest/api/3/jql/parse", site, true, 100},
		{"GET", gw + "/rest/api/3/issue/PRJ-12", "GET /rest/api/3/issue/{issueIdOrKey}", site, true, 150},
		{"get", gw + "/rest/api/3/issue/10001", "GET /rest/api/3/issue/{issueIdOrKey}", site, true, 150},
		{"POST", gw + "/rest/api/3/issue/bulkfetch", "POST /rest/api/3/issue/bulkfetch", site, true, 100},
		{"GET", gw + "/rest/api/3/issue/10001/comment", "GET /rest/api/3/issue/{issueIdOrKey}/comment", site, true, 100},
		{"GET", gw + "/rest/api/3/issue/10001/changelog", "GET /rest/api/3/issue/{issueIdOrKey}/changelog", site, true, 200},
		{"POST", gw + "/rest/api/3/changelog/bulkfetch", "POST /rest/api/3/changelog/bulkfetch", site, true, 100},
		{"GET", gw + "/rest/api/3/issue/10001/worklog", "GET /rest/api/3/issue/{issueIdOrKey}/worklog", site, true, 100},
		{"GET", gw + "/rest/api/3/field", "GET /rest/api/3/field", site, true, 100},
		{"GET", gw + "/rest/api/3/myself", "GET /rest/api/3/myself", site, true, 100},
		{"GET", gw + "/rest/api/3/user", "GET /rest/api/3/user", site, true, 150},
		{"GET", gw + "/rest/api/3/attachment/content/10042", "GET /rest/api/3/attachment/content/{id}", site, true, 300},
		{"GET", gw + "/rest/api/3/attachment/thumbnail/10042", "GET /rest/api/3/attachment/thumbnail/{id}", site, true, 200},
		{"GET", gw + "/rest/api/3/attachment/meta", "GET /rest/api/3/attachment/meta", site, true, 100},
		{"GET", gw + "/rest/api/3/attachment/10042", "GET /rest/api/3/attachment/{id}", site, true, 100},
		{"GET", gw + "/rest/api/2/issue/PRJ-1", "GET /rest/api/2/issue/{issueIdOrKey}", site, true, 150},
		{"PUT", gw + "/rest/api/3/issue/PRJ-1", "PUT *", site, true, 50},
		{"DELETE", gw + "/rest/api/3/issue/PRJ-1", "DELETE *", site, true, 50},
		{"PATCH", gw + "/rest/api/3/whatever", "PATCH *", site, true, 50},
		{"GET", gw + "/rest/api/3/project/search", "GET *", site, true, 100},
		{"GET", "/rest/api/3/issue/PRJ-1", "GET /rest/api/3/issue/{issueIdOrKey}", "", true, 150},
		{"GET", gw + "/rest/api/3/issue/", "GET *", site, true, 100},
		{"POST", "/oauth/token", "", "", false, 0},
		{"GET", "/media/file/abc/binary", "", "", false, 0},
		{"GET", "/ex/jira//rest/api/3/myself", "", "", false, 0},
	}
	for _, tt := range tests {
		e, s, ok := ratebudget.Classify(tt.method, tt.path)
		if ok != tt.ok || s != tt.wantSite || (ok && e.String() != tt.want) {
			t.Errorf("Classify(%s, %s) = %q, %q, %v; want %q, %q, %v", tt.method, tt.path, e, s, ok, tt.want, tt.wantSite, tt.ok)
			continue
		}
		if ok {
			if got := ratebudget.DefaultRPS(e); got != tt.rps {
				t.Errorf("DefaultRPS(%s) = %v, want %v", e, got, tt.rps)
			}
		}
	}
}
