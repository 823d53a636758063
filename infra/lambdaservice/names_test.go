package lambdaservice

import (
	"context"
	"encoding/json"
	"testing"
)

func TestStartRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "localhost:0"} {
		if _, err := Start(context.Background(), Options{Addr: addr, RIE: "/bin/true"}); err == nil {
			t.Errorf("Start(Addr %q) = nil error, want loopback addresses only", addr)
		}
	}
}

func TestLookup(t *testing.T) {
	f := &function{Function: Function{LogicalID: "ExportFunction", Name: "stack-export"}}
	s := &Service{byName: map[string]*function{"ExportFunction": f, "stack-export": f}}
	tests := []struct {
		raw, qualifier string
		found          bool
	}{
		{"ExportFunction", "", true},
		{"stack-export", "", true},
		{"stack-export:$LATEST", "$LATEST", true},
		{"arn:aws:lambda:us-east-1:123456789012:function:stack-export", "", true},
		{"arn:aws:lambda:us-east-1:123456789012:function:ExportFunction:7", "7", true},
		{"123456789012:function:stack-export", "", true},
		{"123456789012:function:stack-export:prod", "prod", true},
		{"Other", "", false},
		{"arn:aws:lambda:us-east-1:123456789012:layer:stack-export", "", false},
	}
	for _, tt := range tests {
		got, q, ok := s.lookup(tt.raw)
		if ok != tt.found || q != tt.qualifier || (ok && got != f) {
			t.Errorf("lookup(%q) = %v, %q, %v; want found %v, qualifier %q", tt.raw, got != nil, q, ok, tt.found, tt.qualifier)
		}
	}
}

func TestRecordFormat(t *testing.T) {
	f := &function{Function: Function{LogicalID: "ExportFunction", Name: "export"}}
	var doc map[string]any
	if err := json.Unmarshal(record(f, "r1", []byte(`{"a":1}`), "EventAgeExceeded", 0, nil), &doc); err != nil {
		t.Fatal(err)
	}
	rc := doc["requestContext"].(map[string]any)
	if doc["version"] != "1.0" || rc["condition"] != "EventAgeExceeded" || rc["approximateInvokeCount"] != float64(0) ||
		rc["functionArn"] != "arn:aws:lambda:us-east-1:123456789012:function:export:$LATEST" ||
		doc["requestPayload"].(map[string]any)["a"] != float64(1) || doc["responseContext"] != nil {
		t.Errorf("record = %v", doc)
	}
	if err := json.Unmarshal(record(f, "r1", []byte("not json"), "RetriesExhausted", 3, &result{payload: []byte("plain"), functionError: "Unhandled"}), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["requestPayload"] != "not json" || doc["responsePayload"] != "plain" {
		t.Errorf("non-JSON payloads = %v, want them as JSON strings", doc)
	}
}

func FuzzLookup(f *testing.F) {
	for _, s := range []string{"ExportFunction", "arn:aws:lambda:us-east-1:123456789012:function:x:1", "1:function:x", "a:b", ":::"} {
		f.Add(s)
	}
	fn := &function{Function: Function{LogicalID: "x", Name: "x"}}
	s := &Service{byName: map[string]*function{"x": fn}}
	f.Fuzz(func(t *testing.T, raw string) {
		got, _, ok := s.lookup(raw)
		if ok != (got != nil) {
			t.Errorf("lookup(%q) found %v with function %v", raw, ok, got)
		}
	})
}
