package export

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/oauth2"

	"jiraexport/shared/attachments"
	"jiraexport/shared/jira"
	"jiraexport/shared/mirror"
)

// Attachments copies attachments into the mirror (shared/attachments.Transferor).
type Attachments interface {
	Transfer(ctx context.Context, ts oauth2.TokenSource, tgt attachments.Target, a attachments.Attachment, resume *attachments.State) (attachments.Result, error)
	Delete(ctx context.Context, tgt attachments.Target, ids []string) error
	Abort(ctx context.Context, st *attachments.State) error
	// Footprint is the memory a Transfer of size bytes may hold, which bounds how many run at once.
	Footprint(size int64) int64
}

var _ Attachments = (*attachments.Transferor)(nil)

// attJob is one issue's attachments still to copy, queued in the checkpoint when the issue's document is stored.
// The queue is drained, one attachment at a time, before the run moves on: a transfer may outlast the invocation
// (its resumable state waits in Pending), and the search's cursor must not run ahead of an unbounded queue.
type attJob struct {
	IssueID  string                   `json:"issueId"`
	Download []attachments.Attachment `json:"download"`
}

// Manifest reasons for attachments the copy did not bring into the mirror.
const (
	attGone   = "gone"
	attFailed = "failed"
)

func (w *worker) attTarget() attachments.Target {
	return attachments.Target{ConnectionID: w.ref.ConnectionID, ConnectorID: w.ref.ConnectorID, CloudID: w.site.CloudID}
}

func (w *worker) attachmentsOn() bool {
	return w.e.c.Attachments != nil && w.connector.Spec.Include.Attachments.Enabled
}

// issueAttachments decodes an issue's fields.attachment as the attachments package reads it.
func issueAttachments(doc *mirror.Issue) []attachments.Attachment {
	out := make([]attachments.Attachment, 0, len(doc.Attachments))
	for _, a := range doc.Attachments {
		out = append(out, attachments.Attachment{ID: a.ID, Filename: a.Filename, Size: a.Size, MimeType: a.MimeType})
	}
	return out
}

// planAttachments applies the connector's rules to one stored document's attachments against what the index
// says is mirrored: removed or no longer allowed ones are deleted now (idempotent), downloads are queued in the
// checkpoint, and the entry records what this run did for the manifest. It reports whether the run changed the
// issue's attachments (then the manifest lists the issue even if its document is unchanged).
func (w *worker) planAttachments(ctx context.Context, doc *mirror.Issue, old, e *indexEntry) (bool, error) {
	var stored []attachments.Stored
	if old != nil && !old.Removed {
		stored = old.Stored
	}
	if w.e.c.Attachments == nil || (!w.attachmentsOn() && len(stored) == 0) {
		// Nothing to copy, or no Transferor to copy or delete with (what is stored stays as the index says).
		return false, nil
	}
	// With the rules switched off, stored attachments are deleted: the mirror follows the connector's rules.
	rules := w.connector.Spec.Include.Attachments
	plan := attachments.PlanIssue(rules, issueAttachments(doc), stored)
	e.Stored = plan.Keep
	info := &mirror.ManifestAttachments{}
	for _, s := range plan.Keep {
		info.Kept = append(info.Kept, w.manifestAtt(s.ID, s.Size, mimeOf(doc, s.ID), s.SHA256, ""))
	}
	if rules.Enabled {
		for _, s := range plan.Skip {
			info.Skipped = append(info.Skipped, mirror.ManifestAttachment{ID: s.ID, Size: s.Size, MimeType: s.MimeType, Reason: string(s.Reason)})
		}
	}
	if len(plan.Delete) > 0 {
		if err := w.e.c.Attachments.Delete(ctx, w.attTarget(), plan.Delete); err != nil {
			return false, err
		}
		for _, id := range plan.Delete {
			if st := w.ck.Pending[id]; st != nil {
				_ = w.e.c.Attachments.Abort(ctx, st)
				delete(w.ck.Pending, id)
			}
			info.Deleted = append(info.Deleted, mirror.ManifestAttachment{ID: id})
		}
	}
	if len(plan.Download) > 0 {
		w.ck.AttQueue = append(w.ck.AttQueue, attJob{IssueID: doc.ID, Download: plan.Download})
	}
	changed := len(plan.Download) > 0 || len(plan.Delete) > 0
	if changed || len(info.Kept)+len(info.Skipped) > 0 {
		e.setAttRun(info)
	}
	return changed, nil
}

