// Package export runs one export run per invocation: it takes the run's lease, mirrors the issues the connector's
// JQL selects into S3 (scrubbed, one document per issue), removes what left the selection, writes the run's
// manifest and finishes the run, checkpointing after every page or batch in the transaction that renews its
// lease. It stops well before the invocation's deadline (pausing the run for the dispatcher to resume), on a
// quota 429 (pausing until the reset), on a cancel (at its next checkpoint) and on a dead grant (failing the run
// with reason reauth_required).
package export

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/oauth2"

	"jiraexport/shared/attachments"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/jira"
	"jiraexport/shared/mirror"
	"jiraexport/shared/scrub"
)

// Runs is the run lifecycle and connector store the engine needs (shared/connectors.Store).
type Runs interface {
	AcquireRun(ctx context.Context, ref connectors.RunRef, owner string, leaseFor time.Duration) (*connectors.Run, error)
	SaveProgress(ctx context.Context, ref connectors.RunRef, owner string, leaseFor time.Duration, p connectors.Progress, extra ...types.TransactWriteItem) error
	PauseRun(ctx context.Context, ref connectors.RunRef, owner, reason string, resumeAfter time.Time, p connectors.Progress, extra ...types.TransactWriteItem) error
	FinishRun(ctx context.Context, ref connectors.RunRef, owner string, status connectors.RunStatus, p connectors.Progress, extra ...types.TransactWriteItem) error
	Get(ctx context.Context, connID, id string) (*connectors.Connector, error)
}

// Connections reads a connection (shared/connections.Store).
type Connections interface {
	Get(ctx context.Context, id string) (*connections.Connection, error)
}

// Tokens gives a connection's access tokens (shared/tokens.Store).
type Tokens interface {
	TokenSource(ctx context.Context, connID string) oauth2.TokenSource
}

// Mirror writes and deletes S3 objects (shared/mirror.Writer).
type Mirror interface {
	Put(ctx context.Context, key string, body []byte, contentType string) error
	Delete(ctx context.Context, key string) error
}

var (
	_ Runs        = (*connectors.Store)(nil)
	_ Connections = (*connections.Store)(nil)
	_ Mirror      = (*mirror.Writer)(nil)
)

// Config wires an Engine.
type Config struct {
	Runs        Runs
	Connections Connections
	Tokens      Tokens
	Mirror      Mirror
	DB          *dynamodb.Client
	Table       string
	// Jira builds the client for one run, calling observe after every attempt (points and request accounting).
	Jira func(ts oauth2.TokenSource, observe func(jira.Observation)) *jira.Client
	Log  *slog.Logger
	// Lease is how long a lease lasts between checkpoints; default 3 minutes. Tests shorten it.
	Lease time.Duration
	// Overlap is how far before the watermark an incremental run looks (Jira's minute precision, its search
	// index lag); default 5 minutes.
	Overlap time.Duration
	// CensusEvery, when set, overrides every connector's census cadence (censusIntervalHours: how often an
	// incremental run also lists every matching id to find deletions); zero: the connector's.
	CensusEvery time.Duration
	// Reserve is how long before the invocation's deadline the engine stops starting work; default: a fifth of
	// the time the invocation had, between 2 and 60 seconds.
	Reserve time.Duration
	// Attachments copies allowed attachments into the mirror (shared/attachments.Transferor); nil: none are.
	Attachments Attachments
	// KeepEmails keeps users' e-mail addresses in documents (a future connector option); default false.
	KeepEmails bool
	// Pseudonyms names people for connectors with include.people = pseudonym (shared/pseudonym.Store).
	Pseudonyms Pseudonyms
	Now        func() time.Time
	// Budget is the rate budget (points ledger, shared quota pauses); zero: neither.
	Budget Budget
}

// Engine runs exports. It is safe for concurrent use; each Run is independent.
type Engine struct{ c Config }

