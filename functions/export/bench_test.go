package main

// The export benchmark of issue 13: the real ExportFunction bootstrap, in its own process under the Lambda
// Runtime Interface Emulator (so the peak RSS read from /proc is the export's alone), exports a 10,000-issue
// simulated site over the WAN latency profile with Atlassian's default burst buckets and quota, then runs again
// with nothing changed. Figures, the floor arithmetic and the targets are reported as benchmark metrics and, when
// EXPORT_BENCH_MD names a file, as a Markdown section that infra/bench.sh puts into BENCHMARKS.md.
//
// Alone: see benchCommand below (the lead's command), or `make bench` for every benchmark.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/oauth2"
	"golang.org/x/sync/errgroup"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/lambdarun"
	"jiraexport/infra/stacktest"
	"jiraexport/shared/access"
	"jiraexport/shared/attachments"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/jira"
)

const (
	benchSecret  = "xbench-client-secret-0123456789abcdef"
	benchCommand = "AWS_LAMBDA_RIE=$PWD/.build/tools/aws-lambda-rie .build/tools/localstack run -- " +
		"env EXPORT_BENCH_MD=/tmp/export-bench.md go test -run '^$' -bench '^BenchmarkExportSite$' -benchtime 1x -timeout 30m ./functions/export/"
	// Embedded page sizes of /search/jql (Atlassian's migration guide: 20 comments, 20 changelog entries).
	embeddedComments  = 20
	embeddedChangelog = 20
	searchPath        = "/rest/api/3/search/jql"
	attContentKey     = "GET /rest/api/3/attachment/content/{id}"
)

// benchSite is issue 13's site: 10,000 issues in two projects, 10 % with attachments (one of 1 GiB), 5 % with
// comments beyond the embedded page, Atlassian's default burst buckets and quota, the WAN latency profile.
// EXPORT_BENCH_ISSUES (issues per project) and EXPORT_BENCH_LARGE_MIB shrink it for a quick check of the harness;
// the report states the site it measured.
func benchSite(b *testing.B) atlassiansim.Config {
	cfg := atlassiansim.Config{Seed: 1313, Sites: 1, ProjectsPerSite: 2, IssuesPerProject: 5000, Users: 6,
		MaxComments: 30, AttachmentShare: 0.1, ManyCommentsShare: 0.05, LongChangelogShare: -1, ManyWorklogsShare: -1,
		LargeAttachmentSize: 1 << 30, Latency: atlassiansim.LatencyWAN, ClientSecret: benchSecret}
	for name, dst := range map[string]*int64{"EXPORT_BENCH_LARGE_MIB": &cfg.LargeAttachmentSize} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				b.Fatalf("%s=%q, want a positive number", name, v)
			}
			*dst = n << 20
		}
	}
	if v := os.Getenv("EXPORT_BENCH_ISSUES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("EXPORT_BENCH_ISSUES=%q, want a positive number", v)
		}
		cfg.IssuesPerProject = n
	}
	return cfg
}

// runFigures is what one run measured.
type runFigures struct {
	name        string
	wall        time.Duration
	invocations int
	issues      int64 // in scope: the issues the connector's JQL selects (the mirror's size after the run)
	searched    int64 // the issues the run's search returned (the incremental run's overlap window)
	reqs        map[string]int64
	points      map[string]int64
	totalPoints int64
	totalReqs   int64
	mediaReqs   int64
	bytesServed int64
	rssKiB      int64
	cpu         time.Duration // the export process's CPU time (user + system)
	load        string        // the host's load averages when the run ended
	largeMBps   float64       // the 1 GiB attachment's copy inside the export (0: not copied by this run)
	host        hostCPU       // the host's CPU use during the run, in all and by process
	documentsAt time.Duration // when the run's record first counted every issue done (search and documents)
	status      connectors.RunStatus
	chain       chainFigures
}

// chainFigures split the search chain's time, from the simulator's timeline of search answers: the time Jira took to
// answer each page, and the time between one answer and the next request (the export's own work on the chain),
// during the large attachment's copy and after it.
type chainFigures struct {
	pages                 int
	answering, between    time.Duration
	largeAt               time.Duration // when the large attachment's copy ended, from the run's start (0: none)
	pagesDuring           int           // pages asked for before largeAt
	answeringDuring       time.Duration
	betweenDuring         time.Duration
	spanDuring, spanAfter time.Duration // wall time of the chain before and after largeAt
}