func mimeOf(doc *mirror.Issue, id string) string {
	for _, a := range doc.Attachments {
		if a.ID == id {
			return a.MimeType
		}
	}
	return ""
}

func (w *worker) manifestAtt(id string, size int64, mimeType, sha, reason string) mirror.ManifestAttachment {
	m := mirror.ManifestAttachment{ID: id, Size: size, MimeType: mimeType, SHA256: sha, Reason: reason}
	if reason == "" {
		m.Object = mirror.AttachmentKey(w.ref.ConnectionID, w.ref.ConnectorID, id)
	}
	return m
}

// Attachment copies run in the background, beside the search, so the search chain (one page after another) and
// the copies (media latency, S3 uploads) overlap instead of adding up.
const (
	// attMaxInFlight and attBufferBudget bound the copies in flight at once: at most attMaxInFlight, holding at
	// most attBufferBudget bytes of buffers between them (Attachments.Footprint: about the size of a small
	// attachment, a few parts for a large one), oldest first, and always at least one. A small copy spends most
	// of its time waiting (the 303, the media host's first byte, the S3 write), so the number in flight is what
	// sets the copy rate; Jira's attachment/content bucket allows 300 requests a second, far above it, and the
	// memory budget keeps the process's peak within the function's. A copy of more than 16 MiB streams its parts
	// (about 0.5 MiB); one of 5 to 16 MiB goes through the transfer package's part buffers (about 25 MiB) and
	// leaves room for a few small ones only. The search queues about ten attachments a page, one page every
	// 300 ms, and each small copy takes about 350 ms under the WAN profile, so the small copies keep up with the
	// search only with a dozen or more in flight. With 4 beside a large copy (a limit this once had, to leave S3
	// to the large copy's parts) the queue filled while the benchmark's 1 GiB attachment was copied and the search
	// waited: 450 to 560 ms a page instead of 300, the full run 78 to 84 s; with up to 16 copies in all, 73 to
	// 77 s; with 24, 73.5 and 74.6 s, the large copy at 86 to 89 % of a plain copy (BENCHMARKS.md).
	attMaxInFlight  = 24
	attBufferBudget = 30 << 20
	// maxAttBacklog bounds the attachments queued in the checkpoint (a 400 KB item) before the search waits for
	// copies: the cursor never runs ahead of an unbounded queue.
	maxAttBacklog = 200
)

// attResult is one finished copy, handed from its goroutine to the worker's loop, which alone touches the
// checkpoint.
type attResult struct {
	issueID string
	a       attachments.Attachment
	res     attachments.Result
	err     error
	took    time.Duration
}

// copies are one invocation's attachment copies in flight. The worker's loop alone touches the checkpoint: it
// offers the queue (offer) and folds the results in (taken); the copies refill themselves as they end (fill),
// so a slot freed in the middle of a search page is used at once rather than at the loop's next step.
type copies struct {
	ctx       context.Context
	cancel    context.CancelFunc
	results   chan attResult
	transfer  func(ctx context.Context, c attCopy) (attachments.Result, error)
	footprint func(size int64) int64
	mayStart  func() bool // false once the invocation's points allowance is spent

	mu      sync.Mutex
	queue   []attCopy        // offered, not started, oldest first
	running map[string]int64 // started and not ended: attachment id → its footprint
	held    int64            // the footprints of the copies running
	ended   map[string]bool  // ended, result not yet taken by the loop
	halted  bool             // no more starts: a copy failed in a way that stops the invocation, or it is ending
}

// attCopy is one attachment to copy, with what the loop knew of it when it offered it.
type attCopy struct {
	issueID string
	a       attachments.Attachment
	resume  *attachments.State
	tgt     attachments.Target
}

func newCopies(ctx context.Context, transfer func(context.Context, attCopy) (attachments.Result, error),
	footprint func(int64) int64, mayStart func() bool) *copies {
	cctx, cancel := context.WithCancel(ctx)
	p := &copies{ctx: cctx, cancel: cancel, transfer: transfer, footprint: footprint, mayStart: mayStart,
		results: make(chan attResult, maxAttBacklog+attMaxInFlight), running: map[string]int64{}, ended: map[string]bool{}}
	return p
}

