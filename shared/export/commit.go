package export

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/mirror"
)

// commit is a search page's documents and checkpoint on their way to S3 and DynamoDB, in the background while
// the worker reads and completes the next page. The search is a chain (each page's cursor comes with the page
// before), so a page's writes done in line add to the chain's time; beside the next page's parsing and
// follow-ups they cost nothing on the run's critical path.
//
// Everything a commit writes is built before it starts (documents, index entries, the checkpoint item), so it
// shares nothing with the worker's goroutine. The worker learns its outcome only by joining it, which every
// other checkpoint write, lease renewal and the invocation's end do first: checkpoints are written in order,
// and a commit that failed puts the worker back on the stored checkpoint before anything else is written.
type commit struct {
	done chan error
	// tallies are the checkpoint's tallies as this commit records them (saved, once it is stored).
	tallies saved
	// copied are the index entries of ended attachment copies it carries (put back if it fails).
	copied map[string]*indexEntry
	// issues are the page's issues: their attachments are not copied before their index entries are stored,
	// else a copy's entry could be written (with a later checkpoint) for a document that never was.
	issues map[string]bool
}

// commitPage writes a search page's pending documents and then its checkpoint, with the page's index entries
// (extra), in the background. It first joins the previous page's commit, so it returns that one's failure.
func (w *worker) commitPage(ctx context.Context, pending []storeJob, extra []types.TransactWriteItem) error {
	if err := w.join(ctx); err != nil {
		return err
	}
	p, items, err := w.checkpointItems(extra)
	if err != nil {
		return err
	}
	c := &commit{done: make(chan error, 1), copied: w.copyEntries, issues: make(map[string]bool, len(pending)),
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
	go func() {
		err := w.putAll(ctx, writes) // documents first: a checkpoint never names an issue whose document is not stored
		if err == nil {
			err = runs.SaveProgress(ctx, ref, owner, lease, p, items...)
		}
		c.done <- err
	}()
	w.inflight = c
	return nil
}

// join waits for the page commit in flight, if any, and settles the worker's state by its outcome. Stored, its
// tallies are the saved ones and the page counts as done. Not stored, the copy entries it carried wait for the
// next checkpoint again, and unsaved puts the checkpoint back on what is stored (the page is done again).
func (w *worker) join(ctx context.Context) error {
	c := w.inflight
	if c == nil {
		return nil
	}
	w.inflight = nil
	if err := <-c.done; err != nil {
		for id, e := range c.copied {
			if _, newer := w.copyEntries[id]; !newer {
				w.copyEntries[id] = e
			}
		}
		if err := w.unsaved(ctx, err); err != nil {
			return err
		}
	}
	w.lastSave = w.e.c.Now()
	w.saved = c.tallies
	w.pagesDone++
	w.flushPoints(ctx)
	return nil
}

// settle joins the commit in flight when a step failed with err, before the tallies roll back to the saved ones:
// the commit may have stored the tallies they go back to. A failed commit's error joins err.
func (w *worker) settle(ctx context.Context, err error) error {
	if jerr := w.join(ctx); jerr != nil {
		return errors.Join(err, jerr)
	}
	return err
}

// committing reports whether issueID's page is still being committed.
func (w *worker) committing(issueID string) bool {
	return w.inflight != nil && w.inflight.issues[issueID]
}