// New returns an Engine.
func New(c Config) *Engine {
	if c.Lease <= 0 {
		c.Lease = 3 * time.Minute
	}
	if c.Overlap <= 0 {
		c.Overlap = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return &Engine{c: c}
}

// Outcome is how an invocation ended, for logs and tests.
type Outcome string

// Outcomes.
const (
	Succeeded Outcome = "succeeded"
	Failed    Outcome = "failed"
	Paused    Outcome = "paused"
	// Skipped: the run was not this invocation's to work on (leased, finished, waiting, unknown, connection
	// not active): a duplicate event, nothing to retry.
	Skipped Outcome = "skipped"
	// Stopped: the run was cancelled, taken over or its connection fenced while this invocation worked on it.
	Stopped Outcome = "stopped"
)

// Reasons recorded on runs.
const (
	ReasonDeadline      = "deadline"
	ReasonQuota         = "quota"
	ReasonRateLimited   = "rate_limited"
	ReasonUnavailable   = "jira_unavailable"
	ReasonReauth        = "reauth_required"
	ReasonJQL           = "jql_rejected"
	ReasonJira          = "jira_error"
	ReasonSiteGone      = "site_not_in_connection"
	ReasonConnectorGone = "connector_deleted"
)

// maxRetryPauses bounds how many invocations in a row may end on a transient Jira failure before the run fails.
const maxRetryPauses = 5

// Run works on one run until it finishes, pauses or is stopped. Errors are returned only for failures worth an
// async retry of the invocation (the store unreachable); everything about the run itself ends in its record.
func (e *Engine) Run(ctx context.Context, ref connectors.RunRef) (Outcome, error) {
	owner := newOwner()
	log := e.c.Log.With("connectionId", ref.ConnectionID, "connectorId", ref.ConnectorID, "runId", ref.RunID, "worker", owner)
	run, err := e.c.Runs.AcquireRun(ctx, ref, owner, e.c.Lease)
	switch {
	case errors.Is(err, connectors.ErrLeaseHeld), errors.Is(err, connectors.ErrRunFinished),
		errors.Is(err, connectors.ErrNotFound), errors.Is(err, connectors.ErrRunWaiting),
		errors.Is(err, connectors.ErrNotActive):
		log.InfoContext(ctx, "export skipped", "why", skipReason(err))
		return Skipped, nil
	case err != nil:
		return "", fmt.Errorf("acquire run: %w", err)
	}
	w := &worker{e: e, ref: ref, owner: owner, log: log, started: e.c.Now(), invocations: run.Invocations, lastSave: e.c.Now()}
	w.idx = newIndex(e.c.DB, e.c.Table)
	w.deadline = e.stopAt(ctx)
	w.meter().allowance = run.Allowance
	out, err := w.run(ctx)
	w.flushPoints(ctx)
	if w.ck != nil {
		log.InfoContext(ctx, "export invocation ended", "outcome", string(out), "phase", w.ck.Phase, "requests", w.ck.Requests+w.requests.Load(),
			"points", w.ck.Points+w.points.Load(), "written", w.ck.Written, "unchanged", w.ck.Unchanged, "removed", w.ck.Removed)
	}
	return out, err
}

func skipReason(err error) string {
	switch {
	case errors.Is(err, connectors.ErrLeaseHeld):
		return "leased"
	case errors.Is(err, connectors.ErrRunFinished):
		return "finished"
	case errors.Is(err, connectors.ErrRunWaiting):
		return "waiting"
	case errors.Is(err, connectors.ErrNotActive):
		return "connection_not_active"
	}
	return "not_found"
}

func newOwner() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "w-" + hex.EncodeToString(b)
}

// stopAt is when the engine stops starting work: the context's deadline minus a reserve for the final writes.
func (e *Engine) stopAt(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Time{}
	}
	reserve := e.c.Reserve
	if reserve <= 0 {
		reserve = min(max(time.Until(d)/5, 2*time.Second), 60*time.Second)
	}
	return d.Add(-reserve)
}

