package localstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// TestMotoLaunchAnswersAsMoto: the launcher's server answers S3 as moto's own does. The same calls go to moto
// started plainly and to moto started through moto_launch.py (kept connections, the streamed
// CompleteMultipartUpload), and every answer must match: multipart objects with each kind of checksum, their
// ETags and bytes, the errors a completion can meet, bodies moto refuses unread, chunked and ranged requests.
// On the launcher, sequential calls also share one connection.
func TestMotoLaunchAnswersAsMoto(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-c", "import moto.server").Run() != nil {
		t.Skip("python3 with moto is not installed here; the stack runs the moto_server script unpatched")
	}
	t.Parallel()
	plain := startMotoForTest(t, py, "from moto.server import main; import sys; main(sys.argv[1:])")
	launched := startMotoForTest(t, py, motoLaunch)

	want := motoTranscript(t, plain, nil)
	var fresh atomic.Int64
	got := motoTranscript(t, launched, &fresh)
	for i := range max(len(want), len(got)) {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			t.Errorf("answer %d:\n launcher: %s\n     moto: %s", i, g, w)
		}
	}
	if n := fresh.Load(); n > 2 {
		t.Errorf("the launcher's server took %d connections for sequential calls, want them kept (at most 2)", n)
	}
}

// startMotoForTest runs python's script as a moto server on a free port until the test ends, as the stack runs
// its children (a process group of its own, killed with this process); it returns the URL.
func startMotoForTest(t *testing.T, py, script string) string {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "moto.log")
	logs, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{}
	t.Cleanup(func() { _ = s.Close(); _ = logs.Close() })
	if err := s.spawn(exec.Command(py, "-c", script, "-H", "127.0.0.1", "-p", strconv.Itoa(port)), "moto", logs); err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.waitHTTP(ctx, url+"/moto-api/"); err != nil {
		out, _ := os.ReadFile(logPath)
		t.Fatalf("moto at %s did not answer: %v\n%s", url, err, out)
	}
	return url
}

