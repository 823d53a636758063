package attachments

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/stacktest"
	"jiraexport/shared/awsconfig"
	"jiraexport/shared/backoff"
)

// fixture is one test's bucket and key on the local AWS stack and its own Atlassian simulator, reached through
// two loopback servers: the gateway, and a media host on its own port that the gateway's 303s are rewritten to
// point at (Atlassian's media host is a different origin from api.atlassian.com). The media host records what it
// received and forwards it to wherever the simulator's 303 pointed, so the tests hold whether the simulator serves
// media on its API origin or on an origin of its own.
type fixture struct {
	env     *stacktest.Env
	s3      *s3.Client
	sim     *atlassiansim.Server
	cloudID string
	token   oauth2.TokenSource
	api     *httptest.Server
	media   *mediaHost
}

// mediaHost wraps the simulator's media endpoint: it records every request's Authorization header and can stall
// or cut a response after a number of body bytes.
type mediaHost struct {
	srv *httptest.Server

	mu       sync.Mutex
	auth     []string // Authorization headers received ("" when absent)
	ranges   []string
	stallAt  int64 // >0: after this many body bytes, block until the client goes away (once)
	cutAt    int64 // >0: serve only this many bytes, without Content-Length, then end cleanly (once)
	requests int
}

func (m *mediaHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.auth = append(m.auth, r.Header.Get("Authorization"))
	m.ranges = append(m.ranges, r.Header.Get("Range"))
	m.requests++
	stall, cut := m.stallAt, m.cutAt
	m.stallAt, m.cutAt = 0, 0
	m.mu.Unlock()
	if stall != 0 || cut != 0 {
		w = &limitWriter{ResponseWriter: w, r: r, stall: stall, cut: cut}
	}
	m.proxy(w, r)
}

// proxy forwards the request, headers included (so a leaked Authorization would also reach the simulator, which
// refuses it), to the media URL the gateway named, wherever the simulator serves it.
func (m *mediaHost) proxy(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Query().Get("u")
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target, nil)
	if err != nil || target == "" {
		http.Error(w, "bad proxied URL", http.StatusBadRequest)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (m *mediaHost) received() (auth []string, ranges []string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.auth...), append([]string(nil), m.ranges...), m.requests
}

type limitWriter struct {
	http.ResponseWriter
	r          *http.Request
	stall, cut int64
	n          int64
}

func (l *limitWriter) WriteHeader(code int) {
	if l.cut > 0 {
		l.Header().Del("Content-Length") // chunked: the client sees a clean, early end
	}
	l.ResponseWriter.WriteHeader(code)
}

func (l *limitWriter) Write(p []byte) (int, error) {
	limit := max(l.stall, l.cut)
	if l.n+int64(len(p)) > limit {
		k := limit - l.n
		if k > 0 {
			_, _ = l.ResponseWriter.Write(p[:k])
			l.n += k
		}
		if f, ok := l.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		if l.stall > 0 {
			<-l.r.Context().Done()
		}
		return 0, errors.New("stopped")
	}
	n, err := l.ResponseWriter.Write(p)
	l.n += int64(n)
	return n, err
}

type simOptions struct {
	large int64
}

func newFixture(t testing.TB, o simOptions) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local AWS stack")
	}
	env := stacktest.New(t)
	sim, err := atlassiansim.New(atlassiansim.Config{Seed: 11, Sites: 1, ProjectsPerSite: 1, IssuesPerProject: 12, Users: 2,
		MaxAttachmentSize: 64 << 10, LargeAttachmentSize: o.large})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{env: env, sim: sim, cloudID: sim.Sites()[0].CloudID}
	f.media = &mediaHost{}
	f.media.srv = httptest.NewServer(f.media)
	t.Cleanup(f.media.srv.Close)
	f.api = httptest.NewServer(rewriteLocation(sim.Handler(), func(loc string) string {
		// The media host keeps the path (/file/<uuid>/binary), as Atlassian's media URLs have it.
		path := "/media"
		if u, err := url.Parse(loc); err == nil {
			path = u.Path
		}
		return f.media.srv.URL + path + "?" + url.Values{"u": {loc}}.Encode()
	}))
	t.Cleanup(f.api.Close)
	sim.SetBaseURL(f.api.URL)
	tr, err := sim.IssueTokens(sim.ConsentingUsers()[0].AccountID, "read:jira-work", "offline_access")
	if err != nil {
		t.Fatal(err)
	}
	f.token = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tr.AccessToken, TokenType: "Bearer"})
	f.s3 = s3.NewFromConfig(env.AWS, awsconfig.S3PathStyle(true))
	return f
}

// rewriteLocation moves the gateway's redirects to the media host's origin.
func rewriteLocation(next http.Handler, rewrite func(string) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&locationWriter{ResponseWriter: w, rewrite: rewrite}, r)
	})
}

type locationWriter struct {
	http.ResponseWriter
	rewrite func(string) string
}

func (l *locationWriter) WriteHeader(code int) {
	if loc := l.Header().Get("Location"); loc != "" && code/100 == 3 {
		l.Header().Set("Location", l.rewrite(loc))
	}
	l.ResponseWriter.WriteHeader(code)
}

