package scheduler

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"jiraexport/infra/localstack"
	"jiraexport/infra/samtemplate"
)

// Kind tells which AWS service a schedule belongs to; it decides the event the target gets.
type Kind string

const (
	// KindScheduler is EventBridge Scheduler: AWS::Scheduler::Schedule and SAM's ScheduleV2 event.
	KindScheduler Kind = "scheduler"
	// KindRule is an EventBridge scheduled rule: SAM's Schedule event.
	KindRule Kind = "rule"
)

// Schedule is one schedule of the template with its target.
type Schedule struct {
	Name string
	ARN  string
	Kind Kind
	// Expression is rate(...), cron(...) or at(...); Location its ScheduleExpressionTimezone (UTC by default).
	Expression string
	Location   *time.Location
	Enabled    bool
	// Start and End bound the schedule (StartDate, EndDate); zero: unbounded.
	Start, End time.Time
	// Target is the ARN of the function the schedule invokes (asynchronously, as both services do).
	Target string
	// Input is the target's Input; nil: the service's default event.
	Input *string
	// Flexible is FlexibleTimeWindow's MaximumWindowInMinutes when its Mode is FLEXIBLE.
	Flexible time.Duration
	// MaxRetries and MaxEventAge are the target's RetryPolicy (both services default to 185 and 24 h); they
	// apply when the Invoke call itself fails, not when the function does (Lambda's async retries handle that).
	MaxRetries  int
	MaxEventAge time.Duration
	// DeadLetter is the target's DeadLetterConfig Arn (an SQS queue); empty: none.
	DeadLetter string
}

// Defaults of both services' RetryPolicy.
const (
	DefaultMaxRetries  = 185
	DefaultMaxEventAge = 24 * time.Hour
)

