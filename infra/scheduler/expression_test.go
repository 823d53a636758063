package scheduler

import (
	"testing"
	"time"
)

func TestExpressionNext(t *testing.T) {
	anchor := time.Date(2026, 3, 2, 10, 0, 30, 0, time.UTC) // a Monday
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone database")
	}
	tests := []struct {
		expr string
		loc  *time.Location
		from time.Time
		want time.Time
	}{
		{"rate(1 minute)", time.UTC, anchor, anchor.Add(time.Minute)},
		{"rate(5 minutes)", time.UTC, anchor.Add(7 * time.Minute), anchor.Add(10 * time.Minute)},
		{"rate(2 hours)", time.UTC, anchor, anchor.Add(2 * time.Hour)},
		{"rate(1 day)", time.UTC, anchor, anchor.Add(24 * time.Hour)},
		{"cron(0/2 * * * ? *)", time.UTC, anchor, time.Date(2026, 3, 2, 10, 2, 0, 0, time.UTC)},
		{"cron(15 10 ? * 6L 2026)", time.UTC, anchor, time.Date(2026, 3, 27, 10, 15, 0, 0, time.UTC)}, // last Friday
		{"cron(0 8 ? * 2#1 *)", time.UTC, anchor, time.Date(2026, 4, 6, 8, 0, 0, 0, time.UTC)},        // first Monday
		{"cron(0 12 ? * MON-FRI *)", time.UTC, anchor, time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)},
		{"cron(0 12 ? * 1 *)", time.UTC, anchor, time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)}, // 1 is Sunday
		{"cron(0 9 1 * ? *)", ny, anchor, time.Date(2026, 4, 1, 9, 0, 0, 0, ny)},
		{"cron(0 0 1 1 ? 2020)", time.UTC, anchor, time.Time{}},
		{"at(2026-03-02T11:00:00)", time.UTC, anchor, time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC)},
		{"at(2026-03-02T09:00:00)", time.UTC, anchor, time.Time{}},
	}
	for _, tt := range tests {
		e, err := parseExpression(tt.expr, tt.loc)
		if err != nil {
			t.Errorf("parseExpression(%q) = %v", tt.expr, err)
			continue
		}
		if got := e.next(anchor, tt.from, tt.loc); !got.Equal(tt.want) {
			t.Errorf("next(%q, %s) = %s, want %s", tt.expr, tt.from, got, tt.want)
		}
	}
}

func TestExpressionRejected(t *testing.T) {
	for _, expr := range []string{
		"rate(1 minutes)", "rate(2 minute)", "rate(0 minutes)", "rate(5 seconds)", "cron(* * * * *)",
		"cron(0 12 * * MON *)", "cron(0 12 ? * ? *)", "cron(0 12 ? * 8 *)", "every minute", "at(2026-03-02)",
	} {
		if _, err := parseExpression(expr, time.UTC); err == nil {
			t.Errorf("parseExpression(%q) = nil error, want rejected as EventBridge rejects it", expr)
		}
	}
}

func TestRunnerClocks(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &Runner{base: base, opts: Options{Speedup: 60}}
	if got := r.virtual(base.Add(time.Second)); !got.Equal(base.Add(time.Minute)) {
		t.Errorf("virtual(+1s) = %s, want +1m", got)
	}
	if got := r.real(base.Add(time.Hour)); !got.Equal(base.Add(time.Minute)) {
		t.Errorf("real(+1h) = %s, want +1m", got)
	}
}

func FuzzParseExpression(f *testing.F) {
	for _, s := range []string{"rate(1 minute)", "cron(0/2 * * * ? *)", "cron(15 10 ? * 6L 2026)", "at(2026-03-02T11:00:00)", "cron(0 8 ? * 2#1 *)"} {
		f.Add(s)
	}
	anchor := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		e, err := parseExpression(expr, time.UTC)
		if err != nil {
			return
		}
		if got := e.next(anchor, anchor, time.UTC); !got.IsZero() && !got.After(anchor) {
			t.Errorf("next(%q) = %s, not after %s", expr, got, anchor)
		}
	})
}
