package ratebudget

import (
	"hash/fnv"
	"math"
	"time"
)

// StartOffset spreads start times as Atlassian asks ("spread scheduled jobs over the hour with jitter"): a
// deterministic offset in [0, window) derived from the run id, so every caller (and every retry of the same
// dispatch) computes the same start for the same run, and runs due at the same minute start evenly apart.
func StartOffset(runID string, window time.Duration) time.Duration {
	if window <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(runID)) // never fails
	off := h.Sum64() % uint64(window)
	if off > math.MaxInt64 { // cannot happen (off < window, an int64), but the conversion below must not wrap
		return 0
	}
	return time.Duration(off)
}
