// Package lambdaservice serves the Lambda Invoke API (POST /2015-03-31/functions/{name}/invocations) on
// 127.0.0.1 for the functions of template.yaml, so that the real AWS SDK's Lambda client and the AWS CLI reach
// them through AWS_ENDPOINT_URL_LAMBDA exactly as they reach Lambda.
//
// Each function runs its real bootstrap under the Lambda Runtime Interface Emulator (infra/lambdarun), one
// invocation per execution environment; environments start on demand up to the function's concurrency limit
// and are reused, as Lambda does. The template's Timeout is enforced by killing the environment. Event
// invocations answer 202 at once and are delivered later with Lambda's asynchronous semantics (retries with
// delays, event age limit, on-success/on-failure destinations and dead-letter queue). What Lambda does is cited
// from its documentation where it is chosen:
//   - https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html
//   - https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html (and -error-handling, -retain-records)
//   - https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html
package lambdaservice

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"jiraexport/infra/lambdarun"
	"jiraexport/infra/localstack"
)

// Payload limits of Invoke: 6 MB each way for RequestResponse, 1 MB for Event (raised from 256 KB in 2025).
const (
	maxSyncPayload  = 6 << 20
	maxAsyncPayload = 1 << 20
	// Lambda returns the last 4 KB of the execution log in X-Amz-Log-Result.
	logTailBytes = 4 << 10
)

// DefaultConcurrency bounds the environments of a function without ReservedConcurrentExecutions. Lambda's
// account default is 1,000; a laptop runs far fewer bootstraps at once.
const DefaultConcurrency = 10

// DefaultRetryDelays are the waits before Lambda's two retries of a failed asynchronous invocation ("at least
// one minute" before the first retry, "at least two minutes" before the second).
var DefaultRetryDelays = []time.Duration{time.Minute, 2 * time.Minute}

