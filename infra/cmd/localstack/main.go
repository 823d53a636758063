// Command localstack runs the local AWS stack (DynamoDB Local and moto_server) on 127.0.0.1.
//
//	localstack up [-env-file F]   start, provision template.yaml's resources (prefix "dev"), write F, wait for Ctrl-C
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
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"jiraexport/infra/localstack"
	"jiraexport/infra/samtemplate"
	"jiraexport/shared/awsconfig"
)

func main() {
	if len(os.Args) < 2 {
		usage()
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

func up(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	envFile := fs.String("env-file", ".local/stack.env", "where to write the endpoint and resource variables")
	verbose := fs.Bool("v", false, "show the services' own output")
	_ = fs.Parse(args)
	s, err := start(ctx, *verbose)
	if err != nil {
		return err
	}
	defer s.Close()
	env := s.Env()
	for k, v := range env {
		os.Setenv(k, v)
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
	globals, err := prov.GlobalEnv(tmpl)
	if err != nil {
		return err
	}
	for k, v := range globals {
		env[k] = v
	}
	if err := localstack.WriteEnvFile(*envFile, env); err != nil {
		return err
	}
	fmt.Printf("DynamoDB Local: %s\nS3, KMS, Secrets Manager (moto): %s\nvariables: %s (source it)\nCtrl-C stops everything.\n",
		s.DynamoDBURL, s.MotoURL, *envFile)
	<-ctx.Done()
	return nil
}

func run(ctx context.Context, args []string) (int, error) {
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
	defer s.Close()
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
