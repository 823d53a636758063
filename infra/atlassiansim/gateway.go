package atlassiansim

import (
	"net/http"
	"time"
)

const gatewayPrefix = "/ex/jira/{cloudId}"

// endpoint is one Jira REST operation behind the gateway.
type endpoint struct {
	method, path string   // path as in the OpenAPI description, e.g. /rest/api/3/issue/{issueIdOrKey}
	scope        string   // classic scope; "" = any valid token for the site
	granular     []string // alternative: all of these granular scopes
	h            func(*call) response
}

func (e endpoint) key() string { return e.method + " " + e.path }

// call is one authenticated gateway request, handled under s.mu.
type call struct {
	s      *Server
	r      *http.Request
	site   *site
	user   *User
	acc    *accessRec
	now    time.Time
	key    string
	loc    *time.Location
	points int64 // per-object points on top of the base point
	// failIssue: an issue_error fault asks bulkfetch to report one issue in issueErrors.
	failIssue bool
}

// response is what a handler computed under the lock; the body is already encoded so nothing shared escapes it.
type response struct {
	status int
	body   []byte
	header http.Header
	stream func(w http.ResponseWriter) int64 // written after the lock is released; returns bytes sent
}

func jsonResponse(status int, v any) response {
	b, err := marshalJSON(v)
	if err != nil {
		return response{status: http.StatusInternalServerError, body: []byte(`{"errorMessages":["internal error"],"errors":{}}`)}
	}
	return response{status: status, body: b}
}

func jiraErr(status int, msgs ...string) response {
	return jsonResponse(status, errorCollection(msgs...))
}

var granularIssueRead = []string{"read:issue-meta:jira", "read:issue-security-level:jira", "read:issue.vote:jira",
	"read:issue.changelog:jira", "read:avatar:jira", "read:issue:jira", "read:status:jira", "read:user:jira",
	"read:field-configuration:jira"}

func (s *Server) endpoints() []endpoint {
	searchGran := []string{"read:issue-details:jira", "read:field.default-value:jira", "read:field.option:jira", "read:field:jira", "read:group:jira"}
	gone := func(c *call) response { return jiraErr(http.StatusGone, legacySearchGone) }
	eps := []endpoint{
		{"GET", "/rest/api/3/search/jql", "read:jira-work", []string{"read:issue-details:jira", "read:audit-log:jira", "read:avatar:jira", "read:field-configuration:jira", "read:issue-meta:jira"}, (*call).searchGet},
		{"POST", "/rest/api/3/search/jql", "read:jira-work", searchGran, (*call).searchPost},
		{"POST", "/rest/api/3/search/approximate-count", "read:jira-work", searchGran, (*call).approximateCount},
		{"POST", "/rest/api/3/jql/parse", "read:jira-work", []string{"read:field:jira", "validate:jql:jira", "read:jql:jira"}, (*call).jqlParse},
		{"POST", "/rest/api/3/issue/bulkfetch", "read:jira-work", granularIssueRead, (*call).bulkFetch},
		{"GET", "/rest/api/3/issue/{issueIdOrKey}", "read:jira-work", granularIssueRead, (*call).getIssue},
		{"GET", "/rest/api/3/issue/{issueIdOrKey}/comment", "read:jira-work", []string{"read:comment:jira", "read:comment.property:jira", "read:group:jira", "read:project:jira", "read:project-role:jira", "read:user:jira", "read:avatar:jira"}, (*call).comments},
		{"GET", "/rest/api/3/issue/{issueIdOrKey}/changelog", "read:jira-work", []string{"read:issue-meta:jira", "read:avatar:jira", "read:issue.changelog:jira"}, (*call).changelog},
		{"POST", "/rest/api/3/changelog/bulkfetch", "read:jira-work", []string{"read:issue-meta:jira", "read:avatar:jira", "read:issue.changelog:jira"}, (*call).changelogBulk},
		{"GET", "/rest/api/3/issue/{issueIdOrKey}/worklog", "read:jira-work", []string{"read:group:jira", "read:issue-worklog:jira", "read:issue-worklog.property:jira", "read:project-role:jira", "read:user:jira", "read:avatar:jira"}, (*call).worklogs},
		{"GET", "/rest/api/3/field", "read:jira-work", []string{"read:field:jira", "read:avatar:jira", "read:project-category:jira", "read:project:jira", "read:field-configuration:jira"}, (*call).fieldsList},
		{"GET", "/rest/api/3/user", "read:jira-user", []string{"read:application-role:jira", "read:group:jira", "read:user:jira", "read:avatar:jira"}, (*call).userGet},
		{"GET", "/rest/api/3/myself", "read:jira-user", []string{"read:application-role:jira", "read:group:jira", "read:user:jira", "read:avatar:jira"}, (*call).myself},
		{"GET", "/rest/api/3/attachment/content/{id}", "read:jira-work", []string{"read:attachment:jira"}, (*call).attachmentContent},
		{"GET", "/rest/api/3/attachment/thumbnail/{id}", "read:jira-work", []string{"read:attachment:jira"}, (*call).attachmentContent},
		{"GET", "/rest/api/3/attachment/meta", "read:jira-work", []string{"read:instance-configuration:jira"}, (*call).attachmentMeta},
		{"GET", "/rest/api/3/attachment/{id}", "read:jira-work", []string{"read:attachment:jira", "read:user:jira", "read:application-role:jira", "read:avatar:jira", "read:group:jira"}, (*call).attachmentMetadata},
	}
	// Removed with CHANGE-2046 (jira-cloud.md §3.2): GET/POST /search and POST /search/id answer 410 Gone.
	for _, v := range []string{"2", "3", "latest"} {
		eps = append(eps,
			endpoint{"GET", "/rest/api/" + v + "/search", "", nil, gone},
			endpoint{"POST", "/rest/api/" + v + "/search", "", nil, gone},
			endpoint{"POST", "/rest/api/" + v + "/search/id", "", nil, gone})
	}
	return eps
}

