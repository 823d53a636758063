// Command demo shows the product at work in one command (`make demo`): it starts `dev` (the local AWS stack,
// the Atlassian simulator, every function's real bootstrap behind the HTTP API and the local Lambda endpoint),
// connects through the simulator's consent page as a user would, creates a connector, starts a run through the
// API, follows it until it ends, prints the run's summary, the S3 tree of the connection and one issue's
// document, then stops everything and exits 0 (1 if the run did not succeed).
//
// It drives the product only through its public surfaces (the HTTP API, the consent page, the S3 bucket), so it
// shows exactly what a user of `make dev` would see.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"jiraexport/infra/localstack"
	"jiraexport/shared/awsconfig"
)

func main() {
	dev := flag.String("dev", "", "the dev command's binary (default: built from infra/cmd/dev)")
	timeout := flag.Duration("timeout", 5*time.Minute, "how long the run may take")
	until := flag.String("until", "finished", "stop once the run is `started` (queued or running) or `finished`")
	flag.Parse()
	if *until != "started" && *until != "finished" {
		fmt.Fprintln(os.Stderr, "demo: -until must be started or finished")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dev, *timeout, *until == "finished"); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, devBin string, timeout time.Duration, waitFinish bool) error {
	root, err := localstack.FindRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "jiraexport-demo-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }() // a leftover temp folder is harmless; the demo's outcome is what matters
	if devBin == "" {
		devBin = filepath.Join(dir, "dev")
		step("building the dev command")
		build := exec.CommandContext(ctx, "go", "build", "-o", devBin, "./infra/cmd/dev")
		build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build dev: %w", err)
		}
	}

	step("starting the stack, the simulator and the functions (make dev)")
	d, err := startDev(ctx, root, devBin, filepath.Join(dir, "dev.env"))
	if err != nil {
		return err
	}
	defer d.stop()
	env := d.env

	c := &client{http: &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	step("connecting through the simulator's consent page")
	key, err := c.connect(ctx, env["API_URL"], env["ATLASSIAN_SIM_URL"])
	if err != nil {
		return err
	}
	c.api, c.key = env["API_URL"], key

	var conn struct {
		ID    string `json:"id"`
		Sites []struct {
			CloudID string `json:"id"`
			Name    string `json:"name"`
		} `json:"sites"`
	}
	if err := c.call(ctx, "GET", "/v1/connection", nil, http.StatusOK, &conn); err != nil {
		return err
	}
	if len(conn.Sites) == 0 {
		return errors.New("the connection has no site")
	}
	project, err := c.firstProject(ctx, env["ATLASSIAN_SIM_URL"], conn.Sites[0].CloudID)
	if err != nil {
		return err
	}
	fmt.Printf("  connection %s, site %s, project %s\n", conn.ID, conn.Sites[0].Name, project)

	step("creating a connector (manual runs, JSON and Markdown, comments)")
	var connector struct {
		ID string `json:"id"`
	}
	body := map[string]any{"name": "demo", "siteId": conn.Sites[0].CloudID, "jql": "project = " + project,
		"include": map[string]any{"comments": true}, "formats": []string{"json", "markdown"}}
	if err := c.call(ctx, "POST", "/v1/connectors", body, http.StatusCreated, &connector); err != nil {
		return err
	}

	step("starting a run")
	var r runView
	if err := c.call(ctx, "POST", "/v1/connectors/"+connector.ID+"/runs", nil, http.StatusCreated, &r); err != nil {
		return err
	}
	fmt.Printf("  run %s %s\n", r.ID, r.Status)
	if !waitFinish {
		return nil
	}
	deadline := time.Now().Add(timeout)
	last := ""
	for !r.final() {
		if time.Now().After(deadline) {
			return fmt.Errorf("run %s still %s after %s (is the export function built and its Lambda endpoint up?)", r.ID, r.Status, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		if err := c.call(ctx, "GET", "/v1/connectors/"+connector.ID+"/runs/"+r.ID, nil, http.StatusOK, &r); err != nil {
			return err
		}
		if line := fmt.Sprintf("%s %s %d/%d issues", r.Status, r.Phase, r.Counters["issuesDone"], r.Counters["approxTotal"]); line != last {
			fmt.Println("  " + line)
			last = line
		}
	}

	step("the run's summary")
	summary, _ := json.MarshalIndent(r.raw, "  ", "  ")
	fmt.Println("  " + string(summary))

	step("the S3 tree of the connection")
	s3c, err := s3Client(ctx, env)
	if err != nil {
		return err
	}
	keys, err := listTree(ctx, s3c, env["BUCKET_NAME"], conn.ID+"/")
	if err != nil {
		return err
	}
	for _, k := range keys {
		fmt.Printf("  %s (%d bytes)\n", k.key, k.size)
	}
	for _, k := range keys {
		if strings.Contains(k.key, "/issues/") && strings.HasSuffix(k.key, ".json") {
			step("one issue's document: " + k.key)
			doc, err := getObject(ctx, s3c, env["BUCKET_NAME"], k.key)
			if err != nil {
				return err
			}
			var pretty bytes.Buffer
			if json.Indent(&pretty, doc, "  ", "  ") != nil {
				pretty.Write(doc)
			}
			fmt.Println("  " + pretty.String())
			break
		}
	}
	if r.Status != "succeeded" {
		return fmt.Errorf("run %s ended %s", r.ID, r.Status)
	}
	step("done; stopping everything")
	return nil
}

func step(s string) { fmt.Printf("\n== %s\n", s) }

// devProcess is the running dev command.
type devProcess struct {
	cmd  *exec.Cmd
	done chan error
	env  map[string]string
}

// startDev runs dev with -env-file and waits until it has written the file (it does once everything is up).
func startDev(ctx context.Context, root, bin, envFile string) (*devProcess, error) {
	d := &devProcess{done: make(chan error, 1)}
	d.cmd = exec.Command(bin, "-env-file", envFile)
	d.cmd.Dir, d.cmd.Stdout, d.cmd.Stderr = root, io.Discard, devLog()
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.done <- d.cmd.Wait() }()
	wait := time.NewTimer(5 * time.Minute)
	defer wait.Stop()
	for {
		select {
		case err := <-d.done:
			return nil, fmt.Errorf("dev exited early: %w", err)
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-wait.C:
			d.stop()
			return nil, errors.New("dev did not come up within 5 minutes")
		case <-time.After(250 * time.Millisecond):
		}
		if env, err := localstack.ReadEnvFile(envFile); err == nil && env["API_URL"] != "" {
			d.env = env
			return d, nil
		}
	}
}

// devLog is where dev's own log goes: stderr with DEMO_VERBOSE set, nowhere otherwise.
func devLog() io.Writer {
	if os.Getenv("DEMO_VERBOSE") != "" {
		return os.Stderr
	}
	return io.Discard
}

// stop interrupts dev as Ctrl-C does and waits for it to stop everything it started.
func (d *devProcess) stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	var exit error
	select {
	case exit = <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		exit = <-d.done
	}
	_ = exit // the exit status of a process we asked to stop says nothing the demo needs
}

