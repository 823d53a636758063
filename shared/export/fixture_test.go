package export_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/stacktest"
	"jiraexport/shared/access"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/export"
	"jiraexport/shared/jira"
	"jiraexport/shared/mirror"
	"jiraexport/shared/scrub"
	"jiraexport/shared/tokens"
)

// world is one test's stack copy, simulator, connection and connector.
type world struct {
	t         testing.TB
	env       *stacktest.Env
	sim       *atlassiansim.Server
	simURL    string
	site      atlassiansim.Site
	user      string
	conns     *connections.Store
	store     *connectors.Store
	tok       *tokens.Store
	s3        *s3.Client
	connID    string
	connector *connectors.Connector

	mu   sync.Mutex
	hook func(jira.Observation) // called after every Jira attempt of the engine
}

type worldOpts struct {
	sim  atlassiansim.Config
	jql  func(site atlassiansim.Site) string
	spec func(*connectors.Spec)
}

func newWorld(t testing.TB, o worldOpts) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local AWS stack")
	}
	env := stacktest.New(t, stacktest.Options{SecretValues: map[string]string{"AtlassianClientSecret": "sim-client-secret"}})
	cfg := o.sim
	if cfg.Seed == 0 {
		cfg.Seed = 5
	}
	if cfg.Sites == 0 {
		cfg.Sites, cfg.ProjectsPerSite, cfg.IssuesPerProject, cfg.MaxComments, cfg.MaxChangelog = 1, 3, 15, 45, 60
	}
	cfg.RateLimits.Disabled = true
	sim, err := atlassiansim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	simURL, err := sim.Start(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	db := env.Clients.DynamoDB
	w := &world{t: t, env: env, sim: sim, simURL: simURL, site: sim.Sites()[0], user: sim.ConsentingUsers()[0].AccountID,
		conns: connections.NewStore(db, env.Table), store: connectors.NewStore(db, env.Table), s3: env.Clients.S3}
	w.tok = w.tokens()
	ctx := t.Context()
	c := &connections.Connection{ID: connections.NewID(), Status: connections.StatusActive, GrantStartedAt: time.Now().UTC(),
		Sites: []connections.Site{{CloudID: w.site.CloudID, URL: w.site.URL, Name: w.site.Name, Scopes: []string{"read:jira-work"}}}}
	if err := w.conns.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	w.connID = c.ID
	tr, err := sim.IssueTokens(w.user, "read:jira-work", "read:jira-user", "offline_access")
	if err != nil {
		t.Fatal(err)
	}
	tok := (&oauth2.Token{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, TokenType: "Bearer",
		Expiry: time.Now().Add(time.Duration(tr.ExpiresIn) * time.Second)}).WithExtra(map[string]any{"scope": tr.Scope})
	if err := w.tok.Put(ctx, c.ID, tok, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var jql string
	if o.jql != nil {
		jql = o.jql(w.site)
	} else {
		jql = "project != " + w.site.Projects[2].Key + " ORDER BY created DESC"
	}
	spec := connectors.Spec{Name: "test", SiteID: w.site.CloudID, JQL: jql, Enabled: false,
		Schedule: connectors.Schedule{Expression: "rate(1 day)", Timezone: "UTC"},
		Include:  connectors.Include{Comments: true, Changelog: true, Worklogs: true}, Formats: []string{"json"}}
	if o.spec != nil {
		o.spec(&spec)
	}
	if w.connector, err = w.store.Create(ctx, c.ID, spec, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return w
}

// tokens returns a token store wired as functions/export wires it.
func (w *world) tokens(opts ...tokens.Option) *tokens.Store {
	return access.Tokens(access.Config{DB: w.env.Clients.DynamoDB, KMS: kms.NewFromConfig(w.env.AWS), Table: w.env.Table,
		TokenKeyID: w.env.TokenKeyARN, FlagOnly: true,
		OAuth: &oauth2.Config{ClientID: "sim-client-id", ClientSecret: "sim-client-secret",
			Endpoint: oauth2.Endpoint{AuthURL: w.simURL + "/authorize", TokenURL: w.simURL + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}},
		opts...)
}

func (w *world) setHook(f func(jira.Observation)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hook = f
}

// engine returns an engine wired as functions/export wires it, on this world.
func (w *world) engine(mod func(*export.Config)) *export.Engine {
	c := export.Config{
		Runs: w.store, Connections: w.conns, Tokens: w.tok,
		Mirror: mirror.NewWriter(w.s3, w.env.Bucket, w.env.KeyARN),
		DB:     w.env.Clients.DynamoDB, Table: w.env.Table,
		Jira: func(ts oauth2.TokenSource, observe func(jira.Observation)) *jira.Client {
			return jira.New(w.simURL, ts, jira.Options{Timeout: 10 * time.Second, BaseBackoff: 10 * time.Millisecond,
				IsReauth: func(err error) bool { return errors.Is(err, tokens.ErrReauthRequired) },
				Observe: func(o jira.Observation) {
					observe(o)
					w.mu.Lock()
					h := w.hook
					w.mu.Unlock()
					if h != nil {
						h(o)
					}
				}})
		},
		Lease: 20 * time.Second,
	}
	if mod != nil {
		mod(&c)
	}
	return export.New(c)
}

func (w *world) startRun() connectors.RunRef {
	w.t.Helper()
	r, err := w.store.StartRun(w.t.Context(), w.connID, w.connector.ID, connectors.TriggerManual)
	if err != nil {
		w.t.Fatal(err)
	}
	return connectors.RunRef{ConnectionID: w.connID, ConnectorID: w.connector.ID, RunID: r.ID}
}

// runToEnd invokes the engine as the dispatcher would until the run leaves the active states.
func (w *world) runToEnd(eng *export.Engine, ref connectors.RunRef, timeout time.Duration) (*connectors.Run, int) {
	w.t.Helper()
	for i := 1; i <= 200; i++ {
		ctx, cancel := context.WithTimeout(w.t.Context(), timeout)
		out, err := eng.Run(ctx, ref)
		cancel()
		if err != nil {
			w.t.Fatalf("Run() = %v", err)
		}
		r := w.run(ref)
		if !r.Status.Active() {
			return r, i
		}
		if out == export.Skipped {
			time.Sleep(50 * time.Millisecond)
		}
	}
	w.t.Fatal("run did not finish in 200 invocations")
	return nil, 0
}

func (w *world) run(ref connectors.RunRef) *connectors.Run {
	w.t.Helper()
	r, err := w.store.GetRun(w.t.Context(), ref.ConnectionID, ref.ConnectorID, ref.RunID)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// keys lists the objects under the connection's prefix (no bodies: cheap enough for larger sites).
func (w *world) keys() []string {
	w.t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(w.s3, &s3.ListObjectsV2Input{Bucket: &w.env.Bucket, Prefix: aws.String(w.connID + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(w.t.Context())
		if err != nil {
			w.t.Fatal(err)
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out
}

// objects returns every object under the connection's prefix with its body.
func (w *world) objects() map[string][]byte {
	w.t.Helper()
	out := map[string][]byte{}
	for _, k := range w.keys() {
		g, err := w.s3.GetObject(w.t.Context(), &s3.GetObjectInput{Bucket: &w.env.Bucket, Key: aws.String(k)})
		if err != nil {
			w.t.Fatal(err)
		}
		b, err := io.ReadAll(g.Body)
		g.Body.Close()
		if err != nil {
			w.t.Errorf("object %s: read: %v", k, err)
		}
		wantType := mirror.JSONType
		if strings.Contains(k, "/attachments/") {
			wantType = aws.ToString(g.ContentType) // the attachment's own media type (checked by the attachment tests)
		}
		if g.ServerSideEncryption != "aws:kms" || aws.ToString(g.SSEKMSKeyId) != w.env.KeyARN || aws.ToString(g.ContentType) != wantType {
			w.t.Errorf("object %s: encryption %s key %s type %s, want aws:kms under %s, %s", k, g.ServerSideEncryption,
				aws.ToString(g.SSEKMSKeyId), aws.ToString(g.ContentType), w.env.KeyARN, wantType)
		}
		out[k] = b
	}
	return out
}

func (w *world) manifest(ref connectors.RunRef) *mirror.Manifest {
	w.t.Helper()
	// Only the manifest is read: objects() would fetch every object of the mirror.
	g, err := w.s3.GetObject(w.t.Context(), &s3.GetObjectInput{Bucket: &w.env.Bucket,
		Key: aws.String(mirror.ManifestKey(ref.ConnectionID, ref.ConnectorID, ref.RunID))})
	if err != nil {
		w.t.Fatalf("no manifest for run %s: %v", ref.RunID, err)
	}
	b, err := io.ReadAll(g.Body)
	_ = g.Body.Close()
	if err != nil {
		w.t.Fatal(err)
	}
	var m mirror.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		w.t.Fatal(err)
	}
	return &m
}

// simIDs lists the ids of the issues the connector's JQL selects (one light search; no children).
func (w *world) simIDs() []string {
	w.t.Helper()
	tr, err := w.sim.IssueTokens(w.user, "read:jira-work")
	if err != nil {
		w.t.Fatal(err)
	}
	c := jira.New(w.simURL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tr.AccessToken}), jira.Options{})
	var out []string
	for next := ""; ; {
		p, err := c.Search(w.t.Context(), w.site.CloudID, jira.SearchRequest{JQL: w.connector.Spec.JQL, Fields: []string{"summary"}, NextPageToken: next, MaxResults: 100})
		if err != nil {
			w.t.Fatal(err)
		}
		for _, raw := range p.Issues {
			var is struct{ ID string }
			if err := json.Unmarshal(raw, &is); err != nil {
				w.t.Fatal(err)
			}
			out = append(out, is.ID)
		}
		if p.IsLast || p.NextPageToken == "" {
			return out
		}
		next = p.NextPageToken
	}
}

// simIssues reads what the simulator holds for the connector's JQL, as the connection's user sees it: every
// issue with its fields, complete comments and changelog, through plain Jira calls.
func (w *world) simIssues() map[string]map[string]any {
	w.t.Helper()
	ctx := w.t.Context()
	tr, err := w.sim.IssueTokens(w.user, "read:jira-work")
	if err != nil {
		w.t.Fatal(err)
	}
	c := jira.New(w.simURL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tr.AccessToken}), jira.Options{})
	out := map[string]map[string]any{}
	next := ""
	for {
		p, err := c.Search(ctx, w.site.CloudID, jira.SearchRequest{JQL: w.connector.Spec.JQL, Fields: []string{"*all", "-lastViewed"}, NextPageToken: next, MaxResults: 50})
		if err != nil {
			w.t.Fatal(err)
		}
		for _, raw := range p.Issues {
			var m map[string]any
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			if err := d.Decode(&m); err != nil {
				w.t.Fatal(err)
			}
			id := m["id"].(string)
			var comments []any
			for start := 0; ; {
				cp, err := c.Comments(ctx, w.site.CloudID, id, start)
				if err != nil {
					w.t.Fatal(err)
				}
				for _, r := range cp.Items() {
					var v any
					_ = json.Unmarshal(r, &v)
					comments = append(comments, v)
				}
				start += len(cp.Items())
				if start >= cp.Total || len(cp.Items()) == 0 {
					break
				}
			}
			var worklogs []any
			for start := 0; ; {
				cp, err := c.Worklogs(ctx, w.site.CloudID, id, start)
				if err != nil {
					w.t.Fatal(err)
				}
				for _, r := range cp.Items() {
					var v any
					_ = json.Unmarshal(r, &v)
					worklogs = append(worklogs, v)
				}
				start += len(cp.Items())
				if start >= cp.Total || len(cp.Items()) == 0 {
					break
				}
			}
			var histories []any
			for start := 0; ; {
				cp, err := c.Changelog(ctx, w.site.CloudID, id, start)
				if err != nil {
					w.t.Fatal(err)
				}
				for _, r := range cp.Items() {
					var v any
					_ = json.Unmarshal(r, &v)
					histories = append(histories, v)
				}
				start += len(cp.Items())
				if start >= cp.Total || len(cp.Items()) == 0 {
					break
				}
			}
			m["comments"], m["histories"], m["worklogs"] = comments, histories, worklogs
			out[id] = m
		}
		if p.NextPageToken == "" {
			break
		}
		next = p.NextPageToken
	}
	return out
}

func canon(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var x any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	_ = d.Decode(&x)
	b, _ = json.Marshal(x)
	return string(b)
}

// checkMirror compares the mirror with the simulator, field by field after scrubbing, and validates every
// document against its schema.
func (w *world) checkMirror(objs map[string][]byte) {
	w.t.Helper()
	t := w.t
	want := w.simIssues()
	fields := w.simFields()
	prefix := mirror.Prefix(w.connID, w.connector.ID) + "issues/"
	got := map[string]map[string]any{}
	schemas := compileSchemas(t)
	for k, b := range objs {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		var doc map[string]any
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(&doc); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		validate(t, schemas, "issue.v1.json", k, b)
		got[strings.TrimSuffix(strings.TrimPrefix(k, prefix), ".json")] = doc
	}
	var wantIDs, gotIDs []string
	for id := range want {
		wantIDs = append(wantIDs, id)
	}
	for id := range got {
		gotIDs = append(gotIDs, id)
	}
	sort.Strings(wantIDs)
	sort.Strings(gotIDs)
	if strings.Join(wantIDs, ",") != strings.Join(gotIDs, ",") {
		t.Fatalf("mirror holds issues %v, simulator matches %v", gotIDs, wantIDs)
	}
	for id, s := range want {
		doc := got[id]
		if doc["key"] != s["key"] {
			t.Errorf("issue %s: key %v, want %v", id, doc["key"], s["key"])
		}
		sf := s["fields"].(map[string]any)
		df := doc["fields"].(map[string]any)
		for f, v := range sf {
			if f == "comment" || f == "worklog" {
				// Complete in the document's comments and worklogs sections (checked below), not in fields.
				continue
			}
			sv := scrub.Value(map[string]any{f: v}, scrub.Options{UserFields: userFieldIDs(fields)}).(map[string]any)[f]
			if canon(t, sv) != canon(t, df[f]) {
				t.Errorf("issue %s field %s = %s, want %s", id, f, canon(t, df[f]), canon(t, sv))
			}
		}
		w.checkNames(id, sf, doc, fields)
		for _, c := range []struct{ doc, sim string }{{"comments", "comments"}, {"changelog", "histories"}, {"worklogs", "worklogs"}} {
			if c.doc == "worklogs" && !w.connector.Spec.Include.Worklogs {
				if _, ok := doc["worklogs"]; ok {
					t.Errorf("issue %s: worklogs exported, but the connector does not ask for them", id)
				}
				continue
			}
			sl, _ := s[c.sim].([]any)
			counts := doc["counts"].(map[string]any)[c.doc].(map[string]any)
			dl, _ := doc[c.doc].([]any)
			if len(dl) != len(sl) || counts["exported"] != json.Number(itoa(len(sl))) || counts["total"] != json.Number(itoa(len(sl))) {
				t.Errorf("issue %s: %d %s exported (counts %v), simulator has %d", id, len(dl), c.doc, counts, len(sl))
				continue
			}
			if c.doc == "changelog" {
				dl = sortedByID(dl)
			}
			if a, b := canon(t, scrub.Value(sl, scrub.Options{UserFields: userFieldIDs(fields)})), canon(t, dl); a != b {
				i := 0
				for i < len(a) && i < len(b) && a[i] == b[i] {
					i++
				}
				t.Errorf("issue %s: %s differ from the simulator's at %d: mirror %.200s, simulator %.200s", id, c.doc, i, b[max(0, i-100):], a[max(0, i-100):])
			}
		}
	}
}

// simFields reads the site's field catalogue (/rest/api/3/field) by id.
func (w *world) simFields() map[string]jira.Field {
	w.t.Helper()
	tr, err := w.sim.IssueTokens(w.user, "read:jira-work")
	if err != nil {
		w.t.Fatal(err)
	}
	c := jira.New(w.simURL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tr.AccessToken}), jira.Options{})
	fs, err := c.Fields(w.t.Context(), w.site.CloudID)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]jira.Field{}
	for _, f := range fs {
		out[f.ID] = f
	}
	return out
}

