package attachments

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/oauth2"

	"jiraexport/infra/atlassiansim"
	"jiraexport/shared/ratebudget"
)

const keyContent = "GET /rest/api/3/attachment/content/{id}"

func TestTransferWhole(t *testing.T) {
	f := newFixture(t, simOptions{})
	tr := f.transferor(nil)
	all := f.attachments(t)
	var picked []Attachment
	sawEmpty, sawText := false, false
	for _, a := range all {
		switch {
		case a.Size == 0 && !sawEmpty:
			sawEmpty = true
		case len(a.MimeType) > 5 && a.MimeType[:5] == "text/" && !sawText:
			sawText = true
		case len(picked) < 4:
		default:
			continue
		}
		picked = append(picked, a)
	}
	if !sawEmpty {
		t.Log("no empty attachment in this data set")
	}
	for _, a := range picked {
		res, err := tr.Transfer(t.Context(), f.token, f.target(), a, nil)
		if err != nil {
			t.Fatalf("Transfer(%s, %d bytes) error = %v", a.ID, a.Size, err)
		}
		body, sum := f.want(t, a)
		if res.Resume != nil || res.Stored == nil || *res.Stored != (Stored{ID: a.ID, Size: a.Size, SHA256: sum, MediaID: f.mediaID(t, a)}) {
			t.Fatalf("Transfer(%s) = %+v, want Stored{%s %d %s}", a.ID, res, a.ID, a.Size, sum)
		}
		if res.GatewayRequests != 1 || res.Points != ratebudget.AttachmentContent() {
			t.Errorf("Transfer(%s) made %d gateway requests for %d points, want 1 for %d", a.ID, res.GatewayRequests, res.Points, ratebudget.AttachmentContent())
		}
		f.checkObject(t, a, body)
	}
	f.noBearerAtMedia(t)
	if n := f.uploadsInProgress(t); n != 0 {
		t.Errorf("%d multipart uploads left", n)
	}
}

// A transfer above the transfer package's multipart threshold, still under WholeMax, goes through it in parts.
func TestTransferWholeMultipart(t *testing.T) {
	f := newFixture(t, simOptions{large: 12<<20 + 3})
	tr := f.transferor(func(c *Config) { c.WholeMax = 16 << 20 })
	a := f.find(t, func(a Attachment) bool { return a.Size == 12<<20+3 })
	res, err := tr.Transfer(t.Context(), f.token, f.target(), a, nil)
	if err != nil {
		t.Fatalf("Transfer() error = %v", err)
	}
	body, sum := f.want(t, a)
	if res.Stored == nil || res.Stored.SHA256 != sum {
		t.Fatalf("Transfer() = %+v, want SHA-256 %s", res, sum)
	}
	f.checkObject(t, a, body)
	f.noBearerAtMedia(t)
}

const largeSize = 24<<20 + 12345 // 5 parts of 5 MiB