// checkpoint is the state a run resumes from (JSON in the CKPT item).
type checkpoint struct {
	Mode   string `json:"mode"` // full | incremental
	Census bool   `json:"census"`
	Phase  string `json:"phase"`
	// BaseJQL is the connector's JQL without ORDER BY; Since the lower bound on updated (incremental).
	BaseJQL string `json:"baseJql"`
	Since   int64  `json:"since"`
	// JQL and NextPageToken are where the search stands; LastID the last issue id fully processed (an expired
	// cursor restarts the search after it).
	JQL           string `json:"jql"`
	NextPageToken string `json:"npt,omitempty"`
	LastID        int64  `json:"lastId"`
	MaxUpdated    int64  `json:"maxUpdated"`
	Fingerprint   string `json:"fp"`
	Watermark     int64  `json:"watermark"` // the SYNC watermark the run started from
	// Fields is /rest/api/3/field, read once per run when the first document needs it.
	Fields       map[string]fieldMeta `json:"fields,omitempty"`
	FieldsLoaded bool                 `json:"fieldsLoaded"`

	Selected    int64            `json:"selected"`
	Written     int64            `json:"written"`
	Unchanged   int64            `json:"unchanged"`
	Removed     int64            `json:"removed"`
	ApproxTotal int64            `json:"approxTotal"`
	Requests    int64            `json:"requests"`
	Points      int64            `json:"points"`
	Bytes       int64            `json:"bytes"`
	PhaseMillis map[string]int64 `json:"phaseMillis"`
	StartedAt   string           `json:"startedAt"`
	RetryPauses int              `json:"retryPauses"`
	// ToRemove are the planned removals not done yet; RemoveMore says more remain to be planned after them.
	ToRemove   []string `json:"toRemove,omitempty"`
	RemoveMore bool     `json:"removeMore,omitempty"`
	CensusDone bool     `json:"censusDone,omitempty"`
	// ToFetch are issues the census found that the mirror lacks, fetched by id in the backfill phase.
	ToFetch []string `json:"toFetch,omitempty"`
	// PageSize is the search's page size when smaller than Jira's largest (halved whenever an invocation could
	// not finish one page before its deadline).
	PageSize int `json:"pageSize,omitempty"`
	// Seq numbers the checkpoint writes, so a write whose answer was lost can be told committed or not (unsaved).
	Seq int64 `json:"seq,omitempty"`
	// AttQueue are the attachments still to copy (drained before the phase goes on); Pending the resumable
	// transfers an earlier invocation left, by attachment id (multipart upload id, parts, hash state).
	AttQueue []attJob                      `json:"attQueue,omitempty"`
	Pending  map[string]*attachments.State `json:"pending,omitempty"`
}

// Phases.
const (
	phaseCounting  = "counting"
	phaseSearching = "searching"
	phaseCensus    = "census"
	phaseDeleting  = "deleting"
	phasePlanning  = "planning"
	phaseBackfill  = "backfill"
	phaseManifest  = "manifest"
)

