// Package schedule parses connector schedules and computes their next run.
//
// Accepted syntax (the API documents the same):
//
//   - cron(M H DoM Mon DoW): five-field Unix cron (minute hour day-of-month month day-of-week), as parsed by
//     github.com/robfig/cron/v3: lists (1,2), ranges (1-5), steps (*/30), names (MON-FRI, JAN) and "?" as "*".
//     Day-of-week 0 or 7 is Sunday. Descriptors (@daily), seconds, and the six-field AWS form with a year are
//     refused: the AWS form numbers weekdays differently (SUN=1), and silently translating it would shift runs.
//   - rate(N unit): every N minutes, hours or days (unit singular or plural), counted from the previous run.
//
// Every schedule carries an IANA time zone (e.g. "Europe/Paris"; default "UTC") in which cron fields are read,
// DST included. Limits: runs at least MinInterval apart (so a connector cannot burn the shared Atlassian points
// quota), rate at most MaxInterval, and a cron expression must fire at least once within five years.
package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // Lambda's provided.al2023 image carries no zoneinfo; embed it so every IANA name resolves.

	"github.com/robfig/cron/v3"
)

const (
	// MinInterval is the shortest allowed gap between two runs.
	MinInterval = 15 * time.Minute
	// MaxInterval is the longest rate.
	MaxInterval = 365 * 24 * time.Hour
	// MaxExpressionLen and MaxTimezoneLen bound the inputs.
	MaxExpressionLen = 256
	MaxTimezoneLen   = 64
	// sampleRuns is how many consecutive cron runs are checked against MinInterval.
	sampleRuns = 1500
)

// Error says which field ("expression" or "timezone") is wrong and why.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return "schedule " + e.Field + ": " + e.Reason }

// Schedule is a parsed, validated schedule. The zero value is not usable.
type Schedule struct {
	expr  string
	loc   *time.Location
	cron  cron.Schedule // nil for rate
	every time.Duration // 0 for cron
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// Parse validates expression in the time zone tz ("" means UTC).
func Parse(expression, tz string) (*Schedule, error) {
	loc, err := location(tz)
	if err != nil {
		return nil, err
	}
	expr := strings.TrimSpace(expression)
	if len(expr) > MaxExpressionLen {
		return nil, &Error{"expression", fmt.Sprintf("must be at most %d characters", MaxExpressionLen)}
	}
	s := &Schedule{expr: expr, loc: loc}
	switch {
	case strings.HasPrefix(expr, "rate(") && strings.HasSuffix(expr, ")"):
		d, err := parseRate(expr[len("rate(") : len(expr)-1])
		if err != nil {
			return nil, err
		}
		s.every = d
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		c, err := parseCron(expr[len("cron("):len(expr)-1], loc)
		if err != nil {
			return nil, err
		}
		s.cron = c
	default:
		return nil, &Error{"expression", `must be "cron(minute hour day-of-month month day-of-week)" or "rate(N minutes|hours|days)"`}
	}
	return s, nil
}

func location(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	if len(tz) > MaxTimezoneLen || tz == "Local" || strings.ContainsAny(tz, " \\") || strings.HasPrefix(tz, "/") || strings.Contains(tz, "..") {
		return nil, &Error{"timezone", "must be an IANA time zone name such as Europe/Paris or UTC"}
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, &Error{"timezone", "unknown IANA time zone " + strconv.Quote(tz)}
	}
	return loc, nil
}

func parseRate(body string) (time.Duration, error) {
	f := strings.Fields(body)
	if len(f) != 2 {
		return 0, &Error{"expression", "rate must be rate(N unit), e.g. rate(1 hour)"}
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 1 || n > 1_000_000 {
		return 0, &Error{"expression", "rate value must be a positive whole number"}
	}
	var unit time.Duration
	switch f[1] {
	case "minute", "minutes":
		unit = time.Minute
	case "hour", "hours":
		unit = time.Hour
	case "day", "days":
		unit = 24 * time.Hour
	default:
		return 0, &Error{"expression", "rate unit must be minute(s), hour(s) or day(s)"}
	}
	if (n == 1) != (f[1] == "minute" || f[1] == "hour" || f[1] == "day") {
		return 0, &Error{"expression", "rate unit must be singular for 1 and plural otherwise, e.g. rate(1 hour), rate(2 hours)"}
	}
	d := time.Duration(n) * unit
	if d < MinInterval {
		return 0, &Error{"expression", fmt.Sprintf("runs must be at least %s apart", fmtDur(MinInterval))}
	}
	if d > MaxInterval {
		return 0, &Error{"expression", fmt.Sprintf("rate must be at most %s", fmtDur(MaxInterval))}
	}
	return d, nil
}

func parseCron(body string, loc *time.Location) (cron.Schedule, error) {
	body = strings.TrimSpace(body)
	if strings.HasPrefix(body, "@") || strings.Contains(body, "TZ=") {
		return nil, &Error{"expression", "cron takes five fields; descriptors and inline time zones are not accepted (use timezone)"}
	}
	switch n := len(strings.Fields(body)); {
	case n == 6:
		return nil, &Error{"expression", "cron takes five fields (minute hour day-of-month month day-of-week); the six-field AWS form is not accepted"}
	case n != 5:
		return nil, &Error{"expression", "cron takes five fields (minute hour day-of-month month day-of-week)"}
	}
	c, err := parser.Parse(body)
	if err != nil {
		return nil, &Error{"expression", "invalid cron: " + err.Error()}
	}
	// Measure the gap between consecutive runs from a fixed reference, so validation is deterministic.
	t := c.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, loc))
	if t.IsZero() {
		return nil, &Error{"expression", "cron never fires"}
	}
	for i := 0; i < sampleRuns; i++ {
		n := c.Next(t)
		if n.IsZero() {
			break
		}
		if n.Sub(t) < MinInterval {
			return nil, &Error{"expression", fmt.Sprintf("runs must be at least %s apart", fmtDur(MinInterval))}
		}
		t = n
	}
	return c, nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return fmt.Sprintf("%d minutes", d/time.Minute)
}

// Next returns the first run strictly after after, in UTC. For rate schedules "after" is the previous run (or
// the moment the schedule was set), so runs keep their spacing however late a run starts.
func (s *Schedule) Next(after time.Time) time.Time {
	if s.cron == nil {
		return after.Add(s.every).UTC().Truncate(time.Second)
	}
	n := s.cron.Next(after.In(s.loc))
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// Expression returns the normalised expression.
func (s *Schedule) Expression() string { return s.expr }

// Location returns the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }
