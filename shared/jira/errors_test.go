package jira

import (
	"fmt"
	"strings"
	"testing"
)

// TestErrorsHoldNoJiraText: Jira's error messages (which quote JQL values, names and project names) never reach
// an error's text, so no log line can carry them.
func TestErrorsHoldNoJiraText(t *testing.T) {
	t.Parallel()
	const quoted = "Jane Doe"
	for _, err := range []error{
		&StatusError{Status: 400, Messages: []string{"The value '" + quoted + "' does not exist for the field 'assignee'."}},
		&UnauthorizedError{Message: "Unauthorized; " + quoted},
		fmt.Errorf("jira: GET /search: %w", &StatusError{Status: 404, Messages: []string{"No project could be found with key '" + quoted + "'."}}),
	} {
		if strings.Contains(err.Error(), quoted) {
			t.Errorf("%T.Error() = %q, holds Jira's text", err, err.Error())
		}
	}
	if got := (&StatusError{Status: 400, Messages: []string{"a", "b"}}).Error(); got != "jira: status 400 (2 messages)" {
		t.Errorf("StatusError.Error() = %q", got)
	}
}
