package atlassiansim

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
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
