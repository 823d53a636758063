package erasure_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/infra/privacytest"
	"jiraexport/shared/connections"
	"jiraexport/shared/erasure"
)

const settle = 15 * time.Minute

// wantA is what erasing one scenario connection deletes: 2 connectors with 3 runs each, 2 API keys, a token,
// a re-authorisation ticket and its flow state (first connection only), and per connector 6 object versions, a
// delete marker and an upload.
func wantA(first bool) map[string]int64 {
	m := map[string]int64{
		"connection": 1, "token": 1, "apiKey": 2, "apiKeyHash": 2, "apiKeyCount": 1, "connector": 2, "connectorCount": 1,
		"run": 6, "objectVersion": 12, "deleteMarker": 2, "multipartUpload": 2,
	}
	if first {
		m["reauthTicket"], m["oauthState"] = 1, 1
	}
	return m
}

// erase runs req to completion, advancing the scenario's clock past FinishAfter when the erasure waits for it,
// and returns the last report and the number of calls.
func erase(t *testing.T, sc *privacytest.Scenario, e *erasure.Eraser, req erasure.Request) (*erasure.Report, int) {
	t.Helper()
	for calls := 1; calls < 10000; calls++ {
		rep, err := e.Erase(context.Background(), req)
		if err != nil {
			t.Fatalf("Erase(%+v) = %v", req, err)
		}
		if rep.Complete {
			return rep, calls
		}
		if rep.FinishAfter != nil && sc.Clock.Now().Before(*rep.FinishAfter) {
			sc.Clock.Advance(rep.FinishAfter.Sub(sc.Clock.Now()) + time.Second)
		}
		req.Continuation = rep.Continuation
	}
	t.Fatal("erasure never completed")
	return nil, 0
}

func TestEraseConnection(t *testing.T) {
	t.Parallel()
	sc := privacytest.Build(t, privacytest.Options{})
	a, b := sc.Parties[0], sc.Parties[1]
	beforeB := sc.Snapshot(t, b.ConnID)
	e := sc.Eraser(erasure.Config{Settle: settle})

	// The first call fences, cancels the active runs and deletes, then waits for writers that were active.
	rep, err := e.Erase(t.Context(), erasure.Request{ConnectionID: a.ConnID})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Complete || rep.FinishAfter == nil || rep.Continuation == "" || rep.RunsCancelled != 2 {
		t.Fatalf("first call = complete %v, finishAfter %v, runsCancelled %d; want incomplete, waiting, 2 runs cancelled", rep.Complete, rep.FinishAfter, rep.RunsCancelled)
	}
	c, err := sc.Conns.Get(t.Context(), a.ConnID)
	if err != nil || c.Status != connections.StatusDisconnected || c.StatusReason != connections.ReasonErasing {
		t.Fatalf("connection during erasure = %+v, %v; want disconnected (erasing)", c, err)
	}
	if ids, err := e.Pending(t.Context(), sc.Clock.Now().Add(settle+time.Minute), 10); err != nil || len(ids) != 1 || ids[0] != a.ConnID {
		t.Errorf("Pending = %v, %v; want [%s]", ids, err, a.ConnID)
	}
	if ids, _ := e.Pending(t.Context(), sc.Clock.Now(), 10); len(ids) != 0 {
		t.Errorf("Pending before finishAfter = %v, want none", ids)
	}
	// Only the connection item and the keys are left while it waits; the user's key still reaches DELETE.
	if _, err := sc.Keys.Authenticate(t.Context(), a.Keys[0]); err != nil {
		t.Errorf("key during erasure: %v", err)
	}
	sc.Clock.Advance(settle + time.Second)
	rep, err = e.Erase(t.Context(), erasure.Request{ConnectionID: a.ConnID, Continuation: rep.Continuation})
	if err != nil || !rep.Complete {
		t.Fatalf("second call = %+v, %v; want complete", rep, err)
	}
	if !maps.Equal(rep.Deleted, wantA(true)) {
		t.Errorf("deleted = %v, want %v", rep.Deleted, wantA(true))
	}
	if len(rep.FoundBehindFence) != 0 {
		t.Errorf("found behind the fence = %v, want nothing", rep.FoundBehindFence)
	}
	if s := sc.Snapshot(t, a.ConnID); !s.Empty() {
		t.Errorf("left of A: %+v", s)
	}
	if d := beforeB.Diff(sc.Snapshot(t, b.ConnID)); d != "" {
		t.Errorf("B changed:\n%s", d)
	}
	if ids, _ := e.Pending(t.Context(), sc.Clock.Now().Add(time.Hour), 10); len(ids) != 0 {
		t.Errorf("Pending after completion = %v, want none", ids)
	}
	// Idempotent: again, nothing to do, nothing deleted.
	rep, err = e.Erase(t.Context(), erasure.Request{ConnectionID: a.ConnID})
	if err != nil || !rep.Complete || rep.Total() != 0 {
		t.Errorf("erasing again = %+v, %v; want complete with nothing deleted", rep, err)
	}
}

