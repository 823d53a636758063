package attachments

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/oauth2"

	"jiraexport/shared/awsconfig"
)

// BenchmarkAttachmentToS3 streams one large attachment (1 GiB; ATTACHMENT_BENCH_BYTES overrides) from the
// simulator, through its 303 and separate media origin, into S3 (moto), three ways:
//
//   - plain: the 303's media URL copied by the transfer package's UploadObject with its default options, no hashing
//     or size check (the baseline);
//   - whole: Transfer forced onto the transfer-package path (WholeMax above the size);
//   - resumable: Transfer with the default Config, which takes the resumable path for anything above 16 MiB.
//
// Each transfer runs in a child process (this test binary re-executed, see TestBenchChild), so its memory is
// measured alone, without the simulator's: peak-RSS-MiB is the child's VmHWM from /proc/self/status (the kernel's
// high-water mark of resident memory), peak-heap-MiB the highest /memory/classes/heap/objects:bytes that a
// 1 ms runtime/metrics sampler saw, start-RSS-MiB the child's VmRSS before the transfer (the test binary's own
// footprint, which a smaller Lambda binary would not have). MB/s includes the child's start (a few ms).
func BenchmarkAttachmentToS3(b *testing.B) {
	size := int64(1 << 30)
	if v, err := strconv.ParseInt(os.Getenv("ATTACHMENT_BENCH_BYTES"), 10, 64); err == nil && v > 0 {
		size = v
	}
	f := newFixture(b, simOptions{large: size})
	a := f.find(b, func(a Attachment) bool { return a.Size == size })
	tok, _ := f.token.Token()
	for _, mode := range []string{"plain", "whole", "resumable"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(size)
			var rss, heap, start float64
			for b.Loop() {
				r := runChild(b, childJob{Mode: mode, APIURL: f.api.URL, Bucket: f.env.Bucket, KeyID: f.env.KeyARN,
					CloudID: f.cloudID, Token: tok.AccessToken, Attachment: a})
				rss, heap, start = max(rss, r.PeakRSSMiB), max(heap, r.PeakHeapMiB), max(start, r.StartRSSMiB)
				b.StopTimer()
				if _, err := f.s3.DeleteObject(b.Context(), &s3.DeleteObjectInput{Bucket: aws.String(f.env.Bucket),
					Key: aws.String(Key("conn1", "01JCONNECTOR", a.ID))}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(rss, "peak-RSS-MiB")
			b.ReportMetric(heap, "peak-heap-MiB")
			b.ReportMetric(start, "start-RSS-MiB")
		})
	}
}

type childJob struct {
	Mode                                  string
	APIURL, Bucket, KeyID, CloudID, Token string
	Attachment                            Attachment
}

type childResult struct {
	StartRSSMiB float64
	PeakRSSMiB  float64
	PeakHeapMiB float64
	Error       string
}

const childEnv = "ATTACHMENT_BENCH_CHILD"

func runChild(b *testing.B, job childJob) childResult {
	b.Helper()
	j, _ := json.Marshal(job)
	cmd := exec.CommandContext(b.Context(), os.Args[0], "-test.run=^TestBenchChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+string(j))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("child: %v: %s%s", err, out, stderr.Bytes())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "BENCHCHILD "); ok {
			var r childResult
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				b.Fatal(err)
			}
			if r.Error != "" {
				b.Fatalf("child %s: %s", job.Mode, r.Error)
			}
			return r
		}
	}
	b.Fatalf("child printed no result: %s", out)
	return childResult{}
}

// TestBenchChild is the benchmark's child process; it does nothing unless started by BenchmarkAttachmentToS3.
func TestBenchChild(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("benchmark child only")
	}
	var job childJob
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		t.Fatal(err)
	}
	startRSS := procStatus("VmRSS:")
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	err := childTransfer(t.Context(), job)
	close(stop)
	<-done
	r := childResult{StartRSSMiB: startRSS / (1 << 20), PeakRSSMiB: procStatus("VmHWM:") / (1 << 20), PeakHeapMiB: float64(peak.Load()) / (1 << 20)}
	if err != nil {
		r.Error = err.Error()
	}
	j, _ := json.Marshal(r)
	fmt.Println("BENCHCHILD " + string(j))
}

func childTransfer(ctx context.Context, cj childJob) error {
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		return err
	}
	s3c := s3.NewFromConfig(cfg, awsconfig.S3PathStyle(os.Getenv("S3_USE_PATH_STYLE") == "true"))
	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: cj.Token, TokenType: "Bearer"})
	tgt := Target{ConnectionID: "conn1", ConnectorID: "01JCONNECTOR", CloudID: cj.CloudID}
	c := Config{APIURL: cj.APIURL, Bucket: cj.Bucket, KMSKeyID: cj.KeyID, Gateway: &http.Client{Timeout: 30 * time.Second}}
	switch cj.Mode {
	case "whole":
		c.WholeMax = cj.Attachment.Size + 1
	case "plain":
		tr := New(s3c, c)
		loc, err := tr.locate(ctx, &job{ts: ts, tgt: tgt, a: cj.Attachment})
		if err != nil {
			return err
		}
		resp, err := http.Get(loc.String())
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = transfermanager.New(s3c).UploadObject(ctx, &transfermanager.UploadObjectInput{
			Bucket: aws.String(cj.Bucket), Key: aws.String(Key(tgt.ConnectionID, tgt.ConnectorID, cj.Attachment.ID)),
			Body: resp.Body, ServerSideEncryption: tmtypes.ServerSideEncryption(tmtypes.ServerSideEncryptionAwsKms),
			SSEKMSKeyID: aws.String(cj.KeyID)})
		return err
	}
	res, err := New(s3c, c).Transfer(ctx, ts, tgt, cj.Attachment, nil)
	if err != nil {
		return err
	}
	if res.Stored == nil || res.Stored.Size != cj.Attachment.Size {
		return fmt.Errorf("transfer stored %+v", res.Stored)
	}
	return nil
}

// procStatus reads a size field of /proc/self/status in bytes: VmHWM is the peak resident set size, VmRSS the
// current one (0 where /proc is missing).
func procStatus(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkSmallAttachment copies one attachment under one part (the largest of the data set's small ones) per
// op, in this process: B/op is what a copy allocates beside the simulator's share, which putOnce keeps near the
// attachment's size (the transfer package's io.ReadAll grew its buffer by doubling).
func BenchmarkSmallAttachment(b *testing.B) {
	f := newFixture(b, simOptions{})
	var a Attachment
	for _, c := range f.attachments(b) {
		if c.Size < MinPartSize && c.Size > a.Size {
			a = c
		}
	}
	if a.Size == 0 {
		b.Skip("no attachment under one part in this data set")
	}
	tr := f.transferor(nil)
	b.SetBytes(a.Size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Transfer(b.Context(), f.token, f.target(), a, nil); err != nil {
			b.Fatal(err)
		}
	}
}