// offer replaces the waiting list with queue (the checkpoint's, oldest first, less what is running or ended) and
// starts what fits.
func (p *copies) offer(queue []attCopy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queue = p.queue[:0]
	for _, c := range queue {
		if _, ok := p.running[c.a.ID]; !ok && !p.ended[c.a.ID] {
			p.queue = append(p.queue, c)
		}
	}
	p.fill()
}

// fill starts waiting copies, oldest first, while they fit in attMaxInFlight and attBufferBudget; the first that
// does not fit waits for room, so a large attachment is not passed over for ever by small ones. p.mu is held.
func (p *copies) fill() {
	for len(p.queue) > 0 && !p.halted && p.ctx.Err() == nil {
		c := p.queue[0]
		weight := p.footprint(c.a.Size)
		if len(p.running) >= attMaxInFlight || (len(p.running) > 0 && p.held+weight > attBufferBudget) || !p.mayStart() {
			return
		}
		p.queue = p.queue[1:]
		p.running[c.a.ID] = weight
		p.held += weight
		go p.run(c)
	}
}

func (p *copies) run(c attCopy) {
	began := time.Now()
	res, err := p.transfer(p.ctx, c)
	p.mu.Lock()
	p.held -= p.running[c.a.ID]
	delete(p.running, c.a.ID)
	p.ended[c.a.ID] = true
	if err != nil && !errors.Is(err, attachments.ErrGone) && !errors.Is(err, attachments.ErrPermanent) {
		p.halted = true // the invocation stops on this; starting more would spend on a wall or past a deadline
	}
	p.fill()
	p.mu.Unlock()
	p.results <- attResult{issueID: c.issueID, a: c.a, res: res, err: err, took: time.Since(began)}
}

// taken forgets a copy whose result the loop has folded in.
func (p *copies) taken(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.ended, id)
}

// outstanding is the number of copies whose result the loop has not taken yet.
func (p *copies) outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.running) + len(p.ended)
}

// halt stops further starts and returns the number of results still to come.
func (p *copies) halt() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.halted = true
	return len(p.running) + len(p.ended)
}

// attBacklog is the number of attachments queued in the checkpoint.
func (w *worker) attBacklog() int {
	n := 0
	for _, j := range w.ck.AttQueue {
		n += len(j.Download)
	}
	return n
}

// startCopies offers the checkpoint's queue to the copies, which start what fits.
func (w *worker) startCopies() {
	p := w.copies
	if p == nil || w.e.c.Attachments == nil {
		return
	}
	tgt := w.attTarget()
	var queue []attCopy
	for _, job := range w.ck.AttQueue {
		if w.committing(job.IssueID) {
			continue
		}
		for _, a := range job.Download {
			queue = append(queue, attCopy{issueID: job.IssueID, a: a, resume: w.ck.Pending[a.ID], tgt: tgt})
		}
	}
	p.offer(queue)
}

// attachmentWait waits until at least one copy in flight ends (renewing the lease meanwhile), records what has
// ended and checkpoints it: the step the loop takes when the queue must drain (before any phase after the search,
// or when the backlog is full).
func (w *worker) attachmentWait(ctx context.Context) error {
	if err := w.join(ctx); err != nil { // the last page's attachments may be all the queue holds
		return err
	}
	w.startCopies()
	p := w.copies
	var done []attResult
	tick := time.NewTicker(max(w.e.c.Lease/3, time.Second))
	defer tick.Stop()
	for len(done) == 0 && p.outstanding() > 0 {
		select {
		case r := <-p.results:
			done = append(done, r)
		case <-tick.C:
			if err := w.renew(ctx); err != nil {
				return err
			}
			if w.timeUp() {
				return errDeadline
			}
		}
	}
	// One checkpoint a second at most while the queue drains: a crash re-copies at most that second's copies.
	return w.recordCopies(ctx, done, w.e.c.Now().Sub(w.lastSave) >= time.Second)
}

// collectCopies records the copies that have ended, without waiting; they are checkpointed with the next step's
// checkpoint (one transaction, not one per copy).
func (w *worker) collectCopies(ctx context.Context) error {
	if w.copies == nil || w.copies.outstanding() == 0 {
		return nil
	}
	return w.recordCopies(ctx, nil, false)
}

// maxCopyItems bounds the index entries of ended copies waiting for a checkpoint: with a page's entries, the
// checkpoint and the run's conditions they stay under DynamoDB's 100 items per transaction.
const maxCopyItems = 40

