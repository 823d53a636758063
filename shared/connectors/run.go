package connectors

import "time"

// RunStatus is a run's lifecycle state.
type RunStatus string

// The statuses. Queued, running and paused are active (they hold the connector's run slot); the others are final.
// A paused run stopped unfinished (its invocation's deadline, a spent quota) and waits for the dispatcher to
// resume it, no earlier than its ResumeAfter.
const (
	RunQueued    RunStatus = "queued"
	RunRunning   RunStatus = "running"
	RunPaused    RunStatus = "paused"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	RunCancelled RunStatus = "cancelled"
)

// Active reports whether a run in status s still holds its connector's run slot.
func (s RunStatus) Active() bool { return s == RunQueued || s == RunRunning || s == RunPaused }

// Triggers of a run.
const (
	TriggerManual   = "manual"
	TriggerSchedule = "schedule"
)

// Counters are a run's progress, cumulative over all the invocations that worked on it: each checkpoint records
// them with the export's checkpoint in one transaction, so a resumed run goes on from the figures of the
// checkpoint it resumes from (never from zero, never counting a crashed invocation's unsaved work twice). A
// succeeded run's counters equal its manifest's counts and stats.
type Counters struct {
	// IssuesDone is IssuesWritten + IssuesUnchanged: the progress against ApproxTotal.
	IssuesDone int64 `json:"issuesDone" dynamodbav:"issuesDone"`
	// IssuesWritten are the issues whose object the run wrote (new or changed content), IssuesUnchanged those it
	// found unchanged, IssuesRemoved those it removed from the mirror (deleted in Jira or out of the JQL's scope).
	IssuesWritten   int64 `json:"issuesWritten" dynamodbav:"issuesWritten"`
	IssuesUnchanged int64 `json:"issuesUnchanged" dynamodbav:"issuesUnchanged"`
	IssuesRemoved   int64 `json:"issuesRemoved" dynamodbav:"issuesRemoved"`
	// ApproxTotal is /search/approximate-count at the start of the run (an estimate; may be exceeded).
	ApproxTotal int64 `json:"approxTotal" dynamodbav:"approxTotal"`
	Attachments int64 `json:"attachments" dynamodbav:"attachments"`
	Bytes       int64 `json:"bytes" dynamodbav:"bytes"`
	// Requests are the Jira API requests the run made (every attempt, retries included).
	Requests    int64 `json:"requests" dynamodbav:"requests"`
	PointsSpent int64 `json:"pointsSpent" dynamodbav:"pointsSpent"`
}

// RunError is one problem a run met, with a stable machine-readable reason.
type RunError struct {
	Reason  string    `json:"reason" dynamodbav:"reason"`
	Message string    `json:"message" dynamodbav:"message"`
	At      time.Time `json:"at" dynamodbav:"at"`
}

// Run is one export of a connector.
type Run struct {
	ID           string
	ConnectorID  string
	ConnectionID string
	Status       RunStatus
	// Phase is what an active run is doing (queued, counting, searching, attachments, finishing) or where a
	// finished one stopped.
	Phase      string
	Trigger    string
	Counters   Counters
	Errors     []RunError
	CreatedAt  time.Time
	UpdatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	// CancelReason says why a cancelled run was cancelled (user, connector_deleted, disconnected).
	CancelReason string
	// LeaseOwner and LeaseUntil name the worker that owns a running run and until when; a lease that expired
	// belongs to a crashed worker and may be taken over.
	LeaseOwner string
	LeaseUntil *time.Time
	// ResumeAfter is the earliest time a paused run may be taken again (a quota reset); PauseReason says why it
	// paused (deadline, quota, ...).
	ResumeAfter *time.Time
	PauseReason string
	// Invocations counts the leases taken on the run (one per export invocation that worked on it).
	Invocations int64
	// DispatchedAt is when the run was last handed to an export invocation (by the API or the dispatcher);
	// Allowance is the points allowance the dispatcher gave that invocation (0: none set), and AllowanceBase the
	// run's pointsSpent counter when it was given: what the invocation has spent of it is the difference.
	DispatchedAt  *time.Time
	Allowance     int64
	AllowanceBase int64
}

// RunRef names one run.
type RunRef struct {
	ConnectionID string `json:"connectionId"`
	ConnectorID  string `json:"connectorId"`
	RunID        string `json:"runId"`
}

// Progress is an update a worker writes to a run.
type Progress struct {
	Status   RunStatus // "" keeps the status
	Phase    string    // "" keeps the phase
	Counters Counters  // replaces the counters, unless KeepCounters
	// KeepCounters leaves the stored counters as they are: the writer has none of its own (an invocation that
	// stopped before it loaded the run's checkpoint), and zeros would erase the run's figures.
	KeepCounters bool
	Errors       []RunError
}
