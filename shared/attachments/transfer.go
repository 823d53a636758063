package attachments

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/oauth2"
	"golang.org/x/sync/errgroup"

	"jiraexport/shared/backoff"
	"jiraexport/shared/ratebudget"
)

// A small attachment goes through the SDK's transfer package (feature/s3/transfermanager, which supersedes the
// deprecated feature/s3/manager); a large one streams its parts itself:
//   - a new transfer of at most Config.WholeMax bytes (every attachment under the default 10 MiB cap) is one plain
//     UploadObject of the transfer package (or one PutObject from a buffer of its size, under one part); if the
//     deadline cuts it short, the package aborts its upload and the next invocation starts again, losing at most
//     WholeMax bytes of work;
//   - a larger one, and every resumed one, continues the State's multipart upload (resumer.go): each UploadPart
//     streams its part straight from the media body (streamParts), the State records each finished part with the
//     SHA-256 state at its end, and the upload completes with every part. At a stop the contiguous run of finished
//     parts, the bytes they hold and the hash state after them are the State the export checkpoints. The transfer
//     package cannot do this: each UploadObject creates its own upload and aborts it on any failure, so it cannot
//     continue an upload a previous invocation started nor say which parts finished (an earlier version wrapped
//     its S3 client to make it), and it reads every part into a buffer first: Concurrency+1 buffers of 5 MiB and
//     the first part read apart, 15 to 20 MiB of the export's 64 MB, and of the collector's room under its
//     GOMEMLIMIT (BENCHMARKS.md: BenchmarkAttachmentToS3/resumable).

// Defaults; see Config.
const (
	DefaultPartSize    = 5 << 20
	MinPartSize        = 5 << 20 // S3's minimum for every part but the last
	DefaultConcurrency = 1
	DefaultWholeMax    = 16 << 20
	DefaultMargin      = 10 * time.Second
	// abortTimeout bounds the abort of a failed upload, which runs on a fresh context: the failure may be the
	// deadline itself.
	abortTimeout = 10 * time.Second
	// CompleteTimeout bounds a CompleteMultipartUpload instead of the S3 client's own timeout when that is
	// shorter (awsconfig gives every AWS call 15 s). S3 may take minutes to complete a large object: it answers
	// 200 at once and sends whitespace until the result (the API reference of CompleteMultipartUpload). Cut short,
	// the SDK would ask again for an upload S3 completed meanwhile and meet NoSuchUpload, which makes the copy
	// start over from the first byte. The invocation's work context still bounds it.
	CompleteTimeout = 5 * time.Minute
)

// Config sets up a Transferor. Zero fields take the defaults named in their comments.
type Config struct {
	// APIURL is ATLASSIAN_API_URL (https://api.atlassian.com, or the simulator's URL).
	APIURL string
	// Bucket and KMSKeyID are BUCKET_NAME and KMS_KEY_ID: every upload names SSE-KMS under this key.
	Bucket, KMSKeyID string
	// Gateway sends the bearer-authenticated request to the gateway (give it the rate pacer's transport). A copy
	// is used with redirects disabled, so the token never follows the 303. Default: a plain client.
	Gateway *http.Client
	// Media fetches the signed media URL. Its requests never carry Authorization, whatever the host. Default: a
	// plain client. It must not be the gateway's pacer: the media host is not a Jira endpoint.
	Media *http.Client
	// PartSize of the resumable path, at least (and by default) 5 MiB. Its parts are streamed, so the size costs
	// no memory: it is what a failed part loses (read again from the media) and how many parts a State lists.
	PartSize int64
	// Concurrency is the parts uploaded at once: on the whole path the transfer package's (each holds a part
	// buffer: about (Concurrency+3) × 5 MiB for a body of at least 5 MiB), on the resumable path the parts
	// waiting for S3's answer while the next one streams; default 1.
	Concurrency int
	// WholeMax is the largest new transfer done by the transfer package in one call; default 16 MiB. A negative
	// value sends every non-empty attachment down the resumable path.
	WholeMax int64
	// Margin is kept before the context's deadline for the caller to checkpoint; default 10 s.
	Margin time.Duration
	// Retry is the policy for transient failures within one Transfer; default backoff.Atlassian().
	Retry backoff.Policy
	// MaxWait is the longest Retry-After waited here; a longer one returns ErrRateLimited. Default 30 s.
	MaxWait time.Duration
	// RequestTimeout bounds the gateway request and each media response's headers; default 15 s.
	RequestTimeout time.Duration
	// IdleTimeout aborts a media body that sends nothing for this long; default 60 s.
	IdleTimeout time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
}

// Target names where an attachment comes from and goes to.
type Target struct {
	ConnectionID, ConnectorID, CloudID string
}

// Transferor copies attachments from Jira into the S3 mirror. It is safe for concurrent use; each Transfer holds
// its own part buffers (see Config.PartSize), and the export runs one at a time.
type Transferor struct {
	cfg      Config
	s3       *s3.Client
	tm       *transfermanager.Client
	gateway  *http.Client
	media    *http.Client
	checksum s3types.ChecksumAlgorithm
	// completer is the S3 client of every CompleteMultipartUpload, the transfer package's and the resumer's.
	completer completeSlowly
}

