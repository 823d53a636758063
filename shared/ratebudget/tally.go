package ratebudget

import (
	"sync"
	"time"
)

// Tally accumulates the points one run spends, as responses arrive, for the run's counters and for the Ledger.
// It is safe for concurrent use. Points are kept per UTC hour until Ledger.Flush records them, so a run that
// crosses the top of an hour charges each hour what it spent in it.
type Tally struct {
	flushing sync.Mutex // one Flush at a time, so concurrent checkpoints never record the same points twice
	mu       sync.Mutex
	now      func() time.Time
	points   int64
	requests int64
	pending  map[time.Time]int64 // UTC hour → points not yet in the ledger
}

// NewTally returns an empty tally on clock now (nil: time.Now).
func NewTally(now func() time.Time) *Tally {
	if now == nil {
		now = time.Now
	}
	return &Tally{now: now, pending: map[time.Time]int64{}}
}

// Add records one request that cost points (use Cost or the per-endpoint helpers; 0 for an uncharged answer).
func (t *Tally) Add(points int64) {
	if points < 0 {
		points = 0
	}
	h := Hour(t.now())
	t.mu.Lock()
	defer t.mu.Unlock()
	t.requests++
	if points == 0 {
		return
	}
	t.points += points
	t.pending[h] += points
}

// Points is every point the run spent through this tally (flushed or not): the run's counter.
func (t *Tally) Points() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.points
}

// Requests is how many requests were added.
func (t *Tally) Requests() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.requests
}

// Pending is the points not yet recorded in the ledger.
func (t *Tally) Pending() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for _, p := range t.pending {
		n += p
	}
	return n
}

func (t *Tally) snapshot() map[time.Time]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[time.Time]int64, len(t.pending))
	for h, p := range t.pending {
		out[h] = p
	}
	return out
}

// settle removes points that the ledger recorded (points added meanwhile stay pending).
func (t *Tally) settle(h time.Time, points int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending[h] -= points; t.pending[h] <= 0 {
		delete(t.pending, h)
	}
}

// Hour is the UTC hour containing at: the quota window it is charged to.
func Hour(at time.Time) time.Time { return at.UTC().Truncate(time.Hour) }
