package atlassiansim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// firstAttachment finds a non-empty attachment on site 0 and returns its id and size.
func firstAttachment(t *testing.T, f *fixture, token string, minSize int64) (string, int64) {
	t.Helper()
	s := f.site(0)
	ids := attachmentIDs(t, f, s.CloudID, token, keysOf(s, 0, 30))
	for _, id := range ids {
		m := f.jira("GET", s.CloudID, "/attachment/"+id, token, nil).json(t)
		if sz := int64(m["size"].(float64)); sz >= minSize {
			return id, sz
		}
	}
	t.Fatalf("no attachment of at least %d bytes", minSize)
	return "", 0
}

func expected(t *testing.T, f *fixture, id string, from, n int64) []byte {
	t.Helper()
	aid, _ := strconv.ParseInt(id, 10, 64)
	r, _, err := f.sim.AttachmentContent(f.site(0).CloudID, aid)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, from); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

func TestAttachmentRedirectToMedia(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	id, size := firstAttachment(t, f, tr.AccessToken, 100)

	r := f.jira("GET", s.CloudID, "/attachment/content/"+id, tr.AccessToken, nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("attachment content = %d, want 303", r.status)
	}
	loc := r.header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(u.Path, "/file/") || u.Query().Get("token") == "" || u.Host == strings.TrimPrefix(f.url, "http://") {
		t.Fatalf("Location = %q, want a media URL with a token on the media host (not %s)", loc, f.url)
	}

	// No bearer: served by its own token.
	m := f.do("GET", loc, "", nil)
	if m.status != 200 || int64(len(m.body)) != size || !bytes.Equal(m.body, expected(t, f, id, 0, size)) {
		t.Fatalf("media download = %d, %d bytes; want 200 with the attachment's %d bytes", m.status, len(m.body), size)
	}
	// With the Jira bearer token: refused.
	if m := f.do("GET", loc, tr.AccessToken, nil); m.status != http.StatusUnauthorized {
		t.Errorf("media download with a bearer token = %d, want 401", m.status)
	}
	// Range on the media host.
	if m := f.do("GET", loc, "", nil, "Range", "bytes=10-19"); m.status != http.StatusPartialContent || !bytes.Equal(m.body, expected(t, f, id, 10, 10)) {
		t.Errorf("media range = %d %q", m.status, m.body)
	}
	// Tampered and expired tokens.
	q := u.Query()
	q.Set("token", q.Get("token")+"x")
	bad := *u
	bad.RawQuery = q.Encode()
	if m := f.do("GET", bad.String(), "", nil); m.status != http.StatusUnauthorized {
		t.Errorf("media with a tampered token = %d, want 401", m.status)
	}
	other := strings.Replace(loc, u.Path, "/file/00000000-0000-4000-8000-000000000000/binary", 1)
	if m := f.do("GET", other, "", nil); m.status != http.StatusUnauthorized {
		t.Errorf("media token used for another file = %d, want 401", m.status)
	}
	f.clock.Advance(MediaTokenTTL - time.Second)
	if m := f.do("GET", loc, "", nil, "Range", "bytes=0-0"); m.status != http.StatusPartialContent {
		t.Errorf("media token at 599 s = %d, want 206", m.status)
	}
	f.clock.Advance(time.Second)
	if m := f.do("GET", loc, "", nil); m.status != http.StatusUnauthorized {
		t.Errorf("media token at 600 s = %d, want 401", m.status)
	}
	if c := f.sim.Counters(); c.BytesServed != size+10+1 {
		t.Errorf("BytesServed = %d, want %d", c.BytesServed, size+11)
	}
}

// TestAttachmentRedirectDefaultClient follows the attachment 303 the way most clients do: Go's default
// http.Client with the bearer set on the first request only. The media host is another origin (another port), so
// net/http drops Authorization on the redirect (as it does from api.atlassian.com to api.media.atlassian.com) and
// the download succeeds with the signed URL alone.
func TestAttachmentRedirectDefaultClient(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	id, size := firstAttachment(t, f, tr.AccessToken, 100)
	if f.sim.MediaURL() == "" || f.sim.MediaURL() == f.url {
		t.Fatalf("MediaURL() = %q, want its own origin beside %s", f.sim.MediaURL(), f.url)
	}

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.url+"/ex/jira/"+s.CloudID+"/rest/api/3/attachment/content/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	var hops []string
	hc := &http.Client{CheckRedirect: func(r *http.Request, via []*http.Request) error {
		hops = append(hops, r.URL.Host+" auth="+strconv.FormatBool(r.Header.Get("Authorization") != ""))
		return nil // the default policy, recorded
	}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, expected(t, f, id, 0, size)) {
		t.Fatalf("following the redirect = %d, %d bytes (%v), hops %v; want 200 with the %d bytes", resp.StatusCode, len(body), err, hops, size)
	}
	if want := strings.TrimPrefix(f.sim.MediaURL(), "http://") + " auth=false"; len(hops) != 1 || hops[0] != want {
		t.Errorf("redirect hops = %v, want [%s]", hops, want)
	}

	// The media host is not reachable on the API origin: a same-origin shortcut would keep the bearer.
	r := f.jira("GET", s.CloudID, "/attachment/content/"+id, tr.AccessToken, nil)
	u, _ := url.Parse(r.header.Get("Location"))
	if m := f.do("GET", f.url+"/media"+u.Path+"?"+u.RawQuery, "", nil); m.status != http.StatusNotFound {
		t.Errorf("media path on the API origin = %d, want 404", m.status)
	}
}

