package tokens

import (
	"testing"
	"time"

	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/table"
)

func TestRecordWindows(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		expiry      time.Time
		ahead       time.Duration
		wantRefresh bool
	}{
		{"fresh", now.Add(time.Hour), 5 * time.Minute, false},
		{"inside refresh-ahead", now.Add(4 * time.Minute), 5 * time.Minute, true},
		{"at the window edge", now.Add(5 * time.Minute), 5 * time.Minute, true},
		{"expired", now.Add(-time.Second), 5 * time.Minute, true},
		{"no expiry", time.Time{}, 5 * time.Minute, false},
	}
	for _, tt := range tests {
		r := &record{expiry: tt.expiry}
		if got := r.needsRefresh(now, tt.ahead); got != tt.wantRefresh {
			t.Errorf("%s: needsRefresh(%v, %v) = %v, want %v", tt.name, now, tt.ahead, got, tt.wantRefresh)
		}
	}
}

// FuzzDecodeRecord feeds arbitrary stored attributes to the item parser: it must fail cleanly, never panic.
func FuzzDecodeRecord(f *testing.F) {
	f.Add("3", "1767225600000", "2026-01-01T00:00:00Z", encVersion, []byte{1, 2}, "")
	f.Add("x", "-1", "not a time", "other", []byte(nil), "invalid_grant")
	f.Fuzz(func(t *testing.T, v, leaseUntil, expiry, enc string, ct []byte, reason string) {
		item := map[string]ddbtypes.AttributeValue{
			"v": &ddbtypes.AttributeValueMemberN{Value: v}, "leaseUntil": &ddbtypes.AttributeValueMemberN{Value: leaseUntil},
			"expiry": table.S(expiry), "enc": table.S(enc), "ct": &ddbtypes.AttributeValueMemberB{Value: ct}, "reauthReason": table.S(reason),
		}
		r, err := decodeRecord(item)
		if err == nil && r == nil {
			t.Fatal("decodeRecord() = nil, nil")
		}
	})
}
