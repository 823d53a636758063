package ratebudget_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/infra/stacktest"
	"jiraexport/shared/ratebudget"
	"jiraexport/shared/table"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func getItem(t *testing.T, env *stacktest.Env, pk, sk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := env.Clients.DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(env.Table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: sk}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func str(av types.AttributeValue) string {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	}
	return fmt.Sprint(av)
}

func TestLedger(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 10, 12, 58, 0, 0, time.UTC)}
	l := ratebudget.NewLedger(env.Clients.DynamoDB, env.Table, table.WithClock(clk.Now))

	// Two runs of two connections add concurrently; one run crosses the top of the hour.
	a := ratebudget.NewTally(clk.Now)
	b := ratebudget.NewTally(clk.Now)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(2)
		go func() { defer wg.Done(); a.Add(ratebudget.SearchJQL(100)) }()
		go func() { defer wg.Done(); b.Add(ratebudget.Issue()) }()
	}
	wg.Wait()
	if err := l.Flush(ctx, "connA", a); err != nil {
		t.Fatal(err)
	}
	clk.Set(time.Date(2026, 3, 10, 13, 1, 0, 0, time.UTC))
	a.Add(ratebudget.BulkFetch(10))
	var fw sync.WaitGroup
	for range 4 { // concurrent checkpoints of the same tally must not record twice
		fw.Add(1)
		go func() { defer fw.Done(); _ = l.Flush(ctx, "connB", b) }()
	}
	fw.Wait()
	if err := l.Flush(ctx, "connA", a); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(ctx, "connA", a); err != nil { // nothing pending: no write
		t.Fatal(err)
	}
	// The connectors API's own calls are recorded directly.
	if err := l.Record(ctx, "connC", clk.Now(), ratebudget.ParseJQL()+ratebudget.ApproximateCount()); err != nil {
		t.Fatal(err)
	}

	h12 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	h13 := h12.Add(time.Hour)
	tests := []struct {
		at     time.Time
		app    int64
		byConn map[string]int64
	}{
		{h12.Add(30 * time.Minute), 50*101 + 50*2, map[string]int64{"connA": 5050, "connB": 100, "connC": 0}},
		{h13, 11 + 2, map[string]int64{"connA": 11, "connB": 0, "connC": 2, "nobody": 0}},
	}
	for _, tt := range tests {
		var ids []string
		for id := range tt.byConn {
			ids = append(ids, id)
		}
		u, err := l.Usage(ctx, tt.at, ids...)
		if err != nil {
			t.Fatal(err)
		}
		if u.App != tt.app || !u.Hour.Equal(ratebudget.Hour(tt.at)) {
			t.Errorf("Usage(%v).App = %d (hour %v), want %d", tt.at, u.App, u.Hour, tt.app)
		}
		for id, want := range tt.byConn {
			if got := u.ByConnection[id]; got != want {
				t.Errorf("Usage(%v)[%s] = %d, want %d", tt.at, id, got, want)
			}
		}
	}
	if a.Points() != 5061 || a.Pending() != 0 || b.Pending() != 0 {
		t.Errorf("tally a points %d pending %d, b pending %d; want 5061 0 0", a.Points(), a.Pending(), b.Pending())
	}

	// Item shapes: per connection inside its partition, the app's outside with connId and both with a TTL.
	conn := getItem(t, env, "CONN#connA", "POINTS#2026031012")
	app := getItem(t, env, "APP", "POINTS#2026031012")
	if str(conn["points"]) != "5050" || str(app["connId"]) != "APP" || str(conn["ttl"]) == "" || str(app["ttl"]) != fmt.Sprint(h13.Add(48*time.Hour).Unix()) {
		t.Errorf("items: conn %v, app %v", conn, app)
	}
}

