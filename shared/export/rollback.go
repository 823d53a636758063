package export

// saved holds the checkpoint's tallies as of the last checkpoint written. A step that fails after counting part
// of its work (a page's issues selected, documents written) is done again by the next invocation from that
// checkpoint, so the pause or failure that follows must record the tallies as they were then: otherwise a quota
// 429 in the middle of a page counts the page twice (TestQuotaExhaustionPausesEveryRunUntilTheReset).
type saved struct{ selected, written, unchanged, removed, bytes int64 }

// markSaved remembers the tallies a checkpoint just recorded.
func (w *worker) markSaved() {
	if w.ck != nil {
		w.saved = saved{w.ck.Selected, w.ck.Written, w.ck.Unchanged, w.ck.Removed, w.ck.Bytes}
	}
}

// rollback restores the tallies of the last checkpoint after a failed step.
func (w *worker) rollback() {
	if w.ck != nil {
		w.ck.Selected, w.ck.Written, w.ck.Unchanged, w.ck.Removed, w.ck.Bytes =
			w.saved.selected, w.saved.written, w.saved.unchanged, w.saved.removed, w.saved.bytes
	}
}
