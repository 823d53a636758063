package privacy_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/privacytest"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/erasure"
	"jiraexport/shared/export"
	"jiraexport/shared/oauthstate"
)

// Shapes of plaintext credentials: the simulator's access and refresh tokens, its authorisation codes, our keys.
var credentialShapes = []string{"sim_at_", "sim_rt_", "jxk_"}

func build(t *testing.T) *privacytest.Scenario {
	t.Helper()
	// Real exports: S3 holds the export's own scrubbed documents and manifests, beside older versions, a delete
	// marker and an incomplete upload.
	return privacytest.Build(t, privacytest.Options{Connections: 3, Export: true})
}

// Promise: only OAuth tokens (encrypted) and their metadata are stored, never a plaintext token, API key or
// user-made credential.
func TestNoPlaintextCredentialStored(t *testing.T) {
	t.Parallel()
	sc := build(t)
	for _, it := range sc.Items(t) {
		for _, s := range append(credentialShapes, sc.Secrets...) {
			if strings.Contains(it.JSON, s) {
				t.Errorf("item %s/%s holds a plaintext credential (%.8s...)", it.PK, it.SK, s)
			}
		}
	}
	for _, o := range sc.Objects(t) {
		for _, s := range append(credentialShapes, sc.Secrets...) {
			if strings.Contains(string(o.Body), s) {
				t.Errorf("object %s holds a plaintext credential", o.Key)
			}
		}
	}
}

// Promise: never an Atlassian account id (nor, in the table, an e-mail address or display name).
func TestNoAccountIDStored(t *testing.T) {
	t.Parallel()
	sc := build(t)
	ids := sc.AccountIDs()
	if len(ids) == 0 {
		t.Fatal("the simulator knows no account ids")
	}
	for _, it := range sc.Items(t) {
		for _, s := range append(ids, sc.PII()...) {
			if strings.Contains(it.JSON, s) {
				t.Errorf("item %s/%s holds an account id, e-mail or name", it.PK, it.SK)
			}
		}
	}
	docs := 0
	for _, o := range sc.Objects(t) {
		for _, id := range ids {
			if strings.Contains(string(o.Body), id) {
				t.Errorf("object %s holds an account id", o.Key)
			}
		}
		if strings.Contains(string(o.Body), `"schema":"issue.v1"`) {
			docs++
		}
	}
	if docs == 0 {
		t.Fatal("the scenario's exports wrote no issue document")
	}
}

// Promise: everything is encrypted. Every object version is SSE-KMS under the stack's key. (The bucket policy
// refusing any other put is pinned by infra/samtemplate TestBucketRefusesPutsNotUnderTheStackKey: moto does not
// evaluate policy conditions.)
func TestObjectsEncryptedUnderStackKey(t *testing.T) {
	t.Parallel()
	sc := build(t)
	n := 0
	for _, o := range sc.Objects(t) {
		if o.DeleteMarker {
			continue
		}
		n++
		if o.SSE != string(s3types.ServerSideEncryptionAwsKms) || o.KMSKeyID != sc.Env.KeyARN {
			t.Errorf("object %s (version %s) is %q under %q, want aws:kms under the stack's key", o.Key, o.VersionID, o.SSE, o.KMSKeyID)
		}
	}
	if n == 0 {
		t.Fatal("the scenario wrote no objects")
	}
}

// Promise: logs hold nothing sensitive: no token, secret, API key, e-mail, display name, account id or JQL
// value, in the logs of the OAuth flow, the token store and an erasure (the purge function's audit line).
func TestLogsHoldNothingSensitive(t *testing.T) {
	t.Parallel()
	sc := build(t)
	h := erasure.AdminHandler(sc.Eraser(erasure.Config{Settle: -1}), sc.Log, 30*24*time.Hour)
	if _, err := h(t.Context(), erasure.AdminRequest{Request: erasure.Request{ConnectionID: sc.Parties[0].ConnID}}); err != nil {
		t.Fatal(err)
	}
	logs := sc.Logs.String()
	if !strings.Contains(logs, `"message":"purge"`) {
		t.Fatalf("no audit line in the logs:\n%s", logs)
	}
	for _, s := range append(append(append(credentialShapes, sc.Secrets...), sc.PII()...), sc.JQLs...) {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold a secret or personal data (%.6s..., %d chars)", s, len(s))
		}
	}
}

