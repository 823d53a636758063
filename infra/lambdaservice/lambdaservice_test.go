package lambdaservice_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"jiraexport/infra/samtemplate"
	"jiraexport/infra/scheduler"
	"jiraexport/infra/stacktest"
)

// call is one invocation as recordfn reported it.
type call struct {
	Function  string          `json:"function"`
	RequestID string          `json:"requestId"`
	PID       int             `json:"pid"`
	Payload   json.RawMessage `json:"payload"`
	Time      int64           `json:"time"`
	Deadline  int64           `json:"deadlineMs"`
	Env       string          `json:"env"`
	received  time.Time
}

// recorder collects what the test functions report.
type recorder struct {
	mu    sync.Mutex
	calls []call
	URL   string
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var c call
		b, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(b, &c); err != nil {
			t.Errorf("record %s: %v", b, err)
		}
		c.received = time.Now()
		r.mu.Lock()
		r.calls = append(r.calls, c)
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// matching returns the calls keep accepts.
func (r *recorder) matching(keep func(call) bool) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []call
	for _, c := range r.calls {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// wait returns the calls keep accepts once there are n of them, or fails the test after limit.
func (r *recorder) wait(t *testing.T, n int, limit time.Duration, keep func(call) bool) []call {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := r.matching(keep)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d matching invocations after %s, want %d", len(got), limit, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func byRequest(id string) func(call) bool { return func(c call) bool { return c.RequestID == id } }

type setup struct {
	env  *stacktest.Env
	svc  *stacktest.LambdaService
	rec  *recorder
	name string // RecordFunction's FunctionName
}

// retryDelays shorten Lambda's one and two minutes so the retry tests take a second.
var retryDelays = []time.Duration{300 * time.Millisecond, 600 * time.Millisecond}

func start(t *testing.T, opts stacktest.LambdaOptions) setup {
	t.Helper()
	if testing.Short() {
		t.Skip("runs bootstraps under the emulator against the local stack")
	}
	t.Parallel()
	root := stacktest.Root(t)
	tmpl, err := samtemplate.Load(filepath.Join(root, "infra", "lambdaservice", "testdata", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	env := stacktest.New(t)
	rec := newRecorder(t)
	opts.Template = tmpl
	opts.Env = map[string]string{"RECORD_URL": rec.URL}
	if opts.RetryDelays == nil {
		opts.RetryDelays = retryDelays
	}
	svc := env.StartLambdaService(t, opts)
	return setup{env: env, svc: svc, rec: rec, name: svc.Prov.Ref("RecordFunction")}
}

func invoke(t *testing.T, c *lambda.Client, in *lambda.InvokeInput) *lambda.InvokeOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.Invoke(ctx, in)
	if err != nil {
		t.Fatalf("Invoke(%s) = %v", aws.ToString(in.FunctionName), err)
	}
	return out
}

// TestInvokeSync drives RequestResponse invocations through the SDK's Lambda client: payload, function error,
// log tail, every form of function name, and the API's own errors.
func TestInvokeSync(t *testing.T) {
	s := start(t, stacktest.LambdaOptions{})
	arn := "arn:aws:lambda:us-east-1:123456789012:function:" + s.name

	for _, name := range []string{s.name, "RecordFunction", arn, arn + ":$LATEST", "123456789012:function:" + s.name} {
		t.Run("name "+name, func(t *testing.T) {
			out := invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(`{"mode":"ok","x":1}`)})
			var got struct {
				Function  string          `json:"function"`
				Payload   json.RawMessage `json:"payload"`
				RequestID string          `json:"requestId"`
			}
			if err := json.Unmarshal(out.Payload, &got); err != nil {
				t.Fatalf("payload %s: %v", out.Payload, err)
			}
			if out.StatusCode != 200 || out.FunctionError != nil || aws.ToString(out.ExecutedVersion) != "$LATEST" {
				t.Errorf("Invoke = %d, error %v, version %v, want 200, none, $LATEST", out.StatusCode, out.FunctionError, out.ExecutedVersion)
			}
			if string(got.Payload) != `{"mode":"ok","x":1}` || got.Function != s.name || got.RequestID == "" {
				t.Errorf("function saw %s, want the payload, function name %s and a request id", out.Payload, s.name)
			}
		})
	}

	t.Run("environment from the template", func(t *testing.T) {
		s.rec.mu.Lock()
		s.rec.calls = nil
		s.rec.mu.Unlock()
		out := invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String("RecordFunction"), Payload: []byte(`{"mode":"invoke","target":"LimitedFunction"}`)})
		var got struct {
			Inner struct {
				Function string `json:"function"`
			} `json:"inner"`
		}
		_ = json.Unmarshal(out.Payload, &got)
		if out.FunctionError != nil || got.Inner.Function != "LimitedFunction" {
			t.Fatalf("a function invoking another through AWS_ENDPOINT_URL_LAMBDA answered %s", out.Payload)
		}
		c := s.rec.wait(t, 1, time.Second, func(c call) bool { return c.Function == s.name })[0]
		if want := strings.TrimSuffix(s.name, "-record") + "-env"; c.Env != want {
			t.Errorf("RECORD_ENV = %q, want %q (the template's Fn::Sub)", c.Env, want)
		}
		if c.Deadline <= 0 || c.Deadline > 2000 {
			t.Errorf("deadline %d ms from now, want within the template's 2 s timeout", c.Deadline)
		}
	})

	t.Run("function error with log tail", func(t *testing.T) {
		out := invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String(s.name), Payload: []byte(`{"mode":"fail"}`),
			LogType: lambdatypes.LogTypeTail})
		if out.StatusCode != 200 || aws.ToString(out.FunctionError) != "Unhandled" {
			t.Fatalf("Invoke = %d, FunctionError %v, want 200 and Unhandled", out.StatusCode, out.FunctionError)
		}
		var doc struct{ ErrorMessage, ErrorType string }
		if err := json.Unmarshal(out.Payload, &doc); err != nil || doc.ErrorMessage != "asked to fail" || doc.ErrorType == "" {
			t.Errorf("payload = %s, want Lambda's error document for \"asked to fail\"", out.Payload)
		}
		tail, err := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(tail), "START RequestId: ") || !strings.Contains(string(tail), "REPORT RequestId: ") ||
			!strings.Contains(string(tail), `"mode":"fail"`) || len(tail) > 4096 {
			t.Errorf("log tail = %q, want START, the function's log line and REPORT, at most 4 KB", tail)
		}
	})

	t.Run("log tail keeps the last 4 KB", func(t *testing.T) {
		big := `{"mode":"ok","pad":"` + strings.Repeat("x", 10000) + `"}`
		out := invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String(s.name), Payload: []byte(big), LogType: lambdatypes.LogTypeTail})
		tail, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
		if len(tail) == 0 || len(tail) > 4096 || !strings.Contains(string(tail), "REPORT RequestId: ") {
			t.Errorf("log tail of %d bytes, want the last 4 KB ending in REPORT", len(tail))
		}
	})

	t.Run("dry run", func(t *testing.T) {
		out := invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String(s.name), InvocationType: lambdatypes.InvocationTypeDryRun})
		if out.StatusCode != 204 {
			t.Errorf("DryRun = %d, want 204", out.StatusCode)
		}
	})

	errs := []struct {
		name, function, payload, code string
		typ                           lambdatypes.InvocationType
	}{
		{"unknown function", "NoSuchFunction", `{}`, "ResourceNotFoundException", ""},
		{"unknown version", s.name + ":7", `{}`, "ResourceNotFoundException", ""},
		{"payload not JSON", s.name, `not json`, "InvalidRequestContentException", ""},
		{"payload over 6 MB", s.name, `"` + strings.Repeat("x", 6<<20) + `"`, "RequestTooLargeException", ""},
		{"async payload over 1 MB", s.name, `"` + strings.Repeat("x", 1<<20) + `"`, "RequestTooLargeException", lambdatypes.InvocationTypeEvent},
	}
	t.Run("unsigned request", func(t *testing.T) {
		// What a web page could send cross-site: no SigV4 Authorization header.
		req, _ := http.NewRequest(http.MethodPost, s.svc.URL+"/2015-03-31/functions/"+s.name+"/invocations", strings.NewReader(`{"mode":"ok","from":"evil"}`))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Origin", "https://evil.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Amzn-ErrorType") != "MissingAuthenticationTokenException" ||
			resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("unsigned invoke = %d %s, want 403 MissingAuthenticationTokenException without CORS", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
		}
		if got := s.rec.matching(func(c call) bool { return strings.Contains(string(c.Payload), "evil") }); len(got) != 0 {
			t.Errorf("the unsigned request ran the function")
		}
	})
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.svc.Client.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String(tt.function),
				Payload: []byte(tt.payload), InvocationType: tt.typ})
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tt.code {
				t.Errorf("Invoke(%s) = %v, want %s", tt.name, err, tt.code)
			}
		})
	}
}

