// Package atlassiansim simulates the parts of Atlassian Cloud that the export connector talks to: the OAuth 2.0 (3LO)
// authorization server with rotating refresh tokens, accessible-resources, the api.atlassian.com gateway in front of
// Jira REST v3, the media host that serves attachment downloads, the points-based and burst rate limits, and faults.
//
// One Server answers every Atlassian host from one base URL, so the product's ATLASSIAN_AUTH_URL and
// ATLASSIAN_API_URL are both set to Server.URL(). The control API lives under /_sim/ (see admin.go and README.md).
package atlassiansim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Clock is the simulator's source of time. Token lifetimes, code expiry, quota windows, burst buckets and generated
// timestamps all read it, so tests drive them with a ManualClock instead of sleeping.
type Clock interface {
	Now() time.Time
}

// AdjustableClock is a Clock that the control API can move.
type AdjustableClock interface {
	Clock
	Advance(d time.Duration)
	Set(t time.Time)
}

// ManualClock stands still until a test moves it.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock returns a clock showing t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{t: t} }

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// OffsetClock follows the wall clock shifted by an adjustable offset: the standalone command uses it so that
// `/_sim/clock/advance` can jump past token and quota expiries while time keeps flowing.
type OffsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns wall-clock time plus the offset.
func (c *OffsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance adds d to the offset.
func (c *OffsetClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Set makes Now return t at this instant.
func (c *OffsetClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = time.Until(t)
}

// Config sets up a Server. The zero value is usable: every zero field takes the default named in its comment.
type Config struct {
	// Seed makes the generated data deterministic (same seed, same sites, users, issues and attachment bytes).
	Seed int64

	// Sites is the number of Jira sites (cloud ids); default 2.
	Sites int
	// ProjectsPerSite defaults to 2.
	ProjectsPerSite int
	// IssuesPerProject defaults to 30.
	IssuesPerProject int
	// Users is the number of regular users across all sites (plus one `unknown` and one app user); default 6.
	Users int
	// MaxComments is the most comments one issue gets; some issues get exactly this many. Default 30, above the
	// 20 that search embeds, so paging comments is exercised.
	MaxComments int
	// MaxChangelog is the most changelog entries one issue gets; default 50, above the 40 that bulkfetch embeds.
	MaxChangelog int
	// MaxAttachmentSize bounds the generated attachment sizes; default 256 KiB.
	MaxAttachmentSize int64
	// LargeAttachmentSize, when positive, adds one attachment of exactly this many bytes to the oldest issue of the
	// first site (for example 1<<30). Its bytes are generated on the fly and cost no memory.
	LargeAttachmentSize int64
	// MaxWorklogs is the number of worklogs on the issues of ManyWorklogsShare; default 25, above the 20 that an
	// issue embeds, so paging GET .../worklog is exercised.
	MaxWorklogs int

	// Shares of issues, each in [0,1], decided per issue from the seed: with attachments (1-3 each; default 0.6),
	// with MaxComments comments (beyond the embedded page of 20; default 0.15), with MaxChangelog changelog entries
	// (default 0.2), with MaxWorklogs worklogs (default 0.1). Zero takes the default; a negative value means none.
	AttachmentShare    float64
	ManyCommentsShare  float64
	LongChangelogShare float64
	ManyWorklogsShare  float64

	// Latency adds real-world response times (LatencyWAN); the zero value adds none.
	Latency LatencyProfile

	// ClientID and ClientSecret of the one registered OAuth app; defaults "sim-client-id" / "sim-client-secret".
	ClientID     string
	ClientSecret string
	// RedirectURIs are the callback URLs registered for the app, matched exactly.
	RedirectURIs []string

	// Clock defaults to the wall clock (an OffsetClock).
	Clock Clock

	// RateLimits configures the points quota and the burst buckets.
	RateLimits RateLimitConfig

	// TestControls enables the header-driven consent switch on /authorize (X-Sim-Consent, X-Sim-User).
	TestControls bool

	// Faults are installed at start; more can be added with SetFault or POST /_sim/faults.
	Faults []Fault

	// ConsistencyDelay, when positive, keeps search, count and JQL matching on an issue's previous state for this
	// long after a mutation (Jira's index is eventually consistent); reconcileIssues sees the new state at once.
	ConsistencyDelay time.Duration

	// Logger defaults to a discarding logger.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Sites <= 0 {
		c.Sites = 2
	}
	if c.ProjectsPerSite <= 0 {
		c.ProjectsPerSite = 2
	}
	if c.IssuesPerProject <= 0 {
		c.IssuesPerProject = 30
	}
	if c.Users <= 0 {
		c.Users = 6
	}
	if c.MaxComments <= 0 {
		c.MaxComments = 30
	}
	if c.MaxChangelog <= 0 {
		c.MaxChangelog = 50
	}
	if c.MaxAttachmentSize <= 0 {
		c.MaxAttachmentSize = 256 << 10
	}
	if c.MaxWorklogs <= 0 {
		c.MaxWorklogs = 25
	}
	share := func(v *float64, def float64) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = 0
		case *v > 1:
			*v = 1
		}
	}
	share(&c.AttachmentShare, 0.6)
	share(&c.ManyCommentsShare, 0.15)
	share(&c.LongChangelogShare, 0.2)
	share(&c.ManyWorklogsShare, 0.1)
	if c.ClientID == "" {
		c.ClientID = "sim-client-id"
	}
	if c.ClientSecret == "" {
		c.ClientSecret = "sim-client-secret"
	}
	if c.Clock == nil {
		c.Clock = &OffsetClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.RateLimits.setDefaults()
}

