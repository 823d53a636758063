package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"jiraexport/infra/stacktest"
)

// TestUpProvisionsAndStopsCleanly runs `localstack up` as a user would, checks the env file it writes points
// at live services, then sends Ctrl-C (SIGINT) and checks that nothing is left listening. With -lambda, the
// Lambda endpoint is in the env file too and serves the template's functions.
func TestUpProvisionsAndStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own stack")
	}
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"stack only", []string{"up"}},
		{"with lambda", []string{"up", "-lambda", "-schedules=false"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			withLambda := len(tt.args) > 1
			var extra []string
			if withLambda {
				extra = []string{"AWS_LAMBDA_RIE=" + os.Getenv("AWS_LAMBDA_RIE"), "GOCACHE=" + goEnv(t, "GOCACHE"),
					"GOMODCACHE=" + goEnv(t, "GOMODCACHE"), "GOFLAGS=" + os.Getenv("GOFLAGS")}
			}
			c := stacktest.StartCommand(t, extra, tt.args...)
			keys := []string{"AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS"}
			if withLambda {
				keys = append(keys, "AWS_ENDPOINT_URL_LAMBDA")
			} else if c.Env["AWS_ENDPOINT_URL_LAMBDA"] != "" {
				t.Errorf("AWS_ENDPOINT_URL_LAMBDA = %q without -lambda", c.Env["AWS_ENDPOINT_URL_LAMBDA"])
			}
			var addrs []string
			for _, k := range keys {
				u := c.Env[k]
				host := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
				if !strings.HasPrefix(host, "127.0.0.1:") {
					t.Fatalf("%s = %q, want a 127.0.0.1 endpoint", k, u)
				}
				if !stacktest.Listening(host) {
					t.Fatalf("%s (%s) is not listening", k, host)
				}
				addrs = append(addrs, host)
			}
			for _, k := range []string{"TABLE_NAME", "BUCKET_NAME", "KMS_KEY_ID", "ATLASSIAN_CLIENT_SECRET_ARN"} {
				if c.Env[k] == "" {
					t.Errorf("env file has no %s", k)
				}
			}
			if withLambda {
				client := stacktest.LambdaClient(c.Env)
				// A dry run checks the function is served without running it.
				out, err := client.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("ConnectorsFunction"),
					InvocationType: lambdatypes.InvocationTypeDryRun})
				if err != nil || out.StatusCode != http.StatusNoContent {
					t.Errorf("DryRun ConnectorsFunction = %v, want 204", err)
				}
				// A real invocation: the authorize route only redirects, so it needs nothing from Atlassian.
				event := `{"version":"2.0","routeKey":"GET /oauth/authorize","rawPath":"/oauth/authorize","headers":{"host":"api.example.com"},` +
					`"requestContext":{"domainName":"api.example.com","http":{"method":"GET","path":"/oauth/authorize"}}}`
				out, err = client.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("OAuthFunction"), Payload: []byte(event)})
				if err != nil {
					t.Fatal(err)
				}
				if out.FunctionError != nil || !strings.Contains(string(out.Payload), `"statusCode":302`) {
					t.Errorf("Invoke OAuthFunction = %v %s, want the function's 302", out.FunctionError, out.Payload)
				}
			}
			c.Interrupt(t)
			for _, a := range addrs {
				if stacktest.Listening(a) {
					t.Errorf("%s still listening after Ctrl-C", a)
				}
			}
		})
	}
}

func goEnv(t *testing.T, key string) string {
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
