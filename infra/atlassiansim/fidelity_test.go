package atlassiansim

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestBulkFetchSemantics: unknown, deleted and invisible ids are left out of `issues` and of `issueErrors`
// (BulkIssueResults: "Issues which aren't found or that the user doesn't have permission to view won't be
// returned in this list"); issueErrors carries retriable failures only (the issue_error fault).
func TestBulkFetchSemantics(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	p0, p1 := s.Projects[0].Key, s.Projects[1].Key
	if err := f.sim.DeleteIssue(s.CloudID, p0+"-3"); err != nil {
		t.Fatal(err)
	}
	if err := f.sim.SetProjectPermission(s.CloudID, p1, f.admin().AccountID, false); err != nil {
		t.Fatal(err)
	}
	req := map[string]any{"issueIdsOrKeys": []string{p0 + "-1", p0 + "-3", "NOPE-1", "99999999", p1 + "-1", p0 + "-2"}, "fields": []string{"summary"}}
	m := f.jira("POST", s.CloudID, "/issue/bulkfetch", tr.AccessToken, req).json(t)
	var keys []string
	for _, is := range m["issues"].([]any) {
		keys = append(keys, is.(map[string]any)["key"].(string))
	}
	if strings.Join(keys, ",") != p0+"-1,"+p0+"-2" || len(m["issueErrors"].([]any)) != 0 {
		t.Errorf("bulkfetch = issues %v, issueErrors %v; want %s-1,%s-2 and no errors", keys, m["issueErrors"], p0, p0)
	}

	if err := f.sim.SetFault(Fault{Endpoint: "POST /rest/api/3/issue/bulkfetch", Kind: FaultIssueError, Count: 1}); err != nil {
		t.Fatal(err)
	}
	m = f.jira("POST", s.CloudID, "/issue/bulkfetch", tr.AccessToken, req).json(t)
	errs := m["issueErrors"].([]any)
	if len(m["issues"].([]any)) != 1 || len(errs) != 1 || errs[0].(map[string]any)["errorMessage"] == "" {
		t.Errorf("with an issue_error fault: issues %v, issueErrors %v; want one of each", m["issues"], errs)
	}
}

// TestRemovedSearchEndpoints: /search and /search/id were removed (CHANGE-2046) and answer 410.
func TestRemovedSearchEndpoints(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	for _, c := range []struct{ method, path string }{{"GET", "/search"}, {"POST", "/search"}, {"POST", "/search/id"}} {
		r := f.jira(c.method, s.CloudID, c.path, tr.AccessToken, map[string]any{"jql": "project = X"})
		if r.status != http.StatusGone || !strings.Contains(string(r.body), "/rest/api/3/search/jql") {
			t.Errorf("%s %s = %d %s, want 410 pointing at /search/jql", c.method, c.path, r.status, r.body)
		}
	}
}

// TestStoryPointsJQL: cf[10016] (a number custom field) works in WHERE and ORDER BY; unknown custom fields fail.
func TestStoryPointsJQL(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	search := func(jql string) (result, []float64) {
		r := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": jql, "fields": []string{"customfield_10016"}, "maxResults": 100})
		if r.status != 200 {
			return r, nil
		}
		var pts []float64
		for _, is := range r.json(t)["issues"].([]any) {
			v, _ := is.(map[string]any)["fields"].(map[string]any)["customfield_10016"].(float64)
			pts = append(pts, v)
		}
		return r, pts
	}
	p := s.Projects[0].Key
	_, big := search("project = " + p + " AND cf[10016] >= 8 ORDER BY cf[10016] DESC")
	if len(big) == 0 {
		t.Fatal("no issue with at least 8 story points")
	}
	for i, v := range big {
		if v < 8 || (i > 0 && v > big[i-1]) {
			t.Fatalf("cf[10016] >= 8 ORDER BY cf[10016] DESC = %v", big)
		}
	}
	_, empty := search("project = " + p + " AND cf[10016] IS EMPTY")
	_, all := search("project = " + p)
	_, some := search("project = " + p + " AND cf[10016] IS NOT EMPTY")
	if len(empty) == 0 || len(empty)+len(some) != len(all) {
		t.Errorf("IS EMPTY %d + IS NOT EMPTY %d != %d", len(empty), len(some), len(all))
	}
	if r, _ := search("project = " + p + " AND cf[10099] = 1"); r.status != 400 {
		t.Errorf("unknown custom field = %d, want 400", r.status)
	}
	// A story point edit is not in the mutation API; the index must still agree with the field after other edits.
	if _, err := f.sim.UpdateIssue(s.CloudID, p+"-1", IssueChange{Summary: ptr("x")}); err != nil {
		t.Fatal(err)
	}
	_, after := search("project = " + p + " AND cf[10016] IS NOT EMPTY")
	if len(after) != len(some) {
		t.Errorf("after an edit %d issues have story points, before %d", len(after), len(some))
	}
}

