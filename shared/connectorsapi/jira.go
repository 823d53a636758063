package connectorsapi

import "golang.org/x/oauth2"

// jiraOf is the Jira client for connection connID's calls.
func (a *api) jiraOf(connID string, ts oauth2.TokenSource) Jira {
	if a.JiraFor != nil {
		return a.JiraFor(connID, ts)
	}
	return a.Jira(ts)
}
