// Package scheduler fires template.yaml's schedules locally: AWS::Scheduler::Schedule resources and SAM's
// ScheduleV2 (EventBridge Scheduler) and Schedule (EventBridge rule) events. Each firing invokes its target
// function through the Lambda Invoke API (the local Lambda service, infra/lambdaservice) with InvocationType
// Event, as both services do, sending what they send:
//   - EventBridge Scheduler: the target's Input with its context attributes (<aws.scheduler.scheduled-time>,
//     <aws.scheduler.execution-id>, <aws.scheduler.attempt-number>, <aws.scheduler.schedule-arn>) replaced
//     (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html);
//     without Input, Scheduler's "default notification", which Lambda receives as an empty JSON object.
//   - EventBridge rules: the Input, or the "Scheduled Event" document (detail-type "Scheduled Event", source
//     aws.events, the rule's ARN in resources, detail {}) that scheduled rules send.
//
// Retries follow the target's RetryPolicy when the Invoke call fails (not when the function fails: that is
// Lambda's asynchronous retry), then the dead-letter queue. A speed-up factor runs the schedule clock faster
// for tests and demos: with 60, rate(1 minute) fires every second.
package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"jiraexport/infra/lambdaservice"
	"jiraexport/infra/localstack"
)

// Invoker is the Lambda API a schedule calls.
type Invoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, opts ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

var _ Invoker = (*lambda.Client)(nil)

// Options configure Start.
type Options struct {
	// Lambda invokes the targets: a client of the local Lambda service.
	Lambda Invoker
	// SQS receives dead letters (required when a schedule declares a DeadLetterConfig).
	SQS lambdaservice.QueueSender
	// Speedup runs the schedule clock this many times faster than the wall clock (1 when zero): rate periods,
	// cron steps and flexible windows shrink by the factor.
	Speedup float64
	// RetryDelay is the first wait before retrying a failed Invoke call (doubling, with jitter, up to a
	// minute); default one second.
	RetryDelay time.Duration
	Log        *slog.Logger
	// Now is the wall clock (tests); default time.Now.
	Now func() time.Time
}

// Runner fires schedules until Close.
type Runner struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	base   time.Time

	mu    sync.Mutex
	fired map[string]int
}

