package connectorsapi_test

import (
	"strings"
	"testing"

	"jiraexport/shared/connectors"
)

// TestThroughEmulator runs the lifecycle, validation and isolation scenarios against the real bootstrap under the
// Lambda Runtime Interface Emulator, behind the template's HTTP API routes (payload 2.0), on the local stack and
// the simulator. Every response is checked against the OpenAPI description as in the in-process tests.
func TestThroughEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the function under the emulator")
	}
	var logs func() string
	invokes, lambdaURL := newLambdaInvokes(t)
	w := newWorld(t, func(w *world) string {
		fn := w.env.StartFunction(t, "ConnectorsFunction", map[string]string{
			"ATLASSIAN_API_URL": w.simURL, "ATLASSIAN_AUTH_URL": w.simURL, "ATLASSIAN_CLIENT_ID": "sim-client-id",
			"PUBLIC_BASE_URL": "https://api.example.test", "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
			"ERASURE_SETTLE_SECONDS":  "0", // no export runs in this test
			"AWS_ENDPOINT_URL_LAMBDA": lambdaURL,
		})
		logs = fn.Logs
		return w.env.ServeAPI(t, fn)
	})
	bKey := w.b.key
	t.Run("lifecycle", func(t *testing.T) { testLifecycle(t, w) })
	t.Run("validation", func(t *testing.T) {
		for _, r := range []struct {
			req    req
			status int
		}{
			{req{method: "POST", path: "/v1/connectors", key: bKey, body: `{"colour":1}`}, 400},
			{req{method: "POST", path: "/v1/connectors", key: bKey, body: `{}`, header: map[string]string{"Content-Type": "text/plain"}}, 415},
			{req{method: "POST", path: "/v1/connectors", key: bKey, body: `{"name":"` + strings.Repeat("x", 70<<10) + `"}`}, 413},
			{req{method: "GET", path: "/v1/connectors/nope", key: bKey}, 400},
			{req{method: "GET", path: "/v1/connectors/01HZZZZZZZZZZZZZZZZZZZZZZZ", key: bKey}, 404},
			{req{method: "POST", path: "/v1/connectors", key: bKey, body: w.connectorBody("x", w.sites[1])}, 400},
			{req{method: "POST", path: "/v1/connectors", key: bKey, body: func() map[string]any {
				m := w.connectorBody("x", w.sites[0])
				m["jql"] = "order by key"
				return m
			}()}, 400},
			{req{method: "GET", path: "/v1/connection", key: "jxk_" + strings.Repeat("A", 43)}, 401},
			{req{method: "GET", path: "/v1/openapi.json"}, 200},
		} {
			w.expect(r.req, r.status)
		}
		// Field errors name the field: Jira's parser refusing the JQL (a round trip to the simulator through the
		// function) and a schedule below the minimum rate.
		for _, r := range []struct {
			name  string
			mod   func(m map[string]any)
			field string
		}{
			{"jql parse error", func(m map[string]any) { m["jql"] = "project = " }, "jql"},
			{"schedule error", func(m map[string]any) { m["schedule"] = map[string]any{"expression": "rate(5 minutes)"} }, "schedule.expression"},
		} {
			body := w.connectorBody("x", w.sites[0])
			r.mod(body)
			got := w.expect(req{method: "POST", path: "/v1/connectors", key: bKey, body: body}, 400)
			if f := got.fields(t); len(f) != 1 || f[0] != r.field {
				t.Errorf("POST /v1/connectors (%s) fields = %v, want [%s] (%s)", r.name, f, r.field, got.body)
			}
		}
	})
	t.Run("run start invokes the export", func(t *testing.T) {
		id := w.expect(req{method: "POST", path: "/v1/connectors", key: bKey, body: w.connectorBody("invoke", w.sites[0])}, 201).str(t, "id")
		invokes.take()
		runID := w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: bKey}, 201).str(t, "id")
		want := lambdaCall{Function: "ExportFunction", Type: "Event",
			Payload: connectors.RunRef{ConnectionID: w.b.connID, ConnectorID: id, RunID: runID}}
		if got := invokes.take(); len(got) != 1 || got[0] != want {
			t.Errorf("Lambda invocations = %+v, want exactly %+v", got, want)
		}
	})
	t.Run("concurrent starts", func(t *testing.T) {
		id := w.expect(req{method: "POST", path: "/v1/connectors", key: bKey, body: w.connectorBody("race", w.sites[0])}, 201).str(t, "id")
		done := make(chan int, 4)
		for range 4 {
			go func() { done <- w.do(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: bKey}).status }()
		}
		count := map[int]int{}
		for range 4 {
			count[<-done]++
		}
		if count[201] != 1 || count[409] != 3 {
			t.Errorf("concurrent starts through the emulator = %v, want one 201 and three 409", count)
		}
	})
	// The function's logs carry no key, token or JQL.
	l := logs()
	for _, secret := range []string{w.a.key, w.b.key, "project = "} {
		if strings.Contains(l, secret) {
			t.Errorf("function logs contain %q", secret)
		}
	}
	if !strings.Contains(l, `"status"`) {
		t.Errorf("function logs = %.300s, want request lines", l)
	}
}
