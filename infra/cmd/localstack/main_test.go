package main

import (
	"strings"
	"testing"

	"jiraexport/infra/stacktest"
)

// TestUpProvisionsAndStopsCleanly runs `localstack up` as a user would, checks the env file it writes points
// at live services, then sends Ctrl-C (SIGINT) and checks that nothing is left listening.
func TestUpProvisionsAndStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own stack")
	}
	c := stacktest.StartCommand(t, nil, "up")
	var addrs []string
	for _, k := range []string{"AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"} {
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
	c.Interrupt(t)
	for _, a := range addrs {
		if stacktest.Listening(a) {
			t.Errorf("%s still listening after Ctrl-C", a)
		}
	}
}
