// Command recordfn is a test function for the local Lambda service: it reports every invocation (its event,
// request id and process id) to RECORD_URL, then does what the event asks: answer, fail, sleep past its
// timeout, or invoke another function through the Lambda API at AWS_ENDPOINT_URL_LAMBDA.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

type event struct {
	Mode   string `json:"mode"`
	Millis int    `json:"ms"`
	Target string `json:"target"`
}

func handle(ctx context.Context, raw json.RawMessage) (map[string]any, error) {
	lc, _ := lambdacontext.FromContext(ctx)
	deadline, _ := ctx.Deadline()
	record := map[string]any{
		"function": os.Getenv("AWS_LAMBDA_FUNCTION_NAME"), "requestId": lc.AwsRequestID, "pid": os.Getpid(),
		"payload": raw, "time": time.Now().UnixMilli(), "deadlineMs": time.Until(deadline).Milliseconds(),
		"env": os.Getenv("RECORD_ENV"),
	}
	if u := os.Getenv("RECORD_URL"); u != "" {
		b, _ := json.Marshal(record)
		resp, err := http.Post(u, "application/json", bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
		resp.Body.Close()
	}
	var ev event
	_ = json.Unmarshal(raw, &ev)
	slog.New(lambdacontext.NewLogHandler()).InfoContext(ctx, "recordfn", "mode", ev.Mode)
	switch ev.Mode {
	case "fail":
		return nil, errors.New("asked to fail")
	case "sleep":
		time.Sleep(time.Duration(ev.Millis) * time.Millisecond)
	case "crash":
		os.Exit(3)
	case "invoke":
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, err
		}
		out, err := awslambda.NewFromConfig(cfg).Invoke(ctx, &awslambda.InvokeInput{
			FunctionName: aws.String(ev.Target), InvocationType: types.InvocationTypeRequestResponse,
			Payload: []byte(`{"mode":"ok"}`),
		})
		if err != nil {
			return nil, err
		}
		record["inner"] = json.RawMessage(out.Payload)
	}
	return record, nil
}

func main() { lambda.Start(handle) }