// TestAsyncDeliveredOnce: an Event invocation answers 202 at once, runs once, and its record reaches the
// on-success destination.
func TestAsyncDeliveredOnce(t *testing.T) {
	s := start(t, stacktest.LambdaOptions{})
	out := invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String(s.name), InvocationType: lambdatypes.InvocationTypeEvent,
		Payload: []byte(`{"mode":"sleep","ms":300}`)})
	if out.StatusCode != 202 || len(out.Payload) != 0 {
		t.Fatalf("Event invoke = %d %q, want 202 and no payload", out.StatusCode, out.Payload)
	}
	calls := s.rec.wait(t, 1, 20*time.Second, func(c call) bool { return c.Function == s.name })
	msg := receive(t, s, "SuccessQueue", 20*time.Second)
	var rec destinationRecord
	if err := json.Unmarshal([]byte(aws.ToString(msg.Body)), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Version != "1.0" || rec.RequestContext.Condition != "Success" || rec.RequestContext.ApproximateInvokeCount != 1 ||
		rec.RequestContext.RequestID != calls[0].RequestID || string(rec.RequestPayload) != `{"mode":"sleep","ms":300}` ||
		rec.RequestContext.FunctionARN != "arn:aws:lambda:us-east-1:123456789012:function:"+s.name+":$LATEST" ||
		rec.ResponseContext.StatusCode != 200 || rec.ResponseContext.FunctionError != "" {
		t.Errorf("success record = %s", aws.ToString(msg.Body))
	}
	waitIdle(t, s.svc)
	time.Sleep(time.Second)
	if got := s.rec.matching(func(c call) bool { return c.Function == s.name }); len(got) != 1 {
		t.Errorf("delivered %d times, want once", len(got))
	}
}