func TestAttachmentDirectAndRange(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	id, size := firstAttachment(t, f, tr.AccessToken, 100)
	path := "/attachment/content/" + id + "?redirect=false"
	tests := []struct {
		rng        string
		wantStatus int
		from, n    int64
	}{
		{"", 200, 0, size},
		{"bytes=0-9", 206, 0, 10},
		{"bytes=5-", 206, 5, size - 5},
		{"bytes=-4", 206, size - 4, 4},
		{fmt.Sprintf("bytes=%d-%d", size-3, size+100), 206, size - 3, 3},
		{fmt.Sprintf("bytes=%d-", size), 416, 0, 0},
		{"bytes=9-2", 400, 0, 0},
		{"bytes=0-1,4-5", 400, 0, 0},
		{"items=0-1", 400, 0, 0},
	}
	for _, tt := range tests {
		var hdr []string
		if tt.rng != "" {
			hdr = []string{"Range", tt.rng}
		}
		r := f.jira("GET", s.CloudID, path, tr.AccessToken, nil, hdr...)
		if r.status != tt.wantStatus {
			t.Errorf("Range %q = %d, want %d", tt.rng, r.status, tt.wantStatus)
			continue
		}
		switch r.status {
		case 200, 206:
			if !bytes.Equal(r.body, expected(t, f, id, tt.from, tt.n)) {
				t.Errorf("Range %q body differs from the attachment bytes %d+%d", tt.rng, tt.from, tt.n)
			}
			if r.status == 206 {
				want := fmt.Sprintf("bytes %d-%d/%d", tt.from, tt.from+tt.n-1, size)
				if got := r.header.Get("Content-Range"); got != want {
					t.Errorf("Content-Range = %q, want %q", got, want)
				}
			}
		case 416:
			if got := r.header.Get("Content-Range"); got != fmt.Sprintf("bytes */%d", size) {
				t.Errorf("416 Content-Range = %q", got)
			}
		}
	}
}

// TestLargeAttachmentStreams checks that a 1 GiB attachment is served without being held in memory: its tail is
// readable by Range, and the heap does not grow by anything like its size.
func TestLargeAttachmentStreams(t *testing.T) {
	const size = 1 << 30
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f := newFixture(t, func(c *Config) { c.LargeAttachmentSize = size })
	tr := f.token()
	s := f.site(0)
	bf := f.jira("POST", s.CloudID, "/search/jql", tr.AccessToken, map[string]any{"jql": "project is not empty ORDER BY created ASC", "fields": []string{"attachment"}, "maxResults": 1}).json(t)
	var id string
	for _, a := range bf["issues"].([]any)[0].(map[string]any)["fields"].(map[string]any)["attachment"].([]any) {
		if a.(map[string]any)["size"].(float64) == size {
			id = a.(map[string]any)["id"].(string)
		}
	}
	if id == "" {
		t.Fatal("large attachment not found on the oldest issue")
	}
	r := f.jira("GET", s.CloudID, "/attachment/content/"+id+"?redirect=false", tr.AccessToken, nil, "Range", "bytes=-1048576")
	if r.status != 206 || len(r.body) != 1<<20 || !bytes.Equal(r.body, expected(t, f, id, size-(1<<20), 1<<20)) {
		t.Fatalf("tail of the 1 GiB attachment = %d, %d bytes", r.status, len(r.body))
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 64<<20 {
		t.Errorf("heap grew by %d MiB serving a 1 GiB attachment", grow>>20)
	}
}

func TestAttachmentNotFoundAndPermissions(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token()
	s := f.site(0)
	id, _ := firstAttachment(t, f, tr.AccessToken, 1)
	if r := f.jira("GET", s.CloudID, "/attachment/content/424242", tr.AccessToken, nil); r.status != 404 {
		t.Errorf("unknown attachment = %d, want 404", r.status)
	}
	for _, p := range s.Projects {
		if err := f.sim.SetProjectPermission(s.CloudID, p.Key, f.admin().AccountID, false); err != nil {
			t.Fatal(err)
		}
	}
	if r := f.jira("GET", s.CloudID, "/attachment/content/"+id, tr.AccessToken, nil); r.status != 404 {
		t.Errorf("attachment without browse permission = %d, want 404", r.status)
	}
}

// TestContentReadAtMatchesByteByByte holds the word-at-a-time fast path of content.ReadAt to the byte a byte-wise
// generator gives at every offset: text and binary content, a header, reads that start and end off a word.
func TestContentReadAtMatchesByteByByte(t *testing.T) {
	byteAt := func(c *content, pos int64) byte {
		if pos < int64(len(c.header)) {
			return c.header[pos]
		}
		w := splitmix(c.seed ^ uint64(pos)/8*0x100000001b3)
		b := byte(w >> (8 * (uint64(pos) % 8)))
		if c.text {
			b = printable[int(b)%len(printable)]
		}
		return b
	}
	for _, c := range []*content{
		{seed: 7, size: 1000, text: true},
		{seed: 99, size: 1001},
		{seed: 3, size: 777, header: []byte("\x89PNG\r\n\x1a\n")},
		{seed: 5, size: 333, text: true, header: []byte("%PDF-1.7\n")},
	} {
		for _, off := range []int64{0, 1, 5, 8, 13, 64, 320, 990} {
			for _, n := range []int{0, 1, 7, 8, 9, 31, 200, 2000} {
				got := make([]byte, n)
				k, err := c.ReadAt(got, off)
				want := min(int64(n), max(0, c.size-off))
				if int64(k) != want || (int64(k) < int64(n) && !errors.Is(err, io.EOF)) {
					t.Fatalf("seed %d: ReadAt(%d bytes, %d) = %d, %v; want %d", c.seed, n, off, k, err, want)
				}
				for i := range k {
					if b := byteAt(c, off+int64(i)); got[i] != b {
						t.Fatalf("seed %d text %v: byte %d = %#x, want %#x", c.seed, c.text, off+int64(i), got[i], b)
					}
				}
			}
		}
	}
}
