package connectorsapi

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/oauth2"

	"jiraexport/shared/jira"
	"jiraexport/shared/ratebudget"
)

// jiraOf is the Jira client for connection connID's calls.
func (a *api) jiraOf(connID string, ts oauth2.TokenSource) Jira {
	if a.JiraFor != nil {
		return a.JiraFor(connID, ts)
	}
	return a.Jira(ts)
}

// PointsLedger records one call's points in the hourly ledger (shared/ratebudget.Ledger).
type PointsLedger interface {
	Record(ctx context.Context, connID string, at time.Time, points int64) error
}

var _ PointsLedger = (*ratebudget.Ledger)(nil)

// RecordPoints is a jira.Options.Observe for connection connID's client: each answer's points (by Atlassian's
// rule) go to the connection's and the app's hourly counters, where the dispatcher's budget sees them. A failed
// write is logged and not retried: the API's answer does not wait on the accounting of a call already made.
func RecordPoints(led PointsLedger, connID string, now func() time.Time, log *slog.Logger) func(jira.Observation) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(o jira.Observation) {
		p := ratebudget.Cost(o.Method, o.Status, ratebudget.Objects{Core: max(o.Objects, 0)})
		if p == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := led.Record(ctx, connID, now(), p); err != nil {
			log.Warn("could not record the points of a Jira call", "connectionId", connID, "error", err)
		}
	}
}