// TestAsyncRetriesThenFailureDestination: a failing Event invocation runs three times (two retries, after
// the configured delays), then its record goes to the on-failure destination and the event to the
// dead-letter queue, with Lambda's formats.
func TestAsyncRetriesThenFailureDestination(t *testing.T) {
	s := start(t, stacktest.LambdaOptions{})
	payload := `{"mode":"fail","n":42}`
	invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String(s.name), InvocationType: lambdatypes.InvocationTypeEvent, Payload: []byte(payload)})
	calls := s.rec.wait(t, 3, 30*time.Second, func(c call) bool { return c.Function == s.name })
	for i, c := range calls {
		if c.RequestID != calls[0].RequestID || string(c.Payload) != payload {
			t.Errorf("attempt %d: request %s payload %s, want the same request and payload each time", i+1, c.RequestID, c.Payload)
		}
	}
	for i, min := range retryDelays {
		if gap := calls[i+1].received.Sub(calls[i].received); gap < min {
			t.Errorf("retry %d came %s after the previous attempt, want at least %s", i+1, gap, min)
		}
	}

	msg := receive(t, s, "FailureQueue", 20*time.Second)
	var rec destinationRecord
	if err := json.Unmarshal([]byte(aws.ToString(msg.Body)), &rec); err != nil {
		t.Fatal(err)
	}
	var resp struct{ ErrorMessage, ErrorType string }
	_ = json.Unmarshal(rec.ResponsePayload, &resp)
	if rec.RequestContext.Condition != "RetriesExhausted" || rec.RequestContext.ApproximateInvokeCount != 3 ||
		rec.RequestContext.RequestID != calls[0].RequestID || string(rec.RequestPayload) != payload ||
		rec.ResponseContext.FunctionError != "Unhandled" || resp.ErrorMessage != "asked to fail" {
		t.Errorf("failure record = %s", aws.ToString(msg.Body))
	}

	dl := receive(t, s, "DeadLetters", 20*time.Second)
	if aws.ToString(dl.Body) != payload || attr(dl, "RequestID") != calls[0].RequestID || attr(dl, "ErrorCode") != "200" ||
		attr(dl, "ErrorMessage") != "asked to fail" {
		t.Errorf("dead letter = %s %v, want the event with RequestID, ErrorCode and ErrorMessage", aws.ToString(dl.Body), dl.MessageAttributes)
	}
	waitIdle(t, s.svc)
	if got := s.rec.matching(func(c call) bool { return c.Function == s.name }); len(got) != 3 {
		t.Errorf("%d attempts, want 3", len(got))
	}

	t.Run("MaximumRetryAttempts 0 from an EventInvokeConfig resource", func(t *testing.T) {
		out := invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String("NoRetryFunction"),
			InvocationType: lambdatypes.InvocationTypeEvent, Payload: []byte(`{"mode":"fail","no":"retry"}`)})
		if out.StatusCode != 202 {
			t.Fatalf("status %d", out.StatusCode)
		}
		dl := receive(t, s, "DeadLetters", 20*time.Second)
		if aws.ToString(dl.Body) != `{"mode":"fail","no":"retry"}` {
			t.Errorf("dead letter %s", aws.ToString(dl.Body))
		}
		waitIdle(t, s.svc)
		if got := s.rec.matching(func(c call) bool { return c.Function == "NoRetryFunction" }); len(got) != 1 {
			t.Errorf("%d attempts, want 1", len(got))
		}
	})
}

