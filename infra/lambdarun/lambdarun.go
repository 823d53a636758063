// Package lambdarun builds a function's real `bootstrap` for this machine and runs it under Amazon's Lambda
// Runtime Interface Emulator (github.com/aws/aws-lambda-runtime-interface-emulator, pinned in go.mod), so local
// runs and end-to-end tests exercise the same binary and runtime loop as Lambda.
package lambdarun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"jiraexport/infra/localstack"
)

// RIEPackage is the emulator's main package; its version is pinned by go.mod's tool directive.
const RIEPackage = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// BuildRIE builds the emulator into dir and returns its path. AWS_LAMBDA_RIE, when set, names a prebuilt one.
func BuildRIE(ctx context.Context, root, dir string) (string, error) {
	if p := os.Getenv("AWS_LAMBDA_RIE"); p != "" {
		return p, nil
	}
	out := filepath.Join(dir, "aws-lambda-rie")
	if err := goBuild(ctx, root, out, RIEPackage); err != nil {
		return "", fmt.Errorf("build the Lambda Runtime Interface Emulator: %w", err)
	}
	return out, nil
}

// BuildFunction builds the function whose code is in codeDir (template CodeUri, relative to root) for this
// machine (the emulator runs host binaries) as <dir>/<codeDir>/bootstrap, with the same tags and flags as the
// Lambda build.
func BuildFunction(ctx context.Context, root, codeDir, dir string) (string, error) {
	out := filepath.Join(dir, filepath.FromSlash(codeDir), "bootstrap")
	if err := goBuild(ctx, root, out, "./"+codeDir, "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w"); err != nil {
		return "", fmt.Errorf("build function %s: %w", codeDir, err)
	}
	return out, nil
}

// goBuild builds into a temporary name and renames it into place, so concurrent test binaries building the
// same function never see (or run) a half-written file.
func goBuild(ctx context.Context, root, out, pkg string, flags ...string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	args := append([]string{"build", "-o", tmp}, flags...)
	args = append(args, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		err = fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, stderr.String())
		// A failed build usually wrote nothing; anything it did write must not be left behind.
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		return err
	}
	return os.Rename(tmp, out)
}

// Options configure Start.
type Options struct {
	Name      string // logical id, for logs and routing
	RIE       string // path to aws-lambda-rie
	Bootstrap string // path to the function's bootstrap
	Env       map[string]string
	Timeout   time.Duration // the function's timeout (template Timeout)
	// Logs, when set, also receives the function's output as it is written.
	Logs io.Writer
}

// Function is one running emulator with its function.
type Function struct {
	Name    string
	Timeout time.Duration

	url    string
	cmd    *exec.Cmd
	done   chan struct{}
	logs   *lockedBuffer
	client *http.Client
	// The emulator serves one invocation at a time, like one Lambda execution environment.
	invokeMu sync.Mutex
}

// Start runs the bootstrap under the emulator on free loopback ports.
func Start(ctx context.Context, opts Options) (*Function, error) {
	apiPort, err := localstack.FreePort()
	if err != nil {
		return nil, err
	}
	riePort, err := localstack.FreePort()
	if err != nil {
		return nil, err
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	f := &Function{
		Name:    opts.Name,
		Timeout: opts.Timeout,
		url:     "http://127.0.0.1:" + strconv.Itoa(riePort) + "/2015-03-31/functions/function/invocations",
		done:    make(chan struct{}),
		logs:    &lockedBuffer{tee: opts.Logs},
		client:  &http.Client{Timeout: opts.Timeout + 10*time.Second},
	}
	cmd := exec.Command(opts.RIE,
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(apiPort),
		"--runtime-interface-emulator-address", "127.0.0.1:"+strconv.Itoa(riePort),
		"--log-level", "error",
		opts.Bootstrap)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.TempDir(),
		"TZ=UTC",
		"AWS_LAMBDA_FUNCTION_NAME=" + opts.Name,
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(int(opts.Timeout/time.Second)),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_LAMBDA_LOG_FORMAT=JSON",
	}
	for k, v := range opts.Env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	cmd.Stdout = f.logs
	cmd.Stderr = f.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start emulator for %s: %w", opts.Name, err)
	}
	f.cmd = cmd
	go func() { _ = cmd.Wait(); close(f.done) }()
	if err := f.waitReady(ctx, riePort); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}

