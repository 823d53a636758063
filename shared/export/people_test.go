package export_test

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/goccy/go-yaml"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/text"
	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/export"
	"jiraexport/shared/markdown"
	"jiraexport/shared/mirror"
	"jiraexport/shared/pseudonym"
)

// pseudonymPattern finds pseudonyms in exported objects (shared/pseudonym's format, and the "unknown" one).
var pseudonymPattern = regexp.MustCompile(`person-[a-z2-7]{16}|person-unknown`)

type storedObject struct {
	body        []byte
	contentType string
}

// storedObjects lists every object of the connection with its Content-Type, checking each is SSE-KMS under the
// stack's key.
func storedObjects(w *world) map[string]storedObject {
	w.t.Helper()
	out := map[string]storedObject{}
	for _, k := range w.keys() {
		g, err := w.s3.GetObject(w.t.Context(), &s3.GetObjectInput{Bucket: &w.env.Bucket, Key: aws.String(k)})
		if err != nil {
			w.t.Fatal(err)
		}
		b, _ := io.ReadAll(g.Body)
		g.Body.Close()
		if g.ServerSideEncryption != "aws:kms" || aws.ToString(g.SSEKMSKeyId) != w.env.KeyARN {
			w.t.Errorf("object %s: encryption %s key %s, want aws:kms under %s", k, g.ServerSideEncryption, aws.ToString(g.SSEKMSKeyId), w.env.KeyARN)
		}
		out[k] = storedObject{body: b, contentType: aws.ToString(g.ContentType)}
	}
	return out
}

// anotherConnection adds a second connection of the same user, site and simulator to w's stack, with a connector
// made by spec.
func (w *world) anotherConnection(spec connectors.Spec) *world {
	t := w.t
	ctx := t.Context()
	w2 := &world{t: t, env: w.env, sim: w.sim, simURL: w.simURL, site: w.site, user: w.user, conns: w.conns, store: w.store,
		tok: w.tok, s3: w.s3}
	c := &connections.Connection{ID: connections.NewID(), Status: connections.StatusActive, GrantStartedAt: time.Now().UTC(),
		Sites: []connections.Site{{CloudID: w.site.CloudID, URL: w.site.URL, Name: w.site.Name, Scopes: []string{"read:jira-work"}}}}
	if err := w.conns.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	w2.connID = c.ID
	tr, err := w.sim.IssueTokens(w.user, "read:jira-work", "read:jira-user", "offline_access")
	if err != nil {
		t.Fatal(err)
	}
	tok := (&oauth2.Token{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, TokenType: "Bearer",
		Expiry: time.Now().Add(time.Duration(tr.ExpiresIn) * time.Second)}).WithExtra(map[string]any{"scope": tr.Scope})
	if err := w.tok.Put(ctx, c.ID, tok, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if w2.connector, err = w.store.Create(ctx, c.ID, spec, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return w2
}

// expectedPseudonyms are the pseudonyms of every simulator user under the connection's secret (read back
// through a Store of its own, as another invocation would).
func expectedPseudonyms(w *world) map[string]string {
	w.t.Helper()
	p, err := pseudonym.NewStore(w.env.Clients.DynamoDB, kms.NewFromConfig(w.env.AWS), w.env.Table, w.env.KeyARN).For(w.t.Context(), w.connID)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]string{}
	for _, u := range w.sim.Users() {
		out[u.AccountID] = p.Person(u.AccountID)
	}
	return out
}

// checkPseudonymMirror checks every issue's JSON and Markdown of w's connector: a Markdown object beside each
// JSON one (text/markdown, front matter matching the document, parseable), no account id, no display name of any
// user, and only pseudonyms of this connection. It returns the issue documents by id.
func checkPseudonymMirror(t *testing.T, w *world, objs map[string]storedObject, want map[string]string) map[string]*mirror.Issue {
	t.Helper()
	allowed := map[string]bool{"person-unknown": true}
	for _, p := range want {
		allowed[p] = true
	}
	var names []string
	for _, u := range w.sim.Users() {
		names = append(names, u.DisplayName)
	}
	docs := map[string]*mirror.Issue{}
	seen := 0
	prefix := mirror.Prefix(w.connID, w.connector.ID) + "issues/"
	for k, o := range objs {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		for id := range want {
			if id != "unknown" && bytes.Contains(o.body, []byte(id)) {
				t.Errorf("%s holds account id %s", k, id)
			}
		}
		if bytes.Contains(bytes.ToLower(o.body), []byte("accountid")) {
			t.Errorf("%s holds an accountId member", k)
		}
		for _, n := range names {
			if bytes.Contains(o.body, []byte(n)) {
				t.Errorf("%s holds the display name %q", k, n)
			}
		}
		for _, p := range pseudonymPattern.FindAll(o.body, -1) {
			seen++
			if !allowed[string(p)] {
				t.Errorf("%s holds %s, not a pseudonym of this connection", k, p)
			}
		}
		id, ok := strings.CutSuffix(strings.TrimPrefix(k, prefix), ".json")
		if !ok {
			continue
		}
		var doc mirror.Issue
		if err := json.Unmarshal(o.body, &doc); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		docs[id] = &doc
		mdKey := mirror.IssueMarkdownKey(w.connID, w.connector.ID, id)
		md, ok := objs[mdKey]
		if !ok {
			t.Errorf("no Markdown object %s beside %s", mdKey, k)
			continue
		}
		if md.contentType != "text/markdown; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", mdKey, md.contentType)
		}
		checkMarkdown(t, mdKey, md.body, &doc)
	}
	for k := range objs {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(k, prefix), ".md"); ok && docs[id] == nil {
			t.Errorf("Markdown object %s without its JSON document", k)
		}
	}
	if seen == 0 {
		t.Error("no pseudonym in any exported object")
	}
	t.Logf("connection %s: %d issues with Markdown, %d pseudonyms", w.connID, len(docs), seen)
	return docs
}

