package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"jiraexport/infra/stacktest"
)

// TestDemo runs `make demo`'s command as a user would, in a clean environment: it starts dev, connects through
// the simulator's consent page, creates a connector, starts a run through the API, follows it until it succeeds,
// prints the run's summary, the S3 tree and one issue's document, then stops everything and exits 0 (about a
// minute on two cores).
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole product")
	}
	root := stacktest.Root(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "demo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "AWS_LAMBDA_RIE=" + os.Getenv("AWS_LAMBDA_RIE"),
		"GOCACHE=" + goEnv(t, "GOCACHE"), "GOMODCACHE=" + goEnv(t, "GOMODCACHE"), "GOFLAGS=" + os.Getenv("GOFLAGS")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"== connecting through the simulator's consent page", "== creating a connector", "== starting a run",
		"== the run's summary", `"status": "succeeded"`, "== the S3 tree of the connection", "== one issue's document", `"schema": "issue.v1"`,
		"== done; stopping everything"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	for _, re := range []string{`run [0-9A-Z]{26} (queued|running)`, `/issues/[0-9]+\.json \([0-9]+ bytes\)`, `/manifests/[0-9A-Z]{26}\.json \([0-9]+ bytes\)`} {
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("demo output lacks a line matching %s:\n%s", re, out)
		}
	}
	if strings.Contains(string(out), "jxk_") {
		t.Errorf("demo output shows the API key:\n%s", out)
	}
}

func goEnv(t *testing.T, key string) string {
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
