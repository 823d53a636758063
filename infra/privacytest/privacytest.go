// Package privacytest builds a realistic customer scenario on a private copy of the stack and scans everything it
// left behind, for the privacy suite (shared/privacy) and the erasure tests (shared/erasure).
//
// Build connects several Atlassian users through the real OAuth flow against the simulator, creates connectors
// and runs (finished, failed and active ones), refreshes tokens (rotating refresh tokens), lets one grant be
// revoked (the connection becomes reauth_required), issues a re-authorisation ticket and a second API key, and
// with Options.Export runs a real export (the shared/export engine, wired as functions/export wires it) of every
// connector against the simulator, so S3 holds real exported, scrubbed issue documents and manifests, and adds
// what a long-lived
// mirror also has (several versions, a delete marker and an incomplete multipart upload), SSE-KMS under the
// stack's key.
package privacytest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/stacktest"
	"jiraexport/shared/apikeys"
	"jiraexport/shared/config"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/erasure"
	"jiraexport/shared/export"
	"jiraexport/shared/fingerprint"
	"jiraexport/shared/jira"
	"jiraexport/shared/logging"
	"jiraexport/shared/mirror"
	"jiraexport/shared/oauthflow"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/table"
	"jiraexport/shared/tokens"
)

// ClientSecret is the OAuth client secret of the scenario's app.
const ClientSecret = "privacytest-client-secret-7f3a9c"

// Clock is the scenario's clock (ours; the simulator keeps its own).
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// Buffer collects log lines from several goroutines.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }

