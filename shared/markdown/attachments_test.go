package markdown_test

import (
	"testing"

	"jiraexport/shared/markdown"
)

func TestAttachmentResolver(t *testing.T) {
	resolve := markdown.AttachmentResolver([]markdown.Attachment{
		{ID: "10001", MediaID: "uuid-1", Filename: "diagram.png", MimeType: "image/png", Href: "../attachments/10001"},
		{ID: "10002", MediaID: "uuid-2", Filename: "huge.zip", MimeType: "application/zip", Skipped: "larger than 100 MB"},
		{ID: "10003", Filename: "notes.txt", MimeType: "text/plain", Href: "../attachments/10003"},
		{ID: "10004", Filename: "dup.txt", Href: "../attachments/10004"},
		{ID: "10005", Filename: "dup.txt", Href: "../attachments/10005"},
	})
	tests := []struct {
		name string
		in   markdown.Media
		want markdown.MediaLink
	}{
		{"by media id", markdown.Media{Type: "file", ID: "uuid-1", Alt: "renamed.png"}, markdown.MediaLink{Href: "../attachments/10001", Name: "diagram.png", Image: true}},
		{"skipped keeps its reason", markdown.Media{Type: "file", ID: "uuid-2"}, markdown.MediaLink{Name: "huge.zip", Skipped: "larger than 100 MB"}},
		{"by unique file name", markdown.Media{Type: "file", ID: "uuid-x", Alt: "notes.txt"}, markdown.MediaLink{Href: "../attachments/10003", Name: "notes.txt"}},
		{"ambiguous file name", markdown.Media{Type: "file", ID: "uuid-y", Alt: "dup.txt"}, markdown.MediaLink{Skipped: "not an attachment of this issue"}},
		{"unknown", markdown.Media{Type: "file", ID: "uuid-z"}, markdown.MediaLink{Skipped: "not an attachment of this issue"}},
		{"external is left to the converter", markdown.Media{Type: "external", URL: "https://x.test/a.png"}, markdown.MediaLink{}},
	}
	for _, tt := range tests {
		if got := resolve(tt.in); got != tt.want {
			t.Errorf("%s: resolve(%+v) = %+v, want %+v", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestMediaIDFromURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.media.atlassian.com/file/3a4b0c1d-0000-4000-8000-000000000001/binary?token=x&client=y": "3a4b0c1d-0000-4000-8000-000000000001",
		"http://127.0.0.1:9999/file/abc/binary": "abc",
		"https://example.com/other/path":        "",
		"::not a url":                           "",
	} {
		if got := markdown.MediaIDFromURL(in); got != want {
			t.Errorf("MediaIDFromURL(%q) = %q, want %q", in, got, want)
		}
	}
}