// Server is one simulated Atlassian Cloud. All its methods are safe for concurrent use.
type Server struct {
	cfg       Config
	clock     Clock
	log       *slog.Logger
	mediaKey  []byte
	cursorKey []byte
	handler   http.Handler

	mu        sync.Mutex // guards everything below
	base      string     // externally visible base URL, no trailing slash
	mediaBase string     // the media host's base URL; "" = served under base + "/media" (Handler without Start)
	mediaRefs map[string]mediaRef
	latency   LatencyProfile
	data      *dataset
	auth      *authState
	limits    *limiter
	faults    []*faultEntry
	counts    *counters

	httpSrv  *http.Server
	ln       net.Listener
	mediaSrv *http.Server
}

// New builds a Server with its generated data.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Sites > 50 || cfg.ProjectsPerSite > 50 || cfg.Users > 10000 || cfg.IssuesPerProject > 1_000_000 ||
		cfg.ProjectsPerSite*cfg.IssuesPerProject > 5_000_000 || cfg.MaxComments > 10000 || cfg.MaxChangelog > 10000 || cfg.MaxWorklogs > 10000 {
		return nil, errors.New("atlassiansim: size out of range (sites ≤ 50, projects per site ≤ 50, users ≤ 10000, issues per project ≤ 1e6, issues per site ≤ 5e6, comments, changelog entries, worklogs per issue ≤ 10000)")
	}
	for _, f := range cfg.Faults {
		if err := f.validate(); err != nil {
			return nil, err
		}
	}
	s := &Server{
		cfg:       cfg,
		clock:     cfg.Clock,
		log:       cfg.Logger,
		mediaKey:  randomBytes(32),
		cursorKey: randomBytes(32),
		base:      "http://sim.invalid",
		auth:      newAuthState(),
		counts:    newCounters(),
		mediaRefs: map[string]mediaRef{},
		latency:   cfg.Latency,
	}
	s.data = generate(&s.cfg, cfg.Clock.Now())
	s.limits = newLimiter(cfg.RateLimits)
	for _, f := range cfg.Faults {
		s.faults = append(s.faults, &faultEntry{Fault: f, left: f.Count})
	}
	s.handler = adminGuard(s.routes())
	return s, nil
}

// Handler serves every simulated host. Requests reaching it directly (not through Start) build URLs from
// SetBaseURL's value.
func (s *Server) Handler() http.Handler { return s.handler }

// SetBaseURL sets the externally visible base URL used in redirects, `self` links and media URLs. Start sets it.
func (s *Server) SetBaseURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base = strings.TrimRight(u, "/")
}

// URL returns the base URL, for the product's ATLASSIAN_AUTH_URL and ATLASSIAN_API_URL.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.base
}

// MediaURL returns the media host's base URL (api.media.atlassian.com's stand-in): another listener, reached by
// another loopback host name (http://localhost:<port> beside http://127.0.0.1:<port>), so an HTTP client following
// the attachment 303 crosses hosts and drops Authorization, as in production. Empty before Start unless
// SetMediaURL was called.
func (s *Server) MediaURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mediaBase
}

// SetMediaURL sets the media host's externally visible base URL, for callers that mount MediaHandler themselves.
// Start sets it.
func (s *Server) SetMediaURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mediaBase = strings.TrimRight(u, "/")
}

// MediaHandler serves the media host (GET /file/{uuid}/binary). Start serves it on its own listener.
func (s *Server) MediaHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /file/{uuid}/binary", s.instrument(KeyMedia, http.HandlerFunc(s.handleMedia)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "NotFound", "title": "Not found"}})
	})
	return mux
}