// TestAsyncRetriedAfterCrash: an environment killed in the middle of an Event invocation (as a crash would)
// fails that attempt; Lambda's retry delivers the event in a fresh environment.
func TestAsyncRetriedAfterCrash(t *testing.T) {
	s := start(t, stacktest.LambdaOptions{})
	invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String(s.name), InvocationType: lambdatypes.InvocationTypeEvent,
		Payload: []byte(`{"mode":"sleep","ms":1500}`)})
	first := s.rec.wait(t, 1, 20*time.Second, func(c call) bool { return c.Function == s.name })[0]
	if n := s.svc.KillEnvironments(s.name); n != 1 {
		t.Fatalf("killed %d environments, want 1", n)
	}
	calls := s.rec.wait(t, 2, 20*time.Second, byRequest(first.RequestID))
	if calls[1].PID == first.PID {
		t.Errorf("the retry ran in the killed process %d", first.PID)
	}
	msg := receive(t, s, "SuccessQueue", 20*time.Second)
	var rec destinationRecord
	_ = json.Unmarshal([]byte(aws.ToString(msg.Body)), &rec)
	if rec.RequestContext.Condition != "Success" || rec.RequestContext.ApproximateInvokeCount != 2 || rec.RequestContext.RequestID != first.RequestID {
		t.Errorf("success record = %s, want Success after 2 attempts", aws.ToString(msg.Body))
	}
}

