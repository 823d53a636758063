package main

// End-to-end: the real bootstrap under the Lambda Runtime Interface Emulator, with the environment template.yaml
// gives PurgeFunction, against a scenario built through the OAuth flow.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"jiraexport/infra/privacytest"
	"jiraexport/infra/stacktest"
	"jiraexport/shared/erasure"
)

func TestPurgeFunction(t *testing.T) {
	t.Parallel()
	stacktest.SkipIfShort(t, "DynamoDB Local, moto and the Lambda Runtime Interface Emulator (it builds and runs the function)")
	sc := privacytest.Build(t, privacytest.Options{Connections: 2})
	a, b := sc.Parties[0], sc.Parties[1]
	beforeA, beforeB := sc.Snapshot(t, a.ConnID), sc.Snapshot(t, b.ConnID)
	fn := sc.Env.StartFunction(t, "PurgeFunction", map[string]string{"ERASURE_SETTLE_SECONDS": "0"})
	invoke := func(payload string) []erasure.Report {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := fn.Invoke(ctx, []byte(payload))
		if err != nil {
			t.Fatalf("invoke %s: %v", payload, err)
		}
		var reps []erasure.Report
		if err := json.Unmarshal(out, &reps); err != nil {
			t.Fatalf("answer %s: %v", out, err)
		}
		return reps
	}

	dry := invoke(`{"connectionId":"` + a.ConnID + `","dryRun":true}`)
	if len(dry) != 1 || !dry[0].Complete || !dry[0].DryRun || dry[0].Deleted["objectVersion"] != 12 || dry[0].Deleted["token"] != 1 {
		t.Errorf("dry run = %+v, want a complete report of 12 versions and a token", dry)
	}
	if d := beforeA.Diff(sc.Snapshot(t, a.ConnID)); d != "" {
		t.Errorf("the dry run changed A:\n%s", d)
	}

	rep := invoke(`{"connectionId":"` + a.ConnID + `"}`)
	if len(rep) != 1 || !rep[0].Complete || rep[0].Deleted["connection"] != 1 || rep[0].Deleted["multipartUpload"] != 2 {
		t.Errorf("purge = %+v, want complete with the connection and 2 uploads", rep)
	}
	if s := sc.Snapshot(t, a.ConnID); !s.Empty() {
		t.Errorf("left of A: %+v", s)
	}
	if d := beforeB.Diff(sc.Snapshot(t, b.ConnID)); d != "" {
		t.Errorf("B changed:\n%s", d)
	}

	// A bad request is refused, and nothing is touched.
	if _, err := fn.Invoke(t.Context(), []byte(`{"connectionId":"x","siteId":"y"}`)); err == nil {
		t.Error("invoke with both targets succeeded, want a function error")
	}

	// One audit line per invocation, ids and counts only.
	logs := fn.Logs()
	if n := strings.Count(logs, `"message":"purge"`); n != 2 {
		t.Errorf("audit lines = %d, want 2:\n%s", n, logs)
	}
	if !strings.Contains(logs, a.ConnID) || !strings.Contains(logs, `"objectVersion":12`) {
		t.Errorf("the audit line lacks the connection id or the counts:\n%s", logs)
	}
	for _, s := range append(sc.Secrets, sc.PII()...) {
		if strings.Contains(logs, s) {
			t.Errorf("the purge logs hold a secret or personal data (%d chars)", len(s))
		}
	}
}
