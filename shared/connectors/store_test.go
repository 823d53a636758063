package connectors_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/infra/stacktest"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
)

type fixture struct {
	env   *stacktest.Env
	store *connectors.Store
	conns *connections.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := stacktest.New(t)
	return &fixture{env: env, store: connectors.NewStore(env.Clients.DynamoDB, env.Table),
		conns: connections.NewStore(env.Clients.DynamoDB, env.Table)}
}

func (f *fixture) connection(t *testing.T) string {
	t.Helper()
	c := &connections.Connection{ID: connections.NewID(), Status: connections.StatusActive,
		Sites: []connections.Site{{CloudID: "site-1", URL: "https://a.atlassian.net", Name: "a"}}}
	if err := f.conns.Create(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func spec(name string) connectors.Spec {
	s := connectors.Spec{Name: name, SiteID: "site-1", JQL: "project = A", Enabled: true,
		Schedule: connectors.Schedule{Expression: "rate(1 hour)", Timezone: "Europe/Paris"}}
	s.Normalize()
	return s
}

func TestConnectorCRUD(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	conn, other := f.connection(t), f.connection(t)
	next := time.Now().Add(time.Hour)

	var ids []string
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		c, err := f.store.Create(ctx, conn, spec(name), next)
		if err != nil {
			t.Fatalf("Create(%q) = %v", name, err)
		}
		if c.ETag() != `"1"` || c.NextRunAt == nil {
			t.Errorf("Create(%q) = etag %s next %v, want \"1\" and a next run", name, c.ETag(), c.NextRunAt)
		}
		ids = append(ids, c.ID)
	}
	// Paging in creation order, opaque cursor, no cursor on the last page.
	var got []string
	cur := ""
	for pages := 0; ; pages++ {
		page, next, err := f.store.List(ctx, conn, 2, cur)
		if err != nil {
			t.Fatalf("List(cursor %q) = %v", cur, err)
		}
		for _, c := range page {
			got = append(got, c.Spec.Name)
		}
		if next == "" {
			if pages != 2 {
				t.Errorf("List pages = %d, want 3", pages+1)
			}
			break
		}
		if _, _, err := f.store.List(ctx, other, 2, next); !errors.Is(err, connectors.ErrInvalidCursor) {
			t.Errorf("List(other connection, cursor) = %v, want ErrInvalidCursor", err)
		}
		cur = next
	}
	if want := "abcde"; joined(got) != want {
		t.Errorf("List names = %v, want %s", got, want)
	}

	// Another connection sees nothing.
	if _, err := f.store.Get(ctx, other, ids[0]); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("Get(other connection) = %v, want ErrNotFound", err)
	}
	if _, err := f.store.Update(ctx, other, ids[0], spec("x"), 1, next); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("Update(other connection) = %v, want ErrNotFound", err)
	}
	if err := f.store.Delete(ctx, other, ids[0], 0); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("Delete(other connection) = %v, want ErrNotFound", err)
	}

	// Update with the current revision, then with a stale one.
	s := spec("renamed")
	s.Enabled = false
	u, err := f.store.Update(ctx, conn, ids[0], s, 1, next)
	if err != nil || u.Spec.Name != "renamed" || u.ETag() != `"2"` || u.NextRunAt != nil {
		t.Fatalf("Update(rev 1) = %+v, %v, want renamed, etag \"2\", no next run", u, err)
	}
	if _, err := f.store.Update(ctx, conn, ids[0], s, 1, next); !errors.Is(err, connectors.ErrStale) {
		t.Errorf("Update(stale rev) = %v, want ErrStale", err)
	}
	if err := f.store.Delete(ctx, conn, ids[0], 1); !errors.Is(err, connectors.ErrStale) {
		t.Errorf("Delete(stale rev) = %v, want ErrStale", err)
	}
	if err := f.store.Delete(ctx, conn, ids[0], 2); err != nil {
		t.Errorf("Delete(rev 2) = %v", err)
	}
	if _, err := f.store.Get(ctx, conn, ids[0]); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("Get(deleted) = %v, want ErrNotFound", err)
	}
}