// checkMarkdown parses one Markdown object: YAML front matter of the issue, then a GFM document whose first
// heading is the issue's title.
func checkMarkdown(t *testing.T, key string, md []byte, doc *mirror.Issue) {
	t.Helper()
	rest, ok := bytes.CutPrefix(md, []byte("---\n"))
	fm, body, found := bytes.Cut(rest, []byte("\n---\n"))
	if !ok || !found {
		t.Errorf("%s: no front matter", key)
		return
	}
	var front map[string]any
	if err := yaml.Unmarshal(fm, &front); err != nil {
		t.Errorf("%s: front matter does not parse: %v", key, err)
		return
	}
	summary, _ := doc.Fields["summary"].(string)
	if front["schema"] != markdown.IssueSchema || front["id"] != doc.ID || front["key"] != doc.Key || front["summary"] != summary ||
		front["issue_url"] != strings.TrimRight(doc.Site.URL, "/")+"/browse/"+doc.Key {
		t.Errorf("%s: front matter %v does not match the document %s %s", key, front, doc.ID, doc.Key)
	}
	root := goldmark.New(goldmark.WithExtensions(extension.GFM)).Parser().Parse(text.NewReader(body))
	h, ok := root.FirstChild().(*ast.Heading)
	if !ok || h.Level != 1 {
		t.Errorf("%s: the body does not start with the issue's title heading", key)
	}
	if doc.Counts.Comments != nil && doc.Counts.Comments.Exported > 0 && !bytes.Contains(body, []byte("\n## Comments\n")) {
		t.Errorf("%s: %d comments but no Comments section", key, doc.Counts.Comments.Exported)
	}
}

func worklogRequests(sim *atlassiansim.Server) int64 {
	var n int64
	for k, c := range sim.Counters().Requests {
		if strings.Contains(k, "/worklog") {
			n += c
		}
	}
	return n
}

