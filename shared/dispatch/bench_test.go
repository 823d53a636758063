package dispatch_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/dispatch"
	"jiraexport/shared/ratebudget"
	"jiraexport/shared/table"
)

// recorder is an Invoker that only records what was invoked (the export itself is not what is measured).
type recorder struct {
	mu   sync.Mutex
	refs []connectors.RunRef
}

func (r *recorder) Invoke(_ context.Context, ref connectors.RunRef) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs = append(r.refs, ref)
	return nil
}

func (r *recorder) take() []connectors.RunRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.refs
	r.refs = nil
	return out
}

// BenchmarkTick measures one dispatcher tick, wired as in production (quota pauses and the points budget at
// Atlassian's default 65,000 points an hour, read from DynamoDB), over N connectors of N/10 connections all due
// in the same minute, against DynamoDB Local. ns/op is the tick's wall time without the start spread (waiting,
// not work; its window is reported as spread-s); reads/conn and writes/conn are DynamoDB requests per due
// connector; admitted is how many runs the tick started and budget-allows how many the Allocator allows at that
// moment (they must be equal). Each iteration starts at the first minute of a fresh UTC hour, with nothing spent
// and nothing running: between iterations, outside the timer, the started runs are cancelled and the clock moves
// an hour, so every connector is due again. BENCH_DISPATCH_CONNECTORS overrides the size (comma-separated
// sizes); the default is issue 13's 10,000.
func BenchmarkTick(b *testing.B) {
	sizes := []int{10000}
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
		// The stack is provisioned before the sub-benchmark prints its name: the SDK's warnings while it is would
		// otherwise split the result line that infra/bench.sh collects.
		f := newFixture(b)
		b.Run(fmt.Sprintf("connectors=%d", n), func(b *testing.B) { benchTick(b, f, n) })
	}
}

func benchTick(b *testing.B, f *fixture, n int) {
	ctx := context.Background()
	// The first minute of an hour: the Allocator's pacing then hands out 10/59 of the hour's budget.
	f.clk.ns.Store(f.clk.now().Truncate(time.Hour).Add(time.Hour + time.Minute).UnixNano())
	db := f.env.Clients.DynamoDB
	alloc := ratebudget.Allocator{HourlyBudget: ratebudget.DefaultHourlyBudget}
	inv := &recorder{}
	d := f.dispatcher(b, dispatch.Config{Invoker: inv, MaxDue: n, MaxActive: n, Writers: benchWriters(),
		Pauses: dispatch.QuotaPauses{Store: ratebudget.NewPauses(db, f.env.Table, table.WithClock(f.clk.now))},
		Budget: dispatch.PointsBudget{Ledger: ratebudget.NewLedger(db, f.env.Table, table.WithClock(f.clk.now)), Allocator: alloc}})
	conns := seed(b, f, n)

	var reads, writes, admitted, allowed int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := d.Tick(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		// What the budget allows at this moment: every connector is a demand of unknown size, nothing is spent
		// and nothing runs.
		in := ratebudget.Input{Now: f.clk.now()}
		for j := range n {
			in.Demands = append(in.Demands, ratebudget.Demand{RunID: strconv.Itoa(j), ConnID: conns[j%len(conns)]})
		}
		want := min(len(alloc.Allocate(in).Grants), dispatch.DefaultMaxStarts)
		if rep.Due != n || rep.Created != rep.Invoked || rep.Invoked != want || rep.Errors != 0 {
			b.Fatalf("tick = %+v, want %d due and %d runs started (what the budget allows)", rep, n, want)
		}
		reads, writes, admitted, allowed = reads+rep.Reads, writes+rep.Writes, admitted+rep.Invoked, allowed+want
		// Re-arm: cancel the started runs, then an hour later every connector is due again.
		refs := inv.take()
		parallel(b, len(refs), func(j int) error {
			_, err := f.store.CancelRun(ctx, refs[j].ConnectionID, refs[j].ConnectorID, refs[j].RunID, "user")
			return err
		})
		f.clk.advance(time.Hour)
		b.StartTimer()
	}
	b.StopTimer()
	perTick := float64(b.N)
	b.ReportMetric(float64(reads)/perTick/float64(n), "reads/conn")
	b.ReportMetric(float64(writes)/perTick/float64(n), "writes/conn")
	b.ReportMetric(float64(admitted)/perTick, "admitted")
	b.ReportMetric(float64(allowed)/perTick, "budget-allows")
	spread := min(time.Duration(admitted/b.N)*dispatch.DefaultStartGap, dispatch.DefaultMaxSpread)
	b.ReportMetric(spread.Seconds(), "spread-s")
}

// seed writes n/10 active connections and n enabled hourly connectors spread over them, all due within the
// minute before the clock, in BatchWriteItem requests: each item is a copy of one the stores wrote (a connection
// and a connector), with new ids and keys, so the items are exactly what the application writes.
func seed(b *testing.B, f *fixture, n int) (conns []string) {
	b.Helper()
	ctx := context.Background()
	db := f.env.Clients.DynamoDB
	get := func(pk, sk string) map[string]types.AttributeValue {
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(f.env.Table), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: sk}}})
		if err != nil || out.Item == nil {
			b.Fatalf("read template item %s %s: %v", pk, sk, err)
		}
		return out.Item
	}
	str := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	tmplConn := f.connection(b)
	tmplConnector := f.connector(b, tmplConn, f.clk.now().Add(-time.Minute))
	connItem := get(connections.PK(tmplConn), connections.MetaSK)
	connectorItem := get(connections.PK(tmplConn), "CONNECTOR#"+tmplConnector.ID)

	var items []map[string]types.AttributeValue
	conns = []string{tmplConn}
	for range max(n/10, 1) - 1 {
		id := connections.NewID()
		it := maps.Clone(connItem)
		it["pk"], it["id"] = str(connections.PK(id)), str(id)
		items = append(items, it)
		conns = append(conns, id)
	}
	start := f.clk.now().Add(-time.Minute)
	for i := 1; i < n; i++ {
		connID := conns[i%len(conns)]
		next := start.Add(time.Duration(i) * time.Minute / time.Duration(n))
		id := connectors.NewID(next)
		gpk, gsk := connectors.DueIndexKeys(next, connID, id)
		it := maps.Clone(connectorItem)
		it["pk"], it["sk"], it["id"], it["connId"] = str(connections.PK(connID)), str("CONNECTOR#"+id), str(id), str(connID)
		it["nextRunAt"], it["gsi1pk"], it["gsi1sk"] = str(next.UTC().Format(time.RFC3339Nano)), str(gpk), str(gsk)
		items = append(items, it)
	}
	// The template connector is due a minute ago, like the first of the others; its connection is conns[0], the
	// connection of every tenth connector.
	parallel(b, (len(items)+24)/25, func(j int) error {
		batch := items[j*25 : min(j*25+25, len(items))]
		reqs := make([]types.WriteRequest, len(batch))
		for k, it := range batch {
			reqs[k] = types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
		}
		pending := map[string][]types.WriteRequest{f.env.Table: reqs}
		for try := 0; len(pending) > 0; try++ {
			if try == 10 {
				return fmt.Errorf("seed: items left unprocessed")
			}
			out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return err
			}
			pending = out.UnprocessedItems
		}
		return nil
	})
	return conns
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