// TestHTTPAPIThroughService: the harness serves the template's HTTP API through the same environments.
func TestHTTPAPIThroughService(t *testing.T) {
	s := start(t, stacktest.LambdaOptions{Functions: []string{"RecordFunction"}})
	resp, err := http.Get(s.svc.ServeAPI(t) + "/record")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got call
	_ = json.Unmarshal(body, &got)
	if resp.StatusCode != 200 || got.Function != s.name || !strings.Contains(string(got.Payload), `"routeKey":"GET /record"`) {
		t.Errorf("GET /record = %d %s, want the function's answer to an API Gateway event", resp.StatusCode, body)
	}
	if n := s.svc.EnvironmentsStarted("LimitedFunction"); n != 0 {
		t.Errorf("LimitedFunction is not served but started %d environments", n)
	}
}

// TestTimeoutKillsInvocation: an invocation past the template's Timeout (2 s) ends with Lambda's timeout
// error, its process is killed, and the next invocation gets a fresh environment.
func TestTimeoutKillsInvocation(t *testing.T) {
	s := start(t, stacktest.LambdaOptions{})
	began := time.Now()
	out := invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String(s.name), Payload: []byte(`{"mode":"sleep","ms":10000}`)})
	took := time.Since(began)
	var doc struct{ ErrorMessage, ErrorType string }
	_ = json.Unmarshal(out.Payload, &doc)
	if aws.ToString(out.FunctionError) != "Unhandled" || doc.ErrorType != "Sandbox.Timedout" ||
		!strings.HasSuffix(doc.ErrorMessage, "Task timed out after 2.00 seconds") {
		t.Errorf("Invoke = %v %s, want Unhandled and \"Task timed out after 2.00 seconds\"", out.FunctionError, out.Payload)
	}
	if took < 2*time.Second || took > 6*time.Second {
		t.Errorf("the timed-out invocation answered after %s, want about 2 s", took)
	}
	slept := s.rec.wait(t, 1, time.Second, func(c call) bool { return c.Function == s.name })[0]
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(slept.PID, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d of the timed-out invocation still runs", slept.PID)
		}
		time.Sleep(50 * time.Millisecond)
	}

	out = invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String(s.name), Payload: []byte(`{"mode":"ok"}`)})
	var next call
	_ = json.Unmarshal(out.Payload, &next)
	if out.FunctionError != nil || next.PID == slept.PID || s.svc.EnvironmentsStarted(s.name) != 2 {
		t.Errorf("after the timeout: error %v, pid %d (was %d), %d environments started; want a fresh second environment",
			out.FunctionError, next.PID, slept.PID, s.svc.EnvironmentsStarted(s.name))
	}

	t.Run("crash replaces the environment", func(t *testing.T) {
		out := invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String(s.name), Payload: []byte(`{"mode":"crash"}`)})
		if aws.ToString(out.FunctionError) != "Unhandled" {
			t.Fatalf("crash: FunctionError %v %s", out.FunctionError, out.Payload)
		}
		out = invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String(s.name), Payload: []byte(`{"mode":"ok"}`)})
		if out.FunctionError != nil {
			t.Errorf("after a crash: %s", out.Payload)
		}
	})
}

