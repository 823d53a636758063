package attachments

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"jiraexport/shared/awsconfig"
)

// TestSlowCompleteFinishesTheCopyOnce: S3 may take minutes to complete a large object. A CompleteMultipartUpload
// that takes longer than the S3 client's timeout for every other call must still finish the copy, with one
// Complete and one download of the attachment; cut short, the SDK would ask again for an upload S3 completes
// meanwhile, and the copy would start over.
func TestSlowCompleteFinishesTheCopyOnce(t *testing.T) {
	tests := []struct {
		name     string
		size     int64
		wholeMax int64
	}{
		{"resumable", largeSize, -1},
		{"whole, through the transfer package in parts", 12<<20 + 345, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { slowComplete(t, tt.size, tt.wholeMax) })
	}
}

func slowComplete(t *testing.T, size, wholeMax int64) {
	f := newFixture(t, simOptions{large: size})
	a := f.find(t, func(a Attachment) bool { return a.Size == size })

	const clientTimeout, completeTakes = 2 * time.Second, 3 * time.Second
	bc, ok := f.env.AWS.HTTPClient.(*awshttp.BuildableClient)
	if !ok {
		t.Fatalf("the stack's HTTP client is a %T, not the SDK's buildable client", f.env.AWS.HTTPClient)
	}
	endpoint := aws.ToString(f.s3.Options().BaseEndpoint)
	target, err := url.Parse(endpoint)
	if err != nil || endpoint == "" {
		t.Fatalf("S3 endpoint %q: %v", endpoint, err)
	}
	var completes atomic.Int32
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: bc.GetTransport(), // trusts the stack's CA
	}
	slowS3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Query().Has("uploadId") {
			completes.Add(1)
			select {
			case <-time.After(completeTakes):
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer slowS3.Close()
	client := s3.NewFromConfig(f.env.AWS, awsconfig.S3PathStyle(true), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(slowS3.URL)
		o.HTTPClient = bc.WithTimeout(clientTimeout)
	})
	cfg := Config{APIURL: f.api.URL, Bucket: f.env.Bucket, KMSKeyID: f.env.KeyARN, PartSize: MinPartSize, Concurrency: 2,
		WholeMax: wholeMax, Gateway: &http.Client{Timeout: 10 * time.Second}}

	res, err := New(client, cfg).Transfer(t.Context(), f.token, f.target(), a, nil)
	if err != nil || res.Stored == nil {
		t.Fatalf("Transfer() = %+v, %v; want the attachment stored", res, err)
	}
	if n := completes.Load(); n != 1 {
		t.Errorf("%d CompleteMultipartUpload requests, want 1", n)
	}
	if res.GatewayRequests != 1 {
		t.Errorf("%d requests for the attachment's content, want 1 (the copy started over)", res.GatewayRequests)
	}
	body, _ := f.want(t, a)
	f.checkObject(t, a, body)
}
