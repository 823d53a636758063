package stacktest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"jiraexport/infra/devapi"
	"jiraexport/infra/lambdaservice"
	"jiraexport/infra/localstack"
	"jiraexport/infra/samtemplate"
	"jiraexport/infra/scheduler"
)

// LambdaOptions tune StartLambdaService.
type LambdaOptions struct {
	// Template, when set, is a test template served instead of template.yaml: its resources (e.g. SQS
	// queues for destinations) are provisioned on the stack under a fresh prefix.
	Template *samtemplate.Template
	// Functions limits the service to these logical ids; empty: every function of the template.
	Functions []string
	// Env is added to every function's environment (after the template's); FunctionEnv per logical id after
	// that (e.g. the simulator's URL for ATLASSIAN_API_URL).
	Env         map[string]string
	FunctionEnv map[string]map[string]string
	// RetryDelays shortens Lambda's waits before async retries (default: Lambda's one and two minutes).
	RetryDelays []time.Duration
	// Concurrency is the limit of functions without ReservedConcurrentExecutions (default 10).
	Concurrency int
	// Schedules starts the template's schedules (AWS::Scheduler::Schedule, ScheduleV2, Schedule) targeting
	// the served functions; ScheduleSpeedup runs their clock faster (60: rate(1 minute) fires every second).
	Schedules       bool
	ScheduleSpeedup float64
}

// LambdaService is a running local Lambda service for one test.
type LambdaService struct {
	*lambdaservice.Service
	// URL is the endpoint (what AWS_ENDPOINT_URL_LAMBDA would hold); Client an SDK Lambda client on it.
	URL    string
	Client *lambda.Client
	// Scheduler fires the schedules when LambdaOptions.Schedules is set, else nil.
	Scheduler *scheduler.Runner
	// Prov is what the test template was provisioned as (e.Prov for template.yaml).
	Prov *localstack.Provisioned
	// Logs holds every function's output (the emulators' too).
	Logs *LogBuffer

	tmpl *samtemplate.Template
	fns  []lambdaservice.Function
}

// ServeAPI serves the template's HttpApi routes on 127.0.0.1 through this service (sharing its environments
// and concurrency, as API Gateway shares Lambda's) and returns the base URL.
func (l *LambdaService) ServeAPI(tb testing.TB) string {
	tb.Helper()
	return l.ServeAPIOn(tb, nil)
}

// ServeAPIOn is ServeAPI on a listener the test opened first (nil: a new one on 127.0.0.1), for tests whose
// functions must know the API's public URL before it serves (PUBLIC_BASE_URL, the OAuth redirect URI).
func (l *LambdaService) ServeAPIOn(tb testing.TB, ln net.Listener) string {
	tb.Helper()
	inv := map[string]devapi.Invoker{}
	for _, f := range l.fns {
		inv[f.LogicalID] = l.Function(f.LogicalID)
	}
	return serveRouterOn(tb, l.tmpl, inv, ln)
}

// LogBuffer collects output safely from several writers.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	tee io.Writer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tee != nil {
		_, _ = b.tee.Write(p)
	}
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartLambdaService serves the template's functions (their real bootstraps under the emulator, environments
// from the template resolved against this test's resources) on a local Lambda Invoke endpoint, and optionally
// fires the template's schedules through it. Every function gets AWS_ENDPOINT_URL_LAMBDA pointing at it. It
// stops when the test ends.
func (e *Env) StartLambdaService(tb testing.TB, opts LambdaOptions) *LambdaService {
	tb.Helper()
	tmpl, prov := e.Tmpl, e.Prov
	if opts.Template != nil {
		tmpl = opts.Template
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var err error
		prov, err = localstack.Provision(ctx, e.Clients, tmpl, localstack.ProvisionOptions{Prefix: "t" + randomHex(5)})
		if err != nil {
			tb.Fatalf("provision the test template: %v", err)
		}
	}
	all, err := lambdaservice.FromTemplate(tmpl, prov.Resolver)
	if err != nil {
		tb.Fatal(err)
	}
	want := map[string]bool{}
	for _, id := range opts.Functions {
		want[id] = true
	}
	var fns []lambdaservice.Function
	served := map[string]bool{}
	rie := bins.emulator(tb, e.Root)
	for _, f := range all {
		if len(want) > 0 && !want[f.LogicalID] {
			continue
		}
		_, bootstrap := bins.get(tb, e.Root, f.Dir)
		overrides := map[string]string{}
		for k, v := range opts.Env {
			overrides[k] = v
		}
		for k, v := range opts.FunctionEnv[f.LogicalID] {
			overrides[k] = v
		}
		f.Bootstrap = bootstrap
		f.Env = templateFunctionEnv(tb, tmpl, prov, e.StackEnv, f.LogicalID, overrides)
		fns = append(fns, f)
		served[f.ARN()] = true
	}
	logs := &LogBuffer{tee: logTee()}
	svc, err := lambdaservice.Start(context.Background(), lambdaservice.Options{
		RIE: rie, Functions: fns, DefaultConcurrency: opts.Concurrency, RetryDelays: opts.RetryDelays,
		SQS: e.Clients.SQS, Logs: logs, Log: testLogger(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := svc.Close(); err != nil {
			tb.Errorf("stop the Lambda service: %v", err)
		}
	})
	ls := &LambdaService{
		Service: svc, URL: svc.URL(), Prov: prov, Logs: logs, tmpl: tmpl, fns: fns,
		// The harness cannot set AWS_ENDPOINT_URL_LAMBDA process-wide (tests run in parallel, each with its own
		// service), so its client names the endpoint; functions get it through their environment.
		Client: lambda.NewFromConfig(e.AWS, func(o *lambda.Options) { o.BaseEndpoint = aws.String(svc.URL()) }),
	}
	if opts.Schedules {
		all, err := scheduler.FromTemplate(tmpl, prov.Resolver)
		if err != nil {
			tb.Fatal(err)
		}
		var mine []scheduler.Schedule
		for _, s := range all {
			if served[s.Target] {
				mine = append(mine, s)
			}
		}
		r, err := scheduler.Start(mine, scheduler.Options{
			Lambda: ls.Client, SQS: e.Clients.SQS, Speedup: opts.ScheduleSpeedup, Log: testLogger(),
		})
		if err != nil {
			tb.Fatal(err)
		}
		// Registered after the service's cleanup, so it runs first: no firing hits a closed service.
		tb.Cleanup(r.Close)
		ls.Scheduler = r
	}
	return ls
}

func testLogger() *slog.Logger {
	if os.Getenv("FUNCTION_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return nil
}

// LambdaClient is an SDK Lambda client for the Lambda endpoint in a command's env file (what `make dev` or
// `localstack up -lambda` wrote), with that file's region and credentials.
func LambdaClient(env map[string]string) *lambda.Client {
	return lambda.New(lambda.Options{
		Region:       env["AWS_REGION"],
		BaseEndpoint: aws.String(env["AWS_ENDPOINT_URL_LAMBDA"]),
		Credentials:  credentials.NewStaticCredentialsProvider(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], ""),
	})
}