func joined(xs []string) string {
	out := ""
	for _, x := range xs {
		out += x
	}
	return out
}

func TestConnectorLimitAndConnectionState(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	conn := f.connection(t)
	if _, err := f.store.Create(ctx, conn, spec("first"), time.Now()); err != nil {
		t.Fatal(err)
	}
	// Pretend the connection already has the maximum (creating 100 connectors would only slow the test).
	_, err := f.env.Clients.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(f.env.Table),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "CONN#" + conn},
			"sk": &types.AttributeValueMemberS{Value: "CONNECTORS"}},
		UpdateExpression:          aws.String("SET n = :max"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":max": &types.AttributeValueMemberN{Value: "100"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Create(ctx, conn, spec("one too many"), time.Now()); !errors.Is(err, connectors.ErrTooMany) {
		t.Errorf("Create(at limit) = %v, want ErrTooMany", err)
	}
	if _, err := f.store.Create(ctx, connections.NewID(), spec("orphan"), time.Now()); !errors.Is(err, connectors.ErrNotActive) {
		t.Errorf("Create(no connection) = %v, want ErrNotActive", err)
	}
}

func TestRuns(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	conn, other := f.connection(t), f.connection(t)
	c, err := f.store.Create(ctx, conn, spec("runs"), time.Now())
	if err != nil {
		t.Fatal(err)
	}

	// Concurrent starts: exactly one wins.
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	runs := make([]*connectors.Run, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i], errs[i] = f.store.StartRun(ctx, conn, c.ID, connectors.TriggerManual)
		}()
	}
	wg.Wait()
	var run *connectors.Run
	for i, err := range errs {
		switch {
		case err == nil && run == nil:
			run = runs[i]
		case err == nil:
			t.Errorf("StartRun: two concurrent starts succeeded")
		case !errors.Is(err, connectors.ErrActiveRun):
			t.Errorf("StartRun(concurrent) = %v, want ErrActiveRun", err)
		}
	}
	if run == nil {
		t.Fatal("StartRun: no concurrent start succeeded")
	}
	if _, err := f.store.StartRun(ctx, other, c.ID, connectors.TriggerManual); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("StartRun(other connection) = %v, want ErrNotFound", err)
	}
	got, err := f.store.Get(ctx, conn, c.ID)
	if err != nil || got.ActiveRunID != run.ID || got.LastRun == nil || got.LastRun.Status != connectors.RunQueued || got.ETag() == c.ETag() {
		t.Errorf("Get(after start) = %+v, %v, want active run %s, lastRun queued, a new ETag", got, err, run.ID)
	}
	// Every change of the representation changes the ETag (If-None-Match must never answer 304 for a stale body).
	etag := got.ETag()
	changedETag := func(what string) {
		t.Helper()
		c, err := f.store.Get(ctx, conn, c.ID)
		if err != nil || c.ETag() == etag {
			t.Errorf("Get(after %s) ETag = %v (%v), want a new ETag, not %s", what, c.ETag(), err, etag)
		}
		etag = c.ETag()
	}

	// Progress.
	p := connectors.Progress{Status: connectors.RunRunning, Phase: "searching",
		Counters: connectors.Counters{IssuesDone: 40, ApproxTotal: 120, Attachments: 3, Bytes: 4096, PointsSpent: 44},
		Errors:   []connectors.RunError{{Reason: "attachment_too_large", Message: "skipped 1 attachment", At: time.Now().UTC()}}}
	r, err := f.store.UpdateProgress(ctx, conn, c.ID, run.ID, p)
	if err != nil || r.Status != connectors.RunRunning || r.Counters != p.Counters || r.StartedAt == nil || len(r.Errors) != 1 {
		t.Fatalf("UpdateProgress() = %+v, %v", r, err)
	}

	// Cancel, then everything about it is final.
	r, err = f.store.CancelRun(ctx, conn, c.ID, run.ID, "user")
	if err != nil || r.Status != connectors.RunCancelled || r.FinishedAt == nil || r.CancelReason != "user" {
		t.Fatalf("CancelRun() = %+v, %v", r, err)
	}
	changedETag("cancel")
	if _, err := f.store.CancelRun(ctx, conn, c.ID, run.ID, "user"); !errors.Is(err, connectors.ErrRunFinished) {
		t.Errorf("CancelRun(again) = %v, want ErrRunFinished", err)
	}
	if _, err := f.store.UpdateProgress(ctx, conn, c.ID, run.ID, p); !errors.Is(err, connectors.ErrRunFinished) {
		t.Errorf("UpdateProgress(cancelled) = %v, want ErrRunFinished", err)
	}
	if _, err := f.store.CancelRun(ctx, other, c.ID, run.ID, "user"); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("CancelRun(other connection) = %v, want ErrNotFound", err)
	}

	// The slot is free again; a run that succeeds releases it too.
	run2, err := f.store.StartRun(ctx, conn, c.ID, connectors.TriggerManual)
	if err != nil {
		t.Fatalf("StartRun(after cancel) = %v", err)
	}
	changedETag("second start")
	if _, err := f.store.UpdateProgress(ctx, conn, c.ID, run2.ID, connectors.Progress{Status: connectors.RunSucceeded, Phase: "done"}); err != nil {
		t.Fatal(err)
	}
	changedETag("success")
	got, _ = f.store.Get(ctx, conn, c.ID)
	if got.ActiveRunID != "" || got.LastRun.Status != connectors.RunSucceeded || got.LastRun.FinishedAt == nil {
		t.Errorf("Get(after success) = %+v, want no active run and lastRun succeeded", got)
	}
	list, next, err := f.store.ListRuns(ctx, conn, c.ID, 10, "")
	if err != nil || len(list) != 2 || list[0].ID != run2.ID || next != "" {
		t.Errorf("ListRuns() = %d runs (first %v), next %q, %v; want 2, newest first", len(list), list, next, err)
	}

	// Deleting a connector with an active run cancels the run and removes the history.
	run3, err := f.store.StartRun(ctx, conn, c.ID, connectors.TriggerManual)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.Delete(ctx, conn, c.ID, 0); err != nil {
		t.Fatalf("Delete(with active run) = %v", err)
	}
	if _, err := f.store.GetRun(ctx, conn, c.ID, run3.ID); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("GetRun(after connector delete) = %v, want ErrNotFound", err)
	}
}

