package stacktest

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"jiraexport/infra/devapi"
	"jiraexport/infra/lambdarun"
	"jiraexport/infra/localstack"
	"jiraexport/infra/samtemplate"
)

// builds caches the emulator and each function's bootstrap for the life of the test binary.
type builds struct {
	mu     sync.Mutex
	dir    string
	rie    string
	byCode map[string]string
}

var bins builds

// emulator returns the emulator's path, building it once.
func (b *builds) emulator(tb testing.TB, root string) string {
	tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init(tb, root)
	return b.rie
}

func (b *builds) init(tb testing.TB, root string) {
	tb.Helper()
	if b.dir == "" {
		// One folder in the repository's build directory, reused by every test binary and run (each build
		// replaces its output atomically), so nothing piles up in the system's temp directory.
		b.dir = filepath.Join(root, ".build", "test")
		b.byCode = map[string]string{}
	}
	if b.rie == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		p, err := lambdarun.BuildRIE(ctx, root, b.dir)
		if err != nil {
			tb.Fatal(err)
		}
		b.rie = p
	}
}

func (b *builds) get(tb testing.TB, root, codeDir string) (rie, bootstrap string) {
	tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init(tb, root)
	if p, ok := b.byCode[codeDir]; ok {
		return b.rie, p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := lambdarun.BuildFunction(ctx, root, codeDir, b.dir)
	if err != nil {
		tb.Fatal(err)
	}
	b.byCode[codeDir] = p
	return b.rie, p
}

// StartFunction builds the template function logicalID for this machine and runs its real bootstrap under the
// Lambda Runtime Interface Emulator, with the environment template.yaml gives it resolved against this test's
// resources (plus overrides). The function stops when the test ends.
func (e *Env) StartFunction(tb testing.TB, logicalID string, overrides map[string]string) *lambdarun.Function {
	tb.Helper()
	return StartTemplateFunction(tb, e.Tmpl, e.Root, logicalID, e.FunctionEnv(tb, logicalID, overrides))
}

// StartTemplateFunction runs a function of any template (for tests with a template of their own) with env.
func StartTemplateFunction(tb testing.TB, tmpl *samtemplate.Template, root, logicalID string, env map[string]string) *lambdarun.Function {
	tb.Helper()
	SkipIfShort(tb, "the Lambda Runtime Interface Emulator and a built bootstrap")
	fns, err := tmpl.Functions()
	if err != nil {
		tb.Fatal(err)
	}
	for _, fn := range fns {
		if fn.LogicalID != logicalID {
			continue
		}
		rie, bootstrap := bins.get(tb, root, fn.Dir)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		f, err := lambdarun.Start(ctx, lambdarun.Options{
			Name: logicalID, RIE: rie, Bootstrap: bootstrap, Env: env,
			Timeout: time.Duration(fn.Timeout) * time.Second, Logs: logTee(),
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			if err := f.Close(); err != nil {
				tb.Errorf("stop function %s: %v", logicalID, err)
			}
		})
		return f
	}
	tb.Fatalf("function %s is not in the template", logicalID)
	return nil
}

func logTee() *os.File {
	if os.Getenv("FUNCTION_LOGS") != "" {
		return os.Stderr
	}
	return nil
}

// ServeAPI serves the template's HttpApi routes of the given functions on 127.0.0.1 and returns the base URL.
func (e *Env) ServeAPI(tb testing.TB, fns ...*lambdarun.Function) string {
	tb.Helper()
	return ServeTemplateAPI(tb, e.Tmpl, fns...)
}

// ServeTemplateAPI is ServeAPI for any template.
func ServeTemplateAPI(tb testing.TB, tmpl *samtemplate.Template, fns ...*lambdarun.Function) string {
	tb.Helper()
	inv := map[string]devapi.Invoker{}
	for _, f := range fns {
		inv[f.Name] = f
	}
	return serveRouter(tb, tmpl, inv)
}

func serveRouter(tb testing.TB, tmpl *samtemplate.Template, inv map[string]devapi.Invoker) string {
	tb.Helper()
	return serveRouterOn(tb, tmpl, inv, nil)
}

func serveRouterOn(tb testing.TB, tmpl *samtemplate.Template, inv map[string]devapi.Invoker, l net.Listener) string {
	tb.Helper()
	router, err := devapi.New(tmpl, inv, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if l == nil {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
	}
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// Root returns the repository root (for tests that need files such as template.yaml).
func Root(tb testing.TB) string {
	tb.Helper()
	root, err := localstack.FindRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return root
}
