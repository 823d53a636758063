package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"jiraexport/infra/localstack"
)

// TestDevStartsEverythingAndStopsCleanly runs the `make dev` command as a user would: every endpoint it writes
// answers, the authorize route redirects to the simulator through the real oauth bootstrap, and Ctrl-C
// (SIGINT) leaves nothing listening.
func TestDevStartsEverythingAndStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole product")
	}
	root, err := localstack.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "dev")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	envFile := filepath.Join(dir, "dev.env")
	cmd := exec.Command(bin, "-env-file", envFile)
	cmd.Dir = root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "AWS_LAMBDA_RIE=" + os.Getenv("AWS_LAMBDA_RIE"),
		"GOCACHE=" + goEnv(t, "GOCACHE"), "GOMODCACHE=" + goEnv(t, "GOMODCACHE"), "GOFLAGS=" + os.Getenv("GOFLAGS")}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var env map[string]string
	for env == nil {
		select {
		case err := <-done:
			t.Fatalf("dev exited early: %v", err)
		case <-ctx.Done():
			t.Fatal("env file never appeared")
		case <-time.After(250 * time.Millisecond):
		}
		env = readEnv(envFile)
	}
	var addrs []string
	for _, k := range []string{"API_URL", "ATLASSIAN_SIM_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"} {
		u, err := url.Parse(env[k])
		if err != nil || !strings.HasPrefix(u.Host, "127.0.0.1:") {
			t.Fatalf("%s = %q, want a 127.0.0.1 URL", k, env[k])
		}
		addrs = append(addrs, u.Host)
	}

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(env["API_URL"] + "/oauth/authorize")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, env["ATLASSIAN_SIM_URL"]+"/authorize?") {
		t.Fatalf("GET /oauth/authorize = %d Location %q, want 302 to the simulator", resp.StatusCode, loc)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev after Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30s of Ctrl-C")
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
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