func TestDisableAll(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	conn := f.connection(t)
	a, _ := f.store.Create(ctx, conn, spec("a"), time.Now())
	b, _ := f.store.Create(ctx, conn, spec("b"), time.Now())
	run, err := f.store.StartRun(ctx, conn, a.ID, connectors.TriggerManual)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.DisableAll(ctx, conn, "disconnected"); err != nil {
		t.Fatalf("DisableAll() = %v", err)
	}
	for _, id := range []string{a.ID, b.ID} {
		c, err := f.store.Get(ctx, conn, id)
		if err != nil || c.Spec.Enabled || c.NextRunAt != nil || c.ActiveRunID != "" {
			t.Errorf("Get(%s) after DisableAll = %+v, %v; want disabled, unscheduled, idle", id, c, err)
		}
	}
	r, err := f.store.GetRun(ctx, conn, a.ID, run.ID)
	if err != nil || r.Status != connectors.RunCancelled || r.CancelReason != "disconnected" {
		t.Errorf("GetRun() after DisableAll = %+v, %v; want cancelled (disconnected)", r, err)
	}
}

// TestCancelActiveRuns: a rejected grant cancels the work in flight but keeps every connector as configured.
func TestCancelActiveRuns(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	conn := f.connection(t)
	a, _ := f.store.Create(ctx, conn, spec("a"), time.Now().Add(time.Hour))
	b, _ := f.store.Create(ctx, conn, spec("b"), time.Now().Add(time.Hour))
	run, err := f.store.StartRun(ctx, conn, a.ID, connectors.TriggerManual)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.CancelActiveRuns(ctx, conn, "reauth_required"); err != nil {
		t.Fatalf("CancelActiveRuns() = %v", err)
	}
	r, err := f.store.GetRun(ctx, conn, a.ID, run.ID)
	if err != nil || r.Status != connectors.RunCancelled || r.CancelReason != "reauth_required" {
		t.Errorf("GetRun() after CancelActiveRuns = %+v, %v; want cancelled (reauth_required)", r, err)
	}
	for _, id := range []string{a.ID, b.ID} {
		c, err := f.store.Get(ctx, conn, id)
		if err != nil || !c.Spec.Enabled || c.NextRunAt == nil || c.ActiveRunID != "" {
			t.Errorf("Get(%s) after CancelActiveRuns = %+v, %v; want enabled, scheduled, idle", id, c, err)
		}
	}
	if err := f.store.CancelActiveRuns(ctx, conn, "reauth_required"); err != nil {
		t.Errorf("CancelActiveRuns() again = %v, want nil (idempotent)", err)
	}
}

