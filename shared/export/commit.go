package export

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/mirror"
)

// commit is a search page's documents and checkpoint on their way to S3 and DynamoDB, in the background while
// the worker reads and completes the next pages. The search is a chain (each page's cursor comes with the page
// before), so a page's writes done in line add to the chain's time; beside the next page's parsing and
// follow-ups they cost nothing on the run's critical path. Up to commitDepth commits are in flight: while a large
// attachment is being copied S3 answers small writes several times slower, and a page's writes then took longer
// than the next page's work, which waited for them.
//
// Everything a commit writes is built before it starts (documents, index entries, the checkpoint item), so it
// shares nothing with the worker's goroutine. Commits write in order: each starts its writes once the commit
// before it stored its checkpoint, and writes nothing if that one failed, so checkpoints are written in order, a
// later checkpoint never stands on an earlier one that is missing, and nothing is written after a refused one.
// The worker learns a commit's outcome only by joining it, which every other checkpoint write, lease renewal and
// the invocation's end do first (for every commit in flight), and a commit that failed puts the worker back on
// the stored checkpoint before anything else is written.
type commit struct {
	finished chan struct{} // closed once err is set
	err      error
	// tallies are the checkpoint's tallies as this commit records them (saved, once it is stored).
	tallies saved
	// copied are the index entries of ended attachment copies it carries (put back if it fails).
	copied map[string]*indexEntry
	// issues are the page's issues: their attachments are not copied before their index entries are stored,
	// else a copy's entry could be written (with a later checkpoint) for a document that never was.
	issues map[string]bool
}

// commitDepth is how many page commits may be in flight at once.
const commitDepth = 2

// errEarlierCommit ends a commit whose predecessor failed: its checkpoint is not written.
var errEarlierCommit = errors.New("export: an earlier page's commit failed")

// commitPage writes a search page's pending documents and then its checkpoint, with the page's index entries
// (extra), in the background. It first joins the commits beyond commitDepth-1, so it returns their failure.
func (w *worker) commitPage(ctx context.Context, pending []storeJob, extra []types.TransactWriteItem) error {
	if err := w.reap(ctx); err != nil {
		return err
	}
	if err := w.joinTo(ctx, commitDepth-1); err != nil {
		return err
	}
	p, items, err := w.checkpointItems(extra)
	if err != nil {
		return err
	}
	c := &commit{finished: make(chan struct{}), copied: w.copyEntries, issues: make(map[string]bool, len(pending)),
		tallies: w.tallies()}
	writes := make([]storeJob, 0, len(pending))
	for _, j := range pending {
		c.issues[j.d.doc.ID] = true
		if j.put || j.md != mdKeep {
			// Only what the writes need: the documents' decoded trees (several times their JSON) are garbage
			// while the next page is read, under the function's GOMEMLIMIT.
			writes = append(writes, storeJob{d: built{doc: &mirror.Issue{ID: j.d.doc.ID}, body: j.d.body, md: j.d.md}, put: j.put, md: j.md})
		}
	}
	w.copyEntries = map[string]*indexEntry{}
	runs, ref, owner, lease := w.e.c.Runs, w.ref, w.owner, w.e.c.Lease
	var prev *commit
	if n := len(w.inflight); n > 0 {
		prev = w.inflight[n-1]
	}
	go func() {
		defer close(c.finished)
		if prev != nil {
			// Nothing of this page is written before the page before it is stored: a refused checkpoint (the run
			// cancelled, its lease lost) stops every write after it, as when each page waited for the last.
			if <-prev.finished; prev.err != nil {
				c.err = errEarlierCommit
				return
			}
		}
		err := w.putAll(ctx, writes) // documents first: a checkpoint never names an issue whose document is not stored
		if err == nil {
			err = runs.SaveProgress(ctx, ref, owner, lease, p, items...)
		}
		c.err = err
	}()
	w.inflight = append(w.inflight, c)
	return nil
}

// reap settles the page commits that have already ended, oldest first, without waiting: a refused checkpoint
// stops the worker at its next step rather than commitDepth pages later.
func (w *worker) reap(ctx context.Context) error {
	ended := 0
	for _, c := range w.inflight {
		select {
		case <-c.finished:
			ended++
			continue
		default:
		}
		break
	}
	return w.joinTo(ctx, len(w.inflight)-ended)
}

// join waits for every page commit in flight.
func (w *worker) join(ctx context.Context) error { return w.joinTo(ctx, 0) }

// joinTo waits for the oldest page commits until at most n are in flight, and settles the worker's state by
// their outcome. Stored, a commit's tallies are the saved ones and its page counts as done. A commit that failed
// ends every later one with it (they write no checkpoint after it): the copy entries they carried wait for the
// next checkpoint again, and unsaved puts the checkpoint back on what is stored (their pages are done again).
func (w *worker) joinTo(ctx context.Context, n int) error {
	for len(w.inflight) > n {
		c := w.inflight[0]
		<-c.finished
		if c.err != nil {
			failed := w.inflight
			w.inflight = nil
			for i := len(failed) - 1; i >= 0; i-- { // newest first: a newer entry for an attachment wins
				<-failed[i].finished
				for id, e := range failed[i].copied {
					if _, newer := w.copyEntries[id]; !newer {
						w.copyEntries[id] = e
					}
				}
			}
			if err := w.unsaved(ctx, c.err); err != nil {
				return err
			}
			// Stored after all (its answer was lost): only the newest commit can be, the others waiting for it.
			c = failed[len(failed)-1]
		} else {
			w.inflight = w.inflight[1:]
		}
		w.lastSave = w.e.c.Now()
		w.saved = c.tallies
		w.pagesDone++
		w.flushPoints(ctx)
	}
	return nil
}

// settle joins the commits in flight when a step failed with err, before the tallies roll back to the saved
// ones: a commit may have stored the tallies they go back to. A failed commit's error joins err.
func (w *worker) settle(ctx context.Context, err error) error {
	if jerr := w.join(ctx); jerr != nil {
		return errors.Join(err, jerr)
	}
	return err
}

// committing reports whether issueID's page is still being committed.
func (w *worker) committing(issueID string) bool {
	for _, c := range w.inflight {
		if c.issues[issueID] {
			return true
		}
	}
	return false
}