// New returns a Transferor writing through s3c.
func New(s3c *s3.Client, cfg Config) *Transferor {
	if cfg.PartSize <= 0 {
		cfg.PartSize = DefaultPartSize
	}
	cfg.PartSize = max(cfg.PartSize, MinPartSize)
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.WholeMax == 0 {
		cfg.WholeMax = DefaultWholeMax
	}
	if cfg.Margin <= 0 {
		cfg.Margin = DefaultMargin
	}
	if cfg.Retry == (backoff.Policy{}) {
		cfg.Retry = backoff.Atlassian()
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 30 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 15 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.APIURL = strings.TrimRight(cfg.APIURL, "/")
	gw := &http.Client{}
	if cfg.Gateway != nil {
		c := *cfg.Gateway
		gw = &c
	}
	gw.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	media := &http.Client{}
	if cfg.Media != nil {
		c := *cfg.Media
		media = &c
	}
	// A media host may redirect again (a CDN); the request carries no credentials, so following is safe, but
	// nothing is ever added to it.
	media.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("too many media redirects")
		}
		req.Header.Del("Authorization")
		return nil
	}
	// Checksums follow the S3 client's setting, as the transfer package does: CRC32 per part when the client
	// calculates checksums "when supported" (the SDK default), none when only "when required".
	calc := s3c.Options().RequestChecksumCalculation
	var algo s3types.ChecksumAlgorithm
	if calc != aws.RequestChecksumCalculationWhenRequired {
		algo = s3types.ChecksumAlgorithmCrc32
	}
	completer := newCompleteSlowly(s3c)
	tm := transfermanager.New(completer, func(o *transfermanager.Options) {
		o.PartSizeBytes = MinPartSize
		o.MultipartUploadThreshold = MinPartSize
		o.Concurrency = cfg.Concurrency
		// Abort with a fresh context: a deadline must not leave the upload behind.
		o.FailTimeout = abortTimeout
		o.RequestChecksumCalculation = calc
		if calc == aws.RequestChecksumCalculationUnset {
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
		}
	})
	return &Transferor{cfg: cfg, s3: s3c, tm: tm, gateway: gw, media: media, checksum: algo, completer: completer}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Key is the S3 key of an attachment in the mirror: <connectionId>/<connectorId>/attachments/<attachmentId>.
func Key(connectionID, connectorID, attachmentID string) string {
	return connectionID + "/" + connectorID + "/attachments/" + attachmentID
}

func (tgt Target) valid(attachmentID string) error {
	for _, s := range []string{tgt.ConnectionID, tgt.ConnectorID, tgt.CloudID, attachmentID} {
		if !idPattern.MatchString(s) {
			return fmt.Errorf("attachments: invalid id %q: %w", s, ErrPermanent)
		}
	}
	return nil
}

// State is a resumable transfer, for the export's checkpoint (it marshals to JSON of about 60 bytes per part:
// 128 parts for 1 GiB at the default part size). It holds no secret: the media URL is not kept (it expires), and
// the SHA-256 state is of attachment bytes only.
type State struct {
	AttachmentID string `json:"attachmentId"`
	Key          string `json:"key"`
	UploadID     string `json:"uploadId"`
	Size         int64  `json:"size"`
	PartSize     int64  `json:"partSize"`
	// Checksum is the S3 checksum algorithm of the upload ("" or "CRC32").
	Checksum string `json:"checksum,omitempty"`
	// Done is the bytes uploaded: the parts below, all full-size.
	Done  int64  `json:"done"`
	Parts []Part `json:"parts"`
	// SHA256State is crypto/sha256's MarshalBinary after Done bytes.
	SHA256State []byte `json:"sha256State"`
	// MediaID is Stored.MediaID, kept for a last invocation that only completes the upload (no 303).
	MediaID string `json:"mediaId,omitempty"`
}

// Part is one uploaded part.
type Part struct {
	Number int32  `json:"n"`
	ETag   string `json:"etag"`
	CRC32  string `json:"crc32,omitempty"`
}

// Result is a Transfer's outcome.
type Result struct {
	// Stored is set when the attachment is in the mirror: keep it in the index item.
	Stored *Stored
	// Resume is set when the transfer stopped with bytes uploaded that the next invocation continues from (also
	// beside a retryable, rate-limit or re-auth error). Put it in the checkpoint and pass it to the next Transfer
	// of this attachment; if the export drops it instead, it must call Abort.
	Resume *State
	// Points is what the gateway requests of this call cost in Atlassian's points quota (ratebudget's rules:
	// AttachmentContent per 303, Failure(status) per refused answer); add it to the run's Tally. Media downloads
	// are not Jira REST calls and cost nothing.
	Points int64
	// GatewayRequests is how many requests reached the gateway (one per attempt: each takes a fresh 303).
	GatewayRequests int
}

