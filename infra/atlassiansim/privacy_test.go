package atlassiansim

import (
	"fmt"
	"testing"
)

func TestReportAccounts(t *testing.T) {
	f := newFixture(t, nil)
	tr := f.token("read:jira-work", "report:personal-data")
	var inactive string
	for _, u := range f.sim.Users() {
		if !u.Active && u.AccountType == "atlassian" {
			inactive = u.AccountID
		}
	}
	acc := func(ids ...string) map[string]any {
		var l []map[string]string
		for _, id := range ids {
			l = append(l, map[string]string{"accountId": id, "updatedAt": "2026-03-01T10:00:00.000Z"})
		}
		return map[string]any{"accounts": l}
	}
	many := make([]string, 91)
	for i := range many {
		many[i] = fmt.Sprintf("5be24ad8b16532403769%04d", i)
	}
	tests := []struct {
		name       string
		token      string
		body       any
		wantStatus int
		wantClosed int
	}{
		{"active only", tr.AccessToken, acc(PrivacyTestActive, f.admin().AccountID), 204, 0},
		{"closed test id and deactivated user", tr.AccessToken, acc(PrivacyTestClosed, inactive, PrivacyTestActive), 200, 2},
		{"91 accounts", tr.AccessToken, acc(many...), 400, 0},
		{"bad id", tr.AccessToken, acc("not valid!"), 400, 0},
		{"missing scope", f.token("read:jira-work").AccessToken, acc(PrivacyTestActive), 401, 0},
	}
	for _, tt := range tests {
		r := f.do("POST", "/app/report-accounts/", tt.token, tt.body)
		if r.status != tt.wantStatus {
			t.Errorf("%s: report-accounts = %d %s, want %d", tt.name, r.status, r.body, tt.wantStatus)
			continue
		}
		if r.status == 200 {
			if got := len(r.json(t)["accounts"].([]any)); got != tt.wantClosed {
				t.Errorf("%s: %d accounts reported, want %d", tt.name, got, tt.wantClosed)
			}
		}
		if r.status < 300 && r.header.Get("Cycle-Period") != "604800" {
			t.Errorf("%s: Cycle-Period = %q", tt.name, r.header.Get("Cycle-Period"))
		}
	}
}
