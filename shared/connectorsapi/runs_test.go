package connectorsapi_test

import (
	"testing"
	"time"

	"jiraexport/shared/connectors"
	"jiraexport/shared/ratebudget"
)

// TestRunStartInvokesExport: a run started through the API is handed to the export at once (exactly one
// invocation naming it) with a starter points allowance, and a failed invoke still answers 201 with the run queued
// for the dispatcher.
func TestRunStartInvokesExport(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	a := w.a.key
	id := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: w.connectorBody("x", w.sites[0])}, 201).str(t, "id")
	run := w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: a}, 201)
	want := connectors.RunRef{ConnectionID: w.a.connID, ConnectorID: id, RunID: run.str(t, "id")}
	if got := w.exports.take(); len(got) != 1 || got[0] != want {
		t.Fatalf("export invocations = %+v, want exactly %+v", got, want)
	}
	// Its first invocation has a starter allowance, as admission would give it: the API's "run now" cannot
	// spend more of the app's shared quota than that before the dispatcher's allocator sees the run.
	if r, err := w.store.GetRun(t.Context(), w.a.connID, id, want.RunID); err != nil || r.Allowance != ratebudget.StarterGrant || r.AllowanceBase != 0 {
		t.Errorf("run started through the API: allowance %d (base %d), %v; want %d from nothing spent", r.Allowance, r.AllowanceBase, err, ratebudget.StarterGrant)
	}
	// A refused second start invokes nothing.
	w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: a}, 409)
	if got := w.exports.take(); len(got) != 0 {
		t.Errorf("a refused start invoked %+v", got)
	}
	w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs/" + want.RunID + "/cancel", key: a}, 200)

	w.exports.fail.Store(true)
	run = w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: a}, 201)
	r, err := w.store.GetRun(t.Context(), w.a.connID, id, run.str(t, "id"))
	if err != nil || r.Status != connectors.RunQueued || r.DispatchedAt == nil {
		t.Errorf("run after a failed invoke = %+v, %v; want queued (the dispatcher invokes it after its guard)", r, err)
	}
}

// TestRunStartWithoutStarterWaitsForAdmission: a connection that has spent a starter allowance's worth of points
// this hour gets no other one: its run is queued for the dispatcher's admission, not invoked at once, however often
// it is cancelled and started again (each start would otherwise hand out another starter allowance outside
// admission). Another connection still starts at once.
func TestRunStartWithoutStarterWaitsForAdmission(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	a := w.a.key
	ledger := ratebudget.NewLedger(w.env.Clients.DynamoDB, w.env.Table)
	if err := ledger.Record(t.Context(), w.a.connID, w.now(), ratebudget.StarterGrant); err != nil {
		t.Fatal(err)
	}
	id := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: w.connectorBody("x", w.sites[0])}, 201).str(t, "id")
	for i := range 3 {
		runID := w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: a}, 201).str(t, "id")
		if got := w.exports.take(); len(got) != 0 {
			t.Fatalf("start %d invoked %+v; want the run left to admission", i, got)
		}
		r, err := w.store.GetRun(t.Context(), w.a.connID, id, runID)
		if err != nil || r.Status != connectors.RunQueued || r.Allowance != 0 || r.DispatchedAt == nil {
			t.Fatalf("start %d: run %+v, %v; want queued with no allowance, for the dispatcher after its guard", i, r, err)
		}
		w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs/" + runID + "/cancel", key: a}, 200)
	}
	bid := w.expect(req{method: "POST", path: "/v1/connectors", key: w.b.key, body: w.connectorBody("y", w.sites[0])}, 201).str(t, "id")
	w.expect(req{method: "POST", path: "/v1/connectors/" + bid + "/runs", key: w.b.key}, 201)
	if got := w.exports.take(); len(got) != 1 || got[0].ConnectionID != w.b.connID {
		t.Errorf("the other connection's start invoked %+v; want its run at once", got)
	}
}

