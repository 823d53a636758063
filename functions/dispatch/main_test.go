package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

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

	// The real local Lambda service serves the dispatcher and the export, as dev does. The export is kept from
	// starting (no table), so Lambda retries the event and then hands it to the export's failure destination,
	// where the test reads exactly what the dispatcher sent.
	ls := env.StartLambdaService(t, stacktest.LambdaOptions{
		Functions:   []string{"DispatchFunction", "ExportFunction"},
		FunctionEnv: map[string]map[string]string{"ExportFunction": {"TABLE_NAME": ""}},
		RetryDelays: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond},
	})
	fnEnv := env.FunctionEnv(t, "DispatchFunction", nil)
	for _, k := range []string{"ATLASSIAN_CLIENT_SECRET_ARN", "KMS_KEY_ID", "TOKEN_KEY_ID", "ATLASSIAN_CLIENT_ID"} {
		if _, ok := fnEnv[k]; ok {
			t.Errorf("DispatchFunction environment has %s", k)
		}
	}
	// What EventBridge Scheduler sends (its event carries nothing the tick needs).
	res, err := ls.Client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("DispatchFunction"),
		Payload: []byte(`{"version":"0","id":"e","detail-type":"Scheduled Event","source":"aws.scheduler","detail":{}}`)})
	if err != nil {
		t.Fatalf("invoke: %v\n%s", err, ls.Logs.String())
	}
	if res.FunctionError != nil {
		t.Fatalf("invoke: %s %s\n%s", aws.ToString(res.FunctionError), res.Payload, ls.Logs.String())
	}
	out := res.Payload
	var rep dispatch.Report
	if err := json.Unmarshal(out, &rep); err != nil || rep.Created != 1 || rep.Invoked != 1 {
		t.Fatalf("tick report = %s (%v), want one run created and invoked\n%s", out, err, ls.Logs.String())
	}
	runs, _, err := store.ListRuns(ctx, conn.ID, c.ID, 10, "")
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %+v, %v; want one", runs, err)
	}
	payload, _ := json.Marshal(connectors.RunRef{ConnectionID: conn.ID, ConnectorID: c.ID, RunID: runs[0].ID})
	var record struct {
		RequestContext struct {
			FunctionARN            string `json:"functionArn"`
			Condition              string `json:"condition"`
			ApproximateInvokeCount int    `json:"approximateInvokeCount"`
		} `json:"requestContext"`
		RequestPayload json.RawMessage `json:"requestPayload"`
	}
	msgs := failures(t, env, ls, 1, time.Minute)
	if err := json.Unmarshal([]byte(msgs[0]), &record); err != nil {
		t.Fatal(err)
	}
	// Three attempts (MaximumRetryAttempts 2) of one asynchronous event: an Event invocation, not a synchronous one.
	if !strings.HasSuffix(record.RequestContext.FunctionARN, ":function:ExportFunction:$LATEST") ||
		record.RequestContext.Condition != "RetriesExhausted" || record.RequestContext.ApproximateInvokeCount != 3 ||
		string(record.RequestPayload) != string(payload) {
		t.Errorf("export failure record = %s, want ExportFunction's event %s after 3 attempts", msgs[0], payload)
	}
	if more := failures(t, env, ls, 0, 3*time.Second); len(more) != 0 {
		t.Errorf("more export events than one: %q", more)
	}
	if l := ls.Logs.String(); !strings.Contains(l, `"message":"tick"`) || !strings.Contains(l, `"created":1`) {
		t.Errorf("function logs = %.500s, want the tick's report line", l)
	}
}

// failures reads up to want messages from the export's failure destination within limit (want 0: whatever
// arrives in limit).
func failures(t *testing.T, env *stacktest.Env, ls *stacktest.LambdaService, want int, limit time.Duration) []string {
	t.Helper()
	url := aws.String(ls.Prov.Ref("ExportFailureQueue"))
	var bodies []string
	for deadline := time.Now().Add(limit); time.Now().Before(deadline) && (want == 0 || len(bodies) < want); {
		out, err := env.Clients.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: url, WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
			_, _ = env.Clients.SQS.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: url, ReceiptHandle: m.ReceiptHandle})
		}
	}
	if len(bodies) < want {
		t.Fatalf("export failure destination: %d messages after %s, want %d\n%s", len(bodies), limit, want, ls.Logs.String())
	}
	return bodies
}
