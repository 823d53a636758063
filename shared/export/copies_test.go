package export

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"jiraexport/shared/attachments"
)

// TestCopiesStayWithinTheirBounds: the copies in flight never exceed attMaxInFlight nor hold more than
// attBufferBudget between them; one that fits nowhere still runs alone; the oldest waiting copy is never passed
// over by later, smaller ones; and every offered copy ends with one result.
func TestCopiesStayWithinTheirBounds(t *testing.T) {
	const (
		small  = 200 << 10
		bigger = 400 << 10 // so that beside a large copy the budget binds before attMaxInFlight
		large  = 25 << 20  // about what a two-part multipart copy holds
	)
	tests := []struct {
		name  string
		sizes []int64 // the footprint of each offered copy, oldest first
		// the most in flight at once, and the first starts in order (by index)
		wantPeak  int
		wantFirst []int
	}{
		{"small ones: the count binds", repeat(small, 40), attMaxInFlight, seq(0, attMaxInFlight)},
		{"a large one and small ones: the budget binds", append([]int64{large}, repeat(bigger, 40)...),
			1 + int((attBufferBudget-large)/bigger), seq(0, 1+int((attBufferBudget-large)/bigger))},
		{"beyond the budget: runs alone", []int64{attBufferBudget + 1, small}, 1, []int{0}},
		{"a large one waiting is not passed over", append([]int64{large, large}, repeat(small, 5)...), 1, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu      sync.Mutex
				running int
				held    int64
				peak    int
				order   []int
			)
			release := make(chan struct{})
			weight := func(size int64) int64 { return size } // sizes are footprints here
			transfer := func(ctx context.Context, c attCopy) (attachments.Result, error) {
				var idx int
				_, _ = fmt.Sscanf(c.a.ID, "%d", &idx)
				mu.Lock()
				running++
				held += c.a.Size
				peak = max(peak, running)
				order = append(order, idx)
				if running > attMaxInFlight || (running > 1 && held > attBufferBudget) {
					t.Errorf("%d copies in flight holding %d bytes: over attMaxInFlight (%d) or attBufferBudget (%d)",
						running, held, attMaxInFlight, attBufferBudget)
				}
				mu.Unlock()
				<-release
				mu.Lock()
				running--
				held -= c.a.Size
				mu.Unlock()
				return attachments.Result{}, nil
			}
			p := newCopies(t.Context(), transfer, weight, func() bool { return true })
			queue := make([]attCopy, len(tt.sizes))
			for i, size := range tt.sizes {
				queue[i] = attCopy{issueID: "1", a: attachments.Attachment{ID: fmt.Sprint(i), Size: size}}
			}
			p.offer(queue) // every start happens inside offer, under the copies' lock: what started is what fits
			var first []int
			var gotPeak int
			// A started goroutine may not have reached transfer yet: wait for the expected starts, then a little
			// longer, so that a copy started beyond the bounds shows too.
			for deadline := time.Now().Add(10 * time.Second); len(first) < len(tt.wantFirst) && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
				mu.Lock()
				first = append([]int(nil), order...)
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			gotPeak, first = peak, append([]int(nil), order...)
			mu.Unlock()
			if gotPeak != tt.wantPeak || !sameSet(first, tt.wantFirst) {
				t.Errorf("first starts %v (peak %d), want %v (peak %d)", first, gotPeak, tt.wantFirst, tt.wantPeak)
			}
			close(release)
			seen := map[string]bool{}
			for range tt.sizes {
				select {
				case r := <-p.results:
					if seen[r.a.ID] {
						t.Errorf("copy %s ended twice", r.a.ID)
					}
					seen[r.a.ID] = true
					p.taken(r.a.ID)
				case <-time.After(10 * time.Second):
					t.Fatalf("%d of %d copies ended", len(seen), len(tt.sizes))
				}
			}
			if n := p.outstanding(); n != 0 {
				t.Errorf("%d copies outstanding after every result was taken", n)
			}
			mu.Lock()
			defer mu.Unlock()
			if peak > attMaxInFlight {
				t.Errorf("peak %d copies in flight, over %d", peak, attMaxInFlight)
			}
		})
	}
}

func repeat(v int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func seq(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func sameSet(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	in := map[int]int{}
	for _, x := range a {
		in[x]++
	}
	for _, x := range b {
		if in[x]--; in[x] < 0 {
			return false
		}
	}
	return true
}
