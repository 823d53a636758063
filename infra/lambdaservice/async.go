package lambdaservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"jiraexport/shared/backoff"
)

// enqueue accepts an Event invocation: Lambda puts it on the function's queue and answers 202 before any
// attempt; the delivery then runs on its own.
func (s *Service) enqueue(f *function, id string, payload []byte, received time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.log.Warn("async event dropped: the service is stopping", "function", f.LogicalID, "requestId", id)
		return
	}
	s.pending.Add(1)
	s.async.Add(1)
	go func() {
		defer s.async.Done()
		defer s.pending.Add(-1)
		s.deliver(f, id, payload, received)
	}()
}

// deliver runs Lambda's asynchronous attempts: the first, then MaximumRetryAttempts retries after function
// errors (timeouts and crashes included), each after its delay, as long as the event is younger than
// MaximumEventAgeInSeconds; waiting for a free environment (throttling) counts towards the age, not the
// retries. The outcome goes to the on-success or on-failure destination and, on failure, the dead-letter queue.
func (s *Service) deliver(f *function, id string, payload []byte, received time.Time) {
	ageCtx, cancel := context.WithDeadline(s.ctx, received.Add(f.Async.MaxEventAge))
	defer cancel()
	attempts := 0
	var last result
	for {
		res, err := s.run(ageCtx, f, id, payload, "", true)
		if err != nil {
			if s.ctx.Err() != nil {
				s.log.Warn("async event abandoned at shutdown", "function", f.LogicalID, "requestId", id)
				return
			}
			if errors.Is(err, context.DeadlineExceeded) {
				s.fail(f, id, payload, "EventAgeExceeded", attempts, last)
				return
			}
			// The environment could not start: Lambda retries such system errors until the event expires.
			s.log.Error("async attempt could not run", "function", f.LogicalID, "requestId", id, "err", err)
			if backoff.Sleep(ageCtx, s.opts.RetryDelays[0]) != nil {
				if s.ctx.Err() == nil {
					s.fail(f, id, payload, "EventAgeExceeded", attempts, last)
				}
				return
			}
			continue
		}
		attempts++
		last = res
		if res.functionError == "" {
			s.log.Info("async event delivered", "function", f.LogicalID, "requestId", id, "attempts", attempts)
			if f.Async.OnSuccess != "" {
				s.send(f, f.Async.OnSuccess, record(f, id, payload, "Success", attempts, &res))
			}
			return
		}
		if attempts > f.Async.MaxRetries {
			s.fail(f, id, payload, "RetriesExhausted", attempts, last)
			return
		}
		delay := s.opts.RetryDelays[min(attempts-1, len(s.opts.RetryDelays)-1)]
		s.log.Info("async attempt failed, retrying", "function", f.LogicalID, "requestId", id, "attempt", attempts, "delay", delay)
		if time.Now().Add(delay).After(received.Add(f.Async.MaxEventAge)) {
			// Lambda drops an event whose next attempt would come after its maximum age.
			if backoff.Sleep(s.ctx, time.Until(received.Add(f.Async.MaxEventAge))) != nil {
				return
			}
			s.fail(f, id, payload, "EventAgeExceeded", attempts, last)
			return
		}
		if backoff.Sleep(s.ctx, delay) != nil {
			s.log.Warn("async event abandoned at shutdown", "function", f.LogicalID, "requestId", id)
			return
		}
	}
}

func (s *Service) fail(f *function, id string, payload []byte, condition string, attempts int, last result) {
	s.log.Warn("async event failed", "function", f.LogicalID, "requestId", id, "condition", condition, "attempts", attempts)
	var res *result
	if attempts > 0 {
		res = &last
	}
	if f.Async.OnFailure != "" {
		s.send(f, f.Async.OnFailure, record(f, id, payload, condition, attempts, res))
	}
	if f.Async.DeadLetter != "" {
		s.deadLetter(f, id, payload, last)
	}
}

