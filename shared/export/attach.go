package export

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/oauth2"

	"jiraexport/shared/attachments"
	"jiraexport/shared/connectors"
	"jiraexport/shared/mirror"
)

// Attachments copies attachments into the mirror (shared/attachments.Transferor).
type Attachments interface {
	Transfer(ctx context.Context, ts oauth2.TokenSource, tgt attachments.Target, a attachments.Attachment, resume *attachments.State) (attachments.Result, error)
	Delete(ctx context.Context, tgt attachments.Target, ids []string) error
	Abort(ctx context.Context, st *attachments.State) error
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

// attachmentStep copies the next queued attachment and checkpoints the result with the issue's index entry. An
// interrupted transfer leaves its resumable state in the checkpoint and pauses the run (reason deadline).
func (w *worker) attachmentStep(ctx context.Context) error {
	job := &w.ck.AttQueue[0]
	a := job.Download[0]
	tctx, stop := w.holdLease(ctx)
	res, err := w.e.c.Attachments.Transfer(tctx, w.ts, w.attTarget(), a, w.ck.Pending[a.ID])
	leaseErr := stop()
	w.points.Add(res.Points)
	w.requests.Add(int64(res.GatewayRequests))
	if leaseErr != nil {
		// The run was cancelled or taken over while the copy ran: stop without recording anything. A cancelled
		// run's upload is nobody's any more: end aborts it with the other pending ones (a run taken over keeps
		// its uploads for the new holder, who resumes from the checkpoint).
		if errors.Is(leaseErr, connectors.ErrRunFinished) {
			w.setPending(a.ID, res.Resume)
		}
		return leaseErr
	}
	var reason string
	switch {
	case err == nil:
	case errors.Is(err, attachments.ErrInterrupted):
		w.setPending(a.ID, res.Resume)
		return errDeadline
	case errors.Is(err, attachments.ErrGone):
		reason = attGone
	case errors.Is(err, attachments.ErrPermanent):
		w.log.WarnContext(ctx, "attachment copy failed for good", "issueId", job.IssueID, "attachmentId", a.ID)
		reason = attFailed
	default:
		// Rate limits, re-authorisation and transient failures: keep what was uploaded and let end() decide.
		w.setPending(a.ID, res.Resume)
		return err
	}
	if st := w.ck.Pending[a.ID]; st != nil && reason != "" {
		_ = w.e.c.Attachments.Abort(ctx, st)
	}
	delete(w.ck.Pending, a.ID)
	old, err := w.idx.getEntries(ctx, w.ref.ConnectionID, w.ref.ConnectorID, []string{job.IssueID})
	if err != nil {
		return err
	}
	var items []types.TransactWriteItem
	if e := old[job.IssueID]; e != nil && !e.Removed {
		info := e.attRun(w.ref.RunID)
		if reason == "" {
			e.Stored = append(e.Stored, *res.Stored)
			sort.Slice(e.Stored, func(i, j int) bool { return idNum(e.Stored[i].ID) < idNum(e.Stored[j].ID) })
			info.Written = append(info.Written, w.manifestAtt(a.ID, res.Stored.Size, a.MimeType, res.Stored.SHA256, ""))
			w.ck.Bytes += res.Stored.Size
		} else {
			info.Skipped = append(info.Skipped, mirror.ManifestAttachment{ID: a.ID, Size: a.Size, MimeType: a.MimeType, Reason: reason})
		}
		e.LastRun, e.Action = w.ref.RunID, "written"
		e.setAttRun(info)
		it, err := w.idx.putEntry(e)
		if err != nil {
			return err
		}
		items = append(items, it)
	} else if reason == "" {
		// The issue left the mirror while its attachment was copied: do not leave the object behind.
		if err := w.e.c.Attachments.Delete(ctx, w.attTarget(), []string{a.ID}); err != nil {
			return err
		}
	}
	job.Download = job.Download[1:]
	if len(job.Download) == 0 {
		w.ck.AttQueue = w.ck.AttQueue[1:]
	}
	return w.save(ctx, items...)
}

// holdLease renews the run's lease while one long call (an attachment copy can take most of an invocation) runs;
// the returned context ends when the lease cannot be renewed. stop ends the renewals and returns the renewal's
// error, if one failed.
func (w *worker) holdLease(ctx context.Context) (context.Context, func() error) {
	cctx, cancel := context.WithCancel(ctx)
	quit, done := make(chan struct{}), make(chan struct{})
	var failed error
	// Read before the goroutine starts: the transfer goes on changing the checkpoint meanwhile.
	p := connectors.Progress{Phase: w.ck.Phase, Counters: w.savedCounters()}
	go func() {
		defer close(done)
		t := time.NewTicker(max(w.e.c.Lease/3, time.Second))
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-cctx.Done():
				return
			case <-t.C:
				if err := w.e.c.Runs.SaveProgress(cctx, w.ref, w.owner, w.e.c.Lease, p); err != nil && cctx.Err() == nil {
					failed = err
					cancel()
					return
				}
			}
		}
	}()
	return cctx, func() error {
		close(quit)
		<-done
		cancel()
		return failed
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