// FromTemplate reads the template's schedules: AWS::Scheduler::Schedule resources and the ScheduleV2 and
// Schedule events of its functions, resolved with r (a localstack.Provisioned's Resolver, which knows the
// functions' ARNs and the queues).
func FromTemplate(t *samtemplate.Template, r *samtemplate.Resolver) ([]Schedule, error) {
	var out []Schedule
	for _, id := range t.ResourcesOfType("AWS::Scheduler::Schedule") {
		v, err := r.Resolve(t.Resources[id].Properties)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: %w", id, err)
		}
		p, _ := v.(map[string]any)
		target, _ := p["Target"].(map[string]any)
		s, err := schedulerSchedule(id, p, target)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: %w", id, err)
		}
		out = append(out, s)
	}
	fns, err := t.Functions()
	if err != nil {
		return nil, err
	}
	for _, fn := range fns {
		events, _ := fn.Props["Events"].(map[string]any)
		names := make([]string, 0, len(events))
		for name := range events {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			ev, _ := events[name].(map[string]any)
			typ, _ := ev["Type"].(string)
			if typ != "ScheduleV2" && typ != "Schedule" {
				continue
			}
			v, err := r.Resolve(ev["Properties"])
			if err != nil {
				return nil, fmt.Errorf("function %s event %s: %w", fn.LogicalID, name, err)
			}
			p, _ := v.(map[string]any)
			arn := localstack.FunctionARN(fn.LogicalID)
			if ph, ok := r.Resources[fn.LogicalID]; ok && ph.Attrs["Arn"] != "" {
				arn = ph.Attrs["Arn"]
			}
			// SAM names the generated resource <FunctionLogicalId><EventName>.
			id := fn.LogicalID + name
			var s Schedule
			if dl, _ := p["DeadLetterConfig"].(map[string]any); dl != nil && dl["Type"] == "SQS" && dl["Arn"] == nil {
				// SAM generates the queue; the local stack provisions it (localstack.ImplicitQueues).
				qid, _ := dl["QueueLogicalId"].(string)
				if qid == "" {
					qid = fn.LogicalID + name + "Queue"
				}
				arn, err := r.ResolveString(map[string]any{"Fn::GetAtt": []any{qid, "Arn"}})
				if err != nil {
					return nil, fmt.Errorf("function %s event %s: DeadLetterConfig: %w", fn.LogicalID, name, err)
				}
				p["DeadLetterConfig"] = map[string]any{"Arn": arn}
			}
			if typ == "ScheduleV2" {
				target := map[string]any{"Arn": arn, "Input": p["Input"], "RetryPolicy": p["RetryPolicy"], "DeadLetterConfig": p["DeadLetterConfig"]}
				s, err = schedulerSchedule(id, p, target)
			} else {
				s, err = ruleSchedule(id, p, arn)
			}
			if err != nil {
				return nil, fmt.Errorf("function %s event %s: %w", fn.LogicalID, name, err)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func schedulerSchedule(id string, p, target map[string]any) (Schedule, error) {
	s := Schedule{Name: stringOr(p["Name"], id), Kind: KindScheduler, Location: time.UTC, Enabled: true,
		MaxRetries: DefaultMaxRetries, MaxEventAge: DefaultMaxEventAge}
	group := stringOr(p["GroupName"], "default")
	s.ARN = "arn:aws:scheduler:" + localstack.Region + ":" + localstack.AccountID + ":schedule/" + group + "/" + s.Name
	s.Expression = stringOr(p["ScheduleExpression"], "")
	if s.Expression == "" {
		return s, fmt.Errorf("no ScheduleExpression")
	}
	if tz := stringOr(p["ScheduleExpressionTimezone"], ""); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return s, fmt.Errorf("ScheduleExpressionTimezone: %w", err)
		}
		s.Location = loc
	}
	if st := stringOr(p["State"], "ENABLED"); st == "DISABLED" {
		s.Enabled = false
	}
	var err error
	if s.Start, err = parseDate(p["StartDate"]); err != nil {
		return s, err
	}
	if s.End, err = parseDate(p["EndDate"]); err != nil {
		return s, err
	}
	if fw, _ := p["FlexibleTimeWindow"].(map[string]any); fw != nil && fw["Mode"] == "FLEXIBLE" {
		n, _ := samtemplate.AsInt(fw["MaximumWindowInMinutes"])
		s.Flexible = time.Duration(n) * time.Minute
	}
	if err := readTarget(&s, target); err != nil {
		return s, err
	}
	_, err = next(s, time.Now())
	return s, err
}

func ruleSchedule(id string, p map[string]any, arn string) (Schedule, error) {
	s := Schedule{Name: stringOr(p["Name"], id), Kind: KindRule, Location: time.UTC, Enabled: true,
		MaxRetries: DefaultMaxRetries, MaxEventAge: DefaultMaxEventAge}
	s.ARN = "arn:aws:events:" + localstack.Region + ":" + localstack.AccountID + ":rule/" + s.Name
	s.Expression = stringOr(p["Schedule"], "")
	if s.Expression == "" {
		return s, fmt.Errorf("no Schedule")
	}
	if e, ok := p["Enabled"].(bool); ok {
		s.Enabled = e
	}
	if st := stringOr(p["State"], "ENABLED"); st == "DISABLED" {
		s.Enabled = false
	}
	if err := readTarget(&s, map[string]any{"Arn": arn, "Input": p["Input"], "RetryPolicy": p["RetryPolicy"], "DeadLetterConfig": p["DeadLetterConfig"]}); err != nil {
		return s, err
	}
	_, err := next(s, time.Now())
	return s, err
}

func readTarget(s *Schedule, target map[string]any) error {
	s.Target = stringOr(target["Arn"], "")
	if !strings.HasPrefix(s.Target, "arn:aws:lambda:") {
		return fmt.Errorf("target %q: only Lambda targets are served locally", s.Target)
	}
	if in, ok := target["Input"].(string); ok {
		s.Input = &in
	}
	if rp, _ := target["RetryPolicy"].(map[string]any); rp != nil {
		if n, ok := samtemplate.AsInt(rp["MaximumRetryAttempts"]); ok {
			s.MaxRetries = n
		}
		if n, ok := samtemplate.AsInt(rp["MaximumEventAgeInSeconds"]); ok {
			s.MaxEventAge = time.Duration(n) * time.Second
		}
	}
	if dl, _ := target["DeadLetterConfig"].(map[string]any); dl != nil {
		s.DeadLetter = stringOr(dl["Arn"], "")
		if s.DeadLetter == "" {
			return fmt.Errorf("DeadLetterConfig without an Arn")
		}
	}
	return nil
}

func parseDate(v any) (time.Time, error) {
	s := stringOr(v, "")
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q: %w", s, err)
	}
	return t, nil
}

func stringOr(v any, def string) string {
	if s, ok := v.(string); ok && s != "" {
		return s
	}
	return def
}
