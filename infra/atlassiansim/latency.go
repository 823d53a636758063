package atlassiansim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"jiraexport/shared/backoff"
)

// LatencyProfile adds the round-trip times of a real Atlassian Cloud site to every answer, in wall-clock time (not
// the simulator's Clock: throughput tests measure real seconds). The zero profile adds nothing, which is what unit
// tests want; benchmarks and the export's throughput tests use LatencyWAN.
type LatencyProfile struct {
	// Name is informational ("wan", "none").
	Name string `json:"name"`
	// Search is the time to answer a search page (POST/GET /search/jql) and an approximate count.
	Search Duration `json:"search"`
	// Bulk is the time for /issue/bulkfetch and /changelog/bulkfetch.
	Bulk Duration `json:"bulk"`
	// Get is the time for every other Jira REST call (single issue, comment and changelog pages, fields, users, the
	// 303 of attachment/content) and accessible-resources.
	Get Duration `json:"get"`
	// Token is the time for POST /oauth/token.
	Token Duration `json:"token"`
	// MediaFirstByte is the media host's time to first byte.
	MediaFirstByte Duration `json:"mediaFirstByte"`
	// MediaBytesPerSecond caps the throughput of an attachment body (media host and redirect=false); 0 = no cap.
	MediaBytesPerSecond int64 `json:"mediaBytesPerSecond"`
	// Jitter spreads each delay uniformly by ± this fraction (0.2 = ±20 %).
	Jitter float64 `json:"jitter"`
}

// LatencyWAN is what a client in an AWS region sees from Jira Cloud: search pages around 300 ms, single GETs around
// 80 ms, the media host's first byte around 150 ms and about 40 MiB/s per attachment stream, ±25 % jitter.
// (Measured orders of magnitude, not an Atlassian figure: Atlassian publishes no latency targets.)
var LatencyWAN = LatencyProfile{Name: "wan", Search: Duration(300 * time.Millisecond), Bulk: Duration(250 * time.Millisecond),
	Get: Duration(80 * time.Millisecond), Token: Duration(150 * time.Millisecond), MediaFirstByte: Duration(150 * time.Millisecond),
	MediaBytesPerSecond: 40 << 20, Jitter: 0.25}

// LatencyProfileNamed returns a named profile: "wan", or "none" / "" for none.
func LatencyProfileNamed(name string) (LatencyProfile, error) {
	switch strings.ToLower(name) {
	case "", "none", "zero":
		return LatencyProfile{Name: "none"}, nil
	case "wan":
		return LatencyWAN, nil
	}
	return LatencyProfile{}, fmt.Errorf("atlassiansim: unknown latency profile %q (want wan or none)", name)
}

// delayFor is the base delay of an endpoint key under the profile.
func (p LatencyProfile) delayFor(key string) time.Duration {
	switch {
	case key == KeyMedia:
		return time.Duration(p.MediaFirstByte)
	case key == KeyToken:
		return time.Duration(p.Token)
	case key == KeyAccessibleResources:
		return time.Duration(p.Get)
	case strings.Contains(key, "/search/jql"), strings.Contains(key, "/search/approximate-count"):
		return time.Duration(p.Search)
	case strings.HasSuffix(key, "/bulkfetch"):
		return time.Duration(p.Bulk)
	case strings.Contains(key, "/rest/api/"):
		return time.Duration(p.Get)
	}
	return 0
}

func (p LatencyProfile) jittered(d time.Duration) time.Duration {
	if d <= 0 || p.Jitter <= 0 {
		return d
	}
	f := 1 + p.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// SetLatency replaces the latency profile; requests already waiting keep their delay.
func (s *Server) SetLatency(p LatencyProfile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = p
}

// Latency returns the current latency profile.
func (s *Server) Latency() LatencyProfile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latency
}

// throttledWriter paces a body to a byte rate: it writes in slices and sleeps so that the bytes sent never run ahead
// of rate × elapsed time.
type throttledWriter struct {
	w     io.Writer
	rate  int64
	start time.Time
	sent  int64
	done  <-chan struct{}
}

func (t *throttledWriter) Write(p []byte) (int, error) {
	const chunk = 32 << 10
	written := 0
	for len(p) > 0 {
		n := min(len(p), chunk)
		m, err := t.w.Write(p[:n])
		written += m
		t.sent += int64(m)
		if err != nil {
			return written, err
		}
		p = p[n:]
		due := t.start.Add(time.Duration(float64(t.sent) / float64(t.rate) * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-t.done:
				timer.Stop()
				return written, http.ErrAbortHandler
			}
		}
	}
	return written, nil
}

// bodyWriter is w paced by the profile's bandwidth cap, if any.
func (p LatencyProfile) bodyWriter(w io.Writer, r *http.Request) io.Writer {
	if p.MediaBytesPerSecond <= 0 {
		return w
	}
	return &throttledWriter{w: w, rate: p.MediaBytesPerSecond, start: time.Now(), done: r.Context().Done()}
}

// streamedKey says whether an endpoint's answer is a byte stream (attachment content, the media host) rather than a
// document the site builds before it answers.
func streamedKey(key string) bool {
	return key == KeyMedia || strings.Contains(key, "/attachment/content/") || strings.Contains(key, "/attachment/thumbnail/")
}

// heldWriter holds an answer's status line and body until its response time has passed, while the handler builds
// it. A profile's latency models how long a client waits for Jira's answer, Jira's own work included, so the
// simulator's work (a search page of 100 issues with their fields costs it tens of milliseconds, more on a busy
// host) overlaps that wait instead of adding to it: the answer arrives at max(response time, the simulator's work),
// as the profile states, and a floor computed from the profile is one the simulator can actually meet.
type heldWriter struct {
	http.ResponseWriter
	until    time.Time
	ctx      context.Context // the request's: it ends when the client leaves
	status   int
	buf      bytes.Buffer
	released bool
	gone     bool // the client left while the answer was held
}

// heldLimit bounds what a held answer buffers; a handler that writes more before its time waits for it instead.
const heldLimit = 8 << 20

func (h *heldWriter) WriteHeader(code int) {
	if h.released {
		h.ResponseWriter.WriteHeader(code)
		return
	}
	if h.status == 0 {
		h.status = code
	}
}

func (h *heldWriter) Write(p []byte) (int, error) {
	if !h.released {
		if h.buf.Len()+len(p) <= heldLimit && time.Now().Before(h.until) {
			if h.status == 0 {
				h.status = http.StatusOK
			}
			return h.buf.Write(p)
		}
		if !h.release() {
			return 0, http.ErrAbortHandler
		}
	}
	return h.ResponseWriter.Write(p)
}

func (h *heldWriter) Flush() {
	if !h.release() {
		return
	}
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// release waits until the answer's time, then sends what was held; it reports false if the client left first.
func (h *heldWriter) release() bool {
	if h.released {
		return true
	}
	if h.gone {
		return false
	}
	if backoff.Sleep(h.ctx, time.Until(h.until)) != nil {
		h.gone = true
		return false
	}
	h.released = true
	if h.status != 0 {
		h.ResponseWriter.WriteHeader(h.status)
	}
	if h.buf.Len() > 0 {
		_, _ = h.ResponseWriter.Write(h.buf.Bytes())
		h.buf = bytes.Buffer{}
	}
	return true
}
