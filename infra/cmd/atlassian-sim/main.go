// Command atlassian-sim runs the Atlassian Cloud simulator (OAuth 2.0 3LO, accessible-resources, the Jira REST v3
// gateway, the media host and the /_sim control API) on a loopback address and prints its base URL.
//
// Point the product's ATLASSIAN_AUTH_URL and ATLASSIAN_API_URL at that URL. See infra/atlassiansim/README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"jiraexport/infra/atlassiansim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

const usageHead = `Usage: atlassian-sim [flags]

Runs the Atlassian Cloud simulator on a loopback address and prints its base URL on stdout (one line).
Set the product's ATLASSIAN_AUTH_URL and ATLASSIAN_API_URL to it. The control API is under <url>/_sim/.
Stops on SIGINT or SIGTERM.

Flags:
`

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("atlassian-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprint(fs.Output(), usageHead) // like fs.PrintDefaults: a failed write of the usage has nowhere to go
		fs.PrintDefaults()
	}
	// complain writes a diagnostic to stderr; when even that fails there is nowhere left to report it, and the
	// exit code still says what happened.
	complain := func(format string, a ...any) { _, _ = fmt.Fprintf(stderr, "atlassian-sim: "+format+"\n", a...) }
	var (
		listen       = fs.String("listen", "127.0.0.1:0", "listen address; loopback only")
		urlFile      = fs.String("url-file", "", "also write the base URL to this file")
		seed         = fs.Int64("seed", 1, "seed of the generated data")
		sites        = fs.Int("sites", 2, "number of Jira sites")
		projects     = fs.Int("projects", 2, "projects per site")
		issues       = fs.Int("issues", 30, "issues per project")
		users        = fs.Int("users", 6, "regular users (an app user and the `unknown` user are added)")
		maxComments  = fs.Int("max-comments", 30, "most comments on one issue (search embeds 20)")
		maxChangelog = fs.Int("max-changelog", 50, "most changelog entries on one issue (bulkfetch embeds 40)")
		maxAttach    = fs.Int64("max-attachment-size", 256<<10, "largest generated attachment, bytes")
		largeAttach  = fs.Int64("large-attachment-size", 0, "add one attachment of exactly this many bytes (e.g. 1073741824) to the oldest issue; streamed, costs no memory")
		maxWorklogs  = fs.Int("max-worklogs", 25, "worklogs on the issues of -many-worklogs-share (an issue embeds 20)")
		attShare     = fs.Float64("attachment-share", 0.6, "share of issues with attachments (0..1; negative = none)")
		commentShare = fs.Float64("many-comments-share", 0.15, "share of issues with -max-comments comments, beyond one page (0..1; negative = none)")
		clShare      = fs.Float64("long-changelog-share", 0.2, "share of issues with -max-changelog changelog entries (0..1; negative = none)")
		wlShare      = fs.Float64("many-worklogs-share", 0.1, "share of issues with -max-worklogs worklogs (0..1; negative = none)")
		latency      = fs.String("latency", "none", "latency profile: none, or wan (search ~300 ms, GETs ~80 ms, media first byte ~150 ms, 40 MiB/s, ±25 % jitter)")
		clientID     = fs.String("client-id", "sim-client-id", "OAuth client id of the one registered app")
		clientSecret = fs.String("client-secret", "sim-client-secret", "OAuth client secret")
		globalPoints = fs.Int64("global-points", 65000, "Tier 1 points per hour shared by all tenants; negative = unlimited")
		tenantPoints = fs.Int64("tenant-points", 0, "Tier 2 points per hour per tenant; 0 = no tenant pool")
		burstScale   = fs.Float64("burst-scale", 1, "multiplier on Atlassian's default per-second burst rates")
		noBurst      = fs.Bool("no-burst", false, "turn the per-second burst buckets off")
		noLimits     = fs.Bool("no-rate-limits", false, "turn every rate limit off")
		testControls = fs.Bool("test-controls", false, "let /authorize consent from the X-Sim-Consent / X-Sim-User headers (scripts, tests)")
		consistency  = fs.Duration("consistency-delay", 0, "search index lag after a mutation (eventual consistency)")
		redirects    listFlag
		bursts       listFlag
		faults       listFlag
	)
	fs.Var(&redirects, "redirect-uri", "registered OAuth callback URL, matched exactly (repeatable)")
	fs.Var(&bursts, "burst", `per-endpoint burst rate override "METHOD /path=rps", e.g. "GET /rest/api/3/issue/{issueIdOrKey}=5" (repeatable)`)
	fs.Var(&faults, "fault", `fault as JSON, e.g. '{"endpoint":"POST /oauth/token","kind":"status","status":503,"count":2}' (repeatable; kinds: latency, status, rate_limit, reset, truncate, no_refresh_token)`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		complain("unexpected arguments %q", fs.Args())
		return 2
	}

	prof, err := atlassiansim.LatencyProfileNamed(*latency)
	if err != nil {
		complain("-latency: %v", err)
		return 2
	}
	zeroIsNone := func(v float64) float64 {
		if v == 0 {
			return -1 // the flag's 0 means none; Config's 0 means the default
		}
		return v
	}
	cfg := atlassiansim.Config{
		Seed: *seed, Sites: *sites, ProjectsPerSite: *projects, IssuesPerProject: *issues, Users: *users,
		MaxComments: *maxComments, MaxChangelog: *maxChangelog, MaxAttachmentSize: *maxAttach, LargeAttachmentSize: *largeAttach,
		MaxWorklogs: *maxWorklogs, AttachmentShare: zeroIsNone(*attShare), ManyCommentsShare: zeroIsNone(*commentShare),
		LongChangelogShare: zeroIsNone(*clShare), ManyWorklogsShare: zeroIsNone(*wlShare), Latency: prof,
		ClientID: *clientID, ClientSecret: *clientSecret, TestControls: *testControls, ConsistencyDelay: *consistency,
		Clock:  &atlassiansim.OffsetClock{},
		Logger: slog.New(slog.NewTextHandler(stderr, nil)),
		RateLimits: atlassiansim.RateLimitConfig{Disabled: *noLimits, GlobalPointsPerHour: *globalPoints,
			TenantPointsPerHour: *tenantPoints, BurstScale: *burstScale, NoBurst: *noBurst},
	}
	for _, r := range redirects {
		for _, u := range strings.Split(r, ",") {
			if u = strings.TrimSpace(u); u != "" {
				cfg.RedirectURIs = append(cfg.RedirectURIs, u)
			}
		}
	}
	for _, b := range bursts {
		i := strings.LastIndex(b, "=")
		rps, err := strconv.ParseFloat(b[i+1:], 64)
		if i < 0 || err != nil {
			complain("-burst %q: want \"METHOD /path=rps\"", b)
			return 2
		}
		if cfg.RateLimits.BurstRPS == nil {
			cfg.RateLimits.BurstRPS = map[string]float64{}
		}
		cfg.RateLimits.BurstRPS[strings.TrimSpace(b[:i])] = rps
	}
	for _, fv := range faults {
		var f atlassiansim.Fault
		dec := json.NewDecoder(strings.NewReader(fv))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			complain("-fault %q: %v", fv, err)
			return 2
		}
		cfg.Faults = append(cfg.Faults, f)
	}

	sim, err := atlassiansim.New(cfg)
	if err != nil {
		complain("%v", err)
		return 2
	}
	url, err := sim.Start(ctx, *listen)
	if err != nil {
		complain("%v", err)
		return 2
	}
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile, []byte(url+"\n"), 0o644); err != nil {
			complain("writing %s: %v", *urlFile, err)
			_ = sim.Close()
			return 1
		}
	}
	// The parent reads the URL from stdout: a simulator that cannot say where it listens is of no use.
	if _, err := fmt.Fprintln(stdout, url); err != nil {
		complain("writing the URL: %v", err)
		_ = sim.Close()
		return 1
	}
	cfg.Logger.Info("atlassian-sim ready", "url", url, "mediaUrl", sim.MediaURL(), "sites", *sites, "issuesPerSite", *projects**issues,
		"latency", prof.Name, "testControls", *testControls)
	<-ctx.Done()
	if err := sim.Close(); err != nil {
		complain("shutdown: %v", err)
		return 1
	}
	return 0
}