// String returns everything written.
func (l *Buffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// Party is one connected customer.
type Party struct {
	ConnID     string
	AccountID  string // the simulator's, never stored by us
	Keys       []string
	Connectors []string
	// Exported are the connectors whose real export succeeded (Options.Export).
	Exported []string
	Revoked  bool
}

// Scenario is the built world.
type Scenario struct {
	Env     *stacktest.Env
	Sim     *atlassiansim.Server
	Clock   *Clock
	Logs    *Buffer
	Log     *slog.Logger
	Conns   *connections.Store
	Keys    *apikeys.Store
	Toks    *tokens.Store
	Store   *connectors.Store
	States  *oauthstate.Store
	S3      *s3.Client
	Parties []Party
	// JQLs are the connectors' JQL queries (values that must never reach a log).
	JQLs []string
	// Engine is the export engine the scenario ran (Options.Export), for tests that run more exports.
	Engine *export.Engine
	// Secrets are plaintexts that must never be stored or logged: API keys, access and refresh tokens, the
	// re-authorisation ticket, the client secret.
	Secrets []string
}

// Options tune Build.
type Options struct {
	// Connections is the number of connected users (default 3; the last one's grant is revoked).
	Connections int
	// Export runs a real export of every connector (one more run each, plus the export's index, sync and
	// checkpoint items and real documents in S3). Off, the table and the bucket hold only the scenario's
	// hand-made runs and objects, whose counts the erasure tests pin exactly.
	Export bool
}

// Build builds the scenario; everything is cleaned up with the test.
func Build(t *testing.T, o Options) *Scenario {
	t.Helper()
	if o.Connections == 0 {
		o.Connections = 3
	}
	env := stacktest.New(t)
	at := stacktest.StartAtlassian(t, atlassiansim.Config{
		Seed: 14, Sites: 2, ProjectsPerSite: 1, IssuesPerProject: 3, Users: o.Connections + 1, ClientSecret: ClientSecret,
	})
	sim, simURL, base := at.Sim, at.URL, at.Base
	ctx := context.Background()
	sc := &Scenario{Env: env, Sim: sim, Clock: &Clock{t: time.Now()}, Logs: &Buffer{}, S3: env.Clients.S3}
	sc.Log = logging.New(sc.Logs, logging.ParseLevel("DEBUG"))
	db := env.Clients.DynamoDB
	sc.States = oauthstate.NewStore(db, env.Table, table.WithClock(sc.Clock.Now))
	sc.Conns = connections.NewStore(db, env.Table, table.WithClock(sc.Clock.Now))
	sc.Keys = apikeys.NewStore(db, env.Table)
	sc.Store = connectors.NewStore(db, env.Table, connectors.WithClock(sc.Clock.Now), connectors.WithRunHistory(30*24*time.Hour))
	// Wired as functions/connectors wires it: a rejected grant flags the connection and stops its work.
	sc.Toks = tokens.NewStore(db, env.Clients.KMS, env.Table, env.TokenKeyARN, &oauth2.Config{
		ClientID: "sim-client-id", ClientSecret: ClientSecret, Endpoint: config.Endpoint(simURL),
	}, tokens.WithClock(sc.Clock.Now), tokens.WithLogger(sc.Log),
		tokens.WithGrantReauthCallback(sc.Conns.OnGrantRejected(sc.Store)), tokens.WithRetryPolicy(tokens.RetryPolicy{Attempts: 1}))
	handler, err := oauthflow.New(oauthflow.Config{
		ClientID: "sim-client-id", ClientSecret: ClientSecret, AuthURL: simURL, APIURL: simURL, PublicBaseURL: base,
		Logger: sc.Log, Now: sc.Clock.Now,
	}, oauthflow.Deps{States: sc.States, Tokens: sc.Toks, Connections: sc.Conns, Keys: sc.Keys,
		Fingerprints: fingerprint.New(env.Clients.KMS, env.AccountKeyARN)})
	if err != nil {
		t.Fatal(err)
	}
	// Served on the listener whose address the base URL already names.
	srv := &httptest.Server{Listener: at.Listener, Config: &http.Server{Handler: handler}}
	srv.Start()
	t.Cleanup(srv.Close)
	sc.Secrets = append(sc.Secrets, ClientSecret)

	users := sim.ConsentingUsers()
	if len(users) < o.Connections {
		t.Fatalf("the simulator has %d consenting users, want %d", len(users), o.Connections)
	}
	for i := range o.Connections {
		key := stacktest.NewBrowser(t).As(users[i].AccountID).Connect(t, base)
		k, err := sc.Keys.Authenticate(ctx, key)
		if err != nil {
			t.Fatalf("Authenticate(key from the success page) = %v", err)
		}
		p := Party{ConnID: k.ConnectionID, AccountID: users[i].AccountID, Keys: []string{key}}
		sc.Secrets = append(sc.Secrets, key)
		second, _, err := sc.Keys.Issue(ctx, p.ConnID, "ci")
		if err != nil {
			t.Fatal(err)
		}
		p.Keys = append(p.Keys, second)
		sc.Secrets = append(sc.Secrets, second)
		sc.Parties = append(sc.Parties, p)
	}
	// Connectors and runs: one finished, one failed, one real export (succeeded, or failed where the user is not
	// on the site) and one still active on every connector.
	eng := sc.exportEngine(simURL)
	sc.Engine = eng
	for i := range sc.Parties {
		p := &sc.Parties[i]
		for j, site := range sim.Sites() {
			jql := "project = " + site.Projects[0].Key + " ORDER BY updated"
			sc.JQLs = append(sc.JQLs, jql)
			c, err := sc.Store.Create(ctx, p.ConnID, connectors.Spec{
				Name: fmt.Sprintf("export %d", j), SiteID: site.CloudID, JQL: jql,
				Schedule: connectors.Schedule{Expression: "rate(1 day)", Timezone: "UTC"}, Enabled: true,
				Include: connectors.Include{Comments: true, Attachments: connectors.Attachments{Enabled: true, MaxBytes: 1 << 20, MediaTypes: []string{}}},
				Formats: []string{"json", "markdown"},
			}, sc.Clock.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			p.Connectors = append(p.Connectors, c.ID)
			for _, final := range []connectors.RunStatus{connectors.RunSucceeded, connectors.RunFailed} {
				r, err := sc.Store.StartRun(ctx, p.ConnID, c.ID, connectors.TriggerManual)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := sc.Store.UpdateProgress(ctx, p.ConnID, c.ID, r.ID, connectors.Progress{Status: connectors.RunRunning, Phase: "searching"}); err != nil {
					t.Fatal(err)
				}
				if _, err := sc.Store.UpdateProgress(ctx, p.ConnID, c.ID, r.ID, connectors.Progress{Status: final, Phase: "finishing",
					Counters: connectors.Counters{IssuesDone: 3, Bytes: 1234}}); err != nil {
					t.Fatal(err)
				}
			}
			if o.Export && sc.export(t, eng, p.ConnID, c.ID) {
				p.Exported = append(p.Exported, c.ID)
			}
			if _, err := sc.Store.StartRun(ctx, p.ConnID, c.ID, connectors.TriggerSchedule); err != nil {
				t.Fatal(err)
			}
		}
		if o.Export && len(p.Exported) == 0 {
			t.Fatalf("no export of connection %d succeeded; logs:\n%s", i, sc.Logs.String())
		}
	}
	// Token refreshes: past the access tokens' expiry every connection refreshes (the refresh token rotates).
	sc.Clock.Advance(atlassiansim.AccessTokenTTL + time.Minute)
	for _, p := range sc.Parties {
		tok, err := sc.Toks.Token(ctx, p.ConnID)
		if err != nil {
			t.Fatalf("refresh of connection %s: %v", p.ConnID, err)
		}
		sc.Secrets = append(sc.Secrets, tok.AccessToken)
	}
	// A revoked grant: the last user revokes the app; the next refresh is refused and the connection flagged.
	last := &sc.Parties[len(sc.Parties)-1]
	if err := sim.RevokeGrant(last.AccountID); err != nil {
		t.Fatal(err)
	}
	last.Revoked = true
	sc.Clock.Advance(atlassiansim.AccessTokenTTL + time.Minute)
	if _, err := sc.Toks.Token(ctx, last.ConnID); !errors.Is(err, tokens.ErrReauthRequired) {
		t.Fatalf("Token after revocation = %v, want ErrReauthRequired", err)
	}
	// A re-authorisation ticket and the flow state it starts, bound to the first connection.
	ticket, err := sc.States.CreateReauth(ctx, sc.Parties[0].ConnID)
	if err != nil {
		t.Fatal(err)
	}
	state, nonce, err := sc.States.Begin(ctx, sc.Parties[0].ConnID)
	if err != nil {
		t.Fatal(err)
	}
	sc.Secrets = append(sc.Secrets, ticket, state, nonce)
	for _, p := range sc.Parties {
		sc.WriteObjects(t, p)
	}
	return sc
}

// exportEngine is the export as functions/export wires it (its token store flags a rejected grant), on the
// scenario's clock.
func (sc *Scenario) exportEngine(simURL string) *export.Engine {
	return export.New(export.Config{
		Runs: sc.Store, Connections: sc.Conns, Tokens: sc.Toks,
		Mirror: mirror.NewWriter(sc.S3, sc.Env.Bucket, sc.Env.KeyARN),
		DB:     sc.Env.Clients.DynamoDB, Table: sc.Env.Table,
		Jira: func(ts oauth2.TokenSource, observe func(jira.Observation)) *jira.Client {
			return jira.New(simURL, ts, jira.Options{Timeout: 30 * time.Second, Observe: observe,
				IsReauth: func(err error) bool {
					return errors.Is(err, tokens.ErrReauthRequired) || errors.Is(err, tokens.ErrNotFound)
				}})
		},
		Log: sc.Log, Now: sc.Clock.Now,
	})
}

// export starts a manual run of the connector and runs the real export until the run ends; it reports whether
// the run succeeded.
func (sc *Scenario) export(t *testing.T, eng *export.Engine, connID, connectorID string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	r, err := sc.Store.StartRun(ctx, connID, connectorID, connectors.TriggerManual)
	if err != nil {
		t.Fatal(err)
	}
	ref := connectors.RunRef{ConnectionID: connID, ConnectorID: connectorID, RunID: r.ID}
	for range 20 {
		if _, err := eng.Run(ctx, ref); err != nil {
			t.Fatalf("export of %+v: %v", ref, err)
		}
		got, err := sc.Store.GetRun(ctx, connID, connectorID, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Status.Active() {
			return got.Status == connectors.RunSucceeded
		}
	}
	t.Fatalf("export of %+v never ended", ref)
	return false
}

// WriteObjects adds what a long-lived mirror also holds under the party's prefix, beside the real export's
// documents: an issue document rewritten (two versions), an attachment, a manifest, a deleted issue (a delete
// marker over its version) and an incomplete multipart upload with one part. Every write names SSE-KMS and the stack's key, as the export must.
func (sc *Scenario) WriteObjects(t *testing.T, p Party) {
	t.Helper()
	ctx := context.Background()
	for _, cid := range p.Connectors {
		pre := p.ConnID + "/" + cid + "/"
		puts := []struct{ key, body string }{
			{"issues/90001.json", `{"id":"90001","key":"P1-1","fields":{"summary":"first"}}`},
			{"issues/90001.json", `{"id":"90001","key":"P1-1","fields":{"summary":"first, edited"}}`},
			{"issues/90001.md", "# P1-1 first, edited\n"},
			{"issues/90002.json", `{"id":"90002","key":"P1-2","fields":{"summary":"gone soon"}}`},
			{"attachments/90003", "\x89PNG fake bytes"},
			{"manifests/run-0.json", `{"written":2,"deleted":0}`},
		}
		for _, o := range puts {
			sc.Put(t, pre+o.key, o.body)
		}
		if _, err := sc.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &sc.Env.Bucket, Key: aws.String(pre + "issues/90002.json")}); err != nil {
			t.Fatal(err)
		}
		up, err := sc.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket: &sc.Env.Bucket, Key: aws.String(pre + "attachments/90004"),
			ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: &sc.Env.KeyARN,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sc.S3.UploadPart(ctx, &s3.UploadPartInput{Bucket: &sc.Env.Bucket, Key: up.Key, UploadId: up.UploadId,
			PartNumber: aws.Int32(1), Body: bytes.NewReader(bytes.Repeat([]byte("x"), 1024))}); err != nil {
			t.Fatal(err)
		}
	}
}

// Put writes one object as the export does.
func (sc *Scenario) Put(t *testing.T, key, body string) {
	t.Helper()
	_, err := sc.S3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &sc.Env.Bucket, Key: aws.String(key), Body: strings.NewReader(body), ContentType: aws.String("application/json"),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: &sc.Env.KeyARN,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Eraser returns an erasure core on the scenario's stack, wired as the functions wire it, with c's tuning.
func (sc *Scenario) Eraser(c erasure.Config) *erasure.Eraser {
	c.DB, c.S3, c.Table, c.Bucket = sc.Env.Clients.DynamoDB, sc.S3, sc.Env.Table, sc.Env.Bucket
	c.Connections, c.Runs = sc.Conns, sc.Store
	if c.Now == nil {
		c.Now = sc.Clock.Now
	}
	return erasure.New(c)
}

// PII returns the account ids, e-mail addresses and display names of the simulator's people.
func (sc *Scenario) PII() []string {
	var out []string
	for _, u := range sc.Sim.Users() {
		if u.AccountType != "atlassian" {
			continue
		}
		for _, v := range []string{u.AccountID, u.Email, u.DisplayName} {
			if v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// AccountIDs returns the simulator's account ids (people and apps).
func (sc *Scenario) AccountIDs() []string {
	var out []string
	for _, u := range sc.Sim.Users() {
		if u.AccountID != "" && u.AccountID != "unknown" {
			out = append(out, u.AccountID)
		}
	}
	return out
}

// Item is one table item as canonical JSON.
type Item struct {
	PK, SK string
	JSON   string
	Raw    map[string]ddbtypes.AttributeValue
}

// Items returns every table item, sorted by key.
func (sc *Scenario) Items(t *testing.T) []Item {
	t.Helper()
	var out []Item
	p := dynamodb.NewScanPaginator(sc.Env.Clients.DynamoDB, &dynamodb.ScanInput{TableName: &sc.Env.Table, ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			var m map[string]any
			if err := attributevalue.UnmarshalMap(it, &m); err != nil {
				t.Fatal(err)
			}
			j, _ := json.Marshal(m) // map keys marshal sorted: canonical
			pk, _ := m["pk"].(string)
			sk, _ := m["sk"].(string)
			out = append(out, Item{PK: pk, SK: sk, JSON: string(j), Raw: it})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PK+"\x00"+out[i].SK < out[j].PK+"\x00"+out[j].SK })
	return out
}

// Object is one object version or delete marker, with its content and encryption.
type Object struct {
	Key, VersionID string
	DeleteMarker   bool
	Body           []byte
	SSE            string
	KMSKeyID       string
}

// Objects returns every version and delete marker in the bucket, with bodies and encryption headers.
func (sc *Scenario) Objects(t *testing.T) []Object {
	t.Helper()
	ctx := context.Background()
	var out []Object
	p := s3.NewListObjectVersionsPaginator(sc.S3, &s3.ListObjectVersionsInput{Bucket: &sc.Env.Bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.DeleteMarkers {
			out = append(out, Object{Key: aws.ToString(m.Key), VersionID: aws.ToString(m.VersionId), DeleteMarker: true})
		}
		for _, v := range page.Versions {
			g, err := sc.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &sc.Env.Bucket, Key: v.Key, VersionId: v.VersionId})
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, Object{Key: aws.ToString(v.Key), VersionID: aws.ToString(v.VersionId), Body: body,
				SSE: string(g.ServerSideEncryption), KMSKeyID: aws.ToString(g.SSEKMSKeyId)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key+out[i].VersionID < out[j].Key+out[j].VersionID })
	return out
}

// Uploads returns the keys of every incomplete multipart upload.
func (sc *Scenario) Uploads(t *testing.T) []string {
	t.Helper()
	var out []string
	in := &s3.ListMultipartUploadsInput{Bucket: &sc.Env.Bucket}
	for {
		page, err := sc.S3.ListMultipartUploads(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page.Uploads {
			out = append(out, aws.ToString(u.Key)+"#"+aws.ToString(u.UploadId))
		}
		if !aws.ToBool(page.IsTruncated) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
	slices.Sort(out)
	return out
}

// Snapshot is everything of one connection: its items (in and outside its partition, by `connId`), its object
// versions with a digest of their bodies, and its uploads.
type Snapshot struct {
	Items   []string
	Objects []string
	Uploads []string
}

// Belongs reports whether an item belongs to connection id: in its partition, or naming it in `connId`.
func Belongs(it Item, id string) bool {
	if it.PK == connections.PK(id) {
		return true
	}
	c, ok := it.Raw["connId"].(*ddbtypes.AttributeValueMemberS)
	return ok && c.Value == id
}

// Snapshot takes connection id's snapshot.
func (sc *Scenario) Snapshot(t *testing.T, id string) Snapshot {
	t.Helper()
	var s Snapshot
	for _, it := range sc.Items(t) {
		if Belongs(it, id) {
			s.Items = append(s.Items, it.JSON)
		}
	}
	for _, o := range sc.Objects(t) {
		if strings.HasPrefix(o.Key, id+"/") {
			sum := sha256.Sum256(o.Body)
			s.Objects = append(s.Objects, fmt.Sprintf("%s %s marker=%v sha256=%s sse=%s key=%s", o.Key, o.VersionID, o.DeleteMarker, hex.EncodeToString(sum[:]), o.SSE, o.KMSKeyID))
		}
	}
	for _, u := range sc.Uploads(t) {
		if strings.HasPrefix(u, id+"/") {
			s.Uploads = append(s.Uploads, u)
		}
	}
	return s
}

// Empty reports whether nothing of the connection is left.
func (s Snapshot) Empty() bool { return len(s.Items)+len(s.Objects)+len(s.Uploads) == 0 }

// Diff describes how b differs from s ("" when equal).
func (s Snapshot) Diff(b Snapshot) string {
	var d strings.Builder
	for _, part := range []struct {
		name string
		x, y []string
	}{{"items", s.Items, b.Items}, {"objects", s.Objects, b.Objects}, {"uploads", s.Uploads, b.Uploads}} {
		for _, v := range part.x {
			if !slices.Contains(part.y, v) {
				fmt.Fprintf(&d, "%s: lost %s\n", part.name, v)
			}
		}
		for _, v := range part.y {
			if !slices.Contains(part.x, v) {
				fmt.Fprintf(&d, "%s: gained %s\n", part.name, v)
			}
		}
	}
	return d.String()
}