// motoTranscript makes the same S3 calls on the moto at url and returns what each answered, one line per answer.
// fresh, when set, counts the new connections the calls took.
func motoTranscript(t *testing.T, url string, fresh *atomic.Int64) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if fresh != nil {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
			if !ci.Reused {
				fresh.Add(1)
			}
		}})
	}
	// One connection at most: what is refused unread must leave it usable for the next call.
	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	cl := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), UsePathStyle: true, HTTPClient: hc,
		Credentials:                credentials.NewStaticCredentialsProvider("local", "local", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		RetryMaxAttempts:           1,
	})
	var out []string
	note := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	noteErr := func(step string, err error) {
		var ae smithy.APIError
		switch {
		case err == nil:
			note("%s: ok", step)
		case errors.As(err, &ae):
			note("%s: %s", step, ae.ErrorCode())
		default:
			t.Fatalf("%s: %v", step, err)
		}
	}
	bucket := aws.String("same")
	_, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket})
	noteErr("create bucket", err)

	data := make([]byte, 11<<20+4321)
	for i := range data {
		data[i] = byte(i*31 + i>>11)
	}
	parts := [][]byte{data[:5<<20], data[5<<20 : 10<<20], data[10<<20:]}
	cases := []struct {
		name      string
		algorithm s3types.ChecksumAlgorithm
		typ       s3types.ChecksumType
	}{
		{"default", "", ""},
		{"crc32-composite", s3types.ChecksumAlgorithmCrc32, ""},
		{"crc32-full", s3types.ChecksumAlgorithmCrc32, s3types.ChecksumTypeFullObject},
		{"crc64nvme", s3types.ChecksumAlgorithmCrc64nvme, ""},
		{"sha256", s3types.ChecksumAlgorithmSha256, ""},
	}
	for _, c := range cases {
		key := aws.String("multipart/" + c.name)
		up, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: key,
			ChecksumAlgorithm: c.algorithm, ChecksumType: c.typ})
		if err != nil {
			noteErr(c.name+" create", err)
			continue
		}
		var done []s3types.CompletedPart
		for i, p := range parts {
			n := aws.Int32(int32(i + 1))
			po, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: key, UploadId: up.UploadId, PartNumber: n,
				Body: bytes.NewReader(p), ChecksumAlgorithm: c.algorithm})
			if err != nil {
				t.Fatalf("%s part %d: %v", c.name, i+1, err)
			}
			done = append(done, s3types.CompletedPart{PartNumber: n, ETag: po.ETag, ChecksumCRC32: po.ChecksumCRC32,
				ChecksumCRC64NVME: po.ChecksumCRC64NVME, ChecksumSHA256: po.ChecksumSHA256})
		}
		co, err := cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: key, UploadId: up.UploadId,
			MultipartUpload: &s3types.CompletedMultipartUpload{Parts: done}})
		if err != nil {
			noteErr(c.name+" complete", err)
			continue
		}
		note("%s complete: etag %s crc32 %s crc64 %s sha256 %s type %s", c.name, aws.ToString(co.ETag),
			aws.ToString(co.ChecksumCRC32), aws.ToString(co.ChecksumCRC64NVME), aws.ToString(co.ChecksumSHA256), co.ChecksumType)
		got, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: key, ChecksumMode: s3types.ChecksumModeEnabled})
		if err != nil {
			t.Fatalf("%s get: %v", c.name, err)
		}
		body, err := io.ReadAll(got.Body)
		_ = got.Body.Close()
		if err != nil {
			// moto without awscrt stores a CRC32 as the CRC64NVME, which the SDK's validation refuses.
			note("%s read: %v", c.name, err)
			continue
		}
		note("%s get: %d bytes sha256 %x (sent %x) length %d etag %s crc32 %s crc64 %s sha256 %s type %s", c.name,
			len(body), sha256.Sum256(body), sha256.Sum256(data), aws.ToInt64(got.ContentLength), aws.ToString(got.ETag),
			aws.ToString(got.ChecksumCRC32), aws.ToString(got.ChecksumCRC64NVME), aws.ToString(got.ChecksumSHA256), got.ChecksumType)
	}

	// Completions that must fail: a part's ETag that is not its own, a short part before the last, no parts.
	key := aws.String("multipart/refused")
	up, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var etags []*string
	for i, p := range [][]byte{data[:1<<20], data[:5<<20]} {
		po, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: key, UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p)})
		if err != nil {
			t.Fatal(err)
		}
		etags = append(etags, po.ETag)
	}
	for _, c := range []struct {
		name  string
		parts []s3types.CompletedPart
	}{
		{"wrong etag", []s3types.CompletedPart{{PartNumber: aws.Int32(1), ETag: etags[1]}}},
		{"short part first", []s3types.CompletedPart{{PartNumber: aws.Int32(1), ETag: etags[0]}, {PartNumber: aws.Int32(2), ETag: etags[1]}}},
		{"no parts", nil},
	} {
		_, err := cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: key, UploadId: up.UploadId,
			MultipartUpload: &s3types.CompletedMultipartUpload{Parts: c.parts}})
		noteErr("complete "+c.name, err)
	}

	// A body moto refuses without reading it, then a call on the same connection.
	_, err = cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("no-such-bucket"), Key: aws.String("k"),
		Body: bytes.NewReader(data[:1<<20])})
	noteErr("put to a missing bucket", err)
	_, err = cl.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("small"), Body: strings.NewReader("after")})
	noteErr("put after a refused body", err)

	// A chunked body (no length), then a range of it read back, then a batch delete (a POST with a body).
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url+"/same/chunked", io.MultiReader(bytes.NewReader(data[:70000]), strings.NewReader("end")))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	note("chunked put: %d", resp.StatusCode)
	rg, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("chunked"), Range: aws.String("bytes=69990-")})
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(rg.Body)
	_ = rg.Body.Close()
	note("range: %q range %s", tail, aws.ToString(rg.ContentRange))
	dl, err := cl.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: bucket, Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{
		{Key: aws.String("small")}, {Key: aws.String("chunked")}}}})
	if err != nil {
		t.Fatal(err)
	}
	note("delete: %d deleted, %d errors", len(dl.Deleted), len(dl.Errors))
	_, err = cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String("small")})
	noteErr("head deleted", err)
	return out
}