// TestResumable: with two-item pages and one page per call, the erasure takes many calls, each resuming from the
// previous one's continuation, and ends with the same result as one call.
func TestResumable(t *testing.T) {
	t.Parallel()
	sc := privacytest.Build(t, privacytest.Options{Connections: 2})
	a, b := sc.Parties[0], sc.Parties[1]
	beforeB := sc.Snapshot(t, b.ConnID)
	e := sc.Eraser(erasure.Config{Settle: settle, PageSize: 2, MaxPages: 1})
	rep, calls := erase(t, sc, e, erasure.Request{ConnectionID: a.ConnID})
	if calls < 10 {
		t.Errorf("erasure took %d calls, want many (one page each)", calls)
	}
	if !maps.Equal(rep.Deleted, wantA(true)) {
		t.Errorf("deleted over %d calls = %v, want %v", calls, rep.Deleted, wantA(true))
	}
	if s := sc.Snapshot(t, a.ConnID); !s.Empty() {
		t.Errorf("left of A: %+v", s)
	}
	if d := beforeB.Diff(sc.Snapshot(t, b.ConnID)); d != "" {
		t.Errorf("B changed:\n%s", d)
	}
	// A crash is a lost continuation: starting over finishes the erasure.
	if _, err := e.Erase(t.Context(), erasure.Request{ConnectionID: b.ConnID}); err != nil {
		t.Fatal(err)
	}
	erase(t, sc, sc.Eraser(erasure.Config{Settle: settle}), erasure.Request{ConnectionID: b.ConnID})
	if s := sc.Snapshot(t, b.ConnID); !s.Empty() {
		t.Errorf("left of B after a restarted erasure: %+v", s)
	}
}