const legacySearchGone = "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"

// Endpoint keys of the non-Jira routes, used by counters, faults and the burst table.
const (
	KeyAuthorize           = "GET /authorize"
	KeyConsent             = "POST /authorize"
	KeyToken               = "POST /oauth/token"
	KeyAccessibleResources = "GET /oauth/token/accessible-resources"
	KeyMedia               = "GET /file/{uuid}/binary" // on the media host (Server.MediaURL)
	KeyReportAccounts      = "POST /app/report-accounts/"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /authorize", s.instrument(KeyAuthorize, http.HandlerFunc(s.handleAuthorize)))
	mux.Handle("POST /authorize", s.instrument(KeyConsent, http.HandlerFunc(s.handleConsentPost)))
	mux.Handle("POST /oauth/token", s.instrument(KeyToken, http.HandlerFunc(s.handleToken)))
	mux.Handle("GET /oauth/token/accessible-resources", s.instrument(KeyAccessibleResources, http.HandlerFunc(s.handleAccessibleResources)))
	// Without a media listener of its own (Handler mounted without Start or SetMediaURL) the media host lives under
	// /media on the same origin; with one, this path does not exist here.
	mux.Handle("GET /media/file/{uuid}/binary", s.instrument(KeyMedia, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.MediaURL() != "" {
			writeJSON(w, http.StatusNotFound, errorCollection("The media host is served on its own origin."))
			return
		}
		s.handleMedia(w, r)
	})))
	mux.Handle("POST /app/report-accounts/", s.instrument(KeyReportAccounts, http.HandlerFunc(s.handleReportAccounts)))
	mux.Handle("POST /app/report-accounts", s.instrument(KeyReportAccounts, http.HandlerFunc(s.handleReportAccounts)))
	for _, ep := range s.endpoints() {
		mux.Handle(ep.method+" "+gatewayPrefix+ep.path, s.instrument(ep.key(), s.gateway(ep)))
	}
	mux.HandleFunc("/ex/jira/{cloudId}/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorCollection("The requested resource is not simulated: "+r.URL.Path))
	})
	s.adminRoutes(mux)
	return mux
}

// gateway authenticates, authorises, rate-limits and charges one Jira REST call.
func (s *Server) gateway(ep endpoint) http.Handler {
	key := ep.key()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := s.clock.Now()
		s.mu.Lock()
		acc := s.authenticateLocked(r, now)
		st := s.data.siteByID[r.PathValue("cloudId")]
		if acc == nil || st == nil || !st.members[acc.accountID] {
			s.mu.Unlock()
			writeJSON(w, http.StatusUnauthorized, errUnauthorized)
			return
		}
		if ep.scope != "" && !hasScope(acc.scope, ep.scope) && !hasAllScopes(acc.scope, ep.granular) {
			s.mu.Unlock()
			writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "Unauthorized; scope does not match"})
			return
		}
		if d := s.limits.check(st.cloudID, ep.method, key, now); d != nil {
			s.counts.rateLimited[d.reason]++
			s.mu.Unlock()
			d.writeHeaders(w.Header())
			writeJSON(w, http.StatusTooManyRequests, errorCollection("Rate limit exceeded."))
			return
		}
		u := s.data.userByID[acc.accountID]
		c := &call{s: s, r: r, site: st, user: u, acc: acc, now: now, key: key, loc: userLocation(u)}
		if ep.path == "/rest/api/3/issue/bulkfetch" {
			c.failIssue = s.takeLocked(key, func(k FaultKind) bool { return k == FaultIssueError }) != nil
		}
		resp := ep.h(c)
		pts := int64(1) + c.points
		s.limits.charge(st.cloudID, pts, now)
		s.counts.points(st.cloudID, key, pts)
		s.limits.quotaHeaders(w.Header(), st.cloudID, now)
		s.mu.Unlock()

		for k, vs := range resp.header {
			w.Header()[k] = vs
		}
		if resp.stream != nil {
			n := resp.stream(w)
			s.mu.Lock()
			s.counts.BytesServed += n
			s.mu.Unlock()
			return
		}
		if resp.status == http.StatusSeeOther || resp.body == nil {
			w.WriteHeader(resp.status)
			return
		}
		writeBody(w, resp.status, "application/json;charset=UTF-8", resp.body)
	})
}

func hasAllScopes(scope string, want []string) bool {
	if len(want) == 0 {
		return false
	}
	for _, w := range want {
		if !hasScope(scope, w) {
			return false
		}
	}
	return true
}

func userLocation(u *User) *time.Location {
	if u != nil && u.TimeZone != "" {
		if l, err := time.LoadLocation(u.TimeZone); err == nil {
			return l
		}
	}
	return time.UTC
}

// jiraTime is Jira's timestamp layout: milliseconds and an offset without a colon, in the caller's time zone.
func (c *call) ts(t time.Time) string { return t.In(c.loc).Format("2006-01-02T15:04:05.000-0700") }

// api builds a gateway-rooted URL for this site.
func (c *call) api(path string) string {
	return c.s.base + "/ex/jira/" + c.site.cloudID + "/rest/api/3" + path
}
