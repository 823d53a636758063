package localstack

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"
)

// startTLSFront serves HTTPS on 127.0.0.1:port with the loopback certificate and passes every request, unchanged
// (method, path, Host, headers, streamed body), to moto at inner.
//
// Why not let moto terminate TLS: its server (werkzeug's) answers every request with "Connection: close", so each
// S3 or KMS call paid a new TCP connection and a full TLS handshake on both sides, something AWS's endpoints never
// ask of a client that keeps its connections. Measured on the export benchmark, that handshake was about a tenth
// of the export process's CPU and a large share of moto's, which is single-threaded Python: the local stack, not
// the product, was what the benchmark timed. Behind this front clients keep their TLS connections, as with AWS,
// and moto gets plain loopback connections, kept between requests too (moto_launch.py makes werkzeug keep them).
func startTLSFront(port int, inner, certPath, keyPath string, logs io.Writer) (*http.Server, error) {
	target, err := url.Parse(inner)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	errLog := log.New(logs, "[moto-front] ", 0)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // moto routes S3 by Host (virtual-hosted buckets), as AWS does
		},
		// Downloads stream as moto writes them.
		FlushInterval: -1,
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second, // before moto's 300 s: the front, not moto, ends an idle connection
			ResponseHeaderTimeout: 5 * time.Minute,  // a 1 GiB CompleteMultipartUpload takes moto a while
		},
		ErrorLog: errLog,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           proxy,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          errLog,
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return srv, nil
}
