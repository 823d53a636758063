package schedule

import (
	"errors"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		expr, tz  string
		wantField string // "" = valid
	}{
		{"rate(15 minutes)", "", ""},
		{"rate(1 hour)", "Europe/Paris", ""},
		{"rate(2 days)", "UTC", ""},
		{"rate(365 days)", "", ""},
		{"cron(0 3 * * *)", "America/New_York", ""},
		{"cron(*/15 * * * MON-FRI)", "Asia/Kolkata", ""},
		{"cron(0 12 ? * SUN)", "", ""},
		{"rate(14 minutes)", "", "expression"},
		{"rate(1 minutes)", "", "expression"},
		{"rate(2 hour)", "", "expression"},
		{"rate(366 days)", "", "expression"},
		{"rate(0 hours)", "", "expression"},
		{"rate(-1 hours)", "", "expression"},
		{"rate(1 week)", "", "expression"},
		{"rate(hour)", "", "expression"},
		{"cron(*/5 * * * *)", "", "expression"},
		{"cron(0,10 3 * * *)", "", "expression"},
		{"cron(0 12 * * ? *)", "", "expression"},
		{"cron(@daily)", "", "expression"},
		{"cron(CRON_TZ=UTC 0 3 * * *)", "", "expression"},
		{"cron(0 0 30 2 *)", "", "expression"},
		{"cron(61 * * * *)", "", "expression"},
		{"0 3 * * *", "", "expression"},
		{"", "", "expression"},
		{"rate(1 hour)", "Mars/Olympus", "timezone"},
		{"rate(1 hour)", "Local", "timezone"},
		{"rate(1 hour)", "../etc/passwd", "timezone"},
	}
	for _, tt := range tests {
		s, err := Parse(tt.expr, tt.tz)
		var se *Error
		switch {
		case tt.wantField == "" && err != nil:
			t.Errorf("Parse(%q, %q) = %v, want valid", tt.expr, tt.tz, err)
		case tt.wantField != "" && (!errors.As(err, &se) || se.Field != tt.wantField):
			t.Errorf("Parse(%q, %q) = %v, want error on %s", tt.expr, tt.tz, err, tt.wantField)
		case tt.wantField == "" && s.Next(time.Now()).IsZero():
			t.Errorf("Parse(%q, %q).Next = zero", tt.expr, tt.tz)
		}
	}
}

func TestNext(t *testing.T) {
	base := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC) // the day before Europe's spring DST change
	tests := []struct {
		expr, tz string
		after    time.Time
		want     time.Time
	}{
		{"rate(1 hour)", "UTC", base, base.Add(time.Hour)},
		{"rate(3 days)", "Europe/Paris", base, base.Add(72 * time.Hour)},
		// 03:00 Paris is 02:00 UTC in winter (CET) ...
		{"cron(0 3 * * *)", "Europe/Paris", time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC), time.Date(2026, 3, 28, 2, 0, 0, 0, time.UTC)},
		// ... and 01:00 UTC after the switch to CEST on 29 March.
		{"cron(0 3 * * *)", "Europe/Paris", base, time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{"cron(30 9 * * MON)", "UTC", base, time.Date(2026, 3, 30, 9, 30, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		s, err := Parse(tt.expr, tt.tz)
		if err != nil {
			t.Fatalf("Parse(%q, %q) = %v", tt.expr, tt.tz, err)
		}
		if got := s.Next(tt.after); !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("Parse(%q, %q).Next(%v) = %v, want %v", tt.expr, tt.tz, tt.after, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"rate(15 minutes)", "cron(0 3 * * *)", "cron(*/7 1-5 ? JAN-MAR MON#2)", "rate(99999999999 days)"} {
		f.Add(s, "Europe/Paris")
	}
	f.Fuzz(func(t *testing.T, expr, tz string) {
		s, err := Parse(expr, tz)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q, %q) = %T %v, want *Error", expr, tz, err, err)
			}
			return
		}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		n := s.Next(now)
		if n.IsZero() || !n.After(now) {
			t.Fatalf("Parse(%q, %q).Next(%v) = %v, want a later time", expr, tz, now, n)
		}
		if m := s.Next(n); !m.IsZero() && m.Sub(n) < MinInterval {
			t.Fatalf("Parse(%q, %q): runs %v and %v closer than %v", expr, tz, n, m, MinInterval)
		}
	})
}