type client struct {
	http     *http.Client
	api, key string
}

var (
	reTx  = regexp.MustCompile(`name="tx" value="([^"]+)"`)
	reKey = regexp.MustCompile(`<pre class="key" id="api-key">([^<]+)</pre>`)
)

// connect runs the OAuth flow as a browser would: the API's authorize route (which sets the state cookie and
// redirects to Atlassian), the consent page (accepted as its first user), and the callback, whose page shows
// the new API key.
func (c *client) connect(ctx context.Context, api, sim string) (string, error) {
	resp, err := c.do(ctx, "GET", api+"/oauth/authorize", nil, nil)
	if err != nil {
		return "", err
	}
	if resp.status != http.StatusFound {
		return "", fmt.Errorf("GET /oauth/authorize = %d, want 302", resp.status)
	}
	var cookies []string
	for _, sc := range resp.header.Values("Set-Cookie") {
		cookies = append(cookies, strings.SplitN(sc, ";", 2)[0])
	}
	page, err := c.do(ctx, "GET", resp.header.Get("Location"), nil, nil)
	if err != nil {
		return "", err
	}
	m := reTx.FindSubmatch(page.body)
	if m == nil {
		return "", fmt.Errorf("the consent page (%d) has no form", page.status)
	}
	form := url.Values{"tx": {string(m[1])}, "decision": {"accept"}}
	consent, err := c.do(ctx, "POST", sim+"/authorize", strings.NewReader(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if err != nil {
		return "", err
	}
	if consent.status != http.StatusFound {
		return "", fmt.Errorf("consent = %d, want a redirect to the callback", consent.status)
	}
	cb, err := c.do(ctx, "GET", consent.header.Get("Location"), nil, map[string]string{"Cookie": strings.Join(cookies, "; ")})
	if err != nil {
		return "", err
	}
	k := reKey.FindSubmatch(cb.body)
	if cb.status != http.StatusOK || k == nil {
		return "", fmt.Errorf("the callback answered %d without an API key", cb.status)
	}
	return html.UnescapeString(string(k[1])), nil
}

// firstProject is the key of a project of the site with issues, from the simulator's admin API.
func (c *client) firstProject(ctx context.Context, sim, cloudID string) (string, error) {
	resp, err := c.do(ctx, "GET", sim+"/_sim/sites", nil, nil)
	if err != nil {
		return "", err
	}
	var sites []struct {
		CloudID  string
		Projects []struct {
			Key    string
			Issues int
		}
	}
	if err := json.Unmarshal(resp.body, &sites); err != nil {
		return "", fmt.Errorf("simulator sites: %w", err)
	}
	for _, s := range sites {
		for _, p := range s.Projects {
			if s.CloudID == cloudID && p.Issues > 0 {
				return p.Key, nil
			}
		}
	}
	return "", errors.New("the site has no project with issues")
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (c *client) do(ctx context.Context, method, u string, body io.Reader, header map[string]string) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// call is one request to the connectors API with the key; out receives the JSON body.
func (c *client) call(ctx context.Context, method, path string, in any, want int, out any) error {
	var body io.Reader
	h := map[string]string{"Authorization": "Bearer " + c.key}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, h["Content-Type"] = bytes.NewReader(b), "application/json"
	}
	resp, err := c.do(ctx, method, c.api+path, body, h)
	if err != nil {
		return err
	}
	if resp.status != want {
		return fmt.Errorf("%s %s = %d, want %d: %s", method, path, resp.status, want, resp.body)
	}
	if rv, ok := out.(*runView); ok {
		rv.raw = json.RawMessage(append([]byte{}, resp.body...))
	}
	return json.Unmarshal(resp.body, out)
}

type runView struct {
	ID       string           `json:"id"`
	Status   string           `json:"status"`
	Phase    string           `json:"phase"`
	Counters map[string]int64 `json:"counters"`
	raw      json.RawMessage
}

func (r *runView) final() bool {
	return r.Status == "succeeded" || r.Status == "failed" || r.Status == "cancelled"
}

func s3Client(ctx context.Context, env map[string]string) (*s3.Client, error) {
	for k, v := range env {
		if strings.HasPrefix(k, "AWS_") {
			if err := os.Setenv(k, v); err != nil {
				return nil, fmt.Errorf("set %s: %w", k, err)
			}
		}
	}
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(cfg, awsconfig.S3PathStyle(true)), nil
}

type object struct {
	key  string
	size int64
}

func listTree(ctx context.Context, c *s3.Client, bucket, prefix string) ([]object, error) {
	var out []object
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, object{key: aws.ToString(o.Key), size: aws.ToInt64(o.Size)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, nil
}

func getObject(ctx context.Context, c *s3.Client, bucket, key string) ([]byte, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	return io.ReadAll(io.LimitReader(out.Body, 1<<20))
}