// Promise: a user or an admin can have everything deleted. Erasing A leaves no item (in or outside its
// partition), object version, delete marker or upload of A, and B and C byte for byte as they were.
func TestErasureLeavesNothingAndTouchesNoOneElse(t *testing.T) {
	t.Parallel()
	sc := build(t)
	a := sc.Parties[0]
	others := map[string]privacytest.Snapshot{}
	for _, p := range sc.Parties[1:] {
		others[p.ConnID] = sc.Snapshot(t, p.ConnID)
	}
	if s := sc.Snapshot(t, a.ConnID); len(s.Items) == 0 || len(s.Objects) == 0 || len(s.Uploads) == 0 {
		t.Fatalf("the scenario gave A nothing to erase: %+v", s)
	}
	eraseAll(t, sc, sc.Eraser(erasure.Config{}), erasure.Request{ConnectionID: a.ConnID})
	if s := sc.Snapshot(t, a.ConnID); !s.Empty() {
		t.Errorf("left of A: %+v", s)
	}
	for _, it := range sc.Items(t) {
		if strings.Contains(it.JSON, a.ConnID) {
			t.Errorf("item %s/%s still names A", it.PK, it.SK)
		}
	}
	for id, before := range others {
		if d := before.Diff(sc.Snapshot(t, id)); d != "" {
			t.Errorf("connection %s changed:\n%s", id, d)
		}
	}
}

// Promise: an erasure during a running export leaves nothing behind. The fence stops the export's next
// conditional write, and what it writes meanwhile (objects) is found by the re-check after the settle window.
func TestErasureDuringRunningExport(t *testing.T) {
	t.Parallel()
	sc := build(t)
	a := sc.Parties[0]
	ctx := t.Context()
	conn := a.Connectors[0]
	c, err := sc.Store.Get(ctx, a.ConnID, conn)
	if err != nil || c.ActiveRunID == "" {
		t.Fatalf("connector %s has no active run: %v", conn, err)
	}
	run := c.ActiveRunID
	if _, err := sc.Store.UpdateProgress(ctx, a.ConnID, conn, run, connectors.Progress{Status: connectors.RunRunning, Phase: "searching"}); err != nil {
		t.Fatal(err)
	}
	e := sc.Eraser(erasure.Config{Settle: 15 * time.Minute})
	rep, err := e.Erase(ctx, erasure.Request{ConnectionID: a.ConnID})
	if err != nil || rep.Complete {
		t.Fatalf("erasure with a running export = %+v, %v; want it waiting for the export", rep, err)
	}
	// The export's next checkpoint fails: its run is no longer running, and nothing new starts.
	if _, err := sc.Store.UpdateProgress(ctx, a.ConnID, conn, run, connectors.Progress{Phase: "searching"}); !errors.Is(err, connectors.ErrRunFinished) && !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("checkpoint after the fence = %v, want ErrRunFinished", err)
	}
	if _, err := sc.Store.StartRun(ctx, a.ConnID, conn, connectors.TriggerManual); err == nil {
		t.Error("a run started after the fence")
	}
	// Between two checkpoints, the export still writes an object.
	sc.Put(t, a.ConnID+"/"+conn+"/issues/10009.json", `{"id":"10009"}`)
	rep = eraseAll(t, sc, e, erasure.Request{ConnectionID: a.ConnID, Continuation: rep.Continuation})
	if rep.FoundBehindFence["objectVersion"] != 1 {
		t.Errorf("found behind the fence = %v, want the object written after the fence", rep.FoundBehindFence)
	}
	if s := sc.Snapshot(t, a.ConnID); !s.Empty() {
		t.Errorf("left of A: %+v", s)
	}
}

