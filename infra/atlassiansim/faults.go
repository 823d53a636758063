package atlassiansim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"jiraexport/shared/backoff"
)

// FaultKind names an injectable failure.
type FaultKind string

const (
	// FaultLatency delays the answer by Fault.Latency (combined with any other fault on the endpoint).
	FaultLatency FaultKind = "latency"
	// FaultStatus answers Fault.Status (default 503) with a Jira error body, plus Retry-After when set.
	FaultStatus FaultKind = "status"
	// FaultRateLimit answers 429 with the headers of Fault.Reason (default jira-burst-based): a 429 storm.
	FaultRateLimit FaultKind = "rate_limit"
	// FaultReset drops the connection without answering.
	FaultReset FaultKind = "reset"
	// FaultTruncate sends the headers (with the full Content-Length) and half the body, then drops the connection.
	FaultTruncate FaultKind = "truncate"
	// FaultNoRefreshToken makes a successful refresh_token grant answer without refresh_token (POST /oauth/token).
	FaultNoRefreshToken FaultKind = "no_refresh_token"
	// FaultIssueError makes POST /rest/api/3/issue/bulkfetch report its first issue in issueErrors (Jira's
	// "retriable error") instead of returning it; each hit fails one issue.
	FaultIssueError FaultKind = "issue_error"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration string ("250ms").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts "250ms" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string like \"250ms\" or nanoseconds: %w", err)
	}
	*d = Duration(n)
	return nil
}

// Fault is one injected failure on one endpoint.
type Fault struct {
	// Endpoint is an endpoint key as in Counters.Requests ("GET /rest/api/3/search/jql", "POST /oauth/token",
	// "GET /file/{uuid}/binary"), or "*" for every endpoint except /_sim.
	Endpoint string    `json:"endpoint"`
	Kind     FaultKind `json:"kind"`
	// Status for FaultStatus; default 503.
	Status int `json:"status,omitempty"`
	// Latency for FaultLatency.
	Latency Duration `json:"latency,omitempty"`
	// RetryAfter in seconds, for FaultRateLimit (default 1) and optionally FaultStatus.
	RetryAfter int `json:"retryAfter,omitempty"`
	// Reason is the RateLimit-Reason of FaultRateLimit.
	Reason string `json:"reason,omitempty"`
	// Count is how many requests the fault hits before it removes itself; 0 = until cleared.
	Count int `json:"count,omitempty"`
}

func (f Fault) validate() error {
	if f.Endpoint == "" {
		return fmt.Errorf("atlassiansim: fault needs an endpoint")
	}
	switch f.Kind {
	case FaultLatency:
		if f.Latency <= 0 {
			return fmt.Errorf("atlassiansim: latency fault needs a positive latency")
		}
	case FaultStatus:
		if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
			return fmt.Errorf("atlassiansim: status fault needs a 4xx or 5xx status, got %d", f.Status)
		}
	case FaultRateLimit, FaultReset, FaultTruncate, FaultNoRefreshToken, FaultIssueError:
	default:
		return fmt.Errorf("atlassiansim: unknown fault kind %q", f.Kind)
	}
	if f.Count < 0 {
		return fmt.Errorf("atlassiansim: fault count must not be negative")
	}
	return nil
}

type faultEntry struct {
	Fault
	left int // remaining hits when Count > 0
	hits int
}

// SetFault installs a fault. Faults on one endpoint are tried in the order they were set.
func (s *Server) SetFault(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultEntry{Fault: f, left: f.Count})
	return nil
}

// ClearFaults removes the faults of an endpoint key, or every fault when endpoint is "".
func (s *Server) ClearFaults(endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if endpoint == "" {
		s.faults = nil
		return
	}
	kept := s.faults[:0]
	for _, f := range s.faults {
		if f.Endpoint != endpoint {
			kept = append(kept, f)
		}
	}
	s.faults = kept
}

// Faults lists the installed faults with their remaining counts.
func (s *Server) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, 0, len(s.faults))
	for _, f := range s.faults {
		v := f.Fault
		if f.Count > 0 {
			v.Count = f.left
		}
		out = append(out, v)
	}
	return out
}