func chainOf(tl []atlassiansim.Answer, start, largeEnd time.Time) chainFigures {
	c := chainFigures{pages: len(tl)}
	if !largeEnd.IsZero() {
		c.largeAt = largeEnd.Sub(start)
	}
	slices.SortFunc(tl, func(a, b atlassiansim.Answer) int { return a.Arrived.Compare(b.Arrived) })
	for i, a := range tl {
		during := !largeEnd.IsZero() && a.Arrived.Before(largeEnd)
		took := a.Answered.Sub(a.Arrived)
		c.answering += took
		var gap time.Duration
		if i > 0 {
			gap = max(a.Arrived.Sub(tl[i-1].Answered), 0)
		}
		c.between += gap
		if during {
			c.pagesDuring++
			c.answeringDuring += took
			c.betweenDuring += gap
		}
	}
	if len(tl) > 0 {
		first, last := tl[0].Arrived, tl[len(tl)-1].Answered
		if !largeEnd.IsZero() {
			c.spanDuring = max(min(largeEnd.Sub(first), last.Sub(first)), 0)
		}
		c.spanAfter = last.Sub(first) - c.spanDuring
	}
	return c
}

func category(key string) string {
	switch {
	case strings.Contains(key, searchPath):
		return "search"
	case strings.HasSuffix(key, "/comment"), strings.HasSuffix(key, "/changelog"), strings.HasSuffix(key, "/worklog"),
		strings.HasSuffix(key, "/changelog/bulkfetch"):
		return "children"
	case strings.Contains(key, "/attachment/"):
		return "attachments"
	}
	return "other"
}

// floor is the fewest points and the shortest time the site's data allows.
type floor struct {
	issues, pages, childPages, childObjects, attachments int64
	attBytes, largest                                    int64
	points, requests                                     int64
	chain, burst, quota, media, time                     time.Duration
	burstKey, binding                                    string
}

func computeFloor(shapes []atlassiansim.IssueShape, withChangelog bool, limits atlassiansim.RateLimitConfig, lat atlassiansim.LatencyProfile) floor {
	var f floor
	perBucket := map[string]int64{}
	rest := func(total, embedded int, key string) {
		if missing := total - embedded; missing > 0 {
			pages := int64((missing + jira.CommentsMax - 1) / jira.CommentsMax)
			f.childPages += pages
			f.childObjects += int64(missing)
			perBucket[key] += pages
		}
	}
	for _, s := range shapes {
		f.issues++
		rest(s.Comments, embeddedComments, "GET /rest/api/3/issue/{issueIdOrKey}/comment")
		if withChangelog {
			rest(s.Changelog, embeddedChangelog, "GET /rest/api/3/issue/{issueIdOrKey}/changelog")
		}
		for _, a := range s.Attachments {
			f.attachments++
			f.attBytes += a.Size
			f.largest = max(f.largest, a.Size)
		}
	}
	f.pages = (f.issues + jira.SearchMaxFull - 1) / jira.SearchMaxFull
	perBucket["POST "+searchPath] += f.pages
	perBucket[attContentKey] += f.attachments
	// 1 per request + 1 per issue, child or attachment object returned (the 303 of attachment/content counts its
	// attachment); the media download itself is free.
	f.points = f.pages + f.issues + f.childPages + f.childObjects + 2*f.attachments
	f.requests = f.pages + f.childPages + f.attachments
	// The search is a chain: each page's cursor comes with the previous page.
	f.chain = time.Duration(f.pages) * time.Duration(lat.Search)
	for k, n := range perBucket {
		if d := time.Duration(float64(n) / limits.BurstRate(k) * float64(time.Second)); d > f.burst {
			f.burst, f.burstKey = d, k
		}
	}
	// The quota binds only past one hour's worth: every full hour beyond the first costs a wait to the reset.
	if q := limits.GlobalPointsPerHour; q > 0 && f.points > q {
		f.quota = time.Duration(f.points/q) * time.Hour
	}
	if lat.MediaBytesPerSecond > 0 {
		f.media = time.Duration(lat.MediaFirstByte) + time.Duration(float64(f.largest)/float64(lat.MediaBytesPerSecond)*float64(time.Second))
	}
	f.time, f.binding = f.chain, "search chain"
	for _, c := range []struct {
		d    time.Duration
		name string
	}{{f.burst, "burst bucket " + f.burstKey}, {f.quota, "hourly quota"}, {f.media, "largest attachment's stream"}} {
		if c.d > f.time {
			f.time, f.binding = c.d, c.name
		}
	}
	return f
}