func TestLedgerManyConnections(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 9, 15, 0, 0, time.UTC)
	l := ratebudget.NewLedger(env.Clients.DynamoDB, env.Table)
	var ids []string
	for i := range 230 { // more than one BatchGetItem
		id := fmt.Sprintf("conn%03d", i)
		ids = append(ids, id)
		if i%2 == 0 {
			if err := l.Record(ctx, id, now, int64(i+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	u, err := l.Usage(ctx, now, ids...)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for i, id := range ids {
		w := int64(0)
		if i%2 == 0 {
			w = int64(i + 1)
		}
		want += w
		if u.ByConnection[id] != w {
			t.Errorf("%s = %d, want %d", id, u.ByConnection[id], w)
		}
	}
	if u.App != want {
		t.Errorf("App = %d, want %d", u.App, want)
	}
}

func TestPauses(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	ctx := context.Background()
	clk := &clock{t: t0} // 12:30 UTC
	p := ratebudget.NewPauses(env.Clients.DynamoDB, env.Table, table.WithClock(clk.Now))
	limit := func(kv ...string) ratebudget.Limit {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return ratebudget.ParseLimit(h, clk.Now())
	}
	top := time.Date(2026, 3, 10, 13, 0, 0, 0, time.UTC)

	// A burst 429 pauses nobody.
	if _, ok, err := p.Record(ctx, "connA", "siteA", limit("RateLimit-Reason", "jira-burst-based", "Retry-After", "1")); ok || err != nil {
		t.Fatalf("burst Record = %v, %v; want no pause", ok, err)
	}
	// A tenant quota pauses that site only.
	ps, ok, err := p.Record(ctx, "connA", "siteA", limit("RateLimit-Reason", "jira-quota-tenant-based", "Retry-After", "600"))
	if err != nil || !ok || ps.Scope != ratebudget.ScopeSite || !ps.Until.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("tenant Record = %+v, %v, %v", ps, ok, err)
	}
	// A later reset for the same site wins; an earlier one does not shorten it.
	if _, _, err := p.Record(ctx, "connB", "siteA", limit("RateLimit-Reason", "jira-quota-tenant-based", "X-RateLimit-Reset", "2026-03-10T13:00Z")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Record(ctx, "connA", "siteA", limit("RateLimit-Reason", "jira-quota-tenant-based", "Retry-After", "5")); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		site  string
		want  bool
		until time.Time
		scope ratebudget.Scope
	}{
		{"siteA", true, top, ratebudget.ScopeSite},
		{"siteB", false, time.Time{}, 0},
		{"", false, time.Time{}, 0},
	}
	for _, c := range checks {
		ps, ok, err := p.IsPaused(ctx, c.site)
		if err != nil || ok != c.want || (ok && (!ps.Until.Equal(c.until) || ps.Scope != c.scope)) {
			t.Errorf("IsPaused(%q) = %+v, %v, %v; want %v until %v", c.site, ps, ok, err, c.want, c.until)
		}
	}
	// The global quota pauses every site; a site's own later pause is the one reported for it.
	if _, _, err := p.Record(ctx, "connC", "siteC", limit("RateLimit-Reason", "jira-quota-global-based", "Retry-After", "1200", "X-RateLimit-Reset", "2026-03-10T12:50Z")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		site  string
		until time.Time
		scope ratebudget.Scope
	}{{"siteB", t0.Add(20 * time.Minute), ratebudget.ScopeGlobal}, {"", t0.Add(20 * time.Minute), ratebudget.ScopeGlobal}, {"siteA", top, ratebudget.ScopeSite}} {
		if ps, ok, err := p.IsPaused(ctx, c.site); err != nil || !ok || !ps.Until.Equal(c.until) || ps.Scope != c.scope {
			t.Errorf("during the global pause IsPaused(%q) = %+v, %v, %v; want %s until %v", c.site, ps, ok, err, c.scope, c.until)
		}
	}
	set, err := p.Active(ctx)
	if err != nil || set.Global == nil || len(set.Sites) != 1 {
		t.Fatalf("Active = %+v, %v", set, err)
	}
	// The global item belongs to no connection; the site's names the connection that saw the 429 last.
	if g, s := getItem(t, env, "APP", "PAUSE#global"), getItem(t, env, "APP", "PAUSE#site#siteA"); str(g["connId"]) != "APP" || str(s["connId"]) != "connB" || str(s["ttl"]) == "" {
		t.Errorf("pause items: global %v, site %v", g, s)
	}
	// Runs resume after the reset.
	clk.Set(top)
	for _, site := range []string{"siteA", "siteB"} {
		if ps, ok, err := p.IsPaused(ctx, site); err != nil || ok {
			t.Errorf("after the reset IsPaused(%q) = %+v, %v, %v; want not paused", site, ps, ok, err)
		}
	}
	if set, err := p.Active(ctx); err != nil || set.Global != nil || len(set.Sites) != 0 {
		t.Errorf("after the reset Active = %+v, %v; want nothing", set, err)
	}
}

// Many exports seeing the global quota at once converge on the latest reset.
func TestPauseRace(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	ctx := context.Background()
	p := ratebudget.NewPauses(env.Clients.DynamoDB, env.Table, table.WithClock(func() time.Time { return t0 }))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := http.Header{"Ratelimit-Reason": {"jira-quota-global-based"}, "Retry-After": {fmt.Sprint(60 + i)}}
			if _, _, err := p.Record(ctx, fmt.Sprint("conn", i), "site", ratebudget.ParseLimit(h, t0)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ps, ok, err := p.IsPaused(ctx, "any"); err != nil || !ok || !ps.Until.Equal(t0.Add(79*time.Second)) {
		t.Errorf("IsPaused = %+v, %v, %v; want until %v", ps, ok, err, t0.Add(79*time.Second))
	}
}
