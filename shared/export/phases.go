package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"jiraexport/shared/connectors"
	"jiraexport/shared/jira"
	"jiraexport/shared/mirror"
)

// maxRemovalsPerBatch keeps a removal batch's transaction (tombstones + checkpoint + run + connection check)
// under DynamoDB's 100 items.
const maxRemovalsPerBatch = 90

// maxPlannedRemovals bounds the removal list kept in the checkpoint (a 400 KB item); more are planned again once
// these are done.
const maxPlannedRemovals = 5000

// count asks Jira how many issues a full run will see (for progress only).
func (w *worker) count(ctx context.Context) error {
	n, err := w.jira.ApproximateCount(ctx, w.site.CloudID, "("+w.ck.BaseJQL+")")
	if err != nil {
		return err
	}
	w.ck.ApproxTotal = n
	w.ck.Phase = phaseSearching
	return w.save(ctx)
}

func (w *worker) searchFields() ([]string, string) {
	fields := []string{"*all", "-lastViewed"} // lastViewed changes whenever the connection's user opens the issue
	if !w.connector.Spec.Include.Comments {
		fields = append(fields, "-comment")
	}
	if !w.connector.Include.Worklogs {
		fields = append(fields, "-worklog") // not exported: neither fetched nor paged
	}
	expand := ""
	if w.connector.Spec.Include.Changelog {
		expand = "changelog"
	}
	return fields, expand
}

// searchPage fetches, completes, writes and checkpoints one page of the search.
func (w *worker) searchPage(ctx context.Context) error {
	fields, expand := w.searchFields()
	size := jira.SearchMaxFull
	if w.ck.PageSize > 0 {
		size = w.ck.PageSize
	}
	began := w.e.c.Now()
	page, err := w.search(ctx, jira.SearchRequest{JQL: w.ck.JQL, Fields: fields, Expand: expand,
		MaxResults: size, NextPageToken: w.ck.NextPageToken})
	if errors.Is(err, jira.ErrCursorExpired) {
		// Restart the search after the last issue fully processed: ids only grow in this order.
		w.log.InfoContext(ctx, "search cursor expired; restarting after the watermark", "lastId", w.ck.LastID)
		w.ck.JQL, w.ck.NextPageToken = searchJQL(w.ck.BaseJQL, w.ck.Since, w.ck.LastID), ""
		return w.save(ctx)
	}
	if from := searchJQL(w.ck.BaseJQL, w.ck.Since, 0); w.ck.NextPageToken == "" && w.ck.JQL != from && isBadRequest(err) {
		// Jira validates the issue an `id >` bound names ("An issue with key '…' does not exist for field 'id'.",
		// the simulator's jql.check): the restart bound was deleted since it was processed. Restart from the
		// first issue instead; unchanged issues are not written again, only their search points are spent.
		w.log.InfoContext(ctx, "restart bound rejected; restarting the search from the first issue", "lastId", w.ck.LastID)
		w.ck.JQL = from
		return w.save(ctx)
	}
	if err != nil {
		return err
	}
	if !page.IsLast && page.NextPageToken != "" {
		w.prefetch(jira.SearchRequest{JQL: w.ck.JQL, Fields: fields, Expand: expand, MaxResults: size, NextPageToken: page.NextPageToken},
			w.e.c.Now().Sub(began), size)
	}
	issues := make([]*rawIssue, 0, len(page.Issues))
	ids := make([]string, 0, len(page.Issues))
	for _, raw := range page.Issues {
		is, err := readIssue(raw)
		if err != nil {
			return unreadable()
		}
		issues = append(issues, is)
		ids = append(ids, is.ID)
	}
	old, err := w.idx.getEntries(ctx, w.ref.ConnectionID, w.ref.ConnectorID, ids)
	if err != nil {
		return err
	}
	full := w.ck.Mode == "full"
	last := page.IsLast || page.NextPageToken == ""
	if last {
		// The search's end reads what the pages stored (planRemovals): every page before this one is stored first.
		if err := w.join(ctx); err != nil {
			return err
		}
	}
	var build []*rawIssue
	var items []types.TransactWriteItem
	var pending []storeJob
	for _, is := range issues {
		w.ck.Selected++
		up := issueUpdated(is)
		w.ck.MaxUpdated = max(w.ck.MaxUpdated, up)
		if o := old[is.ID]; !full && o != nil && !o.Removed && o.Hash != "" && o.Updated == up {
			// Not updated since the mirror took it: nothing to fetch, nothing to write.
			if o.LastRun != w.ref.RunID {
				w.ck.Unchanged++
			}
			continue
		}
		build = append(build, is)
	}
	if len(build) > 0 {
		if err := w.loadFields(ctx); err != nil {
			return err
		}
		var err error
		if last {
			items, err = w.completeAndStore(ctx, build, old, full)
		} else {
			pending, items, err = w.completeAndPlan(ctx, build, old, full)
		}
		if err != nil {
			return err
		}
	}
	if len(issues) > 0 {
		w.ck.LastID = max(w.ck.LastID, idNum(issues[len(issues)-1].ID))
	}
	w.ck.NextPageToken = page.NextPageToken
	if !last {
		return w.commitPage(ctx, pending, items) // done (pagesDone) once joined
	}
	if err := w.endSearch(ctx); err != nil {
		return err
	}
	if err := w.save(ctx, items...); err != nil {
		return err
	}
	w.pagesDone++ // only once saved: a page whose checkpoint missed the deadline is done again, so it did not fit
	return nil
}