// recordCopies applies ended copies (done, and whatever else has ended) to the checkpoint and the issues' index
// entries, and checkpoints them now when save is set, when too many wait, or when one must end the invocation.
// A copy that must go on later (deadline, rate limit, transient failure) keeps its resumable state and its place
// in the queue; its error ends the invocation after the others are saved.
func (w *worker) recordCopies(ctx context.Context, done []attResult, save bool) error {
	p := w.copies
	for more := true; more; {
		select {
		case r := <-p.results:
			done = append(done, r)
		default:
			more = false
		}
	}
	if len(done) == 0 {
		return nil
	}
	stop, err := w.applyCopies(ctx, done)
	if err != nil {
		return err
	}
	w.startCopies() // the copies that ended make room for the next ones before the checkpoint's write
	// With nothing left in flight no further step may write a checkpoint before the manifest's final write, which
	// does not carry them.
	if save || stop != nil || len(w.copyEntries) > maxCopyItems || w.copies.outstanding() == 0 {
		if err := w.save(ctx); err != nil {
			return err
		}
	}
	return stop
}

// applyCopies folds ended copies into the checkpoint and returns the index entries to write with it, and the
// first error that must end the invocation (stop).
func (w *worker) applyCopies(ctx context.Context, done []attResult) (stop, err error) {
	type outcome struct {
		r      attResult
		reason string
	}
	var finished []outcome
	for _, r := range done {
		w.copies.taken(r.a.ID)
		w.points.Add(r.res.Points)
		w.requests.Add(int64(r.res.GatewayRequests))
		var reason string
		switch err := r.err; {
		case err == nil:
			w.log.InfoContext(ctx, "attachment copied", "issueId", r.issueID, "attachmentId", r.a.ID, "bytes", r.res.Stored.Size,
				"ms", r.took.Milliseconds())
		case errors.Is(err, attachments.ErrInterrupted):
			w.setPending(r.a.ID, r.res.Resume)
			if stop == nil {
				stop = errDeadline
			}
			continue
		case errors.Is(err, attachments.ErrGone):
			reason = attGone
		case errors.Is(err, attachments.ErrPermanent):
			w.log.WarnContext(ctx, "attachment copy failed for good", "issueId", r.issueID, "attachmentId", r.a.ID)
			reason = attFailed
		default:
			// Rate limits, re-authorisation, transient failures, a stop: keep what was uploaded and let end() decide.
			if r.res.Resume != nil {
				w.setPending(r.a.ID, r.res.Resume)
			}
			if stop == nil || errors.Is(stop, errDeadline) {
				stop = err
			}
			continue
		}
		if st := w.ck.Pending[r.a.ID]; st != nil && reason != "" {
			_ = w.e.c.Attachments.Abort(ctx, st)
		}
		delete(w.ck.Pending, r.a.ID)
		finished = append(finished, outcome{r, reason})
	}
	if len(finished) == 0 {
		return stop, nil
	}
	ids := make([]string, 0, len(finished))
	for _, f := range finished {
		if !slices.Contains(ids, f.r.issueID) {
			ids = append(ids, f.r.issueID)
		}
	}
	// An issue whose earlier copy is recorded but not yet checkpointed is taken from there, not from the table.
	old := map[string]*indexEntry{}
	var fetch []string
	for _, id := range ids {
		if e := w.copyEntries[id]; e != nil {
			old[id] = e
		} else {
			fetch = append(fetch, id)
		}
	}
	if len(fetch) > 0 {
		got, err := w.idx.getEntries(ctx, w.ref.ConnectionID, w.ref.ConnectorID, fetch)
		if err != nil {
			return stop, err
		}
		maps.Copy(old, got)
	}
	if w.copyEntries == nil {
		w.copyEntries = map[string]*indexEntry{}
	}
	changed := w.copyEntries
	for _, f := range finished {
		a, res := f.r.a, f.r.res
		if e := old[f.r.issueID]; e != nil && !e.Removed {
			info := e.attRun(w.ref.RunID)
			if f.reason == "" {
				e.Stored = append(e.Stored, *res.Stored)
				sort.Slice(e.Stored, func(i, j int) bool { return idNum(e.Stored[i].ID) < idNum(e.Stored[j].ID) })
				info.Written = append(info.Written, w.manifestAtt(a.ID, res.Stored.Size, a.MimeType, res.Stored.SHA256, ""))
				w.ck.Bytes += res.Stored.Size
				w.saved.bytes += res.Stored.Size // a later step's rollback must not take the copy back
			} else {
				info.Skipped = append(info.Skipped, mirror.ManifestAttachment{ID: a.ID, Size: a.Size, MimeType: a.MimeType, Reason: f.reason})
			}
			e.LastRun, e.Action = w.ref.RunID, "written"
			e.setAttRun(info)
			changed[f.r.issueID] = e
		} else if f.reason == "" {
			// The issue left the mirror while its attachment was copied: do not leave the object behind.
			if err := w.e.c.Attachments.Delete(ctx, w.attTarget(), []string{a.ID}); err != nil {
				return stop, err
			}
		}
		w.dequeue(f.r.issueID, a.ID)
	}
	return stop, nil
}

