package connectors_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
)

// clock is a controllable time source shared by the stores of a test.
type clock struct{ ns atomic.Int64 }

func newClock() *clock                   { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func (f *fixture) clocked(c *clock) *connectors.Store {
	return connectors.NewStore(f.env.Clients.DynamoDB, f.env.Table, connectors.WithClock(c.now))
}

func (f *fixture) queuedRun(t *testing.T, st *connectors.Store) connectors.RunRef {
	t.Helper()
	conn := f.connection(t)
	c, err := st.Create(t.Context(), conn, spec("lifecycle"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.StartRun(t.Context(), conn, c.ID, connectors.TriggerManual)
	if err != nil {
		t.Fatal(err)
	}
	return connectors.RunRef{ConnectionID: conn, ConnectorID: c.ID, RunID: r.ID}
}

func TestRunLeaseLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clk := newClock()
	st := f.clocked(clk)
	ctx := t.Context()
	ref := f.queuedRun(t, st)
	lease := 2 * time.Minute

	r, err := st.AcquireRun(ctx, ref, "w1", lease)
	if err != nil || r.Status != connectors.RunRunning || r.LeaseOwner != "w1" || r.Invocations != 1 || r.StartedAt == nil {
		t.Fatalf("AcquireRun(w1) = %+v, %v; want running, leased by w1, 1 invocation", r, err)
	}
	if _, err := st.AcquireRun(ctx, ref, "w2", lease); !errors.Is(err, connectors.ErrLeaseHeld) {
		t.Fatalf("AcquireRun(w2 while w1 holds) = %v, want ErrLeaseHeld", err)
	}
	// The holder's own retry (a redelivered event in the same invocation) is let in.
	if _, err := st.AcquireRun(ctx, ref, "w1", lease); err != nil {
		t.Fatalf("AcquireRun(w1 again) = %v", err)
	}
	p := connectors.Progress{Phase: "searching", Counters: connectors.Counters{IssuesDone: 100}}
	if err := st.SaveProgress(ctx, ref, "w2", lease, p); !errors.Is(err, connectors.ErrLeaseLost) {
		t.Fatalf("SaveProgress(w2) = %v, want ErrLeaseLost", err)
	}
	if err := st.SaveProgress(ctx, ref, "w1", lease, p); err != nil {
		t.Fatalf("SaveProgress(w1) = %v", err)
	}

	// w1 crashes: once its lease expires, w2 takes over and w1's late writes are refused.
	clk.advance(lease + time.Second)
	r, err = st.AcquireRun(ctx, ref, "w2", lease)
	if err != nil || r.LeaseOwner != "w2" || r.Counters.IssuesDone != 100 || r.Phase != "searching" {
		t.Fatalf("AcquireRun(w2 after expiry) = %+v, %v; want w2 with w1's progress", r, err)
	}
	if err := st.SaveProgress(ctx, ref, "w1", lease, p); !errors.Is(err, connectors.ErrLeaseLost) {
		t.Fatalf("SaveProgress(w1 after takeover) = %v, want ErrLeaseLost", err)
	}

	// Pause until a quota reset: nobody may take it before then.
	reset := clk.now().Add(30 * time.Minute)
	if err := st.PauseRun(ctx, ref, "w2", "quota", reset, p); err != nil {
		t.Fatalf("PauseRun() = %v", err)
	}
	r, _ = st.GetRun(ctx, ref.ConnectionID, ref.ConnectorID, ref.RunID)
	if r.Status != connectors.RunPaused || r.LeaseOwner != "" || r.ResumeAfter == nil || r.PauseReason != "quota" {
		t.Fatalf("GetRun(paused) = %+v; want paused, no lease, resumeAfter, reason quota", r)
	}
	if !r.Status.Active() {
		t.Error("paused run is not active; it must keep the connector's run slot")
	}
	if _, err := st.AcquireRun(ctx, ref, "w3", lease); !errors.Is(err, connectors.ErrRunWaiting) {
		t.Fatalf("AcquireRun(before reset) = %v, want ErrRunWaiting", err)
	}
	clk.advance(31 * time.Minute)
	if r, err = st.AcquireRun(ctx, ref, "w3", lease); err != nil || r.Invocations != 4 || r.ResumeAfter != nil {
		t.Fatalf("AcquireRun(after reset) = %+v, %v; want 4th invocation, resumeAfter cleared", r, err)
	}

	// An invocation that stops before it has any figures of its own keeps the stored ones.
	if err := st.PauseRun(ctx, ref, "w3", "deadline", time.Time{}, connectors.Progress{KeepCounters: true}); err != nil {
		t.Fatalf("PauseRun(keep counters) = %v", err)
	}
	if r, err = st.AcquireRun(ctx, ref, "w3", lease); err != nil || r.Counters.IssuesDone != 100 {
		t.Fatalf("AcquireRun(after a pause without figures) = %+v, %v; want the counters kept (100 issues done)", r, err)
	}

	// Finish releases the slot; nothing can write the run afterwards.
	done := connectors.Progress{Phase: "done", Counters: connectors.Counters{IssuesDone: 250}}
	if err := st.FinishRun(ctx, ref, "w3", connectors.RunSucceeded, done); err != nil {
		t.Fatalf("FinishRun() = %v", err)
	}
	c, _ := st.Get(ctx, ref.ConnectionID, ref.ConnectorID)
	if c.ActiveRunID != "" || c.LastRun.Status != connectors.RunSucceeded {
		t.Errorf("connector after finish = %+v; want the slot free and lastRun succeeded", c)
	}
	for name, err := range map[string]error{
		"SaveProgress": st.SaveProgress(ctx, ref, "w3", lease, p),
		"PauseRun":     st.PauseRun(ctx, ref, "w3", "deadline", time.Time{}, p),
		"FinishRun":    st.FinishRun(ctx, ref, "w3", connectors.RunFailed, p),
	} {
		if !errors.Is(err, connectors.ErrRunFinished) {
			t.Errorf("%s(after finish) = %v, want ErrRunFinished", name, err)
		}
	}
	if _, err := st.AcquireRun(ctx, ref, "w4", lease); !errors.Is(err, connectors.ErrRunFinished) {
		t.Errorf("AcquireRun(after finish) = %v, want ErrRunFinished", err)
	}
}

func TestRunLeaseFences(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := f.store
	ctx := t.Context()
	lease := time.Minute

	t.Run("cancel stops the worker at its next checkpoint", func(t *testing.T) {
		ref := f.queuedRun(t, st)
		if _, err := st.AcquireRun(ctx, ref, "w", lease); err != nil {
			t.Fatal(err)
		}
		if _, err := st.CancelRun(ctx, ref.ConnectionID, ref.ConnectorID, ref.RunID, "user"); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveProgress(ctx, ref, "w", lease, connectors.Progress{}); !errors.Is(err, connectors.ErrRunFinished) {
			t.Errorf("SaveProgress(after cancel) = %v, want ErrRunFinished", err)
		}
	})
	t.Run("a connection that is not active stops the worker", func(t *testing.T) {
		ref := f.queuedRun(t, st)
		if _, err := st.AcquireRun(ctx, ref, "w", lease); err != nil {
			t.Fatal(err)
		}
		if err := f.conns.MarkGrantReauthRequired(ctx, ref.ConnectionID, "invalid_grant", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveProgress(ctx, ref, "w", lease, connectors.Progress{}); !errors.Is(err, connectors.ErrNotActive) {
			t.Errorf("SaveProgress(reauth required) = %v, want ErrNotActive", err)
		}
		// The worker can still record why it stopped.
		if err := st.FinishRun(ctx, ref, "w", connectors.RunFailed, connectors.Progress{Errors: []connectors.RunError{{Reason: "reauth_required"}}}); err != nil {
			t.Errorf("FinishRun(reauth required) = %v", err)
		}
		ref2 := f.queuedRun(t, st)
		if err := f.conns.MarkGrantReauthRequired(ctx, ref2.ConnectionID, "invalid_grant", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.AcquireRun(ctx, ref2, "w", lease); !errors.Is(err, connectors.ErrNotActive) {
			t.Errorf("AcquireRun(reauth required) = %v, want ErrNotActive", err)
		}
	})
	t.Run("an erased run cannot be resurrected", func(t *testing.T) {
		ref := f.queuedRun(t, st)
		if _, err := st.AcquireRun(ctx, ref, "w", lease); err != nil {
			t.Fatal(err)
		}
		if _, err := f.env.Clients.DynamoDB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &f.env.Table, Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: connections.PK(ref.ConnectionID)},
			"sk": &types.AttributeValueMemberS{Value: "RUN#" + ref.ConnectorID + "#" + ref.RunID}}}); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"SaveProgress": st.SaveProgress(ctx, ref, "w", lease, connectors.Progress{}),
			"FinishRun":    st.FinishRun(ctx, ref, "w", connectors.RunSucceeded, connectors.Progress{}),
		} {
			if !errors.Is(err, connectors.ErrNotFound) {
				t.Errorf("%s(erased) = %v, want ErrNotFound", name, err)
			}
		}
	})
	t.Run("extra items commit with the checkpoint or not at all", func(t *testing.T) {
		ref := f.queuedRun(t, st)
		if _, err := st.AcquireRun(ctx, ref, "w", lease); err != nil {
			t.Fatal(err)
		}
		ckpt := func(cond string) types.TransactWriteItem {
			return types.TransactWriteItem{Put: &types.Put{TableName: &f.env.Table, Item: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: connections.PK(ref.ConnectionID)},
				"sk": &types.AttributeValueMemberS{Value: "CKPT#" + ref.ConnectorID + "#" + ref.RunID},
			}, ConditionExpression: aws.String(cond)}}
		}
		err := st.SaveProgress(ctx, ref, "w", lease, connectors.Progress{Counters: connectors.Counters{IssuesDone: 7}}, ckpt("attribute_exists(nothing)"))
		var xf *connectors.ExtraFailedError
		if !errors.As(err, &xf) || xf.Index != 0 {
			t.Fatalf("SaveProgress(failing extra) = %v, want ExtraFailedError{0}", err)
		}
		r, _ := st.GetRun(ctx, ref.ConnectionID, ref.ConnectorID, ref.RunID)
		if r.Counters.IssuesDone != 0 {
			t.Errorf("progress committed without its checkpoint: %+v", r.Counters)
		}
		if err := st.SaveProgress(ctx, ref, "w", lease, connectors.Progress{}, ckpt("attribute_not_exists(pk)")); err != nil {
			t.Errorf("SaveProgress(extra) = %v", err)
		}
	})
}

// Overlapping dispatcher ticks and duplicated async events: of many concurrent workers exactly one gets the run.
func TestRunLeaseExactlyOneWinner(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref := f.queuedRun(t, f.store)
	var wg sync.WaitGroup
	var winners atomic.Int32
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.store.AcquireRun(t.Context(), ref, "w"+string(rune('a'+i)), time.Minute)
			switch {
			case err == nil:
				winners.Add(1)
			case !errors.Is(err, connectors.ErrLeaseHeld):
				t.Errorf("AcquireRun() = %v, want nil or ErrLeaseHeld", err)
			}
		}()
	}
	wg.Wait()
	if winners.Load() != 1 {
		t.Errorf("%d workers acquired the run, want exactly 1", winners.Load())
	}
}
