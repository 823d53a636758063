package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	urlFile := filepath.Join(t.TempDir(), "url")
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-seed", "3", "-sites", "1", "-issues", "5", "-test-controls", "-url-file", urlFile,
			"-redirect-uri", "https://app.example.test/cb", "-burst", "GET /rest/api/3/myself=5",
			"-fault", `{"endpoint":"GET /rest/api/3/myself","kind":"status","status":503}`,
			"-latency", "wan", "-attachment-share", "0.1", "-many-comments-share", "0"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the URL line: %v", err)
	}
	url := strings.TrimSpace(line)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("printed URL = %q, want http://127.0.0.1:port", url)
	}
	if b, _ := os.ReadFile(urlFile); strings.TrimSpace(string(b)) != url {
		t.Errorf("url file = %q, want %q", b, url)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(url + "/_sim/info")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Sites        []json.RawMessage `json:"sites"`
		TestControls bool              `json:"testControls"`
		RedirectURIs []string          `json:"redirectUris"`
		RateLimits   struct {
			BurstRPS map[string]float64 `json:"burstRps"`
		} `json:"rateLimits"`
		MediaURL string `json:"mediaUrl"`
		Latency  struct {
			Name string `json:"name"`
		} `json:"latency"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if len(info.Sites) != 1 || !info.TestControls || len(info.RedirectURIs) != 1 || info.RateLimits.BurstRPS["GET /rest/api/3/myself"] != 5 ||
		info.Latency.Name != "wan" || !strings.HasPrefix(info.MediaURL, "http://localhost:") {
		t.Errorf("info = %+v, want the flags applied", info)
	}
	resp, err = hc.Get(url + "/_sim/faults")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(b, []byte(`"status":503`)) {
		t.Errorf("faults = %s, want the -fault flag installed", b)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Errorf("run() after cancel = %d, want 0", code)
	}
}

func TestRunRejects(t *testing.T) {
	tests := [][]string{
		{"-listen", "0.0.0.0:0"},
		{"-listen", "192.168.1.10:8080"},
		{"-fault", `{"endpoint":"*","kind":"bogus"}`},
		{"-burst", "GET /x"},
		{"-latency", "lunar"},
		{"-nope"},
		{"extra"},
	}
	for _, args := range tests {
		var stderr bytes.Buffer
		if code := run(t.Context(), args, io.Discard, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"-help"}, io.Discard, &stderr); code != 0 || !strings.Contains(stderr.String(), "-redirect-uri") {
		t.Errorf("run(-help) = %d, usage %q", code, stderr.String())
	}
}