// copyItems are the index entries of recorded copies, for the next checkpoint's transaction.
func (w *worker) copyItems() ([]types.TransactWriteItem, error) {
	items := make([]types.TransactWriteItem, 0, len(w.copyEntries))
	for _, e := range w.copyEntries {
		it, err := w.idx.putEntry(e)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

// dequeue removes one attachment from the checkpoint's queue.
func (w *worker) dequeue(issueID, attID string) {
	for i := range w.ck.AttQueue {
		j := &w.ck.AttQueue[i]
		if j.IssueID != issueID {
			continue
		}
		j.Download = slices.DeleteFunc(j.Download, func(a attachments.Attachment) bool { return a.ID == attID })
		if len(j.Download) == 0 {
			w.ck.AttQueue = slices.Delete(w.ck.AttQueue, i, i+1)
		}
		return
	}
}

// stopCopies ends the copies in flight before the invocation ends: on the deadline it lets them end on their
// own (small ones finish; a resumable one stops at its margin with its state), on any other stop it cancels
// them. What ended is folded into the checkpoint, its index entries into the final write's.
func (w *worker) stopCopies(ctx context.Context, cause error) {
	p := w.copies
	if p == nil {
		return
	}
	defer p.cancel()
	n := p.halt()
	if n == 0 {
		return
	}
	if !errors.Is(cause, errDeadline) && jira.Classify(cause) != jira.KindCancelled {
		p.cancel()
	}
	var done []attResult
	for range n {
		r := <-p.results
		p.taken(r.a.ID)
		done = append(done, r)
	}
	if w.ck == nil {
		return
	}
	if _, err := w.applyCopies(context.WithoutCancel(ctx), done); err != nil {
		w.log.WarnContext(ctx, "export could not record the attachment copies that ended", "error", err)
	}
}

func (w *worker) setPending(id string, st *attachments.State) {
	if st == nil {
		delete(w.ck.Pending, id)
		return
	}
	if w.ck.Pending == nil {
		w.ck.Pending = map[string]*attachments.State{}
	}
	w.ck.Pending[id] = st
}

// abortPending drops every resumable upload of a run that ends without finishing them: one that fails, or one
// cancelled while this invocation ran (its next conditional write answered ErrRunFinished). A run cancelled while
// paused has no invocation to do it: the bucket's AbortIncompleteMultipartUpload rule (one day) does.
func (w *worker) abortPending(ctx context.Context) {
	if w.ck == nil || w.e.c.Attachments == nil {
		return
	}
	for id, st := range w.ck.Pending {
		if err := w.e.c.Attachments.Abort(ctx, st); err != nil {
			w.log.WarnContext(ctx, "abort of an attachment upload failed; the bucket's lifecycle rule will", "attachmentId", id)
		}
	}
}

// attRun is the entry's record of what run did with its attachments (empty when another run wrote it).
func (e *indexEntry) attRun(run string) *mirror.ManifestAttachments {
	out := &mirror.ManifestAttachments{}
	if e.LastRun != run || e.AttRun == "" {
		return out
	}
	_ = json.Unmarshal([]byte(e.AttRun), out)
	return out
}

func (e *indexEntry) setAttRun(m *mirror.ManifestAttachments) {
	for _, l := range []*[]mirror.ManifestAttachment{&m.Written, &m.Kept, &m.Skipped, &m.Deleted} {
		sort.Slice(*l, func(i, j int) bool { return idNum((*l)[i].ID) < idNum((*l)[j].ID) })
	}
	b, _ := json.Marshal(m)
	e.AttRun = string(b)
}
