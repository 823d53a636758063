package attachments

import (
	"errors"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"jiraexport/shared/connectors"
)

func TestDecide(t *testing.T) {
	on := func(max int64, types ...string) connectors.Attachments {
		return connectors.Attachments{Enabled: true, MaxBytes: max, MediaTypes: types}
	}
	png := Attachment{ID: "1", Filename: "a.png", Size: 1000, MimeType: "image/png"}
	tests := []struct {
		name    string
		rules   connectors.Attachments
		a       Attachment
		allowed bool
		reason  Reason
	}{
		{"disabled", connectors.Attachments{MaxBytes: 1 << 20}, png, false, ReasonDisabled},
		{"allowed, no type list", on(1 << 20), png, true, ""},
		{"exactly the cap", on(1000), png, true, ""},
		{"one byte over", on(999), png, false, ReasonTooLarge},
		{"zero cap means the default", on(0), Attachment{ID: "1", Size: connectors.DefaultAttachmentSize + 1, MimeType: "image/png"}, false, ReasonTooLarge},
		{"never above the hard cap", on(1 << 40), Attachment{ID: "1", Size: connectors.MaxAttachmentBytes + 1}, false, ReasonTooLarge},
		{"empty file", on(10), Attachment{ID: "1", Size: 0, MimeType: "text/plain"}, true, ""},
		{"exact type", on(1<<20, "image/png"), png, true, ""},
		{"type range", on(1<<20, "image/*"), png, true, ""},
		{"other type", on(1<<20, "application/pdf"), png, false, ReasonMediaType},
		{"other range", on(1<<20, "text/*"), png, false, ReasonMediaType},
		{"parameters and case ignored", on(1<<20, "text/plain"), Attachment{ID: "1", Size: 1, MimeType: "Text/Plain; charset=UTF-8"}, true, ""},
		{"missing type against a list", on(1<<20, "image/*"), Attachment{ID: "1", Size: 1}, false, ReasonMediaType},
		{"garbage type against a list", on(1<<20, "image/*"), Attachment{ID: "1", Size: 1, MimeType: "image"}, false, ReasonMediaType},
		{"anything", on(1<<20, "*/*"), Attachment{ID: "1", Size: 1}, true, ""},
		{"size before type", on(10, "application/pdf"), png, false, ReasonTooLarge},
	}
	for _, tt := range tests {
		allowed, reason := Decide(tt.rules, tt.a)
		if allowed != tt.allowed || reason != tt.reason {
			t.Errorf("%s: Decide() = %v, %q; want %v, %q", tt.name, allowed, reason, tt.allowed, tt.reason)
		}
	}
}

func TestContentType(t *testing.T) {
	for in, want := range map[string]string{
		"image/png": "image/png", "Text/Plain; charset=utf-8": "text/plain", "": "application/octet-stream",
		"nonsense": "application/octet-stream", "a/b/c": "application/octet-stream",
	} {
		if got := contentType(in); got != want {
			t.Errorf("contentType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPlanIssue(t *testing.T) {
	rules := connectors.Attachments{Enabled: true, MaxBytes: 100, MediaTypes: []string{"image/*"}}
	cur := []Attachment{
		{ID: "10", Size: 10, MimeType: "image/png"},       // new: download
		{ID: "11", Size: 11, MimeType: "image/png"},       // stored: keep
		{ID: "12", Size: 500, MimeType: "image/png"},      // too large
		{ID: "13", Size: 13, MimeType: "application/pdf"}, // wrong type, and stored under older rules: delete
		{ID: "14", Size: 14, MimeType: "image/gif"},       // stored with another size: repair
		{ID: "10", Size: 10, MimeType: "image/png"},       // listed twice: once
	}
	stored := []Stored{
		{ID: "11", Size: 11, SHA256: "aa"},
		{ID: "13", Size: 13, SHA256: "bb"},
		{ID: "14", Size: 99, SHA256: "cc"},
		{ID: "9", Size: 9, SHA256: "dd"}, // removed from the issue: delete
	}
	got := PlanIssue(rules, cur, stored)
	want := Plan{
		Download: []Attachment{cur[0], cur[4]},
		Keep:     []Stored{stored[0]},
		Skip:     []Skipped{{Attachment: cur[2], Reason: ReasonTooLarge}, {Attachment: cur[3], Reason: ReasonMediaType}},
		Delete:   []string{"13", "9"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PlanIssue() =\n%+v\nwant\n%+v", got, want)
	}
	// Attachments switched off: everything stored goes.
	off := PlanIssue(connectors.Attachments{}, cur[:2], stored[:1])
	if len(off.Download) != 0 || len(off.Keep) != 0 || !reflect.DeepEqual(off.Delete, []string{"11"}) || len(off.Skip) != 2 {
		t.Errorf("PlanIssue(disabled) = %+v, want 2 skipped and 11 deleted", off)
	}
}

func TestKey(t *testing.T) {
	if got := Key("c1", "K1", "10042"); got != "c1/K1/attachments/10042" {
		t.Errorf("Key() = %q", got)
	}
	for _, bad := range []string{"", "../x", "1/2", "a b", "10042?x"} {
		if err := (Target{ConnectionID: "c", ConnectorID: "k", CloudID: "s"}).valid(bad); err == nil {
			t.Errorf("valid(%q) = nil, want an error", bad)
		}
	}
}

// A checkpointed state handed to the wrong attachment is refused before any request.
func TestResumeStateMustMatch(t *testing.T) {
	tr := New(s3.New(s3.Options{Region: "us-east-1"}), Config{APIURL: "https://api.atlassian.com", Bucket: "b", KMSKeyID: "k"})
	tgt := Target{ConnectionID: "c", ConnectorID: "K", CloudID: "s"}
	a := Attachment{ID: "10", Size: 20 << 20}
	for _, st := range []State{
		{AttachmentID: "11", Key: Key("c", "K", "10"), Size: a.Size},
		{AttachmentID: "10", Key: Key("c", "OTHER", "10"), Size: a.Size},
		{AttachmentID: "10", Key: Key("c", "K", "10"), Size: a.Size + 1},
	} {
		res, err := tr.Transfer(t.Context(), nil, tgt, a, &st)
		if !errors.Is(err, ErrPermanent) || res.GatewayRequests != 0 {
			t.Errorf("Transfer(state %+v) = %+v, %v; want ErrPermanent before any request", st, res, err)
		}
	}
}

// S3 numbers the parts of one upload 1 to 10,000: a resume state that already holds 10,000 parts has no next part.
func TestPartNumber(t *testing.T) {
	for _, tc := range []struct {
		done int
		want int32
		ok   bool
	}{
		{0, 1, true},
		{1, 2, true},
		{maxParts - 1, maxParts, true},
		{maxParts, 0, false},
		{maxParts + 1, 0, false},
		{-1, 0, false},
	} {
		got, ok := partNumber(tc.done)
		if got != tc.want || ok != tc.ok {
			t.Errorf("partNumber(%d) = %d, %v; want %d, %v", tc.done, got, ok, tc.want, tc.ok)
		}
	}
}
