package scheduler

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/cronexpr"
)

// expression is a parsed schedule expression
// (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html).
type expression struct {
	rate time.Duration
	cron *cronexpr.Expression
	at   time.Time
}

var (
	rateRe = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)
	cronRe = regexp.MustCompile(`^cron\((.+)\)$`)
	atRe   = regexp.MustCompile(`^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$`)
	numRe  = regexp.MustCompile(`[#/]?\d+`)
)

func parseExpression(expr string, loc *time.Location) (expression, error) {
	expr = strings.TrimSpace(expr)
	if m := rateRe.FindStringSubmatch(expr); m != nil {
		n, _ := strconv.Atoi(m[1])
		// EventBridge wants the singular unit for 1 and the plural otherwise.
		if n <= 0 || (n == 1) != !strings.HasSuffix(m[2], "s") {
			return expression{}, fmt.Errorf("%s: the value must be positive, with a singular unit for 1 and plural otherwise", expr)
		}
		unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(m[2], "s")]
		return expression{rate: time.Duration(n) * unit}, nil
	}
	if m := cronRe.FindStringSubmatch(expr); m != nil {
		c, err := parseCron(m[1])
		if err != nil {
			return expression{}, fmt.Errorf("%s: %w", expr, err)
		}
		return expression{cron: c}, nil
	}
	if m := atRe.FindStringSubmatch(expr); m != nil {
		t, err := time.ParseInLocation("2006-01-02T15:04:05", m[1], loc)
		if err != nil {
			return expression{}, fmt.Errorf("%s: %w", expr, err)
		}
		return expression{at: t}, nil
	}
	return expression{}, fmt.Errorf("%q is not a rate(...), cron(...) or at(...) expression", expr)
}

// parseCron reads EventBridge's six fields (minutes hours day-of-month month day-of-week year). EventBridge
// numbers days of the week 1-7 from Sunday, cronexpr 0-6; exactly one of the two day fields must be "?".
func parseCron(fields string) (*cronexpr.Expression, error) {
	f := strings.Fields(fields)
	if len(f) != 6 {
		return nil, fmt.Errorf("want 6 fields (minutes hours day-of-month month day-of-week year), got %d", len(f))
	}
	if (f[2] == "?") == (f[4] == "?") {
		return nil, fmt.Errorf("exactly one of day-of-month and day-of-week must be ?")
	}
	var convErr error
	f[4] = numRe.ReplaceAllStringFunc(f[4], func(s string) string {
		if s[0] == '#' || s[0] == '/' {
			return s // an nth weekday or a step, not a day number
		}
		n, _ := strconv.Atoi(s)
		if n < 1 || n > 7 {
			convErr = fmt.Errorf("day of week %d is not 1-7", n)
		}
		return strconv.Itoa(n - 1)
	})
	if convErr != nil {
		return nil, convErr
	}
	return cronexpr.Parse(strings.Join(f, " "))
}

// next is the first firing strictly after t, or the zero time when there is none. Rate schedules fire every
// period from anchor (the schedule's StartDate, else when the runner started).
func (e expression) next(anchor, t time.Time, loc *time.Location) time.Time {
	switch {
	case e.rate > 0:
		if t.Before(anchor) {
			return anchor.Add(e.rate)
		}
		k := t.Sub(anchor)/e.rate + 1
		return anchor.Add(k * e.rate)
	case e.cron != nil:
		return e.cron.Next(t.In(loc))
	default:
		if e.at.After(t) {
			return e.at
		}
		return time.Time{}
	}
}

// next validates s's expression and returns its first firing after t (anchored at t).
func next(s Schedule, t time.Time) (time.Time, error) {
	e, err := parseExpression(s.Expression, s.Location)
	if err != nil {
		return time.Time{}, err
	}
	return e.next(t, t, s.Location), nil
}