// TestConcurrentInvokesTwoEnvironments: two overlapping invocations run at once in two environments (two
// processes); a function with ReservedConcurrentExecutions 1 throttles the second.
func TestConcurrentInvokesTwoEnvironments(t *testing.T) {
	s := start(t, stacktest.LambdaOptions{})
	run := func(name string) (*lambda.InvokeOutput, error) {
		// One attempt: the SDK's retries would hide a throttle.
		return s.svc.Client.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String(name),
			Payload: []byte(`{"mode":"sleep","ms":1200}`)}, func(o *lambda.Options) { o.RetryMaxAttempts = 1 })
	}
	for _, tt := range []struct {
		function  string
		throttled bool
	}{{"RecordFunction", false}, {"LimitedFunction", true}} {
		t.Run(tt.function, func(t *testing.T) {
			// Warm one environment first so that cold starts do not decide the overlap.
			invoke(t, s.svc.Client, &lambda.InvokeInput{FunctionName: aws.String(tt.function), Payload: []byte(`{"mode":"ok"}`)})
			var wg sync.WaitGroup
			outs := make([]*lambda.InvokeOutput, 2)
			errs := make([]error, 2)
			for i := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if i == 1 {
						time.Sleep(200 * time.Millisecond)
					}
					outs[i], errs[i] = run(tt.function)
				}()
			}
			wg.Wait()
			if tt.throttled {
				var tooMany *lambdatypes.TooManyRequestsException
				if errs[0] != nil || !errors.As(errs[1], &tooMany) || tooMany.Reason != lambdatypes.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded {
					t.Fatalf("with reserved concurrency 1: %v, %v; want the second throttled", errs[0], errs[1])
				}
				return
			}
			var pids []int
			for i := range 2 {
				if errs[i] != nil || outs[i].FunctionError != nil {
					t.Fatalf("invoke %d: %v", i, errs[i])
				}
				var c call
				_ = json.Unmarshal(outs[i].Payload, &c)
				pids = append(pids, c.PID)
			}
			if pids[0] == pids[1] || s.svc.EnvironmentsStarted(tt.function) != 2 {
				t.Errorf("pids %v, %d environments; want two environments", pids, s.svc.EnvironmentsStarted(tt.function))
			}
			calls := s.rec.matching(func(c call) bool { return strings.Contains(string(c.Payload), `"sleep"`) && c.Function == s.name })
			if len(calls) != 2 || absDuration(calls[0].received.Sub(calls[1].received)) > time.Second {
				t.Errorf("the two invocations started %d apart, want them overlapping", len(calls))
			}
		})
	}
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// TestCLI runs the AWS CLI against the service as the README shows it.
func TestCLI(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI is not installed")
	}
	version, err := exec.Command("aws", "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("aws --version: %v %s", err, version)
	}
	s := start(t, stacktest.LambdaOptions{})
	cli := func(t *testing.T, args ...string) (map[string]any, []byte) {
		t.Helper()
		if strings.HasPrefix(string(version), "aws-cli/1.") {
			// Version 1 sends --payload as given; version 2 wants to be told it is not base64.
			var kept []string
			for i := 0; i < len(args); i++ {
				if args[i] == "--cli-binary-format" {
					i++
					continue
				}
				kept = append(kept, args[i])
			}
			args = kept
		}
		out := filepath.Join(t.TempDir(), "out.json")
		cmd := exec.Command("aws", append([]string{"lambda", "invoke", "--endpoint-url", s.svc.URL}, append(args, out)...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		stdout, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			errors.As(err, &ee)
			t.Fatalf("aws %v: %v %s", args, err, ee.Stderr)
		}
		var meta map[string]any
		if err := json.Unmarshal(stdout, &meta); err != nil {
			t.Fatalf("aws output %s: %v", stdout, err)
		}
		body, _ := os.ReadFile(out)
		return meta, body
	}
	t.Run("payload", func(t *testing.T) {
		meta, body := cli(t, "--function-name", s.name, "--cli-binary-format", "raw-in-base64-out", "--payload", `{"mode":"ok","cli":true}`, "--log-type", "Tail")
		tail, _ := base64.StdEncoding.DecodeString(meta["LogResult"].(string))
		if meta["StatusCode"] != float64(200) || meta["FunctionError"] != nil || !strings.Contains(string(body), `"cli":true`) ||
			!strings.Contains(string(tail), "REPORT RequestId") {
			t.Errorf("aws lambda invoke = %v, %s", meta, body)
		}
	})
	t.Run("function error", func(t *testing.T) {
		meta, body := cli(t, "--function-name", "RecordFunction", "--cli-binary-format", "raw-in-base64-out", "--payload", `{"mode":"fail"}`)
		if meta["FunctionError"] != "Unhandled" || !strings.Contains(string(body), "asked to fail") {
			t.Errorf("aws lambda invoke = %v, %s", meta, body)
		}
	})
	t.Run("event", func(t *testing.T) {
		meta, _ := cli(t, "--function-name", s.name, "--invocation-type", "Event", "--cli-binary-format", "raw-in-base64-out", "--payload", `{"mode":"ok","async":"cli"}`)
		if meta["StatusCode"] != float64(202) {
			t.Fatalf("aws lambda invoke --invocation-type Event = %v", meta)
		}
		s.rec.wait(t, 1, 20*time.Second, func(c call) bool { return strings.Contains(string(c.Payload), `"async":"cli"`) })
	})
}