// takeLocked consumes one hit of the first fault on key whose kind is accepted.
func (s *Server) takeLocked(key string, accept func(FaultKind) bool) *Fault {
	for i, f := range s.faults {
		if (f.Endpoint != key && f.Endpoint != "*") || !accept(f.Kind) {
			continue
		}
		f.hits++
		s.counts.Faults[f.Kind]++
		v := f.Fault
		if f.Count > 0 {
			f.left--
			if f.left <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return &v
	}
	return nil
}

// takeContentFault consumes a fault that a handler applies itself (no_refresh_token).
func (s *Server) takeContentFault(key string, kind FaultKind) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.takeLocked(key, func(k FaultKind) bool { return k == kind }) != nil
}

// instrument counts a request and applies the faults set for its endpoint around h.
func (s *Server) instrument(key string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived := time.Now()
		s.mu.Lock()
		s.counts.Requests[key]++
		// An injected latency fault is a slow network in front of the site: the request reaches the handler only
		// after it. The profile's latency is the site's response time, which includes the site's own work.
		var delay time.Duration
		if f := s.takeLocked(key, func(k FaultKind) bool { return k == FaultLatency }); f != nil {
			delay = time.Duration(f.Latency)
		}
		respond := s.latency.jittered(s.latency.delayFor(key))
		action := s.takeLocked(key, func(k FaultKind) bool {
			return k == FaultStatus || k == FaultRateLimit || k == FaultReset || k == FaultTruncate
		})
		s.mu.Unlock()

		// Injected faults and streamed bodies keep the whole delay before the handler: a stream's pace is set by
		// the profile's bandwidth from its first byte.
		hold := action == nil && respond > 0 && !streamedKey(key)
		if !hold {
			delay += respond
		}
		if backoff.Sleep(r.Context(), delay) != nil {
			return
		}
		var held *heldWriter
		if hold {
			held = &heldWriter{ResponseWriter: w, until: time.Now().Add(respond), ctx: r.Context()}
			w = held
		}
		sw := &statusWriter{ResponseWriter: w}
		search := strings.HasSuffix(key, "/search/jql")
		defer func() {
			s.mu.Lock()
			s.counts.status(key, sw.code())
			if search {
				s.counts.searched(Answer{Arrived: arrived, Answered: time.Now()})
			}
			s.mu.Unlock()
		}()
		if action == nil {
			h.ServeHTTP(sw, r)
			if held != nil {
				held.release() // not deferred: a handler that panics sends nothing
			}
			return
		}
		switch action.Kind {
		case FaultStatus:
			st := action.Status
			if st == 0 {
				st = http.StatusServiceUnavailable
			}
			if action.RetryAfter > 0 {
				sw.Header().Set("Retry-After", strconv.Itoa(action.RetryAfter))
			}
			writeJSON(sw, st, errorCollection("Simulated failure."))
		case FaultRateLimit:
			ra := int64(max(1, action.RetryAfter))
			reason := action.Reason
			if reason == "" {
				reason = ReasonBurst
			}
			now := s.clock.Now()
			d := &denial{reason: reason, retryAfter: ra, limit: 100, reset: now.Add(time.Duration(ra) * time.Second), policy: reason, window: 1}
			d.writeHeaders(sw.Header())
			writeJSON(sw, http.StatusTooManyRequests, errorCollection("Rate limit exceeded."))
		case FaultReset:
			sw.status = -1
			panic(http.ErrAbortHandler) // net/http closes the connection without a response
		case FaultTruncate:
			h.ServeHTTP(&truncatingWriter{statusWriter: sw}, r)
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// truncatingWriter passes half of the declared Content-Length, then aborts the connection, so the client sees
// an unexpected EOF.
type truncatingWriter struct {
	*statusWriter
	limit   int64
	written int64
	armed   bool
}

func (w *truncatingWriter) WriteHeader(code int) {
	if cl, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); err == nil && cl > 0 {
		w.limit, w.armed = cl/2, true
	}
	w.statusWriter.WriteHeader(code)
}

func (w *truncatingWriter) Write(b []byte) (int, error) {
	if !w.armed {
		return w.statusWriter.Write(b)
	}
	room := w.limit - w.written
	if int64(len(b)) <= room {
		n, err := w.statusWriter.Write(b)
		w.written += int64(n)
		return n, err
	}
	n, _ := w.statusWriter.Write(b[:room])
	w.written += int64(n)
	w.Flush()
	panic(http.ErrAbortHandler)
}