// Transfer copies one allowed attachment into the mirror. resume is the State a previous invocation returned
// for this attachment, or nil.
//
// The work stops Margin before ctx's deadline: then it returns ErrInterrupted, with Result.Resume for a resumable
// transfer (nil for a whole one, whose upload is aborted and restarts from zero). ErrPermanent errors (ErrGone,
// ErrSizeMismatch, ...) abort the upload: nothing is left in S3.
func (t *Transferor) Transfer(ctx context.Context, ts oauth2.TokenSource, tgt Target, a Attachment, resume *State) (res Result, err error) {
	j := &job{ts: ts, tgt: tgt, a: a, key: Key(tgt.ConnectionID, tgt.ConnectorID, a.ID)}
	defer func() { res.Points, res.GatewayRequests = j.points, j.requests }()
	if err := tgt.valid(a.ID); err != nil {
		return Result{}, err
	}
	if a.Size < 0 {
		return Result{}, fmt.Errorf("attachments: %s has negative size: %w", a.ID, ErrPermanent)
	}
	work, cancel := t.workContext(ctx)
	defer cancel()
	if resume == nil && (a.Size <= t.cfg.WholeMax || a.Size == 0) { // S3 completes no upload of zero parts
		return t.whole(ctx, work, j)
	}
	if resume != nil && (resume.AttachmentID != a.ID || resume.Key != j.key || resume.Size != a.Size) {
		return Result{}, fmt.Errorf("attachments: resume state is for %s (%d bytes), not %s (%d bytes): %w",
			resume.AttachmentID, resume.Size, a.ID, a.Size, ErrPermanent)
	}
	if resume != nil {
		if err := resume.check(); err != nil {
			return Result{}, err
		}
	}
	return t.resumable(ctx, work, j, resume)
}

// Footprint is about the most memory a Transfer of an attachment of size bytes holds in buffers, for callers
// that run several at once: a body under one part is read whole into a buffer of its size (putOnce); one up to
// WholeMax holds the transfer package's Concurrency+1 part buffers plus the first part of each pass; a larger one
// streams its parts (a resumed one always does, whatever its size: this is an upper bound).
func (t *Transferor) Footprint(size int64) int64 {
	switch {
	case size < MinPartSize:
		return max(size, 0) + 64<<10
	case t.cfg.WholeMax < 0 || size > t.cfg.WholeMax:
		return streamFootprint // the resumable path streams its parts
	}
	return int64(t.cfg.Concurrency+3) * t.cfg.PartSize
}

// streamFootprint is what a streamed copy holds: the HTTP/2 framer's and TLS record buffers of its requests.
const streamFootprint = 512 << 10

// workContext ends Margin before ctx's deadline.
func (t *Transferor) workContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, d.Add(-t.cfg.Margin))
	}
	return context.WithCancel(ctx)
}

// interrupted reports whether the work context ended by the deadline (the margin was reached, and perhaps the
// caller's deadline too, while an abort ran) rather than by the caller cancelling.
func interrupted(ctx, work context.Context) bool {
	return errors.Is(work.Err(), context.DeadlineExceeded) && !errors.Is(ctx.Err(), context.Canceled)
}

// retryDecision turns an attempt's error into Transfer's answer, or says to retry after wait.
func (t *Transferor) retryDecision(ctx, work context.Context, err error, attempt int) (wait time.Duration, final error) {
	if interrupted(ctx, work) {
		return 0, fmt.Errorf("%w: %w", ErrInterrupted, err)
	}
	if ctx.Err() != nil {
		return 0, err
	}
	var rl *RateLimitError
	switch {
	case errors.As(err, &rl):
		if rl.Limit.Quota() || rl.Limit.RetryAfter > t.cfg.MaxWait || !t.cfg.Retry.Allows(attempt) {
			return 0, err
		}
		return t.cfg.Retry.Delay(attempt, rl.Limit.RetryAfter), nil
	case errors.Is(err, ErrRetryable) && t.cfg.Retry.Allows(attempt):
		return t.cfg.Retry.Delay(attempt, 0), nil
	}
	return 0, err
}

// job is one Transfer call: what it copies, and the gateway requests it made with their points (sequential, one
// 303 per attempt, so unlocked).
type job struct {
	ts       oauth2.TokenSource
	tgt      Target
	a        Attachment
	key      string
	requests int
	points   int64
	mediaID  string // of the last 303
}

