package backoff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"jiraexport/shared/backoff"
)

func TestAtlassianDelayBounds(t *testing.T) {
	p := backoff.Atlassian()
	tests := []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{0, 1400 * time.Millisecond, 2600 * time.Millisecond},
		{1, 2800 * time.Millisecond, 5200 * time.Millisecond},
		{2, 5600 * time.Millisecond, 10400 * time.Millisecond},
		{3, 11200 * time.Millisecond, 20800 * time.Millisecond},
		{4, 21 * time.Second, 39 * time.Second}, // 32 s capped at 30 s, then jitter
		{40, 21 * time.Second, 39 * time.Second},
	}
	for _, tt := range tests {
		lo, hi := p.Bounds(tt.attempt)
		if lo != tt.lo || hi != tt.hi {
			t.Errorf("Bounds(%d) = [%v, %v], want [%v, %v]", tt.attempt, lo, hi, tt.lo, tt.hi)
		}
		var seenLow, seenHigh bool
		for range 2000 {
			d := p.Delay(tt.attempt, 0)
			if d < tt.lo || d > tt.hi {
				t.Fatalf("Delay(%d, 0) = %v, want within [%v, %v]", tt.attempt, d, tt.lo, tt.hi)
			}
			mid := (tt.lo + tt.hi) / 2
			seenLow = seenLow || d < mid-(tt.hi-tt.lo)/4
			seenHigh = seenHigh || d > mid+(tt.hi-tt.lo)/4
		}
		if !seenLow || !seenHigh {
			t.Errorf("Delay(%d, 0) is not spread over its range (low %v, high %v)", tt.attempt, seenLow, seenHigh)
		}
	}
}

func TestRetryAfterIsAFloor(t *testing.T) {
	p := backoff.Atlassian()
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{"short Retry-After: backoff wins", 0, time.Second, 1400 * time.Millisecond, 2600 * time.Millisecond},
		{"long Retry-After: floor, jittered upwards", 0, 60 * time.Second, 60 * time.Second, 78 * time.Second},
		{"quota-sized Retry-After", 3, 1847 * time.Second, 1847 * time.Second, time.Duration(1.3 * float64(1847*time.Second))},
	}
	for _, tt := range tests {
		for range 1000 {
			if d := p.Delay(tt.attempt, tt.retryAfter); d < tt.lo || d > tt.hi {
				t.Fatalf("%s: Delay(%d, %v) = %v, want within [%v, %v]", tt.name, tt.attempt, tt.retryAfter, d, tt.lo, tt.hi)
			}
		}
	}
}

func TestAllows(t *testing.T) {
	p := backoff.Atlassian()
	for attempt, want := range []bool{true, true, true, true, false, false} {
		if got := p.Allows(attempt); got != want {
			t.Errorf("Atlassian().Allows(%d) = %v, want %v", attempt, got, want)
		}
	}
	if (backoff.Policy{Base: time.Second}).Allows(0) {
		t.Error("a policy without Retries allows a retry")
	}
}

func TestCustomPolicy(t *testing.T) {
	p := backoff.Policy{Base: 10 * time.Millisecond, Max: 320 * time.Millisecond, Retries: 9, JitterLow: 0.5, JitterHigh: 1.5}
	tests := []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{0, 5 * time.Millisecond, 15 * time.Millisecond},
		{5, 160 * time.Millisecond, 480 * time.Millisecond},
		{9, 160 * time.Millisecond, 480 * time.Millisecond},
	}
	for _, tt := range tests {
		if lo, hi := p.Bounds(tt.attempt); lo != tt.lo || hi != tt.hi {
			t.Errorf("Bounds(%d) = [%v, %v], want [%v, %v]", tt.attempt, lo, hi, tt.lo, tt.hi)
		}
	}
	// No Max: doubling must not overflow into a negative delay.
	if d := (backoff.Policy{Base: time.Second}).Delay(200, 0); d <= 0 {
		t.Errorf("unbounded Delay(200) = %v, want positive", d)
	}
}

func TestWaitStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := backoff.Atlassian().Wait(ctx, 0, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a cancelled context = %v, want context.Canceled", err)
	}
	if err := backoff.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep(1ms) = %v, want nil", err)
	}
}
