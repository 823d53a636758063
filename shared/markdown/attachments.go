package markdown

import (
	"net/url"
	"strings"
)

// Attachment is one of the attachments as the export knows it after applying the connector's rules.
type Attachment struct {
	ID       string // Jira attachment id
	MediaID  string // media file id (the <uuid> of the content redirect's /file/<uuid>/binary), when known
	Filename string
	MimeType string
	Href     string // link to the exported copy, e.g. "../attachments/10001" relative to issues/<issueId>.md
	Skipped  string // why it was not exported ("larger than 100 MB", "media type not allowed"); "" when exported
}

// AttachmentResolver resolves ADF media to the attachments. ADF names a file by its media id, which Jira's
// attachment JSON does not carry; the content redirect does (MediaIDFromURL). A media node is matched by media id,
// else by file name (attrs.alt) when exactly one attachment has that name. Media that match nothing are reported
// as not among the attachments (they belong to another issue, or were deleted).
func AttachmentResolver(atts []Attachment) MediaResolver {
	byMedia := map[string]Attachment{}
	byName := map[string][]Attachment{}
	for _, a := range atts {
		if a.MediaID != "" {
			byMedia[a.MediaID] = a
		}
		if a.Filename != "" {
			byName[a.Filename] = append(byName[a.Filename], a)
		}
	}
	return func(m Media) MediaLink {
		if m.Type == "external" {
			return MediaLink{}
		}
		a, ok := byMedia[m.ID]
		if !ok {
			if same := byName[m.Alt]; m.Alt != "" && len(same) == 1 {
				a, ok = same[0], true
			}
		}
		if !ok {
			return MediaLink{Skipped: "not an attachment of this issue"}
		}
		if a.Href == "" {
			reason := a.Skipped
			if reason == "" {
				reason = "not exported"
			}
			return MediaLink{Name: a.Filename, Skipped: reason}
		}
		return MediaLink{Href: a.Href, Name: a.Filename, Image: strings.HasPrefix(a.MimeType, "image/")}
	}
}

// MediaIDFromURL returns the media file id in a media URL such as the Location of /attachment/content/{id}'s 303
// (https://api.media.atlassian.com/file/<uuid>/binary?token=...), or "" when the URL has none.
func MediaIDFromURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	parts := strings.Split(strings.Trim(p.Path, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "file" && parts[i+1] != "" {
			return parts[i+1]
		}
	}
	return ""
}
