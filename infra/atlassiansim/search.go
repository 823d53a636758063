package atlassiansim

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"jiraexport/infra/atlassiansim/jql"
)

const (
	unboundedJQL  = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
	invalidCursor = "The provided next page token is invalid or expired."
	cursorTTL     = 7 * 24 * time.Hour

	searchDefaultMax = 50
	searchMaxIDs     = 5000 // id/key-only pages
	searchMaxFields  = 100
	searchMaxHeavy   = 50 // *all, comments, descriptions or changelog expansion
	maxReconcile     = 50
)

// searchRequest is SearchAndReconcileRequestBean; GET query parameters are read into the same shape.
type searchRequest struct {
	JQL             string   `json:"jql"`
	NextPageToken   string   `json:"nextPageToken"`
	MaxResults      *int     `json:"maxResults"`
	Fields          []string `json:"fields"`
	Expand          string   `json:"expand"`
	Properties      []string `json:"properties"`
	FieldsByKeys    bool     `json:"fieldsByKeys"`
	ReconcileIssues []int64  `json:"reconcileIssues"`
}

func (c *call) searchGet() response {
	q := c.r.URL.Query()
	req := searchRequest{JQL: q.Get("jql"), NextPageToken: q.Get("nextPageToken"), Fields: splitList(q["fields"]),
		Expand: strings.Join(q["expand"], ","), Properties: splitList(q["properties"])}
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return jiraErr(http.StatusBadRequest, "The value '"+v+"' is invalid for the maxResults parameter.")
		}
		req.MaxResults = &n
	}
	for _, v := range splitList(q["reconcileIssues"]) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return jiraErr(http.StatusBadRequest, "The value '"+v+"' is invalid for the reconcileIssues parameter.")
		}
		req.ReconcileIssues = append(req.ReconcileIssues, n)
	}
	var err error
	if req.FieldsByKeys, err = queryBool(q, "fieldsByKeys"); err != nil {
		return jiraErr(http.StatusBadRequest, "fieldsByKeys must be true or false.")
	}
	if _, err = queryBool(q, "failFast"); err != nil {
		return jiraErr(http.StatusBadRequest, "failFast must be true or false.")
	}
	return c.search(req)
}

func (c *call) searchPost() response {
	var req searchRequest
	if err := decodeStrict(c.r, &req); err != nil {
		return jiraErr(http.StatusBadRequest, invalidPayload)
	}
	return c.search(req)
}

// compile parses and validates JQL the way search and count do: syntax errors, unbounded queries, and unknown
// values (which parse only reports as warnings) all fail with 400.
func (c *call) compile(s string) (*jql.Query, []string) {
	q, err := jql.Parse(s)
	if err != nil {
		return nil, []string{err.Error()}
	}
	if !q.Bounded() {
		return nil, []string{unboundedJQL}
	}
	errs, warns := q.Check(c.catalog())
	if msgs := append(errs, warns...); len(msgs) > 0 {
		return nil, msgs
	}
	return q, nil
}

func (c *call) env() jql.Env {
	return jql.Env{Now: c.now, Location: c.loc, CurrentUser: c.user.AccountID}
}

// matches returns the visible issues matching q, sorted. Issues listed in reconcile are judged on their live state;
// the others on the (possibly stale) index.
func (c *call) matches(q *jql.Query, reconcile map[int64]bool) []*jql.Issue {
	env := c.env()
	delay := c.s.cfg.ConsistencyDelay
	st := c.site
	var views []*jql.Issue
	var scratch jql.Issue
	labels := make([]string, 0, len(labelPool))
	for n := range st.skels {
		n := int32(n)
		var v *jql.Issue
		if is := st.live[n]; is != nil {
			if !is.project.canBrowse(c.user.AccountID) {
				continue
			}
			v = is.indexView(c.now, delay)
			if reconcile[is.id] {
				v = is.cur
			}
		} else {
			if !st.projects[st.skels[n].proj].canBrowse(c.user.AccountID) {
				continue
			}
			st.fillView(&scratch, n, labels[:0])
			if !q.Match(&scratch, env) {
				continue
			}
			v = &jql.Issue{}
			*v = scratch
			v.Labels = slices.Clone(scratch.Labels)
			views = append(views, v)
			continue
		}
		if v == nil || !q.Match(v, env) {
			continue
		}
		views = append(views, v)
	}
	// Ties break on the id, so the order is total and an unstable sort gives the same answer, faster.
	slices.SortFunc(views, func(a, b *jql.Issue) int {
		if r := q.Compare(a, b); r != 0 {
			return r
		}
		return compareInt(a.ID, b.ID)
	})
	return views
}