// TestDeadline: an erasure under a context whose deadline is within StopMargin stops at once with a continuation.
func TestDeadline(t *testing.T) {
	t.Parallel()
	sc := privacytest.Build(t, privacytest.Options{Connections: 1})
	a := sc.Parties[0]
	e := sc.Eraser(erasure.Config{StopMargin: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	defer cancel()
	rep, err := e.Erase(ctx, erasure.Request{ConnectionID: a.ConnID})
	if err != nil || rep.Complete || rep.Continuation == "" {
		t.Fatalf("Erase near the deadline = %+v, %v; want a continuation", rep, err)
	}
}

func TestDryRun(t *testing.T) {
	t.Parallel()
	sc := privacytest.Build(t, privacytest.Options{Connections: 2})
	a := sc.Parties[0]
	items, objects, uploads := sc.Items(t), sc.Objects(t), sc.Uploads(t)
	e := sc.Eraser(erasure.Config{Settle: settle, PageSize: 3, MaxPages: 2})
	rep, _ := erase(t, sc, e, erasure.Request{ConnectionID: a.ConnID, DryRun: true})
	if !rep.DryRun || !maps.Equal(rep.Deleted, wantA(true)) || rep.RunsCancelled != 2 {
		t.Errorf("dry run = %+v, want %v and 2 runs", rep, wantA(true))
	}
	after := sc.Items(t)
	if len(after) != len(items) {
		t.Fatalf("dry run changed the item count: %d -> %d", len(items), len(after))
	}
	for i := range items {
		if items[i].JSON != after[i].JSON {
			t.Errorf("dry run changed %s", items[i].JSON)
		}
	}
	if o := sc.Objects(t); len(o) != len(objects) {
		t.Errorf("dry run changed the objects: %d -> %d", len(objects), len(o))
	}
	if u := sc.Uploads(t); len(u) != len(uploads) {
		t.Errorf("dry run changed the uploads: %d -> %d", len(uploads), len(u))
	}
	// A continuation is bound to its request: it cannot turn a dry run into an erasure.
	rep, err := e.Erase(t.Context(), erasure.Request{ConnectionID: a.ConnID, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Erase(t.Context(), erasure.Request{ConnectionID: a.ConnID, Continuation: rep.Continuation}); !errors.Is(err, erasure.ErrBadContinuation) {
		t.Errorf("dry-run continuation on an erasure = %v, want ErrBadContinuation", err)
	}
	if _, err := e.Erase(t.Context(), erasure.Request{ConnectionID: a.ConnID, SiteID: "x"}); !errors.Is(err, erasure.ErrBadRequest) {
		t.Errorf("both targets = %v, want ErrBadRequest", err)
	}
}

// TestBehindFence: whatever a writer that was running at the fence writes before FinishAfter is found by the
// re-check, deleted and reported.
func TestBehindFence(t *testing.T) {
	t.Parallel()
	sc := privacytest.Build(t, privacytest.Options{Connections: 2}) // the last one's grant is revoked: no active run
	a := sc.Parties[0]
	e := sc.Eraser(erasure.Config{Settle: settle})
	rep, err := e.Erase(t.Context(), erasure.Request{ConnectionID: a.ConnID})
	if err != nil || rep.Complete {
		t.Fatalf("first call = %+v, %v; want it waiting", rep, err)
	}
	// An export between two checkpoints: an object, and a points counter (unconditional ADD).
	sc.Put(t, a.ConnID+"/"+a.Connectors[0]+"/issues/10003.json", `{"id":"10003"}`)
	if _, err := sc.Env.Clients.DynamoDB.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{
		TableName: &sc.Env.Table,
		Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: connections.PK(a.ConnID)},
			"sk": &ddbtypes.AttributeValueMemberS{Value: "POINTS#2026120115"}},
		UpdateExpression:          aws.String("ADD points :n"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":n": &ddbtypes.AttributeValueMemberN{Value: "5"}},
	}); err != nil {
		t.Fatal(err)
	}
	rep, _ = erase(t, sc, e, erasure.Request{ConnectionID: a.ConnID, Continuation: rep.Continuation})
	want := map[string]int64{"objectVersion": 1, "pointsCounter": 1}
	if !maps.Equal(rep.FoundBehindFence, want) {
		t.Errorf("found behind the fence = %v, want %v", rep.FoundBehindFence, want)
	}
	if s := sc.Snapshot(t, a.ConnID); !s.Empty() {
		t.Errorf("left of A: %+v", s)
	}
}

// TestExpiredRevoked: a grant left revoked is listed once old enough, and its automatic erasure leaves a
// connection that was re-authorised (or never revoked) alone.
func TestExpiredRevoked(t *testing.T) {
	t.Parallel()
	sc := privacytest.Build(t, privacytest.Options{Connections: 2})
	active, revoked := sc.Parties[0], sc.Parties[1]
	e := sc.Eraser(erasure.Config{Settle: settle})
	now := sc.Clock.Now()
	if ids, err := e.ExpiredRevoked(t.Context(), now.Add(-time.Hour), 10); err != nil || len(ids) != 0 {
		t.Errorf("ExpiredRevoked(an hour ago) = %v, %v; want none", ids, err)
	}
	ids, err := e.ExpiredRevoked(t.Context(), now.Add(30*24*time.Hour), 10)
	if err != nil || len(ids) != 1 || ids[0] != revoked.ConnID {
		t.Fatalf("ExpiredRevoked(in 30 days) = %v, %v; want [%s]", ids, err, revoked.ConnID)
	}
	before := now.Add(30 * 24 * time.Hour)
	if _, err := e.Erase(t.Context(), erasure.Request{ConnectionID: active.ConnID, RevokedBefore: before}); !errors.Is(err, erasure.ErrNotRevoked) {
		t.Errorf("automatic erasure of an active connection = %v, want ErrNotRevoked", err)
	}
	if s := sc.Snapshot(t, active.ConnID); s.Empty() {
		t.Error("the active connection was erased")
	}
	erase(t, sc, e, erasure.Request{ConnectionID: revoked.ConnID, RevokedBefore: before})
	if s := sc.Snapshot(t, revoked.ConnID); !s.Empty() {
		t.Errorf("left of the revoked connection: %+v", s)
	}
}

// TestSiteErasure: erasing a site erases every connection that holds it, and only those.
func TestSiteErasure(t *testing.T) {
	t.Parallel()
	sc := privacytest.Build(t, privacytest.Options{Connections: 2})
	site := sc.Sim.Sites()[0].CloudID
	var holders []string
	for _, p := range sc.Parties {
		c, err := sc.Conns.Get(t.Context(), p.ConnID)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range c.Sites {
			if s.CloudID == site {
				holders = append(holders, p.ConnID)
			}
		}
	}
	if len(holders) == 0 {
		t.Fatal("no connection holds the first site")
	}
	e := sc.Eraser(erasure.Config{Settle: settle, PageSize: 1, MaxPages: 3})
	rep, _ := erase(t, sc, e, erasure.Request{SiteID: site})
	if len(rep.ConnectionIDs) != len(holders) {
		t.Errorf("erased %v, want %v", rep.ConnectionIDs, holders)
	}
	for _, id := range holders {
		if s := sc.Snapshot(t, id); !s.Empty() {
			t.Errorf("left of %s: %+v", id, s)
		}
	}
}