// TestControlAPIRefusesForeignHostAndOrigin: DNS rebinding makes a page on evil.example reach 127.0.0.1 with
// Host: evil.example; a cross-site page sends its Origin. Both are refused; loopback hosts and origins work.
func TestControlAPIRefusesForeignHostAndOrigin(t *testing.T) {
	f := newFixture(t, nil)
	send := func(method, host, origin string) int {
		path, body := "/_sim/counters/reset", io.Reader(strings.NewReader("{}"))
		if method == "GET" {
			path, body = "/_sim/info", nil
		}
		req, err := http.NewRequestWithContext(t.Context(), method, f.url+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	port := f.url[strings.LastIndex(f.url, ":")+1:]
	cases := []struct {
		method, host, origin string
		want                 int
	}{
		{"GET", "", "", 200},
		{"POST", "", "", 200},
		{"GET", "localhost:" + port, "", 200},
		{"POST", "127.0.0.1:" + port, "http://127.0.0.1:3000", 200},
		{"GET", "evil.example:" + port, "", 403},
		{"POST", "evil.example:" + port, "http://evil.example:" + port, 403},
		{"POST", "", "https://evil.example", 403},
		{"GET", "", "null", 403},
		{"POST", "127.0.0.1.nip.io:" + port, "", 403},
	}
	for _, c := range cases {
		if got := send(c.method, c.host, c.origin); got != c.want {
			t.Errorf("%s with Host %q Origin %q = %d, want %d", c.method, c.host, c.origin, got, c.want)
		}
	}
	// Jira routes are not the control API: a foreign Host reaches them (the gateway authenticates by token).
	req, _ := http.NewRequestWithContext(t.Context(), "GET", f.url+"/oauth/token/accessible-resources", nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("accessible-resources with a foreign Host = %d, want 401 (not the guard's 403)", resp.StatusCode)
	}
}

// TestLatencyProfile: the zero profile adds nothing; a profile delays each call by its class and caps attachment
// bandwidth; SetLatency switches at run time.
func TestLatencyProfile(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	timeIt := func(fn func()) time.Duration {
		start := time.Now()
		fn()
		return time.Since(start)
	}
	get := func() { f.jira("GET", s.CloudID, "/issue/"+s.Projects[0].Key+"-1?fields=summary", tr.AccessToken, nil) }
	if d := timeIt(get); d > 200*time.Millisecond {
		t.Errorf("GET issue without a profile took %v", d)
	}
	if p, err := LatencyProfileNamed("wan"); err != nil || p != LatencyWAN {
		t.Fatalf("LatencyProfileNamed(wan) = %v, %v", p, err)
	}
	f.sim.SetLatency(LatencyProfile{Name: "test", Get: Duration(120 * time.Millisecond), Search: Duration(250 * time.Millisecond),
		MediaFirstByte: Duration(100 * time.Millisecond), MediaBytesPerSecond: 1 << 20, Jitter: 0.1})
	if d := timeIt(get); d < 105*time.Millisecond {
		t.Errorf("GET issue under a 120 ms profile took %v", d)
	}
	search := func() {
		f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": "project = " + s.Projects[0].Key})
	}
	if d := timeIt(search); d < 220*time.Millisecond {
		t.Errorf("search under a 250 ms profile took %v", d)
	}
	id, size := firstAttachment(t, f, tr.AccessToken, 100<<10)
	loc := f.jira("GET", s.CloudID, "/attachment/content/"+id, tr.AccessToken, nil).header.Get("Location")
	var body []byte
	d := timeIt(func() { body = f.do("GET", loc, "", nil).body })
	if floor := 100*time.Millisecond + time.Duration(float64(size)/float64(1<<20)*float64(time.Second)); d < floor*9/10 || int64(len(body)) != size {
		t.Errorf("%d-byte download at 1 MiB/s with 100 ms first byte took %v (%d bytes), want at least %v", size, d, len(body), floor)
	}
	f.sim.SetLatency(LatencyProfile{})
	if d := timeIt(get); d > 200*time.Millisecond {
		t.Errorf("GET issue after clearing the profile took %v", d)
	}
}

// TestLargeSiteIsLazy: a 100,000-issue site starts fast and small, serves deterministic bodies (two servers with
// the same seed answer the same bytes), and keeps a mutation.
func TestLargeSiteIsLazy(t *testing.T) {
	if testing.Short() {
		t.Skip("large site")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	cfg := func(c *Config) {
		c.Sites, c.ProjectsPerSite, c.IssuesPerProject = 1, 4, 25_000
		c.AttachmentShare, c.ManyCommentsShare, c.LongChangelogShare = 0.1, 0.05, 0.05
		c.RateLimits.Disabled = true
	}
	f := newFixture(t, cfg)
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("100,000-issue site: started in %v, heap +%d MiB", took, heap>>20)
	if took > 10*time.Second || heap > 64<<20 {
		t.Errorf("100,000-issue site took %v and %d MiB to start; want seconds and a few MiB", took, heap>>20)
	}
	tr := f.token()
	s := f.site(0)
	if n := s.Projects[0].Issues + s.Projects[1].Issues + s.Projects[2].Issues + s.Projects[3].Issues; n != 100_000 {
		t.Fatalf("site has %d issues", n)
	}
	key := s.Projects[2].Key + "-24000"
	one := f.jira("GET", s.CloudID, "/issue/"+key+"?expand=changelog,renderedFields", tr.AccessToken, nil)
	if one.status != 200 {
		t.Fatalf("GET %s = %d", key, one.status)
	}
	again := f.jira("GET", s.CloudID, "/issue/"+key+"?expand=changelog,renderedFields", tr.AccessToken, nil)
	if !bytes.Equal(one.body, again.body) {
		t.Error("the same issue generated twice differs")
	}
	// An identical server (same seed and clock) serves the same bytes, apart from its own base URL.
	g := newFixture(t, cfg)
	trG, _ := g.sim.IssueTokens(g.admin().AccountID, "read:jira-work", "read:jira-user", "offline_access")
	other := g.jira("GET", s.CloudID, "/issue/"+key+"?expand=changelog,renderedFields", trG.AccessToken, nil)
	if strings.ReplaceAll(string(other.body), g.url, f.url) != string(one.body) {
		t.Error("two servers with the same seed serve different issue bodies")
	}

	// Search over the whole site, an id census page and a count.
	census := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": "project = " + s.Projects[1].Key + " ORDER BY id", "fields": []string{"id"}, "maxResults": 5000}).json(t)
	if n := len(census["issues"].([]any)); n != 5000 {
		t.Errorf("census page has %d ids", n)
	}
	count := f.jira("POST", s.CloudID, "/search/approximate-count", tr.AccessToken, map[string]any{"jql": "project is not EMPTY"}).json(t)
	if count["count"].(float64) != 100_000 {
		t.Errorf("count = %v", count["count"])
	}

	// Shares: about 10 % of issues have attachments.
	var withAtt int
	page := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": "project = " + s.Projects[0].Key + " ORDER BY id", "fields": []string{"attachment"}, "maxResults": 100}).json(t)
	for _, is := range page["issues"].([]any) {
		if len(is.(map[string]any)["fields"].(map[string]any)["attachment"].([]any)) > 0 {
			withAtt++
		}
	}
	if withAtt < 3 || withAtt > 25 {
		t.Errorf("%d of 100 issues have attachments, want about 10", withAtt)
	}

	// A mutation sticks and costs only that issue.
	f.clock.Advance(time.Minute)
	if _, err := f.sim.UpdateIssue(s.CloudID, key, IssueChange{Summary: ptr("changed"), AddComment: ptr("hello")}); err != nil {
		t.Fatal(err)
	}
	m := f.jira("GET", s.CloudID, "/issue/"+key+"?fields=summary,comment", tr.AccessToken, nil).json(t)
	if m["fields"].(map[string]any)["summary"] != "changed" {
		t.Errorf("summary after edit = %v", m["fields"].(map[string]any)["summary"])
	}
	r := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": "updated >= -2m", "fields": []string{"key"}}).json(t)
	if is := r["issues"].([]any); len(is) != 1 || is[0].(map[string]any)["key"] != key {
		t.Errorf("issues updated in the last two minutes = %v, want %s", is, key)
	}
}

// TestLargeAttachmentConfig: the one very large attachment sits on the site's oldest issue with the size asked for.
func TestLargeAttachmentConfig(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.LargeAttachmentSize = 3 << 30 })
	tr := f.token()
	s := f.site(0)
	m := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": "project is not EMPTY ORDER BY created ASC", "fields": []string{"attachment"}, "maxResults": 1}).json(t)
	var found bool
	for _, a := range m["issues"].([]any)[0].(map[string]any)["fields"].(map[string]any)["attachment"].([]any) {
		if a.(map[string]any)["size"].(float64) == 3<<30 {
			found = true
			loc := f.jira("GET", s.CloudID, "/attachment/content/"+a.(map[string]any)["id"].(string), tr.AccessToken, nil).header.Get("Location")
			req, _ := http.NewRequestWithContext(t.Context(), "GET", loc, nil)
			req.Header.Set("Range", "bytes=3221225000-")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 206 || len(b) != 3<<30-3221225000 {
				t.Errorf("tail of the 3 GiB attachment = %d, %d bytes", resp.StatusCode, len(b))
			}
		}
	}
	if !found {
		t.Error("no 3 GiB attachment on the oldest issue")
	}
}

// TestMutateAttachmentsWorklogsPoints: the mutation API adds and removes attachments, logs work and sets story
// points, with the changelog items Jira writes for them; a removed attachment's content and media link answer 404.
func TestMutateAttachmentsWorklogsPoints(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	key := s.Projects[0].Key + "-2"
	f.clock.Advance(time.Minute)
	if _, err := f.sim.UpdateIssue(s.CloudID, key, IssueChange{AddAttachment: &NewAttachment{Filename: "new.txt", MimeType: "text/plain", Size: 1234},
		AddWorklog: ptr(int64(5400)), StoryPoints: ptr(8.0)}); err != nil {
		t.Fatal(err)
	}
	is := f.jira("GET", s.CloudID, "/issue/"+key+"?fields=attachment,worklog,customfield_10016,timetracking", tr.AccessToken, nil).json(t)
	fields := is["fields"].(map[string]any)
	var added map[string]any
	for _, a := range fields["attachment"].([]any) {
		if a.(map[string]any)["filename"] == "new.txt" {
			added = a.(map[string]any)
		}
	}
	if added == nil || added["size"] != float64(1234) || fields["customfield_10016"] != float64(8) {
		t.Fatalf("after the change: attachment %v, points %v", added, fields["customfield_10016"])
	}
	id := added["id"].(string)
	loc := f.jira("GET", s.CloudID, "/attachment/content/"+id, tr.AccessToken, nil).header.Get("Location")
	if m := f.do("GET", loc, "", nil); m.status != 200 || len(m.body) != 1234 || !bytes.Equal(m.body, expected(t, f, id, 0, 1234)) {
		t.Fatalf("added attachment download = %d, %d bytes", m.status, len(m.body))
	}
	if n := f.jira("POST", s.CloudID, "/search/approximate-count", tr.AccessToken, map[string]any{"jql": "key = " + key + " AND cf[10016] = 8"}).json(t)["count"]; n != float64(1) {
		t.Errorf("cf[10016] = 8 finds %v issues after the edit", n)
	}

	aid := int64(idNum(id))
	f.clock.Advance(time.Minute)
	if _, err := f.sim.UpdateIssue(s.CloudID, key, IssueChange{RemoveAttachment: &aid}); err != nil {
		t.Fatal(err)
	}
	if r := f.jira("GET", s.CloudID, "/attachment/"+id, tr.AccessToken, nil); r.status != 404 {
		t.Errorf("removed attachment metadata = %d, want 404", r.status)
	}
	if m := f.do("GET", loc, "", nil); m.status != 404 {
		t.Errorf("removed attachment's media link = %d, want 404", m.status)
	}
	if _, err := f.sim.UpdateIssue(s.CloudID, key, IssueChange{RemoveAttachment: &aid, Summary: ptr("not applied")}); err == nil {
		t.Error("removing a removed attachment succeeded")
	}
	cl := f.jira("GET", s.CloudID, "/issue/"+key+"/changelog?maxResults=100", tr.AccessToken, nil).json(t)
	vals := cl["values"].([]any)
	var fields2 []string
	for _, h := range vals[len(vals)-2:] {
		for _, it := range h.(map[string]any)["items"].([]any) {
			m := it.(map[string]any)
			fields2 = append(fields2, m["field"].(string))
			if m["field"] == "Attachment" && (m["to"] == nil) == (m["from"] == nil) {
				t.Errorf("attachment item has both or neither side: %v", m)
			}
		}
	}
	if got := strings.Join(fields2, ","); got != "Story point estimate,timespent,WorklogId,Attachment,Attachment" {
		t.Errorf("changelog items of the two edits = %s", got)
	}
	if m := f.jira("GET", s.CloudID, "/issue/"+key+"?fields=summary", tr.AccessToken, nil).json(t); m["fields"].(map[string]any)["summary"] == "not applied" {
		t.Error("a refused change was partly applied")
	}
}

// TestResponseTimeIncludesTheSitesWork: a profile's latency is the time until the answer, the site's work included
// (the handler runs while the answer is held, and an answer is never sent early); an injected latency fault is a slow
// network before the site, so the handler starts only after it; a body larger than what is held arrives whole.
func TestResponseTimeIncludesTheSitesWork(t *testing.T) {
	const key = "POST /rest/api/3/search/jql"
	f := newFixture(t, nil)
	cases := []struct {
		name           string
		respond        time.Duration // the profile's search latency
		fault          time.Duration // an injected latency fault
		work           time.Duration // how long the handler takes before it writes
		size           int
		minStart       time.Duration // the handler starts no earlier
		maxStart       time.Duration // ... and no later
		minAll, maxAll time.Duration
	}{
		{"work inside the response time", time.Second, 0, 0, 100, 0, 500 * time.Millisecond, time.Second, 1700 * time.Millisecond},
		{"work longer than the response time", time.Second, 0, 1500 * time.Millisecond, 100, 0, 500 * time.Millisecond, 1500 * time.Millisecond, 2200 * time.Millisecond},
		{"a fault delays the handler", 0, 700 * time.Millisecond, 0, 100, 700 * time.Millisecond, 1400 * time.Millisecond, 700 * time.Millisecond, 1400 * time.Millisecond},
		{"a body larger than the hold", 500 * time.Millisecond, 0, 0, heldLimit + 1<<20, 0, 400 * time.Millisecond, 500 * time.Millisecond, 5 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.sim.SetLatency(LatencyProfile{Name: "test", Search: Duration(c.respond)})
			if c.fault > 0 {
				if err := f.sim.SetFault(Fault{Endpoint: key, Kind: FaultLatency, Latency: Duration(c.fault), Count: 1}); err != nil {
					t.Fatal(err)
				}
			}
			body := bytes.Repeat([]byte("x"), c.size)
			started := make(chan time.Time, 1)
			srv := httptest.NewServer(f.sim.instrument(key, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				started <- time.Now()
				time.Sleep(c.work)
				writeBody(w, http.StatusOK, "application/json", body)
			})))
			defer srv.Close()
			begin := time.Now()
			resp, err := http.Post(srv.URL, "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			all := time.Since(begin)
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
				t.Fatalf("answer: %d, %d bytes, %v; want 200 with the %d bytes written", resp.StatusCode, len(got), err, len(body))
			}
			if s := (<-started).Sub(begin); s < c.minStart || s > c.maxStart {
				t.Errorf("the handler started after %v, want between %v and %v", s, c.minStart, c.maxStart)
			}
			if all < c.minAll || all > c.maxAll {
				t.Errorf("the answer took %v, want between %v and %v", all, c.minAll, c.maxAll)
			}
			// The search timeline records the same call: from its arrival to its answer.
			tl := f.sim.SearchTimeline()
			if len(tl) == 0 {
				t.Fatal("SearchTimeline is empty after a search")
			}
			if a := tl[len(tl)-1]; a.Arrived.Before(begin) || a.Answered.Sub(a.Arrived) < c.minAll || a.Answered.Sub(a.Arrived) > all {
				t.Errorf("timeline answer %+v: took %v, want between %v and the client's %v", a, a.Answered.Sub(a.Arrived), c.minAll, all)
			}
		})
	}
	f.sim.SetLatency(LatencyProfile{})
}