// TestManualOnlyConnectors: a connector may have no schedule; it never becomes due and runs when started.
func TestManualOnlyConnectors(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	a := w.a.key
	body := w.connectorBody("manual", w.sites[0])
	delete(body, "schedule")
	c := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: body}, 201)
	id := c.str(t, "id")
	if m := c.json(t); m["schedule"] != nil || m["nextRunAt"] != nil || m["enabled"] != true {
		t.Fatalf("manual connector = %s, want schedule and nextRunAt null", c.body)
	}
	w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: a}, 201)

	// Adding a schedule makes it due; "schedule": null takes it away again.
	etag := w.expect(req{method: "GET", path: "/v1/connectors/" + id, key: a}, 200).header.Get("ETag")
	upd := w.expect(req{method: "PATCH", path: "/v1/connectors/" + id, key: a, header: map[string]string{"If-Match": etag},
		body: map[string]any{"schedule": map[string]any{"expression": "rate(1 hour)"}}}, 200)
	if m := upd.json(t); m["nextRunAt"] == nil || m["schedule"].(map[string]any)["timezone"] != "UTC" {
		t.Fatalf("PATCH schedule = %s, want a next run and the UTC default", upd.body)
	}
	upd = w.expect(req{method: "PATCH", path: "/v1/connectors/" + id, key: a, header: map[string]string{"If-Match": upd.header.Get("ETag")},
		body: `{"schedule":null}`}, 200)
	if m := upd.json(t); m["schedule"] != nil || m["nextRunAt"] != nil {
		t.Fatalf("PATCH schedule null = %s, want no schedule and no next run", upd.body)
	}
	stored, err := w.store.Get(t.Context(), w.a.connID, id)
	if err != nil || stored.Scheduled() || stored.NextRunAt != nil {
		t.Errorf("stored manual connector = %+v, %v; want no schedule, off the due index", stored, err)
	}
	// PUT without a schedule is a manual connector too; a time zone alone is refused.
	put := w.expect(req{method: "PUT", path: "/v1/connectors/" + id, key: a, header: map[string]string{"If-Match": upd.header.Get("ETag")}, body: body}, 200)
	if put.json(t)["schedule"] != nil {
		t.Errorf("PUT without schedule = %s", put.body)
	}
	bad := w.expect(req{method: "PATCH", path: "/v1/connectors/" + id, key: a, header: map[string]string{"If-Match": put.header.Get("ETag")},
		body: map[string]any{"schedule": map[string]any{"timezone": "Europe/Paris"}}}, 400)
	if f := bad.fields(t); len(f) != 1 || f[0] != "schedule.expression" {
		t.Errorf("PATCH time zone without expression: fields %v, want [schedule.expression]", f)
	}
}

// TestCensusInterval: the id census cadence is stored on the connector (connectors.Spec.CensusIntervalHours,
// what the export reads), defaults to daily and round-trips through the API.
func TestCensusInterval(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	a := w.a.key
	c := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: w.connectorBody("default", w.sites[0])}, 201)
	if got := c.json(t)["censusIntervalHours"]; got != 24.0 {
		t.Errorf("default censusIntervalHours = %v, want 24", got)
	}
	body := w.connectorBody("six", w.sites[0])
	body["censusIntervalHours"] = 6
	c = w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: body}, 201)
	id := c.str(t, "id")
	if got := c.json(t)["censusIntervalHours"]; got != 6.0 {
		t.Errorf("censusIntervalHours = %v, want 6", got)
	}
	upd := w.expect(req{method: "PATCH", path: "/v1/connectors/" + id, key: a, header: map[string]string{"If-Match": c.header.Get("ETag")},
		body: map[string]any{"censusIntervalHours": 168}}, 200)
	if got := upd.json(t)["censusIntervalHours"]; got != 168.0 {
		t.Errorf("patched censusIntervalHours = %v, want 168", got)
	}
	stored, err := w.store.Get(t.Context(), w.a.connID, id)
	if err != nil || stored.CensusIntervalHours != 168 || stored.CensusInterval() != 168*time.Hour {
		t.Errorf("stored connector census = %d (%v), %v; want 168 hours", stored.CensusIntervalHours, stored.CensusInterval(), err)
	}
	w.expect(req{method: "PATCH", path: "/v1/connectors/" + id, key: a, header: map[string]string{"If-Match": upd.header.Get("ETag")},
		body: map[string]any{"censusIntervalHours": 721}}, 400)
}

// TestRunShowsPauses: a paused run shows why and until when, and how many invocations worked on it.
func TestRunShowsPauses(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	a := w.a.key
	id := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: w.connectorBody("x", w.sites[0])}, 201).str(t, "id")
	runID := w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: a}, 201).str(t, "id")
	ref := connectors.RunRef{ConnectionID: w.a.connID, ConnectorID: id, RunID: runID}
	if _, err := w.store.AcquireRun(t.Context(), ref, "export-1", time.Minute); err != nil {
		t.Fatal(err)
	}
	reset := time.Now().Add(30 * time.Minute).UTC().Truncate(time.Millisecond)
	if err := w.store.PauseRun(t.Context(), ref, "export-1", "quota", reset, connectors.Progress{Phase: "searching",
		Counters: connectors.Counters{IssuesDone: 40, ApproxTotal: 100}}); err != nil {
		t.Fatal(err)
	}
	got := w.expect(req{method: "GET", path: "/v1/connectors/" + id + "/runs/" + runID, key: a}, 200).json(t)
	if got["status"] != "paused" || got["pauseReason"] != "quota" || got["invocations"] != 1.0 || got["resumeAfter"] != reset.Format(time.RFC3339Nano) {
		t.Errorf("GET paused run = %v, want paused, reason quota, resumeAfter %s, 1 invocation", got, reset.Format(time.RFC3339Nano))
	}
	// Once running again, the pause no longer shows.
	if _, err := w.store.AcquireRun(t.Context(), ref, "export-2", time.Minute); err == nil {
		t.Fatal("AcquireRun before resumeAfter succeeded")
	}
	list := w.expect(req{method: "GET", path: "/v1/connectors/" + id + "/runs", key: a}, 200).json(t)
	if items := list["items"].([]any); len(items) != 1 || items[0].(map[string]any)["pauseReason"] != "quota" {
		t.Errorf("run list = %v", list)
	}
}