func BenchmarkExportSite(b *testing.B) {
	stacktest.SkipIfShort(b, "the export bootstrap under the Lambda emulator, the local AWS stack and the simulator")
	if runtime.GOOS != "linux" {
		b.Skip("peak RSS is read from /proc")
	}
	// The simulator runs in this process, on the host's cores that the export, moto and DynamoDB Local share. Its
	// collector's work (about 6 s of CPU in the full run with Go's default) is the local stack's cost, not the
	// product's: it gets room to collect less often. Its heap is small (the site's skeletons and a few pages).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	env := stacktest.New(b, stacktest.Options{SecretValues: map[string]string{"AtlassianClientSecret": benchSecret}})
	cfg := benchSite(b)
	sim, err := atlassiansim.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	simURL, err := sim.Start(ctx, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sim.Close() })
	site := sim.Sites()[0]
	user := sim.ConsentingUsers()[0].AccountID
	db := env.Clients.DynamoDB
	conns := connections.NewStore(db, env.Table)
	store := connectors.NewStore(db, env.Table)
	oauthCfg := &oauth2.Config{ClientID: "sim-client-id", ClientSecret: benchSecret,
		Endpoint: oauth2.Endpoint{AuthURL: simURL + "/authorize", TokenURL: simURL + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	tok := access.Tokens(access.Config{DB: db, KMS: kms.NewFromConfig(env.AWS), Table: env.Table, TokenKeyID: env.TokenKeyARN,
		FlagOnly: true, OAuth: oauthCfg})
	conn := &connections.Connection{ID: connections.NewID(), Status: connections.StatusActive, GrantStartedAt: time.Now().UTC(),
		Sites: []connections.Site{{CloudID: site.CloudID, URL: site.URL, Name: site.Name, Scopes: []string{"read:jira-work"}}}}
	if err := conns.Create(ctx, conn); err != nil {
		b.Fatal(err)
	}
	tr, err := sim.IssueTokens(user, "read:jira-work", "read:jira-user", "offline_access")
	if err != nil {
		b.Fatal(err)
	}
	if err := tok.Put(ctx, conn.ID, (&oauth2.Token{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, TokenType: "Bearer",
		Expiry: time.Now().Add(time.Duration(tr.ExpiresIn) * time.Second)}).WithExtra(map[string]any{"scope": tr.Scope}), time.Time{}); err != nil {
		b.Fatal(err)
	}
	spec := connectors.Spec{Name: "bench", SiteID: site.CloudID, JQL: "project in (" + site.Projects[0].Key + ", " + site.Projects[1].Key + ")",
		Schedule: connectors.Schedule{Expression: "rate(1 day)", Timezone: "UTC"}, Formats: []string{"json"},
		Include: connectors.Include{Comments: true, Changelog: true, Attachments: connectors.Attachments{Enabled: true, MaxBytes: connectors.MaxAttachmentBytes}}}
	connector, err := store.Create(ctx, conn.ID, spec, time.Now().Add(24*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	shapes, err := sim.Shapes(site.CloudID)
	if err != nil {
		b.Fatal(err)
	}
	fl := computeFloor(shapes, spec.Include.Changelog, sim.RateLimits(), cfg.Latency)
	var largeID string
	for _, s := range shapes {
		for _, a := range s.Attachments {
			if a.Size == fl.largest {
				largeID = a.ID
			}
		}
	}

	// Each run gets a fresh execution environment (a cold start), so each peak RSS is that run's alone.
	start := func() *lambdarun.Function {
		over := map[string]string{"ATLASSIAN_CLIENT_ID": "sim-client-id", "ATLASSIAN_AUTH_URL": simURL, "ATLASSIAN_API_URL": simURL}
		return env.StartFunction(b, "ExportFunction", over)
	}
	var full, inc runFigures
	var plain float64
	b.ResetTimer()
	for range b.N {
		fn := start()
		full = benchRun(b, "full", fn, sim, store, conn.ID, connector.ID, largeID)
		saveLogs(b, fn, "full")
		_ = fn.Close()
		// The plain copy runs after the full run, alone on the stack: it measures what the media host and S3 give one
		// copy with nothing else running, so the export's copy (which shares the host with its own search, documents
		// and small attachments) is compared with the most a copy gets here, and the full run's wall time and CPU are
		// the export's alone.
		var err error
		if plain, err = plainCopy(ctx, env, sim, simURL, site.CloudID, user, largeID, fl.largest); err != nil {
			b.Fatal(err)
		}
		fn = start()
		inc = benchRun(b, "no change", fn, sim, store, conn.ID, connector.ID, largeID)
		saveLogs(b, fn, "nochange")
		_ = fn.Close()
	}
	b.StopTimer()
	// The no-change run's search returns only the issues inside its overlap window; its scope is the mirror.
	inc.searched, inc.issues = inc.issues, full.issues
	full.searched = full.issues
	probe := stackLatency(b, env)

	n := float64(full.issues)
	b.ReportMetric(full.wall.Seconds(), "full-s")
	b.ReportMetric(n/full.wall.Seconds(), "full-issues/s")
	b.ReportMetric(float64(full.totalPoints)/n, "full-points/issue")
	b.ReportMetric(float64(full.totalPoints)/float64(fl.points), "full-points/floor")
	b.ReportMetric(full.wall.Seconds()/fl.time.Seconds(), "full-time/floor")
	b.ReportMetric(float64(max(full.rssKiB, inc.rssKiB))/1024, "peak-RSS-MiB")
	b.ReportMetric(full.largeMBps, "att-MB/s")
	b.ReportMetric(plain, "plain-MB/s")
	b.ReportMetric(float64(inc.totalPoints)/float64(max(full.issues, 1)), "nochange-points/issue")
	b.ReportMetric(inc.wall.Seconds(), "nochange-s")
	if path := os.Getenv("EXPORT_BENCH_MD"); path != "" {
		memoryMB := 0
		fns, err := env.Tmpl.Functions()
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range fns {
			if f.LogicalID == "ExportFunction" {
				memoryMB = f.MemorySize
			}
		}
		if err := os.WriteFile(path, []byte(report(cfg, fl, full, inc, plain, probe, memoryMB)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRun starts a run and invokes the bootstrap as the dispatcher would until the run ends.
func benchRun(b *testing.B, name string, fn *lambdarun.Function, sim *atlassiansim.Server, store *connectors.Store, connID, connectorID, largeID string) runFigures {
	b.Helper()
	ctx := b.Context()
	sim.ResetCounters()
	logStart := len(fn.Logs())
	r, err := store.StartRun(ctx, connID, connectorID, connectors.TriggerManual)
	if err != nil {
		b.Fatal(err)
	}
	ref := connectors.RunRef{ConnectionID: connID, ConnectorID: connectorID, RunID: r.ID}
	payload, _ := json.Marshal(ref)
	f := runFigures{name: name}
	before := snapHostCPU()
	start := time.Now()
	// The run's progress, sampled from its record, tells when the search and the documents were done; what
	// follows is the attachment queue draining and the run's end.
	type sample struct {
		at   time.Duration
		done int64
	}
	var samples []sample
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-pollCtx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			if run, err := store.GetRun(pollCtx, connID, connectorID, r.ID); err == nil {
				samples = append(samples, sample{time.Since(start), run.Counters.IssuesDone})
			}
		}
	}()
	for {
		if f.invocations++; f.invocations > 50 {
			b.Fatalf("%s run did not finish in 50 invocations", name)
		}
		if _, err := fn.Invoke(ctx, payload); err != nil {
			b.Fatalf("%s run: invoke: %v", name, err)
		}
		run, err := store.GetRun(ctx, connID, connectorID, r.ID)
		if err != nil {
			b.Fatal(err)
		}
		if !run.Status.Active() {
			f.status, f.issues = run.Status, run.Counters.IssuesDone
			if run.Status != connectors.RunSucceeded {
				b.Fatalf("%s run = %s %v\n%s", name, run.Status, run.Errors, lastBytes(fn.Logs(), 4000))
			}
			break
		}
		if run.ResumeAfter != nil {
			time.Sleep(time.Until(*run.ResumeAfter))
		}
	}
	f.wall = time.Since(start)
	f.host = snapHostCPU().since(before)
	stopPoll()
	<-polled
	f.documentsAt = f.wall
	for _, sm := range samples {
		if sm.done >= f.issues {
			f.documentsAt = sm.at
			break
		}
	}
	f.rssKiB = vmHWM(b, bootstrapPID(fn))
	f.cpu = cpuTime(bootstrapPID(fn))
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		f.load = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	cs := sim.Counters()
	f.reqs, f.points = map[string]int64{}, map[string]int64{}
	for k, v := range cs.Requests {
		switch {
		case k == atlassiansim.KeyMedia:
			f.mediaReqs += v
		case strings.Contains(k, "/rest/api/"):
			f.reqs[category(k)] += v
			f.totalReqs += v
		}
	}
	for k, v := range cs.PointsByKey {
		f.points[category(k)] += v
	}
	f.totalPoints, f.bytesServed = cs.PointsTotal, cs.BytesServed
	var largeEnd time.Time
	f.largeMBps, largeEnd = largeCopyRate(fn.Logs()[logStart:], largeID)
	f.chain = chainOf(sim.SearchTimeline(), start, largeEnd)
	return f
}

// saveLogs keeps the function's log when EXPORT_BENCH_LOGS names a folder.
func saveLogs(b *testing.B, fn *lambdarun.Function, name string) {
	if dir := os.Getenv("EXPORT_BENCH_LOGS"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "export-"+name+".log"), []byte(fn.Logs()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// largeCopyRate reads the export's "attachment copied" log line of the large attachment: MB/s of its copy, and when
// it ended.
func largeCopyRate(logs, id string) (float64, time.Time) {
	var bytes, ms float64
	var end time.Time
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg   string    `json:"message"`
			ID    string    `json:"attachmentId"`
			Bytes float64   `json:"bytes"`
			MS    float64   `json:"ms"`
			At    time.Time `json:"timestamp"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "attachment copied" && l.ID == id {
			bytes += l.Bytes
			ms += l.MS
			end = l.At
		}
	}
	if ms == 0 {
		return 0, end
	}
	return bytes / 1e6 / (ms / 1000), end
}

// plainCopy copies the large attachment from the simulator to S3 the plain way (the 303, the media host, the
// transfer package's defaults), in this process, and returns MB/s.
func plainCopy(ctx context.Context, env *stacktest.Env, sim *atlassiansim.Server, simURL, cloudID, user, id string, size int64) (float64, error) {
	tr, err := sim.IssueTokens(user, "read:jira-work", "offline_access")
	if err != nil {
		return 0, err
	}
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, simURL+"/ex/jira/"+cloudID+"/rest/api/3/attachment/content/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loc == "" {
		return 0, fmt.Errorf("attachment content = %d, want a 303", resp.StatusCode)
	}
	mreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	media, err := http.DefaultClient.Do(mreq)
	if err != nil {
		return 0, err
	}
	defer func() { _ = media.Body.Close() }()
	// The transfer package's defaults, but its Complete gets the export's timeout (attachments.CompleteTimeout):
	// assembling 1 GiB can outlast the stack client's 15 s, and a retried Complete fails on the local S3.
	tm := transfermanager.New(attachments.CompleteSlowly(env.Clients.S3))
	if _, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("bench/plain-copy"),
		Body: media.Body, ServerSideEncryption: tmtypes.ServerSideEncryptionAwsKms, SSEKMSKeyID: aws.String(env.KeyARN)}); err != nil {
		return 0, err
	}
	return float64(size) / 1e6 / time.Since(start).Seconds(), nil
}

// stackProbe is the local stack's answer times, medians of n calls in sequence.
type stackProbe struct {
	n             int
	put, txn, get time.Duration
	putRate       float64 // 20 KB SSE-KMS PutObjects per second the local S3 takes from 8 writers at once
}

// stackLatency measures what the export's own writes cost on this host's stack: a 20 KB SSE-KMS PutObject (a
// document), a one-item TransactWriteItems (a checkpoint's shape) and a BatchGetItem (a page's index read).
func stackLatency(b *testing.B, env *stacktest.Env) stackProbe {
	b.Helper()
	ctx := b.Context()
	const n = 15
	median := func(f func(i int) error) time.Duration {
		var ds []time.Duration
		for i := range n {
			start := time.Now()
			if err := f(i); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[n/2]
	}
	body := make([]byte, 20<<10)
	key := func(i int) map[string]ddbtypes.AttributeValue {
		return map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "BENCH#probe"},
			"sk": &ddbtypes.AttributeValueMemberS{Value: strconv.Itoa(i)}}
	}
	pr := stackProbe{n: n}
	pr.put = median(func(i int) error {
		_, err := env.Clients.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("bench/probe/" + strconv.Itoa(i)),
			Body: bytes.NewReader(body), ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(env.KeyARN)})
		return err
	})
	// Throughput, with the export's document concurrency: the most documents per second this host's S3 takes.
	const rateN, writers = 400, 8
	var next atomic.Int64
	var g errgroup.Group
	start := time.Now()
	for range writers {
		g.Go(func() error {
			for i := next.Add(1); i <= rateN; i = next.Add(1) {
				if _, err := env.Clients.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(env.Bucket),
					Key: aws.String("bench/rate/" + strconv.FormatInt(i, 10)), Body: bytes.NewReader(body),
					ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(env.KeyARN)}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	pr.putRate = rateN / time.Since(start).Seconds()
	pr.txn = median(func(i int) error {
		item := key(i)
		item["connId"] = &ddbtypes.AttributeValueMemberS{Value: "bench"}
		_, err := env.Clients.DynamoDB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
			{Put: &ddbtypes.Put{TableName: aws.String(env.Table), Item: item}}}})
		return err
	})
	pr.get = median(func(i int) error {
		_, err := env.Clients.DynamoDB.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]ddbtypes.KeysAndAttributes{
			env.Table: {Keys: []map[string]ddbtypes.AttributeValue{key(i)}}}})
		return err
	})
	return pr
}

// bootstrapPID is the emulator's child: the function's bootstrap (0 before the first invocation started it).
func bootstrapPID(fn *lambdarun.Function) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", fn.PID()))
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(raw)) {
			if pid, err := strconv.Atoi(f); err == nil {
				if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); filepath.Base(exe) == "bootstrap" {
					return pid
				}
			}
		}
	}
	return 0
}

// cpuTime is a process's user + system CPU time (/proc/<pid>/stat, in clock ticks of 1/100 s on Linux).
func cpuTime(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; the fields after its closing parenthesis are fixed: utime is the 12th.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// hostCPU is CPU time spent on the host: in all (busy and available, from /proc/stat), and by process role.
type hostCPU struct {
	busy, capacity time.Duration
	byRole         map[string]time.Duration
}

// roles names the processes of the local stack by what they are in this benchmark.
func role(comm string, pid int) string {
	switch {
	case pid == os.Getpid():
		return "simulator and benchmark harness (this test process)"
	case comm == "bootstrap":
		return "export (bootstrap)"
	case strings.HasPrefix(comm, "moto"):
		return "S3 and KMS (moto_server)"
	case comm == "java":
		return "DynamoDB Local (java)"
	case strings.HasPrefix(comm, "aws-lambda-rie"):
		return "Lambda emulator (aws-lambda-rie)"
	case comm == "localstack":
		return "stack supervisor and moto's TLS front (localstack)"
	}
	return "other"
}

func snapHostCPU() hostCPU {
	h := hostCPU{byRole: map[string]time.Duration{}}
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		// cpu  user nice system idle iowait irq softirq steal ... (clock ticks of 1/100 s)
		f := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0])
		var v [8]int64
		for i := range v {
			if i+1 < len(f) {
				v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
			}
		}
		busy := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
		h.busy, h.capacity = time.Duration(busy)*10*time.Millisecond, time.Duration(busy+v[3]+v[4])*10*time.Millisecond
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(d + "/comm")
		h.byRole[role(strings.TrimSpace(string(comm)), pid)] += cpuTime(pid)
	}
	return h
}

// since is the CPU spent between snapshot a and h (a process that ended in between is missing from both).
func (h hostCPU) since(a hostCPU) hostCPU {
	out := hostCPU{busy: h.busy - a.busy, capacity: h.capacity - a.capacity, byRole: map[string]time.Duration{}}
	for r, d := range h.byRole {
		out.byRole[r] = max(0, d-a.byRole[r])
	}
	return out
}

// vmHWM is a process's peak resident set size in KiB (/proc/<pid>/status).
func vmHWM(b *testing.B, pid int) int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("read the bootstrap's status: %v", err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s" }

func per(v int64, n int64) string {
	if n == 0 {
		return "–"
	}
	return strconv.FormatFloat(float64(v)/float64(n), 'f', 4, 64)
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

// report is the Markdown section for BENCHMARKS.md.
func report(cfg atlassiansim.Config, fl floor, full, inc runFigures, plainMBps float64, probe stackProbe, memoryMB int) string {
	var s strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&s, format, a...) }
	p("## Export benchmark (issue 13)\n\n")
	p("Produced by `%s` (also part of `make bench`) on %s, %d cores, %s.\n", benchCommand, time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.Version())
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		p("Load average when it ended: %s (the machine is shared: wall-clock figures are inflated by other work; points and requests are not).\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	p("\nThe real `functions/export` bootstrap runs in its own process under the Lambda Runtime Interface Emulator (peak RSS is\n")
	p("its `VmHWM`; each run starts a new execution environment), against the local DynamoDB and S3 and the Atlassian simulator: %d issues in %d\n", fl.issues, cfg.ProjectsPerSite)
	p("projects, %.0f %% of issues with 1–3 attachments (≤ %d KiB) plus one of %d MiB, %.0f %% with %d comments (%d embedded by the search),\n",
		cfg.AttachmentShare*100, max(cfg.MaxAttachmentSize, 256<<10)>>10, cfg.LargeAttachmentSize>>20, cfg.ManyCommentsShare*100, cfg.MaxComments, embeddedComments)
	p("the `%s` latency profile (search %v, other GETs %v, media first byte %v, %d MiB/s per stream, ±%.0f %%), Atlassian's default burst\n",
		cfg.Latency.Name, time.Duration(cfg.Latency.Search), time.Duration(cfg.Latency.Get), time.Duration(cfg.Latency.MediaFirstByte), cfg.Latency.MediaBytesPerSecond>>20, cfg.Latency.Jitter*100)
	p("buckets and the 65,000-point hourly quota. The connector exports comments, changelog and attachments (JSON documents).\n")
	p("A full run, then an incremental run with nothing changed.\n\n")

	p("| | full run | no-change run |\n| --- | --- | --- |\n")
	p("| wall time | %s | %s |\n", secs(full.wall), secs(inc.wall))
	p("| invocations | %d | %d |\n", full.invocations, inc.invocations)
	p("| issues in scope (returned by the run's search) | %d (%d) | %d (%d) |\n", full.issues, full.searched, inc.issues, inc.searched)
	p("| issues/s | %.1f | – |\n", float64(full.issues)/full.wall.Seconds())
	p("| search and documents done after (from the run's record, sampled every 0.5 s) | %s | %s |\n", secs(full.documentsAt), secs(inc.documentsAt))
	for _, c := range []string{"search", "children", "attachments", "other"} {
		p("| requests per issue: %s | %s | %s |\n", c, per(full.reqs[c], full.issues), per(inc.reqs[c], inc.issues))
	}
	p("| requests (Jira REST, all) | %d | %d |\n", full.totalReqs, inc.totalReqs)
	for _, c := range []string{"search", "children", "attachments", "other"} {
		p("| points per issue: %s | %s | %s |\n", c, per(full.points[c], full.issues), per(inc.points[c], inc.issues))
	}
	p("| points (all) | %d | %d |\n", full.totalPoints, inc.totalPoints)
	p("| media downloads (0 points) | %d, %.0f MB | %d |\n", full.mediaReqs, float64(full.bytesServed)/1e6, inc.mediaReqs)
	p("| peak RSS of the export process | %.1f MiB | %.1f MiB |\n", float64(full.rssKiB)/1024, float64(inc.rssKiB)/1024)
	p("| CPU time of the export process | %s | %s |\n", secs(full.cpu), secs(inc.cpu))
	p("| host load average (1, 5, 15 min) at the run's end | %s | %s |\n", full.load, inc.load)
	p("| host CPU busy during the run (all %d cores) | %.0f %% | %.0f %% |\n", runtime.NumCPU(), full.host.share(), inc.host.share())
	p("| 1 GiB attachment copy inside the export | %.1f MB/s | – |\n", full.largeMBps)
	p("| plain copy of the same object after the full run, alone on the stack (303, media host, transfer package's defaults → S3) | %.1f MB/s | |\n\n", plainMBps)

	p("**Floor arithmetic** (from the simulator's data, not from what the export did):\n\n")
	p("- points: %d search pages (%d issues / %d per page) + %d issues + %d pages of truncated children + %d children beyond the\n", fl.pages, fl.issues, jira.SearchMaxFull, fl.issues, fl.childPages, fl.childObjects)
	p("  embedded page (each costs a point, as Atlassian charges every object returned) + 2 × %d attachments (the 303 and its\n", fl.attachments)
	p("  attachment object; the media download is free) = **%d points** (%d requests).\n", fl.points, fl.requests)
	p("- time: search chain %d × %v = %s; busiest burst bucket %s; hourly quota %s (%d points fit in one hour's %d);\n", fl.pages, time.Duration(cfg.Latency.Search), secs(fl.chain),
		secs(fl.burst)+" ("+fl.burstKey+")", secs(fl.quota), fl.points, sim65k(cfg))
	p("  the largest attachment's stream at %d MiB/s: %s. Binding: **%s, %s**.\n", cfg.Latency.MediaBytesPerSecond>>20, secs(fl.media), fl.binding, secs(fl.time))
	p("- no-change run: 1 search page + the issues updated inside the incremental search's 5-minute overlap (here %d) = %d points;\n", inc.searched, 1+inc.searched)
	p("  time floor one search answer, %v.\n\n", time.Duration(cfg.Latency.Search))

	rss := max(full.rssKiB, inc.rssKiB)
	noChange := float64(inc.totalPoints) / float64(max(inc.issues, 1))
	p("| target | figure | |\n| --- | --- | --- |\n")
	p("| points ≤ 1.01 × floor (full run) | %d / %d = %.4f | %s |\n", full.totalPoints, fl.points, float64(full.totalPoints)/float64(fl.points), verdict(float64(full.totalPoints) <= 1.01*float64(fl.points)))
	p("| ≤ 0.005 points per issue in scope (no-change run) | %d / %d = %.5f | %s |\n", inc.totalPoints, inc.issues, noChange, verdict(noChange <= 0.005))
	p("| peak RSS ≤ 64 MB | %.1f MB (%.1f MiB) | %s |\n", float64(rss)*1024/1e6, float64(rss)/1024, verdict(float64(rss)*1024 <= 64e6))
	p("| attachment throughput ≥ 80 %% of the plain copy | %.1f / %.1f MB/s = %.0f %% | %s |\n", full.largeMBps, plainMBps, 100*full.largeMBps/plainMBps, verdict(full.largeMBps >= 0.8*plainMBps))
	p("| wall time ≤ 1.25 × time floor (full run) | %s / %s = %.2f | %s |\n", secs(full.wall), secs(fl.time), full.wall.Seconds()/fl.time.Seconds(), verdict(full.wall.Seconds() <= 1.25*fl.time.Seconds()))
	p("\n")
	perPage := time.Duration(float64(jira.SearchMaxFull)/8*float64(probe.put)) + probe.get + probe.txn
	if c := full.chain; c.pages > 0 {
		ms := func(d time.Duration, n int) string {
			return fmt.Sprintf("%.0f ms", float64(d.Milliseconds())/float64(max(n, 1)))
		}
		p("**The search chain** (the simulator's timeline of the full run's %d search answers): Jira took %s to answer them\n", c.pages, secs(c.answering))
		p("(%s a page; the floor counts %v), and the export took %s between an answer and its next request (%s a page).\n",
			ms(c.answering, c.pages), time.Duration(cfg.Latency.Search), secs(c.between), ms(c.between, c.pages-1))
		if c.largeAt > 0 && c.pagesDuring > 0 {
			after := c.pages - c.pagesDuring
			p("While the %d MiB attachment was being copied (until %s into the run) %d pages came, one every %s (Jira %s, the export\n",
				cfg.LargeAttachmentSize>>20, secs(c.largeAt), c.pagesDuring, ms(c.spanDuring, c.pagesDuring), ms(c.answeringDuring, c.pagesDuring))
			p("%s between); after it the other %d came one every %s (Jira %s, the export %s between).\n",
				ms(c.betweenDuring, c.pagesDuring), after, ms(c.spanAfter, after), ms(c.answering-c.answeringDuring, after), ms(c.between-c.betweenDuring, after))
		}
		p("\n")
	}
	p("Where the time goes: the export process used %s of CPU (%.1f ms per issue, documents built and scrubbed, pages\n", secs(full.cpu), float64(full.cpu.Milliseconds())/float64(max(full.issues, 1)))
	vcpu := min(float64(memoryMB)/1769, 1) // the export runs one search chain: one vCPU is what it can use
	p("decoded, %.0f MB of attachments hashed and uploaded) in its %s; Lambda gives the ExportFunction's %d MB about %.2f vCPU,\n", float64(full.bytesServed)/1e6, secs(full.wall), memoryMB, vcpu)
	p("so there that CPU time alone would take about %s. Beyond CPU it waits on the local\n", secs(time.Duration(float64(full.cpu)/vcpu)))
	p("stack, which shares the host: in this benchmark an S3 `PutObject` (20 KB, SSE-KMS) took %v and a DynamoDB\n", probe.put.Round(time.Millisecond))
	p("`TransactWriteItems` %v, a `BatchGetItem` %v (medians of %d in sequence), so one page's writes (50 documents\n", probe.txn.Round(time.Millisecond), probe.get.Round(time.Millisecond), probe.n)
	p("8 at a time, its index read and its checkpoint) need about %v against the search's %v per page; the\n", perPage.Round(time.Millisecond), time.Duration(cfg.Latency.Search))
	p("%d attachments' S3 uploads share the same stack. On AWS these calls take a few tens of milliseconds.\n\n", fl.attachments)
	objs := full.issues + fl.attachments
	p("The local S3 (moto_server, single-threaded Python) took %.0f such documents per second from 8 writers at once, after the\n", probe.putRate)
	p("runs; the full run writes %d objects (%d documents, %d attachments), so on this host S3 alone needs at least\n", objs, full.issues, fl.attachments)
	p("%s of the run: %s the Atlassian floor of %s.\n\n", secs(time.Duration(float64(objs)/probe.putRate*float64(time.Second))),
		map[bool]string{true: "more than", false: "within"}[float64(objs)/probe.putRate > fl.time.Seconds()], secs(fl.time))
	p("The host's CPU during the full run, by process (CPU seconds; the host had %s of CPU time in the run's %s):\n\n", secs(full.host.capacity), secs(full.wall))
	p("| process | CPU | share of the host |\n| --- | --- | --- |\n")
	roles := make([]string, 0, len(full.host.byRole))
	for r := range full.host.byRole {
		roles = append(roles, r)
	}
	sort.Slice(roles, func(i, j int) bool { return full.host.byRole[roles[i]] > full.host.byRole[roles[j]] })
	for _, r := range roles {
		p("| %s | %s | %.0f %% |\n", r, secs(full.host.byRole[r]), 100*float64(full.host.byRole[r])/float64(max(full.host.capacity, 1)))
	}
	p("| all (from /proc/stat) | %s | %.0f %% |\n", secs(full.host.busy), full.host.share())
	if full.wall > 0 && full.host.capacity > 0 {
		// The host's own floor: the CPU everything needed, spread over every core with none idle.
		cores := float64(full.host.capacity) / float64(full.wall)
		target := time.Duration(1.25 * float64(fl.time))
		p("\nOn this host the full run's work, every process above, took %s of CPU: with all %.0f cores busy throughout it could\n", secs(full.host.busy), cores)
		p("not end before %s (%.2f × the Atlassian floor). The wall-time target (%s) needs that work to take under %s of CPU here.\n",
			secs(time.Duration(float64(full.host.busy)/cores)), float64(full.host.busy)/cores/float64(fl.time), secs(target),
			secs(time.Duration(float64(target)*cores)))
	}
	return s.String()
}

func (h hostCPU) share() float64 {
	if h.capacity <= 0 {
		return 0
	}
	return 100 * float64(h.busy) / float64(h.capacity)
}

func sim65k(cfg atlassiansim.Config) int64 {
	if q := cfg.RateLimits.GlobalPointsPerHour; q > 0 {
		return q
	}
	return 65000
}

// TestChainOf: the benchmark's split of the search chain into Jira's answers and the time between them, before and
// after the large attachment's copy ended.
func TestChainOf(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Out of order on purpose: the timeline is sorted by arrival.
	tl := []atlassiansim.Answer{{Arrived: at(1300), Answered: at(1600)}, {Arrived: at(0), Answered: at(300)}, {Arrived: at(400), Answered: at(700)},
		{Arrived: at(1000), Answered: at(1250)}}
	cases := []struct {
		name  string
		large time.Time
		want  chainFigures
	}{
		{"no large attachment", time.Time{}, chainFigures{pages: 4, answering: 1150 * time.Millisecond, between: 450 * time.Millisecond,
			spanAfter: 1600 * time.Millisecond}},
		{"large copy ends after two pages", at(900), chainFigures{pages: 4, answering: 1150 * time.Millisecond, between: 450 * time.Millisecond,
			largeAt: 900 * time.Millisecond, pagesDuring: 2, answeringDuring: 600 * time.Millisecond, betweenDuring: 100 * time.Millisecond,
			spanDuring: 900 * time.Millisecond, spanAfter: 700 * time.Millisecond}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := chainOf(slices.Clone(tl), t0, c.large); got != c.want {
				t.Errorf("chainOf = %+v, want %+v", got, c.want)
			}
		})
	}
}