// Start listens on addr (default "127.0.0.1:0"; only loopback addresses are accepted) for the Atlassian hosts
// and on another port of the same address for the media host, serves in the background until ctx ends or Close
// is called, and returns the base URL. MediaURL returns the media host's.
func (s *Server) Start(ctx context.Context, addr string) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := checkLoopback(addr); err != nil {
		return "", err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("atlassiansim: listen %s: %w", addr, err)
	}
	// The media host needs another host name, not just another port: HTTP clients decide whether to keep
	// Authorization on a redirect by host name (Go's net/http compares hostnames, ignoring ports). So the media
	// listener is advertised as "localhost" when the API is on an IP literal, and as 127.0.0.1 when the API was
	// given as localhost.
	apiHost, _, _ := net.SplitHostPort(ln.Addr().String())
	mediaListen, mediaHost := apiHost, "localhost"
	if h, _, _ := net.SplitHostPort(addr); h == "localhost" {
		mediaListen, mediaHost = "127.0.0.1", "127.0.0.1"
	}
	mln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort(mediaListen, "0"))
	if err != nil {
		_ = ln.Close()
		return "", fmt.Errorf("atlassiansim: listen for the media host on %s: %w", mediaListen, err)
	}
	_, mediaPort, _ := net.SplitHostPort(mln.Addr().String())
	newSrv := func(h http.Handler) *http.Server {
		return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
			BaseContext: func(net.Listener) context.Context { return ctx }}
	}
	srv, msrv := newSrv(s.handler), newSrv(s.MediaHandler())
	u := "http://" + ln.Addr().String()
	s.mu.Lock()
	s.base = u
	s.mediaBase = "http://" + net.JoinHostPort(mediaHost, mediaPort)
	s.httpSrv = srv
	s.mediaSrv = msrv
	s.ln = ln
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	go func() { _ = msrv.Serve(mln) }()
	go func() {
		<-ctx.Done()
		_ = s.Close()
	}()
	return u, nil
}

// Close stops a server started with Start. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	srv, msrv := s.httpSrv, s.mediaSrv
	s.httpSrv, s.mediaSrv = nil, nil
	s.mu.Unlock()
	var errs []error
	for _, x := range []*http.Server{srv, msrv} {
		if x == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := x.Shutdown(ctx); err != nil {
			errs = append(errs, x.Close())
		}
		cancel()
	}
	return errors.Join(errs...)
}

// checkLoopback refuses to bind anything but a loopback address: the simulator must never be reachable from the
// network.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("atlassiansim: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("atlassiansim: listen address %q is not loopback", addr)
	}
	return nil
}

// AdvanceClock moves an adjustable clock forward. It fails when the configured Clock cannot be moved.
func (s *Server) AdvanceClock(d time.Duration) error {
	c, ok := s.clock.(AdjustableClock)
	if !ok {
		return errors.New("atlassiansim: clock is not adjustable")
	}
	c.Advance(d)
	return nil
}

// SetClock moves an adjustable clock to t.
func (s *Server) SetClock(t time.Time) error {
	c, ok := s.clock.(AdjustableClock)
	if !ok {
		return errors.New("atlassiansim: clock is not adjustable")
	}
	c.Set(t)
	return nil
}

// Now returns the simulator's current time.
func (s *Server) Now() time.Time { return s.clock.Now() }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

// adminGuard protects the control API from web pages open in the developer's browser while the simulator runs:
//   - DNS rebinding: a page on evil.example whose name is re-pointed at 127.0.0.1 talks to the simulator as a
//     same-origin peer, but its requests still carry Host: evil.example. The control API answers only requests
//     whose Host is a loopback address (or localhost) and whose Origin, when sent, is a loopback origin too.
//   - Cross-site simple POSTs (form or text/plain) need no CORS preflight; requiring application/json forces
//     one, which the simulator never grants. Other methods always need one.
func adminGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_sim/") {
			if !loopbackHost(r.Host) || !loopbackOrigin(r.Header.Get("Origin")) {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "the control API answers loopback hosts and origins only"})
				return
			}
			if r.Method == http.MethodPost {
				if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
					writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "the control API takes application/json"})
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names a loopback address or localhost (any port).
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackOrigin accepts no Origin (curl, Go clients) or an http origin on a loopback host; "null" and every
// other origin are foreign.
func loopbackOrigin(origin string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "http" || u.Path != "" {
		return false
	}
	return loopbackHost(u.Host)
}