// locate asks the gateway for the attachment and returns the media URL of its 303 (any 3xx is accepted).
func (t *Transferor) locate(ctx context.Context, j *job) (*url.URL, error) {
	tok, err := j.ts.Token()
	if err != nil {
		return nil, fmt.Errorf("attachments: token: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.RequestTimeout)
	defer cancel()
	u := t.cfg.APIURL + "/ex/jira/" + url.PathEscape(j.tgt.CloudID) + "/rest/api/3/attachment/content/" + url.PathEscape(j.a.ID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil) //nolint:gosec // G704: configured host, escaped ids
	if err != nil {
		return nil, fmt.Errorf("attachments: %w: %w", ErrPermanent, err)
	}
	tok.SetAuthHeader(req)
	req.Header.Set("Accept", "*/*")
	resp, err := t.gateway.Do(req) //nolint:gosec // G704: configured host, escaped ids (see above)
	j.requests++
	if err != nil {
		return nil, fmt.Errorf("attachments: gateway: %w: %w", ErrRetryable, err)
	}
	// A closure, not `defer drain(resp.Body)`: bodyclose does not see the Close inside a deferred helper call.
	defer func() { drain(resp.Body) }()
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		j.points += ratebudget.AttachmentContent()
	} else {
		j.points += ratebudget.Failure(resp.StatusCode)
	}
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		if resp.StatusCode < 300 {
			// redirect=true is Jira's default: a 2xx here means the gateway did not redirect as documented.
			return nil, &StatusError{Host: hostGateway, Status: resp.StatusCode, kind: ErrPermanent}
		}
		return nil, classify(hostGateway, resp, t.cfg.Now())
	}
	loc, err := req.URL.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Host == "" || (loc.Scheme != "https" && (loc.Scheme != "http" || req.URL.Scheme != "http")) {
		// A plain-http media URL is accepted only from a plain-http gateway (the local simulator).
		return nil, fmt.Errorf("attachments: gateway %d without a usable Location: %w", resp.StatusCode, ErrPermanent)
	}
	j.mediaID = mediaFileID(loc)
	return loc, nil
}

// mediaFileID is the <uuid> of a media URL's .../file/<uuid>/binary (jira-cloud.md §3.7), "" when it has none
// or it is not id-shaped: the media host's URL layout is observed, not documented, so it is only ever a hint.
func mediaFileID(loc *url.URL) string {
	parts := strings.Split(strings.Trim(loc.Path, "/"), "/")
	for i := 0; i+2 < len(parts); i++ {
		if parts[i] == "file" && parts[i+2] == "binary" && idPattern.MatchString(parts[i+1]) {
			return parts[i+1]
		}
	}
	return ""
}

func drain(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 4<<10)
	_ = body.Close()
}

// fetch opens the media URL from offset from, with no Authorization header. It checks that the answer holds
// exactly the remaining bytes of an attachment of size bytes.
//
// G704 (SSRF) on loc is accepted, not fixed with a host allowlist: loc is the Location of the 303 that Atlassian's
// gateway sent, over TLS, to a request authenticated with the customer's token (locate), so choosing it takes
// Atlassian's gateway, not the customer or a third party. The request carries no credentials (Media never gets
// the token source, and CheckRedirect keeps it so on further hops), and the answer only goes, size-checked, to
// the customer's own prefix in the bucket, never back to a caller. The media host (api.media.atlassian.com) is
// observed, not documented (../shared/reference/jira-cloud.md), and it may redirect on to a CDN: an allowlist
// would break every attachment the day Atlassian moves it, for no protection against the one party that chooses
// the URL.
func (t *Transferor) fetch(ctx context.Context, loc *url.URL, from, size int64) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil) //nolint:gosec // G704: Atlassian's 303 target, no credentials (see above)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("attachments: %w: %w", ErrPermanent, err)
	}
	if from > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(from, 10)+"-")
	}
	headers := time.AfterFunc(t.cfg.RequestTimeout, cancel)
	resp, err := t.media.Do(req) //nolint:gosec // G704: Atlassian's 303 target, no credentials (see fetch)
	headers.Stop()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("attachments: media: %w: %w", ErrRetryable, err)
	}
	fail := func(err error) (io.ReadCloser, error) {
		drain(resp.Body)
		cancel()
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != size {
			return fail(fmt.Errorf("attachments: media sent %d bytes for %d: %w", resp.ContentLength, size, ErrSizeMismatch))
		}
		if from > 0 {
			// The host ignored the Range: skip what is already uploaded (correct, if not cheap).
			if _, err := io.CopyN(io.Discard, resp.Body, from); err != nil {
				return fail(fmt.Errorf("attachments: media: %w: %w", ErrRetryable, err))
			}
		}
	case resp.StatusCode == http.StatusPartialContent && from > 0:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != from {
			return fail(&StatusError{Host: hostMedia, Status: resp.StatusCode, kind: ErrPermanent})
		}
		if total != size || (resp.ContentLength >= 0 && resp.ContentLength != size-from) {
			return fail(fmt.Errorf("attachments: media range of %d/%d bytes for %d: %w", resp.ContentLength, total, size, ErrSizeMismatch))
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return fail(fmt.Errorf("attachments: media refused range %d- of %d bytes: %w", from, size, ErrSizeMismatch))
	default:
		return fail(classify(hostMedia, resp, t.cfg.Now()))
	}
	return &idleBody{r: resp.Body, cancel: cancel, timer: time.AfterFunc(t.cfg.IdleTimeout, cancel), idle: t.cfg.IdleTimeout}, nil
}

