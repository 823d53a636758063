package dispatch_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"jiraexport/shared/connectors"
	"jiraexport/shared/dispatch"
)

type discard struct{}

func (discard) Invoke(context.Context, connectors.RunRef) error { return nil }

// BenchmarkTick measures one dispatcher tick with N connectors of N/10 connections all due in the same minute,
// against DynamoDB Local: ns/op is the tick's wall time without the start spread (which is waiting, not work;
// its window is reported as spread-s), reads/conn and writes/conn are DynamoDB requests per due connector, and
// invoked is how many runs the tick handed to the export (the per-tick cap). Between iterations, outside the
// timer, the runs are cancelled and the clock moves an hour, so every iteration finds N due connectors again.
// BENCH_DISPATCH_CONNECTORS overrides the sizes (comma-separated), e.g. 10000 for issue 13's figure.
func BenchmarkTick(b *testing.B) {
	sizes := []int{1000}
	if s := os.Getenv("BENCH_DISPATCH_CONNECTORS"); s != "" {
		sizes = nil
		for _, f := range splitComma(s) {
			n, err := strconv.Atoi(f)
			if err != nil || n < 10 {
				b.Fatalf("BENCH_DISPATCH_CONNECTORS=%q: want sizes of at least 10", s)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("connectors=%d", n), func(b *testing.B) { benchTick(b, n) })
	}
}

func benchTick(b *testing.B, n int) {
	f := newFixture(b)
	ctx := context.Background()
	d := f.dispatcher(b, dispatch.Config{Invoker: discard{}, MaxDue: n, MaxActive: n, Writers: benchWriters()})
	var conns []string
	for range max(n/10, 1) {
		conns = append(conns, f.connection(b))
	}
	cs := make([]*connectors.Connector, n)
	parallel(b, n, func(i int) error {
		c, err := f.store.Create(ctx, conns[i%len(conns)], spec("bench", "rate(1 hour)"), f.clk.now().Add(-time.Minute))
		cs[i] = c
		return err
	})
	var reads, writes, invoked int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := d.Tick(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Created != n {
			b.Fatalf("tick created %d runs, want %d: %+v", rep.Created, n, rep)
		}
		reads, writes, invoked = reads+rep.Reads, writes+rep.Writes, invoked+rep.Invoked
		b.StopTimer()
		// Re-arm: end every run, then an hour later every connector is due again.
		parallel(b, n, func(j int) error {
			c, err := f.store.Get(ctx, cs[j].ConnectionID, cs[j].ID)
			if err != nil {
				return err
			}
			_, err = f.store.CancelRun(ctx, c.ConnectionID, c.ID, c.ActiveRunID, "user")
			return err
		})
		f.clk.advance(time.Hour)
		b.StartTimer()
	}
	b.StopTimer()
	perTick := float64(b.N)
	b.ReportMetric(float64(reads)/perTick/float64(n), "reads/conn")
	b.ReportMetric(float64(writes)/perTick/float64(n), "writes/conn")
	b.ReportMetric(float64(invoked)/perTick, "invoked")
	spread := min(time.Duration(invoked/b.N)*dispatch.DefaultStartGap, dispatch.DefaultMaxSpread)
	b.ReportMetric(spread.Seconds(), "spread-s")
}

// parallel runs fn(0..n-1) with 16 in flight and fails b on the first error.
func parallel(b *testing.B, n int, fn func(i int) error) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// benchWriters is BENCH_DISPATCH_WRITERS, or the default.
func benchWriters() int {
	n, _ := strconv.Atoi(os.Getenv("BENCH_DISPATCH_WRITERS"))
	return n
}
