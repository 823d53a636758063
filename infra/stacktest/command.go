package stacktest

import (
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

// Command is one of the project's long-running commands (localstack up, dev) started as a user would start it.
type Command struct {
	// Env is what the command wrote to its env file once it was ready.
	Env  map[string]string
	cmd  *exec.Cmd
	done chan error
}

// StartCommand builds the command in the working directory's package, runs it from the repository root with
// args and `-env-file <tmp>`, in a clean environment plus extraEnv, and waits until it has written its env
// file (which it does once everything is up).
func StartCommand(tb testing.TB, extraEnv []string, args ...string) *Command {
	tb.Helper()
	SkipIfShort(tb, "a built command and the servers it starts")
	root := Root(tb)
	dir := tb.TempDir()
	bin := filepath.Join(dir, "cmd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		tb.Fatalf("build: %v\n%s", err, out)
	}
	envFile := filepath.Join(dir, "out.env")
	c := &Command{done: make(chan error, 1)}
	c.cmd = exec.Command(bin, append(args, "-env-file", envFile)...)
	c.cmd.Dir = root
	// A clean environment: the test binary itself may run under `localstack run`.
	c.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, extraEnv...)
	if err := c.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	tb.Cleanup(func() { _ = c.cmd.Process.Kill() })

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for {
		select {
		case err := <-c.done:
			tb.Fatalf("%s exited early: %v", strings.Join(args, " "), err)
		case <-ctx.Done():
			tb.Fatal("the env file never appeared")
		case <-time.After(250 * time.Millisecond):
		}
		if env, err := localstack.ReadEnvFile(envFile); err == nil && len(env) > 0 {
			c.Env = env
			return c
		}
	}
}

// Interrupt sends SIGINT, as Ctrl-C does, and waits for a clean exit.
func (c *Command) Interrupt(tb testing.TB) {
	tb.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		tb.Fatal(err)
	}
	select {
	case err := <-c.done:
		if err != nil {
			tb.Fatalf("exit after Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		tb.Fatal("still running 30s after Ctrl-C")
	}
}

// Listening reports whether something accepts connections on addr.
func Listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close() // a probe: the dial answered the question and nothing was written
	return true
}
