package mirror

// Issue is the document at issues/<issueId>.json (schema issue.v1). Everything in it has passed the scrubber.
type Issue struct {
	Schema string `json:"schema"`
	ID     string `json:"id"`
	Key    string `json:"key"`
	Site   Site   `json:"site"`
	// Updated is Jira's `updated` as epoch milliseconds (the index and the incremental watermark use it).
	Updated int64 `json:"updated"`
	// Fields are the issue's fields by id, as Jira gave them (scrubbed), without comment and worklog (below).
	Fields map[string]any `json:"fields"`
	// Names maps each field id in Fields to its name (from /rest/api/3/field).
	Names map[string]string `json:"names"`
	// CustomFields holds every custom field under its name (the id added in brackets when two share a name),
	// with its id and schema type, so a pipeline can read it without /field.
	CustomFields map[string]CustomField `json:"customFields"`
	Comments     []any                  `json:"comments,omitempty"`
	Changelog    []any                  `json:"changelog,omitempty"`
	Worklogs     []any                  `json:"worklogs,omitempty"`
	Parent       *IssueRef              `json:"parent,omitempty"`
	Subtasks     []IssueRef             `json:"subtasks"`
	Links        []Link                 `json:"links"`
	Attachments  []AttachmentRef        `json:"attachments"`
	// Counts prove completeness: exported equals the total Jira reported, for each child list exported.
	Counts Counts `json:"counts"`
}

// Site names the Jira site.
type Site struct {
	CloudID string `json:"cloudId"`
	URL     string `json:"url,omitempty"`
}

// CustomField is one custom field, typed by its /field schema.
type CustomField struct {
	ID     string `json:"id"`
	Type   string `json:"type,omitempty"`
	Items  string `json:"items,omitempty"`
	Custom string `json:"custom,omitempty"`
	Value  any    `json:"value"`
}

// IssueRef references another issue by id and key.
type IssueRef struct {
	ID  string `json:"id"`
	Key string `json:"key,omitempty"`
}

// Link is an issue link as a reference.
type Link struct {
	ID        string   `json:"id"`
	Type      string   `json:"type,omitempty"`
	Direction string   `json:"direction"` // inward or outward
	Issue     IssueRef `json:"issue"`
}

// AttachmentRef is an attachment's metadata; Key is its object once attachments are exported.
type AttachmentRef struct {
	ID       string `json:"id"`
	Filename string `json:"filename,omitempty"`
	MimeType string `json:"mimeType,omitempty"`
	Size     int64  `json:"size"`
}

// Counts are exported/total pairs per child list.
type Counts struct {
	Comments  *Count `json:"comments,omitempty"`
	Changelog *Count `json:"changelog,omitempty"`
	Worklogs  *Count `json:"worklogs,omitempty"`
}

// Count is how many children were exported of how many Jira reported.
type Count struct {
	Exported int `json:"exported"`
	Total    int `json:"total"`
}

// Manifest is the document at manifests/<runId>.json (schema manifest.v1): what one run changed. Its lists are
// sorted by issue id, so a run finished after crashes writes the same lists as one that was never interrupted;
// Stats (requests, points, invocations, timings) describe how this run went and are the only part that can differ.
type Manifest struct {
	Schema      string `json:"schema"`
	RunID       string `json:"runId"`
	ConnectorID string `json:"connectorId"`
	Site        Site   `json:"site"`
	// Mode is full (every issue the JQL selects) or incremental (issues updated since the watermark).
	Mode string `json:"mode"`
	// Census says whether this run listed every matching id to find deletions and scope exits.
	Census    bool            `json:"census"`
	Written   []ManifestIssue `json:"written"`
	Removed   []ManifestIssue `json:"removed"`
	Counts    ManifestCounts  `json:"counts"`
	Watermark int64           `json:"watermark"`
	Stats     ManifestStats   `json:"stats"`
}

// ManifestIssue is one issue the run wrote or removed.
type ManifestIssue struct {
	ID     string `json:"id"`
	Key    string `json:"key,omitempty"`
	Object string `json:"object"`
	SHA256 string `json:"sha256,omitempty"`
	// Reason for a removal: gone (deleted, moved out of the JQL, or no longer visible to the connection).
	Reason string  `json:"reason,omitempty"`
	Counts *Counts `json:"counts,omitempty"`
	// Attachments is what this run did with the issue's attachments (absent when it did nothing with them).
	Attachments *ManifestAttachments `json:"attachments,omitempty"`
}

// ManifestAttachments lists one issue's attachments by what the run did with each, sorted by id.
type ManifestAttachments struct {
	// Written were copied into the mirror by this run; Kept were already there (attachment ids are immutable).
	Written []ManifestAttachment `json:"written,omitempty"`
	Kept    []ManifestAttachment `json:"kept,omitempty"`
	// Skipped were left out, with the reason: too_large, media_type (the connector's rules), gone (removed
	// from the issue while the run copied it), failed (the copy failed for good, e.g. a size mismatch).
	Skipped []ManifestAttachment `json:"skipped,omitempty"`
	// Deleted were in the mirror and are no longer (removed from the issue, or no longer allowed by the rules).
	Deleted []ManifestAttachment `json:"deleted,omitempty"`
}

// ManifestAttachment is one attachment in a manifest.
type ManifestAttachment struct {
	ID       string `json:"id"`
	Object   string `json:"object,omitempty"`
	Size     int64  `json:"size"`
	MimeType string `json:"mimeType,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// ManifestCounts sum the run up.
type ManifestCounts struct {
	Selected  int64 `json:"selected"`
	Written   int64 `json:"written"`
	Unchanged int64 `json:"unchanged"`
	Removed   int64 `json:"removed"`
}

// ManifestStats describe the run's cost and time.
type ManifestStats struct {
	StartedAt   string           `json:"startedAt"`
	FinishedAt  string           `json:"finishedAt"`
	Invocations int64            `json:"invocations"`
	Requests    int64            `json:"requests"`
	Points      int64            `json:"points"`
	Bytes       int64            `json:"bytes"`
	PhaseMillis map[string]int64 `json:"phaseMillis"`
}
