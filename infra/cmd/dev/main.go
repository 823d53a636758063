// Command dev runs the whole product on this machine: the local AWS stack provisioned from template.yaml, the
// Atlassian simulator as the Jira site and OAuth server, every function's real bootstrap under the Lambda
// Runtime Interface Emulator behind a local Lambda Invoke endpoint (AWS_ENDPOINT_URL_LAMBDA), the template's
// schedules firing through it, and the HTTP API routes of template.yaml on 127.0.0.1. Ctrl-C stops everything.
//
// Flags for the Lambda side: -lambda-addr (endpoint address), -schedules=false (no schedule fires),
// -schedule-speedup N (the schedule clock runs N times faster: 60 makes rate(1 minute) fire every second),
// -async-retry-delays (Lambda's waits before the two async retries, default 1m,2m), -concurrency (environments
// per function without ReservedConcurrentExecutions).
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/devapi"
	"jiraexport/infra/lambdarun"
	"jiraexport/infra/lambdaservice"
	"jiraexport/infra/localstack"
	"jiraexport/infra/samtemplate"
	"jiraexport/infra/scheduler"
	"jiraexport/shared/awsconfig"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address of the local HTTP API (loopback only)")
	simAddr := flag.String("sim-addr", "127.0.0.1:0", "address of the Atlassian simulator (loopback only)")
	seed := flag.Int64("seed", 1, "simulator data seed")
	issues := flag.Int("issues-per-project", 30, "simulator issues per project")
	envFile := flag.String("env-file", ".local/dev.env", "where to write endpoints and resource names")
	verbose := flag.Bool("v", false, "show the AWS emulators' own output")
	var lo lambdaFlags
	flag.StringVar(&lo.addr, "lambda-addr", "127.0.0.1:0", "address of the local Lambda Invoke endpoint (loopback only)")
	flag.BoolVar(&lo.schedules, "schedules", true, "fire the template's schedules")
	flag.Float64Var(&lo.speedup, "schedule-speedup", 1, "run the schedule clock this many times faster (60: rate(1 minute) fires every second)")
	flag.Func("async-retry-delays", "waits before Lambda's async retries, comma-separated (default 1m,2m)", func(v string) error {
		for _, p := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(p))
			if err != nil || d <= 0 {
				return fmt.Errorf("bad delay %q", p)
			}
			lo.retryDelays = append(lo.retryDelays, d)
		}
		return nil
	})
	flag.IntVar(&lo.concurrency, "concurrency", lambdaservice.DefaultConcurrency, "execution environments per function without ReservedConcurrentExecutions")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, log, *addr, *simAddr, *seed, *issues, *envFile, *verbose, lo); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: only loopback addresses are allowed", addr)
	}
	return nil
}

type lambdaFlags struct {
	addr        string
	schedules   bool
	speedup     float64
	retryDelays []time.Duration
	concurrency int
}