// record is the invocation record Lambda sends to a destination
// (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html).
func record(f *function, id string, payload []byte, condition string, attempts int, res *result) []byte {
	type requestContext struct {
		RequestID              string `json:"requestId"`
		FunctionARN            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	}
	type responseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError,omitempty"`
	}
	doc := struct {
		Version         string           `json:"version"`
		Timestamp       string           `json:"timestamp"`
		RequestContext  requestContext   `json:"requestContext"`
		RequestPayload  json.RawMessage  `json:"requestPayload"`
		ResponseContext *responseContext `json:"responseContext,omitempty"`
		ResponsePayload json.RawMessage  `json:"responsePayload,omitempty"`
	}{
		Version:   "1.0",
		Timestamp: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		RequestContext: requestContext{
			RequestID: id, FunctionARN: f.ARN() + ":$LATEST", Condition: condition, ApproximateInvokeCount: attempts,
		},
		RequestPayload: asJSON(payload),
	}
	if res != nil {
		doc.ResponseContext = &responseContext{StatusCode: 200, ExecutedVersion: "$LATEST", FunctionError: res.functionError}
		doc.ResponsePayload = asJSON(res.payload)
	}
	b, _ := json.Marshal(doc)
	return b
}

// asJSON embeds a JSON payload as is and anything else as a JSON string.
func asJSON(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// send delivers a destination record to an SQS queue or (asynchronously) to a function of this service.
func (s *Service) send(f *function, arn string, body []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	switch {
	case isSQS(arn):
		err = s.sendSQS(ctx, arn, &sqs.SendMessageInput{MessageBody: aws.String(string(body))})
	case strings.HasPrefix(arn, "arn:aws:lambda:"):
		target, _, ok := s.lookup(arn)
		if !ok {
			err = fmt.Errorf("no function %s", arn)
			break
		}
		s.enqueue(target, newRequestID(), body, time.Now())
	default:
		err = fmt.Errorf("unsupported destination")
	}
	if err != nil {
		s.log.Error("destination delivery failed", "function", f.LogicalID, "destination", arn, "err", err)
	}
}

// deadLetter sends the event itself, with Lambda's message attributes, to the dead-letter queue
// (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html#invocation-dlq).
func (s *Service) deadLetter(f *function, id string, payload []byte, last result) {
	msg := ""
	var doc struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal(last.payload, &doc) == nil {
		msg = doc.ErrorMessage
	}
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	attrs := map[string]sqstypes.MessageAttributeValue{
		"RequestID": {DataType: aws.String("String"), StringValue: aws.String(id)},
		"ErrorCode": {DataType: aws.String("Number"), StringValue: aws.String("200")},
	}
	if msg != "" {
		attrs["ErrorMessage"] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(msg)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.sendSQS(ctx, f.Async.DeadLetter, &sqs.SendMessageInput{
		MessageBody: aws.String(string(payload)), MessageAttributes: attrs,
	}); err != nil {
		s.log.Error("dead-letter delivery failed", "function", f.LogicalID, "queue", f.Async.DeadLetter, "err", err)
	}
}

func (s *Service) sendSQS(ctx context.Context, arn string, in *sqs.SendMessageInput) error {
	url, err := QueueURL(ctx, s.opts.SQS, arn)
	if err != nil {
		return err
	}
	in.QueueUrl = aws.String(url)
	_, err = s.opts.SQS.SendMessage(ctx, in)
	return err
}

// QueueURL finds the URL of the queue an SQS ARN (arn:aws:sqs:region:account:name) names.
func QueueURL(ctx context.Context, c QueueSender, arn string) (string, error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[2] != "sqs" {
		return "", fmt.Errorf("not an SQS queue ARN: %s", arn)
	}
	out, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		return "", fmt.Errorf("queue %s: %w", arn, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

func isSQS(arn string) bool { return strings.HasPrefix(arn, "arn:aws:sqs:") }
