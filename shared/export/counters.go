package export

import (
	"jiraexport/shared/connectors"
	"jiraexport/shared/mirror"
)

// counters are the run record's counters: the checkpoint's tallies, which carry the run's figures from one
// invocation to the next (the record and the checkpoint are written in one transaction).
func (w *worker) counters() connectors.Counters {
	return connectors.Counters{
		IssuesDone: w.ck.Written + w.ck.Unchanged, IssuesWritten: w.ck.Written, IssuesUnchanged: w.ck.Unchanged,
		IssuesRemoved: w.ck.Removed, ApproxTotal: w.ck.ApproxTotal, Bytes: w.ck.Bytes, Requests: w.ck.Requests,
		PointsSpent: w.ck.Points,
	}
}

// manifestCounters are a succeeded run's final counters: the manifest's counts and stats, so the record and the
// manifest never disagree (an issue that a run wrote and then removed is listed, and counted, once: as removed).
func manifestCounters(c connectors.Counters, m *mirror.Manifest) connectors.Counters {
	c.IssuesWritten, c.IssuesUnchanged, c.IssuesRemoved = m.Counts.Written, m.Counts.Unchanged, m.Counts.Removed
	c.IssuesDone = c.IssuesWritten + c.IssuesUnchanged
	c.Requests, c.PointsSpent, c.Bytes = m.Stats.Requests, m.Stats.Points, m.Stats.Bytes
	return c
}
