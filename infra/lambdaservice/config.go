package lambdaservice

import (
	"context"
	"fmt"
	"strings"
	"time"

	"jiraexport/infra/lambdarun"
	"jiraexport/infra/localstack"
	"jiraexport/infra/samtemplate"
)

// Function is one function the service serves.
type Function struct {
	// LogicalID is the template's logical id; Name the function's name (the template's FunctionName, else the
	// logical id). Both address the function, as do its ARN and partial ARN.
	LogicalID string
	Name      string
	// Dir is the function's source folder (from CodeUri), for the caller's build.
	Dir string
	// Bootstrap is the built bootstrap the execution environments run; Env their environment.
	Bootstrap string
	Env       map[string]string
	// Vars are the template's environment variables (Globals and the function's), unresolved.
	Vars map[string]any
	// Timeout is the template's Timeout, enforced by the service: the environment is killed and replaced.
	Timeout    time.Duration
	MemorySize int
	// ReservedConcurrency is ReservedConcurrentExecutions when the template declares it (0 throttles every
	// invocation, as in Lambda); nil means the service's default limit.
	ReservedConcurrency *int
	Async               AsyncConfig
}

// ARN is the function's unqualified ARN.
func (f Function) ARN() string { return localstack.FunctionARN(f.Name) }

// AsyncConfig is what Lambda applies to asynchronous (Event) invocations: the function's EventInvokeConfig
// (SAM's EventInvokeConfig property or an AWS::Lambda::EventInvokeConfig resource) and DeadLetterQueue.
type AsyncConfig struct {
	// MaxEventAge is MaximumEventAgeInSeconds (60 s to 6 h; Lambda's default is 6 h).
	MaxEventAge time.Duration
	// MaxRetries is MaximumRetryAttempts (0 to 2; Lambda's default is 2).
	MaxRetries int
	// OnSuccess and OnFailure are destination ARNs (SQS queue or Lambda function); DeadLetter the
	// DeadLetterQueue's TargetArn (SQS). Empty: none.
	OnSuccess, OnFailure, DeadLetter string
}

// Lambda's defaults for asynchronous invocation
// (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).
const (
	DefaultMaxEventAge = 6 * time.Hour
	DefaultMaxRetries  = 2
)

