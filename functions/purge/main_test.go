package main

// End-to-end: the real bootstrap under the Lambda Runtime Interface Emulator, with the environment template.yaml
// gives PurgeFunction, against a scenario built through the OAuth flow.

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jiraexport/infra/privacytest"
	"jiraexport/infra/stacktest"
	"jiraexport/shared/erasure"
)

func TestPurgeFunction(t *testing.T) {
	t.Parallel()
	stacktest.SkipIfShort(t, "DynamoDB Local, moto and the Lambda Runtime Interface Emulator (it builds and runs the function)")
	sc := privacytest.Build(t, privacytest.Options{Connections: 2})
	a, b := sc.Parties[0], sc.Parties[1]
	beforeA, beforeB := sc.Snapshot(t, a.ConnID), sc.Snapshot(t, b.ConnID)
	fn := sc.Env.StartFunction(t, "PurgeFunction", map[string]string{"ERASURE_SETTLE_SECONDS": "0"})
	invoke := func(payload string) []erasure.Report {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := fn.Invoke(ctx, []byte(payload))
		if err != nil {
			t.Fatalf("invoke %s: %v", payload, err)
		}
		var reps []erasure.Report
		if err := json.Unmarshal(out, &reps); err != nil {
			t.Fatalf("answer %s: %v", out, err)
		}
		return reps
	}

	dry := invoke(`{"connectionId":"` + a.ConnID + `","dryRun":true}`)
	if len(dry) != 1 || !dry[0].Complete || !dry[0].DryRun || dry[0].Deleted["objectVersion"] != 12 || dry[0].Deleted["token"] != 1 {
		t.Errorf("dry run = %+v, want a complete report of 12 versions and a token", dry)
	}
	if d := beforeA.Diff(sc.Snapshot(t, a.ConnID)); d != "" {
		t.Errorf("the dry run changed A:\n%s", d)
	}

	rep := invoke(`{"connectionId":"` + a.ConnID + `"}`)
	if len(rep) != 1 || !rep[0].Complete || rep[0].Deleted["connection"] != 1 || rep[0].Deleted["multipartUpload"] != 2 {
		t.Errorf("purge = %+v, want complete with the connection and 2 uploads", rep)
	}
	if s := sc.Snapshot(t, a.ConnID); !s.Empty() {
		t.Errorf("left of A: %+v", s)
	}
	if d := beforeB.Diff(sc.Snapshot(t, b.ConnID)); d != "" {
		t.Errorf("B changed:\n%s", d)
	}

	// A bad request is refused, and nothing is touched.
	if _, err := fn.Invoke(t.Context(), []byte(`{"connectionId":"x","siteId":"y"}`)); err == nil {
		t.Error("invoke with both targets succeeded, want a function error")
	}

	// One audit line per invocation, ids and counts only.
	logs := fn.Logs()
	if n := strings.Count(logs, `"message":"purge"`); n != 2 {
		t.Errorf("audit lines = %d, want 2:\n%s", n, logs)
	}
	if !strings.Contains(logs, a.ConnID) || !strings.Contains(logs, `"objectVersion":12`) {
		t.Errorf("the audit line lacks the connection id or the counts:\n%s", logs)
	}
	for _, s := range append(sc.Secrets, sc.PII()...) {
		if strings.Contains(logs, s) {
			t.Errorf("the purge logs hold a secret or personal data (%d chars)", len(s))
		}
	}
}

// TestPurgeWithTheCLI runs the README's admin command, `aws lambda invoke`, against the local Lambda service, as an
// admin does against `make dev`: a dry run, then the purge, through the real bootstrap.
func TestPurgeWithTheCLI(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the function under the local Lambda service")
	}
	if _, err := exec.LookPath("aws"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the AWS CLI is not installed")
		}
		t.Skip("the AWS CLI is not installed")
	}
	version, err := exec.Command("aws", "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("aws --version: %v %s", err, version)
	}
	sc := privacytest.Build(t, privacytest.Options{Connections: 2})
	a, b := sc.Parties[0], sc.Parties[1]
	beforeB := sc.Snapshot(t, b.ConnID)
	ls := sc.Env.StartLambdaService(t, stacktest.LambdaOptions{
		Functions:   []string{"PurgeFunction"},
		FunctionEnv: map[string]map[string]string{"PurgeFunction": {"ERASURE_SETTLE_SECONDS": "0"}},
	})
	invoke := func(payload string) []erasure.Report {
		t.Helper()
		args := []string{"lambda", "invoke", "--endpoint-url", ls.URL, "--function-name", "PurgeFunction"}
		if !strings.HasPrefix(string(version), "aws-cli/1.") {
			// Version 2 reads --payload as base64 unless told otherwise; version 1 sends it as given.
			args = append(args, "--cli-binary-format", "raw-in-base64-out")
		}
		out := filepath.Join(t.TempDir(), "report.json")
		cmd := exec.Command("aws", append(args, "--payload", payload, out)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local",
			"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		if meta, err := cmd.Output(); err != nil || strings.Contains(string(meta), "FunctionError") {
			t.Fatalf("aws lambda invoke %s: %v %s", payload, err, meta)
		}
		body, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var reps []erasure.Report
		if err := json.Unmarshal(body, &reps); err != nil {
			t.Fatalf("answer %s: %v", body, err)
		}
		return reps
	}
	if dry := invoke(`{"connectionId":"` + a.ConnID + `","dryRun":true}`); len(dry) != 1 || !dry[0].DryRun || !dry[0].Complete {
		t.Errorf("dry run = %+v, want one complete dry-run report", dry)
	}
	if s := sc.Snapshot(t, a.ConnID); s.Empty() {
		t.Fatal("the dry run deleted A")
	}
	if rep := invoke(`{"connectionId":"` + a.ConnID + `"}`); len(rep) != 1 || !rep[0].Complete || rep[0].Deleted["connection"] != 1 {
		t.Errorf("purge = %+v, want complete with the connection", rep)
	}
	if s := sc.Snapshot(t, a.ConnID); !s.Empty() {
		t.Errorf("left of A: %+v", s)
	}
	if d := beforeB.Diff(sc.Snapshot(t, b.ConnID)); d != "" {
		t.Errorf("B changed:\n%s", d)
	}
}
