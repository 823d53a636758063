package localstack

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFrontAnswersArriveWhole: requests with bodies through the front to a backend that answers as moto's server
// does (a fixed-length answer and "Connection: close"), over kept-alive connections. Every answer must arrive
// whole, also when the backend starts its answer before the proxy has finished with the request's body (as S3
// does when it refuses a request). Over HTTP/1.1 without full duplex, Go's server closed the body under the
// proxy's transport, the transport dropped its connection to the backend, and the client got its answer cut short
// (golang/go#40747); HTTP/2, which the front speaks, always reads and answers at once.
func TestFrontAnswersArriveWhole(t *testing.T) {
	t.Parallel()
	const answer = "<Error><Code>AccessDenied</Code></Error>"
	tests := []struct {
		name string
		// read is how much of the request's body the backend reads before it answers; pause, how long it waits
		// between the answer's header and its body.
		read  int64
		pause time.Duration
		body  int
	}{
		{name: "whole body read first", read: -1, body: 1 << 10},
		{name: "answer started before the body was read", read: 1, pause: 100 * time.Millisecond, body: 64 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rc := http.NewResponseController(w)
				_ = rc.EnableFullDuplex()
				src := io.Reader(r.Body)
				if tt.read >= 0 {
					src = io.LimitReader(r.Body, tt.read)
				}
				if _, err := io.Copy(io.Discard, src); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				w.Header().Set("Connection", "close")
				w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
				w.WriteHeader(http.StatusForbidden)
				_ = rc.Flush()
				time.Sleep(tt.pause)
				_, _ = io.WriteString(w, answer)
			}))
			defer backend.Close()
			client, url := startTestFront(t, backend.URL)

			for i := range 20 {
				resp, err := client.Post(url, "application/octet-stream", strings.NewReader(strings.Repeat("b", tt.body)))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				got, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				switch {
				case err != nil:
					t.Fatalf("request %d: answer cut short after %d bytes: %v", i, len(got), err)
				case resp.StatusCode != http.StatusForbidden || string(got) != answer:
					t.Fatalf("request %d: answer %d %q, want 403 %q", i, resp.StatusCode, got, answer)
				}
			}
		})
	}
}

// startTestFront starts the front before backend and returns a client that trusts it, and the front's URL.
func startTestFront(t *testing.T, backend string) (*http.Client, string) {
	t.Helper()
	certPath, keyPath, err := writeLoopbackCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startTLSFront(port, backend, certPath, keyPath, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	pem, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true, // as the SDK's client does
	}}
	t.Cleanup(client.CloseIdleConnections)
	return client, "https://127.0.0.1:" + strconv.Itoa(port) + "/"
}