func (f *Function) waitReady(ctx context.Context, port int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d := &netDialer{}
	for {
		if d.ok(port) {
			return nil
		}
		select {
		case <-f.done:
			return fmt.Errorf("emulator for %s exited: %s", f.Name, f.logs.String())
		case <-ctx.Done():
			return fmt.Errorf("emulator for %s not ready: %w", f.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ErrFunction is returned when the function itself failed (an error returned by the handler, a panic or a
// timeout); the payload is Lambda's error document.
type ErrFunction struct{ Payload []byte }

func (e *ErrFunction) Error() string { return "function error: " + string(e.Payload) }

// Invoke sends one event and returns the function's response payload. When ctx ends first, Invoke returns at
// once but the execution environment stays busy until the invocation really ends (the emulator enforces the
// function's timeout), as in Lambda: the next Invoke waits for it instead of hitting a busy emulator.
func (f *Function) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f.InvokeRequest(ctx, Request{Payload: payload})
}

// Request is one invocation as the Lambda service hands it to an execution environment.
type Request struct {
	// ID becomes the invocation's request id (the function's lambdacontext AwsRequestID); empty: the
	// emulator makes one.
	ID      string
	Payload []byte
	// ClientContext is the base64 X-Amz-Client-Context of the Invoke call, passed through.
	ClientContext string
}

// InvokeRequest is Invoke with a request id and client context chosen by the caller.
func (f *Function) InvokeRequest(ctx context.Context, r Request) ([]byte, error) {
	f.invokeMu.Lock()
	type result struct {
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer f.invokeMu.Unlock()
		body, err := f.invoke(r)
		done <- result{body, err}
	}()
	select {
	case r := <-done:
		return r.body, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("invoke %s: %w", f.Name, ctx.Err())
	}
}

func (f *Function) invoke(r Request) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, f.url, bytes.NewReader(r.Payload))
	if err != nil {
		return nil, err
	}
	if r.ID != "" {
		req.Header.Set("X-Amzn-RequestId", r.ID)
	}
	if r.ClientContext != "" {
		req.Header.Set("X-Amz-Client-Context", r.ClientContext)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", f.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: read response: %w", f.Name, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" || isErrorDocument(body) {
		return nil, &ErrFunction{Payload: body}
	}
	return body, nil
}

// The emulator reports handler errors with status 200 and Lambda's error document as the body.
func isErrorDocument(b []byte) bool {
	t := bytes.TrimSpace(b)
	return bytes.HasPrefix(t, []byte(`{"errorMessage"`)) || bytes.HasPrefix(t, []byte(`{"errorType"`))
}

// Exited reports whether the emulator process has ended (killed, or crashed).
func (f *Function) Exited() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// Logs returns everything the function (and the emulator) wrote so far.
func (f *Function) Logs() string { return f.logs.String() }

// PID is the emulator's process id; the function's bootstrap runs as its child. Benchmarks read the bootstrap's
// memory figures (VmHWM) from /proc through it.
func (f *Function) PID() int {
	if f.cmd == nil || f.cmd.Process == nil {
		return 0
	}
	return f.cmd.Process.Pid
}

// Kill ends the emulator and the function at once with SIGKILL, as a crashed or timed-out execution environment
// ends: no deferred code, no flushed buffers. Tests use it to crash a function mid-invocation.
func (f *Function) Kill() {
	if f.cmd == nil || f.cmd.Process == nil {
		return
	}
	// The emulator runs the bootstrap in a process group of its own: kill the emulator's descendants by pid
	// first (the bootstrap must die before it can finish its work), then the emulator's group.
	for _, pid := range descendants(f.cmd.Process.Pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
	<-f.done
}

// descendants lists the pids below root, read from /proc (Linux); elsewhere none.
func descendants(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces) start after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// Close stops the emulator and the function.
func (f *Function) Close() error {
	if f.cmd == nil || f.cmd.Process == nil {
		return nil
	}
	_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		<-f.done
	}
	return nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	tee io.Writer
}

// maxLogs bounds the output kept in memory for Logs (a long `make dev` session would otherwise grow without
// end); tests read far less than this.
const maxLogs = 16 << 20

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tee != nil {
		_, _ = b.tee.Write(p)
	}
	if b.buf.Len()+len(p) > maxLogs {
		// Keep the newer half.
		keep := b.buf.Bytes()[b.buf.Len()/2:]
		b.buf = *bytes.NewBuffer(append([]byte(nil), keep...))
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