// fingerprint identifies what a mirror was built from: a change of JQL, site or included children forces a
// full run, since an incremental one would miss issues the new selection adds without their being updated.
func fingerprint(c *connectors.Connector) string {
	h := sha256.New()
	_, _ = fmt.Fprintf(h, "%s\x00%s\x00%t\x00%t", c.Spec.SiteID, c.Spec.JQL, c.Spec.Include.Comments, c.Spec.Include.Changelog)
	if o := documentOptions(&c.Spec); o != "" {
		_, _ = fmt.Fprintf(h, "\x00%s", o)
	}
	if a := c.Spec.Include.Attachments; a.Enabled {
		// New rules are applied to every issue: unchanged issues are not searched by an incremental run.
		_, _ = fmt.Fprintf(h, "\x00att\x00%d\x00%s", a.MaxBytes, strings.Join(a.MediaTypes, ","))
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// worker is one invocation's work on one run.
type worker struct {
	e           *Engine
	ref         connectors.RunRef
	owner       string
	log         *slog.Logger
	started     time.Time
	deadline    time.Time
	invocations int64
	idx         *index

	conn      *connections.Connection
	connector *connectors.Connector
	site      mirror.Site
	jira      *jira.Client
	ts        oauth2.TokenSource
	ck        *checkpoint
	sync      *syncState
	scrub     scrub.Options

	requests, points atomic.Int64
	pagesDone        int             // search pages this invocation finished
	ctx              context.Context // the invocation's working context (for work started in the background)
	copies           *copies
	next             *prefetch
	inflight         []*commit // the last search pages' writes, oldest first, in the background (commit.go)
	// copyEntries are the index entries of ended attachment copies, by issue id, written with the next checkpoint.
	copyEntries map[string]*indexEntry
	bud         *meter
	saved       saved
	lastSave    time.Time
	phaseStart  time.Time
}

// errStop ends the invocation with an outcome already recorded.
type errStop struct{ out Outcome }

func (e *errStop) Error() string { return "export stopped: " + string(e.out) }

func (w *worker) run(parent context.Context) (Outcome, error) {
	// Work stops at the halfway point of the reserve at the latest, so a call in flight cannot eat the time the
	// final writes need.
	ctx := parent
	if d, ok := parent.Deadline(); ok && !w.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(parent, w.deadline.Add(d.Sub(w.deadline)/2))
		defer cancel()
	}
	if err := w.load(ctx); err != nil {
		return w.end(parent, err)
	}
	m := w.meter()
	w.ctx = ctx
	if a := w.e.c.Attachments; a != nil {
		w.copies = newCopies(ctx, func(ctx context.Context, c attCopy) (attachments.Result, error) {
			return a.Transfer(ctx, w.ts, c.tgt, c.a, c.resume)
		}, a.Footprint, func() bool { return m.allowance <= 0 || m.tally.Points() < m.allowance })
	} else {
		w.copies = newCopies(ctx, nil, nil, func() bool { return false })
	}
	defer w.copies.cancel()
	for {
		if w.timeUp() {
			return w.stop(parent, errDeadline)
		}
		if err := w.mayGoOn(ctx); err != nil {
			return w.stop(parent, err)
		}
		if err := w.collectCopies(ctx); err != nil {
			return w.stop(parent, err)
		}
		var err error
		phase := w.ck.Phase
		switch {
		case len(w.ck.AttQueue) > 0 && w.e.c.Attachments == nil:
			w.ck.AttQueue = nil // a build without attachments met a checkpoint with some
			continue
		case len(w.ck.AttQueue) > 0 && (phase != phaseSearching || w.attBacklog() >= maxAttBacklog):
			// The queue drains before any phase after the search, and the search waits while the backlog is full.
			err = w.attachmentWait(ctx)
		case phase == phaseCounting:
			err = w.count(ctx)
		case phase == phaseSearching:
			err = w.searchPage(ctx)
		case phase == phaseCensus:
			err = w.census(ctx)
		case phase == phaseDeleting:
			err = w.deleteBatch(ctx)
		case phase == phasePlanning:
			err = w.plan(ctx)
		case phase == phaseBackfill:
			err = w.backfill(ctx)
		case phase == phaseManifest:
			err = w.finish(ctx)
			if err == nil {
				return Succeeded, nil
			}
		default:
			err = fmt.Errorf("checkpoint names unknown phase %q", phase)
		}
		if err != nil {
			err = w.settle(ctx, err)
			w.rollback()
			return w.stop(parent, err)
		}
		w.startCopies()
	}
}

// stop ends the invocation: the attachment copies in flight first (what they finished is recorded with the
// final write), then the run's state as end decides it.
func (w *worker) stop(ctx context.Context, err error) (Outcome, error) {
	err = w.settle(ctx, err) // the last page's commit ends first: the final write comes after it
	w.stopCopies(ctx, err)
	// The run's state is written first: a quota pause counts from its 429's Retry-After, so nothing may delay it.
	out, rerr := w.end(ctx, err)
	// The pages asked for ahead are not used by this invocation, but what they started ends before the invocation
	// does: their points reach the ledger's last flush, and a token refresh one began (a refused one flags the
	// connection) finishes.
	w.dropPrefetch()
	return out, rerr
}

var errDeadline = errors.New("invocation deadline near")

func (w *worker) pageSize() int {
	if w.ck.PageSize > 0 {
		return w.ck.PageSize
	}
	return jira.SearchMaxFull
}

func (w *worker) timeUp() bool {
	return !w.deadline.IsZero() && !w.e.c.Now().Before(w.deadline)
}

// load reads the connection, the connector, the sync state and the checkpoint (a new one for a new run).
func (w *worker) load(ctx context.Context) error {
	var err error
	if w.conn, err = w.e.c.Connections.Get(ctx, w.ref.ConnectionID); err != nil {
		return fmt.Errorf("read connection: %w", err)
	}
	if w.connector, err = w.e.c.Runs.Get(ctx, w.ref.ConnectionID, w.ref.ConnectorID); err != nil {
		if errors.Is(err, connectors.ErrNotFound) {
			return &failure{reason: ReasonConnectorGone, msg: "the connector was deleted"}
		}
		return fmt.Errorf("read connector: %w", err)
	}
	for _, s := range w.conn.Sites {
		if s.CloudID == w.connector.Spec.SiteID {
			w.site = mirror.Site{CloudID: s.CloudID, URL: s.URL}
		}
	}
	if w.site.CloudID == "" {
		return &failure{reason: ReasonSiteGone, msg: "the connector's site is no longer part of the connection"}
	}
	w.ts = w.e.c.Tokens.TokenSource(ctx, w.ref.ConnectionID)
	w.jira = w.e.c.Jira(w.ts, w.observe)
	if w.sync, err = w.idx.getSync(ctx, w.ref.ConnectionID, w.ref.ConnectorID); err != nil {
		return err
	}
	if w.ck, err = w.idx.getCheckpoint(ctx, w.ref); err != nil {
		return err
	}
	if w.ck == nil {
		w.ck = w.newCheckpoint()
	}
	w.scrub = scrub.Options{KeepEmails: w.e.c.KeepEmails, UserFields: userFields(w.ck.Fields)}
	if err := w.loadPeople(ctx); err != nil {
		return err
	}
	w.markSaved()
	w.phaseStart = w.e.c.Now()
	return nil
}

func (w *worker) newCheckpoint() *checkpoint {
	now := w.e.c.Now()
	fp := fingerprint(w.connector)
	ck := &checkpoint{Mode: "full", Census: true, Phase: phaseCounting, BaseJQL: splitOrderBy(w.connector.Spec.JQL),
		Fingerprint: fp, PhaseMillis: map[string]int64{}, StartedAt: now.UTC().Format(time.RFC3339Nano)}
	if s := w.sync; s != nil && s.Fingerprint == fp && s.LastFullRun != "" {
		ck.Mode, ck.Census, ck.Phase = "incremental", now.Sub(time.UnixMilli(s.LastCensusAt)) >= w.censusEvery(), phaseSearching
		ck.Watermark = s.Watermark
		ck.Since = max(s.Watermark-w.e.c.Overlap.Milliseconds(), 1)
	}
	ck.JQL = searchJQL(ck.BaseJQL, ck.Since, 0)
	return ck
}

// censusEvery is the connector's census cadence (censusIntervalHours, default daily); Config.CensusEvery, when a
// caller sets one (tests), wins.
func (w *worker) censusEvery() time.Duration {
	if w.e.c.CensusEvery > 0 {
		return w.e.c.CensusEvery
	}
	return w.connector.CensusInterval()
}

func (w *worker) observe(o jira.Observation) {
	w.spend(o)
	if o.Status != 0 {
		// Requests Jira answered: a call given up before an answer (the invocation's deadline) may never have
		// reached it. Its point still counts (below, and in the ledger): that errs on the safe side of the quota.
		w.requests.Add(1)
	}
	p := int64(1)
	if o.Objects > 0 {
		p += int64(o.Objects)
	}
	w.points.Add(p)
}

// progress folds this invocation's request and point counts into the checkpoint and builds the run's progress.
func (w *worker) progress() connectors.Progress {
	w.ck.Requests += w.requests.Swap(0)
	w.ck.Points += w.points.Swap(0)
	now := w.e.c.Now()
	if w.ck.PhaseMillis == nil {
		w.ck.PhaseMillis = map[string]int64{}
	}
	w.ck.PhaseMillis[w.ck.Phase] += now.Sub(w.phaseStart).Milliseconds()
	w.phaseStart = now
	return connectors.Progress{Phase: w.ck.Phase, Counters: w.counters()}
}

// save is the checkpoint: progress, lease renewal, checkpoint and extra items in one transaction.
func (w *worker) save(ctx context.Context, extra ...types.TransactWriteItem) error {
	if err := w.join(ctx); err != nil {
		return err
	}
	p, items, err := w.checkpointItems(extra)
	if err != nil {
		return err
	}
	if err := w.e.c.Runs.SaveProgress(ctx, w.ref, w.owner, w.e.c.Lease, p, items...); err != nil {
		if err := w.unsaved(ctx, err); err != nil {
			return err
		}
	}
	clear(w.copyEntries)
	w.lastSave = w.e.c.Now()
	w.markSaved()
	w.flushPoints(ctx)
	return nil
}

// checkpointItems numbers the next checkpoint and returns the run's progress and the transaction's items: the
// checkpoint, extra and the index entries of ended attachment copies.
func (w *worker) checkpointItems(extra []types.TransactWriteItem) (connectors.Progress, []types.TransactWriteItem, error) {
	p := w.progress()
	w.ck.Seq++
	ckItem, err := w.idx.putCheckpoint(w.ref, w.ck, w.e.c.Now())
	if err != nil {
		return p, nil, err
	}
	copied, err := w.copyItems()
	if err != nil {
		return p, nil, err
	}
	return p, append(append([]types.TransactWriteItem{ckItem}, extra...), copied...), nil
}

// renew keeps the lease alive during long work between checkpoints (many follow-up calls). It runs on the
// follow-ups' goroutines, so it only reads the worker's state, and it leaves the run's counters as stored: the
// last checkpoint's, or newer ones a page commit in flight (commit.go) may write before or after it. Counting
// work since the checkpoint would be wrong too: a crash redoes it, and the resumed run counts it again.
func (w *worker) renew(ctx context.Context) error {
	if w.e.c.Now().Sub(w.lastSave) < w.e.c.Lease/3 {
		return nil
	}
	return w.e.c.Runs.SaveProgress(ctx, w.ref, w.owner, w.e.c.Lease, connectors.Progress{Phase: w.ck.Phase, KeepCounters: true})
}

// failure ends the run failed with a reason.
type failure struct{ reason, msg string }

func (f *failure) Error() string { return "run failed: " + f.reason }

// end turns the error that stopped the work into the run's state.
func (w *worker) end(ctx context.Context, err error) (Outcome, error) {
	// The final writes get their own short time even when the invocation's context is ending.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	var f *failure
	var stop *errStop
	switch {
	case errors.As(err, &stop):
		return stop.out, nil
	case errors.Is(err, connectors.ErrRunFinished), errors.Is(err, connectors.ErrLeaseLost), errors.Is(err, connectors.ErrNotFound):
		w.log.InfoContext(ctx, "export stopped", "why", stopReason(err))
		if errors.Is(err, connectors.ErrRunFinished) {
			w.abortPending(fctx) // cancelled (or finished elsewhere): nobody resumes these uploads
		}
		return Stopped, nil
	case errors.Is(err, connectors.ErrNotActive):
		return w.connectionStopped(fctx)
	case errors.As(err, &f):
		return w.fail(fctx, f.reason, f.msg)
	case errors.Is(err, errDeadline), jira.Classify(err) == jira.KindCancelled:
		if w.ck != nil && w.ck.Phase == phaseSearching && w.pagesDone == 0 && len(w.ck.AttQueue) == 0 {
			// Not one page fitted in this invocation: without smaller pages the run would pause for ever.
			w.ck.PageSize = max(1, min(w.pageSize(), jira.SearchMaxFull)/2)
		}
		return w.pause(fctx, ReasonDeadline, time.Time{})
	case errors.Is(err, errBudget):
		return w.pause(fctx, ReasonBudget, time.Time{})
	}
	var arl *attachments.RateLimitError
	switch {
	case errors.Is(err, attachments.ErrReauth):
		return w.fail(fctx, ReasonReauth, "Atlassian no longer accepts the connection's authorisation; reauthorise the connection")
	case errors.As(err, &arl):
		reason := ReasonRateLimited
		if arl.Limit.Quota() {
			reason = ReasonQuota
		}
		return w.pause(fctx, reason, arl.ResumeAt(w.e.c.Now()))
	case errors.Is(err, attachments.ErrRetryable):
		err = &jira.StatusError{Status: 503} // one meaning for transient failures, Jira's or the media host's
	}
	switch jira.Classify(err) {
	case jira.KindReauth:
		return w.fail(fctx, ReasonReauth, "Atlassian no longer accepts the connection's authorisation; reauthorise the connection")
	case jira.KindRateLimited:
		var rl *jira.RateLimitError
		errors.As(err, &rl)
		now := w.e.c.Now() // once: two readings would end the pause early by the time between them
		until := now.Add(jira.Wait(err, now))
		reason := ReasonRateLimited
		if rl != nil && rl.Quota() {
			reason = ReasonQuota
			w.recordQuota(fctx, err)
		}
		return w.pause(fctx, reason, until)
	case jira.KindRetryable:
		w.ck.RetryPauses++
		if w.ck.RetryPauses > maxRetryPauses {
			return w.fail(fctx, ReasonUnavailable, "Jira kept failing; the run stopped after several attempts")
		}
		return w.pause(fctx, ReasonUnavailable, w.e.c.Now().Add(time.Minute))
	}
	var se *jira.StatusError
	if errors.As(err, &se) {
		if se.Status == 400 && w.ck != nil && w.ck.Phase != phaseDeleting {
			return w.fail(fctx, ReasonJQL, "Jira rejected the connector's JQL (status 400)")
		}
		return w.fail(fctx, ReasonJira, "Jira answered status "+strconv.Itoa(se.Status))
	}
	// Our own infrastructure failed (DynamoDB, S3): leave the run running; its lease expires and the
	// dispatcher resumes it, and Lambda retries the event.
	w.log.ErrorContext(ctx, "export invocation failed", "error", err)
	return "", err
}

func stopReason(err error) string {
	switch {
	case errors.Is(err, connectors.ErrRunFinished):
		return "run_finished"
	case errors.Is(err, connectors.ErrLeaseLost):
		return "lease_lost"
	}
	return "run_gone"
}

// connectionStopped handles a fenced connection: a dead grant fails the run with its reason (the worker still
// holds the lease); erasure or disconnection leaves it to the purge, which cancels the run.
func (w *worker) connectionStopped(ctx context.Context) (Outcome, error) {
	c, err := w.e.c.Connections.Get(ctx, w.ref.ConnectionID)
	if err == nil && c.Status == connections.StatusReauthRequired {
		return w.fail(ctx, ReasonReauth, "Atlassian no longer accepts the connection's authorisation; reauthorise the connection")
	}
	w.log.InfoContext(ctx, "export stopped", "why", "connection_not_active")
	return Stopped, nil
}

func (w *worker) pause(ctx context.Context, reason string, until time.Time) (Outcome, error) {
	// Without a checkpoint loaded this invocation has no figures: the run keeps the ones stored.
	p := connectors.Progress{KeepCounters: w.ck == nil}
	var extra []types.TransactWriteItem
	if w.ck != nil {
		p = w.progress()
		item, err := w.idx.putCheckpoint(w.ref, w.ck, w.e.c.Now())
		if err != nil {
			return "", err
		}
		copied, err := w.copyItems()
		if err != nil {
			return "", err
		}
		extra = append(append(extra, item), copied...)
	}
	err := w.e.c.Runs.PauseRun(ctx, w.ref, w.owner, reason, until, p, extra...)
	if err != nil {
		if errors.Is(err, connectors.ErrRunFinished) {
			w.abortPending(ctx) // cancelled while this invocation ran
		}
		if errors.Is(err, connectors.ErrRunFinished) || errors.Is(err, connectors.ErrLeaseLost) || errors.Is(err, connectors.ErrNotFound) {
			return Stopped, nil
		}
		return "", fmt.Errorf("pause run: %w", err)
	}
	w.log.InfoContext(ctx, "export paused", "reason", reason, "resumeAfter", until)
	return Paused, nil
}

func (w *worker) fail(ctx context.Context, reason, msg string) (Outcome, error) {
	p := connectors.Progress{KeepCounters: w.ck == nil}
	if w.ck != nil {
		p = w.progress()
	}
	p.Errors = []connectors.RunError{{Reason: reason, Message: msg, At: w.e.c.Now().UTC()}}
	var extra []types.TransactWriteItem
	if w.ck != nil {
		copied, err := w.copyItems()
		if err != nil {
			return "", err
		}
		extra = append(append(extra, w.idx.deleteCheckpoint(w.ref)), copied...)
	}
	w.abortPending(ctx)
	err := w.e.c.Runs.FinishRun(ctx, w.ref, w.owner, connectors.RunFailed, p, extra...)
	if err != nil {
		if errors.Is(err, connectors.ErrRunFinished) || errors.Is(err, connectors.ErrLeaseLost) || errors.Is(err, connectors.ErrNotFound) {
			return Stopped, nil
		}
		return "", fmt.Errorf("fail run: %w", err)
	}
	w.log.InfoContext(ctx, "export failed", "reason", reason)
	return Failed, nil
}