// prefetch is a search page asked for ahead, while the pages before it are processed: the search is a chain
// (each page's cursor comes with the page before), so overlapping it with the follow-ups, the S3 writes and the
// checkpoints is what brings a run near the chain's own latency. Up to two pages are asked for ahead of the one
// being processed: when the next page's answer comes in while the worker is still busy, the page after it is
// asked for at once (chain), so a page that takes the worker longer than a search answer does not hold the chain
// back, and a faster one after it catches up. The answers wait undecoded (their issues decoded would be several
// times their JSON, all of it for the collector to scan).
type prefetch struct {
	req  jira.SearchRequest
	done chan struct{} // closed once page or err is set
	page *jira.SearchPage
	err  error

	mu      sync.Mutex
	arrived bool   // the answer is in
	token   string // its next page's cursor, "" on the last page or a failure
	chain   bool   // ask for the next page as soon as the answer is in
	follow  *prefetch
	limits  prefetchLimits
}

// search returns the page req asks for: the prefetched one when it is that page, else a new request.
func (w *worker) search(ctx context.Context, req jira.SearchRequest) (*jira.SearchPage, error) {
	if p := w.next; p != nil {
		// Waited for in every case (here, or by stop when this invocation ends first): its points are counted
		// before the invocation's last flush to the ledger.
		select {
		case <-p.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		p.mu.Lock()
		w.next = p.follow
		p.mu.Unlock()
		if p.req.JQL == req.JQL && p.req.NextPageToken == req.NextPageToken && p.req.MaxResults == req.MaxResults &&
			p.req.Expand == req.Expand && slices.Equal(p.req.Fields, req.Fields) {
			var rl *jira.RateLimitError
			switch {
			case p.err == nil:
				return p.page, nil
			case errors.As(p.err, &rl):
				// Its Retry-After counts from when it came (RateLimitError.At), however long it waited here.
				return nil, p.err
			case errors.Is(p.err, jira.ErrCursorExpired):
				// Jira refused the token: asking again would pay for the same refusal.
				return nil, p.err
			}
			// Any other failure is asked again: it may have been transient, and the answer is fresh.
		}
		// Not the page asked for: neither is what it asked for after it.
		w.dropPrefetch()
	}
	return w.jira.Search(ctx, w.site.CloudID, req)
}

// dropPrefetch waits for the pages asked for ahead and forgets them (their points are counted once they end).
func (w *worker) dropPrefetch() {
	for p := w.next; p != nil; {
		<-p.done
		p.mu.Lock()
		f := p.follow
		p.mu.Unlock()
		p = f
	}
	w.next = nil
}

// prefetchLimits say whether a page may be asked for ahead: not when it might be paid for and not used, too close
// to the invocation's deadline for the pages before it to finish (took is what the last page's search took), or
// beyond the invocation's points allowance (a page costs 1 + its issues).
type prefetchLimits struct {
	deadline time.Time
	took     time.Duration
	size     int
	meter    *meter
	now      func() time.Time
}

// allow reports whether a page may be asked for with ahead pages (itself included) not yet processed.
func (l prefetchLimits) allow(ahead int) bool {
	if !l.deadline.IsZero() && l.deadline.Sub(l.now()) < time.Duration(ahead)*4*l.took+10*time.Second {
		return false
	}
	return l.meter.allowance <= 0 || l.meter.tally.Points()+int64(ahead+1)*int64(l.size+1) <= l.meter.allowance
}

// prefetch makes sure the page after the current one (req) is asked for, and lets its answer ask for the page
// after it at once.
func (w *worker) prefetch(req jira.SearchRequest, took time.Duration, size int) {
	lim := prefetchLimits{deadline: w.deadline, took: took, size: size, meter: w.meter(), now: w.e.c.Now}
	if w.next == nil {
		if !lim.allow(1) {
			return
		}
		w.next = w.startPrefetch(req, lim)
	}
	p := w.next
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.follow != nil {
		return
	}
	if !p.arrived {
		p.chain, p.limits = true, lim
		return
	}
	w.askFollow(p, lim)
}

// askFollow asks for the page after p's answer, when there is one and lim allows two pages ahead. p.mu is held.
func (w *worker) askFollow(p *prefetch, lim prefetchLimits) {
	if p.token == "" || !lim.allow(2) {
		return
	}
	next := p.req
	next.NextPageToken = p.token
	p.follow = w.startPrefetch(next, lim)
}

// startPrefetch asks for a page in the background. It reads only what does not change during the invocation.
func (w *worker) startPrefetch(req jira.SearchRequest, lim prefetchLimits) *prefetch {
	p := &prefetch{req: req, done: make(chan struct{})}
	ctx := w.ctx // stop waits for it: a token refresh it started must finish (a refused one flags the connection)
	go func() {
		defer close(p.done)
		page, err := w.jira.Search(ctx, w.site.CloudID, req)
		p.mu.Lock()
		p.arrived = true
		if err == nil && !page.IsLast {
			p.token = page.NextPageToken
		}
		if p.chain {
			w.askFollow(p, p.limits)
		}
		p.mu.Unlock()
		p.page, p.err = page, err
	}()
	return p
}

func issueUpdated(is *rawIssue) int64 {
	if t, ok := jiraTime(is.updated); ok {
		return t.UnixMilli()
	}
	return 0
}

// loadFields reads /rest/api/3/field once per run (then it lives in the checkpoint).
func (w *worker) loadFields(ctx context.Context) error {
	if w.ck.FieldsLoaded {
		return nil
	}
	fs, err := w.jira.Fields(ctx, w.site.CloudID)
	switch {
	case errors.Is(err, jira.ErrNotFound):
		// No field catalogue: documents carry ids only and the scrubber relies on shapes.
	case err != nil:
		return err
	default:
		w.ck.Fields = fieldsFromJira(fs)
	}
	w.ck.FieldsLoaded = true
	w.scrub.UserFields = userFields(w.ck.Fields)
	return nil
}

// built is one issue's finished document.
type built struct {
	doc  *mirror.Issue
	body []byte
	md   []byte // issues/<issueId>.md; nil when the connector does not write Markdown
}

// complete fetches what the embedded lists lack (comments and worklogs paged per issue, changelogs in bulk) and
// builds the documents. An issue that vanished meanwhile is left out (the census removes it).
//
// The issues whose lists are complete are built while the others' follow-ups are in flight, and each issue's
// decoded JSON is released as soon as its document is built: a page's decoded issues (pointer-rich trees of
// several MB) used to stay live until every follow-up returned and the page was written. The export runs under
// a tight GOMEMLIMIT, where the collector's work grows with what is live (BENCHMARKS.md).
func (w *worker) complete(ctx context.Context, issues []*rawIssue) ([]built, error) {
	inc := w.connector.Spec.Include
	type parts struct{ comments, worklogs, changelog *childList }
	ps := make([]parts, len(issues))
	gone := make([]bool, len(issues))
	out := make([]*built, len(issues))
	need := make([]bool, len(issues))
	for i, is := range issues {
		need[i] = w.needsFollowUp(is)
	}
	if err := w.renew(ctx); err != nil {
		return nil, err
	}
	// Only issues whose embedded lists are incomplete call Jira; they are completed in parallel, within the
	// pacer's buckets, so a page's follow-ups cost one round trip of wall time rather than one per issue.
	// A failure stops the follow-ups not yet started but does not cancel those in flight: one of them may be
	// refreshing the token, and a refused refresh must get to flag the connection.
	var g errgroup.Group
	g.SetLimit(followUpConcurrency)
	var failed atomic.Bool
	launched := make(chan struct{})
	go func() {
		defer close(launched)
		for i, is := range issues {
			if !need[i] || failed.Load() {
				continue
			}
			g.Go(func() (err error) {
				if failed.Load() {
					return nil
				}
				defer func() {
					switch {
					case errors.Is(err, jira.ErrNotFound):
						gone[i] = true
						err = nil
					case err != nil:
						failed.Store(true)
					}
				}()
				if err := is.decode(); err != nil {
					return unreadable()
				}
				if inc.Comments {
					if ps[i].comments, err = w.pageRest(ctx, is.ID, is.embedded("comment", "comments"), w.jira.Comments); err != nil {
						return err
					}
				}
				if emb := is.embedded("worklog", "worklogs"); emb != nil && inc.Worklogs {
					if ps[i].worklogs, err = w.pageRest(ctx, is.ID, emb, w.jira.Worklogs); err != nil {
						return err
					}
				}
				if inc.Changelog && is.Changelog != nil {
					if ps[i].changelog, err = w.completeChangelog(ctx, is.ID, is.Changelog); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}()
	wait := func() error {
		<-launched
		return g.Wait()
	}
	build := func(i int) error {
		is := issues[i]
		doc, body, err := buildDocument(docInput{issue: is, site: w.site, meta: w.ck.Fields, scrub: w.scrub,
			comments: ps[i].comments, changelog: ps[i].changelog, worklogs: ps[i].worklogs})
		if err != nil {
			return err
		}
		b := built{doc: doc, body: body}
		if err := w.addMarkdown(&b); err != nil {
			return err
		}
		// What the page's writes and index entries read of the document from here on (planStore, entryFor,
		// planAttachments); its fields share the decoded issue, which goes with them.
		b.doc = &mirror.Issue{ID: doc.ID, Key: doc.Key, Updated: doc.Updated, Attachments: doc.Attachments, Counts: doc.Counts}
		is.release()
		out[i] = &b
		return nil
	}
	for i, is := range issues {
		if need[i] {
			continue
		}
		if err := is.decode(); err != nil {
			failed.Store(true)
			_ = wait()
			return nil, unreadable()
		}
		if inc.Comments {
			ps[i].comments = completeOrNil(is.embedded("comment", "comments"))
		}
		if emb := is.embedded("worklog", "worklogs"); emb != nil && inc.Worklogs {
			ps[i].worklogs = completeOrNil(emb)
		}
		if inc.Changelog && is.Changelog != nil {
			ps[i].changelog = completeOrNil(is.Changelog)
		}
		if err := build(i); err != nil {
			failed.Store(true)
			_ = wait()
			return nil, err
		}
	}
	if err := wait(); err != nil {
		return nil, err
	}
	res := make([]built, 0, len(issues))
	for i := range issues {
		if gone[i] {
			continue
		}
		if out[i] == nil {
			if err := build(i); err != nil {
				return nil, err
			}
		}
		res = append(res, *out[i])
	}
	return res, nil
}

// unreadable fails a run on an issue whose JSON cannot be decoded.
func unreadable() error {
	return &failure{reason: ReasonJira, msg: "Jira returned an issue the export cannot read"}
}

// followUpConcurrency bounds one page's child-page requests in flight at once.
const followUpConcurrency = 8

// needsFollowUp reports whether an issue's embedded child lists are incomplete (the only case that costs requests).
func (w *worker) needsFollowUp(is *rawIssue) bool {
	inc := w.connector.Spec.Include
	if inc.Comments && is.comment.incomplete() {
		return true
	}
	if is.worklog != nil && inc.Worklogs && is.worklog.incomplete() {
		return true
	}
	return inc.Changelog && is.changelog != nil && is.changelog.incomplete()
}

// completeOrNil copies a complete embedded list as pageRest would return it.
func completeOrNil(emb *childList) *childList {
	return &childList{Items: append([]any(nil), emb.Items...), Total: emb.Total}
}

// pageRest completes an embedded child list by paging from where it ends (frugal: the embedded part is not
// fetched again).
func (w *worker) pageRest(ctx context.Context, issueID string, emb *childList, page func(context.Context, string, string, int) (*jira.ChildPage, error)) (*childList, error) {
	if emb == nil {
		emb = &childList{Items: []any{}}
	}
	out := &childList{Items: append([]any(nil), emb.Items...), Total: emb.Total}
	for len(out.Items) < out.Total {
		p, err := page(ctx, w.site.CloudID, issueID, len(out.Items))
		if err != nil {
			return nil, err
		}
		items := p.Items()
		for _, raw := range items {
			var v any
			if err := decodeJSON(raw, &v); err != nil {
				return nil, &failure{reason: ReasonJira, msg: "Jira returned a child the export cannot read"}
			}
			out.Items = append(out.Items, v)
		}
		out.Total = p.Total
		if len(items) == 0 {
			break
		}
	}
	return out, nil
}

// completeChangelog fetches the entries a search's embedded changelog lacks. Search embeds the newest entries, so
// the missing ones are the oldest: they are paged from the start, asking for exactly as many as are missing
// (each entry costs a point), and merged by id, so an embedded page of any order still ends complete.
//
// Points: this costs 1 + (total - embedded) per incomplete issue; /changelog/bulkfetch would cost the issue's
// whole changelog again (it cannot start mid-list) and saves requests only, so paging is the frugal way.
func (w *worker) completeChangelog(ctx context.Context, issueID string, emb *childList) (*childList, error) {
	seen := map[string]bool{}
	out := &childList{Items: append([]any(nil), emb.Items...), Total: emb.Total}
	for _, h := range emb.Items {
		if m, ok := h.(map[string]any); ok {
			seen[str(m, "id")] = true
		}
	}
	for start := 0; len(out.Items) < out.Total; {
		p, err := w.jira.ChangelogN(ctx, w.site.CloudID, issueID, start, out.Total-len(out.Items))
		if err != nil {
			return nil, err
		}
		items := p.Items()
		for _, raw := range items {
			var v any
			if err := decodeJSON(raw, &v); err != nil {
				return nil, &failure{reason: ReasonJira, msg: "Jira returned a changelog the export cannot read"}
			}
			if m, ok := v.(map[string]any); ok && !seen[str(m, "id")] {
				seen[str(m, "id")] = true
				out.Items = append(out.Items, v)
			}
		}
		out.Total = p.Total
		start += len(items)
		if len(items) == 0 || start >= p.Total {
			break
		}
		if err := w.renew(ctx); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// putConcurrency bounds the S3 writes of one page in flight at once.
const putConcurrency = 8

// storeAll writes the documents the mirror does not already hold exactly (in parallel) and returns the index
// entries to write with the checkpoint.
func (w *worker) storeAll(ctx context.Context, docs []built, old map[string]*indexEntry, full bool) ([]types.TransactWriteItem, error) {
	jobs, err := w.planStore(ctx, docs, old, full)
	if err != nil {
		return nil, err
	}
	if err := w.putAll(ctx, jobs); err != nil {
		return nil, err
	}
	return w.tallyStore(jobs, old)
}

// storeJob is one document's write: what to put, and the index entry to write with the checkpoint.
type storeJob struct {
	d     built
	entry *indexEntry
	put   bool
	md    mdAction
}

// planStore decides each document's write and plans its attachments (it changes the checkpoint: the worker's
// goroutine only).
func (w *worker) planStore(ctx context.Context, docs []built, old map[string]*indexEntry, full bool) ([]storeJob, error) {
	jobs := make([]storeJob, 0, len(docs))
	for _, d := range docs {
		e, put := w.decide(d, old[d.doc.ID], full)
		// Attachments are planned against the index whatever happens to the document (the rules may have
		// changed, or a copy may have failed before).
		probe := e
		if probe == nil {
			probe = w.entryFor(d, old[d.doc.ID])
		}
		changed, err := w.planAttachments(ctx, d.doc, old[d.doc.ID], probe)
		if err != nil {
			return nil, err
		}
		if changed {
			// The run changes what the mirror holds for this issue: the manifest lists it.
			probe.LastRun, probe.Action = w.ref.RunID, "written"
		}
		if o := old[d.doc.ID]; e == nil && (changed || o == nil || !slices.Equal(probe.Stored, o.Stored)) {
			e = probe
		}
		e, md := w.decideMarkdown(d, old[d.doc.ID], e)
		jobs = append(jobs, storeJob{d, e, put, md})
	}
	return jobs, nil
}

// putAll writes the jobs' objects, putConcurrency at a time. It touches nothing of the worker's state, so it may
// run beside the worker's goroutine.
func (w *worker) putAll(ctx context.Context, jobs []storeJob) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(putConcurrency)
	for _, j := range jobs {
		if j.md != mdKeep {
			g.Go(func() error { return w.storeMarkdown(gctx, j.d, j.md) })
		}
		if !j.put {
			continue
		}
		g.Go(func() error {
			return w.e.c.Mirror.Put(gctx, mirror.IssueKey(w.ref.ConnectionID, w.ref.ConnectorID, j.d.doc.ID), j.d.body, mirror.JSONType)
		})
	}
	return g.Wait()
}

// tallyStore counts the written jobs in the checkpoint and returns their index entries.
func (w *worker) tallyStore(jobs []storeJob, old map[string]*indexEntry) ([]types.TransactWriteItem, error) {
	var items []types.TransactWriteItem
	for _, j := range jobs {
		o := old[j.d.doc.ID]
		if j.md == mdPut {
			w.ck.Bytes += int64(len(j.d.md))
		}
		if j.put {
			w.ck.Bytes += int64(len(j.d.body))
			if o == nil || o.LastRun != w.ref.RunID || o.Action != "written" {
				w.ck.Written++
			}
		} else if o.LastRun != w.ref.RunID {
			if j.entry != nil && j.entry.LastRun == w.ref.RunID {
				w.ck.Written++ // only its attachments changed
			} else {
				w.ck.Unchanged++
			}
		}
		if j.entry == nil {
			continue
		}
		it, err := w.idx.putEntry(j.entry)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

// completeAndPlan builds a page's documents and plans their writes without making them: it returns the writes,
// for the page's commit (commit.go), and the index entries to write with its checkpoint.
func (w *worker) completeAndPlan(ctx context.Context, issues []*rawIssue, old map[string]*indexEntry, full bool) ([]storeJob, []types.TransactWriteItem, error) {
	docs, err := w.complete(ctx, issues)
	if err != nil {
		return nil, nil, err
	}
	jobs, err := w.planStore(ctx, docs, old, full)
	if err != nil {
		return nil, nil, err
	}
	items, err := w.tallyStore(jobs, old)
	return jobs, items, err
}

// completeAndStore builds and stores a page's documents and returns the index entries to write with its
// checkpoint, overlapping the S3 writes of the issues that need no follow-up with the follow-ups of the others
// (child pages, one Jira round trip or more): a page costs the longer of the two, not their sum.
func (w *worker) completeAndStore(ctx context.Context, issues []*rawIssue, old map[string]*indexEntry, full bool) ([]types.TransactWriteItem, error) {
	var ready, later []*rawIssue
	for _, is := range issues {
		if w.needsFollowUp(is) {
			later = append(later, is)
		} else {
			ready = append(ready, is)
		}
	}
	if len(ready) == 0 || len(later) == 0 {
		docs, err := w.complete(ctx, issues)
		if err != nil {
			return nil, err
		}
		return w.storeAll(ctx, docs, old, full)
	}
	docs, err := w.complete(ctx, ready) // no Jira calls: every list is complete
	if err != nil {
		return nil, err
	}
	first, err := w.planStore(ctx, docs, old, full)
	if err != nil {
		return nil, err
	}
	putDone := make(chan error, 1)
	go func() { putDone <- w.putAll(ctx, first) }()
	rest, err := w.complete(ctx, later)
	var jobs []storeJob
	if err == nil {
		jobs, err = w.planStore(ctx, rest, old, full)
	}
	if err == nil {
		err = w.putAll(ctx, jobs)
	}
	// Always waited for: nothing of this page may still be writing when the worker goes on or stops.
	if perr := <-putDone; err == nil {
		err = perr
	}
	if err != nil {
		return nil, err
	}
	return w.tallyStore(append(first, jobs...), old)
}

// entryFor is the index entry for a built document, carrying over the old entry's run marks and attachments.
func (w *worker) entryFor(d built, old *indexEntry) *indexEntry {
	e := &indexEntry{PK: pkOf(w.ref), SK: idxSK(w.ref.ConnectorID, d.doc.ID), ConnID: w.ref.ConnectionID, IssueID: d.doc.ID,
		Key: d.doc.Key, Updated: d.doc.Updated, Hash: mirror.Hash(d.body)}
	for _, a := range d.doc.Attachments {
		e.Attachments = append(e.Attachments, a.ID)
	}
	if cb, err := json.Marshal(d.doc.Counts); err == nil {
		e.Counts = string(cb)
	}
	if old != nil {
		e.SeenRun, e.LastRun, e.Action = old.SeenRun, old.LastRun, old.Action
		if !old.Removed {
			e.Stored, e.AttRun = old.Stored, old.AttRun
		}
	}
	return e
}

// decide says whether a document must be written and which index entry to write (nil: none needed).
func (w *worker) decide(d built, old *indexEntry, full bool) (*indexEntry, bool) {
	e := w.entryFor(d, old)
	hash := e.Hash
	if full {
		e.SeenRun = w.ref.RunID
	}
	if old != nil && !old.Removed && old.Hash == hash {
		if old.Updated == e.Updated && old.SeenRun == e.SeenRun {
			return nil, false
		}
		return e, false
	}
	e.LastRun, e.Action = w.ref.RunID, "written"
	return e, true
}

// endSearch moves on from the search: a full run's search was its census (every matching issue carries the
// run's id in seenRun); an incremental run takes a census when one is due.
func (w *worker) endSearch(ctx context.Context) error {
	w.ck.NextPageToken = ""
	switch {
	case w.ck.Mode == "full":
		return w.planRemovals(ctx, nil)
	case w.ck.Census:
		w.ck.Phase = phaseCensus
	default:
		w.ck.Phase = phaseManifest
	}
	return nil
}

// planRemovals lists the mirrored issues the run did not see (full: seenRun; incremental: the census set) into
// the checkpoint and moves to the deleting phase (or the manifest when there are none).
func (w *worker) planRemovals(ctx context.Context, census map[string]bool) error {
	var plan []string
	more := false
	live := map[string]bool{}
	err := w.idx.eachEntry(ctx, w.ref.ConnectionID, w.ref.ConnectorID, func(e *indexEntry) error {
		if e.Removed {
			return nil
		}
		live[e.IssueID] = true
		seen := e.SeenRun == w.ref.RunID
		if census != nil {
			seen = census[e.IssueID]
		}
		if !seen {
			if len(plan) >= maxPlannedRemovals {
				more = true
				return nil
			}
			plan = append(plan, e.IssueID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.ck.ToRemove, w.ck.RemoveMore = plan, more
	if census != nil {
		// Issues the census sees that the mirror lacks although they were not updated (a permission restored,
		// an issue that failed to export before): fetched by id in the backfill phase.
		var fetch []string
		for id := range census {
			if !live[id] && len(fetch) < maxPlannedRemovals {
				fetch = append(fetch, id)
			}
		}
		sort.Slice(fetch, func(a, b int) bool { return idNum(fetch[a]) < idNum(fetch[b]) })
		w.ck.ToFetch = fetch
	}
	w.ck.Phase = phaseDeleting
	if len(plan) == 0 {
		w.ck.Phase = w.afterRemovals()
	}
	return nil
}

// afterRemovals is the phase that follows the removals.
func (w *worker) afterRemovals() string {
	if len(w.ck.ToFetch) > 0 {
		return phaseBackfill
	}
	return phaseManifest
}

// backfill fetches one batch of census-found issues the mirror lacks (/issue/bulkfetch, 50 at a time) and stores
// them like a search page.
func (w *worker) backfill(ctx context.Context) error {
	n := min(len(w.ck.ToFetch), jira.SearchMaxFull)
	batch := w.ck.ToFetch[:n]
	fields, expand := w.searchFields()
	raws, err := w.jira.BulkFetch(ctx, w.site.CloudID, batch, fields, expand)
	if err != nil {
		return err
	}
	issues := make([]*rawIssue, 0, len(raws))
	ids := make([]string, 0, len(raws))
	for _, raw := range raws {
		is, err := readIssue(raw)
		if err != nil {
			return unreadable()
		}
		issues = append(issues, is)
		ids = append(ids, is.ID)
		w.ck.Selected++
		w.ck.MaxUpdated = max(w.ck.MaxUpdated, issueUpdated(is))
	}
	var items []types.TransactWriteItem
	if len(issues) > 0 {
		old, err := w.idx.getEntries(ctx, w.ref.ConnectionID, w.ref.ConnectorID, ids)
		if err != nil {
			return err
		}
		if err := w.loadFields(ctx); err != nil {
			return err
		}
		docs, err := w.complete(ctx, issues)
		if err != nil {
			return err
		}
		if items, err = w.storeAll(ctx, docs, old, false); err != nil {
			return err
		}
	}
	w.ck.ToFetch = w.ck.ToFetch[n:]
	if len(w.ck.ToFetch) == 0 {
		w.ck.Phase = phaseManifest
	}
	return w.save(ctx, items...)
}

// census lists every id the JQL matches (id only, 5000 per page) and plans the removal of the rest. The set
// lives in memory: a census cut short by the deadline starts again in the next invocation.
func (w *worker) census(ctx context.Context) error {
	set := map[string]bool{}
	next := ""
	jql := searchJQL(w.ck.BaseJQL, 0, 0)
	for {
		if w.timeUp() {
			return errDeadline
		}
		ids, n, err := w.jira.CensusPage(ctx, w.site.CloudID, jql, next)
		if errors.Is(err, jira.ErrCursorExpired) {
			clear(set)
			next = ""
			continue
		}
		if err != nil {
			return err
		}
		for _, id := range ids {
			set[id] = true
		}
		if err := w.renew(ctx); err != nil {
			return err
		}
		if n == "" {
			break
		}
		next = n
	}
	w.ck.CensusDone = true
	if err := w.planRemovals(ctx, set); err != nil {
		return err
	}
	return w.save(ctx)
}

// stillMatching checks planned removals against Jira before anything is deleted: /issue/bulkfetch (fields=id)
// tells which still exist and are visible, and a search restricted to those ids tells which of them the JQL still
// selects. It costs two requests per batch, only when there is something to remove.
func (w *worker) stillMatching(ctx context.Context, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	var visible []string
	for start := 0; start < len(ids); start += jira.BulkFetchMax {
		raws, err := w.jira.BulkFetch(ctx, w.site.CloudID, ids[start:min(start+jira.BulkFetchMax, len(ids))], []string{"id"}, "")
		if err != nil {
			return nil, err
		}
		for _, raw := range raws {
			var is struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(raw, &is); err == nil && is.ID != "" {
				visible = append(visible, is.ID)
			}
		}
	}
	if len(visible) == 0 {
		return out, nil
	}
	// Every id named here exists and is visible, so Jira has no unknown issue to reject in the list.
	jql := "(" + w.ck.BaseJQL + ") AND id in (" + strings.Join(visible, ", ") + ")"
	next := ""
	for {
		got, n, err := w.jira.CensusPage(ctx, w.site.CloudID, jql, next)
		if err != nil {
			return nil, err
		}
		for _, id := range got {
			out[id] = true
		}
		if n == "" {
			return out, nil
		}
		next = n
	}
}

// deleteBatch removes one batch of planned issues from the mirror: objects first (deleting is idempotent), then
// tombstones with the checkpoint in one transaction.
func (w *worker) deleteBatch(ctx context.Context) error {
	n := min(len(w.ck.ToRemove), maxRemovalsPerBatch)
	batch := w.ck.ToRemove[:n]
	old, err := w.idx.getEntries(ctx, w.ref.ConnectionID, w.ref.ConnectorID, batch)
	if err != nil {
		return err
	}
	still, err := w.stillMatching(ctx, batch)
	if err != nil {
		return err
	}
	var items []types.TransactWriteItem
	for _, id := range batch {
		o := old[id]
		if o == nil || o.Removed {
			continue
		}
		if still[id] {
			// The search missed it (a cursor's offsets can shift when an earlier issue goes away mid-run), but
			// it still matches: keep it and fetch it again rather than remove it.
			w.ck.ToFetch = append(w.ck.ToFetch, id)
			continue
		}
		keys := []string{mirror.IssueKey(w.ref.ConnectionID, w.ref.ConnectorID, id), mirror.IssueMarkdownKey(w.ref.ConnectionID, w.ref.ConnectorID, id)}
		for _, a := range o.Attachments {
			keys = append(keys, mirror.AttachmentKey(w.ref.ConnectionID, w.ref.ConnectorID, a))
		}
		for _, k := range keys {
			if err := w.e.c.Mirror.Delete(ctx, k); err != nil {
				return err
			}
		}
		t := &indexEntry{PK: o.PK, SK: o.SK, ConnID: o.ConnID, IssueID: id, Key: o.Key, Updated: o.Updated,
			LastRun: w.ref.RunID, Action: "removed", Removed: true, TTL: w.e.c.Now().Add(tombstoneTTL).Unix()}
		it, err := w.idx.putEntry(t)
		if err != nil {
			return err
		}
		items = append(items, it)
		w.ck.Removed++
	}
	w.ck.ToRemove = w.ck.ToRemove[n:]
	if len(w.ck.ToRemove) == 0 {
		switch {
		case !w.ck.RemoveMore:
			w.ck.Phase = w.afterRemovals()
		case w.ck.Mode == "full":
			// Plan the next ones after this batch is committed (planning reads the tombstones).
			w.ck.Phase = phasePlanning
		default:
			w.ck.Phase = phaseCensus
		}
	}
	return w.save(ctx, items...)
}

// plan re-plans removals of a full run whose list was longer than one checkpoint holds.
func (w *worker) plan(ctx context.Context) error {
	if err := w.planRemovals(ctx, nil); err != nil {
		return err
	}
	return w.save(ctx)
}

// finish writes the manifest and finishes the run with the new sync state, in one transaction with the
// checkpoint's removal.
func (w *worker) finish(ctx context.Context) error {
	m := &mirror.Manifest{Schema: mirror.ManifestSchema, RunID: w.ref.RunID, ConnectorID: w.ref.ConnectorID, Site: w.site,
		Mode: w.ck.Mode, Census: w.ck.Mode == "full" || w.ck.Census, Written: []mirror.ManifestIssue{}, Removed: []mirror.ManifestIssue{}}
	err := w.idx.eachEntry(ctx, w.ref.ConnectionID, w.ref.ConnectorID, func(e *indexEntry) error {
		if e.LastRun != w.ref.RunID {
			return nil
		}
		switch {
		case e.Action == "written" && !e.Removed:
			mi := mirror.ManifestIssue{ID: e.IssueID, Key: e.Key, SHA256: e.Hash, Counts: e.counts(),
				Object: mirror.IssueKey(w.ref.ConnectionID, w.ref.ConnectorID, e.IssueID)}
			if a := e.attRun(w.ref.RunID); len(a.Written)+len(a.Kept)+len(a.Skipped)+len(a.Deleted) > 0 {
				mi.Attachments = a
			}
			m.Written = append(m.Written, mi)
		case e.Action == "removed" && e.Removed:
			m.Removed = append(m.Removed, mirror.ManifestIssue{ID: e.IssueID, Key: e.Key, Reason: "gone",
				Object: mirror.IssueKey(w.ref.ConnectionID, w.ref.ConnectorID, e.IssueID)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	byID := func(l []mirror.ManifestIssue) {
		sort.Slice(l, func(a, b int) bool { return idNum(l[a].ID) < idNum(l[b].ID) })
	}
	byID(m.Written)
	byID(m.Removed)
	watermark := w.ck.Watermark
	if w.sync != nil {
		watermark = max(watermark, w.sync.Watermark)
	}
	watermark = max(watermark, w.ck.MaxUpdated)
	p := w.progress()
	now := w.e.c.Now()
	m.Watermark = watermark
	m.Counts = mirror.ManifestCounts{Selected: w.ck.Selected, Written: int64(len(m.Written)), Unchanged: w.ck.Unchanged, Removed: int64(len(m.Removed))}
	m.Stats = mirror.ManifestStats{StartedAt: w.ck.StartedAt, FinishedAt: now.UTC().Format(time.RFC3339Nano), Invocations: w.invocations,
		Requests: w.ck.Requests, Points: w.ck.Points, Bytes: w.ck.Bytes, PhaseMillis: w.ck.PhaseMillis}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := w.e.c.Mirror.Put(ctx, mirror.ManifestKey(w.ref.ConnectionID, w.ref.ConnectorID, w.ref.RunID), body, mirror.JSONType); err != nil {
		return err
	}
	s := &syncState{PK: pkOf(w.ref), SK: syncSK(w.ref.ConnectorID), ConnID: w.ref.ConnectionID, Watermark: watermark,
		Fingerprint: w.ck.Fingerprint, LastRun: w.ref.RunID, LastRunAt: now.UnixMilli()}
	if w.sync != nil {
		s.LastFullRun, s.LastFullRunAt, s.LastCensusAt = w.sync.LastFullRun, w.sync.LastFullRunAt, w.sync.LastCensusAt
	}
	if w.ck.Mode == "full" {
		s.LastFullRun, s.LastFullRunAt, s.LastCensusAt = w.ref.RunID, now.UnixMilli(), now.UnixMilli()
	} else if w.ck.CensusDone {
		s.LastCensusAt = now.UnixMilli()
	}
	syncItem, err := w.idx.putSync(s)
	if err != nil {
		return err
	}
	p.Counters = manifestCounters(p.Counters, m)
	if err := w.e.c.Runs.FinishRun(ctx, w.ref, w.owner, connectors.RunSucceeded, p, syncItem, w.idx.deleteCheckpoint(w.ref)); err != nil {
		return err
	}
	w.log.InfoContext(ctx, "export succeeded", "mode", w.ck.Mode, "written", len(m.Written), "unchanged", w.ck.Unchanged,
		"removed", len(m.Removed), "requests", w.ck.Requests, "points", w.ck.Points)
	return nil
}

// isBadRequest reports a 400 from Jira (the request itself was refused, e.g. its JQL).
func isBadRequest(err error) bool {
	var se *jira.StatusError
	return errors.As(err, &se) && se.Status == http.StatusBadRequest
}