func userFieldIDs(fields map[string]jira.Field) map[string]bool {
	out := map[string]bool{}
	for id, f := range fields {
		if f.Schema.Type == "user" || (f.Schema.Type == "array" && f.Schema.Items == "user") {
			out[id] = true
		}
	}
	return out
}

// checkNames: every field the issue has is named as /field names it, and every custom field is also under its
// name, typed by its schema, with the same (scrubbed) value as under its id.
func (w *world) checkNames(id string, sf map[string]any, doc map[string]any, fields map[string]jira.Field) {
	w.t.Helper()
	t := w.t
	names, _ := doc["names"].(map[string]any)
	custom, _ := doc["customFields"].(map[string]any)
	df := doc["fields"].(map[string]any)
	nameUse := map[string]int{}
	for f := range sf {
		if fl, ok := fields[f]; ok && fl.Custom {
			nameUse[fl.Name]++
		}
	}
	for f := range sf {
		fl, ok := fields[f]
		if !ok || f == "comment" || f == "worklog" {
			continue
		}
		if names[f] != fl.Name {
			t.Errorf("issue %s: names[%s] = %v, want %q", id, f, names[f], fl.Name)
		}
		if !fl.Custom {
			continue
		}
		name := fl.Name
		if nameUse[name] > 1 {
			name += " [" + f + "]"
		}
		cf, _ := custom[name].(map[string]any)
		if cf == nil {
			t.Errorf("issue %s: customFields has no %q (%s)", id, name, f)
			continue
		}
		if cf["id"] != f || cf["type"] != nullable(fl.Schema.Type) || cf["items"] != nullable(fl.Schema.Items) || cf["custom"] != nullable(fl.Schema.Custom) {
			t.Errorf("issue %s: customFields[%q] = id %v type %v items %v custom %v, want %s %s %s %s", id, name, cf["id"], cf["type"], cf["items"], cf["custom"],
				f, fl.Schema.Type, fl.Schema.Items, fl.Schema.Custom)
		}
		if canon(t, cf["value"]) != canon(t, df[f]) {
			t.Errorf("issue %s: customFields[%q].value = %s, want %s", id, name, canon(t, cf["value"]), canon(t, df[f]))
		}
	}
}