// parseContentRange reads "bytes first-last/total".
func parseContentRange(s string) (start, total int64, ok bool) {
	spec, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(spec, "/")
	first, _, found2 := strings.Cut(rng, "-")
	if !found || !found2 {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(first, 10, 64)
	total, err2 := strconv.ParseInt(tot, 10, 64)
	return start, total, err1 == nil && err2 == nil && start >= 0 && total > start
}

// idleBody cancels its request when no byte arrives for idle: a stalled media host cannot hold a transfer until
// the function's deadline.
type idleBody struct {
	r      io.ReadCloser
	cancel context.CancelFunc
	timer  *time.Timer
	idle   time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.r.Close()
	b.cancel()
	return err
}

// meter hashes and counts what it passes on, and fails when the stream is longer or (at a clean EOF) shorter
// than want. A broken connection is retryable, not a size mismatch.
//
// With partSize set (the resumable path) it also stops each Read at the next part boundary and keeps the hash
// state there, so the resumer can checkpoint the SHA-256 of exactly the bytes its uploaded parts hold.
type meter struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	want int64
	eof  bool

	partSize int64
	mu       sync.Mutex
	cuts     map[int64]cut // by part of this pass, numbered from 1 as the transfer package does
}

// cut is the meter's position at the end of one part: bytes read and the SHA-256 state after them.
type cut struct {
	end  int64
	hash []byte
}

func (m *meter) Read(p []byte) (int, error) {
	if m.partSize > 0 && m.n < m.want {
		next := min((m.n/m.partSize+1)*m.partSize, m.want)
		p = p[:min(int64(len(p)), next-m.n)]
	}
	n, err := m.r.Read(p)
	if m.n+int64(n) > m.want {
		return 0, fmt.Errorf("attachments: media sent more than %d bytes: %w", m.want, ErrSizeMismatch)
	}
	m.h.Write(p[:n])
	m.n += int64(n)
	if m.partSize > 0 && n > 0 && (m.n%m.partSize == 0 || m.n == m.want) {
		state, merr := m.h.(encoding.BinaryMarshaler).MarshalBinary()
		if merr != nil {
			return 0, fmt.Errorf("attachments: hash state: %w: %w", ErrPermanent, merr)
		}
		m.mu.Lock()
		if m.cuts == nil {
			m.cuts = map[int64]cut{}
		}
		m.cuts[(m.n+m.partSize-1)/m.partSize] = cut{end: m.n, hash: state}
		m.mu.Unlock()
	}
	switch {
	case err == io.EOF && m.n != m.want:
		return n, fmt.Errorf("attachments: media ended after %d of %d bytes: %w", m.n, m.want, ErrSizeMismatch)
	case err == io.EOF:
		m.eof = true
	case err != nil:
		return n, fmt.Errorf("attachments: media: %w: %w", ErrRetryable, err)
	}
	return n, err
}

// cutAfter returns where part k of this pass ends (and drops it: each part is uploaded once per pass).
func (m *meter) cutAfter(k int64) (cut, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.cuts[k]
	delete(m.cuts, k)
	return c, ok
}

