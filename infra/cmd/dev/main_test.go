package main

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"jiraexport/infra/stacktest"
)

// TestDevStartsEverythingAndStopsCleanly runs the `make dev` command as a user would: every endpoint it writes
// answers, the authorize route redirects to the simulator through the real oauth bootstrap, and Ctrl-C
// (SIGINT) leaves nothing listening.
func TestDevStartsEverythingAndStopsCleanly(t *testing.T) {
	c := stacktest.StartCommand(t, []string{"AWS_LAMBDA_RIE=" + os.Getenv("AWS_LAMBDA_RIE"),
		"GOCACHE=" + goEnv(t, "GOCACHE"), "GOMODCACHE=" + goEnv(t, "GOMODCACHE"), "GOFLAGS=" + os.Getenv("GOFLAGS")})
	var addrs []string
	for _, k := range []string{"API_URL", "ATLASSIAN_SIM_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_LAMBDA"} {
		u, err := url.Parse(c.Env[k])
		if err != nil || !strings.HasPrefix(u.Host, "127.0.0.1:") {
			t.Fatalf("%s = %q, want a 127.0.0.1 URL", k, c.Env[k])
		}
		addrs = append(addrs, u.Host)
	}

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(c.Env["API_URL"] + "/oauth/authorize")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, c.Env["ATLASSIAN_SIM_URL"]+"/authorize?") {
		t.Fatalf("GET /oauth/authorize = %d Location %q, want 302 to the simulator", resp.StatusCode, loc)
	}

	// The same function through the Lambda Invoke API, as `aws lambda invoke` reaches it.
	event := `{"version":"2.0","routeKey":"GET /oauth/authorize","rawPath":"/oauth/authorize","headers":{"host":"` +
		strings.TrimPrefix(c.Env["API_URL"], "http://") + `"},"requestContext":{"domainName":"` + strings.TrimPrefix(c.Env["API_URL"], "http://") +
		`","http":{"method":"GET","path":"/oauth/authorize"}}}`
	out, err := stacktest.LambdaClient(c.Env).Invoke(context.Background(), &lambda.InvokeInput{
		FunctionName: aws.String("OAuthFunction"), Payload: []byte(event)})
	if err != nil {
		t.Fatal(err)
	}
	if out.StatusCode != http.StatusOK || out.FunctionError != nil || !strings.Contains(string(out.Payload), `"statusCode":302`) {
		t.Fatalf("Invoke OAuthFunction = %d %v %s, want 200 with the function's 302 response", out.StatusCode, out.FunctionError, out.Payload)
	}

	c.Interrupt(t)
	for _, a := range addrs {
		if stacktest.Listening(a) {
			t.Errorf("%s still listening after Ctrl-C", a)
		}
	}
}

func goEnv(t *testing.T, key string) string {
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