// The deadline cuts a large transfer mid-stream; the next invocation (here: the next call, with the state
// round-tripped through JSON as the checkpoint does) continues from the uploaded parts with a fresh 303 and a
// Range request, and downloads only the rest.
func TestTransferResumesAfterDeadline(t *testing.T) {
	f := newFixture(t, simOptions{large: largeSize})
	tr := f.transferor(nil)
	a := f.find(t, func(a Attachment) bool { return a.Size == largeSize })
	f.media.stallAt = 12 << 20 // parts 1 and 2 (10 MiB) can finish, part 3 never fills

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	res, err := tr.Transfer(ctx, f.token, f.target(), a, nil)
	cancel()
	if !errors.Is(err, ErrInterrupted) || res.Resume == nil || res.Stored != nil {
		t.Fatalf("interrupted Transfer() = %+v, %v; want ErrInterrupted with a resume state", res, err)
	}
	st := res.Resume
	if st.Done != 10<<20 || len(st.Parts) != 2 || st.UploadID == "" || len(st.SHA256State) == 0 {
		t.Fatalf("resume state = done %d, %d parts, upload %q; want 10 MiB in 2 parts", st.Done, len(st.Parts), st.UploadID)
	}
	if f.exists(t, a.ID) {
		t.Fatal("an object exists before the transfer finished")
	}
	cp, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(cp, &back); err != nil {
		t.Fatal(err)
	}

	f.sim.ResetCounters()
	res, err = f.transferor(nil).Transfer(t.Context(), f.token, f.target(), a, &back)
	if err != nil {
		t.Fatalf("resumed Transfer() error = %v", err)
	}
	body, sum := f.want(t, a)
	if res.Stored == nil || res.Stored.SHA256 != sum || res.Stored.Size != a.Size {
		t.Fatalf("resumed Transfer() = %+v, want SHA-256 %s", res, sum)
	}
	c := f.sim.Counters()
	if c.BytesServed != a.Size-st.Done {
		t.Errorf("resumed transfer downloaded %d bytes, want only the %d not yet uploaded", c.BytesServed, a.Size-st.Done)
	}
	if c.Requests[keyContent] != 1 {
		t.Errorf("resumed transfer asked the gateway %d times, want 1 (a fresh 303)", c.Requests[keyContent])
	}
	_, ranges, _ := f.media.received()
	if last := ranges[len(ranges)-1]; last != "bytes="+strconv.FormatInt(st.Done, 10)+"-" {
		t.Errorf("resumed media request Range = %q", last)
	}
	f.checkObject(t, a, body)
	f.noBearerAtMedia(t)
	if n := f.uploadsInProgress(t); n != 0 {
		t.Errorf("%d multipart uploads left", n)
	}
}

// A connection dropped mid-body is retried inside the same call from the parts already uploaded.
func TestTransferContinuesAfterDroppedConnection(t *testing.T) {
	f := newFixture(t, simOptions{large: largeSize})
	tr := f.transferor(nil)
	a := f.find(t, func(a Attachment) bool { return a.Size == largeSize })
	if err := f.sim.SetFault(atlassiansim.Fault{Endpoint: atlassiansim.KeyMedia, Kind: atlassiansim.FaultTruncate, Count: 1}); err != nil {
		t.Fatal(err)
	}
	checkResumedOnce(t, f, tr, a)
}

// checkResumedOnce transfers a, which fails once on the way, and checks that it ends whole and that the second
// pass asked the media host for the rest only.
func checkResumedOnce(t *testing.T, f *fixture, tr *Transferor, a Attachment) {
	t.Helper()
	res, err := tr.Transfer(t.Context(), f.token, f.target(), a, nil)
	if err != nil {
		t.Fatalf("Transfer() error = %v", err)
	}
	body, sum := f.want(t, a)
	if res.Stored == nil || res.Stored.SHA256 != sum {
		t.Fatalf("Transfer() = %+v, want SHA-256 %s", res, sum)
	}
	_, ranges, n := f.media.received()
	if n != 2 || ranges[0] != "" || ranges[1] == "" {
		t.Errorf("media requests = %d with ranges %q; want a full one, then a ranged one", n, ranges)
	}
	if served := f.sim.Counters().BytesServed; served >= 2*a.Size {
		t.Errorf("served %d bytes for a %d-byte attachment: restarted from zero", served, a.Size)
	}
	f.checkObject(t, a, body)
}

// An upload the export drops is aborted; a state whose upload vanished (aborted, or expired by the bucket's
// lifecycle rule) starts over rather than failing for ever.
func TestAbortAbandonedUpload(t *testing.T) {
	f := newFixture(t, simOptions{large: largeSize})
	tr := f.transferor(nil)
	a := f.find(t, func(a Attachment) bool { return a.Size == largeSize })
	f.media.stallAt = 12 << 20
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	res, err := tr.Transfer(ctx, f.token, f.target(), a, nil)
	cancel()
	if !errors.Is(err, ErrInterrupted) || res.Resume == nil {
		t.Fatalf("Transfer() = %+v, %v; want ErrInterrupted with a state", res, err)
	}
	if n := f.uploadsInProgress(t); n != 1 {
		t.Fatalf("uploads in progress = %d, want 1", n)
	}
	if err := tr.Abort(t.Context(), res.Resume); err != nil {
		t.Fatalf("Abort() error = %v", err)
	}
	if n := f.uploadsInProgress(t); n != 0 {
		t.Fatalf("uploads in progress after Abort = %d, want 0", n)
	}
	if err := tr.Abort(t.Context(), res.Resume); err != nil {
		t.Errorf("second Abort() error = %v, want nil", err)
	}
	res, err = tr.Transfer(t.Context(), f.token, f.target(), a, res.Resume)
	if err != nil || res.Stored == nil {
		t.Fatalf("Transfer(aborted state) = %+v, %v; want a fresh, complete transfer", res, err)
	}
	body, _ := f.want(t, a)
	f.checkObject(t, a, body)
	if n := f.uploadsInProgress(t); n != 0 {
		t.Errorf("%d multipart uploads left", n)
	}
}