// whole copies a small attachment in one transfer-package upload.
func (t *Transferor) whole(ctx, work context.Context, j *job) (Result, error) {
	a := j.a
	for attempt := 0; ; attempt++ {
		sum, err := t.wholeOnce(work, j)
		if err == nil {
			return Result{Stored: &Stored{ID: a.ID, Size: a.Size, SHA256: sum, MediaID: j.mediaID}}, nil
		}
		wait, final := t.retryDecision(ctx, work, err, attempt)
		if final != nil {
			return Result{}, final
		}
		if werr := backoff.Sleep(work, wait); werr != nil {
			return Result{}, fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
	}
}

func (t *Transferor) wholeOnce(ctx context.Context, j *job) (string, error) {
	a, key := j.a, j.key
	loc, err := t.locate(ctx, j)
	if err != nil {
		return "", err
	}
	body, err := t.fetch(ctx, loc, 0, a.Size)
	if err != nil {
		return "", err
	}
	// The media body is read-only: its Close error cannot lose data (what was read is checked by meter).
	defer func() { _ = body.Close() }()
	m := &meter{r: body, h: sha256.New(), want: a.Size}
	if a.Size < MinPartSize {
		return t.putOnce(ctx, j, m)
	}
	in := &transfermanager.UploadObjectInput{
		Bucket:               aws.String(t.cfg.Bucket),
		Key:                  aws.String(key),
		Body:                 m,
		ContentType:          aws.String(contentType(a.MimeType)),
		ServerSideEncryption: tmtypes.ServerSideEncryption(tmtypes.ServerSideEncryptionAwsKms),
		SSEKMSKeyID:          aws.String(t.cfg.KMSKeyID),
	}
	if _, err := t.tm.UploadObject(ctx, in); err != nil {
		// The transfer package aborted its multipart upload (with a fresh context); a single PutObject that
		// failed stored nothing.
		if errors.Is(err, ErrSizeMismatch) || errors.Is(err, ErrRetryable) || errors.Is(err, ErrPermanent) {
			return "", err
		}
		return "", fmt.Errorf("attachments: upload %s: %w: %w", a.ID, ErrRetryable, err)
	}
	if !m.eof || m.n != a.Size {
		// The transfer package stops at EOF, so this means it stopped early: never keep a short object.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, _ = t.s3.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: aws.String(t.cfg.Bucket), Key: aws.String(key)})
		return "", fmt.Errorf("attachments: upload of %s stopped at %d of %d bytes: %w", a.ID, m.n, a.Size, ErrSizeMismatch)
	}
	return hex.EncodeToString(m.h.Sum(nil)), nil
}

// putOnce stores a body under one part with one PutObject, as the transfer package would, but reads it into a
// buffer of its exact size: the package reads such a body with io.ReadAll, whose buffer grows by doubling, about
// twice the attachment in garbage and copies each time (in the export benchmark, the largest share of the export
// process's allocations). Nothing is stored unless the media sent exactly the attachment's size.
func (t *Transferor) putOnce(ctx context.Context, j *job, m *meter) (string, error) {
	a := j.a
	buf := make([]byte, a.Size)
	if _, err := io.ReadFull(m, buf); err != nil {
		return "", err // the meter's: a size mismatch, or retryable
	}
	var one [1]byte
	if _, err := io.ReadFull(m, one[:]); !errors.Is(err, io.EOF) {
		if err == nil {
			err = fmt.Errorf("attachments: media sent more than %d bytes: %w", a.Size, ErrSizeMismatch)
		}
		return "", err
	}
	in := &s3.PutObjectInput{
		Bucket:               aws.String(t.cfg.Bucket),
		Key:                  aws.String(j.key),
		Body:                 bytes.NewReader(buf),
		ContentLength:        aws.Int64(a.Size),
		ContentType:          aws.String(contentType(a.MimeType)),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms,
		SSEKMSKeyId:          aws.String(t.cfg.KMSKeyID),
		ChecksumAlgorithm:    t.checksum,
	}
	if _, err := t.s3.PutObject(ctx, in); err != nil {
		return "", fmt.Errorf("attachments: upload %s: %w: %w", a.ID, ErrRetryable, err)
	}
	return hex.EncodeToString(m.h.Sum(nil)), nil
}

// completeSlowly is the real S3 client, but every CompleteMultipartUpload gets opts (see CompleteTimeout): the
// transfer package's S3 client, and the resumer's for its Complete.
type completeSlowly struct {
	*s3.Client
	opts []func(*s3.Options)
}

// newCompleteSlowly builds s3c's slow client once: its own pool, the same transport settings (CA bundle).
func newCompleteSlowly(s3c *s3.Client) completeSlowly {
	c := completeSlowly{Client: s3c}
	if bc, ok := s3c.Options().HTTPClient.(*awshttp.BuildableClient); ok && bc.GetTimeout() > 0 && bc.GetTimeout() < CompleteTimeout {
		slow := bc.WithTimeout(CompleteTimeout)
		c.opts = append(c.opts, func(o *s3.Options) { o.HTTPClient = slow })
	}
	return c
}

// CompleteSlowly is s3c for the transfer package with the export's CompleteMultipartUpload timeout
// (CompleteTimeout), for another copy that must finish large uploads the way the export does.
func CompleteSlowly(s3c *s3.Client) transfermanager.S3APIClient { return newCompleteSlowly(s3c) }

func (c completeSlowly) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	return c.Client.CompleteMultipartUpload(ctx, in, append(opts[:len(opts):len(opts)], c.opts...)...)
}

// resumable copies a large attachment (or continues one) through the transfer package, one pass per attempt.
// Every return either completes the object, returns a Result.Resume whose upload the caller keeps or aborts, or
// aborts the upload itself (a permanent failure): no path leaves an upload nobody knows about.
func (t *Transferor) resumable(ctx, work context.Context, j *job, st *State) (Result, error) {
	a := j.a
	restarted := false
	if st == nil {
		st = t.newState(j)
	} else {
		cp := *st // the caller's state stays as it was
		cp.Parts = slices.Clone(st.Parts)
		st = &cp
		switch err := t.verify(work, st); {
		case errors.Is(err, errNoSuchUpload):
			// The upload was aborted behind our back (by Abort, or by the bucket's one-day lifecycle rule): start
			// over rather than fail for ever.
			restarted = true
			st = t.newState(j)
		case err != nil:
			_, final := t.retryDecision(ctx, work, err, t.cfg.Retry.Retries)
			return Result{Resume: st}, final
		}
	}
	for attempt := 0; ; {
		before := st.Done
		sum, err := t.pass(work, j, st)
		if err == nil {
			return Result{Stored: &Stored{ID: a.ID, Size: a.Size, SHA256: sum, MediaID: st.MediaID}}, nil
		}
		if errors.Is(err, errNoSuchUpload) {
			// Gone between two calls of ours (the lifecycle rule, or an Abort elsewhere): start over once.
			if restarted {
				return Result{}, fmt.Errorf("attachments: upload of %s vanished twice: %w", a.ID, ErrRetryable)
			}
			restarted = true
			st = t.newState(j)
			continue
		}
		if errors.Is(err, ErrPermanent) {
			t.abort(ctx, st)
			return Result{}, err
		}
		if st.Done > before {
			attempt = 0 // progress: the retry budget is for failures in a row
		}
		wait, final := t.retryDecision(ctx, work, err, attempt)
		if final != nil {
			return Result{Resume: st.kept()}, final
		}
		if werr := backoff.Sleep(work, wait); werr != nil {
			return Result{Resume: st.kept()}, fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		attempt++
	}
}

// kept is the state worth resuming: nil until the upload exists.
func (st *State) kept() *State {
	if st == nil || st.UploadID == "" {
		return nil
	}
	return st
}

// check rejects a resume state that this package cannot have written.
func (st *State) check() error {
	whole := st.Done == int64(len(st.Parts))*st.PartSize || st.Done == st.Size
	if st.PartSize < MinPartSize || st.Done < 0 || st.Done > st.Size || !whole || len(st.Parts) > maxParts ||
		(st.Done > 0 && len(st.SHA256State) == 0) || (st.UploadID == "" && st.Done > 0) {
		return fmt.Errorf("attachments: inconsistent resume state for %s: %w", st.AttachmentID, ErrPermanent)
	}
	return nil
}

var errNoSuchUpload = errors.New("attachments: multipart upload no longer exists")

// verify checks that a resumed state's upload still exists (one ListParts call).
func (t *Transferor) verify(ctx context.Context, st *State) error {
	if st.UploadID == "" {
		return errNoSuchUpload
	}
	_, err := t.s3.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(t.cfg.Bucket), Key: aws.String(st.Key),
		UploadId: aws.String(st.UploadID), MaxParts: aws.Int32(1)})
	switch {
	case isNoSuchUpload(err):
		return errNoSuchUpload
	case err != nil:
		return fmt.Errorf("attachments: list parts of %s: %w: %w", st.AttachmentID, ErrRetryable, err)
	}
	return nil
}

