package jql

import (
	"strconv"
	"strings"
	"time"
)

// dateLayouts are the absolute formats Jira accepts for date fields, read in the searching user's zone.
var dateLayouts = []string{"2006/1/2 15:04", "2006-1-2 15:04", "2006/1/2", "2006-1-2"}

func (e Env) loc() *time.Location {
	if e.Location == nil {
		return time.UTC
	}
	return e.Location
}

func (e Env) now() time.Time {
	if e.Now.IsZero() {
		return time.Now()
	}
	return e.Now
}

// parseDate reads a date-field value: an absolute date, a period relative to now (-5d, "4w 2d") or epoch milliseconds.
// The result has Jira's minute precision.
func parseDate(s string, env Env) (time.Time, bool) {
	if isNumberText(s) {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.UnixMilli(ms).Truncate(time.Minute), true
	}
	if d, ok := parsePeriod(s); ok {
		return d.apply(env.now().In(env.loc())).Truncate(time.Minute), true
	}
	for _, layout := range dateLayouts {
		if t, err := time.ParseInLocation(layout, strings.TrimSpace(s), env.loc()); err == nil {
			return t.Truncate(time.Minute), true
		}
	}
	return time.Time{}, false
}

func validDate(s string) bool {
	_, ok := parseDate(s, Env{Now: time.Unix(0, 0)})
	return ok
}

// period is a calendar offset: weeks and days follow the calendar (DST-safe), hours and minutes are absolute.
type period struct {
	years, months, days int
	dur                 time.Duration
}

func (p period) apply(t time.Time) time.Time {
	return t.AddDate(p.years, p.months, p.days).Add(p.dur)
}

// parsePeriod reads Jira's relative date format: an optional sign followed by one or more "<n><unit>" parts,
// units w, d, h, m, optionally separated by spaces ("-4w 2d").
func parsePeriod(s string) (period, bool) {
	s = strings.TrimSpace(s)
	sign := 1
	if s != "" && (s[0] == '-' || s[0] == '+') {
		if s[0] == '-' {
			sign = -1
		}
		s = strings.TrimSpace(s[1:])
	}
	var p period
	parts := 0
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) || i > 9 {
			return period{}, false
		}
		n, _ := strconv.Atoi(s[:i])
		n *= sign
		switch s[i] {
		case 'w', 'W':
			p.days += 7 * n
		case 'd', 'D':
			p.days += n
		case 'h', 'H':
			p.dur += time.Duration(n) * time.Hour
		case 'm':
			p.dur += time.Duration(n) * time.Minute
		default:
			return period{}, false
		}
		parts++
		s = strings.TrimLeft(s[i+1:], " ")
	}
	return p, parts > 0
}

// parseFunctionOffset reads the argument of startOfDay/endOfDay: (+/-)n(yMwdhm).
func parseFunctionOffset(s string) (period, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 2 {
		return period{}, false
	}
	sign, body := 1, s
	if body[0] == '-' || body[0] == '+' {
		if body[0] == '-' {
			sign = -1
		}
		body = body[1:]
	}
	unit := body[len(body)-1]
	digits := body[:len(body)-1]
	if digits == "" || len(digits) > 9 || !isNumberText(digits) || strings.HasPrefix(digits, "-") {
		return period{}, false
	}
	n, _ := strconv.Atoi(digits)
	n *= sign
	var p period
	switch unit {
	case 'y':
		p.years = n
	case 'M':
		p.months = n
	case 'w':
		p.days = 7 * n
	case 'd':
		p.days = n
	case 'h':
		p.dur = time.Duration(n) * time.Hour
	case 'm':
		p.dur = time.Duration(n) * time.Minute
	default:
		return period{}, false
	}
	return p, true
}

// evalDateFunction returns the instant a date function denotes, at minute precision.
func evalDateFunction(f function, env Env) (time.Time, bool) {
	name := strings.ToLower(f.name)
	now := env.now().In(env.loc())
	if name == "now" {
		return now.Truncate(time.Minute), len(f.args) == 0
	}
	if name != "startofday" && name != "endofday" || len(f.args) > 1 {
		return time.Time{}, false
	}
	var off period
	if len(f.args) == 1 {
		p, ok := parseFunctionOffset(f.args[0])
		if !ok {
			return time.Time{}, false
		}
		off = p
	}
	y, m, d := now.Date()
	start := off.apply(time.Date(y, m, d, 0, 0, 0, 0, now.Location()))
	if name == "startofday" {
		return start, true
	}
	// Jira's end of day is 23:59:59.999; at minute precision that is the 23:59 minute.
	y, m, d = start.Date()
	end := time.Date(y, m, d+1, 0, 0, 0, 0, now.Location()).Add(-time.Millisecond)
	return end.Truncate(time.Minute), true
}