// hits are search results: index views, turned into issues only for the page being rendered.
func (c *call) issueAt(v *jql.Issue) *issue { return c.site.issue(int32(v.ID - 10000)) }

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// indexView is what the search index holds for the issue at now.
func (is *issue) indexView(now time.Time, delay time.Duration) *jql.Issue {
	if delay > 0 && now.Before(is.changedAt.Add(delay)) {
		return is.prev
	}
	return is.cur
}

func (c *call) search(req searchRequest) response {
	if len(req.ReconcileIssues) > maxReconcile {
		return jiraErr(http.StatusBadRequest, "The number of issues to reconcile exceeds the limit of 50.")
	}
	if len(req.Properties) > 5 {
		return jiraErr(http.StatusBadRequest, "The number of properties requested exceeds the limit of 5.")
	}
	q, msgs := c.compile(req.JQL)
	if msgs != nil {
		return jiraErr(http.StatusBadRequest, msgs...)
	}
	fields := parseFields(req.Fields, "id")
	expand := parseExpand(req.Expand)
	limit := searchMaxFields
	switch {
	case fields.identityOnly() && len(expand) == 0:
		limit = searchMaxIDs
	case fields.heavy() || expand["changelog"] || expand["renderedFields"]:
		limit = searchMaxHeavy
	}
	size := searchDefaultMax
	if req.MaxResults != nil {
		size = *req.MaxResults
	}
	size = max(1, min(size, limit)) // above the cap Jira silently lowers it

	digest := cursorDigest("search", req.JQL, strings.Join(req.Fields, ","), req.Expand)
	offset := int64(0)
	if req.NextPageToken != "" {
		var ok bool
		if offset, ok = c.s.openCursor(req.NextPageToken, c, digest); !ok {
			return jiraErr(http.StatusBadRequest, invalidCursor)
		}
	}
	reconcile := map[int64]bool{}
	for _, id := range req.ReconcileIssues {
		reconcile[id] = true
	}
	all := c.matches(q, reconcile)
	o := renderOpts{fields: fields, expand: expand, commentCap: searchEmbedComments, changelogCap: searchEmbedChangelog,
		worklogCap: embedWorklogs, minimal: fields.identityOnly() && len(expand) == 0}
	issues := []any{}
	end := min(offset+int64(size), int64(len(all)))
	for i := offset; i < end; i++ {
		if o.minimal {
			// id/key pages never need the body: the view has both (a 5000-issue census page stays cheap).
			m := map[string]any{"id": strconv.FormatInt(all[i].ID, 10)}
			if fields.include["key"] {
				m["key"] = all[i].Key
				if is := c.site.live[int32(all[i].ID-10000)]; is != nil {
					m["key"] = is.key
				}
			}
			issues = append(issues, m)
			continue
		}
		issues = append(issues, c.renderIssue(c.issueAt(all[i]), o))
	}
	c.points += int64(len(issues))
	out := map[string]any{"issues": issues, "isLast": end >= int64(len(all))}
	if end < int64(len(all)) {
		out["nextPageToken"] = c.s.sealCursor(c, digest, end)
	}
	if expand["names"] {
		names := map[string]string{}
		for _, fd := range fieldDefs {
			if fields.want(fd.id) {
				names[fd.id] = fieldNames[fd.id]
			}
		}
		out["names"] = names
	}
	if expand["schema"] {
		schema := map[string]any{}
		for _, fd := range fieldDefs {
			if fields.want(fd.id) {
				schema[fd.id] = fieldSchemas[fd.id]
			}
		}
		out["schema"] = schema
	}
	return jsonResponse(http.StatusOK, out)
}

// approximateCount is POST /rest/api/3/search/approximate-count. It counts the index, so it lags like search.
func (c *call) approximateCount() response {
	var req struct {
		JQL string `json:"jql"`
	}
	if err := decodeStrict(c.r, &req); err != nil {
		return jiraErr(http.StatusBadRequest, invalidPayload)
	}
	q, msgs := c.compile(req.JQL)
	if msgs != nil {
		return jiraErr(http.StatusBadRequest, msgs...)
	}
	return jsonResponse(http.StatusOK, map[string]any{"count": len(c.matches(q, nil))})
}