// TestScheduleFiresOnShortenedPeriod: the test template's schedules, 60 times faster, fire ScheduledFunction
// with what each service sends: rate(1 minute) every second with its Input's context attributes filled, the
// cron schedule on even (virtual) minutes, the EventBridge rule every three seconds with a Scheduled Event;
// the disabled schedule never fires.
func TestScheduleFiresOnShortenedPeriod(t *testing.T) {
	s := start(t, stacktest.LambdaOptions{Schedules: true, ScheduleSpeedup: 60})
	began := time.Now()
	time.Sleep(6500 * time.Millisecond)
	s.svc.Scheduler.Close()
	waitIdle(t, s.svc)
	calls := s.rec.matching(func(c call) bool { return c.Function == "ScheduledFunction" })

	var v2, rule, cron []call
	for _, c := range calls {
		var p map[string]any
		_ = json.Unmarshal(c.Payload, &p)
		switch {
		case p["tick"] == "v2":
			v2 = append(v2, c)
			if p["arn"] != "arn:aws:scheduler:us-east-1:123456789012:schedule/default/ScheduledFunctionEveryMinute" ||
				p["attempt"] != "1" || len(p["exec"].(string)) != 16 {
				t.Errorf("ScheduleV2 input = %s, want its context attributes replaced", c.Payload)
			}
			if at, err := time.Parse(time.RFC3339, p["at"].(string)); err != nil || absDuration(at.Sub(c.received)) > 2*time.Second {
				t.Errorf("scheduled-time %v, received %s", p["at"], c.received.UTC())
			}
		case p["detail-type"] == "Scheduled Event":
			rule = append(rule, c)
			if p["source"] != "aws.events" || !strings.HasSuffix(p["resources"].([]any)[0].(string), ":rule/ScheduledFunctionEveryThreeMinutes") {
				t.Errorf("rule event = %s", c.Payload)
			}
		case string(c.Payload) == "{}":
			cron = append(cron, c)
		default:
			t.Errorf("unexpected event %s", c.Payload)
		}
	}
	// Firing k of a period p comes k*p after the start; delivery adds the async hop (and one cold start).
	checkTimes(t, "rate(1 minute)", v2, began, time.Second, 6)
	checkTimes(t, "rate(3 minutes)", rule, began, 3*time.Second, 2)
	if len(cron) < 2 || len(cron) > 4 {
		t.Errorf("cron(0/2 * * * ? *) fired %d times in 6.5 virtual minutes, want 3 (even minutes)", len(cron))
	}
	for i := 1; i < len(cron); i++ {
		if gap := cron[i].received.Sub(cron[i-1].received); gap < 1500*time.Millisecond || gap > 2500*time.Millisecond {
			t.Errorf("cron firings %s apart, want 2 s", gap)
		}
	}
	if n := s.svc.Scheduler.Fired("DisabledSchedule"); n != 0 {
		t.Errorf("the disabled schedule fired %d times", n)
	}
}