// Promise: an erasure during a running export leaves nothing behind, with a real export mid-run (the engine,
// slowed by Jira latency, working on A's queued run against the simulator): the fence stops it at its next
// checkpoint and the erasure, once settled, leaves nothing of A.
func TestErasureDuringRealExport(t *testing.T) {
	t.Parallel()
	sc := build(t)
	a := sc.Parties[0]
	ctx := t.Context()
	conn := a.Exported[0]
	c, err := sc.Store.Get(ctx, a.ConnID, conn)
	if err != nil || c.ActiveRunID == "" {
		t.Fatalf("connector %s has no active run: %v", conn, err)
	}
	ref := connectors.RunRef{ConnectionID: a.ConnID, ConnectorID: conn, RunID: c.ActiveRunID}
	sc.Sim.SetLatency(atlassiansim.LatencyProfile{Name: "slow", Search: atlassiansim.Duration(700 * time.Millisecond),
		Bulk: atlassiansim.Duration(500 * time.Millisecond), Get: atlassiansim.Duration(300 * time.Millisecond)})
	type result struct {
		out export.Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := sc.Engine.Run(context.WithoutCancel(ctx), ref)
		done <- result{out, err}
	}()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		r, err := sc.Store.GetRun(ctx, a.ConnID, conn, ref.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == connectors.RunRunning {
			break
		}
		if !r.Status.Active() || time.Now().After(deadline) {
			t.Fatalf("the export did not start: run %s", r.Status)
		}
	}
	e := sc.Eraser(erasure.Config{Settle: time.Minute})
	rep, err := e.Erase(ctx, erasure.Request{ConnectionID: a.ConnID})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		// Stopped at its next checkpoint by the fence, not finished before it.
		if r.out != export.Stopped {
			t.Errorf("the fenced export ended %q (%v), want stopped", r.out, r.err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the export did not stop after the fence")
	}
	if !rep.Complete {
		eraseAll(t, sc, e, erasure.Request{ConnectionID: a.ConnID, Continuation: rep.Continuation})
	}
	if s := sc.Snapshot(t, a.ConnID); !s.Empty() {
		t.Errorf("left of A: %+v", s)
	}
}

// Promise (operability of erasure): a dry run deletes nothing.
func TestDryRunDeletesNothing(t *testing.T) {
	t.Parallel()
	sc := build(t)
	items, objects, uploads := sc.Items(t), sc.Objects(t), sc.Uploads(t)
	rep := eraseAll(t, sc, sc.Eraser(erasure.Config{}), erasure.Request{SiteID: sc.Sim.Sites()[0].CloudID, DryRun: true})
	if rep.Total() == 0 {
		t.Errorf("dry run found nothing to delete: %+v", rep)
	}
	after := sc.Items(t)
	if len(after) != len(items) {
		t.Fatalf("item count %d -> %d", len(items), len(after))
	}
	for i := range items {
		if items[i].JSON != after[i].JSON {
			t.Errorf("dry run changed %s/%s", items[i].PK, items[i].SK)
		}
	}
	if o := sc.Objects(t); len(o) != len(objects) {
		t.Errorf("object versions %d -> %d", len(objects), len(o))
	}
	if u := sc.Uploads(t); strings.Join(u, ",") != strings.Join(uploads, ",") {
		t.Errorf("uploads %v -> %v", uploads, u)
	}
}

// Promise: erasure completes on any amount of data: resumable (one page per call here) and idempotent.
func TestErasureResumableAndIdempotent(t *testing.T) {
	t.Parallel()
	sc := build(t)
	a := sc.Parties[1]
	versions := 0
	for _, o := range sc.Snapshot(t, a.ConnID).Objects {
		if strings.Contains(o, " marker=false ") {
			versions++
		}
	}
	e := sc.Eraser(erasure.Config{PageSize: 1, MaxPages: 1})
	rep := eraseAll(t, sc, e, erasure.Request{ConnectionID: a.ConnID})
	if s := sc.Snapshot(t, a.ConnID); !s.Empty() {
		t.Errorf("left of A after a resumed erasure: %+v", s)
	}
	if rep.Deleted["objectVersion"] != int64(versions) || rep.Deleted["connection"] != 1 {
		t.Errorf("deleted = %v", rep.Deleted)
	}
	again := eraseAll(t, sc, sc.Eraser(erasure.Config{}), erasure.Request{ConnectionID: a.ConnID})
	if again.Total() != 0 {
		t.Errorf("second erasure deleted %v, want nothing", again.Deleted)
	}
}

// Promise: nothing is kept longer than necessary. Finished runs expire after RunHistoryDays, OAuth states and
// re-authorisation tickets after 10 minutes, and a grant left revoked is found for automatic erasure once it has
// been revoked RevokedGrantDays (and not before).
func TestRetention(t *testing.T) {
	t.Parallel()
	sc := build(t)
	now := sc.Clock.Now()
	runs, states := 0, 0
	for _, it := range sc.Items(t) {
		typ := attr(it.Raw, "type")
		ttl, hasTTL := number(it.Raw, "ttl")
		switch typ {
		case connectors.ItemTypeRun:
			status := attr(it.Raw, "status")
			final := connectors.RunStatus(status) != "" && !connectors.RunStatus(status).Active()
			if final != hasTTL {
				t.Errorf("run %s (%s): ttl present = %v, want %v", it.SK, status, hasTTL, final)
			}
			if final {
				runs++
				if d := time.Unix(ttl, 0).Sub(now); d < 29*24*time.Hour || d > 31*24*time.Hour {
					t.Errorf("run %s expires in %v, want the run history (30 days here)", it.SK, d)
				}
			}
		case oauthstate.ItemTypeState, oauthstate.ItemTypeReauth:
			states++
			if !hasTTL || time.Unix(ttl, 0).After(now.Add(oauthstate.TTL)) {
				t.Errorf("OAuth state %s: ttl %v, want within %v", it.PK, ttl, oauthstate.TTL)
			}
		}
	}
	if runs == 0 || states == 0 {
		t.Fatalf("the scenario has %d finished runs and %d states", runs, states)
	}
	e := sc.Eraser(erasure.Config{})
	revoked := sc.Parties[len(sc.Parties)-1].ConnID
	if ids, _ := e.ExpiredRevoked(context.Background(), now.Add(-time.Minute), 10); len(ids) != 0 {
		t.Errorf("revoked for a moment, already listed for erasure: %v", ids)
	}
	ids, err := e.ExpiredRevoked(context.Background(), now.Add(30*24*time.Hour), 10)
	if err != nil || len(ids) != 1 || ids[0] != revoked {
		t.Errorf("ExpiredRevoked after 30 days = %v, %v; want [%s]", ids, err, revoked)
	}
	c, err := sc.Conns.Get(context.Background(), revoked)
	if err != nil || c.Status != connections.StatusReauthRequired {
		t.Errorf("revoked connection = %+v, %v", c, err)
	}
}

func eraseAll(t *testing.T, sc *privacytest.Scenario, e *erasure.Eraser, req erasure.Request) *erasure.Report {
	t.Helper()
	for range 10000 {
		rep, err := e.Erase(context.Background(), req)
		if err != nil {
			t.Fatalf("Erase = %v", err)
		}
		if rep.Complete {
			return rep
		}
		if rep.FinishAfter != nil && sc.Clock.Now().Before(*rep.FinishAfter) {
			sc.Clock.Advance(rep.FinishAfter.Sub(sc.Clock.Now()) + time.Second)
		}
		req.Continuation = rep.Continuation
	}
	t.Fatal("erasure never completed")
	return nil
}

func attr(m map[string]ddbtypes.AttributeValue, k string) string {
	if v, ok := m[k].(*ddbtypes.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func number(m map[string]ddbtypes.AttributeValue, k string) (int64, bool) {
	v, ok := m[k].(*ddbtypes.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	return n, err == nil
}