func (f *fixture) transferor(mod func(*Config)) *Transferor { return f.transferorOn(f.s3, mod) }

// transferorOn is transferor writing through s3c.
func (f *fixture) transferorOn(s3c *s3.Client, mod func(*Config)) *Transferor {
	cfg := Config{APIURL: f.api.URL, Bucket: f.env.Bucket, KMSKeyID: f.env.KeyARN, PartSize: MinPartSize, Concurrency: 2,
		Margin: 50 * time.Millisecond, Retry: backoff.Policy{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond, Retries: 3},
		Gateway: &http.Client{Timeout: 10 * time.Second}}
	if mod != nil {
		mod(&cfg)
	}
	return New(s3c, cfg)
}

func (f *fixture) target() Target {
	return Target{ConnectionID: "conn1", ConnectorID: "01JCONNECTOR", CloudID: f.cloudID}
}

// attachments lists every attachment of the site's issues through the gateway, as the export sees them.
func (f *fixture) attachments(t testing.TB) []Attachment {
	t.Helper()
	tok, _ := f.token.Token()
	body := `{"jql":"project is not empty ORDER BY created ASC","fields":["attachment"],"maxResults":100}`
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.api.URL+"/ex/jira/"+f.cloudID+"/rest/api/3/search/jql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	tok.SetAuthHeader(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Issues []struct {
			Fields struct {
				Attachment []Attachment `json:"attachment"`
			} `json:"fields"`
		} `json:"issues"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("search = %d, %v", resp.StatusCode, err)
	}
	var all []Attachment
	for _, is := range out.Issues {
		all = append(all, is.Fields.Attachment...)
	}
	return all
}

// find returns an attachment matching ok.
func (f *fixture) find(t testing.TB, ok func(Attachment) bool) Attachment {
	t.Helper()
	for _, a := range f.attachments(t) {
		if ok(a) {
			return a
		}
	}
	t.Fatal("no attachment fits")
	return Attachment{}
}

// mediaID is the media file id in the simulator's own 303 for a (its Location before the fixture rewrites it).
func (f *fixture) mediaID(t *testing.T, a Attachment) string {
	t.Helper()
	tok, _ := f.token.Token()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/ex/jira/"+f.cloudID+"/rest/api/3/attachment/content/"+a.ID, nil)
	tok.SetAuthHeader(req)
	rec := httptest.NewRecorder()
	f.sim.Handler().ServeHTTP(rec, req)
	u, err := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusSeeOther || err != nil {
		t.Fatalf("simulator's content redirect = %d %q", rec.Code, rec.Header().Get("Location"))
	}
	_, rest, _ := strings.Cut(u.Path, "/file/")
	id, _, _ := strings.Cut(rest, "/")
	if id == "" {
		t.Fatalf("no media id in %q", u.Path)
	}
	return id
}

// want returns the bytes the simulator serves for a, and their SHA-256.
func (f *fixture) want(t *testing.T, a Attachment) ([]byte, string) {
	t.Helper()
	id, _ := strconv.ParseInt(a.ID, 10, 64)
	r, size, err := f.sim.AttachmentContent(f.cloudID, id)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return b, hex.EncodeToString(s[:])
}

// checkObject asserts the mirror holds exactly want under SSE-KMS with the stack's key.
func (f *fixture) checkObject(t *testing.T, a Attachment, want []byte) {
	t.Helper()
	out, err := f.s3.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(f.env.Bucket),
		Key: aws.String(Key("conn1", "01JCONNECTOR", a.ID))})
	if err != nil {
		t.Fatalf("GetObject(%s) error = %v", a.ID, err)
	}
	defer out.Body.Close()
	got, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("object %s has %d bytes differing from the attachment's %d", a.ID, len(got), len(want))
	}
	if out.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms || aws.ToString(out.SSEKMSKeyId) != f.env.KeyARN {
		t.Errorf("object %s encryption = %q under %q, want aws:kms under the stack's key", a.ID, out.ServerSideEncryption, aws.ToString(out.SSEKMSKeyId))
	}
	if ct := aws.ToString(out.ContentType); ct != contentType(a.MimeType) {
		t.Errorf("object %s content type = %q, want %q", a.ID, ct, contentType(a.MimeType))
	}
}

func (f *fixture) exists(t *testing.T, id string) bool {
	t.Helper()
	_, err := f.s3.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(f.env.Bucket), Key: aws.String(Key("conn1", "01JCONNECTOR", id))})
	return err == nil
}

func (f *fixture) uploadsInProgress(t *testing.T) int {
	t.Helper()
	out, err := f.s3.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(f.env.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

// noBearerAtMedia asserts the media host never saw an Authorization header (the simulator's media endpoint would
// also have refused it with 401).
func (f *fixture) noBearerAtMedia(t *testing.T) {
	t.Helper()
	auth, _, n := f.media.received()
	if n == 0 {
		t.Fatal("the media host received no request")
	}
	for _, h := range auth {
		if h != "" {
			t.Fatalf("the media host received Authorization %q", h)
		}
	}
	if got := f.sim.Counters().Statuses[atlassiansim.KeyMedia][http.StatusUnauthorized]; got != 0 {
		t.Errorf("media answered 401 %d times", got)
	}
}
