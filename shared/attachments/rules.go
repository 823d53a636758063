// Package attachments decides which of an issue's attachments a connector exports and copies each allowed one from
// Jira into the S3 mirror: the gateway's 303 is followed without the bearer token, the body streams into S3 in
// bounded memory while it is hashed (SHA-256) and counted, and a transfer cut short by the function's deadline
// resumes in the next invocation from the bytes already uploaded.
//
// Attachment ids are immutable in Jira (an edited file is a new attachment), so an id already in the mirror is
// never downloaded again: Plan compares the issue's attachments with what the export's index says is stored.
package attachments

import (
	"mime"
	"strings"

	"jiraexport/shared/connectors"
)

// Attachment is one entry of an issue's fields.attachment as Jira lists it (the JSON tags are Jira's, so the
// export can decode the field straight into it).
type Attachment struct {
	ID       string `json:"id"`
	Filename string `json:"filename"`
	// Size is Jira's size in bytes; the transfer fails when the bytes served differ.
	Size     int64  `json:"size"`
	MimeType string `json:"mimeType"`
}

// Reason says why an attachment was not exported (the manifest lists it).
type Reason string

// The reasons.
const (
	ReasonDisabled  Reason = "disabled"   // the connector does not export attachments
	ReasonTooLarge  Reason = "too_large"  // larger than the connector's maxBytes
	ReasonMediaType Reason = "media_type" // not one of the connector's media types
)

// Decide applies a connector's rules to one attachment: allowed, or skipped with the reason. A MaxBytes of zero
// or less means the default cap (connectors.DefaultAttachmentSize); no cap exceeds connectors.MaxAttachmentBytes.
func Decide(rules connectors.Attachments, a Attachment) (allowed bool, reason Reason) {
	if !rules.Enabled {
		return false, ReasonDisabled
	}
	limit := rules.MaxBytes
	if limit <= 0 {
		limit = connectors.DefaultAttachmentSize
	}
	limit = min(limit, connectors.MaxAttachmentBytes)
	if a.Size > limit || a.Size < 0 {
		return false, ReasonTooLarge
	}
	if len(rules.MediaTypes) > 0 && !MediaTypeAllowed(rules.MediaTypes, a.MimeType) {
		return false, ReasonMediaType
	}
	return true, ""
}

// MediaTypeAllowed reports whether mimeType (parameters and case ignored) matches one of ranges: an exact type
// ("image/png"), a type range ("image/*") or "*/*". An empty or unreadable mimeType matches only "*/*".
func MediaTypeAllowed(ranges []string, mimeType string) bool {
	mt := essence(mimeType)
	for _, r := range ranges {
		r = strings.ToLower(strings.TrimSpace(r))
		switch {
		case r == "*/*":
			return true
		case mt == "":
		case strings.HasSuffix(r, "/*"):
			if typ, _, _ := strings.Cut(mt, "/"); typ+"/*" == r {
				return true
			}
		case r == mt:
			return true
		}
	}
	return false
}

// essence is the lower-case type/subtype of a media type, "" when it is not one.
func essence(s string) string {
	mt, _, err := mime.ParseMediaType(s)
	if err != nil || strings.Count(mt, "/") != 1 || strings.HasPrefix(mt, "/") || strings.HasSuffix(mt, "/") {
		return ""
	}
	return mt
}

// contentType is what the S3 object is labelled with: Jira's media type when it is one, else
// application/octet-stream.
func contentType(mimeType string) string {
	if mt := essence(mimeType); mt != "" {
		return mt
	}
	return "application/octet-stream"
}

// Stored is what the export keeps per mirrored attachment in its index item (IDX#<connectorId>#<issueId>), so a
// later run can list it in the manifest (size and SHA-256) without downloading it or asking S3.
type Stored struct {
	ID     string `json:"id" dynamodbav:"id"`
	Size   int64  `json:"size" dynamodbav:"size"`
	SHA256 string `json:"sha256" dynamodbav:"sha256"` // lower-case hex
	// MediaID is the file's id in Atlassian's media store, read from the content redirect's
	// /file/<uuid>/binary ("" if it had none): ADF media nodes name the attachment by it (attrs.id), so the
	// Markdown converter can link them to the exported object (markdown.Attachment.MediaID).
	MediaID string `json:"mediaId,omitempty" dynamodbav:"mediaId,omitempty"`
}

// Skipped is an attachment the rules left out.
type Skipped struct {
	Attachment
	Reason Reason `json:"reason"`
}

// Plan is what to do with one issue's attachments.
type Plan struct {
	// Download: allowed and not in the mirror yet (or in it under a different size, which an immutable id never
	// has: the mirror is then repaired).
	Download []Attachment
	// Keep: allowed and already in the mirror; never downloaded again.
	Keep []Stored
	// Skip: not allowed by the rules, with the reason.
	Skip []Skipped
	// Delete: attachment ids in the mirror that the issue no longer has, or that the rules no longer allow
	// (the mirror follows the connector's current rules). Delete their objects, then drop them from the index.
	Delete []string
}

// PlanIssue compares an issue's current attachments with those the index says are stored. It needs no network:
// ids are immutable, so presence in the index is enough to skip a download (no HEAD request).
func PlanIssue(rules connectors.Attachments, current []Attachment, stored []Stored) Plan {
	have := make(map[string]Stored, len(stored))
	for _, s := range stored {
		have[s.ID] = s
	}
	var p Plan
	seen := make(map[string]bool, len(current))
	for _, a := range current {
		if seen[a.ID] {
			continue
		}
		seen[a.ID] = true
		ok, why := Decide(rules, a)
		s, in := have[a.ID]
		switch {
		case !ok:
			p.Skip = append(p.Skip, Skipped{Attachment: a, Reason: why})
			if in {
				p.Delete = append(p.Delete, a.ID)
			}
		case in && s.Size == a.Size:
			p.Keep = append(p.Keep, s)
		default:
			p.Download = append(p.Download, a)
		}
	}
	for _, s := range stored {
		if !seen[s.ID] {
			p.Delete = append(p.Delete, s.ID)
			seen[s.ID] = true
		}
	}
	return p
}
