package connectorsapi_test

import (
	"testing"
	"time"

	"jiraexport/shared/ratebudget"
)

// TestAPIJiraCallsRecordPoints: the API's own Jira calls (JQL validation on create, the preview's count) are
// recorded per connection in the hourly ledger, exactly as many points as the simulator charged, and another
// connection's counter stays untouched.
func TestAPIJiraCallsRecordPoints(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	before := w.sim.Counters().PointsTotal
	id := w.expect(req{method: "POST", path: "/v1/connectors", key: w.a.key, body: w.connectorBody("x", w.sites[0])}, 201).str(t, "id")
	w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/preview", key: w.a.key}, 200)
	charged := w.sim.Counters().PointsTotal - before
	if charged < 2 {
		t.Fatalf("the simulator charged %d points for a validation and a count; want at least 2", charged)
	}
	u, err := ratebudget.NewLedger(w.env.Clients.DynamoDB, w.env.Table).Usage(t.Context(), time.Now(), w.a.connID, w.b.connID)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.ByConnection[w.a.connID]; got != charged || u.App < charged {
		t.Errorf("ledger: connection %d, app %d; want %d (what the simulator charged)", got, u.App, charged)
	}
	if got := u.ByConnection[w.b.connID]; got != 0 {
		t.Errorf("ledger: the other connection has %d points, want 0", got)
	}
}