// newState is a transfer from byte zero; its upload is created by the pass's first CreateMultipartUpload.
func (t *Transferor) newState(j *job) *State {
	partSize := t.cfg.PartSize
	// S3 allows 10,000 parts: grow the part size for anything that would need more.
	if j.a.Size/partSize >= maxParts {
		partSize = j.a.Size/maxParts + 1
	}
	return &State{AttachmentID: j.a.ID, Key: j.key, Size: j.a.Size, PartSize: partSize, Checksum: string(t.checksum),
		Parts: []Part{}}
}

// maxParts is S3's limit on the parts of one multipart upload, numbered 1 to maxParts
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html).
const maxParts = 10_000

// partNumber is the number of the part that follows done parts, false when S3 allows no further part.
func partNumber(done int) (int32, bool) {
	if done < 0 || done >= maxParts {
		return 0, false
	}
	return int32(done) + 1, true
}

// pass makes one attempt: a fresh 303, the media from st.Done, and the rest streamed as st's next parts through a
// resumer bound to st (see resumer.go). Whatever stops it, st has advanced by the contiguous run of parts that
// finished. It returns the object's SHA-256 once the upload is complete.
func (t *Transferor) pass(ctx context.Context, j *job, st *State) (string, error) {
	if _, ok := partNumber(len(st.Parts)); !ok && st.Done < st.Size {
		return "", fmt.Errorf("attachments: upload already has %d parts, S3 allows %d: %w", len(st.Parts), maxParts, ErrPermanent)
	}
	h := sha256.New()
	if st.Done > 0 {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.SHA256State); err != nil {
			return "", fmt.Errorf("attachments: resume state's hash: %w: %w", ErrPermanent, err)
		}
	}
	// Everything uploaded (a Complete failed last time): no part is sent, only the Complete. Asking the media
	// host for zero bytes would be a 416.
	var body io.Reader = http.NoBody
	if st.Done < st.Size {
		loc, err := t.locate(ctx, j)
		if err != nil {
			return "", err
		}
		st.MediaID = j.mediaID
		rc, err := t.fetch(ctx, loc, st.Done, st.Size)
		if err != nil {
			return "", err
		}
		// The media body is read-only: its Close error cannot lose data (what was read is checked by meter).
		defer func() { _ = rc.Close() }()
		body = rc
	}
	m := &meter{r: body, h: h, want: st.Size - st.Done, partSize: st.PartSize}
	r := newResumer(t.s3, t.cfg.Bucket, st, m, t.completer)
	err := t.streamParts(ctx, j, r)
	if err != nil {
		if errors.Is(err, ErrRetryable) || errors.Is(err, ErrPermanent) || errors.Is(err, errNoSuchUpload) ||
			errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return "", err
		}
		// The transfer package's own failures (none expected: the resumer's and meter's errors are classified).
		return "", fmt.Errorf("attachments: upload %s: %w: %w", j.a.ID, ErrRetryable, err)
	}
	if !r.completed() || st.Done != st.Size || m.n != m.want {
		return "", fmt.Errorf("attachments: upload of %s ended at %d of %d bytes: %w", j.a.ID, st.Done, st.Size, ErrSizeMismatch)
	}
	sum := sha256.New()
	if err := sum.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.SHA256State); err != nil {
		return "", fmt.Errorf("attachments: hash state: %w: %w", ErrPermanent, err)
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}