// FromTemplate reads every function of the template with the settings the service applies, resolving
// intrinsic functions (FunctionName, destination ARNs) with r, typically a localstack.Provisioned's Resolver.
// Bootstrap and Env are left for the caller, which builds the bootstraps and resolves the environments.
func FromTemplate(t *samtemplate.Template, r *samtemplate.Resolver) ([]Function, error) {
	fns, err := t.Functions()
	if err != nil {
		return nil, err
	}
	// AWS::Lambda::EventInvokeConfig resources, by the function they name (unqualified or $LATEST only).
	standalone := map[string]map[string]any{}
	for _, id := range t.ResourcesOfType("AWS::Lambda::EventInvokeConfig") {
		p := t.Resources[id].Properties
		q, _ := p["Qualifier"].(string)
		if q != "" && q != "$LATEST" {
			continue
		}
		target := refTarget(p["FunctionName"])
		if target == "" {
			return nil, fmt.Errorf("%s: FunctionName must be a Ref to a function of the template", id)
		}
		standalone[target] = p
	}
	out := make([]Function, 0, len(fns))
	for _, tf := range fns {
		f := Function{
			LogicalID:  tf.LogicalID,
			Name:       tf.LogicalID,
			Dir:        tf.Dir,
			Vars:       tf.Env,
			Timeout:    time.Duration(tf.Timeout) * time.Second,
			MemorySize: tf.MemorySize,
			Async:      AsyncConfig{MaxEventAge: DefaultMaxEventAge, MaxRetries: DefaultMaxRetries},
		}
		if v, ok := tf.Props["FunctionName"]; ok {
			if f.Name, err = r.ResolveString(v); err != nil {
				return nil, fmt.Errorf("function %s: FunctionName: %w", tf.LogicalID, err)
			}
		}
		if v, ok := tf.Props["ReservedConcurrentExecutions"]; ok {
			s, err := r.ResolveString(v)
			if err != nil {
				return nil, fmt.Errorf("function %s: ReservedConcurrentExecutions: %w", tf.LogicalID, err)
			}
			n, ok := samtemplate.AsInt(s)
			if !ok || n < 0 {
				return nil, fmt.Errorf("function %s: ReservedConcurrentExecutions %q is not a count", tf.LogicalID, s)
			}
			f.ReservedConcurrency = &n
		}
		cfg, _ := tf.Props["EventInvokeConfig"].(map[string]any)
		if p, ok := standalone[tf.LogicalID]; ok {
			cfg = p
		}
		if err := readAsync(&f.Async, tf.LogicalID, cfg, tf.Props["DeadLetterQueue"], r); err != nil {
			return nil, fmt.Errorf("function %s: %w", tf.LogicalID, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// Prepare builds every function's bootstrap for this machine into dir (see lambdarun.BuildFunction) and
// gives it its environment: base (the stack's endpoints and credentials), then the template's variables
// resolved against prov, as `make dev` and the test harness resolve them.
func Prepare(ctx context.Context, root, dir string, fns []Function, prov *localstack.Provisioned, base map[string]string) error {
	for i := range fns {
		f := &fns[i]
		bootstrap, err := lambdarun.BuildFunction(ctx, root, f.Dir, dir)
		if err != nil {
			return err
		}
		f.Bootstrap = bootstrap
		own, err := prov.ResolveEnv(f.Vars)
		if err != nil {
			return fmt.Errorf("function %s: %w", f.LogicalID, err)
		}
		f.Env = map[string]string{}
		for k, v := range base {
			if v != "" {
				f.Env[k] = v
			}
		}
		for k, v := range own {
			f.Env[k] = v
		}
	}
	return nil
}

func readAsync(a *AsyncConfig, logicalID string, cfg map[string]any, dlq any, r *samtemplate.Resolver) error {
	if cfg != nil {
		if v, ok := cfg["MaximumEventAgeInSeconds"]; ok {
			n, err := resolveInt(r, v)
			if err != nil || n < 60 || n > 21600 {
				return fmt.Errorf("EventInvokeConfig MaximumEventAgeInSeconds must be 60..21600 (%v)", v)
			}
			a.MaxEventAge = time.Duration(n) * time.Second
		}
		if v, ok := cfg["MaximumRetryAttempts"]; ok {
			n, err := resolveInt(r, v)
			if err != nil || n < 0 || n > 2 {
				return fmt.Errorf("EventInvokeConfig MaximumRetryAttempts must be 0..2 (%v)", v)
			}
			a.MaxRetries = n
		}
		dc, _ := cfg["DestinationConfig"].(map[string]any)
		for key, dst := range map[string]*string{"OnSuccess": &a.OnSuccess, "OnFailure": &a.OnFailure} {
			d, _ := dc[key].(map[string]any)
			if d == nil {
				continue
			}
			var arn string
			var err error
			if d["Destination"] == nil && d["Type"] == "SQS" {
				// SAM generates the queue; the local stack provisions it (localstack.ImplicitQueues).
				arn, err = r.ResolveString(map[string]any{"Fn::GetAtt": []any{logicalID + "EventInvokeConfig" + key + "Queue", "Arn"}})
			} else {
				arn, err = r.ResolveString(d["Destination"])
			}
			if err != nil {
				return fmt.Errorf("EventInvokeConfig %s Destination: %w", key, err)
			}
			if err := supportedTarget(arn); err != nil {
				return fmt.Errorf("EventInvokeConfig %s: %w", key, err)
			}
			*dst = arn
		}
	}
	if m, _ := dlq.(map[string]any); m != nil {
		arn, err := r.ResolveString(m["TargetArn"])
		if err != nil {
			return fmt.Errorf("DeadLetterQueue TargetArn: %w", err)
		}
		if !strings.HasPrefix(arn, "arn:aws:sqs:") {
			return fmt.Errorf("DeadLetterQueue %s: only SQS dead-letter queues are served locally", arn)
		}
		a.DeadLetter = arn
	}
	return nil
}

// supportedTarget accepts the destinations the local stack can serve: SQS queues (moto) and the template's
// own functions. SNS and EventBridge destinations exist in Lambda but not locally.
func supportedTarget(arn string) error {
	if strings.HasPrefix(arn, "arn:aws:sqs:") || strings.HasPrefix(arn, "arn:aws:lambda:") {
		return nil
	}
	return fmt.Errorf("destination %s: only SQS and Lambda destinations are served locally", arn)
}

func resolveInt(r *samtemplate.Resolver, v any) (int, error) {
	s, err := r.ResolveString(v)
	if err != nil {
		return 0, err
	}
	n, ok := samtemplate.AsInt(s)
	if !ok {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return n, nil
}

// refTarget returns the logical id a `Ref: X` (or `Fn::GetAtt: [X, Arn]`) names.
func refTarget(v any) string {
	m, _ := v.(map[string]any)
	if s, ok := m["Ref"].(string); ok {
		return s
	}
	if a, ok := m["Fn::GetAtt"].([]any); ok && len(a) == 2 {
		s, _ := a[0].(string)
		return s
	}
	return ""
}