// Bytes that differ from Jira's size fail the transfer and leave nothing: no object, no upload.
func TestSizeMismatchLeavesNothing(t *testing.T) {
	f := newFixture(t, simOptions{large: largeSize})
	small := f.find(t, func(a Attachment) bool { return a.Size > 1000 })
	large := f.find(t, func(a Attachment) bool { return a.Size == largeSize })
	sized := func(a Attachment, n int64) Attachment { a.Size = n; return a }
	tests := []struct {
		name  string
		a     Attachment
		cutAt int64
	}{
		{"whole, Jira says one more", sized(small, small.Size+1), 0},
		{"whole, Jira says one less", sized(small, small.Size-1), 0},
		{"whole, body ends early without Content-Length", small, 500},
		{"resumable, Jira says one less", sized(large, large.Size-1), 0},
		{"resumable, body ends early after parts were uploaded", large, 17 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.media.cutAt = tt.cutAt
			res, err := f.transferor(nil).Transfer(t.Context(), f.token, f.target(), tt.a, nil)
			if !errors.Is(err, ErrSizeMismatch) || !errors.Is(err, ErrPermanent) || res.Stored != nil || res.Resume != nil {
				t.Fatalf("Transfer() = %+v, %v; want ErrSizeMismatch and nothing to resume", res, err)
			}
			if f.exists(t, tt.a.ID) {
				t.Error("an object was left in the mirror")
			}
			if n := f.uploadsInProgress(t); n != 0 {
				t.Errorf("%d multipart uploads left", n)
			}
		})
	}
}

func TestTransferErrors(t *testing.T) {
	f := newFixture(t, simOptions{})
	a := f.find(t, func(a Attachment) bool { return a.Size > 0 })
	ok, fail := ratebudget.AttachmentContent(), ratebudget.Failure(503)
	tests := []struct {
		name       string
		fault      *atlassiansim.Fault
		a          Attachment
		token      oauth2.TokenSource
		want       error
		wantRes    bool
		wantPoints int64
	}{
		{"removed attachment", nil, Attachment{ID: "999999", Size: 10}, nil, ErrGone, false, ratebudget.Failure(404)},
		{"revoked token", nil, a, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "nope", TokenType: "Bearer"}), ErrReauth, false, 0},
		{"spent quota", &atlassiansim.Fault{Endpoint: keyContent, Kind: atlassiansim.FaultRateLimit, Reason: "jira-quota-tenant-based", RetryAfter: 600, Count: 1}, a, nil, ErrRateLimited, false, 0},
		{"burst 429 is waited out", &atlassiansim.Fault{Endpoint: keyContent, Kind: atlassiansim.FaultRateLimit, RetryAfter: 0, Count: 1}, a, nil, nil, true, ok},
		{"gateway 503 is retried", &atlassiansim.Fault{Endpoint: keyContent, Kind: atlassiansim.FaultStatus, Status: 503, Count: 2}, a, nil, nil, true, 2*fail + ok},
		{"media 500 is retried with a fresh 303", &atlassiansim.Fault{Endpoint: atlassiansim.KeyMedia, Kind: atlassiansim.FaultStatus, Status: 500, Count: 1}, a, nil, nil, true, 2 * ok},
		{"gateway 503 for ever", &atlassiansim.Fault{Endpoint: keyContent, Kind: atlassiansim.FaultStatus, Status: 503}, a, nil, ErrRetryable, false, 4 * fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.sim.ClearFaults("")
			if tt.fault != nil {
				if err := f.sim.SetFault(*tt.fault); err != nil {
					t.Fatal(err)
				}
			}
			ts := tt.token
			if ts == nil {
				ts = f.token
			}
			res, err := f.transferor(nil).Transfer(t.Context(), ts, f.target(), tt.a, nil)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Transfer() error = %v, want %v", err, tt.want)
			}
			if (res.Stored != nil) != tt.wantRes {
				t.Errorf("Transfer() stored = %+v, want stored %v", res.Stored, tt.wantRes)
			}
			if res.Points != tt.wantPoints {
				t.Errorf("Transfer() points = %d, want %d", res.Points, tt.wantPoints)
			}
			var rl *RateLimitError
			if errors.Is(tt.want, ErrRateLimited) && (!errors.As(err, &rl) || !rl.Limit.Quota()) {
				t.Errorf("rate limit error = %#v, want a quota RateLimitError", err)
			}
		})
	}
	f.sim.ClearFaults("")
}