// TestRecentIssuesNeverServeAStaleIssue: generated issues are kept for the requests that follow a search
// (recentIssues), and what is kept is only ever what would be generated again: an issue served from the kept
// set and after it was pushed out renders the same, and an edit or a deletion shows at once.
func TestRecentIssuesNeverServeAStaleIssue(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.IssuesPerProject = recentIssuesKept })
	tr := f.token()
	s := f.site(0)
	p := s.Projects[0].Key
	get := func(key string) result { return f.jira("GET", s.CloudID, "/issue/"+key, tr.AccessToken, nil) }
	first := get(p + "-2").body
	if again := get(p + "-2").body; !bytes.Equal(first, again) {
		t.Errorf("issue served again from the kept set differs:\n%s\n%s", first, again)
	}
	// Push it out: more issues generated than are kept.
	for page, token := 0, ""; page < recentIssuesKept/100+2; page++ {
		req := map[string]any{"jql": "project is not EMPTY ORDER BY id", "fields": []string{"*all"}, "maxResults": 100}
		if token != "" {
			req["nextPageToken"] = token
		}
		m := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, req).json(t)
		token, _ = m["nextPageToken"].(string)
	}
	if regenerated := get(p + "-2").body; !bytes.Equal(first, regenerated) {
		t.Errorf("issue generated again differs from the one kept:\n%s\n%s", first, regenerated)
	}

	get(p + "-3")
	if _, err := f.sim.UpdateIssue(s.CloudID, p+"-3", IssueChange{Summary: ptr("edited")}); err != nil {
		t.Fatal(err)
	}
	if m := get(p + "-3").json(t); m["fields"].(map[string]any)["summary"] != "edited" {
		t.Errorf("summary after an edit = %v, want edited", m["fields"].(map[string]any)["summary"])
	}
	get(p + "-4")
	if err := f.sim.DeleteIssue(s.CloudID, p+"-4"); err != nil {
		t.Fatal(err)
	}
	if r := get(p + "-4"); r.status != http.StatusNotFound {
		t.Errorf("deleted issue: status %d, want 404", r.status)
	}
}