// streamParts uploads the rest of a pass's bytes (r's meter) as the State's next parts and completes the upload.
// Each UploadPart streams its part straight from the media body, so a large copy holds no part buffers (the
// transfer package holds Concurrency+1 of PartSize, plus the first part it reads apart: 15 to 20 MiB of a 64 MB
// function, and the collector's headroom under GOMEMLIMIT). Parts are read in order, one after the other; the next
// part starts as soon as the one before has sent its last byte, so up to Concurrency of them wait for S3's answer
// at once while the media keeps flowing. A part that fails ends the pass (its bytes cannot be read again): the
// State keeps the contiguous run of parts that finished, and the next pass asks the media host for the rest.
func (t *Transferor) streamParts(ctx context.Context, j *job, r *resumer) error {
	m := r.m
	if m.want > 0 {
		if _, err := r.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(t.cfg.Bucket),
			Key: aws.String(r.st.Key), ContentType: aws.String(contentType(j.a.MimeType)),
			ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(t.cfg.KMSKeyID)}); err != nil {
			return err
		}
	}
	var g errgroup.Group
	g.SetLimit(max(1, t.cfg.Concurrency))
	var failed atomic.Bool
	for k, read := int64(1), int64(0); read < m.want && !failed.Load() && ctx.Err() == nil; k++ {
		size := min(r.st.PartSize, m.want-read)
		body := &partBody{m: m, left: size, sent: make(chan struct{})}
		done := make(chan struct{})
		g.Go(func() error {
			defer close(done)
			err := r.streamPart(ctx, k, body, size)
			switch berr := body.failure(); {
			case err != nil && berr != nil:
				err = berr // the media's own failure, however the SDK wrapped it
			case err == nil && !body.complete():
				err = fmt.Errorf("attachments: part %d of %s ended before its bytes were read: %w", k, r.st.AttachmentID, ErrRetryable)
			}
			if err != nil {
				failed.Store(true)
			}
			return err
		})
		// The next part reads the media only after this one read its last byte (or ended without it).
		select {
		case <-body.sent:
		case <-done:
		}
		read += size
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if m.want > 0 {
		// The parts hold exactly the attachment's size; the media must end there too.
		var one [1]byte
		if _, err := m.Read(one[:]); !errors.Is(err, io.EOF) {
			if err == nil {
				err = fmt.Errorf("attachments: media sent more than %d bytes: %w", m.want, ErrSizeMismatch)
			}
			return err
		}
	}
	_, err := r.completeUpload(ctx, nil)
	return err
}

// partBody is one part's bytes, read from the meter as the SDK sends them.
type partBody struct {
	m    *meter
	mu   sync.Mutex
	left int64
	err  error         // the meter's failure, if any
	sent chan struct{} // closed once the part's last byte was read
}

func (b *partBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left == 0 {
		return 0, io.EOF
	}
	n, err := b.m.Read(p[:min(int64(len(p)), b.left)])
	b.left -= int64(n)
	if b.left == 0 {
		close(b.sent)
		if errors.Is(err, io.EOF) {
			err = nil // the media's end is the last part's end; the SDK sees it at the next Read
		}
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("attachments: media ended after %d of %d bytes: %w", b.m.n, b.m.want, ErrSizeMismatch)
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *partBody) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *partBody) complete() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.left == 0
}

// isNoSuchUpload: the SDK models NoSuchUpload for some operations only, so the code is compared too.
func isNoSuchUpload(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "NoSuchUpload"
}

// abort drops a failed transfer's upload, with a fresh context: a permanent failure must not leave parts behind.
func (t *Transferor) abort(ctx context.Context, st *State) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_ = t.Abort(ctx, st)
}

// Abort drops the upload of a State the export will not resume (the run failed or was cancelled, the attachment
// was removed or is no longer allowed). Aborting an upload that no longer exists is not an error. The bucket's
// AbortIncompleteMultipartUpload rule (one day) catches any the export never gets to abort.
func (t *Transferor) Abort(ctx context.Context, st *State) error {
	if st == nil || st.UploadID == "" {
		return nil
	}
	_, err := t.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(t.cfg.Bucket), Key: aws.String(st.Key), UploadId: aws.String(st.UploadID)})
	if err != nil && !isNoSuchUpload(err) {
		return fmt.Errorf("attachments: abort upload of %s: %w", st.AttachmentID, err)
	}
	return nil
}

// Delete removes mirrored attachments (PlanIssue's Delete). The bucket is versioned: this leaves delete markers,
// and the lifecycle rule expires the old versions; erasure removes every version anyway.
func (t *Transferor) Delete(ctx context.Context, tgt Target, ids []string) error {
	for start := 0; start < len(ids); start += 1000 {
		batch := ids[start:min(start+1000, len(ids))]
		objs := make([]s3types.ObjectIdentifier, 0, len(batch))
		for _, id := range batch {
			if err := tgt.valid(id); err != nil {
				return err
			}
			objs = append(objs, s3types.ObjectIdentifier{Key: aws.String(Key(tgt.ConnectionID, tgt.ConnectorID, id))})
		}
		out, err := t.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(t.cfg.Bucket),
			Delete: &s3types.Delete{Objects: objs, Quiet: aws.Bool(true)}})
		if err != nil {
			return fmt.Errorf("attachments: delete %d objects: %w", len(objs), err)
		}
		if len(out.Errors) > 0 {
			return fmt.Errorf("attachments: delete: %d of %d objects failed (first: %s)", len(out.Errors), len(objs), aws.ToString(out.Errors[0].Code))
		}
	}
	return nil
}