func TestDelete(t *testing.T) {
	f := newFixture(t, simOptions{})
	tr := f.transferor(nil)
	var ids []string
	for _, a := range f.attachments(t)[:3] {
		if _, err := tr.Transfer(t.Context(), f.token, f.target(), a, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	if err := tr.Delete(t.Context(), f.target(), ids[:2]); err != nil {
		t.Fatalf("Delete() error = %v", err)
	}
	for i, id := range ids {
		if got, want := f.exists(t, id), i == 2; got != want {
			t.Errorf("object %s exists = %v, want %v", id, got, want)
		}
	}
	if err := tr.Delete(t.Context(), f.target(), ids[:2]); err != nil {
		t.Errorf("second Delete() error = %v, want nil", err)
	}
}

// A whole (transfer-package) upload cut by the deadline is aborted: nothing to resume, nothing left in S3.
func TestWholeTransferInterrupted(t *testing.T) {
	f := newFixture(t, simOptions{large: 12 << 20})
	tr := f.transferor(func(c *Config) { c.WholeMax = 16 << 20 })
	a := f.find(t, func(a Attachment) bool { return a.Size == 12<<20 })
	f.media.stallAt = 7 << 20
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	res, err := tr.Transfer(ctx, f.token, f.target(), a, nil)
	cancel()
	if !errors.Is(err, ErrInterrupted) || res.Resume != nil || res.Stored != nil {
		t.Fatalf("Transfer() = %+v, %v; want ErrInterrupted and nothing to resume", res, err)
	}
	if f.exists(t, a.ID) {
		t.Error("an object was left in the mirror")
	}
	if n := f.uploadsInProgress(t); n != 0 {
		t.Errorf("%d multipart uploads left", n)
	}
}

// failPart is the S3 client's HTTP transport with the nth UploadPart answered 500 after its body was sent (S3
// failing a part while the next one already streams), every other request going through to the local S3.
type failPart struct {
	inner aws.HTTPClient
	n     int32
	seen  atomic.Int32
}

func (d *failPart) Do(req *http.Request) (*http.Response, error) {
	resp, err := d.inner.Do(req)
	if err != nil || req.Method != http.MethodPut || !req.URL.Query().Has("partNumber") || d.seen.Add(1) != d.n {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>`
	return &http.Response{StatusCode: 500, Status: "500 Internal Server Error", Proto: resp.Proto, ProtoMajor: resp.ProtoMajor,
		ProtoMinor: resp.ProtoMinor, Header: http.Header{"Content-Type": {"application/xml"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

// A streamed part that S3 fails ends the pass (its bytes cannot be sent again, and the SDK does not retry it);
// the parts that finished stay, the next pass asks the media host for the rest only, and the object ends whole.
func TestStreamedPartFailureResumesFromFinishedParts(t *testing.T) {
	f := newFixture(t, simOptions{large: largeSize})
	a := f.find(t, func(a Attachment) bool { return a.Size == largeSize })
	fp := &failPart{n: 3}
	s3c := s3.New(f.s3.Options(), func(o *s3.Options) { fp.inner = o.HTTPClient; o.HTTPClient = fp })
	checkResumedOnce(t, f, f.transferorOn(s3c, nil), a)
	if got := fp.seen.Load(); got < fp.n+1 {
		t.Fatalf("%d parts sent, want the failed third and the rest after it", got)
	}
	if n := f.uploadsInProgress(t); n != 0 {
		t.Errorf("%d multipart uploads left, want 0", n)
	}
}