// QueueSender is what the service needs from SQS to deliver destination records and dead letters.
type QueueSender interface {
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, opts ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

var _ QueueSender = (*sqs.Client)(nil)

// Options configure Start.
type Options struct {
	// Addr is the listen address, loopback only; default 127.0.0.1:0.
	Addr string
	// RIE is the path of aws-lambda-rie.
	RIE       string
	Functions []Function
	// DefaultConcurrency applies to functions without ReservedConcurrentExecutions; default DefaultConcurrency.
	DefaultConcurrency int
	// RetryDelays are the waits before each retry of a failed asynchronous invocation; default
	// DefaultRetryDelays (tests shorten them).
	RetryDelays []time.Duration
	// SQS delivers destination records and dead letters to queues; required when a function declares one.
	SQS QueueSender
	// Logs receives the functions' output (nil: kept only for log tails).
	Logs io.Writer
	// Log receives the service's own log lines (ids and counts only).
	Log *slog.Logger
}

// Service is a running local Lambda endpoint.
type Service struct {
	url    string
	srv    *http.Server
	opts   Options
	log    *slog.Logger
	byName map[string]*function
	fns    []*function

	ctx     context.Context // ends at Close: async deliveries stop
	cancel  context.CancelFunc
	pending atomic.Int64

	mu     sync.Mutex // guards closed against async.Add
	closed bool
	async  sync.WaitGroup
}

// Start listens on opts.Addr and serves the functions. Environments start on the first invocation.
// Every function's environment gets AWS_ENDPOINT_URL_LAMBDA pointing at this service (unless it sets one), so
// functions can invoke each other as they do in AWS.
func Start(ctx context.Context, opts Options) (*Service, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if err := loopbackOnly(opts.Addr); err != nil {
		return nil, err
	}
	if opts.RIE == "" {
		return nil, errors.New("lambdaservice: the emulator's path (RIE) is required")
	}
	if opts.DefaultConcurrency <= 0 {
		opts.DefaultConcurrency = DefaultConcurrency
	}
	if len(opts.RetryDelays) == 0 {
		opts.RetryDelays = DefaultRetryDelays
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	s := &Service{url: "http://" + ln.Addr().String(), opts: opts, log: opts.Log, byName: map[string]*function{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, f := range opts.Functions {
		if f.Bootstrap == "" {
			return nil, errors.Join(fmt.Errorf("lambdaservice: function %s has no bootstrap", f.LogicalID), ln.Close())
		}
		if (isSQS(f.Async.OnSuccess) || isSQS(f.Async.OnFailure) || isSQS(f.Async.DeadLetter)) && opts.SQS == nil {
			return nil, errors.Join(fmt.Errorf("lambdaservice: function %s sends to SQS but no SQS client was given", f.LogicalID), ln.Close())
		}
		env := map[string]string{"AWS_ENDPOINT_URL_LAMBDA": s.url}
		for k, v := range f.Env {
			env[k] = v
		}
		f.Env = env
		limit := opts.DefaultConcurrency
		if f.ReservedConcurrency != nil {
			limit = *f.ReservedConcurrency
		}
		fn := &function{Function: f, slots: make(chan struct{}, max(limit, 0)), all: map[*environment]struct{}{}}
		for _, name := range []string{f.LogicalID, f.Name} {
			if other, ok := s.byName[name]; ok && other != fn {
				return nil, errors.Join(fmt.Errorf("lambdaservice: %s names both %s and %s", name, other.LogicalID, f.LogicalID), ln.Close())
			}
			s.byName[name] = fn
		}
		s.fns = append(s.fns, fn)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", s.handleInvoke)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "UnknownOperationException", "Unknown operation "+r.Method+" "+r.URL.Path)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the endpoint (AWS_ENDPOINT_URL_LAMBDA).
func (s *Service) URL() string { return s.url }

// EnvironmentsStarted reports how many execution environments the function (by any of its names) has
// started so far, replacements after a timeout or crash included.
func (s *Service) EnvironmentsStarted(name string) int {
	f := s.byName[name]
	if f == nil {
		return 0
	}
	return int(f.started.Load())
}

// AsyncPending reports the asynchronous invocations accepted and not yet finished (delivered, or sent to their
// failure destination).
func (s *Service) AsyncPending() int { return int(s.pending.Load()) }

// Close stops accepting invocations, abandons queued asynchronous events (as a process restart would) and
// stops every environment.
func (s *Service) Close() error {
	_ = s.srv.Close()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	var errs []error
	for _, f := range s.fns {
		errs = append(errs, f.closeAll())
	}
	s.async.Wait()
	return errors.Join(errs...)
}

// function is one served function with its pool of execution environments.
type function struct {
	Function
	// slots holds one token per busy environment: its capacity is the concurrency limit.
	slots   chan struct{}
	started atomic.Int64

	mu     sync.Mutex
	idle   []*environment
	all    map[*environment]struct{}
	closed bool
}

// environment is one execution environment: an emulator with the bootstrap, and the capture of its output
// for the current invocation's log tail.
type environment struct {
	fn  *lambdarun.Function
	out *capture
}

var errThrottled = errors.New("concurrency limit reached")

// acquire takes a concurrency slot and an environment (an idle one, or a new one). With wait, it queues for
// a slot until ctx ends, as Lambda's async queue does; without, a full function throttles, as a synchronous
// invocation does.
func (s *Service) acquire(ctx context.Context, f *function, wait bool) (*environment, error) {
	if cap(f.slots) == 0 {
		return nil, errThrottled
	}
	if wait {
		select {
		case f.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	} else {
		select {
		case f.slots <- struct{}{}:
		default:
			return nil, errThrottled
		}
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		<-f.slots
		return nil, errors.New("service closed")
	}
	for len(f.idle) > 0 {
		env := f.idle[len(f.idle)-1]
		f.idle = f.idle[:len(f.idle)-1]
		if env.fn.Exited() {
			delete(f.all, env)
			continue
		}
		f.mu.Unlock()
		return env, nil
	}
	f.mu.Unlock()
	env, err := s.startEnvironment(f)
	if err != nil {
		<-f.slots
		return nil, err
	}
	return env, nil
}

func (s *Service) startEnvironment(f *function) (*environment, error) {
	out := &capture{tee: s.opts.Logs}
	env := map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": fmt.Sprint(f.MemorySize)}
	for k, v := range f.Env {
		env[k] = v
	}
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	lf, err := lambdarun.Start(ctx, lambdarun.Options{
		Name: f.Name, RIE: s.opts.RIE, Bootstrap: f.Bootstrap, Env: env, Timeout: f.Timeout, Logs: out,
	})
	if err != nil {
		return nil, fmt.Errorf("start an environment for %s: %w", f.LogicalID, err)
	}
	e := &environment{fn: lf, out: out}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errors.Join(errors.New("service closed"), lf.Close())
	}
	f.all[e] = struct{}{}
	f.started.Add(1)
	s.log.Info("environment started", "function", f.LogicalID, "environments", len(f.all))
	return e, nil
}

// release returns the slot, and the environment to the idle pool or, when it is no longer fit (timed out,
// crashed), stops it: the next invocation gets a fresh one. The error is that of stopping the environment;
// the slot is returned either way.
func (f *function) release(e *environment, healthy bool) error {
	defer func() { <-f.slots }()
	f.mu.Lock()
	if healthy && !f.closed && !e.fn.Exited() {
		f.idle = append(f.idle, e)
		f.mu.Unlock()
		return nil
	}
	delete(f.all, e)
	f.mu.Unlock()
	return e.fn.Close()
}

// KillEnvironments ends every execution environment of the function (by any of its names) with SIGKILL, as
// a crash would: invocations in progress fail (an Event invocation is then retried, as Lambda retries after a
// runtime crash) and the next invocation starts a fresh environment. It returns how many were killed.
func (s *Service) KillEnvironments(name string) int {
	f := s.byName[name]
	if f == nil {
		return 0
	}
	f.mu.Lock()
	envs := make([]*environment, 0, len(f.all))
	for e := range f.all {
		envs = append(envs, e)
		delete(f.all, e)
	}
	f.idle = nil
	f.mu.Unlock()
	for _, e := range envs {
		e.fn.Kill()
	}
	return len(envs)
}

func (f *function) closeAll() error {
	f.mu.Lock()
	f.closed = true
	envs := make([]*environment, 0, len(f.all))
	for e := range f.all {
		envs = append(envs, e)
	}
	f.all = map[*environment]struct{}{}
	f.idle = nil
	f.mu.Unlock()
	var errs []error
	for _, e := range envs {
		errs = append(errs, e.fn.Close())
	}
	return errors.Join(errs...)
}

// result is one finished invocation.
type result struct {
	payload []byte
	// functionError is Lambda's X-Amz-Function-Error ("Unhandled"), empty on success.
	functionError string
	logTail       []byte
}

// timeoutGrace is how long past the function's timeout the service waits for the emulator's own timeout
// answer before it kills the environment itself.
const timeoutGrace = 2 * time.Second

// run performs one invocation in an environment it acquires (see acquire for wait).
func (s *Service) run(ctx context.Context, f *function, id string, payload []byte, clientContext string, wait bool) (result, error) {
	env, err := s.acquire(ctx, f, wait)
	if err != nil {
		return result{}, err
	}
	env.out.begin()
	// The invocation runs to its end or its timeout even when the caller goes away, as in Lambda.
	ictx, cancel := context.WithTimeout(context.Background(), f.Timeout+timeoutGrace)
	defer cancel()
	out, err := env.fn.InvokeRequest(ictx, lambdarun.Request{ID: id, Payload: payload, ClientContext: clientContext})
	res := result{payload: out}
	healthy := true
	var fe *lambdarun.ErrFunction
	switch {
	case err == nil && bytes.HasPrefix(out, []byte("Task timed out after")), errors.Is(err, context.DeadlineExceeded):
		// Lambda stops the invocation at its timeout and the environment does not survive it.
		healthy = false
		res.functionError = "Unhandled"
		res.payload = errorDocument("Sandbox.Timedout",
			fmt.Sprintf("RequestId: %s Error: Task timed out after %.2f seconds", id, f.Timeout.Seconds()))
		s.log.Warn("invocation timed out", "function", f.LogicalID, "requestId", id)
	case errors.As(err, &fe):
		res.functionError = "Unhandled"
		res.payload = fe.Payload
		var doc struct {
			ErrorType string `json:"errorType"`
		}
		_ = json.Unmarshal(fe.Payload, &doc)
		healthy = !strings.HasPrefix(doc.ErrorType, "Runtime.")
	case err != nil:
		// The emulator itself went away (the bootstrap crashed it, or it was killed).
		healthy = false
		res.functionError = "Unhandled"
		res.payload = errorDocument("Runtime.ExitError", fmt.Sprintf("RequestId: %s Error: Runtime exited without providing a reason", id))
	case len(out) > maxSyncPayload:
		res.functionError = "Unhandled"
		res.payload = errorDocument("Function.ResponseSizeTooLarge",
			fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", maxSyncPayload))
	}
	if healthy {
		// The emulator prints REPORT just before it answers; give the pipe a moment to deliver it.
		env.out.waitFor([]byte("REPORT RequestId: "+id), 500*time.Millisecond)
	}
	res.logTail = env.out.end()
	if err := f.release(env, healthy); err != nil {
		// The invocation's answer stands; an environment that did not stop is the service's problem, not the caller's.
		s.log.Warn("stopping an environment failed", "function", f.LogicalID, "err", err)
	}
	return res, nil
}

func errorDocument(typ, msg string) []byte {
	b, _ := json.Marshal(map[string]string{"errorType": typ, "errorMessage": msg})
	return b
}

func (s *Service) handleInvoke(w http.ResponseWriter, r *http.Request) {
	// Lambda refuses unsigned requests. The signature is not checked (the local stack has one fixed key), but
	// its presence matters: a web page cannot add an Authorization header to a cross-site request without a
	// CORS preflight, which this endpoint never grants, so no page open in a browser can invoke a function
	// (the purge, say) on a developer's machine.
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeErrorDoc(w, http.StatusForbidden, "MissingAuthenticationTokenException", map[string]string{"message": "Missing Authentication Token"})
		return
	}
	f, qualifier, ok := s.lookup(r.PathValue("name"))
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		qualifier = q
	}
	if !ok || (qualifier != "" && qualifier != "$LATEST") {
		arn := localstack.FunctionARN(functionName(r.PathValue("name")))
		if qualifier != "" {
			arn += ":" + qualifier
		}
		writeError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+arn)
		return
	}
	typ := r.Header.Get("X-Amz-Invocation-Type")
	if typ == "" {
		typ = "RequestResponse"
	}
	limit := maxSyncPayload
	if typ == "Event" {
		limit = maxAsyncPayload
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestContentException", "Could not read the request body")
		return
	}
	if len(body) > limit {
		writeError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException",
			fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", limit))
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if !json.Valid(body) {
		writeError(w, http.StatusBadRequest, "InvalidRequestContentException",
			"Could not parse request body into json: Could not parse payload into json")
		return
	}
	clientContext := r.Header.Get("X-Amz-Client-Context")
	if clientContext != "" {
		if _, err := base64.StdEncoding.DecodeString(clientContext); err != nil {
			writeError(w, http.StatusBadRequest, "InvalidRequestContentException", "Client context must be base64")
			return
		}
	}
	id := newRequestID()
	w.Header().Set("X-Amzn-RequestId", id)
	switch typ {
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
	case "Event":
		s.enqueue(f, id, body, time.Now())
		w.WriteHeader(http.StatusAccepted)
	case "RequestResponse":
		s.invokeSync(w, r, f, id, body, clientContext)
	default:
		writeError(w, http.StatusBadRequest, "InvalidParameterValueException",
			"1 validation error detected: Value '"+typ+"' at 'invocationType' failed to satisfy constraint")
	}
}

func (s *Service) invokeSync(w http.ResponseWriter, r *http.Request, f *function, id string, body []byte, clientContext string) {
	res, err := s.run(r.Context(), f, id, body, clientContext, false)
	if errors.Is(err, errThrottled) {
		w.Header().Set("Retry-After", "1")
		writeErrorDoc(w, http.StatusTooManyRequests, "TooManyRequestsException", map[string]string{
			"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User", "message": "Rate Exceeded.",
		})
		return
	}
	if err != nil {
		s.log.Error("invocation failed", "function", f.LogicalID, "requestId", id, "err", err)
		writeError(w, http.StatusInternalServerError, "ServiceException", "The service could not run the function")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	if res.functionError != "" {
		w.Header().Set("X-Amz-Function-Error", res.functionError)
	}
	if strings.EqualFold(r.Header.Get("X-Amz-Log-Type"), "Tail") {
		w.Header().Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString(res.logTail))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.payload)
}

// lookup finds a function by name, partial ARN (123456789012:function:Name) or ARN, each optionally with a
// qualifier, as Invoke's FunctionName accepts them.
func (s *Service) lookup(raw string) (*function, string, bool) {
	name, qualifier := functionName(raw), ""
	parts := strings.Split(raw, ":")
	switch {
	case strings.HasPrefix(raw, "arn:") && len(parts) >= 7 && parts[5] == "function":
		if len(parts) == 8 {
			qualifier = parts[7]
		}
	case len(parts) >= 3 && parts[1] == "function":
		if len(parts) == 4 {
			qualifier = parts[3]
		}
	case len(parts) == 2:
		qualifier = parts[1]
	}
	f, ok := s.byName[name]
	return f, qualifier, ok
}

func functionName(raw string) string {
	parts := strings.Split(raw, ":")
	switch {
	case strings.HasPrefix(raw, "arn:") && len(parts) >= 7 && parts[5] == "function":
		return parts[6]
	case len(parts) >= 3 && parts[1] == "function":
		return parts[2]
	default:
		return parts[0]
	}
}

// writeError answers as Lambda's REST-JSON protocol does: the error code in X-Amzn-ErrorType, the message in
// the body.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeErrorDoc(w, status, code, map[string]string{"Type": "User", "message": msg})
}

func writeErrorDoc(w http.ResponseWriter, status int, code string, doc map[string]string) {
	if status >= 500 {
		doc["Type"] = "Service"
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(doc)
}

func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: only loopback addresses are allowed", addr)
	}
	return nil
}

// capture keeps the last logTailBytes an environment wrote during the current invocation, and passes
// everything on to tee.
type capture struct {
	mu     sync.Mutex
	grew   *sync.Cond // signalled when buf grows
	tee    io.Writer
	active bool
	buf    []byte
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tee != nil {
		_, _ = c.tee.Write(p)
	}
	if c.active {
		c.buf = append(c.buf, p...)
		if len(c.buf) > 4*logTailBytes {
			c.buf = append([]byte(nil), c.buf[len(c.buf)-logTailBytes:]...)
		}
		c.grew.Broadcast()
	}
	return len(p), nil
}

func (c *capture) begin() {
	c.mu.Lock()
	if c.grew == nil {
		c.grew = sync.NewCond(&c.mu)
	}
	c.active, c.buf = true, nil
	c.mu.Unlock()
}

// waitFor waits until the invocation's output holds marker, at most limit.
func (c *capture) waitFor(marker []byte, limit time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	expired := false
	t := time.AfterFunc(limit, func() {
		c.mu.Lock()
		expired = true
		c.grew.Broadcast()
		c.mu.Unlock()
	})
	defer t.Stop()
	for !expired && !bytes.Contains(c.buf, marker) {
		c.grew.Wait()
	}
}

func (c *capture) end() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active = false
	tail := c.buf
	if len(tail) > logTailBytes {
		tail = tail[len(tail)-logTailBytes:]
	}
	c.buf = nil
	return append([]byte(nil), tail...)
}

// Handle invokes one function synchronously from inside this process, sharing its environments and
// concurrency limit with the Invoke API: the local HTTP API (infra/devapi) calls functions through it, as API
// Gateway calls Lambda.
type Handle struct {
	s *Service
	f *function
}

// Function returns a handle on the function called name (logical id or name), or nil.
func (s *Service) Function(name string) *Handle {
	f := s.byName[name]
	if f == nil {
		return nil
	}
	return &Handle{s: s, f: f}
}

// Invoke runs one RequestResponse invocation. A function error is a *lambdarun.ErrFunction; when ctx ends
// first Invoke returns ctx's error while the invocation runs on to its end, as in Lambda.
func (h *Handle) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	type outcome struct {
		res result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := h.s.run(ctx, h.f, newRequestID(), payload, "", false)
		done <- outcome{res, err}
	}()
	select {
	case o := <-done:
		if o.err != nil {
			return nil, fmt.Errorf("invoke %s: %w", h.f.LogicalID, o.err)
		}
		if o.res.functionError != "" {
			return nil, &lambdarun.ErrFunction{Payload: o.res.payload}
		}
		return o.res.payload, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("invoke %s: %w", h.f.LogicalID, ctx.Err())
	}
}