// TestPseudonymsAndMarkdown: a connector with formats [json, markdown] and people = pseudonym writes a Markdown
// object beside every JSON document, and neither holds an account id or a display name: only the connection's
// pseudonyms, the same in a later run (a fresh engine and key store), different for another connection. Worklogs
// are complete when asked for, and neither fetched nor exported otherwise. An issue that leaves the mirror takes
// its Markdown along.
func TestPseudonymsAndMarkdown(t *testing.T) {
	t.Parallel()
	pseudo := func(s *connectors.Spec) {
		s.Formats = []string{"json", "markdown"}
		s.Include.People = connectors.PeoplePseudonym
		s.Include.Worklogs = true
	}
	w := newWorld(t, worldOpts{spec: pseudo})
	newEngine := func(w *world) *export.Engine {
		return w.engine(func(c *export.Config) {
			c.Pseudonyms = pseudonym.NewStore(w.env.Clients.DynamoDB, kms.NewFromConfig(w.env.AWS), w.env.Table, w.env.KeyARN)
			c.CensusEvery = time.Nanosecond
		})
	}
	ref := w.startRun()
	if r, _ := w.runToEnd(newEngine(w), ref, time.Minute); r.Status != connectors.RunSucceeded {
		t.Fatalf("full run ended %s (%v), want succeeded", r.Status, r.Errors)
	}
	want := expectedPseudonyms(w)
	objs := storedObjects(w)
	docs := checkPseudonymMirror(t, w, objs, want)
	if len(docs) != len(w.simIssues()) {
		t.Errorf("%d documents, want %d", len(docs), len(w.simIssues()))
	}
	paged := false
	for id, d := range docs {
		c := d.Counts.Worklogs
		if c == nil || c.Exported != c.Total || len(d.Worklogs) != c.Total {
			t.Errorf("issue %s: worklogs %d, counts %+v; want complete", id, len(d.Worklogs), c)
		} else if c.Total > 20 {
			paged = true
		}
	}
	if !paged {
		t.Error("no issue with more worklogs than Jira embeds: paging untested")
	}

	// A later run with a fresh engine and key store: the new comment's author (the connection's user) appears
	// under the same pseudonym; nothing else changes; a deleted issue takes its Markdown along.
	var commented, deleted string
	for id := range docs {
		switch {
		case commented == "":
			commented = id
		case deleted == "":
			deleted = id
		}
	}
	note := "a note"
	if _, err := w.sim.UpdateIssue(w.site.CloudID, commented, atlassiansim.IssueChange{AddComment: &note, Author: w.user}); err != nil {
		t.Fatal(err)
	}
	if err := w.sim.DeleteIssue(w.site.CloudID, deleted); err != nil {
		t.Fatal(err)
	}
	ref2 := w.startRun()
	if r, _ := w.runToEnd(newEngine(w), ref2, time.Minute); r.Status != connectors.RunSucceeded {
		t.Fatalf("incremental run ended %s (%v), want succeeded", r.Status, r.Errors)
	}
	objs2 := storedObjects(w)
	checkPseudonymMirror(t, w, objs2, want)
	for k, o := range objs2 {
		old, existed := objs[k]
		switch {
		case strings.Contains(k, "/manifests/"):
		case strings.Contains(k, "/issues/"+commented+"."):
			if !bytes.Contains(o.body, []byte(want[w.user])) {
				t.Errorf("%s: the new comment's author is not %s", k, want[w.user])
			}
		case !existed || !bytes.Equal(old.body, o.body):
			t.Errorf("%s written by a run that did not change its issue", k)
		}
	}
	for _, k := range []string{mirror.IssueKey(w.connID, w.connector.ID, deleted), mirror.IssueMarkdownKey(w.connID, w.connector.ID, deleted)} {
		if _, ok := objs2[k]; ok {
			t.Errorf("%s still there after its issue was deleted", k)
		}
	}

	// Another connection of the same user: other pseudonyms. Without worklogs: none fetched, none exported.
	spec := w.connector.Spec
	spec.Include.Worklogs = false
	w2 := w.anotherConnection(spec)
	w.sim.ResetCounters()
	if r, _ := w2.runToEnd(newEngine(w2), w2.startRun(), time.Minute); r.Status != connectors.RunSucceeded {
		t.Fatalf("other connection's run ended %s (%v), want succeeded", r.Status, r.Errors)
	}
	if n := worklogRequests(w.sim); n != 0 {
		t.Errorf("%d worklog requests without include.worklogs, want 0", n)
	}
	want2 := expectedPseudonyms(w2)
	for id, p := range want {
		if want2[id] == p {
			t.Errorf("account %s has the same pseudonym %s in two connections", id, p)
		}
	}
	for id, d := range checkPseudonymMirror(t, w2, storedObjects(w2), want2) {
		if d.Worklogs != nil || d.Counts.Worklogs != nil {
			t.Errorf("issue %s carries worklogs without include.worklogs", id)
		}
	}
}
