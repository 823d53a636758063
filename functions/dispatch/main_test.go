package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"jiraexport/infra/stacktest"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/dispatch"
)

// TestDispatchBootstrap runs the real bootstrap under the Lambda Runtime Interface Emulator with the environment
// template.yaml gives it (table and export function name only: no client secret), fires a scheduler event, and
// checks the due connector's run was created and handed to the export function through the Lambda Invoke API
// (asynchronously), once, with the contract's payload.
func TestDispatchBootstrap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the function under the emulator")
	}
	t.Parallel()
	env := stacktest.New(t)
	ctx := t.Context()
	db := env.Clients.DynamoDB
	conn := &connections.Connection{ID: connections.NewID(), Status: connections.StatusActive, GrantStartedAt: time.Now().UTC(),
		Sites: []connections.Site{{CloudID: "site-1", URL: "https://a.atlassian.net", Name: "a"}}}
	if err := connections.NewStore(db, env.Table).Create(ctx, conn); err != nil {
		t.Fatal(err)
	}
	store := connectors.NewStore(db, env.Table)
	spec := connectors.Spec{Name: "due", SiteID: "site-1", JQL: "project = A", Enabled: true,
		Schedule: connectors.Schedule{Expression: "rate(1 hour)"}}
	spec.Normalize()
	c, err := store.Create(ctx, conn.ID, spec, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var calls []string
	lambdaAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, r.URL.Path+" "+r.Header.Get("X-Amz-Invocation-Type")+" "+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer lambdaAPI.Close()

	fnEnv := env.FunctionEnv(t, "DispatchFunction", map[string]string{"AWS_ENDPOINT_URL_LAMBDA": lambdaAPI.URL})
	for _, k := range []string{"ATLASSIAN_CLIENT_SECRET_ARN", "KMS_KEY_ID", "ATLASSIAN_CLIENT_ID"} {
		if _, ok := fnEnv[k]; ok {
			t.Errorf("DispatchFunction environment has %s", k)
		}
	}
	fn := env.StartFunction(t, "DispatchFunction", map[string]string{"AWS_ENDPOINT_URL_LAMBDA": lambdaAPI.URL})
	// What EventBridge Scheduler sends (its event carries nothing the tick needs).
	out, err := fn.Invoke(ctx, []byte(`{"version":"0","id":"e","detail-type":"Scheduled Event","source":"aws.scheduler","detail":{}}`))
	if err != nil {
		t.Fatalf("invoke: %v\n%s", err, fn.Logs())
	}
	var rep dispatch.Report
	if err := json.Unmarshal(out, &rep); err != nil || rep.Created != 1 || rep.Invoked != 1 {
		t.Fatalf("tick report = %s (%v), want one run created and invoked\n%s", out, err, fn.Logs())
	}
	runs, _, err := store.ListRuns(ctx, conn.ID, c.ID, 10, "")
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %+v, %v; want one", runs, err)
	}
	payload, _ := json.Marshal(connectors.RunRef{ConnectionID: conn.ID, ConnectorID: c.ID, RunID: runs[0].ID})
	want := "/2015-03-31/functions/ExportFunction/invocations Event " + string(payload)
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || calls[0] != want {
		t.Errorf("Lambda Invoke calls = %q, want [%q]", calls, want)
	}
	if l := fn.Logs(); !strings.Contains(l, `"message":"tick"`) || !strings.Contains(l, `"created":1`) {
		t.Errorf("function logs = %.500s, want the tick's report line", l)
	}
}
