package atlassiansim

import (
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// Test account ids from Atlassian's user privacy guide.
const (
	PrivacyTestActive = "5be24ad8b1653240376955d2"
	PrivacyTestClosed = "5be24ba3f91c106033269289"
)

// ReportCyclePeriod is the reporting cycle announced in the Cycle-Period header (seconds; Atlassian's default is
// 7 days).
const ReportCyclePeriod = 7 * 24 * time.Hour

var accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9:\-]{1,128}$`)

// handleReportAccounts is POST /app/report-accounts/ (Personal Data Reporting API). Accounts that are closed
// (deactivated users, the documented test id) answer "closed"; when nothing needs action the answer is 204.
func (s *Server) handleReportAccounts(w http.ResponseWriter, r *http.Request) {
	now := s.clock.Now()
	s.mu.Lock()
	a := s.authenticateLocked(r, now)
	s.mu.Unlock()
	if a == nil {
		writeJSON(w, http.StatusUnauthorized, errUnauthorized)
		return
	}
	if !hasScope(a.scope, "report:personal-data") {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "Unauthorized; scope does not match"})
		return
	}
	bad := func(msg string) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"errorType": "INVALID_REQUEST", "errorMessage": msg})
	}
	var req struct {
		Accounts []struct {
			AccountID string    `json:"accountId"`
			UpdatedAt time.Time `json:"updatedAt"`
		} `json:"accounts"`
	}
	if err := decodeStrict(r, &req); err != nil {
		bad("Malformed request body.")
		return
	}
	if len(req.Accounts) == 0 || len(req.Accounts) > 90 {
		bad("accounts must contain between 1 and 90 entries.")
		return
	}
	w.Header().Set("Cycle-Period", strconv.Itoa(int(ReportCyclePeriod/time.Second)))
	var out []map[string]string
	s.mu.Lock()
	for _, acc := range req.Accounts {
		if !accountIDPattern.MatchString(acc.AccountID) || acc.UpdatedAt.IsZero() {
			s.mu.Unlock()
			bad("Each account needs an accountId (1-128 characters: letters, digits, '-', ':') and an updatedAt timestamp.")
			return
		}
		u := s.data.userByID[acc.AccountID]
		if acc.AccountID == PrivacyTestClosed || (u != nil && !u.Active && u.AccountType == "atlassian") {
			out = append(out, map[string]string{"accountId": acc.AccountID, "status": "closed"})
		}
	}
	s.mu.Unlock()
	if len(out) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": out})
}
