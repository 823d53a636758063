package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"jiraexport/infra/localstack"
)

// TestUpProvisionsAndStopsCleanly runs `localstack up` as a user would, checks the env file it writes points
// at live services, then sends Ctrl-C (SIGINT) and checks that nothing is left listening.
func TestUpProvisionsAndStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own stack")
	}
	root, err := localstack.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "localstack")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	envFile := filepath.Join(dir, "stack.env")
	cmd := exec.Command(bin, "up", "-env-file", envFile)
	cmd.Dir = root
	// A clean environment: the test binary may itself run under `localstack run`.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var env map[string]string
	for env == nil {
		select {
		case err := <-done:
			t.Fatalf("localstack up exited early: %v", err)
		case <-ctx.Done():
			t.Fatal("env file never appeared")
		case <-time.After(200 * time.Millisecond):
		}
		env = readEnv(envFile)
	}
	var addrs []string
	for _, k := range []string{"AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"} {
		u := env[k]
		host := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
		if !strings.HasPrefix(host, "127.0.0.1:") {
			t.Fatalf("%s = %q, want a 127.0.0.1 endpoint", k, u)
		}
		addrs = append(addrs, host)
		if !listening(host) {
			t.Fatalf("%s (%s) is not listening", k, host)
		}
	}
	for _, k := range []string{"TABLE_NAME", "BUCKET_NAME", "KMS_KEY_ID", "ATLASSIAN_CLIENT_SECRET_ARN"} {
		if env[k] == "" {
			t.Errorf("env file has no %s", k)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("localstack up after Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("localstack up did not stop within 30s of Ctrl-C")
	}
	for _, a := range addrs {
		if listening(a) {
			t.Errorf("%s still listening after Ctrl-C", a)
		}
	}
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func readEnv(path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if ok {
			env[k] = strings.Trim(v, "'")
		}
	}
	if len(env) == 0 {
		return nil
	}
	return env
}
