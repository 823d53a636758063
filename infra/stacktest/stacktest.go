// Package stacktest gives tests a running local AWS stack and an isolated copy of template.yaml's resources.
//
// The stack is started once per test binary, or not at all when `localstack run` (what `make test` uses) already
// started one for the whole suite and exported its endpoints. Each test then provisions its own table, bucket,
// key and secret under a random prefix, so tests run in parallel without seeing each other's data.
package stacktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"jiraexport/infra/localstack"
	"jiraexport/infra/samtemplate"
	"jiraexport/shared/awsconfig"
)

// EnvMarker is set by `localstack run` next to the endpoints it exports.
const EnvMarker = "JIRAEXPORT_LOCALSTACK"

type shared struct {
	once  sync.Once
	err   error
	root  string
	tmpl  *samtemplate.Template
	cfg   aws.Config
	env   map[string]string
	stack *localstack.Stack
}

// The one piece of package state: a test binary shares one stack between its tests, by design.
var stack shared

func start() {
	root, err := localstack.FindRoot()
	if err != nil {
		stack.err = err
		return
	}
	stack.root = root
	if stack.tmpl, err = samtemplate.Load(filepath.Join(root, "template.yaml")); err != nil {
		stack.err = err
		return
	}
	if os.Getenv(EnvMarker) == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s, err := localstack.Start(ctx, localstack.Options{Root: root, Logs: logSink()})
		if err != nil {
			stack.err = err
			return
		}
		stack.stack = s
		for k, v := range s.Env() {
			// The SDK reads its endpoints from the environment; setting them here keeps the code under test
			// on exactly the path it takes in AWS.
			if err := os.Setenv(k, v); err != nil {
				stack.err = fmt.Errorf("stacktest: set %s: %w", k, err)
				return
			}
		}
		if err := os.Setenv(EnvMarker, "1"); err != nil {
			stack.err = fmt.Errorf("stacktest: set %s: %w", EnvMarker, err)
			return
		}
	}
	if os.Getenv("AWS_ENDPOINT_URL_SQS") == "" && os.Getenv("AWS_ENDPOINT_URL_S3") != "" {
		// moto serves every service on one endpoint; a stack started by an older `localstack run` did not
		// export SQS's.
		if err := os.Setenv("AWS_ENDPOINT_URL_SQS", os.Getenv("AWS_ENDPOINT_URL_S3")); err != nil {
			stack.err = fmt.Errorf("stacktest: set AWS_ENDPOINT_URL_SQS: %w", err)
			return
		}
	}
	stack.env = map[string]string{}
	for _, k := range envKeys {
		stack.env[k] = os.Getenv(k)
	}
	stack.cfg, stack.err = awsconfig.Load(context.Background())
}

func logSink() *os.File {
	if os.Getenv("STACK_LOGS") != "" {
		return os.Stderr
	}
	return nil
}

var envKeys = []string{
	"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
	"AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_SECRETS_MANAGER",
	"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_SQS", "S3_USE_PATH_STYLE", "AWS_EC2_METADATA_DISABLED", "AWS_REQUEST_CHECKSUM_CALCULATION",
	"AWS_RESPONSE_CHECKSUM_VALIDATION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CA_BUNDLE",
}

// Env is one test's private copy of the template's resources.
type Env struct {
	AWS     aws.Config
	Clients *localstack.Clients
	Prov    *localstack.Provisioned
	Tmpl    *samtemplate.Template
	Root    string
	// StackEnv holds the variables that point an SDK at the local stack (endpoints, region, credentials).
	StackEnv map[string]string

	Table, Bucket, KeyARN, SecretARN string
	// TokenKeyARN encrypts OAuth token envelopes; AccountKeyARN is the HMAC key of account fingerprints.
	TokenKeyARN, AccountKeyARN string
}

// Options tune New.
type Options struct {
	Params       map[string]string
	SecretValues map[string]string
}

// New returns a fresh, isolated copy of the template's resources on the shared stack. It fails the test when
// the stack cannot start (a missing prerequisite is reported with how to install it).
func New(tb testing.TB, opts ...Options) *Env {
	tb.Helper()
	SkipIfShort(tb, "DynamoDB Local and moto")
	stack.once.Do(start)
	if stack.err != nil {
		tb.Fatalf("local AWS stack: %v", stack.err)
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	prefix := "t" + randomHex(5)
	clients := localstack.NewClients(stack.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prov, err := localstack.Provision(ctx, clients, stack.tmpl, localstack.ProvisionOptions{
		Prefix: prefix, Params: o.Params, SecretValues: o.SecretValues,
	})
	if err != nil {
		tb.Fatalf("provision: %v", err)
	}
	e := &Env{
		AWS: stack.cfg, Clients: clients, Prov: prov, Tmpl: stack.tmpl, Root: stack.root, StackEnv: stack.env,
		Table:     prov.Ref("Table"),
		Bucket:    prov.Ref("ExportBucket"),
		KeyARN:    prov.Attr("DataKey", "Arn"),
		SecretARN: prov.Ref("AtlassianClientSecret"),

		TokenKeyARN:   prov.Attr("TokenKey", "Arn"),
		AccountKeyARN: prov.Attr("AccountKey", "Arn"),
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = clients.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(e.Table)})
	})
	return e
}

// SkipIfShort skips a test that needs what (emulators, built binaries) under `go test -short`, the fast tier that
// runs only pure tests, with a reason that says how to run it.
func SkipIfShort(tb testing.TB, what string) {
	tb.Helper()
	if testing.Short() {
		tb.Skipf("-short: needs %s; run `make test` for the full suite", what)
	}
}

// FunctionEnv resolves a function's environment from template.yaml against this copy, adds the stack's
// endpoints, and applies overrides (e.g. the simulator's URL for ATLASSIAN_API_URL).
func (e *Env) FunctionEnv(tb testing.TB, logicalID string, overrides map[string]string) map[string]string {
	tb.Helper()
	return templateFunctionEnv(tb, e.Tmpl, e.Prov, e.StackEnv, logicalID, overrides)
}

func templateFunctionEnv(tb testing.TB, tmpl *samtemplate.Template, prov *localstack.Provisioned, stackEnv map[string]string,
	logicalID string, overrides map[string]string) map[string]string {
	tb.Helper()
	fns, err := tmpl.Functions()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range stackEnv {
		if v != "" {
			out[k] = v
		}
	}
	found := false
	for _, fn := range fns {
		if fn.LogicalID != logicalID {
			continue
		}
		found = true
		vars := map[string]any{}
		for k, v := range fn.Env {
			if _, ok := overrides[k]; !ok {
				vars[k] = v
			}
		}
		own, err := prov.ResolveEnv(vars)
		if err != nil {
			tb.Fatalf("function %s: %v", logicalID, err)
		}
		for k, v := range own {
			out[k] = v
		}
	}
	if !found {
		tb.Fatalf("function %s is not in the template", logicalID)
	}
	for k, v := range overrides {
		out[k] = v
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}
