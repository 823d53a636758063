// Package invoke starts export runs: an asynchronous Lambda Invoke (InvocationType Event) of the export function
// with the run's reference as payload, {"connectionId","connectorId","runId"}. Lambda queues the event and
// delivers it at least once; the export's run lease makes a duplicate harmless.
package invoke

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"jiraexport/shared/connectors"
)

// Timeout bounds one Invoke call: an async invoke only enqueues the event, so it answers in milliseconds.
const Timeout = 5 * time.Second

// Export invokes the export function.
type Export struct {
	client   *lambda.Client
	function string
}

// NewExport returns an Export invoking function (its name or ARN, EXPORT_FUNCTION_NAME) through client.
func NewExport(client *lambda.Client, function string) *Export {
	return &Export{client: client, function: function}
}

// Invoke queues one export invocation of ref's run.
func (e *Export) Invoke(ctx context.Context, ref connectors.RunRef) error {
	payload, err := json.Marshal(ref)
	if err != nil {
		return fmt.Errorf("encode export payload: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	out, err := e.client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(e.function),
		InvocationType: types.InvocationTypeEvent,
		Payload:        payload,
	})
	if err != nil {
		return fmt.Errorf("invoke export: %w", err)
	}
	// An accepted asynchronous invocation answers 202; anything else means the event was not queued.
	if out.StatusCode != 202 {
		return fmt.Errorf("invoke export: status %d, want 202", out.StatusCode)
	}
	return nil
}