// jqlParse is POST /rest/api/3/jql/parse. Unlike search it answers 200 with errors per query.
func (c *call) jqlParse() response {
	mode := c.r.URL.Query().Get("validation")
	switch mode {
	case "strict", "warn", "none":
	case "":
		return jiraErr(http.StatusBadRequest, "The 'validation' query parameter is required.")
	default:
		return jiraErr(http.StatusBadRequest, "The value '"+mode+"' is invalid for the validation parameter. Valid values are strict, warn and none.")
	}
	var req struct {
		Queries []string `json:"queries"`
	}
	if err := decodeStrict(c.r, &req); err != nil || req.Queries == nil {
		return jiraErr(http.StatusBadRequest, invalidPayload)
	}
	out := []any{}
	for _, s := range req.Queries {
		if strings.TrimSpace(s) == "" {
			return jiraErr(http.StatusBadRequest, "Queries must not be empty.")
		}
		pq := map[string]any{"query": s}
		q, err := jql.Parse(s)
		if err != nil {
			pq["errors"] = []string{err.Error()}
			out = append(out, pq)
			continue
		}
		var errs, warns []string
		if mode != "none" {
			errs, warns = q.Check(c.catalog())
		}
		if len(errs) > 0 {
			pq["errors"] = dedupe(errs)
		}
		if len(warns) > 0 {
			pq["warnings"] = dedupe(warns)
		}
		if mode != "strict" || len(errs) == 0 {
			pq["structure"] = q.Structure()
		}
		out = append(out, pq)
	}
	return jsonResponse(http.StatusOK, map[string]any{"queries": out})
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// catalog answers the JQL checker's questions about what exists, as the calling user sees it.
type catalog struct{ c *call }

func (c *call) catalog() jql.Catalog { return catalog{c} }

func (k catalog) ProjectExists(v string) bool {
	for _, p := range k.c.site.projects {
		if !p.canBrowse(k.c.user.AccountID) {
			continue
		}
		if strings.EqualFold(p.key, v) || strings.EqualFold(p.name, v) || strconv.FormatInt(p.id, 10) == v {
			return true
		}
	}
	return false
}

func (k catalog) IssueTypeExists(v string) bool {
	for i, t := range issueTypes {
		if strings.EqualFold(t, v) || strconv.Itoa(10001+i) == v {
			return true
		}
	}
	return false
}

func (k catalog) StatusExists(v string) bool {
	for _, s := range statuses {
		if strings.EqualFold(s, v) || statusID(s) == v {
			return true
		}
	}
	return false
}

func (k catalog) UserExists(accountID string) bool { return k.c.site.members[accountID] }

// Cursors are opaque to clients: an AES-GCM sealed record of who may use it, for which query, where it resumes
// and when it was issued (it expires after 7 days, as Atlassian documents for nextPageToken). Sealing, not just
// signing, keeps account ids out of tokens that the product may store in checkpoints.
type cursor struct {
	Site   string `json:"s"`
	User   string `json:"u"`
	Digest string `json:"d"`
	Offset int64  `json:"o"`
	Issued int64  `json:"t"`
}

func cursorDigest(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:8])
}

func (s *Server) cursorAEAD() cipher.AEAD {
	b, err := aes.NewCipher(s.cursorKey)
	if err != nil {
		panic(err) // the key is 32 random bytes
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

func (s *Server) sealCursor(c *call, digest string, offset int64) string {
	b, _ := json.Marshal(cursor{Site: c.site.cloudID, User: c.user.AccountID, Digest: digest, Offset: offset, Issued: c.now.Unix()})
	g := s.cursorAEAD()
	nonce := randomBytes(g.NonceSize())
	return base64.RawURLEncoding.EncodeToString(g.Seal(nonce, nonce, b, nil))
}

func (s *Server) openCursor(tok string, c *call, digest string) (int64, bool) {
	cur, err := s.verifyCursor(tok)
	if err != nil || cur.Site != c.site.cloudID || cur.User != c.user.AccountID || cur.Digest != digest {
		return 0, false
	}
	if !c.now.Before(time.Unix(cur.Issued, 0).Add(cursorTTL)) || cur.Offset < 0 {
		return 0, false
	}
	return cur.Offset, true
}

func (s *Server) verifyCursor(tok string) (cursor, error) {
	var cur cursor
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	g := s.cursorAEAD()
	if err != nil || len(raw) < g.NonceSize() {
		return cur, errors.New("malformed")
	}
	b, err := g.Open(nil, raw[:g.NonceSize()], raw[g.NonceSize():], nil)
	if err != nil {
		return cur, errors.New("bad seal")
	}
	if err := json.Unmarshal(b, &cur); err != nil {
		return cur, err
	}
	return cur, nil
}

// IssueExists lets the checker report unknown issue keys as Jira does.
func (k catalog) IssueExists(keyOrID string) bool { return k.c.findIssue(keyOrID) != nil }
