// Package ratebudget keeps the product inside Atlassian's 2026 rate limits for OAuth 2.0 (3LO) apps
// (../shared/reference/jira-cloud.md §4): one points quota per hour shared by every customer of the app, optional
// per-tenant quotas, and per-second burst buckets per tenant × endpoint × method.
//
//   - Accounting: what a request costs (Cost and the per-endpoint helpers), a per-run Tally, and a DynamoDB
//     Ledger of points per connection and per app per UTC hour that the dispatcher reads.
//   - Quota pauses: ParseLimit reads a 429's headers; Pauses stores one app-wide pause (global quota) or one per
//     site (tenant quota) until the reset, for every export, the dispatcher and the API to honour.
//   - Fair sharing: Allocator splits what is left of the hour max-min fairly across connections with work;
//     StartOffset spreads start times across the minute.
//
// Pacing (the burst buckets) is the http.RoundTripper in ratebudget/pacer; retry delays are shared/backoff.
package ratebudget

import (
	"net/http"
	"strings"
)

// Endpoint names one Jira REST operation: its method and its path template as in Atlassian's OpenAPI
// description, e.g. GET /rest/api/3/issue/{issueIdOrKey}. String() gives the same keys the simulator uses in its
// counters and burst table.
type Endpoint struct {
	Method string
	Path   string
}

func (e Endpoint) String() string { return e.Method + " " + e.Path }

// Known reports whether e is one of the templates this package knows (Classify answers Path "*" otherwise).
func (e Endpoint) Known() bool { return e.Path != "" && e.Path != "*" }

// template is one known operation; path segments after /rest/api/{version}.
type template struct {
	method string
	segs   []string // "{…}" is a parameter
	rps    float64  // Atlassian's per-endpoint burst override; 0 = the method's default
}

// templates lists the operations the product calls and those with a documented burst override. Atlassian's
// rate limiting page lists the overrides as /api/{version}/…, so any API version maps to the same rate.
var templates = []template{
	{"GET", seg("search/jql"), 0},
	{"POST", seg("search/jql"), 0},
	{"POST", seg("search/approximate-count"), 150},
	{"POST", seg("jql/parse"), 0},
	{"GET", seg("issue/{issueIdOrKey}"), 150},
	{"POST", seg("issue/bulkfetch"), 0},
	{"GET", seg("issue/{issueIdOrKey}/comment"), 0},
	{"GET", seg("issue/{issueIdOrKey}/changelog"), 200},
	{"POST", seg("changelog/bulkfetch"), 0},
	{"GET", seg("issue/{issueIdOrKey}/worklog"), 0},
	{"GET", seg("field"), 0},
	{"GET", seg("myself"), 0},
	{"GET", seg("user"), 150},
	{"GET", seg("attachment/content/{id}"), 300},
	{"GET", seg("attachment/thumbnail/{id}"), 200},
	{"GET", seg("attachment/meta"), 0},
	{"GET", seg("attachment/{id}"), 0},
}

func seg(p string) []string { return strings.Split(p, "/") }

// methodRPS are Atlassian's default steady-state burst rates per method.
var methodRPS = map[string]float64{http.MethodGet: 100, http.MethodPost: 100, http.MethodPut: 50, http.MethodDelete: 50}

// fallbackRPS applies to methods Atlassian does not list (PATCH, HEAD, ...): the stricter of its defaults.
const fallbackRPS = 50

// Classify maps a request to its site and endpoint. path is the URL path as sent: through the API gateway
// (/ex/jira/{cloudId}/rest/api/3/...) the site is the cloud id; on a site's own host (/rest/api/3/...) site is
// empty and the caller should use the host. An unknown operation under /rest/api/ answers Path "*" (one shared
// bucket per method, at the method's default rate); ok is false for anything that is not a Jira REST call
// (token endpoint, media host).
func Classify(method, path string) (e Endpoint, site string, ok bool) {
	method = strings.ToUpper(method)
	rest := path
	if r, found := strings.CutPrefix(path, "/ex/jira/"); found {
		id, tail, _ := strings.Cut(r, "/")
		if id == "" {
			return Endpoint{}, "", false
		}
		site, rest = id, "/"+tail
	}
	tail, found := strings.CutPrefix(rest, "/rest/api/")
	if !found {
		return Endpoint{}, "", false
	}
	version, opPath, _ := strings.Cut(tail, "/")
	if version == "" {
		return Endpoint{}, "", false
	}
	t := match(method, strings.Split(strings.TrimSuffix(opPath, "/"), "/"))
	if t == nil {
		return Endpoint{Method: method, Path: "*"}, site, true
	}
	return Endpoint{Method: method, Path: "/rest/api/" + version + "/" + strings.Join(t.segs, "/")}, site, true
}

// match returns the template for method and segs; a literal segment beats a parameter (attachment/meta is not
// attachment/{id}).
func match(method string, segs []string) *template {
	var best *template
	bestLit := -1
	for i := range templates {
		t := &templates[i]
		if t.method != method || len(t.segs) != len(segs) {
			continue
		}
		lit, ok := 0, true
		for j, s := range t.segs {
			if strings.HasPrefix(s, "{") {
				if segs[j] == "" {
					ok = false
					break
				}
				continue
			}
			if s != segs[j] {
				ok = false
				break
			}
			lit++
		}
		if ok && lit > bestLit {
			best, bestLit = t, lit
		}
	}
	return best
}

// DefaultRPS is Atlassian's default steady-state burst rate for e: the per-endpoint override where the rate
// limiting page lists one, else the method's default (GET 100, POST 100, PUT 50, DELETE 50).
func DefaultRPS(e Endpoint) float64 {
	if e.Known() {
		if _, tail, ok := strings.Cut(strings.TrimPrefix(e.Path, "/rest/api/"), "/"); ok {
			if t := match(e.Method, strings.Split(tail, "/")); t != nil && t.rps > 0 {
				return t.rps
			}
		}
	}
	if r, ok := methodRPS[e.Method]; ok {
		return r
	}
	return fallbackRPS
}
