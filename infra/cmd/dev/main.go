// Command dev runs the whole product on this machine: the local AWS stack provisioned from template.yaml, the
// Atlassian simulator as the Jira site and OAuth server, every function's real bootstrap under the Lambda
// Runtime Interface Emulator, and the HTTP API routes of template.yaml on 127.0.0.1. Ctrl-C stops everything.
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
	"syscall"
	"time"

	"jiraexport/infra/atlassiansim"
	"jiraexport/infra/devapi"
	"jiraexport/infra/lambdarun"
	"jiraexport/infra/localstack"
	"jiraexport/infra/samtemplate"
	"jiraexport/shared/awsconfig"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address of the local HTTP API (loopback only)")
	simAddr := flag.String("sim-addr", "127.0.0.1:0", "address of the Atlassian simulator (loopback only)")
	seed := flag.Int64("seed", 1, "simulator data seed")
	issues := flag.Int("issues-per-project", 30, "simulator issues per project")
	envFile := flag.String("env-file", ".local/dev.env", "where to write endpoints and resource names")
	verbose := flag.Bool("v", false, "show the AWS emulators' own output")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, log, *addr, *simAddr, *seed, *issues, *envFile, *verbose); err != nil {
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

func run(ctx context.Context, log *slog.Logger, addr, simAddr string, seed int64, issues int, envFile string, verbose bool) error {
	for _, a := range []string{addr, simAddr} {
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
	defer sim.Close()
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
	defer stack.Close()
	env := stack.Env()
	for k, v := range env {
		os.Setenv(k, v)
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

	fns, err := tmpl.Functions()
	if err != nil {
		return err
	}
	binDir := filepath.Join(root, ".build", "dev")
	rie, err := lambdarun.BuildRIE(ctx, root, binDir)
	if err != nil {
		return err
	}
	invokers := map[string]devapi.Invoker{}
	for _, fn := range fns {
		log.Info("building function", "function", fn.LogicalID, "dir", fn.Dir)
		bootstrap, err := lambdarun.BuildFunction(ctx, root, fn.Dir, binDir)
		if err != nil {
			return err
		}
		fenv := map[string]string{}
		for k, v := range env {
			if v != "" {
				fenv[k] = v
			}
		}
		own, err := prov.ResolveEnv(fn.Env)
		if err != nil {
			return fmt.Errorf("function %s: %w", fn.LogicalID, err)
		}
		for k, v := range own {
			fenv[k] = v
		}
		f, err := lambdarun.Start(ctx, lambdarun.Options{
			Name: fn.LogicalID, RIE: rie, Bootstrap: bootstrap, Env: fenv,
			Timeout: time.Duration(fn.Timeout) * time.Second, Logs: os.Stderr,
		})
		if err != nil {
			return err
		}
		defer f.Close()
		invokers[fn.LogicalID] = f
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
	defer srv.Close()

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
  S3/KMS/Secrets (moto):%[5]s   bucket %[6]s
  Variables:            %[7]s   (source it, then e.g. aws dynamodb describe-table --endpoint-url $AWS_ENDPOINT_URL_DYNAMODB --table-name $TABLE_NAME)
Ctrl-C stops everything.
`, apiURL, simURL, stack.DynamoDBURL, prov.Ref("Table"), stack.MotoURL, prov.Ref("ExportBucket"), envFile)
	<-ctx.Done()
	log.Info("stopping")
	return nil
}