// TestDisconnectedConnection: once a connection is marked disconnected, no connector or run can be added to it,
// and DeleteAll leaves nothing of its connectors in the partition.
func TestDisconnectedConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	conn, other := f.connection(t), f.connection(t)
	c, err := f.store.Create(ctx, conn, spec("a"), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.StartRun(ctx, conn, c.ID, connectors.TriggerManual); err != nil {
		t.Fatal(err)
	}
	oc, err := f.store.Create(ctx, other, spec("other"), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.MarkDisconnected(ctx, conn); err != nil {
		t.Fatalf("MarkDisconnected() = %v", err)
	}
	if got, err := f.conns.Get(ctx, conn); err != nil || got.Status != connections.StatusDisconnected {
		t.Errorf("connection after MarkDisconnected = %+v, %v; want disconnected", got, err)
	}
	if err := f.store.DisableAll(ctx, conn, "disconnected"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"Create", func() error { _, err := f.store.Create(ctx, conn, spec("late"), time.Time{}); return err }},
		{"StartRun", func() error { _, err := f.store.StartRun(ctx, conn, c.ID, connectors.TriggerManual); return err }},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, connectors.ErrNotActive) {
			t.Errorf("%s(disconnected connection) = %v, want ErrNotActive", tt.name, err)
		}
	}

	for range 2 { // idempotent
		if err := f.store.DeleteAll(ctx, conn); err != nil {
			t.Fatalf("DeleteAll() = %v", err)
		}
	}
	out, err := f.env.Clients.DynamoDB.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(f.env.Table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: connections.PK(conn)}},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range out.Items {
		if sk := it["sk"].(*types.AttributeValueMemberS).Value; sk != connections.MetaSK {
			t.Errorf("item %s left after DeleteAll", sk)
		}
	}
	if _, err := f.store.Get(ctx, other, oc.ID); err != nil {
		t.Errorf("Get(other connection's connector) after DeleteAll = %v, want it untouched", err)
	}
	// A connection that is already gone is not recreated by a retried mark.
	if err := f.conns.Delete(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if err := f.store.MarkDisconnected(ctx, conn); err != nil {
		t.Errorf("MarkDisconnected(deleted connection) = %v, want nil", err)
	}
	if _, err := f.conns.Get(ctx, conn); !errors.Is(err, connections.ErrNotFound) {
		t.Errorf("Get(deleted connection) after MarkDisconnected = %v, want ErrNotFound", err)
	}
}