func run(ctx context.Context, log *slog.Logger, addr, simAddr string, seed int64, issues int, envFile string, verbose bool, lo lambdaFlags) (runErr error) {
	for _, a := range []string{addr, simAddr, lo.addr} {
		if err := loopbackOnly(a); err != nil {
			return err
		}
	}
	root, err := localstack.FindRoot()
	if err != nil {
		return err
	}
	tmpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		return err
	}

	// The API's address must be known before the simulator starts: it is the registered OAuth redirect URI.
	apiLn, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	apiURL := "http://" + apiLn.Addr().String()

	clientSecret := rand.Text()
	sim, err := atlassiansim.New(atlassiansim.Config{
		Seed: seed, IssuesPerProject: issues, ClientSecret: clientSecret,
		RedirectURIs: []string{apiURL + "/oauth/callback"},
		Logger:       log.With("component", "atlassian-sim"),
	})
	if err != nil {
		return err
	}
	simURL, err := sim.Start(ctx, simAddr)
	if err != nil {
		return err
	}
	defer closeInto(&runErr, sim)
	info := sim.Info()

	stackOpts := localstack.Options{Root: root}
	if verbose {
		stackOpts.Logs = os.Stderr
	}
	log.Info("starting DynamoDB Local and moto")
	stack, err := localstack.Start(ctx, stackOpts)
	if err != nil {
		return err
	}
	defer closeInto(&runErr, stack)
	env := stack.Env()
	for k, v := range env {
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("set %s: %w", k, err)
		}
	}
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		return err
	}
	prov, err := localstack.Provision(ctx, localstack.NewClients(cfg), tmpl, localstack.ProvisionOptions{
		Prefix: "dev",
		Params: map[string]string{
			"AtlassianClientId": info.ClientID,
			"AtlassianAuthUrl":  simURL,
			"AtlassianApiUrl":   simURL,
			"PublicBaseUrl":     apiURL,
			"LogLevel":          "DEBUG",
		},
		SecretValues: map[string]string{"AtlassianClientSecret": clientSecret},
	})
	if err != nil {
		return err
	}

	fns, err := lambdaservice.FromTemplate(tmpl, prov.Resolver)
	if err != nil {
		return err
	}
	binDir := filepath.Join(root, ".build", "dev")
	rie, err := lambdarun.BuildRIE(ctx, root, binDir)
	if err != nil {
		return err
	}
	log.Info("building functions", "count", len(fns))
	if err := lambdaservice.Prepare(ctx, root, binDir, fns, prov, env); err != nil {
		return err
	}
	svc, err := lambdaservice.Start(ctx, lambdaservice.Options{
		Addr: lo.addr, RIE: rie, Functions: fns, DefaultConcurrency: lo.concurrency, RetryDelays: lo.retryDelays,
		SQS: sqs.NewFromConfig(cfg), Logs: os.Stderr, Log: log.With("component", "lambda"),
	})
	if err != nil {
		return err
	}
	defer closeInto(&runErr, svc)
	env["AWS_ENDPOINT_URL_LAMBDA"] = svc.URL()
	if err := os.Setenv("AWS_ENDPOINT_URL_LAMBDA", svc.URL()); err != nil {
		return fmt.Errorf("set AWS_ENDPOINT_URL_LAMBDA: %w", err)
	}
	invokers := map[string]devapi.Invoker{}
	for _, fn := range fns {
		invokers[fn.LogicalID] = svc.Function(fn.LogicalID)
	}
	schedules := "off (-schedules=false)"
	if lo.schedules {
		runner, n, err := startSchedules(ctx, tmpl, prov, lo.speedup, log)
		if err != nil {
			return err
		}
		// Deferred after svc.Close, so it runs first: no firing hits a closed service.
		defer runner.Close()
		schedules = fmt.Sprintf("%d from template.yaml, clock x%g", n, lo.speedup)
	}
	router, err := devapi.New(tmpl, invokers, log.With("component", "router"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("router stopped", "err", err)
		}
	}()
	defer closeInto(&runErr, srv)

	env["API_URL"] = apiURL
	env["ATLASSIAN_SIM_URL"] = simURL
	globals, err := prov.GlobalEnv(tmpl)
	if err != nil {
		return err
	}
	for k, v := range globals {
		env[k] = v
	}
	if err := localstack.WriteEnvFile(envFile, env); err != nil {
		return err
	}
	fmt.Printf(`
Local stack is up.
  HTTP API:             %[1]s   (open %[1]s/oauth/authorize to connect)
  Atlassian simulator:  %[2]s   (admin API under %[2]s/_sim/)
  DynamoDB Local:       %[3]s   table %[4]s
  S3/KMS/Secrets/SQS (moto):%[5]s   bucket %[6]s
  Lambda (Invoke API):  %[8]s   (aws lambda invoke --endpoint-url %[8]s --function-name <LogicalId> out.json)
  Schedules:            %[9]s
  Variables:            %[7]s   (source it, then e.g. aws dynamodb describe-table --endpoint-url $AWS_ENDPOINT_URL_DYNAMODB --table-name $TABLE_NAME)
Ctrl-C stops everything.
`, apiURL, simURL, stack.DynamoDBURL, prov.Ref("Table"), stack.MotoURL, prov.Ref("ExportBucket"), envFile, svc.URL(), schedules)
	<-ctx.Done()
	log.Info("stopping")
	return nil
}

// startSchedules fires the template's schedules through the Lambda endpoint named by AWS_ENDPOINT_URL_LAMBDA.
func startSchedules(ctx context.Context, tmpl *samtemplate.Template, prov *localstack.Provisioned, speedup float64, log *slog.Logger) (*scheduler.Runner, int, error) {
	all, err := scheduler.FromTemplate(tmpl, prov.Resolver)
	if err != nil {
		return nil, 0, err
	}
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		return nil, 0, err
	}
	r, err := scheduler.Start(all, scheduler.Options{
		Lambda: lambda.NewFromConfig(cfg), SQS: sqs.NewFromConfig(cfg), Speedup: speedup, Log: log.With("component", "scheduler"),
	})
	return r, len(all), err
}

// closeInto closes c when run returns and joins a failure into run's error: what run started is stopped in
// reverse order, and a process or server that did not stop is reported rather than left behind silently.
func closeInto(err *error, c interface{ Close() error }) {
	*err = errors.Join(*err, c.Close())
}
