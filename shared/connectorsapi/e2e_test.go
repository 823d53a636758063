package connectorsapi_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"jiraexport/infra/stacktest"
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
	var ls *stacktest.LambdaService
	w := newWorld(t, func(w *world) string {
		// The export behind the real local Lambda service: its events land, after Lambda's async retries (the
		// export is kept from starting), on its failure destination, where the test reads what the API sent.
		ls = w.env.StartLambdaService(t, stacktest.LambdaOptions{
			Functions:   []string{"ExportFunction"},
			FunctionEnv: map[string]map[string]string{"ExportFunction": {"TABLE_NAME": ""}},
			RetryDelays: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond},
		})
		fn := w.env.StartFunction(t, "ConnectorsFunction", map[string]string{
			"ATLASSIAN_API_URL": w.simURL, "ATLASSIAN_AUTH_URL": w.simURL, "ATLASSIAN_CLIENT_ID": "sim-client-id",
			"PUBLIC_BASE_URL": "https://api.example.test", "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
			"ERASURE_SETTLE_SECONDS":  "0", // no export runs in this test
			"AWS_ENDPOINT_URL_LAMBDA": ls.URL,
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
		runID := w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: bKey}, 201).str(t, "id")
		want := connectors.RunRef{ConnectionID: w.b.connID, ConnectorID: id, RunID: runID}
		if n := exportEvents(t, w.env, ls, want, time.Minute); n != 1 {
			t.Errorf("ExportFunction got %d asynchronous events %+v, want exactly one", n, want)
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

// exportEvents counts the asynchronous ExportFunction events carrying want that reached the export's failure
// destination (each after its three attempts), reading until one arrived and nothing is pending any more, or
// until limit.
func exportEvents(t *testing.T, env *stacktest.Env, ls *stacktest.LambdaService, want connectors.RunRef, limit time.Duration) int {
	t.Helper()
	url := aws.String(ls.Prov.Ref("ExportFailureQueue"))
	n := 0
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		out, err := env.Clients.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: url, WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			_, _ = env.Clients.SQS.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: url, ReceiptHandle: m.ReceiptHandle})
			var record struct {
				RequestContext struct {
					FunctionARN            string `json:"functionArn"`
					Condition              string `json:"condition"`
					ApproximateInvokeCount int    `json:"approximateInvokeCount"`
				} `json:"requestContext"`
				RequestPayload connectors.RunRef `json:"requestPayload"`
			}
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &record); err != nil {
				t.Fatal(err)
			}
			if record.RequestPayload != want {
				continue // another run's event (the lifecycle scenario starts runs too)
			}
			n++
			if rc := record.RequestContext; !strings.HasSuffix(rc.FunctionARN, ":function:ExportFunction:$LATEST") ||
				rc.Condition != "RetriesExhausted" || rc.ApproximateInvokeCount != 3 {
				t.Errorf("export failure record %s, want ExportFunction's event after 3 attempts", aws.ToString(m.Body))
			}
		}
		if n > 0 && len(out.Messages) == 0 && ls.AsyncPending() == 0 {
			break
		}
	}
	return n
}