// Start begins firing every enabled schedule. The schedule clock starts now.
func Start(schedules []Schedule, opts Options) (*Runner, error) {
	if opts.Lambda == nil {
		return nil, errors.New("scheduler: a Lambda client is required")
	}
	if opts.Speedup <= 0 {
		opts.Speedup = 1
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Runner{opts: opts, log: opts.Log, base: opts.Now(), fired: map[string]int{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	for _, s := range schedules {
		e, err := parseExpression(s.Expression, s.Location)
		if err != nil {
			r.cancel()
			return nil, fmt.Errorf("schedule %s: %w", s.Name, err)
		}
		if s.DeadLetter != "" && opts.SQS == nil {
			r.cancel()
			return nil, fmt.Errorf("schedule %s has a dead-letter queue but no SQS client was given", s.Name)
		}
		if !s.Enabled {
			r.log.Info("schedule disabled", "schedule", s.Name)
			continue
		}
		r.wg.Add(1)
		go r.loop(s, e)
	}
	return r, nil
}

// Close stops firing and waits for deliveries in progress to end.
func (r *Runner) Close() {
	r.cancel()
	r.wg.Wait()
}

// Fired reports how many times the schedule has fired so far.
func (r *Runner) Fired(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fired[name]
}

// virtual maps a wall-clock time to the schedule clock; real maps back.
func (r *Runner) virtual(t time.Time) time.Time {
	return r.base.Add(time.Duration(float64(t.Sub(r.base)) * r.opts.Speedup))
}

func (r *Runner) real(v time.Time) time.Time {
	return r.base.Add(time.Duration(float64(v.Sub(r.base)) / r.opts.Speedup))
}

func (r *Runner) loop(s Schedule, e expression) {
	defer r.wg.Done()
	anchor := r.base
	if !s.Start.IsZero() {
		anchor = s.Start
	}
	v := r.virtual(r.opts.Now())
	for {
		v = e.next(anchor, v, s.Location)
		if v.IsZero() || (!s.End.IsZero() && v.After(s.End)) {
			r.log.Info("schedule has no more firings", "schedule", s.Name)
			return
		}
		if !s.Start.IsZero() && v.Before(s.Start) {
			continue
		}
		at := r.real(v)
		if s.Flexible > 0 {
			at = at.Add(time.Duration(mrand.Int64N(int64(float64(s.Flexible) / r.opts.Speedup))))
		}
		t := time.NewTimer(time.Until(at))
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		r.mu.Lock()
		r.fired[s.Name]++
		r.mu.Unlock()
		// Firings do not wait for each other: a slow delivery never delays the next tick, as in AWS.
		r.wg.Add(1)
		go func(now time.Time) {
			defer r.wg.Done()
			r.deliver(s, now)
		}(r.opts.Now())
	}
}

// deliver invokes the target, retrying a failed call per the RetryPolicy, then dead-letters the event.
func (r *Runner) deliver(s Schedule, now time.Time) {
	execID := randomHex(8)
	started := r.opts.Now()
	delay := r.opts.RetryDelay
	var lastErr error
	attempt := 1
	var payload []byte
	for ; ; attempt++ {
		payload = r.event(s, now, execID, attempt)
		ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
		_, err := r.opts.Lambda.Invoke(ctx, &lambda.InvokeInput{
			FunctionName: aws.String(s.Target), InvocationType: lambdatypes.InvocationTypeEvent, Payload: payload,
		})
		cancel()
		if err == nil {
			r.log.Info("schedule fired", "schedule", s.Name, "executionId", execID, "attempt", attempt)
			return
		}
		if r.ctx.Err() != nil {
			return
		}
		lastErr = err
		r.log.Warn("schedule target invoke failed", "schedule", s.Name, "executionId", execID, "attempt", attempt, "err", err)
		if attempt > s.MaxRetries {
			r.deadLetter(s, payload, lastErr, "MaximumRetryAttempts", attempt-1)
			return
		}
		wait := delay/2 + time.Duration(mrand.Int64N(int64(delay)))
		if r.opts.Now().Add(wait).Sub(started) > time.Duration(float64(s.MaxEventAge)/r.opts.Speedup) {
			r.deadLetter(s, payload, lastErr, "MaximumEventAgeInSeconds", attempt-1)
			return
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(wait):
		}
		delay = min(2*delay, time.Minute)
	}
}

// event is what the target receives.
func (r *Runner) event(s Schedule, now time.Time, execID string, attempt int) []byte {
	ts := now.UTC().Format("2006-01-02T15:04:05Z")
	if s.Kind == KindRule {
		if s.Input != nil {
			return []byte(*s.Input)
		}
		b, _ := json.Marshal(map[string]any{
			"version": "0", "id": uuid(), "detail-type": "Scheduled Event", "source": "aws.events",
			"account": localstack.AccountID, "time": ts, "region": localstack.Region,
			"resources": []string{s.ARN}, "detail": map[string]any{},
		})
		return b
	}
	if s.Input == nil {
		return []byte("{}")
	}
	return []byte(strings.NewReplacer(
		"<aws.scheduler.schedule-arn>", s.ARN,
		"<aws.scheduler.scheduled-time>", ts,
		"<aws.scheduler.execution-id>", execID,
		"<aws.scheduler.attempt-number>", strconv.Itoa(attempt),
	).Replace(*s.Input))
}

// deadLetter sends the undelivered event with the attributes both services add
// (https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html).
func (r *Runner) deadLetter(s Schedule, payload []byte, cause error, condition string, retries int) {
	if s.DeadLetter == "" {
		r.log.Error("schedule event dropped", "schedule", s.Name, "condition", condition)
		return
	}
	str := func(v string) sqstypes.MessageAttributeValue {
		return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	msg := cause.Error()
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	code := "InvokeFailed"
	var coded interface{ ErrorCode() string }
	if errors.As(cause, &coded) {
		code = coded.ErrorCode()
	}
	attrs := map[string]sqstypes.MessageAttributeValue{
		"ERROR_CODE": str(code), "ERROR_MESSAGE": str(msg), "EXHAUSTED_RETRY_CONDITION": str(condition),
		"RETRY_ATTEMPTS": str(strconv.Itoa(retries)), "TARGET_ARN": str(s.Target),
	}
	if s.Kind == KindRule {
		attrs["RULE_ARN"] = str(s.ARN)
	} else {
		attrs["SCHEDULE_ARN"] = str(s.ARN)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url, err := lambdaservice.QueueURL(ctx, r.opts.SQS, s.DeadLetter)
	if err == nil {
		_, err = r.opts.SQS.SendMessage(ctx, &sqs.SendMessageInput{
			QueueUrl: aws.String(url), MessageBody: aws.String(string(payload)), MessageAttributes: attrs,
		})
	}
	if err != nil {
		r.log.Error("schedule dead letter failed", "schedule", s.Name, "err", err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