// TestScheduleDeadLetter: when the Invoke call itself fails (here: no such function), the schedule retries per
// its RetryPolicy and then sends the event to its dead-letter queue with EventBridge Scheduler's attributes.
// The queue SAM would generate for a Schedule event's DeadLetterConfig exists locally too.
func TestScheduleDeadLetter(t *testing.T) {
	s := start(t, stacktest.LambdaOptions{Functions: []string{"RecordFunction"}})
	if s.svc.Prov.Ref("ScheduledFunctionEveryThreeMinutesQueue") == "" {
		t.Errorf("the SAM-generated dead-letter queue of ScheduledFunction's Schedule event was not provisioned")
	}
	input := `{"to":"nowhere"}`
	r, err := scheduler.Start([]scheduler.Schedule{{
		Name: "Broken", ARN: "arn:aws:scheduler:us-east-1:123456789012:schedule/default/Broken", Kind: scheduler.KindScheduler,
		Expression: "rate(1 minute)", Location: time.UTC, Enabled: true, Input: &input,
		Target: "arn:aws:lambda:us-east-1:123456789012:function:Missing", MaxRetries: 1, MaxEventAge: time.Hour,
		DeadLetter: s.svc.Prov.Attr("ScheduleDeadLetters", "Arn"),
	}}, scheduler.Options{Lambda: s.svc.Client, SQS: s.env.Clients.SQS, Speedup: 120, RetryDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	msg := receive(t, s, "ScheduleDeadLetters", 20*time.Second)
	if aws.ToString(msg.Body) != input || attr(msg, "ERROR_CODE") != "ResourceNotFoundException" ||
		attr(msg, "EXHAUSTED_RETRY_CONDITION") != "MaximumRetryAttempts" || attr(msg, "RETRY_ATTEMPTS") != "1" ||
		attr(msg, "SCHEDULE_ARN") != "arn:aws:scheduler:us-east-1:123456789012:schedule/default/Broken" ||
		attr(msg, "TARGET_ARN") != "arn:aws:lambda:us-east-1:123456789012:function:Missing" {
		t.Errorf("dead letter = %s %v", aws.ToString(msg.Body), msg.MessageAttributes)
	}
}

func checkTimes(t *testing.T, name string, calls []call, began time.Time, period time.Duration, want int) {
	t.Helper()
	if len(calls) != want {
		t.Errorf("%s fired %d times, want %d", name, len(calls), want)
	}
	for i, c := range calls {
		expected := began.Add(time.Duration(i+1) * period)
		if late := c.received.Sub(expected); late < -200*time.Millisecond || late > 900*time.Millisecond {
			t.Errorf("%s firing %d arrived %s after its time, want within 0.9 s", name, i+1, late)
		}
	}
}

type destinationRecord struct {
	Version        string `json:"version"`
	Timestamp      string `json:"timestamp"`
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionARN            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError"`
	} `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload"`
}

// receive takes one message from the test template's queue.
func receive(t *testing.T, s setup, queue string, limit time.Duration) sqstypes.Message {
	t.Helper()
	url := s.svc.Prov.Ref(queue)
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		out, err := s.env.Clients.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), WaitTimeSeconds: 1, MaxNumberOfMessages: 1, MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) > 0 {
			m := out.Messages[0]
			_, _ = s.env.Clients.SQS.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
			return m
		}
	}
	t.Fatalf("no message on %s after %s", queue, limit)
	return sqstypes.Message{}
}

func attr(m sqstypes.Message, name string) string {
	return aws.ToString(m.MessageAttributes[name].StringValue)
}

func waitIdle(t *testing.T, svc *stacktest.LambdaService) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for svc.AsyncPending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d async events still pending", svc.AsyncPending())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkInvokeSync measures one warm RequestResponse invocation through the SDK client, the service, the
// emulator and a real bootstrap: the fixed cost of every Lambda-to-Lambda call in the end-to-end tests.
func BenchmarkInvokeSync(b *testing.B) {
	root := stacktest.Root(b)
	tmpl, err := samtemplate.Load(filepath.Join(root, "infra", "lambdaservice", "testdata", "template.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	env := stacktest.New(b)
	svc := env.StartLambdaService(b, stacktest.LambdaOptions{Template: tmpl, Functions: []string{"LimitedFunction"}})
	in := &lambda.InvokeInput{FunctionName: aws.String("LimitedFunction"), Payload: []byte(`{"mode":"ok"}`)}
	b.ReportAllocs()
	for b.Loop() {
		out, err := svc.Client.Invoke(context.Background(), in)
		if err != nil || out.FunctionError != nil {
			b.Fatalf("invoke: %v", err)
		}
	}
}
