package export

import (
	"context"
	"errors"
	"time"

	"jiraexport/shared/connectors"
)

// saved holds the checkpoint's tallies as of the last checkpoint written. A step that fails after counting part
// of its work (a page's issues selected, documents written) is done again by the next invocation from that
// checkpoint, so the pause or failure that follows must record the tallies as they were then: otherwise a quota
// 429 in the middle of a page counts the page twice (TestQuotaExhaustionPausesEveryRunUntilTheReset).
type saved struct{ selected, written, unchanged, removed, bytes int64 }

// tallies are the checkpoint's tallies as they stand.
func (w *worker) tallies() saved {
	return saved{w.ck.Selected, w.ck.Written, w.ck.Unchanged, w.ck.Removed, w.ck.Bytes}
}

// markSaved remembers the tallies a checkpoint just recorded.
func (w *worker) markSaved() {
	if w.ck != nil {
		w.saved = w.tallies()
	}
}

// rollback restores the tallies of the last checkpoint after a failed step.
func (w *worker) rollback() {
	if w.ck != nil {
		w.ck.Selected, w.ck.Written, w.ck.Unchanged, w.ck.Removed, w.ck.Bytes =
			w.saved.selected, w.saved.written, w.saved.unchanged, w.saved.removed, w.saved.bytes
	}
}

// unsaved settles a checkpoint write that failed with err, before the pause that follows writes the checkpoint
// from memory again. A write cut off by the invocation's deadline (or whose answer was lost) may have committed
// or not, so it reads the stored checkpoint back. Committed, the save succeeded after all (nil): the memory is
// what is stored, and rolling the tallies back would lose the step's counts, its index entries being stored
// already. Not committed, the memory goes back to what is stored, position and tallies, so the pause neither
// skips the step's work (an advanced page token with no index entries) nor counts it, and err is returned. The
// requests and points spent stay: they were spent either way.
func (w *worker) unsaved(ctx context.Context, err error) error {
	if errors.Is(err, connectors.ErrRunFinished) || errors.Is(err, connectors.ErrLeaseLost) ||
		errors.Is(err, connectors.ErrNotFound) || errors.Is(err, connectors.ErrNotActive) {
		return err // refused: nothing was written, and this invocation writes no checkpoint any more
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	stored, rerr := w.idx.getCheckpoint(rctx, w.ref)
	switch {
	case rerr != nil:
		return err
	case stored != nil && stored.Seq == w.ck.Seq:
		return nil
	case stored == nil:
		stored = w.newCheckpoint() // the run's first checkpoint was not written
	}
	stored.Requests, stored.Points, stored.PhaseMillis = w.ck.Requests, w.ck.Points, w.ck.PhaseMillis
	w.ck = stored
	w.markSaved()
	return err
}