// nullable is how an omitempty string member decodes: absent (nil) when empty.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func sortedByID(l []any) []any {
	out := append([]any(nil), l...)
	sort.SliceStable(out, func(a, b int) bool {
		x, _ := out[a].(map[string]any)["id"].(string)
		y, _ := out[b].(map[string]any)["id"].(string)
		return len(x) < len(y) || (len(x) == len(y) && x < y)
	})
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func compileSchemas(t testing.TB) *jsonschema.Compiler {
	t.Helper()
	c := jsonschema.NewCompiler()
	for _, name := range []string{"issue.v1.json", "manifest.v1.json"} {
		b, err := mirror.Schemas.ReadFile("schema/" + name)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource("https://jiraexport.example/schema/"+name, doc); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func validate(t testing.TB, c *jsonschema.Compiler, name, what string, b []byte) {
	t.Helper()
	sch, err := c.Compile("https://jiraexport.example/schema/" + name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("%s does not validate against %s: %v", what, name, err)
	}
}

// knownAccountIDs are every account id the simulator knows.
func (w *world) knownAccountIDs() []string {
	var ids []string
	for _, u := range w.sim.Users() {
		if u.AccountID != "unknown" {
			ids = append(ids, u.AccountID)
		}
	}
	return ids
}

func (w *world) privacyScan(objs map[string][]byte) {
	w.t.Helper()
	for k, b := range objs {
		if strings.Contains(k, "/attachments/") {
			continue // the users' own files, copied byte for byte
		}
		for _, id := range w.knownAccountIDs() {
			if bytes.Contains(b, []byte(id)) {
				w.t.Errorf("object %s holds account id %s", k, id)
			}
		}
		if bytes.Contains(bytes.ToLower(b), []byte("accountid")) {
			w.t.Errorf("object %s holds an accountId member", k)
		}
	}
}

// checkCounters fails unless the run record's counters are the manifest's figures.
func (w *world) checkCounters(r *connectors.Run, m *mirror.Manifest) {
	w.t.Helper()
	c := r.Counters
	got := [6]int64{c.IssuesWritten, c.IssuesUnchanged, c.IssuesRemoved, c.Requests, c.PointsSpent, c.Bytes}
	want := [6]int64{m.Counts.Written, m.Counts.Unchanged, m.Counts.Removed, m.Stats.Requests, m.Stats.Points, m.Stats.Bytes}
	if got != want || c.IssuesDone != c.IssuesWritten+c.IssuesUnchanged || int64(len(m.Written)) != m.Counts.Written || int64(len(m.Removed)) != m.Counts.Removed {
		w.t.Errorf("run %s counters (written, unchanged, removed, requests, points, bytes) = %v (done %d), want the manifest's %v (%d and %d listed)",
			r.ID, got, c.IssuesDone, want, len(m.Written), len(m.Removed))
	}
}
