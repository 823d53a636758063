// Command localstack runs the local AWS stack (DynamoDB Local and moto_server) on 127.0.0.1.
//
//	localstack up [-env-file F] [-lambda]   start, provision template.yaml's resources (prefix "dev"), write F, wait for Ctrl-C
//	                                        -lambda also builds every function and serves them on a local Lambda
//	                                        Invoke endpoint (AWS_ENDPOINT_URL_LAMBDA) with the template's schedules
//	localstack run -- CMD ARGS    start, run CMD with the stack's endpoints in its environment, stop; exits with CMD's code
//
// `make test` uses `run` so the whole test suite shares one stack; each test still provisions its own copy of
// the template's resources.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"jiraexport/infra/lambdarun"
	"jiraexport/infra/lambdaservice"
	"jiraexport/infra/localstack"
	"jiraexport/infra/samtemplate"
	"jiraexport/infra/scheduler"
	"jiraexport/shared/awsconfig"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	if os.Getenv("GOMAXPROCS") == "" {
		// This process is moto's TLS front and the stack's supervisor: it waits on sockets and pipes, and what it
		// computes (TLS, HTTP/2 frames) is little per request. With a P per core, every request woke a second
		// thread that then spun and went back to sleep (futex and nanosleep calls, reschedule interrupts), on a
		// host whose cores the stack and the code under test share: one P cut the front's CPU by about a fifth
		// (4.2 to 3.4 s for 3,000 SSE-KMS PutObjects and a 256 MiB upload, moto's own time unchanged).
		runtime.GOMAXPROCS(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	code := 0
	switch os.Args[1] {
	case "up":
		err = up(ctx, os.Args[2:])
	case "run":
		code, err = run(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "localstack:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: localstack up [-env-file FILE] | localstack run -- COMMAND [ARGS...]")
	os.Exit(2)
}

func start(ctx context.Context, verbose bool) (*localstack.Stack, error) {
	opts := localstack.Options{}
	if verbose {
		opts.Logs = os.Stderr
	}
	s, err := localstack.Start(ctx, opts)
	var missing *localstack.ErrMissingTool
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("%w\n(prerequisites: Go, Java 17+, Node with npm, Python with moto[server]; see README)", err)
	}
	return s, err
}

func up(ctx context.Context, args []string) (upErr error) {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	envFile := fs.String("env-file", ".local/stack.env", "where to write the endpoint and resource variables")
	verbose := fs.Bool("v", false, "show the services' own output")
	withLambda := fs.Bool("lambda", false, "also serve the template's functions on a local Lambda endpoint (builds them)")
	lambdaAddr := fs.String("lambda-addr", "127.0.0.1:0", "address of the local Lambda endpoint (loopback only)")
	schedules := fs.Bool("schedules", true, "with -lambda: fire the template's schedules")
	speedup := fs.Float64("schedule-speedup", 1, "with -lambda: run the schedule clock this many times faster")
	_ = fs.Parse(args)
	s, err := start(ctx, *verbose)
	if err != nil {
		return err
	}
	defer func() { upErr = errors.Join(upErr, s.Close()) }()
	env := s.Env()
	for k, v := range env {
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("set %s: %w", k, err)
		}
	}
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		return err
	}
	root, err := localstack.FindRoot()
	if err != nil {
		return err
	}
	tmpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		return err
	}
	prov, err := localstack.Provision(ctx, localstack.NewClients(cfg), tmpl, localstack.ProvisionOptions{Prefix: "dev"})
	if err != nil {
		return err
	}
	// The functions get the stack's endpoints and only their own variables, as in AWS; the env file gets every
	// variable (for scripts and the CLI).
	stackEnv := maps.Clone(env)
	globals, err := prov.GlobalEnv(tmpl)
	if err != nil {
		return err
	}
	for k, v := range globals {
		env[k] = v
	}
	lambdaLine := "Lambda: not served (localstack up -lambda serves the functions)\n"
	if *withLambda {
		stop, url, err := serveLambda(ctx, root, tmpl, prov, stackEnv, cfg, *lambdaAddr, *schedules, *speedup)
		if err != nil {
			return err
		}
		defer func() { upErr = errors.Join(upErr, stop()) }()
		env["AWS_ENDPOINT_URL_LAMBDA"] = url
		lambdaLine = fmt.Sprintf("Lambda (Invoke API): %s (aws lambda invoke --endpoint-url %s --function-name <LogicalId> out.json)\n", url, url)
	}
	if err := localstack.WriteEnvFile(*envFile, env); err != nil {
		return err
	}
	fmt.Printf("DynamoDB Local: %s\nS3, KMS, Secrets Manager, SQS (moto): %s\n%svariables: %s (source it)\nCtrl-C stops everything.\n",
		s.DynamoDBURL, s.MotoURL, lambdaLine, *envFile)
	<-ctx.Done()
	return nil
}

func run(ctx context.Context, args []string) (code int, runErr error) {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		usage()
	}
	s, err := start(ctx, os.Getenv("STACK_LOGS") != "")
	if err != nil {
		return 1, err
	}
	defer func() { runErr = errors.Join(runErr, s.Close()) }()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = os.Environ()
	for k, v := range s.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "JIRAEXPORT_LOCALSTACK=1")
	if err := cmd.Start(); err != nil {
		return 1, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			err = <-done
		}
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

// serveLambda builds every function of the template and serves them, with the template's schedules, on a
// local Lambda endpoint; the functions reach the stack through env.
func serveLambda(ctx context.Context, root string, tmpl *samtemplate.Template, prov *localstack.Provisioned, env map[string]string,
	cfg aws.Config, addr string, schedules bool, speedup float64) (stop func() error, url string, err error) {
	fns, err := lambdaservice.FromTemplate(tmpl, prov.Resolver)
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(root, ".build", "stack")
	rie, err := lambdarun.BuildRIE(ctx, root, dir)
	if err != nil {
		return nil, "", err
	}
	if err := lambdaservice.Prepare(ctx, root, dir, fns, prov, env); err != nil {
		return nil, "", err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	svc, err := lambdaservice.Start(ctx, lambdaservice.Options{
		Addr: addr, RIE: rie, Functions: fns, SQS: sqs.NewFromConfig(cfg), Logs: os.Stderr, Log: log.With("component", "lambda"),
	})
	if err != nil {
		return nil, "", err
	}
	if !schedules {
		return svc.Close, svc.URL(), nil
	}
	all, err := scheduler.FromTemplate(tmpl, prov.Resolver)
	if err != nil {
		return nil, "", errors.Join(err, svc.Close())
	}
	client := lambda.NewFromConfig(cfg, func(o *lambda.Options) { o.BaseEndpoint = aws.String(svc.URL()) })
	runner, err := scheduler.Start(all, scheduler.Options{Lambda: client, SQS: sqs.NewFromConfig(cfg), Speedup: speedup, Log: log.With("component", "scheduler")})
	if err != nil {
		return nil, "", errors.Join(err, svc.Close())
	}
	// The schedules stop first, so no firing hits a closed service.
	return func() error { runner.Close(); return svc.Close() }, svc.URL(), nil
}
